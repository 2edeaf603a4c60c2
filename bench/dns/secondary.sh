#!/usr/bin/env bash
# Secondary benchmark: Morgana (hosted, release), NSD and Knot as
# secondaries of one Knot primary, in one run, TSIG on every transfer:
#   * the first transfer of a zone of RECORDS records (start -> serial 1
#     served, each secondary started alone);
#   * NOTIFY -> new serial served: one record changed on the primary
#     (IXFR), all three notified at once, each polled every 5 ms.
# Prints a Markdown table with the ratios.
#
#   bench/dns/secondary.sh [RECORDS] [ROUNDS]   (default 100000 records, 5 rounds)
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${1:-100000}
rounds=${2:-5}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.2; rm -rf "$work"' EXIT
secret=$(head -c 32 /dev/urandom | base64)

cargo build --release -q -p dns
. bench/dns/common.sh
p_port=$(free_port); m_port=$(free_port); n_port=$(free_port); k_port=$(free_port)

zone() { # serial
  printf '$ORIGIN bench.test.\n$TTL 300\n@ SOA ns1 hostmaster %s 600 60 3600 60\n@ NS ns1\nns1 A 192.0.2.1\nchanged A 192.0.2.%s\n' "$1" "$(( $1 % 250 + 1 ))"
  awk -v n="$records" 'BEGIN { for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256 }'
}

# The primary.
mkdir -p "$work/primary"
zone 1 > "$work/primary/bench.test.zone"
cat > "$work/primary.conf" <<CONF
server:
  listen: 127.0.0.1@$p_port
  rundir: "$work/primary"
database:
  storage: "$work/primary"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: $secret
remote:
  - id: morgana
    address: 127.0.0.1@$m_port
    key: xfr
  - id: nsd
    address: 127.0.0.1@$n_port
    key: xfr
  - id: knot
    address: 127.0.0.1@$k_port
    key: xfr
acl:
  - id: xfr
    key: xfr
    action: transfer
zone:
  - domain: bench.test
    storage: "$work/primary"
    file: bench.test.zone
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    notify: [morgana, nsd, knot]
    acl: xfr
CONF
knotd -c "$work/primary.conf" 2>/dev/null &
sleep 2

# Polls port $1 until it serves serial $2; prints the milliseconds since $3
# (a time.monotonic() value, or "now").
cat > "$work/poll.py" <<'PY'
import socket, struct, sys, time
port, want, since = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.monotonic() if since == "now" else float(since)
q = struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x05bench\x04test\x00" + struct.pack(">HH", 6, 1)

def skip_name(m, p):
    while True:
        n = m[p]
        if n == 0: return p + 1
        if n & 0xC0 == 0xC0: return p + 2
        p += 1 + n

def serial(m):
    if len(m) < 12 or m[3] & 15 != 0 or struct.unpack(">H", m[6:8])[0] == 0: return None
    p = skip_name(m, 12) + 4          # the question
    p = skip_name(m, p) + 10          # the first answer's owner, type, class, TTL, length
    p = skip_name(m, skip_name(m, p)) # MNAME, RNAME
    return struct.unpack(">I", m[p:p + 4])[0]

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.05)
while time.monotonic() - t0 < 300:
    try:
        s.sendto(q, ("127.0.0.1", port))
        if serial(s.recv(4096)) == want:
            print("%.0f" % ((time.monotonic() - t0) * 1000)); sys.exit(0)
    except (OSError, IndexError, struct.error):
        pass
    time.sleep(0.005)
print("timeout"); sys.exit(1)
PY
poll() { python3 "$work/poll.py" "$@"; }

# The secondaries, each started alone: the first transfer.
t0=$(python3 -c 'import time; print(time.monotonic())')
target/release/dns --listen "127.0.0.1:$m_port" --log="${MORGANA_LOG:-warn}" --tsig-key "xfr=hmac-sha256:$secret" \
  --secondary "bench.test=127.0.0.1:$p_port,key=xfr" &
m_pid=$!
m_first=$(poll "$m_port" 1 "$t0")

mkdir -p "$work/nsd"
cat > "$work/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$n_port
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$work/nsd"
  database: ""
  zonelistfile: "$work/nsd/zone.list"
  xfrdfile: "$work/nsd/xfrd.state"
  xfrdir: "$work/nsd"
  pidfile: "$work/nsd/nsd.pid"
  verbosity: 0
remote-control:
  control-enable: no
key:
  name: "xfr"
  algorithm: hmac-sha256
  secret: "$secret"
zone:
  name: "bench.test"
  zonefile: "bench.test.zone"
  request-xfr: 127.0.0.1@$p_port xfr
  allow-notify: 127.0.0.1 xfr
CONF
t0=$(python3 -c 'import time; print(time.monotonic())')
nsd -d -c "$work/nsd.conf" 2>/dev/null &
n_first=$(poll "$n_port" 1 "$t0")

mkdir -p "$work/knot"
cat > "$work/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$k_port
  rundir: "$work/knot"
database:
  storage: "$work/knot"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: $secret
remote:
  - id: primary
    address: 127.0.0.1@$p_port
    key: xfr
acl:
  - id: notify
    address: 127.0.0.1
    key: xfr
    action: notify
zone:
  - domain: bench.test
    storage: "$work/knot"
    master: primary
    acl: notify
    zonefile-sync: -1
CONF
t0=$(python3 -c 'import time; print(time.monotonic())')
knotd -c "$work/knot.conf" 2>/dev/null &
k_first=$(poll "$k_port" 1 "$t0")
m_rss=$(awk '/VmRSS/ {print $2}' "/proc/$m_pid/status" 2>/dev/null || echo n/a)

# NOTIFY rounds: one changed record each.
m_sum=0; n_sum=0; k_sum=0
for r in $(seq 2 $((rounds + 1))); do
  zone "$r" > "$work/primary/bench.test.zone"
  t0=$(python3 -c 'import time; print(time.monotonic())')
  knotc -c "$work/primary.conf" zone-reload bench.test >/dev/null
  poll "$m_port" "$r" "$t0" > "$work/m" & a=$!
  poll "$n_port" "$r" "$t0" > "$work/n" & b=$!
  poll "$k_port" "$r" "$t0" > "$work/k" & c=$!
  wait $a $b $c
  m_sum=$((m_sum + $(cat "$work/m"))); n_sum=$((n_sum + $(cat "$work/n"))); k_sum=$((k_sum + $(cat "$work/k")))
  sleep 1.5
done
m_notify=$((m_sum / rounds)); n_notify=$((n_sum / rounds)); k_notify=$((k_sum / rounds))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }'; }
echo
echo "Zone of $records records; Knot $(knotd -V 2>/dev/null | awk '{print $NF}') primary; TSIG hmac-sha256; $rounds NOTIFY rounds."
echo
echo "| secondary | first transfer (ms) | this / Morgana | NOTIFY -> new serial served, mean (ms) | this / Morgana |"
echo "|---|---|---|---|---|"
echo "| Morgana DNS (hosted) | $m_first | 1.00 | $m_notify | 1.00 |"
echo "| NSD $(nsd -v 2>&1 | head -1 | awk '{print $3}') | $n_first | $(ratio "$m_first" "$n_first") | $n_notify | $(ratio "$m_notify" "$n_notify") |"
echo "| Knot DNS $(knotd -V 2>/dev/null | awk '{print $NF}') | $k_first | $(ratio "$m_first" "$k_first") | $k_notify | $(ratio "$m_notify" "$k_notify") |"
echo
echo "Morgana's resident memory with the zone: $m_rss KiB."
