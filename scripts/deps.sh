#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian packages needed to build, test and demo the project.
# (clang-14 and libclang-rt-14-dev: the fuzz harnesses, scripts/fuzz.sh; the second holds
# libFuzzer's runtime, which clang's -fsanitize=fuzzer links, and is only a recommendation
# of clang's packages, which --no-install-recommends leaves out; prometheus: its promtool
# checks GET /metrics in the metrics test.)
#
# As root it installs whatever is missing (CI runs it on a fresh Debian 12 machine, without
# a terminal); as anyone else it lists what is missing with the command to install it and
# exits non-zero. A machine that has everything does nothing, without touching the network.
# Then the npm test tools of tests/tools (json-server, the CRM the crm tests talk to),
# installed exactly as package-lock.json pins them.
set -euo pipefail

readonly PACKAGES=(
    build-essential cmake pkg-config
    libmicrohttpd-dev libjansson-dev libpq-dev liblua5.4-dev libgnutls28-dev
    libcriterion-dev libcurl4-openssl-dev libcsv-dev
    postgresql postgresql-contrib postgresql-15-postgis-3
    curl ca-certificates
    clang-14 libclang-rt-14-dev
    prometheus
)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# npm_tools: tests/tools/node_modules as the lock file pins it (npm ci), when missing.
npm_tools() {
    [[ -f "$root/tests/tools/node_modules/json-server/package.json" ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "deps.sh: the test tools in tests/tools are not installed (json-server, for the crm tests)" >&2
        echo "deps.sh: install them with:" >&2
        echo "  npm ci --prefix $root/tests/tools --no-audit --no-fund" >&2
        exit 1
    fi
    # npm by command, not by package: a machine with NodeSource's nodejs has it built in
    # (and Debian's npm package conflicts with that).
    if ! command -v npm >/dev/null 2>&1; then
        echo "deps.sh: installing nodejs npm" >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >&2
    fi
    echo "deps.sh: installing the test tools of tests/tools (npm ci)" >&2
    npm ci --prefix "$root/tests/tools" --no-audit --no-fund >&2
}

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    npm_tools
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
# No terminal in CI: never let a package prompt.
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
npm_tools
