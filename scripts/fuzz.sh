#!/usr/bin/env bash
# scripts/fuzz.sh [seconds] [name...] — builds the libFuzzer harnesses of tests/fuzz and runs
# each named one (all when none is named: config http lua canonical csv geojson) for that
# many seconds (default 60), one after the other, on one core each.
# scripts/fuzz.sh --coverage [name...] — builds them for source-based coverage and prints
# the line coverage of the module each one targets, over its working corpus.
#
# Builds with clang into build-fuzz/ (TFS_FUZZ_BUILD_DIR). Each harness starts from its seed
# corpus in tests/fuzz/corpus/<name> (the regression inputs of earlier findings among them,
# replayed first) and grows a working corpus in <build>/corpus/<name> (or
# $TFS_FUZZ_CORPUS_DIR/<name>), kept between runs;
# the repository's corpus is never written. A finding (a crash, a sanitizer report, a broken
# invariant, a leak, a timeout) stops that harness: its input is saved in <build>/findings/
# with the command that replays it, and the script exits 1 after the others have run.
# scripts/test.sh runs `fuzz.sh 3` from the seeds alone (a fresh TFS_FUZZ_CORPUS_DIR): every
# seed and regression input, then a few seconds of fuzzing each.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${TFS_FUZZ_BUILD_DIR:-$root/build-fuzz}"
corpora="${TFS_FUZZ_CORPUS_DIR:-$build/corpus}" # the working corpora, one folder each
readonly ALL=(config http lua canonical csv geojson)

say() { echo "fuzz.sh: $*" >&2; }

coverage=0
if [[ "${1:-}" == --coverage ]]; then
    coverage=1
    shift
fi
seconds=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
for n in "${names[@]}"; do
    [[ -f "$root/tests/fuzz/${n}_fuzz.c" ]] || {
        say "no harness \"$n\"; there are: ${ALL[*]}"
        exit 2
    }
done

cc=$(command -v clang-14 || command -v clang || true)
if [[ -z "$cc" ]]; then
    say "clang is not installed; scripts/deps.sh installs it (clang-14, libclang-rt-14-dev)"
    exit 1
fi

# The module each harness is about, for --coverage.
sources_of() {
    case $1 in
    config) echo core/config.c core/config_json.c core/config_pair.c core/config_rules.c core/config_conflicts.c ;;
    http) echo core/http.c core/http_message.c core/auth.c core/api.c core/api_jobs.c core/api_dead_letters.c core/api_conflicts.c core/api_transforms.c ;;
    lua) echo core/lua_convert.c core/lua_json.c core/lua_decimal.c core/record.c ;;
    canonical) echo core/canonical.c core/record.c ;;
    csv) echo plugins/erp/erp.c plugins/erp/csv_stream.c ;;
    geojson) echo core/record.c ;;
    esac
}

# Options of a harness: those that keep state between inputs (a Lua runtime, a server)
# skip libFuzzer's leak check per input, which costs more than the input (LeakSanitizer
# still checks the whole run at exit); the HTTP and config ones get their dictionaries (the
# words of the protocol and of the config's keys).
options_of() {
    case $1 in
    lua | geojson) echo -detect_leaks=0 ;;
    http) echo -detect_leaks=0 "-dict=$root/tests/fuzz/http.dict" ;;
    config) echo "-dict=$root/tests/fuzz/config.dict" ;;
    esac
}

if ((coverage)); then
    profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata || true)
    llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov || true)
    if [[ -z "$profdata" || -z "$llvmcov" ]]; then
        say "--coverage needs llvm-profdata and llvm-cov: apt-get install llvm-14"
        exit 1
    fi
    cov="$build-coverage"
    CC="$cc" cmake -S "$root" -B "$cov" -DTFS_FUZZ=ON -DTFS_FUZZ_COVERAGE=ON \
        -DTFS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$cov" --target fuzz --parallel 2 >&2
    for n in "${names[@]}"; do
        corpus="$corpora/$n"
        [[ -d "$corpus" ]] || corpus="$root/tests/fuzz/corpus/$n"
        rm -f "$cov/$n".*.profraw
        # shellcheck disable=SC2046
        # %m: a plugin carries its own profile runtime and writes its own file.
        LLVM_PROFILE_FILE="$cov/$n.%p-%m.profraw" "$cov/fuzz/fuzz_$n" -runs=0 $(options_of "$n") \
            "$corpus" "$root/tests/fuzz/corpus/$n" >/dev/null 2>&1 || true
        "$profdata" merge -sparse "$cov/$n".*.profraw -o "$cov/$n.profdata"
        objects=("$cov/fuzz/fuzz_$n")
        [[ $n == csv ]] && objects+=(-object "$cov/plugins/erp.so")
        units=$(find "$corpus" "$root/tests/fuzz/corpus/$n" -type f | wc -l)
        echo "== $n: line coverage over $units inputs ($corpus)"
        # The Lines columns are the figure: lines, missed lines, cover.
        # shellcheck disable=SC2046
        (cd "$root" && "$llvmcov" report "${objects[@]}" -instr-profile="$cov/$n.profdata" \
            $(sources_of "$n"))
        # geojson's target is one function of record.c.
        if [[ $n == geojson ]]; then
            (cd "$root" && "$llvmcov" report -show-functions "${objects[@]}" \
                -instr-profile="$cov/$n.profdata" core/record.c) | grep -E '^tfs_geometry_check' || true
        fi
    done
    exit 0
fi

say "building the harnesses in $build"
CC="$cc" cmake -S "$root" -B "$build" -DTFS_FUZZ=ON -DTFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzz --parallel "$(nproc)" >&2

export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
mkdir -p "$build/findings"
failed=()
for n in "${names[@]}"; do
    corpus="$corpora/$n"
    mkdir -p "$corpus"
    log="$build/fuzz-$n.log"
    say "$n: ${seconds}s (log $log)"
    # shellcheck disable=SC2046
    if "$build/fuzz/fuzz_$n" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$build/findings/$n-" \
        $(options_of "$n") "$corpus" "$root/tests/fuzz/corpus/$n" >"$log" 2>&1; then
        say "$n: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') inputs, no finding"
    else
        failed+=("$n")
        say "$n: FINDING; the end of $log:"
        grep -E 'invariant failed|ERROR:|runtime error|SUMMARY' "$log" | head -n 5 >&2 || true
        for f in "$build/findings/$n-"*; do
            [[ -e "$f" ]] || continue
            # shellcheck disable=SC2046,SC2086
            say "replay: $build/fuzz/fuzz_$n $(options_of "$n") $f"
        done
    fi
done
if ((${#failed[@]})); then
    say "findings in: ${failed[*]}; fix the code, then keep the input as tests/fuzz/corpus/<name>/regress-<what>"
    exit 1
fi
