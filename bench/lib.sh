# bench/lib.sh — helpers the benches share beside scripts/lib.sh: installing what a bench
# needs (Debian packages, as root), medians, the machine's load. Sourced, not run; needs
# scripts/lib.sh sourced first (tfs_say, tfs_fail).
# shellcheck shell=bash

# bench_need_cmd CMD PACKAGE...: CMD on PATH, else the packages installed when running as
# root (the first one apt-get can install wins), else a failure that names them.
bench_need_cmd() {
    local cmd=$1 pkg
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        bench_apt_updated
        for pkg in "$@"; do
            tfs_say "installing $pkg (for $cmd)"
            if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2; then
                command -v "$cmd" >/dev/null 2>&1 && return 0
            fi
        done
    fi
    tfs_fail "$cmd is missing: install one of the Debian packages $* (as root: apt-get install $1)"
}

BENCH_APT_UPDATED=0
bench_apt_updated() {
    ((BENCH_APT_UPDATED)) && return 0
    apt-get update -qq >&2 || tfs_say "apt-get update failed; trying the lists as they are"
    BENCH_APT_UPDATED=1
}

# bench_python_psycopg2: sets BENCH_PY to a Python that imports psycopg2 (Debian's
# python3-psycopg2 is for Debian's /usr/bin/python3, which may not be the first python3 on
# PATH), installing the package as root when none does.
# shellcheck disable=SC2034  # BENCH_PY is read by the caller
bench_python_psycopg2() {
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import psycopg2.extras' 2>/dev/null; then
            BENCH_PY=$py
            return 0
        fi
    done
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        bench_apt_updated
        tfs_say "installing python3-psycopg2"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-psycopg2 >&2 || true
        if /usr/bin/python3 -c 'import psycopg2.extras' 2>/dev/null; then
            BENCH_PY=/usr/bin/python3
            return 0
        fi
    fi
    tfs_fail "no Python with psycopg2: install the Debian package python3-psycopg2 (PEER=0 skips the peer)"
}

# recreate_db NAME: an empty database NAME on the server of scripts/pg.sh.
recreate_db() {
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}

# median VALUE...: the median of integers.
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# secs MS: milliseconds as seconds with three decimals.
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# bench_timings STATUS_JSON: a run's per-stage milliseconds (timings_ms) per entity, one
# line: where its time went (the stages overlap on their own threads, so they add up to
# more than the run).
bench_timings() {
    psql_ -At -d postgres -v j="$1" <<'EOF'
SELECT coalesce(string_agg(e.key || ': ' || (SELECT string_agg(t.key || ' ' || t.value, ', ' ORDER BY t.key)
                                              FROM jsonb_each_text(e.value->'timings_ms') t), '; '), '')
FROM jsonb_each((:'j'::jsonb)->'counts') AS e
EOF
}

# bench_median_f VALUE...: the median of decimal numbers.
bench_median_f() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_load: the machine's load averages and runnable/total tasks (/proc/loadavg).
bench_load() {
    cut -d' ' -f1-4 /proc/loadavg
}

# bench_free_port: a TCP port on 127.0.0.1 free right now.
bench_free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# bench_traps: installs bench_cleanup on EXIT, and INT and TERM exit 130 and 143 through
# it. The bench keeps its folder in $work ("" until made), sets pg_started=1 when this run
# started PostgreSQL, and may name in BENCH_CLEANUP_HOOK a function to run first (stopping
# nginx or the clients).
BENCH_CLEANUP_HOOK=""
bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_cleanup: the hook, the daemon stopped, PostgreSQL stopped if this run started it,
# and $work removed after a success or kept (and named) after a failure; exits with the
# status it was called with.
bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$BENCH_CLEANUP_HOOK" ]]; then "$BENCH_CLEANUP_HOOK"; fi
    tfs_daemon_stop
    if ((${pg_started:-0})); then
        bash scripts/pg.sh stop || true
    fi
    if [[ -n "${work:-}" ]]; then
        if ((rc == 0)); then rm -rf "$work"; else tfs_say "kept logs in $work"; fi
    fi
    exit "$rc"
}
