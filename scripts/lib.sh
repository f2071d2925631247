# scripts/lib.sh — shell helpers shared by demo.sh and bench/: run tfsyncd in the
# background, talk to its API with curl, read JSON through PostgreSQL. Sourced, not run.
# The caller sets `set -euo pipefail`, TFS_TAG (the prefix of messages) and exports the
# PG* variables of pg.sh.
# shellcheck shell=bash

# A failure inside $(...) must stop the caller too, as it would outside.
shopt -s inherit_errexit

tfs_say() { echo "${TFS_TAG:-tfsync}: $*" >&2; }

# Notices ("does not exist, skipping") are noise in scripts.
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# json_get JSON PATH: a field of a JSON text ("counts.property.read"), through PostgreSQL's
# own parser, so that nothing beyond what the project already needs (no jq) is required.
json_get() {
    psql_ -At -d postgres -v j="$1" -v p="$2" <<<"SELECT (:'j'::jsonb) #>> string_to_array(:'p', '.')"
}

# conninfo DBNAME: a libpq conninfo for the server of pg.sh, for a config file.
conninfo() {
    printf "host='%s' port='%s' user='%s' dbname='%s'" "$PGHOST" "$PGPORT" "$PGUSER" "$1"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# tfs_write_config FILE BUILD_DIR PACS_DB CAMA_DB STATE_DB KEY_SHA256 [BATCH_SIZE [RULES [GIS_DB [ERP_DIR [CRM_URL]]]]]
# RULES: a JSON file of the pair's validation rules (transforms/pacs_to_cama.rules.json), or
# "" for none. GIS_DB: a PostGIS parcel layer (plugins/gis/schema.sql), which adds the
# system gis and the pairs pacs-to-gis (PACS attributes and owners onto the GIS parcels)
# and gis-to-pacs (the area and centroid GIS computes into PACS's property_gis). ERP_DIR: a
# folder holding outbox, inbox and archive, which adds the system erp (the billing system's
# CSV files) and the pairs pacs-to-erp (the billing roll) and erp-to-pacs (payment
# statuses into PACS's property_bill_status). CRM_URL: the CRM's REST API, which adds the
# system crm and the pairs pacs-to-crm (owners as contacts) and crm-to-pacs (mailing
# addresses a clerk changes, back to PACS accounts).
tfs_write_config() {
    local file=$1 build=$2 pacs=$3 cama=$4 state=$5 key_sha=$6 batch=${7:-1000} rules="{}"
    local gis=${9:-} gis_system="" gis_pairs=""
    local erp=${10:-} erp_system="" erp_pairs=""
    local crm=${11:-} crm_system="" crm_pairs=""
    if [[ -n "$erp" ]]; then
        erp_system=",
    \"erp\": {\"plugin\": \"erp\", \"settings\": {\"outbox\": \"$erp/outbox\", \"inbox\": \"$erp/inbox\",
                                            \"archive\": \"$erp/archive\"}}"
        erp_pairs=",
            {\"name\": \"pacs-to-erp\", \"source\": \"pacs\", \"target\": \"erp\", \"batch_size\": $batch,
             \"entities\": [{\"source\": \"owner\", \"targets\": [\"roll_owner\"],
                           \"script\": \"pacs_to_erp.lua\"},
                          {\"source\": \"property\", \"targets\": [\"roll_value\"],
                           \"script\": \"pacs_value_to_erp.lua\"}]},
            {\"name\": \"erp-to-pacs\", \"source\": \"erp\", \"target\": \"pacs\", \"batch_size\": $batch,
             \"max_failed_ratio\": 0.5,
             \"entities\": [{\"source\": \"payment\", \"targets\": [\"bill_status\"],
                           \"script\": \"erp_to_pacs.lua\"}]}"
    fi
    if [[ -n "${8:-}" ]]; then
        rules=$(cat "$8")
    fi
    if [[ -n "$gis" ]]; then
        gis_system=",
    \"gis\": {\"plugin\": \"gis\", \"settings\": {\"conninfo\": \"$(conninfo "$gis")\"}}"
        gis_pairs=",
            {\"name\": \"pacs-to-gis\", \"source\": \"pacs\", \"target\": \"gis\", \"batch_size\": $batch,
             \"entities\": [{\"source\": \"property\", \"targets\": [\"parcel_attr\"],
                           \"script\": \"pacs_to_gis.lua\"},
                          {\"source\": \"owner\", \"targets\": [\"parcel_owner\"],
                           \"script\": \"pacs_owner_to_gis.lua\"}]},
            {\"name\": \"gis-to-pacs\", \"source\": \"gis\", \"target\": \"pacs\", \"batch_size\": $batch,
             \"entities\": [{\"source\": \"taxparcel\", \"targets\": [\"parcel_gis\"],
                           \"script\": \"gis_to_pacs.lua\"}]}"
    fi
    # crm: the CRM's base URL (its token is the demo's "demo-crm-token").
    if [[ -n "$crm" ]]; then
        crm_system=",
    \"crm\": {\"plugin\": \"crm\", \"settings\": {\"base_url\": \"$crm\", \"token\": \"demo-crm-token\"}}"
        crm_pairs=",
            {\"name\": \"pacs-to-crm\", \"source\": \"pacs\", \"target\": \"crm\", \"batch_size\": $batch,
             \"entities\": [{\"source\": \"account\", \"targets\": [\"contact\"],
                           \"script\": \"pacs_to_crm.lua\"},
                          {\"source\": \"owner\", \"targets\": [\"contact_property\"],
                           \"script\": \"pacs_owner_to_crm.lua\"}]},
            {\"name\": \"crm-to-pacs\", \"source\": \"crm\", \"target\": \"pacs\", \"batch_size\": $batch,
             \"entities\": [{\"source\": \"contact\", \"targets\": [\"account_mail\"],
                           \"script\": \"crm_to_pacs.lua\"}]}"
    fi
    cat >"$file" <<EOF
{
  "listen": {"address": "127.0.0.1", "port": 0, "ready_file": "tfsyncd.ready"},
  "state": {"conninfo": "$(conninfo "$state")"},
  "plugin_dir": "$build/plugins",
  "transform_dir": "$TFS_ROOT/transforms",
  "roll_year": ${ROLL_YEAR:-2026},
  "workers": 2,
  "api_keys": [{"name": "${TFS_TAG:-tfsync}", "role": "operate", "sha256": "$key_sha"}],
  "systems": {
    "pacs": {"plugin": "pacs", "settings": {"conninfo": "$(conninfo "$pacs")"}},
    "cama": {"plugin": "cama", "settings": {"conninfo": "$(conninfo "$cama")"}}$gis_system$erp_system$crm_system
  },
  "pairs": [{"name": "pacs-to-cama", "source": "pacs", "target": "cama", "batch_size": $batch,
             "entities": [{"source": "property", "targets": ["pardat", "asmt"],
                           "script": "pacs_to_cama.lua"}],
             "rules": $rules}$gis_pairs$erp_pairs$crm_pairs]
}
EOF
}

# tfs_new_key: sets TFS_KEY (fresh, random) and TFS_KEY_SHA256; the daemon keeps the hash.
tfs_new_key() {
    TFS_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    # shellcheck disable=SC2034  # read by the caller
    TFS_KEY_SHA256=$(printf '%s' "$TFS_KEY" | sha256sum | cut -c1-64)
}

TFS_DAEMON_PID=""
TFS_DAEMON_LOG=""
TFS_BASE_URL=""

tfs_daemon_log_tail() {
    if [[ -n "$TFS_DAEMON_LOG" && -f "$TFS_DAEMON_LOG" ]]; then
        echo "--- last lines of $TFS_DAEMON_LOG ---" >&2
        tail -n 40 "$TFS_DAEMON_LOG" >&2
        echo "---" >&2
    fi
}

tfs_fail() {
    tfs_say "$*"
    tfs_daemon_log_tail
    exit 1
}

# tfs_daemon_start BUILD_DIR CONFIG: starts tfsyncd in the background, its output in
# tfsyncd.log beside the config, and waits (at most 30 s, no fixed sleep) until its ready
# file names the port it bound. Sets TFS_DAEMON_PID and TFS_BASE_URL.
tfs_daemon_start() {
    local build=$1 config=$2 dir ready port="" i
    dir=$(dirname "$config")
    ready="$dir/tfsyncd.ready"
    TFS_DAEMON_LOG="$dir/tfsyncd.log"
    rm -f "$ready"
    "$build/tfsyncd" --config "$config" >"$TFS_DAEMON_LOG" 2>&1 &
    TFS_DAEMON_PID=$!
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$TFS_DAEMON_PID" 2>/dev/null; then
            wait "$TFS_DAEMON_PID" || true
            TFS_DAEMON_PID=""
            tfs_fail "tfsyncd exited during start-up"
        fi
        # Written atomically (rename), so a file that is there is complete.
        if [[ -f "$ready" ]]; then
            port=$(head -n 1 "$ready")
            [[ "$port" =~ ^[0-9]+$ ]] && break
            port=""
        fi
        sleep 0.1
    done
    [[ -n "$port" ]] || tfs_fail "tfsyncd was not ready after 30 s"
    TFS_BASE_URL="http://127.0.0.1:$port"
}

# tfs_daemon_stop: SIGTERM, then SIGKILL after 15 s; fine when none runs.
tfs_daemon_stop() {
    [[ -n "$TFS_DAEMON_PID" ]] || return 0
    local i
    if kill -0 "$TFS_DAEMON_PID" 2>/dev/null; then
        kill -TERM "$TFS_DAEMON_PID" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$TFS_DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$TFS_DAEMON_PID" 2>/dev/null; then
            tfs_say "tfsyncd ignored SIGTERM for 15 s; killing it"
            kill -KILL "$TFS_DAEMON_PID" 2>/dev/null || true
        fi
    fi
    wait "$TFS_DAEMON_PID" 2>/dev/null || true
    TFS_DAEMON_PID=""
}

# tfs_api METHOD PATH [BODY]: prints the answer's body; fails unless the status is 2xx.
tfs_api() {
    local out code
    out=$(mktemp)
    local args=(-sS --noproxy '*' -o "$out" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $TFS_KEY")
    if (($# > 2)); then
        args+=(-H 'Content-Type: application/json' --data "$3")
    fi
    if ! code=$(curl "${args[@]}" "$TFS_BASE_URL$2"); then
        rm -f "$out"
        tfs_fail "$1 $2: no answer from tfsyncd"
    fi
    if [[ "$code" != 2* ]]; then
        tfs_say "$1 $2 answered $code: $(cat "$out")"
        rm -f "$out"
        tfs_fail "the API refused the request"
    fi
    cat "$out"
    rm -f "$out"
}

# tfs_sync MODE PAIR TIMEOUT_S: starts a run (full or incremental) and polls it until it
# ends; prints the final status JSON. Fails if it does not end in time or the daemon dies.
tfs_sync() {
    local mode=$1 pair=$2 timeout=$3 answer run_id status state deadline
    answer=$(tfs_api POST "/sync/$mode" "{\"pair\": \"$pair\"}")
    run_id=$(json_get "$answer" run_id)
    [[ "$run_id" =~ ^[0-9]+$ ]] || tfs_fail "POST /sync/$mode gave no run_id: $answer"
    deadline=$((SECONDS + timeout))
    while :; do
        status=$(tfs_api GET "/sync/status/$run_id")
        state=$(json_get "$status" state)
        case "$state" in succeeded | partial | failed | cancelled | held) break ;; esac
        ((SECONDS < deadline)) || tfs_fail "run $run_id still $state after $timeout s"
        kill -0 "$TFS_DAEMON_PID" 2>/dev/null || tfs_fail "tfsyncd died during run $run_id"
        sleep 0.05
    done
    printf '%s\n' "$status"
}

# tfs_full_sync PAIR TIMEOUT_S: tfs_sync full PAIR TIMEOUT_S.
tfs_full_sync() {
    tfs_sync full "$1" "$2"
}

# tfs_print_counts STATUS_JSON: the run's counts per entity, as a table.
tfs_print_counts() {
    psql_ -d postgres -v j="$1" <<'EOF'
SELECT e.key AS entity,
       (e.value->>'read')::bigint AS read,
       (e.value->>'written')::bigint AS written,
       (e.value->>'unchanged')::bigint AS unchanged,
       (e.value->>'failed')::bigint AS failed
FROM jsonb_each((:'j'::jsonb)->'counts') AS e
ORDER BY 1;
EOF
}
