#!/usr/bin/env bash
# bench/api.sh [N] — tfsyncd's API against a web server serving the same bytes: `GET
# /sync/status` and `GET /health` under `wrk -t2 -c32 -d10s` (with the API key header),
# then the same under nginx on loopback serving each answer as a file with the same
# Content-Type, as ratios measured in one run on one machine.
#
# tfsyncd runs with full_sync.sh's config after one full sync of N parcels (default 1000),
# so that /sync/status has a run to show. Each answer is fetched once, written to a file,
# and nginx serves that file at the same path. nginx runs only while it is measured (tfsyncd
# stays up, idle, meanwhile); each pair of measurements alternates the two. Medians of REPS
# (default 3) and the machine's load (/proc/loadavg) before each measurement. Uses the
# PostgreSQL of scripts/pg.sh and the databases bench_pacs, bench_cama and bench_tfsync,
# which it recreates. Needs wrk and nginx (Debian packages wrk, nginx-light or nginx;
# installed when run as root). Env: REPS, DURATION (wrk's -d, default 10s), CONNECTIONS
# (wrk's -c, default 32), THREADS (wrk's -t, default 2), TFS_BUILD_DIR (default build/).
set -euo pipefail

TFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TFS_TAG=bench-api
# shellcheck source=scripts/lib.sh
source "$TFS_ROOT/scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$TFS_ROOT/bench/lib.sh"
cd "$TFS_ROOT"

readonly N="${1:-1000}"
readonly REPS="${REPS:-3}"
readonly DURATION="${DURATION:-10s}"
readonly CONNECTIONS="${CONNECTIONS:-32}"
readonly THREADS="${THREADS:-2}"
readonly ROLL_YEAR=2026
build="${TFS_BUILD_DIR:-$TFS_ROOT/build}"
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || { tfs_say "usage: $0 [N parcels]"; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { tfs_say "REPS must be a positive number"; exit 2; }

work=""
pg_started=0
nginx_pid=""
nginx_stop() {
    [[ -n "$nginx_pid" ]] || return 0
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
}
BENCH_CLEANUP_HOOK=nginx_stop
bench_traps

bench_need_cmd wrk wrk
if ! command -v nginx >/dev/null 2>&1 && [[ -x /usr/sbin/nginx ]]; then PATH=$PATH:/usr/sbin; fi
bench_need_cmd nginx nginx-light nginx
TFS_BUILD_DIR="$build" bash scripts/build.sh
[[ -x "$build/tfsyncd" ]] || tfs_fail "no $build/tfsyncd after the build"

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tfsync-bench-api.XXXXXX")
# nginx's workers drop root for nobody: they must be able to read the files.
chmod 755 "$work"

recreate_db() {
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

# ---- set-up: a daemon with one finished run ----
tfs_say "generating $N parcels and syncing them once"
for db in bench_pacs bench_cama bench_tfsync; do recreate_db "$db"; done
psql_ -d bench_pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d bench_pacs -c "SELECT pacs_generate($N, 42, $ROLL_YEAR)" -c "VACUUM ANALYZE" >/dev/null
psql_ -d bench_cama -v roll_year="$ROLL_YEAR" -f plugins/cama/schema.sql
tfs_new_key
tfs_write_config "$work/tfsyncd.json" "$build" bench_pacs bench_cama bench_tfsync "$TFS_KEY_SHA256"
tfs_daemon_start "$build" "$work/tfsyncd.json"
status=$(tfs_full_sync pacs-to-cama 600)
[[ "$(json_get "$status" state)" == succeeded ]] || tfs_fail "the set-up run failed: $status"

# ---- the same bytes as files ----
# fetch PATH NAME: the answer's body into www/NAME and its Content-Type into ctype_NAME.
mkdir -p "$work/www" "$work/nginx"
fetch() {
    local path=$1 name=$2 code
    code=$(curl -sS --noproxy '*' -H "Authorization: Bearer $TFS_KEY" -o "$work/www/$name" \
        -D "$work/hdr_$name" -w '%{http_code}' "$TFS_BASE_URL$path")
    [[ "$code" == 200 ]] || tfs_fail "GET $path answered $code"
    tr -d '\r' <"$work/hdr_$name" | awk 'tolower($1) == "content-type:" { sub(/^[^:]*: */, ""); print; exit }' \
        >"$work/ctype_$name"
    [[ -s "$work/ctype_$name" ]] || tfs_fail "GET $path has no Content-Type"
    tfs_say "GET $path: $(stat -c %s "$work/www/$name") bytes, $(cat "$work/ctype_$name")"
}
fetch /sync/status status
fetch /health health
chmod 644 "$work"/www/*

nginx_port=$(bench_free_port)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 1000000;
    types { }
    server {
        listen 127.0.0.1:$nginx_port;
        location = /sync/status { default_type "$(cat "$work/ctype_status")"; alias $work/www/status; }
        location = /health { default_type "$(cat "$work/ctype_health")"; alias $work/www/health; }
    }
}
EOF

nginx_start() {
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>>"$work/nginx/error.log" &
    nginx_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$nginx_port/health" && return 0
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/nginx/error.log" >&2
    tfs_fail "nginx did not answer on 127.0.0.1:$nginx_port"
}
# The same bytes: nginx's answer to each path is the file tfsyncd gave.
nginx_start
for name in status health; do
    path=/sync/status
    [[ $name == health ]] && path=/health
    curl -sS --noproxy '*' -o "$work/check" "http://127.0.0.1:$nginx_port$path"
    cmp -s "$work/check" "$work/www/$name" || tfs_fail "nginx's $path differs from tfsyncd's"
done
nginx_stop

# wrk_rps URL: one wrk run; prints requests/s (fails on socket errors or non-2xx answers).
wrk_rps() {
    local out rps
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $TFS_KEY" "$1")
    echo "$out" >>"$work/wrk.log"
    if grep -q 'Non-2xx or 3xx responses\|Socket errors' <<<"$out"; then
        tfs_say "wrk $1 had errors:"$'\n'"$out"
        WRK_ERRORS=yes
    fi
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    [[ -n "$rps" ]] || tfs_fail "wrk printed no Requests/sec:"$'\n'"$out"
    echo "$rps"
}
WRK_ERRORS=no

declare -A rps_t rps_n
for ((r = 1; r <= REPS; r++)); do
    for path in /sync/status /health; do
        load_t=$(bench_load)
        t=$(wrk_rps "$TFS_BASE_URL$path")
        nginx_start
        load_n=$(bench_load)
        n=$(wrk_rps "http://127.0.0.1:$nginx_port$path")
        nginx_stop
        rps_t[$path]="${rps_t[$path]:-} $t"
        rps_n[$path]="${rps_n[$path]:-} $n"
        tfs_say "rep $r, GET $path: tfsyncd $t req/s (load $load_t), nginx $n req/s (load $load_n)"
    done
done

echo
echo "API, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, medians of $REPS; $(nproc) CPUs; load now $(bench_load)"
printf '%-14s %8s %14s %14s %8s\n' path bytes "tfsyncd req/s" "nginx req/s" ratio
for path in /sync/status /health; do
    name=status
    [[ $path == /health ]] && name=health
    # shellcheck disable=SC2086  # the lists are space-separated numbers
    t=$(bench_median_f ${rps_t[$path]}) n=$(bench_median_f ${rps_n[$path]})
    printf '%-14s %8s %14.0f %14.0f %8s\n' "$path" "$(stat -c %s "$work/www/$name")" "$t" "$n" \
        "$(awk -v a="$t" -v b="$n" 'BEGIN { printf "%.3fx", (b > 0 ? a / b : 0) }')"
done
[[ "$WRK_ERRORS" == no ]] || { tfs_say "some wrk runs had errors (above)"; exit 1; }
