/* tests/support/tfs_test.c — the integration tests' harness: test databases cloned from
 * seeded templates on the private PostgreSQL of scripts/pg.sh, a real tfsyncd on a port it
 * picks itself (read back from its ready file, never guessed), and a libcurl client.
 *
 * Criterion runs each test in its own process and several at once, so every name made here
 * is unique across processes, and a daemon dies with the test process that started it.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tfs_test.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "http.h"

extern char **environ;

#define DAEMON_READY_TIMEOUT_MS 20000
#define DAEMON_STOP_TIMEOUT_MS 10000
#define LOG_TAIL_BYTES 4000

/* ---- small utilities ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    cr_assert(p != NULL, "out of memory");
    return p;
}

/* The whole file, malloc'd and NUL-terminated, or NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
        if (len_out)
            *len_out = len;
    }
    return buf;
}

/* The last LOG_TAIL_BYTES of a file, starting at a line, malloc'd ("" when unreadable). */
static char *file_tail(const char *path)
{
    size_t len = 0;
    char *all = read_file(path, &len);
    if (!all)
        return xstrdup("");
    if (len <= LOG_TAIL_BYTES)
        return all;
    const char *start = all + len - LOG_TAIL_BYTES;
    const char *nl = strchr(start, '\n');
    if (nl && nl[1])
        start = nl + 1;
    char *tail = xstrdup(start);
    free(all);
    return tail;
}

static const char *env_first(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (v && *v)
        return v;
    v = getenv(b);
    return v && *v ? v : NULL;
}

/* ---- PostgreSQL ---- */

/* Appends key='value' with libpq's quoting (backslash before ' and \). */
static void conninfo_add(char *buf, size_t cap, const char *key, const char *value)
{
    size_t len = strlen(buf);
    int n = snprintf(buf + len, cap - len, "%s%s='", len ? " " : "", key);
    cr_assert(n > 0 && (size_t)n < cap - len, "conninfo too long");
    len += (size_t)n;
    for (const char *p = value; *p; p++) {
        cr_assert(len + 3 < cap, "conninfo too long");
        if (*p == '\'' || *p == '\\')
            buf[len++] = '\\';
        buf[len++] = *p;
    }
    cr_assert(len + 2 < cap, "conninfo too long");
    buf[len++] = '\'';
    buf[len] = '\0';
}

static char server_host[256], server_port[16];

void tfs_test_pg_server(const char *host, const char *port)
{
    snprintf(server_host, sizeof server_host, "%s", host ? host : "");
    snprintf(server_port, sizeof server_port, "%s", port ? port : "");
}

char *tfs_test_pg_conninfo(const char *dbname)
{
    char buf[1024] = "";
    const char *host = server_host[0] ? server_host : env_first("TFS_TEST_PGHOST", "PGHOST");
    const char *port = server_port[0] ? server_port : env_first("TFS_TEST_PGPORT", "PGPORT");
    const char *user = env_first("TFS_TEST_PGUSER", "PGUSER");
    /* Nothing set (ctest run by hand): scripts/pg.sh's defaults, not libpq's. */
    char default_host[64];
    if (!host) {
        snprintf(default_host, sizeof default_host, "/tmp/tfsync-pg-%u", (unsigned)getuid());
        host = default_host;
        port = port ? port : "55432";
        user = user ? user : "postgres";
    }
    if (host)
        conninfo_add(buf, sizeof buf, "host", host);
    if (port)
        conninfo_add(buf, sizeof buf, "port", port);
    if (user)
        conninfo_add(buf, sizeof buf, "user", user);
    conninfo_add(buf, sizeof buf, "dbname", dbname ? dbname : "postgres");
    return xstrdup(buf);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *tfs_test_pg_connect(const char *dbname)
{
    char *ci = tfs_test_pg_conninfo(dbname);
    PGconn *conn = PQconnectdb(ci);
    free(ci);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", conn ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        cr_assert_fail("could not connect to database \"%s\": %s(is the test server running? "
                       "eval \"$(scripts/pg.sh start)\" sets PGHOST and PGPORT)",
                       dbname ? dbname : "postgres", msg);
    }
    /* Notices (DROP ... IF EXISTS) would only clutter the test output. */
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

static int result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* Fails the test with the server's message; frees res and closes conn first. */
static void fail_query(PGconn *conn, PGresult *res, const char *dbname, const char *sql)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    cr_assert_fail("query on \"%s\" failed: %s\nquery: %.600s", dbname ? dbname : "postgres",
                   msg, sql);
}

void tfs_test_pg_exec(const char *dbname, const char *sql)
{
    PGconn *conn = tfs_test_pg_connect(dbname);
    PGresult *res = PQexec(conn, sql);
    if (!result_ok(res))
        fail_query(conn, res, dbname, sql);
    PQclear(res);
    PQfinish(conn);
}

void tfs_test_cama_log_statements(const char *dbname)
{
    tfs_test_pg_exec(dbname,
                     "CREATE TABLE test_stmt (n bigserial, tbl text, cmd text);"
                     "CREATE FUNCTION test_stmt_log() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN INSERT INTO test_stmt (tbl, cmd) VALUES (TG_TABLE_NAME,"
                     " upper(split_part(ltrim(current_query()), ' ', 1))); RETURN NULL; END $$;"
                     "CREATE TRIGGER test_stmt AFTER INSERT ON pardat FOR EACH STATEMENT"
                     " EXECUTE FUNCTION test_stmt_log();"
                     "CREATE TRIGGER test_stmt AFTER INSERT ON asmt FOR EACH STATEMENT"
                     " EXECUTE FUNCTION test_stmt_log()");
}

char *tfs_test_pg_scalar(const char *dbname, const char *sql)
{
    PGconn *conn = tfs_test_pg_connect(dbname);
    PGresult *res = PQexec(conn, sql);
    if (!result_ok(res))
        fail_query(conn, res, dbname, sql);
    char *out = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 &&
        !PQgetisnull(res, 0, 0))
        out = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    return out;
}

void tfs_test_pg_exec_file(const char *dbname, const char *path, const char *roll_year_var)
{
    char out_path[] = "/tmp/tfs-psql-XXXXXX";
    int fd = mkstemp(out_path);
    cr_assert(fd >= 0, "could not create a temporary file: %s", strerror(errno));

    char *ci = tfs_test_pg_conninfo(dbname);
    char roll[64];
    snprintf(roll, sizeof roll, "roll_year=%s", roll_year_var ? roll_year_var : "");
    char *argv[16];
    int n = 0;
    argv[n++] = "psql";
    argv[n++] = "-X"; /* no ~/.psqlrc */
    argv[n++] = "-q";
    argv[n++] = "-v";
    argv[n++] = "ON_ERROR_STOP=1";
    if (roll_year_var) {
        argv[n++] = "-v";
        argv[n++] = roll;
    }
    argv[n++] = "-d";
    argv[n++] = ci;
    argv[n++] = "-f";
    argv[n++] = (char *)path;
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, "psql", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    free(ci);
    if (rc != 0) {
        unlink(out_path);
        cr_assert_fail("could not run psql: %s", strerror(rc));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    char *out = file_tail(out_path);
    unlink(out_path);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[LOG_TAIL_BYTES + 1];
        snprintf(msg, sizeof msg, "%s", out);
        free(out);
        cr_assert_fail("psql -f \"%s\" on \"%s\" failed (status %d):\n%s", path,
                       dbname ? dbname : "postgres", st, msg);
    }
    free(out);
}

char *tfs_test_db_clone(const char *template_name, const char *label)
{
    static atomic_uint counter;
    unsigned n = atomic_fetch_add(&counter, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* pid and counter make it unique among live tests; the random part covers a pid that is
     * reused while a failed test's database is still there. */
    unsigned salt = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 12) ^ ((long)getpid() << 3)) & 0xffffu;

    char name[64];
    size_t len = 0;
    for (const char *p = label && *label ? label : "t"; *p && len < 24; p++)
        name[len++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    name[len] = '\0';
    snprintf(name + len, sizeof name - len, "_%ld_%u_%04x", (long)getpid(), n, salt);

    PGconn *conn = tfs_test_pg_connect("postgres");
    char *qname = PQescapeIdentifier(conn, name, strlen(name));
    char *qtmpl = PQescapeIdentifier(conn, template_name, strlen(template_name));
    cr_assert(qname && qtmpl, "could not quote \"%s\"", template_name);
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s", qname, qtmpl);
    PQfreemem(qname);
    PQfreemem(qtmpl);

    /* A template can be cloned only while nobody is connected to it; that is brief (another
     * clone's checks, scripts/test.sh finishing it), so wait a little. */
    for (int attempt = 0;; attempt++) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            break;
        }
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "55006") == 0 && attempt < 100) {
            PQclear(res);
            sleep_ms(100);
            continue;
        }
        if (state && strcmp(state, "3D000") == 0) {
            PQclear(res);
            PQfinish(conn);
            cr_assert_fail("template database \"%s\" does not exist; scripts/test.sh creates "
                           "the tfs_tmpl_* templates",
                           template_name);
        }
        fail_query(conn, res, "postgres", sql);
    }
    PQfinish(conn);
    return xstrdup(name);
}

void tfs_test_db_drop(const char *name)
{
    if (!name)
        return;
    PGconn *conn = tfs_test_pg_connect("postgres");
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    cr_assert(q != NULL, "could not quote \"%s\"", name);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q);
    PQfreemem(q);
    PGresult *res = PQexec(conn, sql);
    if (!result_ok(res))
        fail_query(conn, res, "postgres", sql);
    PQclear(res);
    PQfinish(conn);
}

/* ---- the daemon ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    if (dir[0] && !getenv("TFS_TEST_KEEP"))
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The port from a complete ready file ("<port>\n"), or 0. */
static int read_ready_port(const char *path)
{
    char *text = read_file(path, NULL);
    if (!text)
        return 0;
    char *end = NULL;
    long port = strtol(text, &end, 10);
    int ok = end != text && *end == '\n' && port > 0 && port < 65536;
    free(text);
    return ok ? (int)port : 0;
}

static int wait_status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Closes every descriptor above stderr in the child, so the daemon never holds one of
 * Criterion's pipes open after the test is done. Async-signal-safe. */
static void close_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0u) == 0)
        return;
#endif
    for (int fd = lowfd; fd < 65536; fd++)
        close(fd);
}

static void daemon_fail(tfs_test_daemon *d, const char *why)
{
    char *tail = file_tail(d->log_path);
    char msg[LOG_TAIL_BYTES + 1];
    snprintf(msg, sizeof msg, "%s", tail);
    free(tail);
    char where[sizeof d->log_path];
    snprintf(where, sizeof where, "%s", d->log_path);
    json_decref(d->config);
    free(d);
    cr_assert_fail("tfsyncd %s (log %s):\n%s", why, where, msg);
}

tfs_test_daemon *tfs_test_daemon_start(const json_t *config)
{
    cr_assert(json_is_object(config), "tfs_test_daemon_start: config must be a JSON object");
    tfs_test_daemon *d = calloc(1, sizeof *d);
    cr_assert(d != NULL, "out of memory");
    d->pid = -1;

    const char *tmp = getenv("TMPDIR");
    snprintf(d->dir, sizeof d->dir, "%s/tfsd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(d->dir) != NULL, "could not create a folder for tfsyncd: %s",
              strerror(errno));
    snprintf(d->config_path, sizeof d->config_path, "%s/tfsyncd.json", d->dir);
    snprintf(d->log_path, sizeof d->log_path, "%s/tfsyncd.log", d->dir);

    /* A copy, so the caller's config can start the next daemon unchanged. */
    d->config = json_deep_copy(config);
    cr_assert(d->config != NULL, "out of memory");
    json_t *listen = json_object_get(d->config, "listen");
    if (!json_is_object(listen)) {
        listen = json_object();
        json_object_set_new(d->config, "listen", listen);
    }
    if (!json_object_get(listen, "port"))
        json_object_set_new(listen, "port", json_integer(0));
    const char *ready = json_string_value(json_object_get(listen, "ready_file"));
    if (!ready) {
        snprintf(d->ready_path, sizeof d->ready_path, "%s/tfsyncd.ready", d->dir);
        json_object_set_new(listen, "ready_file", json_string(d->ready_path));
    } else if (ready[0] == '/') {
        snprintf(d->ready_path, sizeof d->ready_path, "%s", ready);
    } else {
        snprintf(d->ready_path, sizeof d->ready_path, "%s/%s", d->dir, ready);
    }
    /* A ready file left by an earlier daemon would make us talk to a dead port. */
    unlink(d->ready_path);
    cr_assert(json_dump_file(d->config, d->config_path, JSON_INDENT(2)) == 0,
              "could not write %s", d->config_path);

    const char *bin = getenv("TFS_TEST_TFSYNCD");
    char binbuf[512];
    if (!bin || !*bin) {
        snprintf(binbuf, sizeof binbuf, "%s/tfsyncd", TFS_BINARY_DIR);
        bin = binbuf;
    }
    cr_assert(access(bin, X_OK) == 0, "no daemon to test at %s: %s (build it first)", bin,
              strerror(errno));
    int logfd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(logfd >= 0, "could not create %s: %s", d->log_path, strerror(errno));
    char *argv[] = {"tfsyncd", "--config", d->config_path, NULL};
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        cr_assert_fail("could not fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: the test may have threads. */
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        if (getppid() != parent)
            _exit(127);
        int nullfd = open("/dev/null", O_RDONLY);
        if (nullfd >= 0)
            dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        close_from(3);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv(bin, argv);
        static const char msg[] = "tfs_test: exec of tfsyncd failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    close(logfd);
    d->pid = pid;

    long long deadline = now_ms() + DAEMON_READY_TIMEOUT_MS;
    for (;;) {
        /* Looked at without reaping, and before the ready file: a daemon that got ready and
         * died at once (a test's crashing plugin) was ready, and its status is kept for
         * tfs_test_daemon_alive and _stop_status. */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int exited = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                     info.si_pid == pid;
        d->port = read_ready_port(d->ready_path);
        if (d->port > 0)
            return d;
        if (exited) {
            int st = 0;
            waitpid(pid, &st, 0);
            char why[96];
            snprintf(why, sizeof why, "exited before it was ready (status %d)",
                     wait_status_code(st));
            daemon_fail(d, why);
        }
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            daemon_fail(d, "was not ready after 20 s");
        }
        sleep_ms(10);
    }
}

int tfs_test_daemon_alive(const tfs_test_daemon *d)
{
    if (!d || d->pid <= 0)
        return 0;
    /* WNOWAIT: look without reaping, so stop can still collect the status. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)d->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 0;
    return info.si_pid == 0;
}

/* Waits up to ms for the daemon to exit; its status code, or -2 when it still runs. */
static int reap_within(pid_t pid, long ms)
{
    long long deadline = now_ms() + ms;
    for (;;) {
        int st = 0;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return wait_status_code(st);
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_ms() > deadline)
            return -2;
        sleep_ms(10);
    }
}

/* An ASan/UBSan build of tfsyncd reports into its log, LeakSanitizer only at exit; any
 * report fails the test (without stopping it, so the caller still cleans up). */
static int check_sanitizer_reports(const tfs_test_daemon *d)
{
    char *log = read_file(d->log_path, NULL);
    int found = 0;
    if (!log)
        return 0;
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", NULL};
    for (int i = 0; marks[i]; i++) {
        const char *at = strstr(log, marks[i]);
        if (at) {
            cr_expect_fail("tfsyncd's sanitizer found a problem (log %s, kept):\n%.3000s",
                           d->log_path, at);
            found = 1;
            break;
        }
    }
    free(log);
    return found;
}

static void daemon_free(tfs_test_daemon *d)
{
    if (!check_sanitizer_reports(d))
        remove_tree(d->dir);
    json_decref(d->config);
    free(d);
}

int tfs_test_daemon_stop_status(tfs_test_daemon *d)
{
    if (!d)
        return -1;
    int code = -1;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        code = reap_within(d->pid, DAEMON_STOP_TIMEOUT_MS);
        if (code == -2) {
            fprintf(stderr, "tfs_test: tfsyncd %d ignored SIGTERM for 10 s; killing it\n",
                    (int)d->pid);
            kill(d->pid, SIGKILL);
            code = reap_within(d->pid, DAEMON_STOP_TIMEOUT_MS);
        }
    }
    daemon_free(d);
    return code;
}

void tfs_test_daemon_stop(tfs_test_daemon *d)
{
    (void)tfs_test_daemon_stop_status(d);
}

void tfs_test_daemon_kill9(tfs_test_daemon *d)
{
    if (!d)
        return;
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        (void)reap_within(d->pid, DAEMON_STOP_TIMEOUT_MS);
    }
    daemon_free(d);
}

char *tfs_test_daemon_log(const tfs_test_daemon *d)
{
    char *text = d ? read_file(d->log_path, NULL) : NULL;
    return text ? text : xstrdup("");
}

/* ---- config ---- */

void tfs_test_key_sha256_hex(const char *key, char out[65])
{
    unsigned char h[32];
    tfs_http_key_hash(key, h);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static json_t *api_key(const char *name, const char *role, const char *key)
{
    char hex[65];
    tfs_test_key_sha256_hex(key, hex);
    return json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "sha256", hex);
}

json_t *tfs_test_config_new(const char *pacs_db, const char *cama_db, const char *state_db)
{
    char *pacs = tfs_test_pg_conninfo(pacs_db);
    char *cama = tfs_test_pg_conninfo(cama_db);
    char *state = tfs_test_pg_conninfo(state_db);
    json_t *cfg = json_pack(
        "{s:{s:s, s:i}, s:{s:s}, s:s, s:s, s:i, s:i,"
        " s:[o, o, o],"
        " s:{s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}}},"
        " s:[{s:s, s:s, s:s, s:i, s:[{s:s, s:[s, s], s:s}]}]}",
        "listen", "address", "127.0.0.1", "port", 0,
        "state", "conninfo", state,
        "plugin_dir", TFS_PLUGIN_DIR,
        "transform_dir", TFS_SOURCE_DIR "/transforms",
        "roll_year", 2026,
        "workers", 2,
        "api_keys", api_key("reader", "read", TFS_TEST_KEY_READ),
        api_key("operator", "operate", TFS_TEST_KEY_OPERATE),
        api_key("admin", "admin", TFS_TEST_KEY_ADMIN),
        "systems",
        "pacs", "plugin", "pacs", "settings", "conninfo", pacs,
        "cama", "plugin", "cama", "settings", "conninfo", cama,
        "pairs", "name", "pacs-to-cama", "source", "pacs", "target", "cama", "batch_size", 1000,
        "entities", "source", "property", "targets", "pardat", "asmt",
        "script", "pacs_to_cama.lua");
    free(pacs);
    free(cama);
    free(state);
    cr_assert(cfg != NULL, "could not build the test config");
    return cfg;
}

/* ---- HTTP ---- */

typedef struct body_buf {
    char *data;
    size_t len, cap;
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd)
            return 0; /* libcurl reports a write error */
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Copies a header's value when its name matches, trimmed. */
static void take_header(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
        return;
    const char *v = line + nlen + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - v);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    tfs_test_response *r = userdata;
    size_t n = size * nmemb;
    /* A new status line (after a 100 Continue) starts a new set of headers. */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        r->content_type[0] = r->allow[0] = r->www_authenticate[0] = r->location[0] = '\0';
        return n;
    }
    take_header(line, n, "Content-Type", r->content_type, sizeof r->content_type);
    take_header(line, n, "Allow", r->allow, sizeof r->allow);
    take_header(line, n, "WWW-Authenticate", r->www_authenticate, sizeof r->www_authenticate);
    take_header(line, n, "Location", r->location, sizeof r->location);
    return n;
}

tfs_test_response tfs_test_http_port(int port, const char *method, const char *path,
                                     const char *key, const char *body)
{
    tfs_test_response r;
    memset(&r, 0, sizeof r);
    CURL *c = curl_easy_init();
    cr_assert(c != NULL, "curl_easy_init failed");

    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path ? path : "/");
    struct curl_slist *headers = NULL;
    char auth[512];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth);
    }
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");

    body_buf b = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* an http_proxy must not catch 127.0.0.1 */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* Every route answers at once (runs go to workers); a hung request fails fast. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (!method)
        method = "GET";
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        /* An empty POST still says Content-Length: 0, as a real client would. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (headers)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = b.data ? b.data : xstrdup("");
        if (b.len > 0)
            r.json = json_loadb(r.body, b.len, JSON_DECODE_ANY, NULL);
    } else {
        r.status = 0;
        snprintf(r.error, sizeof r.error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(b.data);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return r;
}

tfs_test_response tfs_test_http(const tfs_test_daemon *d, const char *method, const char *path,
                                const char *key, const char *body)
{
    cr_assert(d != NULL, "tfs_test_http: no daemon");
    return tfs_test_http_port(d->port, method, path, key, body);
}

void tfs_test_response_free(tfs_test_response *r)
{
    if (!r)
        return;
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

json_t *tfs_test_wait_run(const tfs_test_daemon *d, json_int_t run_id, int timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%" JSON_INTEGER_FORMAT, run_id);
    long long deadline = now_ms() + (long long)timeout_s * 1000;
    char last[1024] = "(no answer yet)";
    for (;;) {
        tfs_test_response r = tfs_test_http(d, "GET", path, TFS_TEST_KEY_READ, NULL);
        const char *state = json_string_value(json_object_get(r.json, "state"));
        /* Where a run stops: its final states, and held (it waits for an operator). */
        if (r.status == 200 && state &&
            (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
             strcmp(state, "partial") == 0 || strcmp(state, "cancelled") == 0 ||
             strcmp(state, "held") == 0)) {
            json_t *out = json_incref(r.json);
            tfs_test_response_free(&r);
            return out;
        }
        if (r.status)
            snprintf(last, sizeof last, "%ld %.900s", r.status, r.body);
        else
            snprintf(last, sizeof last, "no answer: %s", r.error);
        tfs_test_response_free(&r);

        const char *why = NULL;
        if (!tfs_test_daemon_alive(d))
            why = "the daemon died";
        else if (now_ms() > deadline)
            why = "timed out";
        if (why) {
            char *tail = file_tail(d->log_path);
            char msg[LOG_TAIL_BYTES + 1];
            snprintf(msg, sizeof msg, "%s", tail);
            free(tail);
            cr_assert_fail("waiting for run %" JSON_INTEGER_FORMAT " (%d s): %s; last status: "
                           "%s\ndaemon log %s:\n%s",
                           run_id, timeout_s, why, last, d->log_path, msg);
        }
        sleep_ms(20);
    }
}

json_int_t tfs_test_start_full(const tfs_test_daemon *d, const char *pair)
{
    char body[256];
    snprintf(body, sizeof body, "{\"pair\": \"%s\"}", pair);
    tfs_test_response r = tfs_test_http(d, "POST", "/sync/full", TFS_TEST_KEY_OPERATE, body);
    json_t *id = json_object_get(r.json, "run_id");
    if (r.status != 202 || !json_is_integer(id)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%ld %s%.900s", r.status, r.error, r.body ? r.body : "");
        tfs_test_response_free(&r);
        cr_assert_fail("POST /sync/full {\"pair\": \"%s\"}: expected 202 with a run_id, got %s",
                       pair, msg);
    }
    json_int_t run_id = json_integer_value(id);
    tfs_test_response_free(&r);
    return run_id;
}

json_t *tfs_test_run_pair(const tfs_test_daemon *d, const char *pair, const char *mode,
                          const char *want)
{
    char path[64], body[256];
    snprintf(path, sizeof path, "/sync/%s", mode);
    snprintf(body, sizeof body, "{\"pair\": \"%s\"}", pair);
    tfs_test_response r = tfs_test_http(d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert_eq(r.status, 202, "POST %s %s: want 202, got %ld %s%s", path, pair, r.status,
                 r.error, r.body ? r.body : "");
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    json_t *run = tfs_test_wait_run(d, id, 120);
    const char *state = json_string_value(json_object_get(run, "state"));
    if (!state || strcmp(state, want) != 0) {
        char *st = json_dumps(run, JSON_COMPACT);
        char *log = tfs_test_daemon_log(d);
        cr_assert_fail("%s run of %s ended %s, not %s: %s\n%s", mode, pair, state, want, st,
                       log);
    }
    return run;
}

long long tfs_test_count(json_t *run, const char *entity, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), entity), what);
    if (!json_is_integer(c)) {
        char *st = json_dumps(json_object_get(run, "counts"), JSON_COMPACT);
        cr_assert_fail("the run's counts have no integer %s.%s: %s", entity, what, st);
    }
    return json_integer_value(c);
}

void tfs_test_assert_audit_verifies(const tfs_test_daemon *d, long long min_entries)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/audit/verify", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET /audit/verify: %ld %s", r.status, r.body);
    cr_assert(json_is_true(json_object_get(r.json, "ok")), "the audit chain does not verify: %s",
              r.body);
    long long n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r.json, "pairs"), i, p)
        n += json_integer_value(json_object_get(p, "entries"));
    cr_assert_geq(n, min_entries, "only %lld audit entries verified: %s", n, r.body);
    tfs_test_response_free(&r);
}

/* ---- files and SQL twins ---- */

char *tfs_test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

char *tfs_test_mapping_sql(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/integration/sql/%s", TFS_SOURCE_DIR, name);
    cr_assert(access(path, R_OK) == 0,
              "the SQL twin %s is missing (the mapping's author ships it beside the script)",
              path);
    char *text = tfs_test_read_file(path);
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ';' || text[len - 1] == ' '))
        text[--len] = '\0';
    char *out = malloc(len * 2 + 1), *o = out;
    cr_assert_not_null(out);
    for (const char *p = text; *p;) {
        if (strncmp(p, ":roll_year", 10) == 0) {
            o += sprintf(o, "2026");
            p += 10;
        } else if (strncmp(p, "--", 2) == 0) {
            while (*p && *p != '\n')
                p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    free(text);
    return out;
}

void tfs_test_copy_between(const char *src_db, const char *query, const char *dst_db,
                           const char *dst_table)
{
    char *src = tfs_test_pg_conninfo(src_db), *dst = tfs_test_pg_conninfo(dst_db);
    tfs_test_copy_conninfo(src, query, dst, dst_table);
    free(src);
    free(dst);
}

static PGconn *connect_conninfo(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    cr_assert(c && PQstatus(c) == CONNECTION_OK, "could not connect to %s: %s", conninfo,
              c ? PQerrorMessage(c) : "out of memory");
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    return c;
}

void tfs_test_copy_conninfo(const char *src_conninfo, const char *query,
                            const char *dst_conninfo, const char *dst_table)
{
    PGconn *src = connect_conninfo(src_conninfo), *dst = connect_conninfo(dst_conninfo);
    /* A twin's planner estimates can be far off (the owndat twin's ranked owners);
     * nested loops over a misestimate take seconds, and the result is the same. */
    PQclear(PQexec(src, "SET enable_nestloop = off"));
    size_t cap = strlen(query) + 64;
    char *sql = malloc(cap);
    cr_assert_not_null(sql);
    snprintf(sql, cap, "COPY (%s) TO STDOUT", query);
    PGresult *r = PQexec(src, sql);
    free(sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COPY_OUT, "%s", PQerrorMessage(src));
    PQclear(r);
    char in[256];
    snprintf(in, sizeof in, "COPY %s FROM STDIN", dst_table);
    r = PQexec(dst, in);
    cr_assert_eq(PQresultStatus(r), PGRES_COPY_IN, "%s", PQerrorMessage(dst));
    PQclear(r);
    char *buf;
    int n;
    while ((n = PQgetCopyData(src, &buf, 0)) > 0) {
        cr_assert_eq(PQputCopyData(dst, buf, n), 1);
        PQfreemem(buf);
    }
    cr_assert_eq(PQputCopyEnd(dst, NULL), 1);
    r = PQgetResult(dst);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(dst));
    PQclear(r);
    while ((r = PQgetResult(src)))
        PQclear(r);
    while ((r = PQgetResult(dst)))
        PQclear(r);
    PQfinish(src);
    PQfinish(dst);
}

static json_int_t scalar_count(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

void tfs_test_assert_matches_twin(const char *pacs_conninfo, const char *cama_db,
                                  const char *table, const char *cols, const char *twin_sql)
{
    char expected[96], sql[4096];
    snprintf(expected, sizeof expected, "expected_%s", table);
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s AS SELECT %s FROM %s WHERE false",
             expected, expected, cols, table);
    tfs_test_pg_exec(cama_db, sql);
    char *q = tfs_test_mapping_sql(twin_sql);
    char *cama = tfs_test_pg_conninfo(cama_db);
    tfs_test_copy_conninfo(pacs_conninfo, q, cama, expected);
    free(cama);
    free(q);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    json_int_t got = scalar_count(cama_db, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", expected);
    json_int_t want = scalar_count(cama_db, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM ((SELECT %s FROM %s EXCEPT ALL SELECT * FROM %s)"
             " UNION ALL (SELECT * FROM %s EXCEPT ALL SELECT %s FROM %s)) d",
             cols, table, expected, expected, cols, table);
    json_int_t diff = scalar_count(cama_db, sql);
    if (diff == 0 && got == want)
        return;
    snprintf(sql, sizeof sql,
             "SELECT string_agg(x, E'\\n') FROM (SELECT * FROM ("
             "(SELECT 'cama:  ' || a::text AS x FROM (SELECT %s FROM %s EXCEPT ALL"
             " SELECT * FROM %s) a LIMIT 3) UNION ALL"
             "(SELECT 'twin:  ' || b::text FROM (SELECT * FROM %s EXCEPT ALL SELECT %s"
             " FROM %s) b LIMIT 3)) y) z",
             cols, table, expected, expected, cols, table);
    char *ex = tfs_test_pg_scalar(cama_db, sql);
    cr_assert_fail("%s: %lld rows, the SQL twin %s gives %lld; %lld rows differ, e.g.\n%s",
                   table, (long long)got, twin_sql, (long long)want, (long long)diff,
                   ex ? ex : "");
}
