#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian packages needed to build, test and demo the project.
# (clang-14 and libclang-rt-14-dev: the fuzz harnesses, scripts/fuzz.sh; the second holds
# libFuzzer's runtime, which clang's -fsanitize=fuzzer links, and is only a recommendation
# of clang's packages, which --no-install-recommends leaves out.) scdoc builds the man pages
# (docs/man/*.scd) and groff-base renders them in the install test; dpkg-deb and
# dpkg-shlibdeps, which the .deb needs, come with build-essential's dpkg-dev. prometheus:
# its promtool checks GET /metrics in the metrics test. chromium: the browser the web
# console's test drives (tests/ui, through puppeteer-core, which downloads none), with a
# font to lay its pages out (its fonts are only recommended, which --no-install-recommends
# leaves out); openssl makes that test's self-signed certificate for the console over TLS.
#
# As root it installs whatever is missing (CI runs it on a fresh Debian 12 machine, without
# a terminal); as anyone else it lists what is missing with the command to install it and
# exits non-zero. A machine that has everything does nothing, without touching the network.
# Then the npm test tools of tests/tools (json-server, the CRM the crm tests talk to;
# @redocly/cli, the OpenAPI lint; @stoplight/prism-cli, the conformance test's validating
# proxy; puppeteer-core and axe-core, the console test's browser driver and accessibility
# check), installed exactly as package-lock.json pins them.
set -euo pipefail

readonly PACKAGES=(
    build-essential cmake pkg-config
    libmicrohttpd-dev libjansson-dev libpq-dev liblua5.4-dev libgnutls28-dev
    libcriterion-dev libcurl4-openssl-dev libcsv-dev
    postgresql postgresql-contrib postgresql-15-postgis-3
    curl ca-certificates
    clang-14 libclang-rt-14-dev
    scdoc groff-base
    prometheus
    chromium fonts-dejavu-core openssl
)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# npm_tools_installed: every tool package.json pins is in node_modules at its pinned
# version (a checkout whose package.json gained a tool, or moved one, installs again).
npm_tools_installed() {
    command -v node >/dev/null 2>&1 || return 1
    node -e '
        const path = require("path"), dir = process.argv[1];
        const want = require(path.join(dir, "package.json")).dependencies || {};
        for (const [name, version] of Object.entries(want)) {
            let got;
            try { got = require(path.join(dir, "node_modules", name, "package.json")).version; }
            catch { process.exit(1); }
            if (got !== version) process.exit(1);
        }' "$root/tests/tools" 2>/dev/null
}

# npm_tools: tests/tools/node_modules as the lock file pins it (npm ci), when missing.
npm_tools() {
    npm_tools_installed && return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "deps.sh: the test tools in tests/tools are not installed at their pinned versions" \
            "(json-server for the crm tests, redocly and prism for the OpenAPI tests," \
            "puppeteer-core and axe-core for the console test)" >&2
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
    # No install-time analytics call (prism's @scarf/scarf): nothing but the registry.
    SCARF_ANALYTICS=false PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix "$root/tests/tools" --no-audit --no-fund >&2
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
