#!/usr/bin/env bash
# Web benchmark: wrk against Morgana web (hosted, release) and nginx (one
# worker), the same files and certificate, one run: a small file and a
# 1 MiB file over HTTP and HTTPS keep-alive; a fresh connection per
# request with wrk (which offers each connection's last session again: its
# handshakes are resumed ones); and TLS 1.3 handshakes with openssl s_time,
# full (-new) and resumed (-reuse). Both servers resume sessions (nginx: a
# shared session cache and tickets). Servers on core 0, clients on core 1.
# Every row also gives requests per second of the server's own CPU time.
#
#   bench/web/run.sh [SECONDS]     (default 10 s per measurement)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as another user
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release -q -p web
mkdir -p "$work/site"
cp -r apps/web/site/. "$work/site/"
head -c $((1024 * 1024)) /dev/urandom > "$work/site/big.bin"
chmod -R a+rX "$work/site"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
m_http=$(free_port); m_https=$(free_port); n_http=$(free_port); n_https=$(free_port)

taskset -c 0 target/release/web --http "127.0.0.1:$m_http" --https "127.0.0.1:$m_https" --site "$work/site" \
  --cert "$work/cert.pem" --key "$work/key.pem" --log=warn &
m_pid=$!
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  sendfile on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$n_http;
    listen 127.0.0.1:$n_https ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets on;
    root $work/site;
  }
}
CONF
taskset -c 0 nginx -c "$work/nginx.conf"
sleep 1

n_pid=$(pgrep -P "$(cat "$work/nginx.pid")")  # the one worker

# Each measurement gives requests/s and requests per second of the
# server's CPU time (utime + stime from /proc): the first is bounded by
# whatever else runs on a busy machine, the second much less so.
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_cpu() { # count pid ticks-before -> count per CPU second
  awk -v n="$1" -v t="$(( $(ticks "$2") - $3 ))" -v hz="$hz" 'BEGIN { if (t > 0) printf "%.0f", n * hz / t; else print "n/a" }'
}
rps() { # pid url [extra wrk args] -> "requests/s requests/CPU-s" (fails on error responses)
  local pid=$1 out t0 n
  shift
  t0=$(ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"${CONNS:-32}" -d"${secs}s" "$@" 2>&1)
  if grep -q "Non-2xx" <<<"$out"; then echo "error responses from $1" >&2; exit 1; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(per_cpu "$n" "$pid" "$t0")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { # label "m-rate m-per-cpu" "n-rate n-per-cpu"
  local mr mc nr nc
  read -r mr mc <<<"$2"
  read -r nr nc <<<"$3"
  echo "| $1 | $mr | $nr | $(ratio "$mr" "$nr") | $mc | $nc | $(ratio "$mc" "$nc") |"
}

echo "| test (wrk: 1 thread, 32 connections) | Morgana /s | nginx /s | Morgana / nginx | Morgana per CPU-s | nginx per CPU-s | Morgana / nginx (CPU) |"
echo "|---|---|---|---|---|---|---|"
for row in "small file, HTTP|http|index.html" "1 MiB file, HTTP|http|big.bin" \
           "small file, HTTPS|https|index.html" "1 MiB file, HTTPS|https|big.bin"; do
  IFS='|' read -r label scheme file <<<"$row"
  if [ "$scheme" = http ]; then mp=$m_http; np=$n_http; else mp=$m_https; np=$n_https; fi
  m=$(rps "$m_pid" "$scheme://127.0.0.1:$mp/$file")
  n=$(rps "$n_pid" "$scheme://127.0.0.1:$np/$file")
  row "$label" "$m" "$n"
done
m=$(CONNS=8 rps "$m_pid" "https://127.0.0.1:$m_https/index.html" -H "Connection: close")
n=$(CONNS=8 rps "$n_pid" "https://127.0.0.1:$n_https/index.html" -H "Connection: close")
row "a connection per request, sessions resumed (wrk, Connection: close, 8 connections)" "$m" "$n"

handshakes() { # pid port -new|-reuse -> "TLS 1.3 handshakes (and a GET)/s, per CPU-s", one client
  local out n marks t0
  t0=$(ticks "$1")
  out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$2" "$3" -time "$secs" -www /index.html 2>&1)
  n=$(awk '/connections in .* real seconds/ {n = $1} END {print n}' <<<"$out")
  if [ -z "$n" ]; then echo "s_time on port $2 failed: $out" >&2; exit 1; fi
  # One mark per connection: r = resumed, anything else a full handshake.
  marks=$(grep -E '^[rt3*]+$' <<<"$out" | tr -d '\n')
  if [ "$3" = -reuse ] && [ "$(tr -cd r <<<"$marks" | wc -c)" -lt $((n - 1)) ]; then
    echo "port $2: sessions not resumed" >&2; exit 1
  fi
  if [ "$3" = -new ] && [ "$(tr -cd r <<<"$marks" | wc -c)" -gt 0 ]; then
    echo "port $2: -new resumed a session" >&2; exit 1
  fi
  echo "$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.1f", n / s }') $(per_cpu "$n" "$1" "$t0")"
}
for row in "full TLS 1.3 handshakes (openssl s_time -new, 1 client)|-new" \
           "resumed TLS 1.3 handshakes (openssl s_time -reuse, 1 client)|-reuse"; do
  IFS='|' read -r label mode <<<"$row"
  m=$(handshakes "$m_pid" "$m_https" "$mode")
  n=$(handshakes "$n_pid" "$n_https" "$mode")
  row "$label" "$m" "$n"
done
