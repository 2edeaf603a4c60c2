#!/usr/bin/env bash
# DNS benchmark: dnsperf against Morgana DNS (hosted, release) and NSD, one
# server thread each, the same zone and query file, in one run; Knot too if
# installed. Prints a Markdown table with the ratios.
#
#   bench/dns/run.sh [SECONDS]      (default 10 s per server)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
zones=tests/dns/zones
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p dns
# A query mix: hits, CNAME chains, NODATA, NXDOMAIN, wildcards, referrals.
for n in example.com www.example.com web.example.com mail.example.com ns1.example.com chain1.example.com \
         foo.wild.example.com x.sub.example.com nothere.example.com _sip._tcp.example.com host.example.net \
         www.child.example.net nope.example.net; do
  for t in A AAAA MX TXT; do echo "$n $t"; done
done > "$work/queries.txt"

. bench/dns/common.sh


# Runs dnsperf against port $1 while measuring server pid $2's CPU time;
# prints "qps queries-per-CPU-second".
measure() {
  local before after qps
  before=$(cpu_ticks "$2")
  qps=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$secs" -c 1 -q 200 2>/dev/null \
    | awk '/Queries per second/ {print $4}')
  after=$(cpu_ticks "$2")
  awk -v q="$qps" -v t=$((after - before)) -v s="$secs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { cpu = t / hz; printf "%.0f %.0f\n", q, (cpu > 0 ? q * s / cpu : 0) }'
}

m_port=$(free_port)
args=()
for z in example.com example.net child.example.net; do args+=(--zone "$z.=$zones/$z.zone"); done
# Rate limiting off, as for NSD below: dnsperf is one source.
taskset -c 0 target/release/dns --listen "127.0.0.1:$m_port" --log=warn --rrl-rate 0 "${args[@]}" &
m_pid=$!
sleep 0.5
read -r morgana morgana_eff < <(measure "$m_port" "$m_pid")

n_port=$(free_port)
nsd_conf "$n_port" "$PWD/$zones" example.com=example.com.zone example.net=example.net.zone child.example.net=child.example.net.zone
taskset -c 0 nsd -d -c "$work/nsd.conf" &
sleep 1
# NSD forks (main, xfrd, one server): count them all.
n_pids=$(pgrep -f "nsd -d -c $work/nsd.conf" | tr '\n' ' ')
read -r nsd nsd_eff < <(measure "$n_port" "$n_pids")

knot="n/a"; knot_eff="n/a"
if command -v knotd >/dev/null; then
  k_port=$(free_port)
  mkdir -p "$work/knot"
  { printf 'server:\n  listen: 127.0.0.1@%s\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n  rundir: "%s"\ndatabase:\n  storage: "%s"\nzone:\n' "$k_port" "$work/knot" "$work/knot"
    for z in example.com example.net child.example.net; do printf '  - domain: %s\n    file: "%s/%s.zone"\n' "$z" "$PWD/$zones" "$z"; done; } > "$work/knot.conf"
  taskset -c 0 knotd -c "$work/knot.conf" &
  k_pid=$!
  sleep 1
  read -r knot knot_eff < <(measure "$k_port" "$k_pid")
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "| server (1 thread on core 0; dnsperf on core 1) | queries/s | Morgana / this | queries per server CPU-second | Morgana / this |"
echo "|---|---|---|---|---|"
echo "| Morgana DNS (hosted, host sockets) | $morgana | 1.00 | $morgana_eff | 1.00 |"
echo "| NSD $(nsd -v 2>&1 | head -1 | awk '{print $3}') | $nsd | $(ratio "$morgana" "$nsd") | $nsd_eff | $(ratio "$morgana_eff" "$nsd_eff") |"
echo "| Knot DNS $(knotd -V 2>/dev/null | awk '{print $NF}') | $knot | $(ratio "$morgana" "$knot") | $knot_eff | $(ratio "$morgana_eff" "$knot_eff") |"
