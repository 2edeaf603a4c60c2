#!/usr/bin/env bash
# Echo benchmark: TCP echo throughput and UDP/TCP round trips per second,
# host sockets vs the direct (smoltcp) stack over a TAP device, both driven
# by the same client in one run. Needs root for the TAP namespace.
#
#   bench/echo/run.sh [SECONDS]     (default 5 s per round-trip measurement)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
bytes=$((100 * 1024 * 1024))
cargo build --release -q -p echo -p morgana-tests --bin echo --bin echo-client
echo_bin=target/release/echo
client=target/release/echo-client
ns=morgana-bench-$$
port=17007

cleanup() {
  [ -n "${host_pid:-}" ] && kill "$host_pid" 2>/dev/null || true
  [ -n "${tap_pid:-}" ] && kill "$tap_pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

measure() { # label, exec-prefix..., addr
  local label=$1 addr=$2; shift 2
  local tput rtt_tcp rtt_udp
  tput=$("$@" "$client" tcp "$addr" "$bytes" | sed -E 's/.*\(([0-9.]+) MiB\/s\).*/\1/')
  rtt_tcp=$("$@" "$client" tcp-rate "$addr" "$secs" | cut -d' ' -f1)
  rtt_udp=$("$@" "$client" udp-rate "$addr" "$secs" | cut -d' ' -f1)
  echo "$label|$tput|$rtt_tcp|$rtt_udp"
}

"$echo_bin" --port "$port" --log=warn & host_pid=$!
sleep 0.5
host=$(measure "host sockets (127.0.0.1)" "127.0.0.1:$port" env)

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip tuntap add dev mtap0 mode tap
ip netns exec "$ns" ip addr add 10.77.0.1/24 dev mtap0
ip netns exec "$ns" ip link set mtap0 up
ip netns exec "$ns" "$echo_bin" --net=tap:mtap0 --ipv4=10.77.0.2/24 --port 7 --log=warn & tap_pid=$!
sleep 0.5
tap=$(measure "direct smoltcp over TAP" "10.77.0.2:7" ip netns exec "$ns")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
IFS='|' read -r _ h1 h2 h3 <<<"$host"
IFS='|' read -r _ t1 t2 t3 <<<"$tap"
echo
echo "| stack | TCP echo MiB/s (100 MiB) | TCP round trips/s (64 B) | UDP round trips/s (8 B) |"
echo "|---|---|---|---|"
echo "| host sockets (127.0.0.1) | $h1 | $h2 | $h3 |"
echo "| direct smoltcp over TAP | $t1 | $t2 | $t3 |"
echo "| direct / host | $(ratio "$t1" "$h1") | $(ratio "$t2" "$h2") | $(ratio "$t3" "$h3") |"
