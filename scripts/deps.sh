#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian packages needed to build, test and demo the project.
#
# As root it installs whatever is missing (CI runs it on a fresh Debian 12 machine, without
# a terminal); as anyone else it lists what is missing with the command to install it and
# exits non-zero. A machine that has everything does nothing, without touching the network.
set -euo pipefail

readonly PACKAGES=(
    build-essential cmake pkg-config
    libmicrohttpd-dev libjansson-dev libpq-dev liblua5.4-dev libgnutls28-dev
    libcriterion-dev libcurl4-openssl-dev libcsv-dev
    postgresql postgresql-contrib postgresql-15-postgis-3
    curl ca-certificates
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
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
