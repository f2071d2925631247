#!/usr/bin/env bash
# scripts/demo.sh — the README's first command: PACS -> CAMA and PACS <-> GIS end to end.
#
# Installs what is missing (as root), builds, starts the private PostgreSQL of pg.sh,
# (re)creates the demo databases pacs, cama, gis (PostGIS) and tfsync, fills PACS with N
# parcels (default 10000: `N=100000 scripts/demo.sh`) and GIS with the parcel layer of the
# same county, starts tfsyncd with a fresh random API key, runs a full sync of
# pacs-to-cama through the HTTP API and shows a few CAMA parcels, then the GIS pairs:
# pacs-to-gis and gis-to-pacs full, then both again incrementally (they write nothing:
# no ping-pong), then the ERP pairs: pacs-to-erp (the billing roll published to an outbox
# folder as CSV with manifests) and erp-to-pacs (a dropped payment-status file, one line of
# it malformed, into PACS), then, when the npm test tools are installed (tests/tools:
# json-server), the CRM pairs against a json-server CRM: pacs-to-crm and crm-to-pacs full,
# a clerk's address edit, both incrementally; printing what each run did; and stops
# everything it started, also on failure or Ctrl-C.
set -euo pipefail

TFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TFS_TAG=demo.sh
# shellcheck source=scripts/lib.sh
source "$TFS_ROOT/scripts/lib.sh"
cd "$TFS_ROOT"

build="${TFS_BUILD_DIR:-$TFS_ROOT/build}"
readonly N="${N:-10000}"
readonly ROLL_YEAR=2026
readonly RUN_TIMEOUT_S="${TFS_DEMO_TIMEOUT:-900}"
[[ "$N" =~ ^[0-9]+$ ]] || { tfs_say "N must be a number of parcels, not \"$N\""; exit 2; }

work=""
pg_started=0
crm_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    tfs_daemon_stop
    if [[ -n "$crm_pid" ]]; then
        kill "$crm_pid" 2>/dev/null || true
        wait "$crm_pid" 2>/dev/null || true
    fi
    # Someone else's PostgreSQL (a test run, another demo) stays up.
    if ((pg_started)); then
        bash scripts/pg.sh stop || true
    fi
    if [[ -n "$work" ]]; then
        if ((rc == 0)); then
            rm -rf "$work"
        else
            tfs_say "kept the config and the daemon's log in $work"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash scripts/deps.sh
tfs_say "building $build"
TFS_BUILD_DIR="$build" bash scripts/build.sh
[[ -x "$build/tfsyncd" ]] || tfs_fail "no $build/tfsyncd after the build"
[[ -f "$build/plugins/pacs.so" && -f "$build/plugins/cama.so" && -f "$build/plugins/gis.so" &&
   -f "$build/plugins/erp.so" ]] ||
    tfs_fail "the pacs, cama, gis and erp plugins were not built into $build/plugins"

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"

tfs_say "creating the databases pacs, cama, gis and tfsync"
for db in pacs cama gis tfsync; do
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
psql_ -d pacs -v roll_year="$ROLL_YEAR" -f plugins/pacs/schema.sql -f plugins/pacs/generate.sql
psql_ -d cama -v roll_year="$ROLL_YEAR" -f plugins/cama/schema.sql
psql_ -d gis -f plugins/gis/schema.sql -f plugins/gis/generate.sql
tfs_say "generating $N PACS parcels (seed 42, roll year $ROLL_YEAR)"
psql_ -d pacs -c "SELECT pacs_generate($N, 42, $ROLL_YEAR)" >/dev/null
tfs_say "generating the GIS parcel layer of those parcels (their real property)"
psql_ -d gis -c "SELECT gis_generate($N, 42)" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/tfsync-demo.XXXXXX")

# The CRM: json-server (tests/tools) behind its token-checking proxy, when installed.
crm_url=""
if [[ -f tests/tools/node_modules/json-server/package.json ]] && command -v node >/dev/null; then
    crm_port="${TFS_DEMO_CRM_PORT:-18930}"
    echo '{"contacts": [], "contact_properties": []}' >"$work/crm.json"
    node tests/tools/crm_server.js "$crm_port" "$work/crm.json" demo-crm-token "$work/crm.log" \
        >"$work/crm.out" 2>&1 &
    crm_pid=$!
    for _ in $(seq 1 250); do
        curl -sf -H 'Authorization: Bearer demo-crm-token' \
            "http://127.0.0.1:$crm_port/contacts?_limit=1" >/dev/null 2>&1 && break
        kill -0 "$crm_pid" 2>/dev/null || tfs_fail "the CRM (json-server) did not start: $(cat "$work/crm.out")"
        sleep 0.1
    done
    crm_url="http://127.0.0.1:$crm_port"
    tfs_say "CRM (json-server) on $crm_url"
else
    tfs_say "json-server is not installed (npm ci --prefix tests/tools): skipping the CRM pairs"
fi

tfs_new_key
mkdir -p "$work/erp/outbox" "$work/erp/inbox" "$work/erp/archive"
tfs_write_config "$work/tfsyncd.json" "$build" pacs cama tfsync "$TFS_KEY_SHA256" 1000 \
    "$TFS_ROOT/transforms/pacs_to_cama.rules.json" gis "$work/erp" "$crm_url"
tfs_say "starting tfsyncd"
tfs_daemon_start "$build" "$work/tfsyncd.json"
tfs_say "tfsyncd listening on $TFS_BASE_URL; starting a full sync of pacs-to-cama"

started=$(now_ms)
status=$(tfs_full_sync pacs-to-cama "$RUN_TIMEOUT_S")
elapsed_ms=$(($(now_ms) - started))
run_id=$(json_get "$status" run_id)
state=$(json_get "$status" state)

echo
printf 'Run %s: %s in %d.%03d s (%d parcels/s)\n' "$run_id" "$state" \
    $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) $((N * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))
tfs_print_counts "$status"
if [[ "$state" != succeeded ]]; then
    tfs_say "run $run_id failed: $status"
    tfs_daemon_log_tail
    exit 1
fi

echo "A few CAMA parcels (pardat joined with asmt):"
psql_ -d cama <<'EOF'
SELECT p.parid, p.taxyr, p.class, p.luc, p.nbhd, p.acres,
       concat_ws(' ', p.adrno, p.adrdir, p.adrstr, p.adrsuf) AS situs, p.cityname,
       a.valclass, a.valapr1 AS land, a.valapr2 AS building, a.valapr3 AS total
FROM pardat p
JOIN asmt a ON a.parid = p.parid AND a.taxyr = p.taxyr
ORDER BY p.parid
LIMIT 5;
SELECT (SELECT count(*) FROM pardat) AS pardat_rows, (SELECT count(*) FROM asmt) AS asmt_rows;
EOF

# PACS <-> GIS: attributes onto the parcels, computed area and centroid back, then the
# same again incrementally, which must find nothing to send either way.
gis_run() {
    local mode=$1 pair=$2 st
    st=$(tfs_sync "$mode" "$pair" "$RUN_TIMEOUT_S")
    echo
    printf '%s %s: run %s %s\n' "$pair" "$mode" "$(json_get "$st" run_id)" "$(json_get "$st" state)"
    tfs_print_counts "$st"
    [[ "$(json_get "$st" state)" == succeeded ]] || tfs_fail "the $mode run of $pair did not succeed: $st"
}
shapes_before=$(psql_ -At -d gis -c "SELECT md5(string_agg(md5(ST_AsBinary(shape)), ',' ORDER BY \"PARCELID\")) FROM taxparcel")
gis_run full pacs-to-gis
gis_run full gis-to-pacs
gis_run incremental pacs-to-gis
gis_run incremental gis-to-pacs
shapes_after=$(psql_ -At -d gis -c "SELECT md5(string_agg(md5(ST_AsBinary(shape)), ',' ORDER BY \"PARCELID\")) FROM taxparcel")
[[ "$shapes_before" == "$shapes_after" ]] || tfs_fail "a GIS shape changed during the attribute sync"
echo
echo "Every GIS shape is byte-identical after the sync (md5 $shapes_after). A few parcels:"
psql_ -d gis <<'EOF'
SELECT "PARCELID", "SITEADDRESS", "OWNERNME1", "USECD", "NGHBRHDCD", "LNDVALUE", "IMPVALUE"
FROM taxparcel ORDER BY "PARCELID" LIMIT 5;
EOF
echo "What PACS keeps of them (property_gis):"
psql_ -d pacs <<'EOF'
SELECT simple_geo_id, gis_acres, gis_centroid_lat, gis_centroid_lon, gis_srid, gis_stated_area
FROM property_gis ORDER BY simple_geo_id LIMIT 5;
EOF

# PACS <-> ERP: the billing roll out as CSV files with manifests, payment statuses back from
# a file the billing system drops (one malformed line: a dead letter naming file and line).
gis_run full pacs-to-erp
echo "Published to the ERP outbox (one folder per entity and run, file and manifest):"
for m in "$work"/erp/outbox/*/manifest.json; do cat "$m"; done
first=$(psql_ -At -d pacs -c "SELECT min(prop_id) FROM property")
last=$(psql_ -At -d pacs -c "SELECT max(prop_id) FROM property")
printf 'bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,payment_status_type_cd,last_modified\r\n%s\r\n%s\r\n%s\r\n' \
    "B-0001,$first,$ROLL_YEAR,123456,123456,PD,$ROLL_YEAR-11-02" \
    "\"B-0002\",$last,$ROLL_YEAR,50000,25000,PP,$ROLL_YEAR-11-03" \
    "B-0003,$last,$ROLL_YEAR,12x,0,DU,$ROLL_YEAR-11-04" >"$work/erp/inbox/pay-0001.csv"
st=$(tfs_sync full erp-to-pacs "$RUN_TIMEOUT_S")
echo
printf 'erp-to-pacs full: run %s %s (one malformed line)\n' "$(json_get "$st" run_id)" "$(json_get "$st" state)"
tfs_print_counts "$st"
[[ "$(json_get "$st" state)" == partial ]] || tfs_fail "erp-to-pacs did not end partial: $st"
echo "What PACS keeps (property_bill_status); the file is now in the archive: $(ls "$work/erp/archive")"
psql_ -d pacs <<'EOF'
SELECT bill_id, prop_id, tax_year, amount_due, amount_paid, payment_status, erp_modified
FROM property_bill_status ORDER BY bill_id;
EOF

# PACS <-> CRM: owner accounts become contacts with their parcels, a clerk changes a mailing address in the CRM, it
# flows back to PACS, and the incremental rounds after it write nothing.
if [[ -n "$crm_url" ]]; then
    gis_run full pacs-to-crm
    gis_run full crm-to-pacs
    acct=$(curl -sf -H 'Authorization: Bearer demo-crm-token' \
        "$crm_url/contacts?do_not_publish=false&_sort=id&_limit=1" | tr -d ' \n' | sed -E 's/.*"id":([0-9]+).*/\1/')
    curl -sf -X PATCH -H 'Authorization: Bearer demo-crm-token' -H 'Content-Type: application/json' \
        -d '{"mail_line1": "PO BOX 1", "mail_line2": null, "mail_city": "GEORGETOWN", "mail_state": "TX", "mail_zip5": "78627", "mail_zip4": null, "updated_at": "'"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"'"}' \
        "$crm_url/contacts/$acct" >/dev/null
    echo
    echo "A clerk changed the mailing address of contact $acct in the CRM."
    gis_run incremental crm-to-pacs
    gis_run incremental pacs-to-crm
    gis_run incremental crm-to-pacs
    echo "PACS account $acct's mailing address now:"
    psql_ -d pacs -c "SELECT acct_id, addr_line1, addr_city, addr_state, addr_zip FROM address WHERE acct_id = $acct AND addr_type_cd = 'M'"
    echo "CRM contacts: $(curl -sf -I -H 'Authorization: Bearer demo-crm-token' "$crm_url/contacts?_limit=1" | tr -d '\r' | sed -n 's/^X-Total-Count: //Ip')," \
        "of which do_not_publish (confidential owners, no name or address):" \
        "$(curl -sf -I -H 'Authorization: Bearer demo-crm-token' "$crm_url/contacts?do_not_publish=true&_limit=1" | tr -d '\r' | sed -n 's/^X-Total-Count: //Ip');" \
        "their parcels: $(curl -sf -I -H 'Authorization: Bearer demo-crm-token' "$crm_url/contact_properties?_limit=1" | tr -d '\r' | sed -n 's/^X-Total-Count: //Ip')"
fi
tfs_say "done; stopping what the demo started"
