#!/usr/bin/env bash
# scripts/pg.sh — one private, throwaway PostgreSQL for the demo, the tests and the benchmarks.
#
#   eval "$(scripts/pg.sh start)"   start it (idempotent) and export PGHOST/PGPORT/PGUSER
#   scripts/pg.sh env               print the same exports without starting anything
#   scripts/pg.sh status            exit 0 when it runs and accepts connections, 3 when not
#   scripts/pg.sh stop              fast shutdown; fine when nothing runs
#   scripts/pg.sh crash             immediate shutdown: a crash, for the fault tests
#
# Only the exports go to stdout; everything else goes to stderr so that `eval` stays safe.
# Environment: TFS_PG_DIR (cluster folder, default /tmp/tfsync-pg-<uid>), TFS_PG_PORT
# (default 55432), TFS_PG_BIN (server binaries, default Debian's /usr/lib/postgresql/15/bin).
set -euo pipefail

readonly PORT="${TFS_PG_PORT:-55432}"
# Kept outside the checkout: the server's user may not be able to enter it when we run as
# root, and a short path keeps the Unix socket path under its 107-byte limit.
readonly BASE="${TFS_PG_DIR:-/tmp/tfsync-pg-$(id -u)}"
readonly DATA="$BASE/data"
readonly LOG="$BASE/server.log"
readonly SOCKDIR="$BASE"
readonly SUPERUSER=postgres

die() {
    echo "pg.sh: $*" >&2
    exit 1
}
note() { echo "pg.sh: $*" >&2; }

find_bindir() {
    if [[ -n "${TFS_PG_BIN:-}" ]]; then
        echo "$TFS_PG_BIN"
        return
    fi
    if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
        echo /usr/lib/postgresql/15/bin
        return
    fi
    # Any other Debian-packaged major, newest first, then whatever pg_config knows.
    local d
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
        [[ -x "$d/postgres" ]] && { echo "$d"; return; }
    done
    if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/postgres" ]]; then
        pg_config --bindir
        return
    fi
    die "no PostgreSQL server binaries found; run scripts/deps.sh (or set TFS_PG_BIN)"
}

# initdb and postgres refuse to run as root, so root hands the server to an unprivileged
# user: the packaged `postgres` if there is one, otherwise a `tfsync` system user we create.
server_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
    elif getent passwd postgres >/dev/null; then
        echo postgres
    else
        if ! getent passwd tfsync >/dev/null; then
            useradd --system --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin tfsync >&2 || die "could not create user tfsync"
        fi
        echo tfsync
    fi
}

# Runs a command as the server's user, from "/" because that user may not be allowed into
# the caller's working directory (PostgreSQL tools fail when they cannot resolve it).
as_server() {
    if [[ $(id -u) -ne 0 ]]; then
        (cd / && "$@")
    elif command -v runuser >/dev/null; then
        (cd / && runuser -u "$SERVER_USER" -- "$@")
    else
        (cd / && su -s /bin/sh -c "$(printf '%q ' "$@")" "$SERVER_USER")
    fi
}

print_env() {
    printf 'export PGHOST=%q; export PGPORT=%q; export PGUSER=%q\n' "$SOCKDIR" "$PORT" "$SUPERUSER"
}

is_ready() {
    "$BIN/pg_isready" -q -h "$SOCKDIR" -p "$PORT" -U "$SUPERUSER" -d postgres -t 2 2>/dev/null
}

# A postgres process that is alive: not gone, not a zombie (a killed postmaster whose new
# parent has not reaped it yet still answers kill -0), not a pid reused by something else.
is_live_postgres() {
    local pid=$1 stat comm
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat:0:1}" != Z && ("$comm" == postgres || "$comm" == postmaster) ]]
}

is_running() {
    local pid
    pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && is_live_postgres "$pid"
}

log_tail() {
    if [[ -r "$LOG" ]]; then
        echo "--- last lines of $LOG ---" >&2
        tail -n 30 "$LOG" >&2
        echo "---" >&2
    fi
}

prepare_dir() {
    if [[ ! -d "$BASE" ]]; then
        mkdir -p "$BASE"
        chmod 700 "$BASE"
        [[ $(id -u) -eq 0 ]] && chown "$SERVER_USER:" "$BASE"
    fi
    # A world-writable /tmp lets anyone pre-create this folder; never use one we don't own.
    local owner
    owner=$(stat -c %U "$BASE")
    [[ "$owner" == "$SERVER_USER" ]] ||
        die "$BASE belongs to $owner, not $SERVER_USER; remove it or set TFS_PG_DIR"
    local sock="$SOCKDIR/.s.PGSQL.$PORT"
    ((${#sock} <= 100)) || die "socket path $sock is too long; set a shorter TFS_PG_DIR"
}

init_cluster() {
    [[ -f "$DATA/PG_VERSION" ]] && return 0
    note "creating a cluster in $DATA (server user $SERVER_USER)"
    rm -rf "$DATA"
    # C collation: byte order is deterministic and fast; UTF-8 character classes if we can.
    local ctype=C
    locale -a 2>/dev/null | grep -qix 'c.utf-\?8' && ctype=C.UTF-8
    # Trust is safe only because the server listens on nothing but a socket in a 0700 folder.
    if ! as_server "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -A trust -E UTF8 \
        --lc-collate=C --lc-ctype="$ctype" --no-sync >"$BASE/initdb.log" 2>&1; then
        tail -n 30 "$BASE/initdb.log" >&2
        die "initdb failed (full output in $BASE/initdb.log)"
    fi
    echo "include_if_exists = 'tfsync.conf'" | as_server tee -a "$DATA/postgresql.conf" >/dev/null
}

# Rewritten on every start so that a change here reaches an existing cluster.
write_settings() {
    as_server tee "$DATA/tfsync.conf" >/dev/null <<EOF
# Written by scripts/pg.sh on every start; edits are lost.
port = $PORT
listen_addresses = ''
unix_socket_directories = '$SOCKDIR'
# Tests open many connections at once (parallel suites, daemons with worker pools).
max_connections = 300
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
# A throwaway cluster for demos, tests and benchmarks: durability is traded for speed.
# Never copy these three into a real server.
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
}

# A killed run can leave postmaster.pid (or the socket's lock file) naming a pid that now
# belongs to an unrelated process, which the server would take for a live postmaster.
clear_stale_locks() {
    local f pid
    for f in "$DATA/postmaster.pid" "$SOCKDIR/.s.PGSQL.$PORT.lock"; do
        [[ -f "$f" ]] || continue
        pid=$(head -n 1 "$f" 2>/dev/null || true)
        [[ "$pid" =~ ^[0-9]+$ ]] || { rm -f "$f"; continue; }
        is_live_postgres "$pid" && continue
        note "removing stale $f (pid $pid is not a running postgres)"
        rm -f "$f"
    done
}

wait_ready() {
    local i
    for ((i = 0; i < 300; i++)); do
        is_ready && return 0
        sleep 0.2
    done
    return 1
}

cmd_start() {
    prepare_dir
    # Two callers starting at once must not race initdb or pg_ctl.
    exec 9>>"$BASE/pg.sh.lock"
    flock -w 120 9 || die "timed out waiting for another pg.sh on $BASE"
    init_cluster
    write_settings
    if is_running; then
        wait_ready || { log_tail; die "server in $DATA runs but does not accept connections"; }
        print_env
        return 0
    fi
    clear_stale_locks
    local attempt
    for ((attempt = 1; attempt <= 20; attempt++)); do
        # The postmaster must not inherit the lock, or it would hold it for its lifetime.
        if as_server "$BIN/pg_ctl" start -w -t 120 -D "$DATA" -l "$LOG" >/dev/null 2>&1 9>&-; then
            wait_ready || { log_tail; die "server started but does not accept connections"; }
            note "PostgreSQL running: socket $SOCKDIR, port $PORT, log $LOG"
            print_env
            return 0
        fi
        # After a kill -9 of the postmaster its children take a moment to notice and exit;
        # until then the old shared memory segment is still attached.
        if tail -n 5 "$LOG" 2>/dev/null | grep -q 'pre-existing shared memory block\|already exists'; then
            clear_stale_locks
            sleep 0.5
            continue
        fi
        break
    done
    log_tail
    die "could not start PostgreSQL in $DATA"
}

# cmd_stop [MODE]: pg_ctl's shutdown mode, fast by default; immediate is a crash (no
# checkpoint, WAL not yet written is lost), which the fault tests use.
cmd_stop() {
    local mode=${1:-fast}
    [[ -d "$BASE" ]] || { note "not running"; return 0; }
    exec 9>>"$BASE/pg.sh.lock"
    flock -w 120 9 || die "timed out waiting for another pg.sh on $BASE"
    if [[ ! -d "$DATA" ]] || ! is_running; then
        note "not running"
        return 0
    fi
    as_server "$BIN/pg_ctl" stop -m "$mode" -w -t 60 -D "$DATA" >/dev/null 2>&1 ||
        { log_tail; die "could not stop PostgreSQL in $DATA"; }
    note "stopped"
}

cmd_status() {
    if [[ -d "$DATA" ]] && is_running && is_ready; then
        echo "running: socket $SOCKDIR, port $PORT, data $DATA"
        return 0
    fi
    echo "not running (data $DATA, port $PORT)"
    return 3
}

BIN=$(find_bindir)
SERVER_USER=$(server_user)
readonly BIN SERVER_USER

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
crash) cmd_stop immediate ;;
env) print_env ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|crash|env|status" >&2
    exit 2
    ;;
esac
