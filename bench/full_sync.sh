#!/usr/bin/env bash
# bench/full_sync.sh [N] — tfsyncd's full sync of N PACS parcels (default 100000) against
# the physical limit, as ratios measured in one run on one machine.
#
# The limit is PostgreSQL moving the same rows with the mapping written in SQL
# (tests/integration/sql/pacs_to_cama_*.sql): `COPY (query) TO STDOUT | COPY ... FROM STDIN`,
# which no sync tool can beat. Two scenarios:
#   initial  an empty CAMA; limit: plain COPY into pardat and asmt;
#   update   CAMA already populated and every source parcel changed in a way that changes
#            its pardat and its asmt row; limit: COPY into a temporary table, then
#            INSERT ... ON CONFLICT DO UPDATE.
# Each is repeated REPS times (default 3) and medians are quoted, with tfsyncd's peak RSS
# (VmHWM). A third column is the peer, bench/peers/pacs_to_cama.py: the Python script a
# county would write instead (the same SQL mapping through a server-side cursor,
# execute_values upserts of 5,000 rows per transaction), into its own CAMA; it needs
# psycopg2 (Debian's python3-psycopg2, installed when run as root). Uses the PostgreSQL of
# scripts/pg.sh and the databases bench_pacs, bench_cama, bench_cama_limit, bench_cama_peer
# and bench_tfsync, which it recreates. Env: REPS, BATCH (batch_size, default 1000), PEER
# (0 skips the peer), TFS_BUILD_DIR (default build/), TFS_BENCH_TIMEOUT (seconds per run,
# default 3600).
set -euo pipefail

TFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TFS_TAG=bench
# shellcheck source=scripts/lib.sh
source "$TFS_ROOT/scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$TFS_ROOT/bench/lib.sh"
cd "$TFS_ROOT"

readonly N="${1:-100000}"
readonly REPS="${REPS:-3}"
readonly BATCH="${BATCH:-1000}"
readonly PEER="${PEER:-1}"
readonly ROLL_YEAR=2026
readonly TIMEOUT_S="${TFS_BENCH_TIMEOUT:-3600}"
build="${TFS_BUILD_DIR:-$TFS_ROOT/build}"
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || { tfs_say "usage: $0 [N parcels]"; exit 2; }
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { tfs_say "REPS must be a positive number"; exit 2; }
[[ "$PEER" == 0 || "$PEER" == 1 ]] || { tfs_say "PEER must be 0 or 1"; exit 2; }

readonly PARDAT_COLS="parid, taxyr, seq, cur, class, luc, nbhd, acres, adrno, adradd, adrdir, adrstr, adrsuf, unitno, cityname, statecode, postalcode, zoning, deactivat"
readonly ASMT_COLS="parid, taxyr, seq, cur, valclass, valapr1, valapr2, valapr3, valasm1, valasm2, valasm3, deactivat"

work=""
pg_started=0
bench_traps

for f in tests/integration/sql/pacs_to_cama_pardat.sql tests/integration/sql/pacs_to_cama_asmt.sql \
    plugins/pacs/schema.sql plugins/pacs/generate.sql plugins/cama/schema.sql; do
    [[ -f "$f" ]] || tfs_fail "missing $f"
done
TFS_BUILD_DIR="$build" bash scripts/build.sh
[[ -x "$build/tfsyncd" ]] || tfs_fail "no $build/tfsyncd after the build"
if ((PEER)); then bench_python_psycopg2; fi

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tfsync-bench.XXXXXX")


# copy_out TABLE: the SQL mapping for TABLE as COPY ... TO STDOUT, run on bench_pacs. Fed
# through stdin because psql substitutes :roll_year there and not in -c.
copy_out() {
    { echo "COPY ("; cat "tests/integration/sql/pacs_to_cama_$1.sql"; echo ") TO STDOUT"; } |
        psql_ -d bench_pacs -v roll_year="$ROLL_YEAR"
}

# limit_insert: both tables into an empty bench_cama_limit; prints milliseconds.
limit_insert() {
    psql_ -d bench_cama_limit -c "TRUNCATE pardat, asmt"
    local t0
    t0=$(now_ms)
    copy_out pardat | psql_ -d bench_cama_limit -c "COPY pardat ($PARDAT_COLS) FROM STDIN"
    copy_out asmt | psql_ -d bench_cama_limit -c "COPY asmt ($ASMT_COLS) FROM STDIN"
    echo $(($(now_ms) - t0))
}

# upsert_session TABLE COLS: psql arguments for one session that COPYs stdin into a
# temporary table, then upserts it on TABLE's primary key (the temporary table lives as
# long as its session). Sets UPSERT_ARGS.
upsert_session() {
    local table=$1 cols=$2 key set
    key=$(psql_ -At -d bench_cama_limit -v t="$table" <<'EOF'
SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = :'t'::regclass AND i.indisprimary
EOF
)
    [[ -n "$key" ]] || tfs_fail "$table has no primary key to upsert on"
    set=$(tr -d ' ' <<<"$cols" | tr ',' '\n' | grep -vxF -f <(tr -d ' ' <<<"$key" | tr ',' '\n') |
        awk '{ printf "%s%s = EXCLUDED.%s", (NR > 1 ? ", " : ""), $1, $1 }')
    UPSERT_ARGS=(-d bench_cama_limit
        -c "CREATE TEMP TABLE s AS SELECT $cols FROM $table WITH NO DATA"
        -c "COPY s FROM STDIN"
        -c "INSERT INTO $table ($cols) SELECT $cols FROM s ON CONFLICT ($key) DO UPDATE SET $set")
}

# limit_upsert: both tables into the populated bench_cama_limit; prints milliseconds.
limit_upsert() {
    local t0 pardat asmt
    upsert_session pardat "$PARDAT_COLS"
    pardat=("${UPSERT_ARGS[@]}")
    upsert_session asmt "$ASMT_COLS"
    asmt=("${UPSERT_ARGS[@]}")
    t0=$(now_ms)
    copy_out pardat | psql_ "${pardat[@]}"
    copy_out asmt | psql_ "${asmt[@]}"
    echo $(($(now_ms) - t0))
}

# Every parcel changes in both targets: zoning flips between null and a value (pardat),
# land value + 1 (asmt). Applied again, it changes everything again.
change_every_parcel() {
    psql_ -d bench_pacs <<EOF
UPDATE property SET zoning = CASE WHEN zoning IS NULL THEN 'Z1' ELSE NULL END;
UPDATE property_val SET land_non_hstd_val = coalesce(land_non_hstd_val, 0) + 1
WHERE prop_val_yr = $ROLL_YEAR;
VACUUM ANALYZE property, property_val;
EOF
}

# daemon_sync: one full run through the API; prints "milliseconds status-json".
daemon_sync() {
    local t0 status
    t0=$(now_ms)
    status=$(tfs_full_sync pacs-to-cama "$TIMEOUT_S")
    [[ "$(json_get "$status" state)" == succeeded ]] || tfs_fail "run failed: $status"
    printf '%s %s\n' $(($(now_ms) - t0)) "$(tr -d '\n' <<<"$status")"
}

# peer_sync: the Python peer into bench_cama_peer (insert or upsert, the same script);
# prints milliseconds, its per-table read/write seconds to stderr.
peer_sync() {
    local t0
    t0=$(now_ms)
    "$BENCH_PY" bench/peers/pacs_to_cama.py --source "$(conninfo bench_pacs)" \
        --target "$(conninfo bench_cama_peer)" --roll-year "$ROLL_YEAR" >/dev/null
    echo $(($(now_ms) - t0))
}

peak_rss_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$TFS_DAEMON_PID/status"
}

start_daemon() {
    tfs_write_config "$work/tfsyncd.json" "$build" bench_pacs bench_cama bench_tfsync \
        "$TFS_KEY_SHA256" "$BATCH"
    tfs_daemon_start "$build" "$work/tfsyncd.json"
}

# A ratio means something only if both sides did the same work: the mapped columns of
# both targets must hold the same rows.
fingerprint() {
    psql_ -At -d "$1" <<EOF
SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, '|' ORDER BY t::text))
FROM (SELECT $PARDAT_COLS FROM pardat) t;
SELECT count(*) || ' rows, md5 ' || md5(string_agg(t::text, '|' ORDER BY t::text))
FROM (SELECT $ASMT_COLS FROM asmt) t;
EOF
}
check_same_rows() { # scenario [database name-in-messages]
    local a b db=${2:-bench_cama} who=${3:-tfsyncd}
    a=$(fingerprint "$db")
    b=$(fingerprint bench_cama_limit)
    if [[ "$a" == "$b" ]]; then
        tfs_say "$1: $who and the limit wrote the same rows ($(head -n 1 <<<"$a" | cut -d, -f1))"
    else
        tfs_say "$1: $who's rows differ from the limit's:"$'\n'"$who: $a"$'\n'"limit:   $b"
        SAME=no
    fi
}
SAME=yes

# ---- set-up ----
tfs_say "generating $N parcels into bench_pacs"
for db in bench_pacs bench_cama bench_cama_limit bench_cama_peer bench_tfsync; do recreate_db "$db"; done
psql_ -d bench_pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d bench_pacs -c "SELECT pacs_generate($N, 42, $ROLL_YEAR)" -c "VACUUM ANALYZE" >/dev/null
for db in bench_cama bench_cama_limit bench_cama_peer; do
    psql_ -d "$db" -v roll_year="$ROLL_YEAR" -f plugins/cama/schema.sql
done
tfs_new_key

# ---- initial: empty target ----
limit_a=() daemon_a=() rss_a=()
for ((r = 1; r <= REPS; r++)); do
    ms=$(limit_insert)
    limit_a+=("$ms")
    tfs_say "initial, limit, rep $r: $(secs "$ms") s"
done
for ((r = 1; r <= REPS; r++)); do
    psql_ -d bench_cama -c "TRUNCATE pardat, asmt"
    recreate_db bench_tfsync
    start_daemon
    out=$(daemon_sync)
    ms=${out%% *} status=${out#* }
    daemon_a+=("$ms")
    rss_a+=("$(peak_rss_kb)")
    tfs_say "initial, tfsyncd, rep $r: $(secs "$ms") s, peak RSS ${rss_a[-1]} kB"
    stages_a=$(bench_timings "$status")
    tfs_say "initial, tfsyncd, rep $r, stages (ms): $stages_a"
    tfs_daemon_stop
done
tfs_print_counts "$status"
check_same_rows initial
peer_a=()
if ((PEER)); then
    for ((r = 1; r <= REPS; r++)); do
        psql_ -d bench_cama_peer -c "TRUNCATE pardat, asmt"
        ms=$(peer_sync)
        peer_a+=("$ms")
        tfs_say "initial, peer, rep $r: $(secs "$ms") s"
    done
    check_same_rows initial bench_cama_peer peer
fi

# ---- update: every row of the populated target changes ----
# Both targets start from the same rows and see the same source changes.
limit_c=() daemon_c=() peer_c=()
start_daemon
for ((r = 1; r <= REPS; r++)); do
    change_every_parcel
    ms=$(limit_upsert)
    limit_c+=("$ms")
    out=$(daemon_sync)
    ms=${out%% *} status=${out#* }
    daemon_c+=("$ms")
    peer_note=""
    if ((PEER)); then
        peer_c+=("$(peer_sync)")
        peer_note=", peer $(secs "${peer_c[-1]}") s"
    fi
    tfs_say "update, rep $r: limit $(secs "${limit_c[-1]}") s, tfsyncd $(secs "$ms") s$peer_note, peak RSS so far $(peak_rss_kb) kB"
    stages_c=$(bench_timings "$status")
    tfs_say "update, rep $r, stages (ms): $stages_c"
done
rss_c=$(peak_rss_kb)
tfs_daemon_stop
tfs_print_counts "$status"
check_same_rows update
((PEER)) && check_same_rows update bench_cama_peer peer

# ---- summary ----
la=$(median "${limit_a[@]}") da=$(median "${daemon_a[@]}") ra=$(median "${rss_a[@]}")
lc=$(median "${limit_c[@]}") dc=$(median "${daemon_c[@]}")
pa="" pc=""
if ((PEER)); then pa=$(median "${peer_a[@]}") pc=$(median "${peer_c[@]}"); fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }'; }
row() { # label limit_ms daemon_ms rss_kb [peer_ms]
    printf '%-10s %10s %12s %8s %14s %10s' "$1" "$(secs "$2")" "$(secs "$3")" \
        "$(ratio "$3" "$2")" "$((N * 1000 / ($3 > 0 ? $3 : 1)))" "$(($4 / 1024)) MB"
    if [[ -n "${5:-}" ]]; then
        printf ' %10s %12s %14s' "$(secs "$5")" "$(ratio "$5" "$2")" "$(ratio "$5" "$3")"
    fi
    echo
}
echo
echo "full sync of $N parcels, pacs-to-cama, batch $BATCH, medians of $REPS; $(nproc) CPUs; load $(bench_load)"
printf '%-10s %10s %12s %8s %14s %10s' scenario "limit (s)" "tfsyncd (s)" ratio "parcels/s" "peak RSS"
if ((PEER)); then printf ' %10s %12s %14s' "peer (s)" "peer/limit" "peer/tfsyncd"; fi
echo
row initial "$la" "$da" "$ra" "$pa"
row update "$lc" "$dc" "$rss_c" "$pc"
echo "tfsyncd's stages in the last run (cumulative ms per stage; they overlap on their own threads):"
echo "  initial: $stages_a"
echo "  update:  $stages_c"
[[ "$SAME" == yes ]] || { tfs_say "the targets differ: the ratios compare different work"; exit 1; }
