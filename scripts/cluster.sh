#!/usr/bin/env bash
# Runs the cluster topology of docker-compose.yml on loopback, without containers: N clinvoker
# instances and nginx in front of them, which sends every turn of a conversation to the same
# instance (see "Running several instances" in the README).
#
#   ./scripts/cluster.sh --instances N --port P [--config FILE] [--binary FILE] [--workdir DIR] [--ready-timeout SECS]
#
# - the load balancer listens on 127.0.0.1:P; each instance on a free loopback port, named
#   instance-1..N (x-clinvoker-instance), with its own state_dir, FILE and this environment
#   (keys, backends: CLINVOKER_API_KEYS, CLINVOKER_ADMIN_KEYS, CLINVOKER__SECTION__KEY, ...);
# - the binary is --binary, else target/release/clinvoker, else target/debug/clinvoker;
# - logs, nginx's configuration, pid file and temporary paths go to --workdir (kept), else to a
#   temporary directory removed when the cluster stops cleanly;
# - prints "cluster: ready" once every instance answers /ready (within --ready-timeout, default
#   60 s) and nginx listens, then stays in the foreground. An instance that exits is reported and
#   its conversations move to the others; if nginx exits, everything stops. SIGTERM or Ctrl-C
#   stops everything this script started.
#
# Needs Debian's nginx and libnginx-mod-http-js (apt-get install nginx libnginx-mod-http-js).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
if (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 501 )); then
  echo "cluster: needs bash 5.1 or later (wait -n -p)" >&2
  exit 2
fi

instances=3 port="" config="" binary="" workdir="" ready_timeout=60
usage() {
  sed -n '6p' "$0" | sed 's/^# *//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --instances) instances="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --ready-timeout) ready_timeout="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "cluster: unknown argument $1" >&2; usage ;;
  esac
done
[[ "$port" =~ ^[1-9][0-9]*$ ]] || usage
[[ "$instances" =~ ^[1-9][0-9]*$ ]] || { echo "cluster: --instances must be a positive number" >&2; exit 2; }
if [ -z "$binary" ]; then
  for candidate in "$repo/target/release/clinvoker" "$repo/target/debug/clinvoker"; do
    if [ -x "$candidate" ]; then binary="$candidate"; break; fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "cluster: no clinvoker binary; run cargo build --release or pass --binary" >&2
  exit 2
fi
config_args=()
if [ -n "$config" ]; then
  [ -r "$config" ] || { echo "cluster: cannot read $config" >&2; exit 2; }
  config_args=(--config "$(cd "$(dirname "$config")" && pwd)/$(basename "$config")")
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "cluster: 127.0.0.1:$port is already in use" >&2
  exit 2
fi
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$nginx" ] || { echo "cluster: nginx is missing: apt-get install nginx libnginx-mod-http-js" >&2; exit 2; }

# The instances' settings (FILE and this environment; an invalid one stops here): nginx's limits
# and the stop deadline follow them.
effective="$("$binary" config "${config_args[@]}")"
setting() { printf '%s\n' "$effective" | grep -m1 -o "\"$1\": [0-9]*" | grep -o '[0-9]*$'; }
max_body="$(setting max_body_bytes)"
read_timeout=$(( $(setting request_timeout_secs) + 30 ))
stop_timeout=$(( $(setting shutdown_grace_secs) + 10 ))

own_workdir=false
if [ -z "$workdir" ]; then
  workdir="$(mktemp -d -t clinvoker-cluster.XXXXXX)"
  own_workdir=true
fi
mkdir -p "$workdir"
workdir="$(cd "$workdir" && pwd)"

# Children die with this script even if it is killed outright (where setpriv can arrange it).
spawn=()
if setpriv --pdeathsig TERM true 2>/dev/null; then spawn=(setpriv --pdeathsig TERM --); fi

say() { printf 'cluster: %s\n' "$*"; }

# name -> pid of what is still running
declare -A running=()
nginx_pid=""

stop_all() {
  # nginx stops listening and lets the answers in flight finish; so do the instances.
  if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
  for name in "${!running[@]}"; do
    [ "$name" = nginx ] || kill -TERM "${running[$name]}" 2>/dev/null || true
  done
  # The instances finish their running turns within server.shutdown_grace_secs.
  local deadline=$((SECONDS + stop_timeout))
  for name in "${!running[@]}"; do
    local pid="${running[$name]}"
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop in time; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

on_exit() {
  local status=$?
  trap - TERM INT EXIT
  stop_all
  if [ "$status" = 0 ] && $own_workdir; then
    rm -rf "$workdir"
  else
    say "logs kept in $workdir"
  fi
  exit "$status"
}
trap on_exit EXIT
trap 'say "stopping"; exit 0' TERM INT

# GET a path on a loopback port with bash alone; prints the status code (or nothing).
http_status() {
  local port=$1 path=$2 line
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 0
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  IFS=' ' read -r -t 5 _ line _ <&3 || true
  exec 3>&-
  printf '%s' "$line"
}

declare -A ports=()
for i in $(seq 1 "$instances"); do
  name="instance-$i"
  dir="$workdir/$name"
  mkdir -p "$dir/state"
  : >"$dir/stdout.log"
  CLINVOKER__SERVER__INSTANCE_NAME="$name" CLINVOKER__SERVER__STATE_DIR="$dir/state" \
    "${spawn[@]}" "$binary" serve "${config_args[@]}" --host 127.0.0.1 --port 0 \
    >"$dir/stdout.log" 2>"$dir/stderr.log" </dev/null &
  running[$name]=$!
done

# Each instance prints its address once bound, then warms its pools.
deadline=$((SECONDS + ready_timeout))
for i in $(seq 1 "$instances"); do
  name="instance-$i"
  dir="$workdir/$name"
  while :; do
    if line="$(grep -m1 -o 'listening on http://127.0.0.1:[0-9]*' "$dir/stdout.log")"; then
      ports[$name]="${line##*:}"
      [ "$(http_status "${ports[$name]}" /ready)" = 200 ] && break
    fi
    if ! kill -0 "${running[$name]}" 2>/dev/null; then
      say "$name exited at startup; its log ($dir/stderr.log) ends:"
      tail -n 20 "$dir/stderr.log" >&2
      unset "running[$name]"
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "$name was not ready within ${ready_timeout}s (see $dir/stderr.log)"
      exit 1
    fi
    sleep 0.1
  done
  say "$name http://127.0.0.1:${ports[$name]} pid ${running[$name]} (logs: $dir)"
done

lb="$workdir/lb"
mkdir -p "$lb"
upstreams=()
for i in $(seq 1 "$instances"); do upstreams+=("127.0.0.1:${ports[instance-$i]}"); done
"$repo/deploy/nginx/render.sh" --listen "127.0.0.1:$port" --runtime-dir "$lb" \
  --max-body-bytes "$max_body" --read-timeout-secs "$read_timeout" "${upstreams[@]}" >"$lb/nginx.conf"
"${spawn[@]}" "$nginx" -p "$lb" -c "$lb/nginx.conf" -e "$lb/error.log" </dev/null &
nginx_pid=$!
running[nginx]=$nginx_pid
until [ -n "$(http_status "$port" /health)" ]; do
  if ! kill -0 "$nginx_pid" 2>/dev/null; then
    say "nginx exited at startup:"
    tail -n 20 "$lb/error.log" >&2
    unset "running[nginx]"
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    say "nginx did not answer on 127.0.0.1:$port (see $lb/error.log)"
    exit 1
  fi
  sleep 0.1
done
say "load balancer http://127.0.0.1:$port pid $nginx_pid (logs: $lb)"
say "ready"

# Foreground until stopped: report what exits.
while :; do
  exited=""
  set +e
  wait -n -p exited "${running[@]}" 2>/dev/null
  status=$?
  set -e
  [ -n "$exited" ] || continue
  for name in "${!running[@]}"; do
    [ "${running[$name]}" = "$exited" ] || continue
    unset "running[$name]"
    if [ "$name" = nginx ]; then
      nginx_pid=""
      say "nginx (pid $exited) exited with status $status; stopping the instances"
      exit 1
    fi
    say "$name (pid $exited) exited with status $status; its conversations continue on the other instances"
  done
  if [ ${#running[@]} -le 1 ]; then
    say "no instance left; stopping"
    exit 1
  fi
done
