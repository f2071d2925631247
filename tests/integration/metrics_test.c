/* tests/integration/metrics_test.c — GET /metrics and the JSON log lines (issue 12, items
 * 1 and 2), against the real daemon over HTTP with the real pacs and cama plugins on a
 * real PostgreSQL.
 *
 * A full run of 10,000 parcels is held half-way (a transaction of the test has inserted,
 * uncommitted, the CAMA row of a parcel in its sixth batch, so the run's upsert of it waits
 * on the row lock) once its status shows committed batches: /metrics scraped then and after
 * the run passes `promtool check metrics` (plain build only: TFS_TEST_PROMTOOL), and its
 * record counters equal the run's own counts; the batches' memory shows while it runs and
 * is given back (0) once it has ended. HTTP counters move by exactly the requests
 * made, labelled by route template; no record key and no raw path appear; without a key
 * it is 401 until metrics.public (set by a reload) opens it. With log.format "json", a run
 * with a failing record and a reload: every line of the daemon's log is a JSON object with
 * time, level, module and message; the run's lines carry run and pair, its batches' lines
 * the entity, the failed record's line its key; the access lines their fields. The open
 * conflicts and dead letters gauges follow an operator's resolve, replay and discard at the
 * next scrape. Every wait polls a state with a deadline, never a sleep.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"

TestSuite(metrics, .timeout = 300);

typedef struct env {
    char *pacs, *cama, *state;
    char tdir[256]; /* a copy of the transforms, when a test breaks the script */
    tfs_test_daemon *d;
} env;

static void env_up(env *e, const char *pacs_template)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(pacs_template, "pacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "cama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
}

static void env_down(env *e)
{
    if (e->d) {
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    if (e->tdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->tdir);
        cr_expect_eq(system(cmd), 0);
    }
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET /metrics with key (NULL: none): the body, owned; the test fails unless it is 200
 * in the text format. */
static char *scrape(const tfs_test_daemon *d, const char *key)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/metrics", key, NULL);
    cr_assert_eq(r.status, 200, "GET /metrics: %ld %s", r.status, r.body);
    cr_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    char *body = r.body;
    r.body = NULL;
    tfs_test_response_free(&r);
    return body;
}

/* The value of the series written exactly as series ("name{labels}"), or -1 when the
 * exposition has no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* `promtool check metrics` on text: the plain build runs it (and fails when promtool is
 * missing: scripts/deps.sh installs Debian's prometheus); the sanitizer build leaves the
 * outside tool alone. */
static void promtool_check(const char *text, const char *when)
{
#ifdef TFS_TEST_PROMTOOL
    char path[] = "/tmp/tfs_metrics_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int status = pclose(p);
    unlink(path);
    cr_assert_eq(status, 0,
                 "promtool check metrics failed on the scrape %s (exit %d; is promtool "
                 "installed? scripts/deps.sh installs Debian's prometheus):\n%s",
                 when, status, out);
#else
    (void)text;
    (void)when;
#endif
}

/* The run's status, polled until pred says it is under way as wanted (or the deadline). */
static json_t *wait_status(const tfs_test_daemon *d, json_int_t run_id,
                           int (*pred)(json_t *), int timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    long long deadline = now_ms() + 1000LL * timeout_s;
    for (;;) {
        tfs_test_response r = tfs_test_http(d, "GET", path, TFS_TEST_KEY_READ, NULL);
        if (r.status == 200 && pred(r.json)) {
            json_t *j = json_incref(r.json);
            tfs_test_response_free(&r);
            return j;
        }
        cr_assert(now_ms() < deadline, "the run never got there: %ld %s", r.status, r.body);
        tfs_test_response_free(&r);
        pause_ms(20);
    }
}

static long long count_of(json_t *run, const char *what)
{
    json_t *v = json_object_get(json_object_get(json_object_get(run, "counts"), "property"),
                                what);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Running, with at least two batches committed. */
static int under_way(json_t *run)
{
    const char *st = json_string_value(json_object_get(run, "state"));
    return st && strcmp(st, "running") == 0 && count_of(run, "read") >= 2000;
}

#define REC(what)                                                                           \
    "tfsync_records_processed_total{pair=\"" PAIR "\",entity=\"property\",outcome=\"" what  \
    "\"}"
#define READ_SERIES "tfsync_records_read_total{pair=\"" PAIR "\",entity=\"property\"}"

Test(metrics, scraped_during_and_after_a_run_it_passes_promtool_and_matches_the_run)
{
    env e;
    env_up(&e, TFS_TEST_TMPL_PACS10K);
    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    char *before = scrape(e.d, TFS_TEST_KEY_READ);
    promtool_check(before, "before any run");
    cr_expect_eq(sample(before, READ_SERIES), -1, "no series before a run:\n%s", before);

    /* Hold the run in its sixth batch: the CAMA row of a parcel there, inserted and not
     * committed, makes the run's upsert of it wait. */
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT parid FROM " TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id OFFSET 5500 LIMIT 1");
    char *parid = tfs_test_pg_scalar(e.pacs, sql);
    cr_assert_not_null(parid);
    PGconn *lock = tfs_test_pg_connect(e.cama);
    snprintf(sql, sizeof sql, "BEGIN; INSERT INTO pardat (parid, taxyr) VALUES ('%s', 2026)",
             parid);
    PGresult *res = PQexec(lock, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
    PQclear(res);

    json_int_t run_id = tfs_test_start_full(e.d, PAIR);
    json_t *mid = wait_status(e.d, run_id, under_way, 120);
    char *during = scrape(e.d, TFS_TEST_KEY_READ);
    promtool_check(during, "during the run");
    cr_assert_gt(sample(during, READ_SERIES), 0, "records counted while it runs:\n%s", during);
    cr_assert_gt(sample(during, REC("written")), 0, "%s", during);
    cr_assert_eq(sample(during, "tfsync_runs_total{pair=\"" PAIR
                                "\",mode=\"full\",state=\"succeeded\"}"),
                 -1, "the run has not ended:\n%s", during);
    /* Batches in flight hold memory: at least a chunk of each arena read into. */
    cr_assert_gt(sample(during, "tfsync_batch_memory_bytes"), 64 * 1024, "%s", during);
    /* Still held: the status says so after the scrape, too. */
    json_decref(mid);
    mid = wait_status(e.d, run_id, under_way, 10);
    json_decref(mid);

    res = PQexec(lock, "ROLLBACK");
    PQclear(res);
    PQfinish(lock);
    json_t *run = tfs_test_wait_run(e.d, run_id, 240);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded", "%s",
                     json_dumps(run, 0));

    /* The worker gives its batches' memory back once the run has left it (just after the
     * run's final state is written): every worker that ever ran one keeps its pipeline,
     * so memory held there would stay held between runs, once per worker. */
    char *after = NULL;
    for (long long until = now_ms() + 10000;;) {
        free(after);
        after = scrape(e.d, TFS_TEST_KEY_READ);
        if (sample(after, "tfsync_batch_memory_bytes") == 0 || now_ms() > until)
            break;
        pause_ms(20);
    }
    cr_expect_eq(sample(after, "tfsync_batch_memory_bytes"), 0,
                 "a worker holds its last run's batches:\n%s", after);
    promtool_check(after, "after the run");
    long long read = count_of(run, "read");
    cr_assert_gt(read, 0);
    cr_expect_eq(sample(after, READ_SERIES), (double)read, "read: %lld in the run\n%s", read,
                 after);
    static const char *const outcomes[] = {"written", "unchanged", "skipped", "deleted",
                                           "swept"};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        char series[256];
        snprintf(series, sizeof series, REC("%s"), outcomes[i]);
        cr_expect_eq(sample(after, series), (double)count_of(run, outcomes[i]),
                     "%s: %lld in the run", outcomes[i], count_of(run, outcomes[i]));
    }
    long long failed = count_of(run, "read_failed") + count_of(run, "transform_failed") +
                       count_of(run, "validate_failed") + count_of(run, "write_failed");
    cr_expect_eq(sample(after, REC("failed")), (double)failed);
    cr_expect_eq(sample(after, "tfsync_runs_total{pair=\"" PAIR
                               "\",mode=\"full\",state=\"succeeded\"}"),
                 1, "%s", after);
    cr_expect_eq(sample(after, "tfsync_run_duration_seconds_count{pair=\"" PAIR
                               "\",mode=\"full\",state=\"succeeded\"}"),
                 1);
    /* 10,000 records in batches of 1000 (and an empty last read, which commits nothing
     * new but its cursor). */
    double batches = sample(after, "tfsync_batch_duration_seconds_count{pair=\"" PAIR
                                   "\",entity=\"property\"}");
    cr_expect(batches >= (double)read / 1000, "batches: %g\n%s", batches, after);
    cr_expect_eq(sample(after, "tfsync_conflicts_open{pair=\"" PAIR "\"}"), 0);
    cr_expect_eq(sample(after, "tfsync_dead_letters_open{pair=\"" PAIR "\"}"), 0);
    cr_expect_eq(sample(after, "tfsync_breaker_state{system=\"cama\",state=\"closed\"}"), 1);
    cr_expect_gt(sample(after, "tfsync_lua_seconds_total{pair=\"" PAIR
                               "\",entity=\"property\"}"),
                 0);
    cr_expect_gt(sample(after, "tfsync_lua_memory_bytes"), 0);
    cr_expect_gt(sample(after, "process_resident_memory_bytes"), 1e6);
    cr_expect_gt(sample(after, "tfsync_http_open_connections"), 0,
                 "the scrape's own connection is open");
    /* Never a record key: keys are "prop_id|year", parcel ids are the CAMA keys. */
    cr_expect_null(strchr(after, '|'), "a record key in the metrics:\n%s", after);
    cr_expect_null(strstr(after, parid), "a parcel id in the metrics");

    free(parid);
    free(before);
    free(during);
    free(after);
    json_decref(run);
    env_down(&e);
}

#define HTTP_SERIES(route, method, status)                                                  \
    "tfsync_http_requests_total{route=\"" route "\",method=\"" method "\",status=\"" status \
    "\"}"

static double delta(const char *a, const char *b, const char *series)
{
    double x = sample(a, series), y = sample(b, series);
    return (y < 0 ? 0 : y) - (x < 0 ? 0 : x);
}

static void request(const tfs_test_daemon *d, const char *method, const char *path,
                    const char *key, long want)
{
    tfs_test_response r = tfs_test_http(d, method, path, key, NULL);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    tfs_test_response_free(&r);
}

Test(metrics, http_counters_move_by_the_requests_made_and_public_opens_it_without_a_key)
{
    env e;
    env_up(&e, TFS_TEST_TMPL_PACS_EMPTY);
    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    e.d = tfs_test_daemon_start(cfg);

    /* Not public: a missing or wrong key is 401, asking for a Bearer key. */
    tfs_test_response r = tfs_test_http(e.d, "GET", "/metrics", NULL, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert(strstr(r.content_type, "application/problem+json"), "%s", r.content_type);
    cr_assert(strstr(r.www_authenticate, "Bearer"), "WWW-Authenticate: %s", r.www_authenticate);
    cr_assert(strstr(r.body, "metrics.public"), "the detail says how to open it: %s", r.body);
    tfs_test_response_free(&r);
    request(e.d, "GET", "/metrics", "wrong-key", 401);

    char *a = scrape(e.d, TFS_TEST_KEY_READ);
    for (int i = 0; i < 3; i++)
        request(e.d, "GET", "/sync/status", TFS_TEST_KEY_READ, 200);
    request(e.d, "GET", "/sync/status/424242", TFS_TEST_KEY_READ, 404);
    request(e.d, "GET", "/no/such/secret-path", TFS_TEST_KEY_READ, 404);
    request(e.d, "GET", "/no/such/other-path", TFS_TEST_KEY_READ, 404);
    request(e.d, "GET", "/pairs", NULL, 401);
    request(e.d, "HEAD", "/health", NULL, 200);
    char *b = scrape(e.d, TFS_TEST_KEY_READ);
    promtool_check(b, "after the requests");

    cr_expect_eq(delta(a, b, HTTP_SERIES("/sync/status", "GET", "200")), 3, "%s", b);
    cr_expect_eq(delta(a, b, HTTP_SERIES("/sync/status/{run_id}", "GET", "404")), 1, "%s", b);
    cr_expect_eq(delta(a, b, HTTP_SERIES("unmatched", "GET", "404")), 2, "%s", b);
    cr_expect_eq(delta(a, b, HTTP_SERIES("/pairs", "GET", "401")), 1, "%s", b);
    cr_expect_eq(delta(a, b, HTTP_SERIES("/health", "HEAD", "200")), 1, "%s", b);
    /* The first scrape is counted once it is answered; the second is not in itself. */
    cr_expect_eq(delta(a, b, HTTP_SERIES("/metrics", "GET", "200")), 1, "%s", b);
    cr_expect_eq(delta(a, b, "tfsync_http_request_duration_seconds_count{route=\"/sync/"
                             "status\",method=\"GET\",status=\"200\"}"),
                 3);
    cr_expect_eq(sample(b, HTTP_SERIES("/metrics", "GET", "401")), 2, "%s", b);
    /* Templates, never the path: the ids and the unknown paths are nowhere. */
    cr_expect_null(strstr(b, "424242"));
    cr_expect_null(strstr(b, "secret-path"));

    /* metrics.public by a reload: open without a key, and a key still works. */
    json_decref(cfg);
    cfg = json_deep_copy(e.d->config); /* as written: its port and ready file too */
    json_object_set_new(cfg, "metrics", json_pack("{sb}", "public", 1));
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.new", e.d->config_path);
    cr_assert_eq(json_dump_file(cfg, tmp, JSON_INDENT(2)), 0);
    cr_assert_eq(rename(tmp, e.d->config_path), 0);
    request(e.d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, 200);
    char *open = scrape(e.d, NULL);
    promtool_check(open, "without a key");
    cr_expect_gt(sample(open, HTTP_SERIES("/admin/reload", "POST", "200")), 0);
    free(scrape(e.d, TFS_TEST_KEY_READ));

    /* A bad value is refused with its path, the public setting kept. */
    json_object_set_new(cfg, "metrics", json_pack("{ss}", "public", "yes"));
    cr_assert_eq(json_dump_file(cfg, tmp, JSON_INDENT(2)), 0);
    cr_assert_eq(rename(tmp, e.d->config_path), 0);
    r = tfs_test_http(e.d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, NULL);
    cr_expect_neq(r.status, 200, "%s", r.body);
    cr_expect(r.body && strstr(r.body, "metrics.public"), "names the key: %s", r.body);
    tfs_test_response_free(&r);
    free(scrape(e.d, NULL));

    free(a);
    free(b);
    free(open);
    json_decref(cfg);
    env_down(&e);
}

/* ---- logs ---- */

static int ended(json_t *run)
{
    const char *st = json_string_value(json_object_get(run, "state"));
    return st && strcmp(st, "running") != 0 && strcmp(st, "queued") != 0;
}

static int str_is(json_t *o, const char *k)
{
    return json_is_string(json_object_get(o, k));
}

Test(metrics, json_logs_every_line_parses_and_carries_the_run_and_the_failed_key)
{
    env e;
    env_up(&e, TFS_TEST_TMPL_PACS10K);
    /* A copy of the transforms whose script fails one parcel. */
    snprintf(e.tdir, sizeof e.tdir, "/tmp/tfs_metrics_tx_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/transforms' '%s'", e.tdir,
             TFS_SOURCE_DIR, e.tdir);
    cr_assert_eq(system(cmd), 0);
    char *bad = tfs_test_pg_scalar(e.pacs, "SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS
                                           " a ORDER BY prop_id OFFSET 1234 LIMIT 1");
    char path[300];
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e.tdir);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    /* The error text has quotes and a newline-free traceback: it must be escaped. */
    fprintf(f, "\nlocal shipped_map = map\n"
               "function map(rec)\n"
               "  if rec.prop_id == %s then error('bad \"parcel\"\\tback\\\\slash') end\n"
               "  return shipped_map(rec)\n"
               "end\n",
            bad);
    cr_assert_eq(fclose(f), 0);
    char key[64];
    snprintf(key, sizeof key, "%s|2026", bad);

    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    json_object_set_new(cfg, "transform_dir", json_string(e.tdir));
    json_object_set_new(cfg, "log", json_pack("{ssss}", "format", "json", "access", "all"));
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    json_int_t run_id = tfs_test_start_full(e.d, PAIR);
    json_t *run = wait_status(e.d, run_id, ended, 240);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "partial", "%s",
                     json_dumps(run, 0));
    cr_assert_eq(count_of(run, "transform_failed"), 1);
    json_decref(run);
    /* The failed record in the metrics: an outcome, and a dead letter counted at the run's
     * end. */
    char *m = scrape(e.d, TFS_TEST_KEY_READ);
    cr_expect_eq(sample(m, REC("failed")), 1, "%s", m);
    cr_expect_eq(sample(m, "tfsync_dead_letters_open{pair=\"" PAIR "\"}"), 1, "%s", m);
    cr_expect_eq(sample(m, "tfsync_runs_total{pair=\"" PAIR
                           "\",mode=\"full\",state=\"partial\"}"),
                 1);
    free(m);
    request(e.d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, 200);
    request(e.d, "GET", "/no/such%01path", TFS_TEST_KEY_READ, 404);

    /* Stopped first, so every line it writes is in (the stop's lines too): the folder is
     * kept for that, and removed here. */
    char log_path[320], dir[256];
    json_t *again = json_deep_copy(e.d->config);
    snprintf(log_path, sizeof log_path, "%s", e.d->log_path);
    snprintf(dir, sizeof dir, "%s", e.d->dir);
    int keep = getenv("TFS_TEST_KEEP") != NULL;
    setenv("TFS_TEST_KEEP", "1", 1);
    int status = tfs_test_daemon_stop_status(e.d);
    if (!keep)
        unsetenv("TFS_TEST_KEEP");
    e.d = NULL;
    char *log = tfs_test_read_file(log_path);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect(keep || system(cmd) == 0);
    cr_assert_not_null(log);
    cr_assert_eq(status, 0, "tfsyncd exited with %d:\n%s", status, log);

    regex_t rfc3339;
    cr_assert_eq(regcomp(&rfc3339,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    int lines = 0, run_lines = 0, entity_lines = 0, key_lines = 0, access_lines = 0;
    int reload_lines = 0, stop_lines = 0, odd_path = 0;
    char run_text[32];
    snprintf(run_text, sizeof run_text, "run %lld", (long long)run_id);
    for (char *line = log, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        cr_assert_not_null(next, "the last line is not whole: %s", line);
        *next++ = '\0';
        lines++;
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        cr_assert(json_is_object(o), "line %d is not a JSON object (%s): %s", lines, jerr.text,
                  line);
        cr_assert(str_is(o, "time") && str_is(o, "level") && str_is(o, "module") &&
                      str_is(o, "message"),
                  "line %d lacks time, level, module or message: %s", lines, line);
        cr_assert_eq(regexec(&rfc3339, json_string_value(json_object_get(o, "time")), 0, NULL,
                             0),
                     0, "time is not RFC 3339 UTC with milliseconds: %s", line);
        const char *level = json_string_value(json_object_get(o, "level"));
        cr_assert(strcmp(level, "debug") == 0 || strcmp(level, "info") == 0 ||
                      strcmp(level, "warn") == 0 || strcmp(level, "error") == 0,
                  "%s", line);
        const char *module = json_string_value(json_object_get(o, "module"));
        const char *message = json_string_value(json_object_get(o, "message"));
        json_t *run_field = json_object_get(o, "run");
        if (strcmp(module, "pipeline") == 0 && strstr(message, run_text)) {
            /* Every line of the run, whichever of its threads wrote it. */
            cr_assert_eq(json_integer_value(run_field), run_id, "%s", line);
            cr_assert_str_eq(json_string_value(json_object_get(o, "pair")), PAIR, "%s", line);
            run_lines++;
        }
        if (json_object_get(o, "entity")) {
            const char *ent = json_string_value(json_object_get(o, "entity"));
            cr_assert(ent && (strcmp(ent, "property") == 0 || strcmp(ent, "sale") == 0),
                      "an entity of the pair: %s", line);
            cr_assert_eq(json_integer_value(run_field), run_id, "%s", line);
            entity_lines++;
        }
        if (json_object_get(o, "key")) {
            cr_assert_str_eq(json_string_value(json_object_get(o, "key")), key, "%s", line);
            cr_assert_eq(json_integer_value(run_field), run_id, "%s", line);
            cr_assert_str_eq(json_string_value(json_object_get(o, "entity")), "property");
            cr_assert(strstr(message, "bad \"parcel\"\tback\\slash"),
                      "the script's error, escaped and read back whole: %s", line);
            key_lines++;
        }
        if (strcmp(module, "access") == 0 && json_object_get(o, "status")) {
            cr_assert(str_is(o, "client") && str_is(o, "method") && str_is(o, "path") &&
                          json_is_integer(json_object_get(o, "status")) &&
                          json_is_number(json_object_get(o, "duration_ms")),
                      "%s", line);
            const char *p = json_string_value(json_object_get(o, "path"));
            if (strcmp(p, "/admin/reload") == 0) {
                cr_assert_str_eq(json_string_value(json_object_get(o, "key_name")), "admin");
                cr_assert_eq(json_integer_value(json_object_get(o, "status")), 200);
            }
            odd_path += strncmp(p, "/no/such", 8) == 0;
            access_lines++;
        }
        reload_lines += strstr(message, "reload") != NULL;
        stop_lines += strcmp(message, "stopped") == 0;
        json_decref(o);
    }
    regfree(&rfc3339);
    cr_expect_gt(run_lines, 1, "the run's start and end lines:\n%s", log);
    cr_expect_gt(entity_lines, 0);
    cr_expect_eq(key_lines, 1, "one line for the failed record");
    cr_expect_gt(access_lines, 3);
    cr_expect_eq(odd_path, 1, "the path with a control byte is one line");
    cr_expect_gt(reload_lines, 0);
    cr_expect_eq(stop_lines, 1);
    free(log);

    /* Started again, before any run: the open dead letter is counted from the store. */
    json_object_del(again, "listen");
    e.d = tfs_test_daemon_start(again);
    json_decref(again);
    m = scrape(e.d, TFS_TEST_KEY_READ);
    cr_expect_eq(sample(m, "tfsync_dead_letters_open{pair=\"" PAIR "\"}"), 1, "%s", m);
    cr_expect_eq(sample(m, "tfsync_conflicts_open{pair=\"" PAIR "\"}"), 0);
    cr_expect_eq(sample(m, READ_SERIES), -1, "counters start from zero");
    free(m);
    env_down(&e);
    free(bad);
}

#define CONFLICTS_OPEN "tfsync_conflicts_open{pair=\"" PAIR "\"}"
#define DEAD_OPEN "tfsync_dead_letters_open{pair=\"" PAIR "\"}"

/* The open gauges of a scrape right now. */
static void expect_open(const tfs_test_daemon *d, double conflicts, double dead, const char *after)
{
    char *m = scrape(d, TFS_TEST_KEY_READ);
    cr_expect_eq(sample(m, CONFLICTS_OPEN), conflicts, "open conflicts after %s:\n%s", after, m);
    cr_expect_eq(sample(m, DEAD_OPEN), dead, "open dead letters after %s:\n%s", after, m);
    free(m);
}

/* The ids of the pair's open dead letters, in id order, into ids[n]. */
static void open_dead_letters(const tfs_test_daemon *d, json_int_t *ids, size_t n)
{
    tfs_test_response r =
        tfs_test_http(d, "GET", "/dead-letters?pair=" PAIR "&status=open", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *list = json_object_get(r.json, "dead_letters");
    cr_assert_eq(json_array_size(list), n, "%s", r.body);
    for (size_t i = 0; i < n; i++)
        ids[i] = json_integer_value(json_object_get(json_array_get(list, i), "id"));
    tfs_test_response_free(&r);
}

/* An operator's resolve, replay and discard move the open gauges at the next scrape, not
 * at the pair's next run: two dead letters (the script fails two parcels) and one manual
 * conflict (the parcel edited in CAMA and in PACS); the conflict resolved, one dead letter
 * replayed after the script is fixed, the other discarded, each seen at once. */
Test(metrics, open_gauges_follow_resolves_replays_and_discards)
{
    env e;
    env_up(&e, TFS_TEST_TMPL_PACS10K);
    snprintf(e.tdir, sizeof e.tdir, "/tmp/tfs_metrics_open_%d", (int)getpid());
    char cmd[600], path[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/transforms' '%s'", e.tdir,
             TFS_SOURCE_DIR, e.tdir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e.tdir);
    char *good = tfs_test_read_file(path);
    char *bad1 = tfs_test_pg_scalar(e.pacs, "SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS
                                            " a ORDER BY prop_id OFFSET 100 LIMIT 1");
    char *bad2 = tfs_test_pg_scalar(e.pacs, "SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS
                                            " a ORDER BY prop_id OFFSET 200 LIMIT 1");
    char *edited = tfs_test_pg_scalar(e.pacs, "SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS
                                              " a ORDER BY prop_id OFFSET 300 LIMIT 1");
    char *parid = tfs_test_pg_scalar(e.pacs, "SELECT parid FROM " TFS_TEST_ACTIVE_PROPS
                                             " a ORDER BY prop_id OFFSET 300 LIMIT 1");
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fprintf(f, "\nlocal shipped_map = map\n"
               "function map(rec)\n"
               "  if rec.prop_id == %s or rec.prop_id == %s then error('broken') end\n"
               "  return shipped_map(rec)\n"
               "end\n",
            bad1, bad2);
    cr_assert_eq(fclose(f), 0);

    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    json_object_set_new(cfg, "transform_dir", json_string(e.tdir));
    json_object_set_new(json_array_get(json_object_get(cfg, "pairs"), 0), "conflicts",
                        json_pack("{ss}", "policy", "manual"));
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    json_decref(tfs_test_run_pair(e.d, PAIR, "full", "partial"));
    expect_open(e.d, 0, 2, "the full run");

    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE pardat SET zoning = 'APPR', wen = now(), who = 'appraiser'"
             " WHERE parid = '%s' AND taxyr = 2026",
             parid);
    tfs_test_pg_exec(e.cama, sql);
    snprintf(sql, sizeof sql, "UPDATE situs SET situs_street = 'Gauge Street' WHERE prop_id = %s",
             edited);
    tfs_test_pg_exec(e.pacs, sql);
    json_t *run = tfs_test_run_pair(e.d, PAIR, "incremental", "partial");
    cr_assert_eq(count_of(run, "conflicts"), 1, "%s", json_dumps(run, 0));
    json_decref(run);
    expect_open(e.d, 1, 2, "the incremental run");

    tfs_test_response r =
        tfs_test_http(e.d, "GET", "/sync/conflicts?pair=" PAIR "&status=open", TFS_TEST_KEY_READ,
                      NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *c = json_array_get(json_object_get(r.json, "conflicts"), 0);
    cr_assert_not_null(c, "%s", r.body);
    snprintf(path, sizeof path, "/sync/conflicts/%lld/resolve",
             (long long)json_integer_value(json_object_get(c, "id")));
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "{\"choose\": \"source\"}");
    cr_assert_eq(r.status, 200, "resolve: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    expect_open(e.d, 0, 2, "the last conflict resolved");

    json_int_t ids[2];
    open_dead_letters(e.d, ids, 2);
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e.tdir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(good, f) >= 0 && fclose(f) == 0, 1, "the script put back");
    snprintf(path, sizeof path, "/dead-letters/%lld/replay", (long long)ids[0]);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, NULL);
    cr_assert_eq(r.status, 200, "replay: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    expect_open(e.d, 0, 1, "a dead letter replayed");

    snprintf(path, sizeof path, "/dead-letters/%lld", (long long)ids[1]);
    r = tfs_test_http(e.d, "DELETE", path, TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 200, "discard: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    expect_open(e.d, 0, 0, "the last dead letter discarded");

    env_down(&e);
    free(good);
    free(bad1);
    free(bad2);
    free(edited);
    free(parid);
}
