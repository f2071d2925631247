#!/usr/bin/env bash
# bench/combined.sh [N] — the API under a steady load during a full sync: tfsyncd's full sync
# of N PACS parcels (default 100000) into an empty CAMA, once alone and once while API
# clients send a fixed total of RATE requests a second (default 200), spread round-robin over
# GET /sync/status, GET /health and GET /sync/status/{the running sync's id}.
#
# The clients are bench/api_load.py (Python's standard library): open loop, so a slow answer
# does not slow the sending, and each latency counts from the moment its request was due.
# Prints the clients' errors, p50/p99/max latency, the sync's time alone and under load (the
# slowdown in %), both runs' per-stage timings (timings_ms), and the CPU seconds of tfsyncd in
# each run and of the clients themselves (on 2 cores the clients' CPU is taken from the sync
# as well, so it is what part of the slowdown is not the daemon's). Each scenario runs REPS times
# (default 1), alternating, and medians are quoted. The aims of issue 13: 0 errors, p99 under
# 50 ms, the sync slowed under 20%. Uses the PostgreSQL of scripts/pg.sh and the databases
# bench_pacs, bench_cama and bench_tfsync, which it recreates. Env: REPS, RATE, BATCH
# (batch_size, default 1000), TFS_BUILD_DIR (default build/), TFS_BENCH_TIMEOUT (seconds per
# run, default 3600).
set -euo pipefail

TFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TFS_TAG=bench-combined
# shellcheck source=scripts/lib.sh
source "$TFS_ROOT/scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$TFS_ROOT/bench/lib.sh"
cd "$TFS_ROOT"

readonly N="${1:-100000}"
readonly REPS="${REPS:-1}"
readonly RATE="${RATE:-200}"
readonly BATCH="${BATCH:-1000}"
readonly ROLL_YEAR=2026
readonly TIMEOUT_S="${TFS_BENCH_TIMEOUT:-3600}"
build="${TFS_BUILD_DIR:-$TFS_ROOT/build}"
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || { tfs_say "usage: $0 [N parcels]"; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { tfs_say "REPS must be a positive number"; exit 2; }
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || { tfs_say "RATE must be a positive number"; exit 2; }

work=""
pg_started=0
client_pid=""
client_stop() {
    [[ -n "$client_pid" ]] || return 0
    kill -TERM "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
    client_pid=""
}
BENCH_CLEANUP_HOOK=client_stop
bench_traps

bench_need_cmd python3 python3
# The interpreter itself, not a version manager's shim, so that the clients start at once.
PY=$(python3 -c 'import sys; print(sys.executable)')
TFS_BUILD_DIR="$build" bash scripts/build.sh
[[ -x "$build/tfsyncd" ]] || tfs_fail "no $build/tfsyncd after the build"

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tfsync-bench-combined.XXXXXX")


# daemon_cpu_s: tfsyncd's CPU seconds so far (user + system).
daemon_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
        "/proc/$TFS_DAEMON_PID/stat"
}

# one_sync LOAD: a full sync into an empty CAMA with a fresh state store and daemon, with
# (LOAD=1) or without API clients; prints "milliseconds" and sets LAST_STATUS, LAST_CLIENT.
one_sync() {
    local load=$1 t0 answer run_id status state deadline ms
    psql_ -d bench_cama -c "TRUNCATE pardat, asmt"
    recreate_db bench_tfsync
    tfs_write_config "$work/tfsyncd.json" "$build" bench_pacs bench_cama bench_tfsync \
        "$TFS_KEY_SHA256" "$BATCH"
    tfs_daemon_start "$build" "$work/tfsyncd.json"
    t0=$(now_ms)
    answer=$(tfs_api POST /sync/full '{"pair": "pacs-to-cama"}')
    run_id=$(json_get "$answer" run_id)
    [[ "$run_id" =~ ^[0-9]+$ ]] || tfs_fail "POST /sync/full gave no run_id: $answer"
    if ((load)); then
        "$PY" bench/api_load.py --url "$TFS_BASE_URL" --key "$TFS_KEY" --rate "$RATE" \
            --path /sync/status --path /health --path "/sync/status/$run_id" \
            --max-seconds "$TIMEOUT_S" >"$work/client.json" &
        client_pid=$!
    fi
    # The same polling in both scenarios (scripts/lib.sh's tfs_sync, split to know the id).
    deadline=$((SECONDS + TIMEOUT_S))
    while :; do
        status=$(tfs_api GET "/sync/status/$run_id")
        state=$(json_get "$status" state)
        case "$state" in succeeded | partial | failed | cancelled | held) break ;; esac
        ((SECONDS < deadline)) || tfs_fail "run $run_id still $state after $TIMEOUT_S s"
        kill -0 "$TFS_DAEMON_PID" 2>/dev/null || tfs_fail "tfsyncd died during run $run_id"
        sleep 0.05
    done
    ms=$(($(now_ms) - t0))
    LAST_DAEMON_CPU=$(daemon_cpu_s)
    if ((load)); then
        kill -TERM "$client_pid"
        wait "$client_pid" || tfs_fail "the API clients failed"
        client_pid=""
        LAST_CLIENT=$(cat "$work/client.json")
    fi
    tfs_daemon_stop
    [[ "$state" == succeeded ]] || tfs_fail "run $run_id ended $state: $status"
    LAST_STATUS=$(tr -d '\n' <<<"$status")
    echo "$ms" >"$work/ms"
}

# ---- set-up ----
tfs_say "generating $N parcels into bench_pacs"
for db in bench_pacs bench_cama bench_tfsync; do recreate_db "$db"; done
psql_ -d bench_pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d bench_pacs -c "SELECT pacs_generate($N, 42, $ROLL_YEAR)" -c "VACUUM ANALYZE" >/dev/null
psql_ -d bench_cama -v roll_year="$ROLL_YEAR" -f plugins/cama/schema.sql
tfs_new_key

alone=() loaded=() p50=() p99=() maxl=() errors=0 sent=0
for ((r = 1; r <= REPS; r++)); do
    load=$(bench_load)
    one_sync 0
    alone+=("$(cat "$work/ms")")
    tfs_say "rep $r, alone: $(secs "${alone[-1]}") s (load before $load), tfsyncd CPU $LAST_DAEMON_CPU s; $(bench_timings "$LAST_STATUS")"
    load=$(bench_load)
    one_sync 1
    loaded+=("$(cat "$work/ms")")
    tfs_say "rep $r, with $RATE req/s: $(secs "${loaded[-1]}") s (load before $load), tfsyncd CPU $LAST_DAEMON_CPU s; $(bench_timings "$LAST_STATUS")"
    tfs_say "rep $r, clients: $LAST_CLIENT"
    # Latencies in microseconds, for the integer median.
    p50+=("$(awk -v v="$(json_get "$LAST_CLIENT" p50_ms)" 'BEGIN { printf "%d", v * 1000 }')")
    p99+=("$(awk -v v="$(json_get "$LAST_CLIENT" p99_ms)" 'BEGIN { printf "%d", v * 1000 }')")
    maxl+=("$(awk -v v="$(json_get "$LAST_CLIENT" max_ms)" 'BEGIN { printf "%d", v * 1000 }')")
    errors=$((errors + $(json_get "$LAST_CLIENT" errors) + $(json_get "$LAST_CLIENT" unanswered)))
    sent=$((sent + $(json_get "$LAST_CLIENT" sent)))
done

a=$(median "${alone[@]}") l=$(median "${loaded[@]}")
us_ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
echo
echo "full sync of $N parcels with API clients at $RATE req/s, batch $BATCH, medians of $REPS; $(nproc) CPUs; load now $(bench_load)"
printf '%-12s %10s %12s %10s %8s %8s %10s %10s %10s\n' "" "alone (s)" "loaded (s)" slowdown \
    requests errors "p50 (ms)" "p99 (ms)" "max (ms)"
printf '%-12s %10s %12s %10s %8s %8s %10s %10s %10s\n' pacs-to-cama "$(secs "$a")" "$(secs "$l")" \
    "$(awk -v a="$a" -v l="$l" 'BEGIN { printf "%.1f%%", (a > 0 ? (l - a) * 100 / a : 0) }')" \
    "$sent" "$errors" "$(us_ms "$(median "${p50[@]}")")" "$(us_ms "$(median "${p99[@]}")")" \
    "$(us_ms "$(median "${maxl[@]}")")"
echo "aims (issue 13): 0 errors, p99 under 50 ms, slowdown under 20%"
