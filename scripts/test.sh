#!/usr/bin/env bash
# scripts/test.sh [ctest args...] — runs the whole test suite, the README's second command.
#
# Installs what is missing (as root), builds, starts the private PostgreSQL of pg.sh, seeds
# the template databases the integration tests clone, runs ctest (the fault suite among the
# tests: tests/fault/run.sh starts three servers of its own for it, on ports 55470-55472 or
# from TFS_FAULT_PORT), then builds and runs the suite again under AddressSanitizer + UBSan
# (skipped with TFS_SKIP_SANITIZE=1; it runs one fault case), and runs each fuzz harness of
# tests/fuzz for a few seconds (scripts/fuzz.sh 3; TFS_FUZZ_SMOKE=1 with ctest args too).
# Arguments
# go to ctest (e.g. `scripts/test.sh -R harness`). TFS_BUILD_DIR and TFS_ASAN_BUILD_DIR
# choose the build folders; TFS_REBUILD_TEMPLATES=1 reseeds the templates.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build="${TFS_BUILD_DIR:-$root/build}"
asan_build="${TFS_ASAN_BUILD_DIR:-$root/build-asan}"
readonly ROLL_YEAR=2026

say() { echo "test.sh: $*" >&2; }

# The API is the only door: outside the plugin host (plugin_host.c, plugin_file.c and
# sdk_host.c) no file of core/ or cli/ calls a plugin descriptor's callbacks (desc.cb_x,
# ->cb_x), touches an instance's plugin handle (->handle) or includes plugin_private.h,
# which would make the opaque plugin types complete again. Fast and before anything is
# built; each offence is named by file and line. (tests/sdk/opaque_* checks at compile time
# that the types stay incomplete.)
check_plugin_boundary() {
    local bad=0 f hits
    while IFS= read -r -d '' f; do
        case "$f" in
        core/plugin_host.c | core/plugin_file.c | core/sdk_host.c | core/plugin_private.h) continue ;;
        esac
        # Comment lines are left out: they may name a callback.
        hits=$(grep -nE '(\.|->)[[:space:]]*cb_[a-z_]+|->[[:space:]]*handle\b|#[[:space:]]*include[[:space:]]*[<"]([^">]*/)?plugin_private\.h' "$f" |
            grep -vE '^[0-9]+:[[:space:]]*(\*|/\*|//)' || true)
        if [[ -n "$hits" ]]; then
            while IFS= read -r line; do
                echo "$f:${line%%:*}: reaches into a plugin outside the plugin host: ${line#*:}" >&2
            done <<<"$hits"
            bad=1
        fi
    done < <(find core cli -type f \( -name '*.c' -o -name '*.h' \) -print0 2>/dev/null | sort -z)
    if ((bad)); then
        say "the core must call plugins through plugin_host.h (tfs_instance_*, tfs_plugin_*) only"
        return 1
    fi
}
check_plugin_boundary

bash scripts/deps.sh

# Stop PostgreSQL on the way out only if this run started it: someone else's demo or test
# run may be using it.
pg_started=0
cleanup() {
    local rc=$?
    if ((pg_started)); then
        bash scripts/pg.sh stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "building $build"
TFS_BUILD_DIR="$build" bash scripts/build.sh

bash scripts/pg.sh status >/dev/null 2>&1 || pg_started=1
eval "$(bash scripts/pg.sh start)"
export TFS_TEST_PGHOST="$PGHOST" TFS_TEST_PGPORT="$PGPORT" TFS_TEST_PGUSER="$PGUSER"

# make_template and sweep_stale_clones, shared with the fault suite's runner.
# shellcheck source=scripts/templates.sh
source scripts/templates.sh
sweep_stale_clones

# Two runs on one server must not build the same template at once.
exec 8>"${TMPDIR:-/tmp}/tfsync-templates-$(id -u)-$PGPORT.lock"
flock -w 900 8 || { say "timed out waiting for another run seeding the templates"; exit 1; }
pacs=(plugins/pacs/schema.sql plugins/pacs/generate.sql)
make_template tfs_tmpl_pacs10k "SELECT pacs_generate(10000, 42, $ROLL_YEAR)" "${pacs[@]}"
make_template tfs_tmpl_pacs_empty "" "${pacs[@]}"
make_template tfs_tmpl_cama "" plugins/cama/schema.sql
make_template tfs_tmpl_state ""
make_gis_templates
exec 8>&-

# run_suite LABEL BUILD: ctest in BUILD; puts ctest's own tally into the summary.
# Criterion reports a test as passed even when LeakSanitizer then finds leaks in its
# process (the report comes after the result), so the full output is searched for
# sanitizer reports too.
summary=()
failed=0
run_suite() {
    local label=$1 dir=$2 log full tally sanitizer=""
    log=$(mktemp)
    full=$(mktemp)
    say "running the $label suite in $dir"
    local ok=1
    ctest --test-dir "$dir" --output-on-failure --output-log "$full" "${ctest_args[@]}" 2>&1 |
        tee "$log" || ok=0
    tally=$(grep -E 'tests passed' "$log" | tail -n 1 || true)
    if grep -qE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$full"; then
        sanitizer=" with sanitizer reports"
        ok=0
        say "sanitizer reports in the $label suite:"
        grep -E -A 30 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$full" | head -n 200 >&2
    fi
    if ((ok)); then
        summary+=("$label: ${tally:-no tests}")
    else
        failed=1
        summary+=("$label: FAILED${sanitizer}, ${tally:-no tally}")
    fi
    rm -f "$log" "$full"
}

# The suites run Criterion with -q, which hides why a test failed; a TAP report on stdout
# is still written, and ctest shows it for the failures.
export CRITERION_OUTPUTS="${CRITERION_OUTPUTS:-tap:-}"

ctest_args=("$@")
run_suite plain "$build"

# The fuzz harnesses (tests/fuzz): every seed and regression input, then 3 seconds of
# fuzzing each, in a clang build of their own; scripts/fuzz.sh runs them as long as asked.
# Not with a ctest filter (-R ...), which asks for some tests only, unless TFS_FUZZ_SMOKE=1.
if ((${#ctest_args[@]} == 0)) || [[ "${TFS_FUZZ_SMOKE:-0}" == 1 ]]; then
    say "running the fuzz harnesses for a few seconds each"
    fuzz_corpora=$(mktemp -d)
    if TFS_FUZZ_BUILD_DIR="${TFS_FUZZ_BUILD_DIR:-$root/build-fuzz}" \
        TFS_FUZZ_CORPUS_DIR="$fuzz_corpora" bash scripts/fuzz.sh 3; then
        summary+=("fuzz: every harness's corpus and 3 s of fuzzing, no finding")
    else
        failed=1
        summary+=("fuzz: FAILED (scripts/fuzz.sh said which input and how to replay it)")
    fi
    rm -rf "$fuzz_corpora"
fi

if [[ "${TFS_SKIP_SANITIZE:-0}" != 1 ]]; then
    say "building $asan_build (AddressSanitizer + UBSan)"
    TFS_BUILD_DIR="$asan_build" bash scripts/build.sh --sanitize
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
    run_suite asan "$asan_build"
else
    summary+=("asan: skipped (TFS_SKIP_SANITIZE=1)")
fi

for line in "${summary[@]}"; do
    say "$line"
done
if ((failed)); then
    say "FAILED"
    exit 1
fi
say "all suites passed"
