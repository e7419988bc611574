#!/usr/bin/env bash
# Renders clinvoker.conf.template (beside this script) into an nginx.conf on stdout, for the
# clinvoker instances given as HOST:PORT arguments. Used by scripts/cluster.sh and by the load
# balancer's container in docker-compose.yml, so both run the same configuration.
#
#   render.sh --listen ADDR:PORT --runtime-dir DIR [options] HOST:PORT...
#
#   --runtime-dir DIR        pid file and temporary paths (created)
#   --error-log PATH         default DIR/error.log ("stderr" in a container)
#   --access-log PATH|off    default DIR/access.log ("/dev/stdout" in a container)
#   --max-body-bytes N       the instances' server.max_body_bytes (default 33554432)
#   --read-timeout-secs N    longer than the instances' server.request_timeout_secs (default 330)
#   --connect-timeout-secs N default 2
#   --fail-timeout-secs N    how long a failed instance is left out (default 5)
#   --workers N|auto         default auto
#   --modules-dir DIR        where ngx_http_js_module.so is (default /usr/lib/nginx/modules)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

listen="" runtime="" error_log="" access_log="" max_body=33554432 read_timeout=330
connect_timeout=2 fail_timeout=5 workers=auto modules=/usr/lib/nginx/modules
instances=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) listen="$2"; shift 2 ;;
    --runtime-dir) runtime="$2"; shift 2 ;;
    --error-log) error_log="$2"; shift 2 ;;
    --access-log) access_log="$2"; shift 2 ;;
    --max-body-bytes) max_body="$2"; shift 2 ;;
    --read-timeout-secs) read_timeout="$2"; shift 2 ;;
    --connect-timeout-secs) connect_timeout="$2"; shift 2 ;;
    --fail-timeout-secs) fail_timeout="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --modules-dir) modules="$2"; shift 2 ;;
    -*) echo "render.sh: unknown option $1" >&2; exit 2 ;;
    *) instances+=("$1"); shift ;;
  esac
done
if [ -z "$listen" ] || [ -z "$runtime" ] || [ ${#instances[@]} -eq 0 ]; then
  echo "usage: render.sh --listen ADDR:PORT --runtime-dir DIR [options] HOST:PORT..." >&2
  exit 2
fi
mkdir -p "$runtime"
error_log="${error_log:-$runtime/error.log}"
access_log="${access_log:-$runtime/access.log}"
[ "$access_log" = off ] || access_log="$access_log clinvoker"

servers=""
for instance in "${instances[@]}"; do
  servers+="        server $instance max_fails=1 fail_timeout=${fail_timeout}s;"$'\n'
done

# Plain substitution (no sed): paths may hold any character sed would treat specially.
conf="$(cat "$here/clinvoker.conf.template")"
conf="${conf//@MODULES_DIR@/$modules}"
conf="${conf//@WORKERS@/$workers}"
conf="${conf//@RUNTIME_DIR@/$runtime}"
conf="${conf//@ERROR_LOG@/$error_log}"
conf="${conf//@ACCESS_LOG@/$access_log}"
conf="${conf//@JS_DIR@/$here}"
conf="${conf//@MAX_BODY_BYTES@/$max_body}"
conf="${conf//@SERVERS@/${servers%$'\n'}}"
conf="${conf//@LISTEN@/$listen}"
conf="${conf//@INSTANCES@/${#instances[@]}}"
conf="${conf//@CONNECT_TIMEOUT_SECS@/$connect_timeout}"
conf="${conf//@READ_TIMEOUT_SECS@/$read_timeout}"
printf '%s\n' "$conf"
