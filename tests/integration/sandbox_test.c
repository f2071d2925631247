/* tests/integration/sandbox_test.c — the Lua sandbox through the real daemon (hardening
 * issue, item 1): a run over the county's parcels where three records hang the script (a
 * __close that loops after an error, a backtracking pattern, table.concat over an endless
 * C __index) ends in reasonable time with those three dead-lettered, each naming the
 * script, the line, the budget and the key, and every other record written; and SIGTERM
 * while a script is stuck in a loop no instruction budget would end stops the daemon
 * within 5 s, cleanly (the worker noticed the stop, nothing was abandoned), after which
 * the restarted daemon resumes the run and the default wall-clock budget turns the hangs
 * into dead letters instead of resuming into them.
 *
 * A real PostgreSQL, the real daemon with the real pacs and cama plugins, over HTTP; runs
 * awaited by polling their state, never by sleeping.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"

TestSuite(sandbox_daemon, .timeout = 300);

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(none)";
}

static json_int_t int_of(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

typedef struct env {
    char *pacs, *cama, *state;
    char tdir[64];
    json_t *cfg;
    tfs_test_daemon *d;
    char *props[3]; /* the prop_ids whose records hang */
    int lines[3];   /* the line each hangs on */
} env;

/* The n-th (0-based) exposed active property, by prop_id. */
static char *nth_prop(env *e, int n)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id"
                              " OFFSET %d LIMIT 1", n);
    char *v = tfs_test_pg_scalar(e->pacs, sql);
    cr_assert_not_null(v);
    return v;
}

static int shipped_lines(void)
{
    char *text = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.lua");
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Clones the databases, copies transforms/ and appends to pacs_to_cama.lua a map() that
 * hangs on three properties (the three ways) and maps the others as shipped. */
static void env_up(env *e, json_t *lua)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "sbpacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "sbcama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "sbstate");
    snprintf(e->tdir, sizeof e->tdir, "/tmp/tfs-sb-transforms-XXXXXX");
    cr_assert_not_null(mkdtemp(e->tdir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, e->tdir);
    cr_assert_eq(system(cmd), 0);
    for (int i = 0; i < 3; i++)
        e->props[i] = nth_prop(e, 40 + 1500 * i);
    char path[160];
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e->tdir);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    int base = shipped_lines();
    fprintf(f, "\nlocal shipped_map = map\n"                                         /* +2 */
               "function map(rec)\n"                                                 /* +3 */
               "  if rec.prop_id == %s then\n"                                       /* +4 */
               "    local x <close> = setmetatable({}, {__close = function()\n"      /* +5 */
               "      while true do end end})\n"                                     /* +6 */
               "    error('boom')\n"                                                 /* +7 */
               "  elseif rec.prop_id == %s then\n"                                   /* +8 */
               "    string.find(string.rep('a', 5000), '.-.-.-.-.-.-.-.-b')\n"       /* +9 */
               "  elseif rec.prop_id == %s then\n"                                   /* +10 */
               "    local t = setmetatable({}, {__index = table.concat})\n"          /* +11 */
               "    table.concat(t, '', 1, 1 << 62)\n"                               /* +12 */
               "  end\n"
               "  return shipped_map(rec)\n"
               "end\n",
            e->props[0], e->props[1], e->props[2]);
    cr_assert_eq(fclose(f), 0);
    e->lines[0] = base + 6;
    e->lines[1] = base + 9;
    e->lines[2] = base + 12;
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    json_object_set_new(e->cfg, "transform_dir", json_string(e->tdir));
    if (lua)
        json_object_set_new(e->cfg, "lua", lua);
}

static void env_down(env *e)
{
    if (e->d) {
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->tdir);
    cr_expect_eq(system(cmd), 0);
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    for (int i = 0; i < 3; i++)
        free(e->props[i]);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

static int is_final(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "partial") ||
           !strcmp(state, "failed") || !strcmp(state, "cancelled");
}

/* The run's status once it has ended (owned); fails past timeout_s. */
static json_t *wait_final(env *e, json_int_t run_id, int timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    long long deadline = now_ms() + timeout_s * 1000LL;
    for (;;) {
        tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
        if (r.status == 200 && is_final(str_of(r.json, "state"))) {
            json_t *out = json_incref(r.json);
            tfs_test_response_free(&r);
            return out;
        }
        cr_assert(tfs_test_daemon_alive(e->d), "the daemon died waiting for run %lld",
                  (long long)run_id);
        cr_assert_lt(now_ms(), deadline, "run %lld still not ended after %d s: %s",
                     (long long)run_id, timeout_s, r.body ? r.body : r.error);
        tfs_test_response_free(&r);
        pause_ms(20);
    }
}

/* The dead letters of the pair (owned). */
static json_t *dead_letters(env *e)
{
    tfs_test_response r =
        tfs_test_http(e->d, "GET", "/dead-letters?pair=" PAIR, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body ? r.body : r.error);
    json_t *out = json_incref(json_object_get(r.json, "dead_letters"));
    tfs_test_response_free(&r);
    return out;
}

/* Each of the hanging properties has its dead letter, naming script, line, budget, key;
 * want[i] is what its reason must say of the budget. */
static void expect_hangs_dead_lettered(env *e, const char *const want[3])
{
    json_t *list = dead_letters(e);
    cr_expect_eq(json_array_size(list), 3, "%s", json_dumps(list, JSON_INDENT(1)));
    for (int i = 0; i < 3; i++) {
        json_t *found = NULL, *d;
        size_t k;
        json_array_foreach(list, k, d) {
            const char *key = str_of(d, "source_key");
            if (strncmp(key, e->props[i], strlen(e->props[i])) == 0 &&
                (key[strlen(e->props[i])] == '|' || key[strlen(e->props[i])] == '\0'))
                found = d;
        }
        cr_assert_not_null(found, "no dead letter for property %s: %s", e->props[i],
                           json_dumps(list, JSON_COMPACT));
        cr_expect_str_eq(str_of(found, "stage"), "transform");
        const char *reason = json_string_value(json_array_get(json_object_get(found, "reasons"), 0));
        cr_assert_not_null(reason);
        char where[64], rec[96];
        snprintf(where, sizeof where, "pacs_to_cama.lua:%d:", e->lines[i]);
        snprintf(rec, sizeof rec, "(record %s", e->props[i]);
        cr_expect(strstr(reason, where), "property %s: no %s in: %s", e->props[i], where,
                  reason);
        cr_expect(strstr(reason, want[i]), "property %s: no \"%s\" in: %s", e->props[i],
                  want[i], reason);
        cr_expect(strstr(reason, rec), "property %s: no key in: %s", e->props[i], reason);
    }
    json_decref(list);
}

/* The property entity's counts: 3 failed in transform, every other record written. */
static void expect_others_written(json_t *run)
{
    json_t *c = json_object_get(json_object_get(run, "counts"), "property");
    cr_assert_not_null(c, "%s", json_dumps(run, JSON_COMPACT));
    cr_expect_eq(int_of(c, "transform_failed"), 3, "%s", json_dumps(c, JSON_COMPACT));
    cr_expect_gt(int_of(c, "read"), 1000);
    cr_expect_eq(int_of(c, "written") + int_of(c, "skipped") + 3, int_of(c, "read"), "%s",
                 json_dumps(c, JSON_COMPACT));
}

Test(sandbox_daemon, hanging_records_become_dead_letters_and_the_rest_is_written)
{
    env e;
    /* the wall clock out of the way (a sanitizer build on a busy machine is slow) */
    env_up(&e, json_pack("{sI sI}", "instructions", (json_int_t)1000000, "record_ms",
                         (json_int_t)60000));
    e.d = tfs_test_daemon_start(e.cfg);
    long long t0 = now_ms();
    json_int_t id = tfs_test_start_full(e.d, PAIR);
    json_t *run = wait_final(&e, id, 120);
    long long took = now_ms() - t0;
    cr_expect_str_eq(str_of(run, "state"), "partial", "%s", json_dumps(run, JSON_COMPACT));
    expect_others_written(run);
    const char *want[3] = {"instruction budget exceeded",
                           "instruction budget exceeded (1000000 instructions, "
                           "lua.instructions) in string.find",
                           "in table.concat"};
    expect_hangs_dead_lettered(&e, want);
    cr_log_info("the run with three hanging records took %lld ms", took);
    json_decref(run);
    env_down(&e);
}

Test(sandbox_daemon, sigterm_stops_a_stuck_script_within_5_s_and_the_restart_does_not_hang)
{
    env e;
    /* no instruction budget to speak of and an hour of wall clock: only the stop ends it */
    env_up(&e, json_pack("{sI sI}", "instructions", (json_int_t)1 << 40, "record_ms",
                         (json_int_t)600000));
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t id = tfs_test_start_full(e.d, PAIR);
    /* stuck: the run is running and no batch has committed past the first hang for a
     * while; seen from outside as the script's start in the log and the run still going */
    long long deadline = now_ms() + 60000;
    for (;;) {
        char *log = tfs_test_daemon_log(e.d);
        int loaded = strstr(log, "loaded script \"pacs_to_cama.lua\"") != NULL;
        free(log);
        if (loaded)
            break;
        cr_assert_lt(now_ms(), deadline, "the script never loaded");
        pause_ms(20);
    }
    /* the first hanging property comes within the first batches: wait until the cama side
     * stops growing for a second while the run is still running */
    char *prev = NULL;
    long long still_since = now_ms();
    for (;;) {
        char *n = tfs_test_pg_scalar(e.cama, "SELECT count(*) FROM pardat");
        if (prev && strcmp(prev, n) == 0) {
            if (now_ms() - still_since > 1000)
                break;
        } else {
            still_since = now_ms();
        }
        free(prev);
        prev = n;
        cr_assert_lt(now_ms(), deadline, "the run never got stuck");
        pause_ms(50);
    }
    free(prev);
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    tfs_test_response r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_str_eq(str_of(r.json, "state"), "running", "%s", r.body);
    tfs_test_response_free(&r);

    long long t0 = now_ms();
    char *log = tfs_test_daemon_log(e.d);
    int status = tfs_test_daemon_stop_status(e.d);
    long long took = now_ms() - t0;
    e.d = NULL;
    cr_expect_eq(status, 0, "tfsyncd exited with %d:\n%s", status, log);
    cr_expect_lt(took, 5000, "SIGTERM took %lld ms", took);
    free(log);
    cr_log_info("SIGTERM with a stuck script: stopped in %lld ms", took);

    /* the restart resumes the run; the default wall clock (lua.record_ms) ends each hang */
    json_object_set_new(json_object_get(e.cfg, "lua"), "record_ms", json_integer(1000));
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = wait_final(&e, id, 120);
    cr_expect_str_eq(str_of(run, "state"), "partial", "%s", json_dumps(run, JSON_COMPACT));
    const char *want[3] = {"budget exceeded", "wall-clock budget exceeded (1000 ms per record",
                           "in table.concat"};
    expect_hangs_dead_lettered(&e, want);
    json_decref(run);
    env_down(&e);
}
