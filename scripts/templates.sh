# scripts/templates.sh — the template databases tests clone, shared by scripts/test.sh and
# the fault suite's runner (tests/fault/run.sh). Sourced, not run; uses the server of the
# PG* variables in the environment and expects ROLL_YEAR to be set.
# shellcheck shell=bash

# Notices ("does not exist, skipping") are noise here.
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# make_template NAME SQL [FILE...]: a database with FILEs loaded and SQL run, built under a
# temporary name and renamed, so tests never clone a half-made template. Kept as long as
# its inputs are unchanged (their hash is the database's comment): seeding 10,000 parcels
# on every run would cost more than most tests.
make_template() {
    local name=$1 sql=$2 f
    shift 2
    for f in "$@"; do
        [[ -f "$f" ]] || { echo "templates.sh: missing $f, needed for template $name" >&2; return 1; }
    done
    local hash
    hash=$({ echo "v1 $ROLL_YEAR $sql"; cat "$@" /dev/null; } | sha256sum | cut -c1-64)
    local current
    current=$(psql_ -At -d postgres -v name="$name" <<'EOF'
SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :'name'
EOF
)
    if [[ "$current" == "$hash" && "${TFS_REBUILD_TEMPLATES:-0}" != 1 ]]; then
        echo "templates.sh: template $name is up to date" >&2
        return 0
    fi
    echo "templates.sh: seeding template $name" >&2
    local tmp="${name}_new"
    psql_ -d postgres -c "DROP DATABASE IF EXISTS \"$tmp\" WITH (FORCE)" \
        -c "CREATE DATABASE \"$tmp\""
    for f in "$@"; do
        psql_ -d "$tmp" -v roll_year="$ROLL_YEAR" -f "$f"
    done
    if [[ -n "$sql" ]]; then
        psql_ -d "$tmp" -c "$sql" >/dev/null
    fi
    # Frozen and analysed once here, so no clone starts with autovacuum work or no stats.
    psql_ -d "$tmp" -c "VACUUM (FREEZE, ANALYZE)"
    psql_ -d postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" \
        -c "ALTER DATABASE \"$tmp\" RENAME TO \"$name\"" \
        -c "COMMENT ON DATABASE \"$name\" IS '$hash'"
}

# make_gis_templates: the small PACS and GIS pair the GIS tests clone: 300 PACS parcels
# and the parcel layer of the same county (gis_generate makes a shape for each of their
# real properties, PARCELID = simple_geo_id), seed 42. PostGIS comes with schema.sql.
make_gis_templates() {
    make_template tfs_tmpl_pacs300 "SELECT pacs_generate(300, 42, $ROLL_YEAR)" \
        plugins/pacs/schema.sql plugins/pacs/generate.sql
    make_template tfs_tmpl_gis300 "SELECT gis_generate(300, 42)" \
        plugins/gis/schema.sql plugins/gis/generate.sql
}

# Databases tfs_test_db_clone made for tests that crashed before their clean-up: the name
# ends in _<pid>_<counter>_<hex>, and a pid that no longer runs will never drop it.
sweep_stale_clones() {
    local db pid
    while read -r db; do
        pid=$(sed -E 's/.*_([0-9]+)_[0-9]+_[0-9a-f]{4}$/\1/' <<<"$db")
        [[ -d "/proc/$pid" ]] && continue # alive (kill -0 fails for other users)
        psql_ -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    done < <(psql_ -At -d postgres -c "SELECT datname FROM pg_database WHERE datname ~ '_[0-9]+_[0-9]+_[0-9a-f]{4}$'")
}
