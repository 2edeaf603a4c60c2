#!/usr/bin/env bash
# DNS scaling: zones of 10, 10,000 and 1,000,000 records (A records under
# one origin), each loaded from its zone file by Morgana DNS (hosted,
# release) and NSD, in one run: load time (start -> first answer), memory
# (resident set; Morgana's heap in use too) and dnsperf queries/s for
# names spread over the zone (one server thread on core 0, dnsperf on
# core 1). Prints a Markdown table.
#
#   bench/dns/scaling.sh [SECONDS] [SIZES...]   (default 5 s; 10 10000 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 10000 1000000)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.3; rm -rf "$work"' EXIT

cargo build --release -q -p dns
. bench/dns/common.sh
now_ms() { date +%s%3N; }
rss_kib() { local t=0 p; for p in $1; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
wait_answer() { # port
  until dig @127.0.0.1 -p "$1" +tries=1 +time=1 +short scale.test SOA 2>/dev/null | grep -q hostmaster; do sleep 0.01; done
}
qps() { # port
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$secs" -c 1 -q 200 2>/dev/null \
    | awk '/Queries per second/ {printf "%.0f", $4}'
}

echo "| records | zone file (bytes) | load, Morgana / NSD (ms) | resident, Morgana / NSD (KiB) | Morgana heap in use (KiB) | Morgana heap / file | queries/s, Morgana / NSD | Morgana / NSD |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  zone="$work/scale.test.zone"
  { printf '$ORIGIN scale.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 600 60 3600 60\n@ NS ns1\nns1 A 192.0.2.1\n'
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }'
  } > "$zone"
  bytes=$(stat -c %s "$zone")
  awk -v n="$n" 'BEGIN { srand(7); for (i = 0; i < 10000; i++) printf "h%d.scale.test A\n", int(rand() * n) }' > "$work/queries.txt"

  port=$(free_port)
  start=$(now_ms)
  taskset -c 0 target/release/dns --listen "127.0.0.1:$port" --rrl-rate 0 --memory-report 1 \
    --zone "scale.test.=$zone" 2> "$work/morgana.log" &
  pid=$!
  wait_answer "$port"
  m_load=$(( $(now_ms) - start ))
  sleep 1.2
  m_rss=$(rss_kib "$pid")
  m_heap=$(grep -o 'in use [0-9]* KiB' "$work/morgana.log" | tail -1 | awk '{print $3}')
  m_qps=$(qps "$port")
  kill "$pid"; wait "$pid" 2>/dev/null || true

  port=$(free_port)
  nsd_conf "$port" "$work" "scale.test=scale.test.zone"
  start=$(now_ms)
  taskset -c 0 nsd -d -c "$work/nsd.conf" 2>/dev/null &
  wait_answer "$port"
  n_load=$(( $(now_ms) - start ))
  sleep 1
  pids=$(pgrep -f "nsd -d -c $work/nsd.conf" | tr '\n' ' ')
  n_rss=$(rss_kib "$pids")
  n_qps=$(qps "$port")
  # shellcheck disable=SC2086
  kill $pids
  while pgrep -f "nsd -d -c $work/nsd.conf" >/dev/null; do sleep 0.1; done

  per_file=$(awk -v h="$m_heap" -v b="$bytes" 'BEGIN { printf "%.1f", h * 1024 / b }')
  ratio=$(awk -v a="$m_qps" -v b="$n_qps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  echo "| $n | $bytes | $m_load / $n_load | $m_rss / $n_rss | $m_heap | $per_file | $m_qps / $n_qps | $ratio |"
done
