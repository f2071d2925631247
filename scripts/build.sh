#!/usr/bin/env bash
# scripts/build.sh [--sanitize] — configures and builds the daemon, plugins and tests.
#
# Builds into build/ (or build-asan/ with --sanitize: AddressSanitizer + UBSan). Set
# TFS_BUILD_DIR to use another folder. With CI=true warnings are errors.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=OFF
case "${1:-}" in
"") ;;
--sanitize) sanitize=ON ;;
*)
    echo "usage: $0 [--sanitize]" >&2
    exit 2
    ;;
esac

if [[ $sanitize == ON ]]; then
    build="${TFS_BUILD_DIR:-$root/build-asan}"
else
    build="${TFS_BUILD_DIR:-$root/build}"
fi
werror=OFF
[[ "${CI:-}" == true ]] && werror=ON

cmake -S "$root" -B "$build" -DTFS_SANITIZE="$sanitize" -DTFS_WERROR="$werror" >&2
cmake --build "$build" --parallel "$(nproc)" >&2
