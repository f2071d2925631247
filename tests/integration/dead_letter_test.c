/* tests/integration/dead_letter_test.c — dead letters end to end (issue 8, items 4 and 5):
 * a broken script line, a rule violation and a problem the script's validate() finds land
 * in dead letters with every reason; a replay that fails again keeps the record with its
 * attempt count; the script and the source fixed, a replay takes them through to CAMA,
 * which then equals the SQL twin; a discard needs the admin role and is audited; an
 * ordinary run that gets a key through closes its dead letter; a source that cannot fetch
 * replays the stored record; the CLI's dead-letters commands.
 *
 * A real PostgreSQL, the real daemon with the real pacs and cama plugins, called over HTTP
 * (and through the built tfsync). Each test clones its own databases and copies the
 * transform folder so it can break and fix the script. Runs are awaited by polling their
 * state, never by sleeping; every run's counts are checked to add up.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define TFSYNC TFS_BINARY_DIR "/tfsync"

TestSuite(dead_letters, .timeout = 300);

/* ---- small utilities ---- */

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

static long long scalar_ll(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    long long x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

static json_int_t int_of(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(none)";
}

/* ---- the environment ---- */

typedef struct env {
    char *pacs, *cama, *state;
    char tdir[64]; /* a copy of transforms/ the test may break and fix */
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static void env_up(env *e, int rules)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "dlpacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "dlcama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "dlstate");
    snprintf(e->tdir, sizeof e->tdir, "/tmp/tfs-dl-transforms-XXXXXX");
    cr_assert_not_null(mkdtemp(e->tdir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, e->tdir);
    cr_assert_eq(system(cmd), 0);
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    json_object_set_new(e->cfg, "transform_dir", json_string(e->tdir));
    if (rules) {
        /* The rules the demo ships: every generated parcel passes them. */
        char *text = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.rules.json");
        json_error_t je;
        json_t *r = json_loads(text, 0, &je);
        cr_assert_not_null(r, "pacs_to_cama.rules.json: %s", je.text);
        free(text);
        json_object_set_new(json_array_get(json_object_get(e->cfg, "pairs"), 0), "rules", r);
    }
}

static void env_start(env *e)
{
    e->d = tfs_test_daemon_start(e->cfg);
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
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

/* The lines of the shipped mapping: where an appended line lands. */
static int shipped_lines(void)
{
    char *text = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.lua");
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Breaks the copy of pacs_to_cama.lua: one line fails on properties a and b; with c, a
 * validate() finds a problem with property c. Returns the line that fails. */
static int break_script(env *e, const char *a, const char *b, const char *c)
{
    char path[160];
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e->tdir);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fprintf(f, "\nlocal shipped_map = map\n"
               "function map(rec)\n"
               "  if rec.prop_id == %s or rec.prop_id == %s then\n"
               "    return { pardat = { parid = rec.no_such_field.x } }\n"
               "  end\n"
               "  return shipped_map(rec)\n"
               "end\n",
            a, b);
    if (c)
        fprintf(f, "function validate(rec, out)\n"
                   "  if rec.prop_id == %s then\n"
                   "    return { 'pardat.luc: ' .. tostring(out.pardat.luc) .. ' is not for sale' }\n"
                   "  end\n"
                   "end\n",
                c);
    cr_assert_eq(fclose(f), 0);
    return shipped_lines() + 5;
}

/* Puts the shipped script back (a new file: its stamp changes, so it is reloaded). */
static void fix_script(env *e)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s/transforms/pacs_to_cama.lua' '%s/pacs_to_cama.lua.new'"
                              " && mv '%s/pacs_to_cama.lua.new' '%s/pacs_to_cama.lua'",
             TFS_SOURCE_DIR, e->tdir, e->tdir, e->tdir);
    cr_assert_eq(system(cmd), 0);
}

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

/* ---- runs ---- */

static int is_final(const char *state)
{
    return state && (!strcmp(state, "succeeded") || !strcmp(state, "partial") ||
                     !strcmp(state, "failed") || !strcmp(state, "cancelled"));
}

/* Polls the run until it ends (partial included); its status (owned). */
static json_t *wait_final(env *e, json_int_t run_id)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    long long deadline = now_ms() + 120000;
    for (;;) {
        tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
        if (r.status == 200 && is_final(str_of(r.json, "state"))) {
            json_t *out = json_incref(r.json);
            tfs_test_response_free(&r);
            return out;
        }
        cr_assert(tfs_test_daemon_alive(e->d), "the daemon died waiting for run %lld",
                  (long long)run_id);
        cr_assert_lt(now_ms(), deadline, "run %lld never ended: %s", (long long)run_id,
                     r.body ? r.body : r.error);
        tfs_test_response_free(&r);
        pause_ms(20);
    }
}

/* Every entity's counts add up: read = written + unchanged + skipped + conflicts + failed
 * + deleted. Returns the property entity's counts (borrowed from run). */
static json_t *counts_add_up(json_t *run)
{
    const char *entity;
    json_t *c;
    json_t *counts = json_object_get(run, "counts");
    cr_assert(json_is_object(counts) && json_object_size(counts) > 0, "no counts: %s",
              json_dumps(run, JSON_COMPACT));
    json_object_foreach(counts, entity, c) {
        json_int_t failed = int_of(c, "transform_failed") + int_of(c, "validate_failed") +
                            int_of(c, "write_failed");
        cr_assert_eq(int_of(c, "failed"), failed, "%s: failed is the sum of its stages",
                     entity);
        json_int_t sum = int_of(c, "written") + int_of(c, "unchanged") + int_of(c, "skipped") +
                         int_of(c, "conflicts") + failed + int_of(c, "deleted");
        char *text = json_dumps(c, JSON_COMPACT);
        cr_assert_eq(int_of(c, "read"), sum, "%s: the counts do not add up: %s", entity, text);
        free(text);
    }
    return json_object_get(counts, "property");
}

static json_t *full_run(env *e)
{
    json_int_t id = tfs_test_start_full(e->d, PAIR);
    json_t *run = wait_final(e, id);
    cr_assert(strcmp(str_of(run, "state"), "failed") != 0, "the full run failed: %s",
              str_of(run, "error"));
    counts_add_up(run);
    return run;
}

/* A replay request answered (200 with the result, or 202 followed to the run's end); the
 * result with its run_id and state (owned). */
static json_t *replay(env *e, const char *path, const char *body)
{
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert(r.status == 200 || r.status == 202, "POST %s: %ld %s", path, r.status,
              r.body ? r.body : r.error);
    json_int_t run_id = int_of(r.json, "run_id");
    cr_assert_gt(run_id, 0, "no run_id: %s", r.body);
    json_t *out = r.status == 200 ? json_incref(r.json) : NULL;
    tfs_test_response_free(&r);
    json_t *run = wait_final(e, run_id);
    cr_assert_str_eq(str_of(run, "mode"), "replay");
    counts_add_up(run);
    if (!out) {
        out = json_deep_copy(json_object_get(run, "result"));
        json_object_set(out, "state", json_object_get(run, "state"));
        json_object_set_new(out, "run_id", json_integer(run_id));
    }
    cr_assert_str_eq(str_of(out, "state"), str_of(run, "state"));
    json_object_set(out, "run", run);
    json_decref(run);
    return out;
}

/* GET path with the read key, 200 expected; the body (owned). */
static json_t *get_json(env *e, const char *path)
{
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body ? r.body : r.error);
    json_t *out = json_incref(r.json);
    tfs_test_response_free(&r);
    return out;
}

/* The dead letter of key in a listing, or NULL. Borrowed. */
static json_t *letter_of(json_t *list, const char *key)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "dead_letters"), i, d)
        if (strcmp(str_of(d, "source_key"), key) == 0)
            return d;
    return NULL;
}

static int has_reason(const json_t *d, const char *want)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(d, "reasons"), i, r)
        if (json_string_value(r) && strstr(json_string_value(r), want))
            return 1;
    return 0;
}

static int is_version(const char *v)
{
    if (strlen(v) != 12)
        return 0;
    for (; *v; v++)
        if (!strchr("0123456789abcdef", *v))
            return 0;
    return 1;
}

/* ---- the cases ---- */

Test(dead_letters, broken_line_and_rule_land_in_dead_letters_then_replayed_to_the_twin)
{
    env e;
    env_up(&e, 1);
    char *a = nth_prop(&e, 10), *b = nth_prop(&e, 20), *v = nth_prop(&e, 30);
    char ka[64], kb[64], kv[64], sql[1024];
    snprintf(ka, sizeof ka, "%s|2026", a);
    snprintf(kb, sizeof kb, "%s|2026", b);
    snprintf(kv, sizeof kv, "%s|2026", v);
    char *w = nth_prop(&e, 40), kw[64];
    snprintf(kw, sizeof kw, "%s|2026", w);
    int line = break_script(&e, a, b, w);
    /* Property v is assessed above its appraised total: the rule refuses it. */
    snprintf(sql, sizeof sql,
             "CREATE TABLE saved AS SELECT prop_id, prop_val_yr, sup_num, assessed_val FROM"
             " property_val WHERE prop_id = %s AND prop_val_yr = 2026;"
             "UPDATE property_val SET assessed_val = coalesce(land_hstd_val, 0) +"
             " coalesce(land_non_hstd_val, 0) + coalesce(ag_use_val, 0) +"
             " coalesce(imprv_hstd_val, 0) + coalesce(imprv_non_hstd_val, 0) + 5000"
             " WHERE prop_id = %s AND prop_val_yr = 2026",
             v, v);
    tfs_test_pg_exec(e.pacs, sql);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(land_hstd_val, 0) + coalesce(land_non_hstd_val, 0) +"
             " coalesce(ag_use_val, 0) + coalesce(imprv_hstd_val, 0) +"
             " coalesce(imprv_non_hstd_val, 0) FROM property_val WHERE prop_id = %s AND"
             " prop_val_yr = 2026 ORDER BY sup_num DESC LIMIT 1",
             v);
    long long appraised = scalar_ll(e.pacs, sql);
    env_start(&e);

    json_t *run = full_run(&e);
    json_t *pc = counts_add_up(run);
    cr_assert_eq(int_of(pc, "transform_failed"), 2, "the broken line fails two properties");
    cr_assert_eq(int_of(pc, "validate_failed"), 2, "the rule refuses one and validate()"
                 " one; every other parcel passes the shipped rules");
    json_decref(run);

    /* Three open dead letters, each with what it keeps. */
    json_t *list = get_json(&e, "/dead-letters?pair=" PAIR);
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 4, "%s",
                 json_dumps(list, JSON_COMPACT));
    json_t *dw = letter_of(list, kw);
    cr_assert_not_null(dw, "no dead letter for what validate() refused");
    cr_expect_str_eq(str_of(dw, "stage"), "validate");
    cr_expect(has_reason(dw, "pacs_to_cama.lua validate(): pardat.luc: ") &&
                  has_reason(dw, " is not for sale"),
              "%s", json_dumps(json_object_get(dw, "reasons"), 0));
    char at_line[64];
    snprintf(at_line, sizeof at_line, "pacs_to_cama.lua:%d: ", line);
    const char *keys[] = {ka, kb};
    for (int i = 0; i < 2; i++) {
        json_t *d = letter_of(list, keys[i]);
        cr_assert_not_null(d, "no dead letter for %s", keys[i]);
        cr_expect_str_eq(str_of(d, "stage"), "transform");
        cr_expect_str_eq(str_of(d, "status"), "open");
        cr_expect_str_eq(str_of(d, "error_class"), "permanent");
        cr_expect_eq(int_of(d, "attempts"), 1);
        cr_expect(is_version(str_of(d, "script_version")), "script_version %s",
                  str_of(d, "script_version"));
        cr_expect(has_reason(d, at_line) && has_reason(d, "no_such_field") &&
                      has_reason(d, keys[i]),
                  "the reason names script, line, error and key: %s",
                  json_dumps(json_object_get(d, "reasons"), 0));
        json_t *rec = json_object_get(d, "record");
        cr_expect_eq(int_of(rec, "prop_id"), strtoll(keys[i], NULL, 10),
                     "the source record is kept");
    }
    json_t *dv = letter_of(list, kv);
    cr_assert_not_null(dv, "no dead letter for the rule's violation");
    cr_expect_str_eq(str_of(dv, "stage"), "validate");
    char want[256];
    snprintf(want, sizeof want,
             "asmt.valasm3: %lld is above valapr3 = %lld (rule \"assessed not above "
             "appraised\")",
             appraised + 5000, appraised);
    cr_expect(has_reason(dv, want), "want %s in %s", want,
              json_dumps(json_object_get(dv, "reasons"), 0));
    cr_expect_str_eq(str_of(dv, "script_version"),
                     str_of(letter_of(list, ka), "script_version"),
                     "the same script refused all three");
    json_int_t id_v = int_of(dv, "id");
    json_decref(list);
    snprintf(sql, sizeof sql, "SELECT string_agg(quote_literal(simple_geo_id), ',') FROM"
                              " property WHERE prop_id IN (%s, %s, %s, %s)", a, b, v, w);
    char *parids = tfs_test_pg_scalar(e.pacs, sql);
    cr_assert_not_null(parids);
    snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM pardat WHERE parid IN (%s)) +"
                              " (SELECT count(*) FROM asmt WHERE parid IN (%s))", parids, parids);
    free(parids);
    cr_assert_eq(scalar_ll(e.cama, sql), 0, "a refused record is not written");

    /* Replayed while the source still breaks the rule: it fails again, attempt 2. */
    char path[96];
    snprintf(path, sizeof path, "/dead-letters/%lld/replay", (long long)id_v);
    json_t *res = replay(&e, path, NULL);
    cr_assert_str_eq(str_of(res, "state"), "partial", "%s", json_dumps(res, JSON_COMPACT));
    cr_assert_eq(int_of(res, "failed_again"), 1);
    cr_assert_eq(int_of(res, "replayed"), 0);
    json_t *k0 = json_array_get(json_object_get(res, "keys"), 0);
    cr_assert_str_eq(str_of(k0, "outcome"), "failed_again");
    cr_assert_eq(int_of(k0, "attempts"), 2);
    cr_assert(has_reason(k0, want), "%s", json_dumps(k0, JSON_COMPACT));
    json_t *rc = json_object_get(json_object_get(json_object_get(res, "run"), "counts"),
                                 "property");
    cr_assert_eq(int_of(rc, "read"), 1, "the replay read the one key");
    cr_assert_eq(int_of(rc, "validate_failed"), 1);
    json_decref(res);
    snprintf(path, sizeof path, "/dead-letters/%lld", (long long)id_v);
    json_t *one = get_json(&e, path);
    cr_assert_eq(int_of(one, "attempts"), 2, "%s", json_dumps(one, JSON_COMPACT));
    cr_assert_str_eq(str_of(one, "status"), "open");
    json_decref(one);

    /* The script and the source fixed, all four replayed: read again from PACS. */
    fix_script(&e);
    tfs_test_pg_exec(e.pacs, "UPDATE property_val p SET assessed_val = s.assessed_val FROM"
                             " saved s WHERE p.prop_id = s.prop_id AND p.prop_val_yr ="
                             " s.prop_val_yr AND p.sup_num = s.sup_num; DROP TABLE saved");
    res = replay(&e, "/dead-letters/replay", "{\"pair\": \"" PAIR "\", \"entity\": \"property\"}");
    cr_assert_str_eq(str_of(res, "state"), "succeeded", "%s", json_dumps(res, JSON_COMPACT));
    cr_assert_eq(int_of(res, "replayed"), 4);
    cr_assert_eq(int_of(res, "failed_again"), 0);
    json_int_t replay_run = int_of(res, "run_id");
    rc = json_object_get(json_object_get(json_object_get(res, "run"), "counts"), "property");
    cr_assert_eq(int_of(rc, "written"), 4, "%s", json_dumps(rc, JSON_COMPACT));
    json_decref(res);

    /* Gone from the list; kept as replayed, and audited. */
    list = get_json(&e, "/dead-letters?pair=" PAIR);
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 0, "%s",
                 json_dumps(list, JSON_COMPACT));
    json_decref(list);
    list = get_json(&e, "/dead-letters?pair=" PAIR "&status=replayed");
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 4);
    cr_assert_eq(int_of(letter_of(list, kv), "attempts"), 2);
    json_decref(list);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.audit WHERE run_id = %lld AND op = 'replay' AND"
             " actor = 'operator' AND source_key IN ('%s', '%s', '%s', '%s')"
             " AND (detail->>'dead_letter') IS NOT NULL",
             (long long)replay_run, ka, kb, kv, kw);
    cr_assert_eq(scalar_ll(e.state, sql), 4, "each replay is on the audit trail");
    /* The replay entries (written by SQL in the batch) are chained after the run's. */
    tfs_test_assert_audit_verifies(e.d, 4);

    /* CAMA is what the SQL twin computes from PACS. */
    char *pacs_ci = tfs_test_pg_conninfo(e.pacs);
    tfs_test_assert_matches_twin(pacs_ci, e.cama, "pardat", TFS_TEST_PARDAT_COLS,
                                 "pacs_to_cama_pardat.sql");
    tfs_test_assert_matches_twin(pacs_ci, e.cama, "asmt", TFS_TEST_ASMT_COLS,
                                 "pacs_to_cama_asmt.sql");
    free(pacs_ci);
    free(a);
    free(b);
    free(v);
    free(w);
    env_down(&e);
}

Test(dead_letters, discard_needs_admin_and_is_audited_and_a_run_resolves_the_rest)
{
    env e;
    env_up(&e, 0);
    char *a = nth_prop(&e, 3), *b = nth_prop(&e, 4);
    char ka[64], kb[64], sql[512], path[96];
    snprintf(ka, sizeof ka, "%s|2026", a);
    snprintf(kb, sizeof kb, "%s|2026", b);
    break_script(&e, a, b, NULL);
    env_start(&e);
    json_decref(full_run(&e));
    json_t *list = get_json(&e, "/dead-letters?pair=" PAIR "&stage=transform");
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 2);
    json_int_t id_a = int_of(letter_of(list, ka), "id"), id_b = int_of(letter_of(list, kb), "id");
    cr_assert(id_a > 0 && id_b > 0);
    json_decref(list);

    snprintf(path, sizeof path, "/dead-letters/%lld", (long long)id_a);
    const char *weak[] = {TFS_TEST_KEY_READ, TFS_TEST_KEY_OPERATE};
    for (int i = 0; i < 2; i++) {
        tfs_test_response r = tfs_test_http(e.d, "DELETE", path, weak[i], NULL);
        cr_assert_eq(r.status, 403, "DELETE with %s: %ld %s", weak[i], r.status, r.body);
        tfs_test_response_free(&r);
    }
    tfs_test_response r = tfs_test_http(e.d, "DELETE", path, TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(str_of(r.json, "status"), "discarded");
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "DELETE", path, TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 409, "a second discard: %ld %s", r.status, r.body);
    cr_assert_str_eq(str_of(r.json, "dead_letter_status"), "discarded");
    cr_assert_eq(int_of(r.json, "status"), 409, "problem+json keeps its status");
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "DELETE", "/dead-letters/999999", TFS_TEST_KEY_ADMIN, NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.audit WHERE op = 'discard' AND actor = 'admin' AND"
             " source_key = '%s' AND (detail->>'dead_letter')::int8 = %lld",
             ka, (long long)id_a);
    cr_assert_eq(scalar_ll(e.state, sql), 1, "the discard is audited with the key's name");
    json_t *one = get_json(&e, path);
    cr_assert_str_eq(str_of(one, "status"), "discarded");
    json_decref(one);

    /* A discarded dead letter is not replayed. */
    snprintf(path, sizeof path, "/dead-letters/%lld/replay", (long long)id_a);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, NULL);
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    /* Bad replay bodies and listings are refused with what to fix. */
    const char *bad[][2] = {{"{}", "\"pair\" is required"},
                            {"{\"pair\": \"" PAIR "\", \"entity\": \"parcel\"}",
                             "maps no source entity \"parcel\""},
                            {"{\"pair\": \"" PAIR "\", \"ids\": [0]}", "\"ids\" must be"},
                            {"{\"pair\": \"" PAIR "\", \"colour\": 1}", "unknown field"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = tfs_test_http(e.d, "POST", "/dead-letters/replay", TFS_TEST_KEY_OPERATE, bad[i][0]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i][0], r.status, r.body);
        cr_assert(strstr(str_of(r.json, "detail"), bad[i][1]), "%s: %s", bad[i][0], r.body);
        tfs_test_response_free(&r);
    }
    r = tfs_test_http(e.d, "GET", "/dead-letters?status=lost", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "GET", "/dead-letters/abc", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    /* Replays need the operate role. */
    snprintf(path, sizeof path, "/dead-letters/%lld/replay", (long long)id_b);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "POST", "/dead-letters/replay", TFS_TEST_KEY_READ,
                      "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);

    /* The script fixed, an ordinary full run writes both keys: the open dead letter is
     * resolved in that batch; the discarded one stays discarded. */
    fix_script(&e);
    json_t *run = full_run(&e);
    cr_assert_str_eq(str_of(run, "state"), "succeeded");
    cr_assert_eq(int_of(counts_add_up(run), "written"), 2, "the two keys never written");
    json_decref(run);
    list = get_json(&e, "/dead-letters?pair=" PAIR);
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 0);
    json_decref(list);
    list = get_json(&e, "/dead-letters?pair=" PAIR "&status=all&limit=1");
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 1, "paged");
    json_int_t next = int_of(list, "next_after_id");
    cr_assert_eq(next, id_a < id_b ? id_a : id_b);
    json_decref(list);
    snprintf(path, sizeof path, "/dead-letters?pair=" PAIR "&status=all&after_id=%lld",
             (long long)next);
    list = get_json(&e, path);
    cr_assert_eq(json_array_size(json_object_get(list, "dead_letters")), 1);
    json_decref(list);
    snprintf(path, sizeof path, "/dead-letters/%lld", (long long)id_b);
    one = get_json(&e, path);
    cr_assert_str_eq(str_of(one, "status"), "resolved");
    json_decref(one);
    snprintf(path, sizeof path, "/dead-letters/%lld", (long long)id_a);
    one = get_json(&e, path);
    cr_assert_str_eq(str_of(one, "status"), "discarded");
    json_decref(one);
    /* The discard's entry, written from an API thread, is in the pair's one chain. */
    tfs_test_assert_audit_verifies(e.d, 3);
    free(a);
    free(b);
    env_down(&e);
}

Test(dead_letters, a_source_that_cannot_fetch_replays_the_stored_record)
{
    env e;
    env_up(&e, 0);
    /* The shipped plugins and the PACS adapter without fetch, in a folder of their own. */
    char pdir[128], cmd[1024];
    snprintf(pdir, sizeof pdir, "%s/plugins", e.tdir);
    snprintf(cmd, sizeof cmd, "mkdir '%s' && cp '%s/cama.so' '%s' '%s/'", pdir,
             TFS_PLUGIN_DIR, TFS_TEST_NOFETCH_SO, pdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    json_object_set_new(e.cfg, "plugin_dir", json_string(pdir));
    json_object_set_new(json_object_get(json_object_get(e.cfg, "systems"), "pacs"), "plugin",
                        json_string("pacs_nofetch"));
    char *a = nth_prop(&e, 7), *b = nth_prop(&e, 8), ka[64], sql[512];
    snprintf(ka, sizeof ka, "%s|2026", a);
    break_script(&e, a, b, NULL);
    snprintf(sql, sizeof sql, "SELECT coalesce(zoning, '(null)') FROM property WHERE prop_id = %s",
             a);
    char *zoning = tfs_test_pg_scalar(e.pacs, sql);
    env_start(&e);
    json_decref(full_run(&e));

    /* PACS changes after the failure; the replay cannot read it again, so it maps the
     * record as it was read when it failed, and says nothing is wrong with that. */
    snprintf(sql, sizeof sql, "UPDATE property SET zoning = 'ZZ-REPLAY' WHERE prop_id = %s", a);
    tfs_test_pg_exec(e.pacs, sql);
    fix_script(&e);
    json_t *res = replay(&e, "/dead-letters/replay", "{\"pair\": \"" PAIR "\"}");
    cr_assert_str_eq(str_of(res, "state"), "succeeded", "%s", json_dumps(res, JSON_COMPACT));
    cr_assert_eq(int_of(res, "replayed"), 2);
    json_decref(res);
    snprintf(sql, sizeof sql, "SELECT simple_geo_id FROM property WHERE prop_id = %s", a);
    char *parid = tfs_test_pg_scalar(e.pacs, sql);
    snprintf(sql, sizeof sql, "SELECT coalesce(zoning, '(null)') FROM pardat WHERE parid = '%s'",
             parid);
    char *written = tfs_test_pg_scalar(e.cama, sql);
    cr_assert_not_null(written, "the replay wrote pardat %s", parid);
    cr_assert_str_eq(written, zoning, "the stored record's zoning, not PACS's new one");
    free(written);
    free(parid);
    free(zoning);
    free(a);
    free(b);
    env_down(&e);
}

Test(dead_letters, a_transform_test_reports_the_rules_and_validate_problems)
{
    env e;
    env_up(&e, 1);
    env_start(&e);
    char *shipped = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.lua");
    size_t len = strlen(shipped) + 256;
    char *edit = malloc(len);
    snprintf(edit, len, "%s\nfunction validate(rec, out)\n"
                        "  return { 'asmt.valclass: ' .. out.asmt.valclass .. ' checked' }\nend\n",
             shipped);
    /* Assessed 150000 above its appraised 100000 (land 10000 + building 90000). */
    json_t *rec_in = json_loads(
        "{\"prop_id\": 900001, \"prop_val_yr\": 2026, \"sup_num\": 0, \"prop_type_cd\": \"R\","
        " \"geo_id\": \"90-0001\", \"simple_geo_id\": \"900001\", \"state_cd\": \"A1\","
        " \"land_hstd_val\": 10000, \"imprv_hstd_val\": 90000, \"assessed_val\": 150000,"
        " \"legal_acreage\": 0.25, \"situs_num\": \"12\", \"situs_street\": \"MAIN\","
        " \"situs_city\": \"TOWN\", \"situs_state\": \"TX\", \"situs_zip\": \"75001\","
        " \"exemptions\": []}",
        0, NULL);
    cr_assert_not_null(rec_in);
    json_t *body = json_pack("{ss ss s[o] ss}", "pair", PAIR, "entity", "property", "records",
                             rec_in, "source", edit);
    cr_assert_not_null(body);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    tfs_test_response r = tfs_test_http(e.d, "POST", "/transforms/pacs_to_cama.lua/test",
                                        TFS_TEST_KEY_OPERATE, text);
    free(text);
    cr_assert(r.status == 200 || r.status == 202, "%ld %s", r.status, r.body);
    json_t *ans = r.status == 200 ? json_incref(r.json) : NULL;
    if (!ans) {
        json_t *run = wait_final(&e, int_of(r.json, "run_id"));
        ans = json_incref(json_object_get(run, "result"));
        json_decref(run);
    }
    tfs_test_response_free(&r);
    json_t *rec = json_array_get(json_object_get(ans, "records"), 0);
    char *dump = json_dumps(rec, JSON_COMPACT);
    cr_assert_str_eq(str_of(rec, "status"), "would_fail", "%s", dump);
    json_t *problems = json_pack("{sO}", "reasons", json_object_get(rec, "problems"));
    cr_assert(has_reason(problems, "asmt.valasm3: 150000 is above valapr3 = 100000 (rule "
                                   "\"assessed not above appraised\")"),
              "the rule's reason: %s", dump);
    cr_assert(has_reason(problems, "pacs_to_cama.lua validate(): asmt.valclass: "),
              "validate()'s problem: %s", dump);
    json_decref(problems);
    free(dump);
    json_decref(ans);
    free(edit);
    free(shipped);
    env_down(&e);
}

Test(dead_letters, a_rule_naming_a_field_the_target_lacks_fails_the_run_and_the_dry_run_says_so)
{
    env e;
    env_up(&e, 0);
    json_object_set_new(json_array_get(json_object_get(e.cfg, "pairs"), 0), "rules",
                        json_pack("{s[{sssssi}]}", "asmt", "name", "typo", "field", "valasm9",
                                  "min", 0));
    env_start(&e);
    const char *want = "rule \"typo\" names field \"valasm9\", which the target entity asmt "
                       "does not have";
    json_int_t id = tfs_test_start_full(e.d, PAIR);
    json_t *run = wait_final(&e, id);
    cr_assert_str_eq(str_of(run, "state"), "failed");
    cr_assert(strstr(str_of(run, "error"), want), "%s", str_of(run, "error"));
    cr_assert_eq(scalar_ll(e.cama, "SELECT count(*) FROM pardat"), 0, "nothing written");
    json_decref(run);
    tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/validate", TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" PAIR "\", \"sample\": 3}");
    cr_assert(r.status == 200 || r.status == 202, "%ld %s", r.status, r.body);
    json_t *ans = r.status == 200 ? json_incref(r.json) : NULL;
    if (!ans) {
        json_t *v = wait_final(&e, int_of(r.json, "run_id"));
        ans = json_incref(json_object_get(v, "result"));
        json_decref(v);
    }
    tfs_test_response_free(&r);
    json_t *ent = json_array_get(json_object_get(ans, "entities"), 0);
    cr_assert(strstr(str_of(json_object_get(ent, "rules_error"), "message"), want), "%s",
              json_dumps(ent, JSON_COMPACT));
    cr_assert(json_is_false(json_object_get(ent, "ok")));
    json_decref(ans);
    env_down(&e);
}

/* ---- the CLI ---- */

typedef struct ran {
    int code;
    char *out, *err;
} ran;

static ran tfsync(env *e, const char *key, const char *args)
{
    char errpath[] = "/tmp/tfs-dl-cli-XXXXXX";
    int fd = mkstemp(errpath);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "env -u TFSYNC_URL -u TFSYNC_KEY %s --url http://127.0.0.1:%d --key %s %s 2>%s",
             TFSYNC, e->d->port, key, args, errpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    while (len + 1 < cap && (n = fread(out + len, 1, cap - len - 1, p)) > 0)
        len += n;
    out[len] = '\0';
    int st = pclose(p);
    ran r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, tfs_test_read_file(errpath)};
    unlink(errpath);
    return r;
}

static void ran_free(ran *r)
{
    free(r->out);
    free(r->err);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(dead_letters, cli_lists_replays_and_discards)
{
    env e;
    env_up(&e, 0);
    char *a = nth_prop(&e, 5), *b = nth_prop(&e, 6);
    char ka[64], kb[64], args[256];
    snprintf(ka, sizeof ka, "%s|2026", a);
    snprintf(kb, sizeof kb, "%s|2026", b);
    break_script(&e, a, b, NULL);
    env_start(&e);
    json_decref(full_run(&e));

    /* The bare command with filters lists, as before; list takes more filters. */
    ran r = tfsync(&e, TFS_TEST_KEY_READ, "dead-letters --pair " PAIR);
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_eq(lines(r.out), 2, "%s", r.out);
    cr_assert(strstr(r.out, ka) && strstr(r.out, kb) && strstr(r.out, "transform open attempts 1"),
              "%s", r.out);
    ran_free(&r);
    r = tfsync(&e, TFS_TEST_KEY_READ, "dead-letters list --pair " PAIR " --stage validate");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_eq(lines(r.out), 0, "no validate failures: %s", r.out);
    ran_free(&r);
    json_t *list = get_json(&e, "/dead-letters?pair=" PAIR);
    json_int_t id_a = int_of(letter_of(list, ka), "id"), id_b = int_of(letter_of(list, kb), "id");
    json_decref(list);

    /* A replay while the script is still broken: failed again, exit 4. */
    snprintf(args, sizeof args, "dead-letters replay %lld", (long long)id_a);
    r = tfsync(&e, TFS_TEST_KEY_OPERATE, args);
    cr_assert_eq(r.code, 4, "exit %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strstr(r.out, "failed_again (attempt 2, transform)") &&
                  strstr(r.out, "replayed 0, failed again 1"),
              "%s", r.out);
    ran_free(&r);

    /* Discard: refused to an operator (exit 2), done by an admin. */
    snprintf(args, sizeof args, "dead-letters discard %lld", (long long)id_b);
    r = tfsync(&e, TFS_TEST_KEY_OPERATE, args);
    cr_assert_eq(r.code, 2, "exit %d\n%s%s", r.code, r.out, r.err);
    ran_free(&r);
    r = tfsync(&e, TFS_TEST_KEY_ADMIN, args);
    cr_assert_eq(r.code, 0, "exit %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strstr(r.out, kb) && strstr(r.out, "discarded"), "%s", r.out);
    ran_free(&r);

    /* Fixed, a replay by filter takes the one still open through. */
    fix_script(&e);
    r = tfsync(&e, TFS_TEST_KEY_OPERATE, "dead-letters replay --pair " PAIR " --stage transform");
    cr_assert_eq(r.code, 0, "exit %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strstr(r.out, "replayed 1, failed again 0") && strstr(r.out, ka), "%s", r.out);
    ran_free(&r);
    r = tfsync(&e, TFS_TEST_KEY_READ, "dead-letters list --pair " PAIR " --status all");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "replayed attempts 2") && strstr(r.out, "discarded attempts 1"),
              "%s", r.out);
    ran_free(&r);
    r = tfsync(&e, TFS_TEST_KEY_OPERATE, "dead-letters replay");
    cr_assert_eq(r.code, 64, "a replay without an id or a pair is a usage error: %d", r.code);
    ran_free(&r);
    snprintf(args, sizeof args, "--json dead-letters list --pair " PAIR " --status replayed");
    r = tfsync(&e, TFS_TEST_KEY_READ, args);
    json_t *j = json_loads(r.out, 0, NULL);
    cr_assert_not_null(j, "--json prints the API's JSON: %s", r.out);
    cr_assert_eq(json_array_size(json_object_get(j, "dead_letters")), 1);
    json_decref(j);
    ran_free(&r);
    free(a);
    free(b);
    env_down(&e);
}
