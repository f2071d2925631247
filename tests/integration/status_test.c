/* tests/integration/status_test.c — GET /sync/status and /sync/status/{run_id} answered
 * from memory (core/status_cache.c): a run's end and its counts are in the very next GET
 * although the periodic refresh is an hour away (this node's commits are read back as it
 * makes them), the answers carry as_of and an ETag (If-None-Match gives 304), and a
 * thousand GETs of the status routes, /pairs and /plugins cost the state store no
 * transaction. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void adjust(json_t *cfg)
{
    /* Only what this node commits can make the answers move within the tests. */
    json_object_set_new(cfg, "api", json_pack("{ss}", "status_refresh", "1h"));
}

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS10K, NULL, adjust, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(status, .init = setup, .fini = teardown, .timeout = 300);

static json_t *db_run(json_int_t id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT json_build_object('state', state, 'counts', counts)::text"
             " FROM tfsync.runs WHERE run_id = %lld",
             (long long)id);
    char *text = tfs_test_pg_scalar(state, sql);
    cr_assert_not_null(text, "no run %lld in the store", (long long)id);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    return j;
}

/* counts.<entity> without the stage timings, which the store and the answer share anyway. */
static void assert_same_counts(json_t *answer_counts, json_t *db_counts, const char *where)
{
    const char *ent;
    json_t *c;
    json_object_foreach(db_counts, ent, c) {
        json_t *a = json_object_get(answer_counts, ent);
        cr_assert_not_null(a, "%s: no counts.%s", where, ent);
        const char *k;
        json_t *v;
        json_object_foreach(c, k, v) {
            if (!json_is_integer(v))
                continue;
            cr_assert_eq(json_integer_value(json_object_get(a, k)), json_integer_value(v),
                         "%s: counts.%s.%s is %lld, the store says %lld", where, ent, k,
                         (long long)json_integer_value(json_object_get(a, k)),
                         (long long)json_integer_value(v));
        }
    }
}

Test(status, a_finished_run_and_its_counts_are_in_the_very_next_get)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_string(json_object_get(r.json, "as_of")), "no as_of: %s", r.body);
    tfs_test_response_free(&r);

    json_int_t id = tfs_test_start_full(d, "pacs-to-cama");
    /* Queued, in the answer right after the 202. */
    r = tfs_test_http(d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
    json_t *lr = json_object_get(json_object_get(json_object_get(r.json, "pairs"),
                                                 "pacs-to-cama"),
                                 "last_run");
    cr_assert_eq(json_integer_value(json_object_get(lr, "run_id")), id,
                 "the run just started is not the last run: %s", r.body);
    tfs_test_response_free(&r);

    /* Polled until it ends (the refresh is an hour away: only the run's own commits can
     * bring its end here), then the next GET of either route has the store's state and
     * counts. */
    json_t *run = tfs_test_wait_run(d, id, 120);
    json_t *db = db_run(id);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded");
    cr_assert_str_eq(json_string_value(json_object_get(db, "state")), "succeeded");
    assert_same_counts(json_object_get(run, "counts"), json_object_get(db, "counts"),
                       "GET /sync/status/{run_id}");
    cr_assert_gt(tfs_test_count(run, "property", "written"), 0);
    r = tfs_test_http(d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    lr = json_object_get(json_object_get(json_object_get(r.json, "pairs"), "pacs-to-cama"),
                         "last_run");
    cr_assert_eq(json_integer_value(json_object_get(lr, "run_id")), id, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(lr, "state")), "succeeded", "%s",
                     r.body);
    assert_same_counts(json_object_get(lr, "counts"), json_object_get(db, "counts"),
                       "GET /sync/status");
    /* The full run's checkpoint of each entity, committed with its last batch. */
    json_t *cp = json_object_get(json_object_get(json_object_get(json_object_get(
                                     json_object_get(r.json, "pairs"), "pacs-to-cama"),
                                     "entities"), "property"),
                                 "checkpoint");
    cr_assert_eq(json_integer_value(json_object_get(cp, "run_id")), id, "%s", r.body);
    tfs_test_response_free(&r);
    json_decref(run);
    json_decref(db);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    size_t len = size * n;
    if (len > 6 && strncasecmp(buf, "ETag: ", 6) == 0) {
        char *etag = ud;
        size_t m = len - 6;
        while (m && (buf[6 + m - 1] == '\r' || buf[6 + m - 1] == '\n'))
            m--;
        snprintf(etag, 64, "%.*s", (int)m, buf + 6);
    }
    return len;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

/* GET path with If-None-Match (NULL: none): the status, the ETag into etag. */
static long conditional_get(const char *path, const char *inm, char etag[64])
{
    CURL *c = curl_easy_init();
    char url[256], auth[64], cond[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->port, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", TFS_TEST_KEY_READ);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    if (inm) {
        snprintf(cond, sizeof cond, "If-None-Match: %s", inm);
        h = curl_slist_append(h, cond);
    }
    etag[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, etag);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    cr_assert_eq(curl_easy_perform(c), CURLE_OK, "GET %s", path);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

Test(status, answers_carry_an_etag_and_an_unchanged_one_is_304)
{
    const char *paths[] = {"/sync/status", "/pairs", "/plugins"};
    for (size_t i = 0; i < 3; i++) {
        char etag[64], again[64];
        cr_assert_eq(conditional_get(paths[i], NULL, etag), 200, "%s", paths[i]);
        cr_assert(etag[0] == '"', "%s has no ETag", paths[i]);
        cr_assert_eq(conditional_get(paths[i], etag, again), 304, "%s with If-None-Match %s",
                     paths[i], etag);
        cr_assert_str_eq(again, etag, "%s: the 304 carries the ETag", paths[i]);
        cr_assert_eq(conditional_get(paths[i], "\"other\"", again), 200, "%s", paths[i]);
    }
}

static long long xacts(void)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '%s'",
             state);
    char *v = tfs_test_pg_scalar("postgres", sql);
    long long n = v ? atoll(v) : -1;
    free(v);
    return n;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(status, a_thousand_status_gets_cost_the_state_store_no_transaction)
{
    json_int_t id = tfs_test_start_full(d, "pacs-to-cama");
    json_decref(tfs_test_wait_run(d, id, 120));
    char run_path[64];
    snprintf(run_path, sizeof run_path, "/sync/status/%lld", (long long)id);
    const char *paths[] = {"/sync/status", run_path, "/pairs", "/plugins"};
    /* The store's statistics are flushed by its backends about once a second: what the
     * daemon's background threads (lease polls, the prober's ping) do over the same span
     * is measured first, with no requests. */
    long long t0 = xacts();
    pause_ms(3000);
    long long idle = xacts() - t0;
    long long before = xacts();
    for (int i = 0; i < 1000; i++) {
        tfs_test_response r = tfs_test_http(d, "GET", paths[i % 4], TFS_TEST_KEY_READ, NULL);
        cr_assert_eq(r.status, 200, "GET %s: %ld %s", paths[i % 4], r.status, r.body);
        tfs_test_response_free(&r);
    }
    pause_ms(3000);
    long long during = xacts() - before;
    /* The span is longer than the idle one (the requests take a second or two): twice
     * its figure, and a margin far below the 500 transactions or more of 1000 requests
     * half of which asked the store. */
    cr_assert_lt(during, 2 * idle + 200,
                 "1000 GETs of status routes cost the state store %lld transactions (%lld "
                 "when idle over 3 s)",
                 during, idle);
}
