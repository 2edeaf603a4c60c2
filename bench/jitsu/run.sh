#!/usr/bin/env bash
# Jitsu benchmark, one run: the floor and the DNS image's own launch to
# first answer (`cargo xtask bench-dns-vm`), then Jitsu's cold starts (a
# query for a stopped unikernel to its A answer) and warm answers, then
# density: VMS idle DNS unikernels held at once, what each costs the host,
# and how fast each answers its first query after idling.
# Needs root, iproute2, QEMU; everything stays in a network namespace with
# a bridge and no route out. Bounded: the VMs stop with Jitsu.
#
#   bench/jitsu/run.sh [VMS] [RUNS] [MEM_MIB]   (default 100, 10, 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
vms=${1:-100}
runs=${2:-10}
mem=${3:-4}
idle=${IDLE:-10}
[ "$vms" -ge "$runs" ] && [ "$vms" -le 1000 ] || { echo "VMS must be in RUNS..1000" >&2; exit 2; }
ns=morgana-jitsu-bench
work=$(mktemp -d)
cleanup() {
  [ -n "${jitsu_pid:-}" ] && kill "$jitsu_pid" 2>/dev/null && wait "$jitsu_pid" 2>/dev/null
  ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del $ns 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
nsx="ip netns exec $ns"
time_dns() { $nsx python3 bench/jitsu/dnstime.py "$@"; }
# Milliseconds in column 3 of dnstime's output on stdin: "min / median / max".
stats() { awk '$3 != "-" { print $3 }' | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.1f / %.1f / %.1f", a[1], a[int((NR + 1) / 2)], a[NR]; else print "none" }'; }
kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

cargo build --release -q -p jitsu
image=$(cargo run -q -p xtask -- build dns | tail -1)
echo "## The floor and the DNS image alone (cargo xtask bench-dns-vm $runs)"
echo
cargo run -q -p xtask -- bench-dns-vm "$runs"
echo

ip netns del $ns 2>/dev/null || true
ip netns add $ns
$nsx ip link set lo up
$nsx ip link add jbr0 type bridge
$nsx ip addr add 10.78.0.1/16 dev jbr0
$nsx ip link set jbr0 up
cat > "$work/bench.zone" <<'ZONE'
$ORIGIN jitsu.bench.
$TTL 300
@ IN SOA ns.jitsu.bench. admin.jitsu.bench. 1 3600 600 86400 60
@ IN NS ns
ns IN A 10.78.0.1
plain IN A 10.78.0.99
ZONE
ip_of() { echo "10.78.$((1 + $1 / 200)).$((10 + $1 % 200))"; }
args=()
for i in $(seq 1 "$vms"); do
  args+=("--unikernel=u$i.jitsu.bench=$image,ip=$(ip_of "$i")/16,mem=$mem")
done
mem_available() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }
avail0=$(mem_available)
$nsx target/release/jitsu --listen 10.78.0.1:53 --bridge jbr0 --launcher qemu --zone "jitsu.bench=$work/bench.zone" \
  --idle-stop 3600 --max-running "$vms" --log=warn "${args[@]}" > "$work/jitsu.log" 2>&1 &
jitsu_pid=$!
for _ in $(seq 100); do echo "10.78.0.1 plain.jitsu.bench" | time_dns 1 0.1 | grep -q NOERROR && break; sleep 0.1; done

echo "## Jitsu: $runs cold starts and warm answers (microvm, TCG, -m $mem MiB)"
echo
for i in $(seq 1 "$runs"); do echo "10.78.0.1 u$i.jitsu.bench"; done | time_dns 1 30 > "$work/cold"
for i in $(seq 1 "$runs"); do echo "10.78.0.1 u$i.jitsu.bench"; done | time_dns 1 5 > "$work/warm"
for i in $(seq 1 "$runs"); do echo "10.78.0.1 plain.jitsu.bench"; done | time_dns 1 5 > "$work/plain"
bad=$(awk '$4 != "NOERROR" || $5 == "-"' "$work/cold" "$work/warm")
[ -z "$bad" ] || { echo "failed answers: $bad" >&2; tail "$work/jitsu.log" >&2; exit 1; }
echo "| query | min / median / max (ms) |"
echo "|---|---|"
echo "| stopped unikernel's name → A answer (cold start: boot + ready) | $(stats < "$work/cold") |"
echo "| running unikernel's name → A answer (warm) | $(stats < "$work/warm") |"
echo "| an ordinary name in Jitsu's zone | $(stats < "$work/plain") |"
echo

echo "## Density: $vms idle DNS unikernels at once (-m $mem MiB each)"
echo
for i in $(seq $((runs + 1)) "$vms"); do echo "10.78.0.1 u$i.jitsu.bench"; done | time_dns 4 60 > "$work/boots"
failed=$(awk '$4 != "NOERROR" || $5 == "-"' "$work/boots" | wc -l)
qemus=$(ip netns pids $ns | while read -r p; do grep -qx 'qemu-system-x86' "/proc/$p/comm" 2>/dev/null && echo "$p"; done)
count=$(echo "$qemus" | grep -c . || true)
sleep "$idle"
rss=0; pss=0; ticks0=0
for p in $qemus; do
  rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
  pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
  ticks0=$((ticks0 + $(awk '{print $14 + $15}' "/proc/$p/stat")))
done
sleep 5
ticks1=0
for p in $qemus; do ticks1=$((ticks1 + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
avail1=$(mem_available)
for i in $(seq 1 "$vms"); do echo "$(ip_of "$i") www.example.com"; done | time_dns 1 10 > "$work/direct"
answered=$(awk '$4 == "NOERROR"' "$work/direct" | wc -l)
hz=$(getconf CLK_TCK)
echo "| figure | value |"
echo "|---|---|"
echo "| unikernels booted through Jitsu / running (QEMU processes) | $((vms - failed)) of $vms / $count |"
echo "| idle VMs answering a direct query after $idle s idle | $answered of $vms |"
echo "| first answer after idling, min / median / max (ms) | $(stats < "$work/direct") |"
echo "| host memory per idle VM: QEMU RSS (guest memory included) | $(kib $((rss / count))) |"
echo "| host memory per idle VM: QEMU PSS (shared pages split) | $(kib $((pss / count))) |"
echo "| host memory per idle VM: MemAvailable drop / VMs | $(kib $(((avail0 - avail1) / count))) |"
echo "| CPU of all $count idle VMs together (% of one core, 5 s) | $(awk -v t=$((ticks1 - ticks0)) -v hz="$hz" 'BEGIN { printf "%.1f", t * 100 / hz / 5 }') |"
echo "| VMs this host could hold by memory (MemAvailable at start / PSS per VM) | $((avail0 / (pss / count))) |"
