/* tests/integration/reload_test.c — SIGHUP and POST /admin/reload re-read the config file:
 * a schedule added takes effect (runs by actor "scheduler" appear), a key added works and
 * a key removed gets 401, and a broken config is refused with the reason in the log while
 * the daemon keeps answering with the old keys and pairs; two entries of one key (or one
 * name) are refused the same way, naming both entries. Every wait is on a state the
 * daemon shows (its log, the state store, an API answer), never a sleep.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS_EMPTY, NULL, NULL, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(reload, .init = setup, .fini = teardown, .timeout = 120);

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

/* A copy of the config the daemon was started with, to change and write back. */
static json_t *config_copy(void)
{
    return json_deep_copy(d->config);
}

/* Writes cfg (borrowed) as the daemon's config file, atomically. */
static void config_write(const json_t *cfg)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.new", d->config_path);
    cr_assert_eq(json_dump_file(cfg, tmp, JSON_INDENT(2)), 0, "could not write %s", tmp);
    cr_assert_eq(rename(tmp, d->config_path), 0);
}

static void config_write_text(const char *text)
{
    FILE *f = fopen(d->config_path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* Counts the occurrences of needle in the daemon's log. */
static int log_count(const char *needle)
{
    char *log = tfs_test_daemon_log(d);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* Sends SIGHUP and waits until the log has one more line with needle (10 s at most). */
static void sighup_and_wait_log(const char *needle)
{
    int before = log_count(needle);
    cr_assert_eq(kill(d->pid, SIGHUP), 0);
    long long t0 = now_ms();
    while (log_count(needle) <= before) {
        cr_assert(tfs_test_daemon_alive(d), "tfsyncd died on SIGHUP");
        if (now_ms() - t0 > 10000) {
            char *log = tfs_test_daemon_log(d);
            cr_assert_fail("no \"%s\" in the log 10 s after SIGHUP:\n%s", needle, log);
        }
        pause_ms(20);
    }
}

static long status_of(const char *method, const char *path, const char *key)
{
    tfs_test_response r = tfs_test_http(d, method, path, key, NULL);
    long status = r.status;
    tfs_test_response_free(&r);
    return status;
}

static json_t *key_entry(const char *name, const char *role, const char *key)
{
    char hex[65];
    tfs_test_key_sha256_hex(key, hex);
    return json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "sha256", hex);
}

Test(reload, sighup_adds_a_schedule)
{
    char *n = tfs_test_pg_scalar(state, "SELECT count(*) FROM tfsync.runs");
    cr_assert_str_eq(n, "0", "runs before any schedule");
    free(n);
    json_t *cfg = config_copy();
    json_t *pair = json_array_get(json_object_get(cfg, "pairs"), 0);
    json_object_set_new(pair, "schedule", json_pack("{s:s}", "incremental_every", "1s"));
    config_write(cfg);
    json_decref(cfg);
    sighup_and_wait_log("reloaded");

    /* The scheduler follows the new config: incremental runs by actor scheduler appear. */
    long long t0 = now_ms();
    for (;;) {
        char *c = tfs_test_pg_scalar(state, "SELECT count(*) FROM tfsync.runs WHERE actor ="
                                            " 'scheduler' AND mode = 'incremental'");
        int got = atoi(c);
        free(c);
        if (got >= 2)
            break;
        cr_assert_lt(now_ms() - t0, 20000, "no scheduled runs 20 s after the reload");
        pause_ms(50);
    }
    tfs_test_response r = tfs_test_http(d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"incremental_every\":\"1s\"") != NULL,
              "GET /sync/status does not show the schedule: %s", r.body);
    tfs_test_response_free(&r);
}

Test(reload, sighup_refuses_a_broken_config_and_keeps_the_old_one)
{
    config_write_text("{ \"listen\": ");
    sighup_and_wait_log("could not reload the config");
    cr_assert_eq(status_of("GET", "/pairs", TFS_TEST_KEY_READ), 200);

    /* A config that parses but is wrong: the log names the path. */
    json_t *cfg = config_copy();
    json_object_set_new(cfg, "workerz", json_integer(3));
    config_write(cfg);
    json_decref(cfg);
    sighup_and_wait_log("could not reload the config");
    char *log = tfs_test_daemon_log(d);
    cr_assert(strstr(log, "workerz: unknown key") != NULL, "the log does not name the error:\n%s",
              log);
    free(log);

    /* The old keys and pairs still answer. */
    tfs_test_response r = tfs_test_http(d, "GET", "/pairs", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "pacs-to-cama") != NULL, "%s", r.body);
    tfs_test_response_free(&r);
    cr_assert_eq(status_of("GET", "/health", NULL), 200);
}

Test(reload, sighup_swaps_the_api_keys)
{
    cr_assert_eq(status_of("GET", "/pairs", "new-key"), 401);
    json_t *cfg = config_copy();
    json_t *keys = json_object_get(cfg, "api_keys");
    json_array_remove(keys, 0); /* the read key */
    json_array_append_new(keys, key_entry("newbie", "read", "new-key"));
    config_write(cfg);
    json_decref(cfg);
    sighup_and_wait_log("reloaded");
    cr_assert_eq(status_of("GET", "/pairs", "new-key"), 200, "the key added does not work");
    cr_assert_eq(status_of("GET", "/pairs", TFS_TEST_KEY_READ), 401,
                 "the key removed still works");
    cr_assert_eq(status_of("GET", "/pairs", TFS_TEST_KEY_OPERATE), 200);
}

Test(reload, admin_reload_says_what_changed_or_why_not)
{
    json_t *cfg = config_copy();
    json_t *pair = json_array_get(json_object_get(cfg, "pairs"), 0);
    json_object_set_new(pair, "batch_size", json_integer(500));
    json_array_append_new(json_object_get(cfg, "api_keys"), key_entry("ops2", "operate", "k2"));
    config_write(cfg);

    cr_assert_eq(status_of("POST", "/admin/reload", TFS_TEST_KEY_OPERATE), 403);
    tfs_test_response r = tfs_test_http(d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *changed = json_object_get(json_object_get(r.json, "pairs"), "changed");
    cr_assert_str_eq(json_string_value(json_array_get(changed, 0)), "pacs-to-cama", "%s",
                     r.body);
    json_t *added = json_object_get(json_object_get(r.json, "api_keys"), "added");
    cr_assert_str_eq(json_string_value(json_array_get(added, 0)), "ops2", "%s", r.body);
    tfs_test_response_free(&r);
    cr_assert_eq(status_of("GET", "/pairs", "k2"), 200);

    /* A setting the running daemon cannot change: 400 with the reason, old config kept. */
    json_object_set_new(cfg, "workers", json_integer(5));
    config_write(cfg);
    json_decref(cfg);
    r = tfs_test_http(d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert(strstr(r.body, "workers cannot change") != NULL, "%s", r.body);
    tfs_test_response_free(&r);
    cr_assert_eq(status_of("GET", "/pairs", "k2"), 200);
}

/* A second entry with the admin key's hash and role read: refused naming both entries, and
 * the admin key keeps its role (a first-wins lookup would have kept it too, a last-wins one
 * not: the point is that the daemon says so instead of choosing). */
Test(reload, duplicate_key_hash_or_name_refused_naming_both)
{
    json_t *cfg = config_copy();
    json_t *keys = json_object_get(cfg, "api_keys");
    size_t n = json_array_size(keys);
    json_array_append_new(keys, key_entry("twin", "read", TFS_TEST_KEY_ADMIN));
    config_write(cfg);
    tfs_test_response r = tfs_test_http(d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    char want[160];
    snprintf(want, sizeof want, "api_keys[%zu].sha256: the same key as api_keys[", n);
    const char *detail = json_string_value(json_object_get(r.json, "detail"));
    cr_assert(detail && strstr(detail, want), "%s", r.body);
    cr_assert(strstr(detail, "this entry is \"twin\", role \"read\"") != NULL, "%s", r.body);
    tfs_test_response_free(&r);
    cr_assert_eq(status_of("POST", "/admin/reload", TFS_TEST_KEY_ADMIN), 400);

    json_array_remove(keys, n);
    json_array_append_new(keys, key_entry("admin", "read", "another-key"));
    config_write(cfg);
    json_decref(cfg);
    r = tfs_test_http(d, "POST", "/admin/reload", TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    snprintf(want, sizeof want, "api_keys[%zu].name: \"admin\" is already the name of "
             "api_keys[", n);
    detail = json_string_value(json_object_get(r.json, "detail"));
    cr_assert(detail && strstr(detail, want), "%s", r.body);
    tfs_test_response_free(&r);
    cr_assert_eq(status_of("GET", "/pairs", "another-key"), 401);
}
