# Shared by the DNS benchmarks (sourced; expects $work, a scratch directory).

# A free port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU ticks (user + system) of all processes in the list $1.
# (The command name in /proc/PID/stat may contain spaces: skip past it.)
cpu_ticks() { local t=0 p; for p in $1; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo $t; }

# Writes $work/nsd.conf: an authoritative NSD on 127.0.0.1:$1, one server,
# zone files in $2, rate limiting off; then one zone per NAME=FILE argument.
nsd_conf() {
  local port=$1 dir=$2 z
  shift 2
  cat > "$work/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$port
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$dir"
  database: ""
  zonelistfile: "$work/zone.list"
  xfrdfile: "$work/xfrd.state"
  pidfile: "$work/nsd.pid"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
CONF
  for z in "$@"; do printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "${z%%=*}" "${z#*=}" >> "$work/nsd.conf"; done
}
