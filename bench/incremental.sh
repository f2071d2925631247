#!/usr/bin/env bash
# bench/incremental.sh [N] — tfsyncd's incremental sync of a few changed parcels out of N
# (default 1,000,000), against its own full sync of the same N.
#
# Generates N PACS parcels, syncs them fully into an empty CAMA through the HTTP API (timed
# once), then REPS times (default 3): changes CHANGES properties (default 10,000; at most N)
# spread evenly over the county, with one SQL statement per table:
#   property_val  2/5 of them: land value + 1 on every 2026 row (asmt changes)
#   situs         2/5: a new street name on every situs row (pardat changes)
#   address       1/5: a new mailing address for every account owning them (owndat of
#                 every property those accounts own changes)
# and times the incremental run that follows, through the API. Prints the time (the run's
# own, created_at to finished_at, and the wall time from POST to seeing it finished), the
# records per second, and the ratio incremental / full. The aim: under one second for
# 10,000 changes out of 1,000,000.
#
# Then, as the yardstick of "its cost follows the changes", REPS full syncs of a county of
# CHANGES parcels into an empty CAMA: the incremental run should cost no more (ratio at
# most 1.0x). The pair maps property -> pardat, asmt, owner -> owndat and sale -> sales.
# Each run's per-stage timings are printed. Uses the PostgreSQL of scripts/pg.sh and the
# databases bench_inc_pacs, bench_inc_cama, bench_inc_tfsync and bench_inc_small_*, which
# it recreates. Env: CHANGES, REPS, BATCH
# (batch_size, default 1000), TFS_BUILD_DIR (default build/), TFS_BENCH_TIMEOUT (seconds per
# run, default 3600).
set -euo pipefail

TFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TFS_TAG=bench
# shellcheck source=scripts/lib.sh
source "$TFS_ROOT/scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$TFS_ROOT/bench/lib.sh"
cd "$TFS_ROOT"

readonly N="${1:-1000000}"
readonly REPS="${REPS:-3}"
readonly BATCH="${BATCH:-1000}"
readonly ROLL_YEAR=2026
readonly TIMEOUT_S="${TFS_BENCH_TIMEOUT:-3600}"
build="${TFS_BUILD_DIR:-$TFS_ROOT/build}"
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || { tfs_say "usage: $0 [N parcels]"; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { tfs_say "REPS must be a positive number"; exit 2; }
CHANGES="${CHANGES:-10000}"
[[ "$CHANGES" =~ ^[1-9][0-9]*$ ]] || { tfs_say "CHANGES must be a positive number"; exit 2; }
((CHANGES <= N)) || CHANGES=$N
readonly STEP=$((N / CHANGES)) # every STEP-th prop_id changes
readonly CHANGES=$((N / STEP))

work=""
pg_started=0
bench_traps

for f in plugins/pacs/schema.sql plugins/pacs/generate.sql plugins/cama/schema.sql \
    transforms/pacs_to_cama.lua transforms/pacs_owner_to_cama.lua transforms/pacs_sale_to_cama.lua; do
    [[ -f "$f" ]] || tfs_fail "missing $f"
done
owner_entity=',
                          {"source": "owner", "targets": ["owndat"], "script": "pacs_owner_to_cama.lua"},
                          {"source": "sale", "targets": ["sales"], "script": "pacs_sale_to_cama.lua"}'
TFS_BUILD_DIR="$build" bash scripts/build.sh
[[ -x "$build/tfsyncd" ]] || tfs_fail "no $build/tfsyncd after the build"

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tfsync-bench-inc.XXXXXX")


# write_config PACS_DB CAMA_DB STATE_DB
write_config() {
    cat >"$work/tfsyncd.json" <<EOF
{
  "listen": {"address": "127.0.0.1", "port": 0, "ready_file": "tfsyncd.ready"},
  "state": {"conninfo": "$(conninfo "$3")"},
  "plugin_dir": "$build/plugins",
  "transform_dir": "$TFS_ROOT/transforms",
  "roll_year": $ROLL_YEAR,
  "workers": 2,
  "api_keys": [{"name": "bench", "role": "operate", "sha256": "$TFS_KEY_SHA256"}],
  "systems": {
    "pacs": {"plugin": "pacs", "settings": {"conninfo": "$(conninfo "$1")"}},
    "cama": {"plugin": "cama", "settings": {"conninfo": "$(conninfo "$2")"}}
  },
  "pairs": [{"name": "pacs-to-cama", "source": "pacs", "target": "cama", "batch_size": $BATCH,
             "entities": [{"source": "property", "targets": ["pardat", "asmt"],
                           "script": "pacs_to_cama.lua"}$owner_entity]}]
}
EOF
}

# run_sync MODE: one run through the API, polled every 10 ms; prints "wall_ms run_ms status".
# run_ms is the run's own time (created_at to finished_at, from the state store), so the
# polling does not count.
run_sync() {
    local mode=$1 t0 answer run_id status state deadline run_ms
    t0=$(now_ms)
    answer=$(tfs_api POST "/sync/$mode" '{"pair": "pacs-to-cama"}')
    run_id=$(json_get "$answer" run_id)
    [[ "$run_id" =~ ^[0-9]+$ ]] || tfs_fail "POST /sync/$mode gave no run_id: $answer"
    deadline=$((SECONDS + TIMEOUT_S))
    while :; do
        status=$(tfs_api GET "/sync/status/$run_id")
        state=$(json_get "$status" state)
        [[ "$state" == succeeded || "$state" == failed ]] && break
        ((SECONDS < deadline)) || tfs_fail "run $run_id still $state after $TIMEOUT_S s"
        kill -0 "$TFS_DAEMON_PID" 2>/dev/null || tfs_fail "tfsyncd died during run $run_id"
        sleep 0.01
    done
    local wall=$(($(now_ms) - t0))
    [[ "$state" == succeeded ]] || tfs_fail "$mode run $run_id failed: $status"
    run_ms=$(psql_ -At -d postgres -v j="$status" <<'EOF'
SELECT round(extract(epoch FROM ((:'j'::jsonb ->> 'finished_at')::timestamptz
                                 - (:'j'::jsonb ->> 'created_at')::timestamptz)) * 1000)::bigint
EOF
)
    printf '%s %s %s\n' "$wall" "$run_ms" "$(tr -d '\n' <<<"$status")"
}

# sum_counts STATUS FIELD: FIELD summed over the run's entities.
sum_counts() {
    psql_ -At -d postgres -v j="$1" -v f="$2" <<'EOF'
SELECT coalesce(sum((e.value ->> :'f')::bigint), 0) FROM jsonb_each((:'j'::jsonb) -> 'counts') e
EOF
}

# change REP: CHANGES properties change, one statement per table, each different per rep.
change() {
    psql_ -d bench_inc_pacs -v rep="$1" -v step="$STEP" -v yr="$ROLL_YEAR" <<'EOF'
UPDATE property_val SET land_non_hstd_val = land_non_hstd_val + 1
WHERE prop_val_yr = :yr AND prop_id % :step = 0 AND (prop_id / :step) % 5 IN (0, 1);
UPDATE situs SET situs_street = 'BENCH ' || :rep || ' ' || prop_id
WHERE prop_id % :step = 0 AND (prop_id / :step) % 5 IN (2, 3);
UPDATE address SET addr_line1 = 'PO BOX ' || :rep || '-' || acct_id
WHERE acct_id IN (SELECT owner_id FROM owner
                  WHERE owner_tax_yr = :yr AND prop_id % :step = 0 AND (prop_id / :step) % 5 = 4);
EOF
}

# ---- set-up ----
tfs_say "generating $N parcels into bench_inc_pacs"
for db in bench_inc_pacs bench_inc_cama bench_inc_tfsync; do recreate_db "$db"; done
psql_ -d bench_inc_pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d bench_inc_pacs -c "SELECT pacs_generate($N, 42, $ROLL_YEAR)" -c "VACUUM ANALYZE" >/dev/null
psql_ -d bench_inc_cama -f plugins/cama/schema.sql
tfs_new_key
write_config bench_inc_pacs bench_inc_cama bench_inc_tfsync
tfs_daemon_start "$build" "$work/tfsyncd.json"

# ---- the full sync, once ----
out=$(run_sync full)
read -r full_wall full_ms full_status <<<"$out"
tfs_say "full sync of $N parcels: $(secs "$full_ms") s (wall $(secs "$full_wall") s)"
tfs_print_counts "$full_status"
psql_ -d bench_inc_cama -c "VACUUM ANALYZE" >/dev/null

# ---- incremental runs ----
inc_ms=() inc_wall=()
for ((r = 1; r <= REPS; r++)); do
    change "$r"
    out=$(run_sync incremental)
    read -r wall ms status <<<"$out"
    inc_ms+=("$ms")
    inc_wall+=("$wall")
    written=$(sum_counts "$status" written)
    read=$(sum_counts "$status" read)
    tfs_say "rep $r: $CHANGES properties changed; incremental $(secs "$ms") s (wall $(secs "$wall") s), read $read, written $written"
    inc_stages=$(bench_timings "$status")
    tfs_say "rep $r, stages (ms): $inc_stages"
    ((written > 0)) || tfs_fail "the incremental run wrote nothing: $status"
done
tfs_print_counts "$status"
tfs_daemon_stop

# ---- the same work as a table: a full sync of CHANGES parcels into an empty CAMA ----
# What an incremental run should cost: its changes, whatever the size of the county.
tfs_say "generating $CHANGES parcels into bench_inc_small_pacs"
for db in bench_inc_small_pacs bench_inc_small_cama; do recreate_db "$db"; done
psql_ -d bench_inc_small_pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d bench_inc_small_pacs -c "SELECT pacs_generate($CHANGES, 42, $ROLL_YEAR)" -c "VACUUM ANALYZE" >/dev/null
psql_ -d bench_inc_small_cama -f plugins/cama/schema.sql
small_ms=()
for ((r = 1; r <= REPS; r++)); do
    psql_ -d bench_inc_small_cama -c "TRUNCATE pardat, asmt, owndat, sales"
    recreate_db bench_inc_small_tfsync
    write_config bench_inc_small_pacs bench_inc_small_cama bench_inc_small_tfsync
    tfs_daemon_start "$build" "$work/tfsyncd.json"
    out=$(run_sync full)
    read -r wall ms status <<<"$out"
    small_ms+=("$ms")
    small_stages=$(bench_timings "$status")
    tfs_say "rep $r: full sync of $CHANGES parcels into an empty CAMA $(secs "$ms") s; stages (ms): $small_stages"
    tfs_daemon_stop
done

# ---- summary ----
im=$(median "${inc_ms[@]}") iw=$(median "${inc_wall[@]}")
echo
echo "incremental sync, pacs-to-cama, $CHANGES of $N parcels changed, batch $BATCH, median of $REPS; $(nproc) CPUs"
printf '%-22s %12s %12s %16s\n' run "time (s)" "wall (s)" "records/s"
printf '%-22s %12s %12s %16s\n' "full ($N)" "$(secs "$full_ms")" "$(secs "$full_wall")" \
    "$((N * 1000 / (full_ms > 0 ? full_ms : 1)))"
printf '%-22s %12s %12s %16s\n' "incremental ($CHANGES)" "$(secs "$im")" "$(secs "$iw")" \
    "$((CHANGES * 1000 / (im > 0 ? im : 1)))"
sm=$(median "${small_ms[@]}")
printf '%-22s %12s %12s %16s\n' "full ($CHANGES parcels)" "$(secs "$sm")" "" \
    "$((CHANGES * 1000 / (sm > 0 ? sm : 1)))"
awk -v i="$im" -v s="$sm" 'BEGIN {
    printf "ratio incremental / full sync of as many parcels: %.2fx (aim: at most 1.0x)\n", (s > 0 ? i / s : 0) }'
echo "stages (ms), last runs: incremental: $inc_stages"
echo "                        full of $CHANGES: $small_stages"
pct=$(awk -v c="$CHANGES" -v n="$N" 'BEGIN { printf "%.2f", 100 * c / n }')
awk -v i="$im" -v f="$full_ms" -v p="$pct" 'BEGIN {
    printf "ratio incremental / full: %.4f (%.1f%% of the full sync time for %s%% of the parcels)\n",
        (f > 0 ? i / f : 0), (f > 0 ? 100 * i / f : 0), p }'
if ((im < 1000)); then
    echo "aim met: $CHANGES changes in under one second"
else
    echo "aim missed: $CHANGES changes took $(secs "$im") s (aim: under 1 s)"
fi
