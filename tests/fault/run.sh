#!/usr/bin/env bash
# tests/fault/run.sh BINARY [criterion args...] — runs the fault suite on three PostgreSQL
# servers of its own: the source (PACS), the target (CAMA) and the state store, so that a
# case can stop one of them alone. ctest calls it (tests/fault/CMakeLists.txt).
#
# The servers are scripts/pg.sh clusters under ${TMPDIR:-/tmp}/tfs-fault-<uid>-<port>-<role>
# (the base port in the name, so that two suites on other ports never share a cluster), on
# ports TFS_FAULT_PORT (default 55470), +1 and +2; they are started once for the suite,
# seeded with the templates the cases clone (kept while their inputs are unchanged), and
# stopped at the end. Their places are exported as TFS_FAULT_<ROLE>_HOST/_PORT/_DIR.
# TFS_FAULT_PARCELS (default 100000) sizes the PACS template. The cases run one at a time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=${1:?usage: run.sh BINARY [criterion args...]}
shift
readonly ROLL_YEAR=2026
readonly PARCELS="${TFS_FAULT_PARCELS:-100000}"
base_port="${TFS_FAULT_PORT:-55470}"
[[ "$PARCELS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: TFS_FAULT_PARCELS must be a positive number" >&2; exit 2; }

cd "$root"
# shellcheck source=scripts/templates.sh
source scripts/templates.sh

roles=(source target state)
started=()
cleanup() {
    local rc=$? r i=0
    for r in "${roles[@]}"; do
        if [[ " ${started[*]} " == *" $r "* ]]; then
            TFS_PG_DIR="${TMPDIR:-/tmp}/tfs-fault-$(id -u)-$base_port-$r" TFS_PG_PORT=$((base_port + i)) \
                bash scripts/pg.sh stop || true
        fi
        i=$((i + 1))
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

i=0
for r in "${roles[@]}"; do
    dir="${TMPDIR:-/tmp}/tfs-fault-$(id -u)-$base_port-$r"
    port=$((base_port + i))
    exports=$(TFS_PG_DIR="$dir" TFS_PG_PORT="$port" bash scripts/pg.sh start)
    started+=("$r")
    eval "$exports"
    up=${r^^}
    export "TFS_FAULT_${up}_HOST=$PGHOST" "TFS_FAULT_${up}_PORT=$PGPORT" "TFS_FAULT_${up}_DIR=$dir"
    case $r in
    source)
        sweep_stale_clones
        make_template tfs_fault_pacs "SELECT pacs_generate($PARCELS, 42, $ROLL_YEAR)" \
            plugins/pacs/schema.sql plugins/pacs/generate.sql
        ;;
    target)
        sweep_stale_clones
        make_template tfs_fault_cama "" plugins/cama/schema.sql
        ;;
    state)
        sweep_stale_clones
        make_template tfs_fault_state ""
        ;;
    esac
    i=$((i + 1))
done
export TFS_FAULT_PARCELS="$PARCELS"
unset PGHOST PGPORT # each case names its server
"$binary" --jobs 1 "$@"
