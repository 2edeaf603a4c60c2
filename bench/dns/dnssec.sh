#!/usr/bin/env bash
# Signed-zone benchmark: dnsperf with the DO bit against Morgana DNS
# (hosted, release) and NSD serving the same zone signed at bench time by
# dnssec-signzone (ECDSA P-256, NSEC3), one server thread each, in one run;
# the unsigned zone without DO beside it for the cost of DNSSEC. Prints a
# Markdown table with the ratios.
#
#   bench/dns/dnssec.sh [SECONDS]      (default 10 s per run)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p dns
cp tests/dns/zones/example.com.zone "$work/example.com.zone"
(cd "$work" && dnssec-keygen -q -K . -a ECDSAP256SHA256 -f KSK example.com >/dev/null \
  && dnssec-keygen -q -K . -a ECDSAP256SHA256 example.com >/dev/null \
  && dnssec-signzone -q -S -K . -3 - -o example.com -f example.com.signed example.com.zone >/dev/null)

# Hits, CNAME chains, NODATA, NXDOMAIN (NSEC3 closest-encloser proofs),
# wildcards and referrals (with DS or its NSEC3 proof).
for n in example.com www.example.com web.example.com mail.example.com ns1.example.com chain1.example.com \
         foo.wild.example.com x.sub.example.com nothere.example.com _sip._tcp.example.com; do
  for t in A AAAA MX TXT; do echo "$n $t"; done
done > "$work/queries.txt"

. bench/dns/common.sh

# dnsperf against port $1 (extra flags $3) while measuring pids $2's CPU;
# prints "qps queries-per-CPU-second".
measure() {
  local before after qps
  before=$(cpu_ticks "$2")
  # shellcheck disable=SC2086
  qps=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$secs" -c 1 -q 200 $3 2>/dev/null \
    | awk '/Queries per second/ {print $4}')
  after=$(cpu_ticks "$2")
  awk -v q="$qps" -v t=$((after - before)) -v s="$secs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { cpu = t / hz; printf "%.0f %.0f\n", q, (cpu > 0 ? q * s / cpu : 0) }'
}

# Each server: the signed zone with DO, then the unsigned zone without.
run_morgana() { # zone file, dnsperf flags
  local port pid
  port=$(free_port)
  taskset -c 0 target/release/dns --listen "127.0.0.1:$port" --log=warn --rrl-rate 0 --zone "example.com.=$1" &
  pid=$!
  sleep 0.5
  measure "$port" "$pid" "$2"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run_nsd() { # zone file, dnsperf flags
  local port pids
  port=$(free_port)
  nsd_conf "$port" "$work" "example.com=$1"
  taskset -c 0 nsd -d -c "$work/nsd.conf" &
  sleep 1
  pids=$(pgrep -f "nsd -d -c $work/nsd.conf" | tr '\n' ' ')
  measure "$port" "$pids" "$2"
  # shellcheck disable=SC2086
  kill $pids
  while pgrep -f "nsd -d -c $work/nsd.conf" >/dev/null; do sleep 0.1; done
}

read -r m_do m_do_eff < <(run_morgana "$work/example.com.signed" "-D")
read -r n_do n_do_eff < <(run_nsd "$work/example.com.signed" "-D")
read -r m_plain m_plain_eff < <(run_morgana "$work/example.com.zone" "")
read -r n_plain n_plain_eff < <(run_nsd "$work/example.com.zone" "")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "| example.com (1 server thread on core 0; dnsperf on core 1) | Morgana queries/s | NSD queries/s | Morgana / NSD | Morgana / NSD per server CPU-second |"
echo "|---|---|---|---|---|"
echo "| signed (NSEC3, ECDSA P-256), DO bit set | $m_do | $n_do | $(ratio "$m_do" "$n_do") | $(ratio "$m_do_eff" "$n_do_eff") |"
echo "| unsigned, no DO | $m_plain | $n_plain | $(ratio "$m_plain" "$n_plain") | $(ratio "$m_plain_eff" "$n_plain_eff") |"
