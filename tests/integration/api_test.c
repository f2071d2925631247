/* tests/integration/api_test.c — every API error answered with the right status and an
 * application/problem+json body that says what to fix, the daemon still answering after
 * each; and 409 while a run holds the pair (held deterministically with a table lock). */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void adjust(json_t *cfg)
{
    json_object_set_new(json_object_get(cfg, "listen"), "max_body_bytes", json_integer(4096));
    /* A short header deadline, so the daemon's wiring of it is tested in a second. */
    json_object_set_new(json_object_get(cfg, "listen"), "header_timeout", json_string("1s"));
}

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS10K, NULL, adjust, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 300);

static void still_up(void)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200, "the daemon must still answer: %ld %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok", "%s", r.body);
    tfs_test_response_free(&r);
}

/* Asserts a problem+json answer of the given status whose type ends in slug and whose
 * detail contains hint. */
static void expect_problem(const char *method, const char *path, const char *key,
                           const char *body, long status, const char *slug, const char *hint)
{
    tfs_test_response r = tfs_test_http(d, method, path, key, body);
    cr_assert_eq(r.status, status, "%s %s: want %ld, got %ld %s", method, path, status,
                 r.status, r.body);
    cr_assert(strstr(r.content_type, "application/problem+json"), "%s %s: content type %s",
              method, path, r.content_type);
    cr_assert_not_null(r.json, "%s %s: body is not JSON: %s", method, path, r.body);
    const char *type = json_string_value(json_object_get(r.json, "type"));
    cr_assert(type && strlen(type) >= strlen(slug) &&
                  strcmp(type + strlen(type) - strlen(slug), slug) == 0,
              "%s %s: type %s, want .../%s", method, path, type, slug);
    cr_assert_not_null(json_string_value(json_object_get(r.json, "title")));
    cr_assert_eq(json_integer_value(json_object_get(r.json, "status")), status);
    const char *detail = json_string_value(json_object_get(r.json, "detail"));
    cr_assert(detail && strstr(detail, hint), "%s %s: detail \"%s\" should say \"%s\"", method,
              path, detail, hint);
    tfs_test_response_free(&r);
    still_up();
}

Test(api, errors_are_problems_and_the_daemon_stays_up)
{
    expect_problem("POST", "/sync/full", "operate-key", "{\"pair\": ", 400, "malformed-json",
                   "not valid JSON");
    expect_problem("POST", "/sync/full", "operate-key", "[1, 2]", 400, "invalid-body",
                   "must be a JSON object");
    expect_problem("POST", "/sync/full", "operate-key", "", 400, "invalid-body", "empty");
    expect_problem("POST", "/sync/full", "operate-key", "{\"pair\": 42}", 400, "invalid-field",
                   "\"pair\" must be a string");
    expect_problem("POST", "/sync/full", "operate-key", "{}", 400, "invalid-field",
                   "\"pair\" is missing");
    expect_problem("POST", "/sync/full", "operate-key", "{\"pair\": \"x\", \"fast\": true}",
                   400, "invalid-field", "unknown field \"fast\"");
    expect_problem("POST", "/sync/full", "operate-key", "{\"pair\": \"pacs-to-gis\"}", 404,
                   "unknown-pair", "pacs-to-cama");
    expect_problem("GET", "/sync/status/999999", "read-key", NULL, 404, "unknown-run",
                   "no run 999999");
    expect_problem("GET", "/sync/status/abc", "read-key", NULL, 400, "invalid-run-id",
                   "positive integers");
    expect_problem("DELETE", "/sync/full", "operate-key", NULL, 405, "method-not-allowed",
                   "POST");
    expect_problem("GET", "/no/such/route", "read-key", NULL, 404, "not-found", "openapi");
    expect_problem("POST", "/sync/full", NULL, "{\"pair\": \"pacs-to-cama\"}", 401,
                   "unauthorized", "Bearer");
    expect_problem("POST", "/sync/full", "wrong-key", "{\"pair\": \"pacs-to-cama\"}", 401,
                   "unauthorized", "Bearer");
    expect_problem("POST", "/sync/full", "read-key", "{\"pair\": \"pacs-to-cama\"}", 403,
                   "forbidden", "operate");
    char *big = malloc(10000);
    memset(big, ' ', 9999);
    big[0] = '{';
    big[9998] = '}';
    big[9999] = '\0';
    expect_problem("POST", "/sync/full", "operate-key", big, 413, "body-too-large", "4096");
    free(big);
}

Test(api, a_running_pair_answers_409_with_its_run_id)
{
    /* Hold the target table: the run starts and blocks at its first write. */
    PGconn *lock = tfs_test_pg_connect(cama);
    PGresult *res = PQexec(lock, "BEGIN; LOCK TABLE pardat IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
    PQclear(res);

    tfs_test_response r = tfs_test_http(d, "POST", "/sync/full", "operate-key",
                                        "{\"pair\": \"pacs-to-cama\"}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_int_t first = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);

    r = tfs_test_http(d, "POST", "/sync/full", "operate-key", "{\"pair\": \"pacs-to-cama\"}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(r.content_type, "application/problem+json"));
    cr_assert_eq(json_integer_value(json_object_get(r.json, "run_id")), first,
                 "the 409 names the running run: %s", r.body);
    tfs_test_response_free(&r);
    still_up();

    /* The status of the held run is readable meanwhile. */
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)first);
    r = tfs_test_http(d, "GET", path, "read-key", NULL);
    cr_assert_eq(r.status, 200);
    const char *st = json_string_value(json_object_get(r.json, "state"));
    cr_assert(st && (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0), "%s", r.body);
    tfs_test_response_free(&r);

    res = PQexec(lock, "COMMIT");
    PQclear(res);
    PQfinish(lock);
    json_t *run = tfs_test_wait_run(d, first, 300);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded");
    json_decref(run);

    r = tfs_test_http(d, "POST", "/sync/full", "operate-key", "{\"pair\": \"pacs-to-cama\"}");
    cr_assert_eq(r.status, 202, "once the run ended the pair can run again: %s", r.body);
    json_int_t second = json_integer_value(json_object_get(r.json, "run_id"));
    cr_assert_gt(second, first);
    tfs_test_response_free(&r);
    run = tfs_test_wait_run(d, second, 300);
    json_decref(run);
}

Test(api, status_lists_pairs_and_plugins)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/sync/status", "read-key", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *p = json_object_get(json_object_get(r.json, "pairs"), "pacs-to-cama");
    cr_assert_not_null(p, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(p, "source")), "pacs");
    cr_assert(json_is_null(json_object_get(p, "last_run")), "no run yet: %s", r.body);
    tfs_test_response_free(&r);

    r = tfs_test_http(d, "GET", "/plugins", "read-key", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\"name\":\"pacs\"") && strstr(r.body, "\"name\":\"cama\""), "%s",
              r.body);
    tfs_test_response_free(&r);

    r = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(r.json, "systems"), "cama"), "status")),
                     "ok", "%s", r.body);
    tfs_test_response_free(&r);
}

/* Client mistakes are 4xx about the client's own input, never the state store's text:
 * bytes that are not UTF-8 in a query (PostgreSQL refused them as a 503 before), a date
 * out of range (its error text reached the client), duplicate body keys (last one won and
 * started a run); /health without a key shows states only. */
Test(api, client_errors_are_4xx_and_internals_stay_inside)
{
    expect_problem("GET", "/audit?pair=%ff", "read-key", NULL, 400, "invalid-query",
                   "query parameter \"pair\" is not valid UTF-8");
    expect_problem("GET", "/audit?entity=pardat&key=%c3%28", "read-key", NULL, 400,
                   "invalid-query", "\"key\" is not valid UTF-8");
    const char *bad_times[] = {"/audit?since=2026-13-45T00:00:00Z",
                               "/audit?since=2026-02-30", "/audit?until=2026-01-01T25:00:00Z",
                               "/audit?since=99999-01-01", "/audit?since=2026-01-01T00:00:00+99"};
    for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++) {
        tfs_test_response r = tfs_test_http(d, "GET", bad_times[i], "read-key", NULL);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad_times[i], r.status, r.body);
        const char *detail = json_string_value(json_object_get(r.json, "detail"));
        cr_assert(detail && strstr(detail, "is not a time: ") && strstr(detail, "ISO 8601"),
                  "%s: %s", bad_times[i], r.body);
        cr_assert_null(strstr(r.body, "PostgreSQL"), "%s", r.body);
        cr_assert_null(strstr(r.body, "ERROR"), "%s", r.body);
        tfs_test_response_free(&r);
    }
    tfs_test_response r =
        tfs_test_http(d, "GET", "/audit?since=2026-11-21T08:00:00.5-05:00", "read-key", NULL);
    cr_assert_eq(r.status, 200, "a valid time: %s", r.body);
    tfs_test_response_free(&r);

    expect_problem("POST", "/sync/full", "operate-key",
                   "{\"pair\": \"x\", \"pair\": \"pacs-to-cama\"}", 400, "duplicate-key",
                   "the key \"pair\" appears twice");
    expect_problem("POST", "/sync/validate", "operate-key",
                   "{\"pair\": \"pacs-to-cama\", \"sample\": 1, \"sample\": 2}", 400,
                   "duplicate-key", "\"sample\"");
    r = tfs_test_http(d, "GET", "/sync/status", "read-key", NULL);
    json_t *p = json_object_get(json_object_get(r.json, "pairs"), "pacs-to-cama");
    cr_assert(json_is_null(json_object_get(p, "last_run")), "no run was started: %s", r.body);
    tfs_test_response_free(&r);

    r = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *store = json_object_get(r.json, "state_store");
    json_t *cama_h = json_object_get(json_object_get(r.json, "systems"), "cama");
    cr_assert_not_null(json_object_get(store, "status"), "%s", r.body);
    cr_assert_not_null(json_object_get(cama_h, "status"), "%s", r.body);
    cr_assert_null(json_object_get(store, "error"), "an error text without a key: %s", r.body);
    cr_assert_null(json_object_get(cama_h, "error"), "%s", r.body);
    cr_assert_null(json_object_get(cama_h, "plugin"), "%s", r.body);
    tfs_test_response_free(&r);
    r = tfs_test_http(d, "GET", "/health", "read-key", NULL);
    cama_h = json_object_get(json_object_get(r.json, "systems"), "cama");
    cr_assert_str_eq(json_string_value(json_object_get(cama_h, "plugin")), "cama", "%s", r.body);
    cr_assert(json_object_get(cama_h, "error"), "with a key the error field is there: %s",
              r.body);
    tfs_test_response_free(&r);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The daemon's listen.header_timeout (1 s here) reaches its server: a client dripping
 * header bytes is closed at the deadline and logged with its address, while /health
 * answers a fresh client meanwhile. */
Test(api, a_client_dripping_headers_is_closed_at_the_configured_deadline)
{
    int fd = tfs_test_connect(d->port);
    long long t0 = mono_ms();
    const char *head = "GET /health HTTP/1.1\r\nHost: x\r\n";
    cr_assert_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    int closed = 0;
    while (!closed && mono_ms() - t0 < 4000) {
        (void)send(fd, "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            char buf[256];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            closed = n == 0 || n < 0;
        }
        if (!closed && mono_ms() - t0 > 500)
            still_up();
    }
    long long took = mono_ms() - t0;
    close(fd);
    cr_assert(closed, "the dripping client was not closed within 4 s");
    cr_assert(took >= 900 && took <= 2500, "closed after %lld ms with a 1 s deadline", took);
    long long end = mono_ms() + 3000;
    char *log = NULL;
    do {
        free(log);
        log = tfs_test_daemon_log(d);
    } while (!strstr(log, "closed: headers not complete") && mono_ms() < end &&
             poll(NULL, 0, 20) == 0);
    cr_assert(strstr(log, "[access] 127.0.0.1 ? /health - - closed: headers not complete by "
                          "the header deadline"),
              "%s", log);
    cr_assert(strstr(log, "headers within 1000 ms"), "the daemon logs its limits: %s", log);
    free(log);
}
