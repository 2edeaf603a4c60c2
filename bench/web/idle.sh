#!/usr/bin/env bash
# Idle keep-alive connections against active throughput: Morgana web
# (hosted, release) and nginx (one worker), the same site and certificate,
# in one run. For 0, 10, 1,000 and 10,000 idle keep-alive connections (each
# has had one answer, then stays silent), over HTTP and over HTTPS: the
# memory each idle connection costs and the requests/s of 32 active wrk
# clients beside them. Prints Markdown tables and draws
# bench/web/idle.svg (requests/s against idle connections).
# Servers on core 0, clients on core 1; bounded: each hold ends by itself.
#
#   bench/web/idle.sh [SECONDS] [REPS]   (default 4 s per wrk run, the
#                                        median of 3 runs per figure)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-4}
reps=${2:-3}
counts=(0 10 1000 10000)
work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as another user
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
# 10,000 held connections and the 32 active ones, in each process.
files=$(ulimit -Hn); [ "$files" != unlimited ] && [ "$files" -lt 10200 ] && { echo "ulimit -Hn is $files: 10,200 needed" >&2; exit 1; }
ulimit -n "$files"

cargo build --release -q -p web
cargo build -q -p morgana-tests --bin conn-hold
hold=target/debug/conn-hold
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod a+r "$work/key.pem" "$work/cert.pem"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The last heap report's "in use" figure in log $1, KiB.
in_use() { grep "heap: in use" "$1" | tail -1 | sed 's/.*in use \([0-9]*\) KiB.*/\1/'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "" }'; }

# Holds $2 idle keep-alive connections to $1 (scheme $3) for at most 300 s
# in the background (pid in $hold_pid); returns once they are open.
hold_open() {
  local out="$work/hold.$RANDOM"
  if [ "$3" = http ]; then
    $hold "$1" "$2" 300 keepalive > "$out" &
  else
    python3 bench/hostile/tls-hold.py "$1" "$2" 300 > "$out" &
  fi
  hold_pid=$!
  for _ in $(seq 3000); do grep -q opened "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q "opened $2 of $2" "$out" || { echo "only $(cat "$out") idle connections to $1" >&2; exit 1; }
  sleep 1.2
}
# url -> requests/s, the median of $reps wrk runs (one run on this machine
# varies by 15 % or more); fails on error responses.
rps() {
  local out all=()
  for _ in $(seq "$reps"); do
    out=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$1" 2>&1)
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "errors from $1: $out" >&2; exit 1; fi
    all+=("$(awk '/Requests\/sec/ {print $2}' <<<"$out")")
  done
  printf '%s\n' "${all[@]}" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# Morgana: a fresh server per point, so each starts from the same heap.
declare -A m_rps m_heap m_rss n_rps n_rss
for scheme in http https; do
  for n in "${counts[@]}"; do
    hp=$(free_port); sp=$(free_port)
    port=$hp; [ $scheme = https ] && port=$sp
    taskset -c 0 target/release/web --http "127.0.0.1:$hp" --https "127.0.0.1:$sp" --cert "$work/cert.pem" \
      --key "$work/key.pem" --max-connections 10100 --idle-timeout 300 --memory-report=1 > "$work/m.log" 2>&1 &
    pid=$!
    sleep 1.5
    h0=$(in_use "$work/m.log"); r0=$(rss $pid)
    [ "$n" -gt 0 ] && hold_open "127.0.0.1:$port" "$n" $scheme
    sleep 1.2
    m_heap[$scheme-$n]=$(per_conn "$h0" "$(in_use "$work/m.log")" "$n")
    m_rss[$scheme-$n]=$(per_conn "$r0" "$(rss $pid)" "$n")
    m_rps[$scheme-$n]=$(rps "$scheme://127.0.0.1:$port/index.html")
    [ "$n" -gt 0 ] && { kill "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true; }
    kill $pid; wait $pid 2>/dev/null || true
  done
done

# nginx, one worker, a fresh one per point for the same reason.
for scheme in http https; do
  for n in "${counts[@]}"; do
    hp=$(free_port); sp=$(free_port)
    port=$hp; [ $scheme = https ] && port=$sp
    cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log warn;
worker_rlimit_nofile $files;
events { worker_connections 10240; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$hp;
    listen 127.0.0.1:$sp ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $(pwd)/apps/web/site;
  }
}
CONF
    taskset -c 0 nginx -c "$work/nginx.conf"
    sleep 0.5
    worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
    r0=$(rss "$worker")
    [ "$n" -gt 0 ] && hold_open "127.0.0.1:$port" "$n" $scheme
    n_rss[$scheme-$n]=$(per_conn "$r0" "$(rss "$worker")" "$n")
    n_rps[$scheme-$n]=$(rps "$scheme://127.0.0.1:$port/index.html")
    [ "$n" -gt 0 ] && { kill "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true; }
    kill "$(cat "$work/nginx.pid")"; sleep 0.3; rm -f "$work/nginx.pid"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "| idle keep-alive connections | scheme | Morgana heap / idle conn (KiB) | Morgana RSS / idle conn (KiB) | nginx RSS / idle conn (KiB) | Morgana req/s (32 active) | vs. 0 idle | nginx req/s (32 active) | vs. 0 idle | Morgana / nginx |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for scheme in http https; do
  for n in "${counts[@]}"; do
    k=$scheme-$n
    echo "| $n | ${scheme^^} | ${m_heap[$k]} | ${m_rss[$k]} | ${n_rss[$k]} | ${m_rps[$k]} | $(ratio "${m_rps[$k]}" "${m_rps[$scheme-0]}") | ${n_rps[$k]} | $(ratio "${n_rps[$k]}" "${n_rps[$scheme-0]}") | $(ratio "${m_rps[$k]}" "${n_rps[$k]}") |"
  done
done
echo
echo "Heap: growth of the allocator's in-use counter (--memory-report) per idle"
echo "connection; RSS: growth of the server process's (nginx: its worker's)"
echo "resident set per idle connection. nginx allocates a connection structure"
echo "for each of its worker_connections at start, which its figure leaves out."

# The plot: requests/s of the 32 active clients against idle connections.
{
  for scheme in http https; do
    for n in "${counts[@]}"; do
      echo "Morgana ${scheme^^} $n ${m_rps[$scheme-$n]}"
      echo "nginx ${scheme^^} $n ${n_rps[$scheme-$n]}"
    done
  done
} | python3 bench/web/plot.py "requests/s of 32 active clients beside idle keep-alive connections" > bench/web/idle.svg
echo
echo "Plot: bench/web/idle.svg"
