#!/usr/bin/env bash
# Hostile-load benchmark: bytes per idle connection (Morgana hosted and as a
# VM, beside nginx in one run), then the flood tests (SYN flood, 2,000 held
# connections at 8 MiB) with their figures. Prints Markdown tables.
# Needs root (network namespaces), QEMU, hping3, nginx; bounded: each hold
# lasts seconds, each flood 10 s.
#
#   bench/hostile/run.sh [CONNECTIONS]      (default 500 per measurement)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-500}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; ip netns del morgana-bench 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p web -p dns
cargo build -q -p morgana-tests --bins
hold=target/debug/conn-hold
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The last heap report's "in use" figure in log $1, KiB.
in_use() { grep "heap: in use" "$1" | tail -1 | sed 's/.*in use \([0-9]*\) KiB.*/\1/'; }
# Resident set of pid $1, KiB.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Holds $n connections of kind $2 to $1 (run by $3, e.g. "ip netns exec NS")
# for at most $4 seconds in the background (pid in $hold_pid); waits until
# they are open.
hold_open() {
  local out="$work/hold.$RANDOM" cmd="$hold $1 $n $4 $2"
  [ "$2" = tls-keepalive ] && cmd="python3 bench/hostile/tls-hold.py $1 $n $4"
  ${3:-} sh -c "ulimit -n 16384 && exec $cmd" > "$out" &
  hold_pid=$!
  for _ in $(seq 900); do grep -q opened "$out" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
}

per_conn() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1024 / n / 1024 }'; }

echo "## Bytes per idle connection ($n connections held, KiB each)"
echo
echo "| connection | Morgana hosted (heap) | Morgana VM (heap) | nginx (worker RSS) |"
echo "|---|---|---|---|"

# nginx, one worker, the same kinds of client.
nh=$(free_port); ns=$(free_port)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nh;
    listen 127.0.0.1:$ns ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    root /usr/share/nginx/html;
  }
}
CONF
declare -A nginx_kib
for kind in idle http-head keepalive tls-hello tls-keepalive; do
  # A fresh nginx each time: memory freed by one kind's connections stays
  # in the worker's resident set and would hide the next kind's.
  nginx -c "$work/nginx.conf"
  sleep 0.5
  worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
  port=$nh; [ "${kind#tls}" != "$kind" ] && port=$ns
  before=$(rss "$worker")
  hold_open "127.0.0.1:$port" "$kind" "" 90
  after=$(rss "$worker")
  nginx_kib[$kind]=$(per_conn "$before" "$after")
  kill "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true
  kill "$(cat "$work/nginx.pid")"; sleep 0.3; rm -f "$work/nginx.pid"
done

# Morgana hosted: the heap counters (--memory-report).
declare -A hosted_kib
measure_hosted() { # app kind port args...
  local app=$1 kind=$2 port=$3; shift 3
  "target/release/$app" --memory-report=1 "$@" > "$work/$app.log" 2>&1 &
  local pid=$!
  sleep 1.5
  local before; before=$(in_use "$work/$app.log")
  hold_open "127.0.0.1:$port" "$kind" "" 90
  sleep 1.2
  local after; after=$(in_use "$work/$app.log")
  hosted_kib[$app-$kind]=$(per_conn "$before" "$after")
  kill "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
wh=$(free_port); ws=$(free_port); dp=$(free_port)
for kind in idle http-head keepalive tls-hello tls-keepalive; do
  port=$wh; [ "${kind#tls}" != "$kind" ] && port=$ws
  measure_hosted web "$kind" "$port" --http "127.0.0.1:$wh" --https "127.0.0.1:$ws" --max-connections 8000
done
for kind in idle dns-partial; do
  measure_hosted dns "$kind" "$dp" --listen "127.0.0.1:$dp" --tcp-max 8000
done

# Morgana VM (microvm, 64 MiB) on a TAP device in a namespace.
ip netns del morgana-bench 2>/dev/null || true
ip netns add morgana-bench
nsx="ip netns exec morgana-bench"
$nsx ip link set lo up
$nsx ip tuntap add dev mtap0 mode tap
$nsx ip addr add 10.77.0.1/24 dev mtap0
$nsx ip link set mtap0 up
declare -A vm_kib
measure_vm() { # app kind port args...
  local app=$1 kind=$2 port=$3; shift 3
  local image; image=$(cargo run -q -p xtask -- build "$app" 2>/dev/null | tail -1)
  $nsx qemu-system-x86_64 -M microvm,x-option-roms=off,pit=off,pic=off,rtc=on,acpi=off -accel tcg -m 64M \
    -nodefaults -no-reboot -display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -netdev tap,id=n0,ifname=mtap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
    -device virtio-rng-device -kernel "$image" \
    -append "--ipv4=10.77.0.2/24 --memory-report=1 $*" > "$work/vm.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "ready to serve" "$work/vm.log" && break; sleep 0.1; done
  sleep 1.5
  local before; before=$(in_use "$work/vm.log")
  hold_open "10.77.0.2:$port" "$kind" "$nsx" 90
  sleep 1.5
  local after; after=$(in_use "$work/vm.log")
  vm_kib[$app-$kind]=$(per_conn "$before" "$after")
  kill "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for kind in idle http-head keepalive tls-hello tls-keepalive; do
  port=80; [ "${kind#tls}" != "$kind" ] && port=443
  measure_vm web "$kind" "$port" --max-connections=8000
done
for kind in idle dns-partial; do
  measure_vm dns "$kind" 53 --tcp-max=8000
done

for kind in idle http-head keepalive tls-hello tls-keepalive; do
  echo "| web, $kind | ${hosted_kib[web-$kind]} | ${vm_kib[web-$kind]} | ${nginx_kib[$kind]} |"
done
for kind in idle dns-partial; do
  echo "| DNS over TCP, $kind | ${hosted_kib[dns-$kind]} | ${vm_kib[dns-$kind]} | |"
done
echo
echo "Hosted and VM: growth of the heap in use (the allocator's counters) per"
echo "connection, so it includes the app's task and buffers and, in the VM, the"
echo "TCP stack's socket and buffers (the host kernel holds those for a process)."
echo "nginx: growth of its worker's resident set (its share of kernel socket"
echo "buffers is not counted, as for Morgana hosted)."
echo
echo "## Floods (the hostile_vm tests)"
echo
cargo test -q -p morgana-tests --test hostile_vm -- --nocapture 2>&1 | grep -E "RESULT|test result" | sed 's/^ *RESULT /- /'
