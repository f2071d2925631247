/* tests/integration/validate_test.c — the dry runs of issue 8: POST /sync/validate finds
 * a field the target lacks, a required field the script never sets and a length mismatch,
 * answers per record what would happen, and writes nothing (CAMA's checksum, the state
 * store's rows); POST /transforms/{name}/test runs the saved script or unsaved text (which
 * never replaces the live script), gives validation problems and a Lua error with its
 * line; tfsync transform test calls it.
 *
 * A real PostgreSQL and the real daemon over HTTP; runs are awaited through their status,
 * never a fixed sleep. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define BAD_PAIR "pacs-to-cama-bad"

TestSuite(validate, .timeout = 240);

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

typedef struct env {
    char *pacs, *cama, *state;
    json_t *cfg;
    tfs_test_daemon *d;
    char tdir[256];
} env;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* The shipped scripts in a folder of the test's own, plus bad_map.lua: pacs_to_cama.lua
 * whose pardat gets a field CAMA lacks for even prop_ids, whose asmt never gets its
 * required taxyr, and whose zoning is too long for pardat.zoning (10). A second pair runs
 * it on the same systems. */
static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "vpacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "vcama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "vstate");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    snprintf(e->tdir, sizeof e->tdir, "/tmp/tfs-validate-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(e->tdir));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, e->tdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *base = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.lua");
    size_t len = strlen(base) + 1024;
    char *bad = malloc(len);
    cr_assert_not_null(bad);
    snprintf(bad, len,
             "%s\nlocal real_map = map\nfunction map(p)\n  local r = real_map(p)\n"
             "  if p.prop_id %% 2 == 0 then r.pardat.not_a_field = 1 end\n"
             "  r.asmt.taxyr = nil\n  r.pardat.zoning = 'MUCH-TOO-LONG-ZONING'\n"
             "  return r\nend\n",
             base);
    char path[320];
    snprintf(path, sizeof path, "%s/bad_map.lua", e->tdir);
    write_file(path, bad);
    free(bad);
    free(base);
    json_object_set_new(e->cfg, "transform_dir", json_string(e->tdir));
    json_t *pairs = json_object_get(e->cfg, "pairs");
    json_t *second = json_deep_copy(json_array_get(pairs, 0));
    json_object_set_new(second, "name", json_string(BAD_PAIR));
    json_object_set_new(json_array_get(json_object_get(second, "entities"), 0), "script",
                        json_string("bad_map.lua"));
    json_array_append_new(pairs, second);
    e->d = tfs_test_daemon_start(e->cfg);
}

static void env_down(env *e)
{
    char *log = tfs_test_daemon_log(e->d);
    int status = tfs_test_daemon_stop_status(e->d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->tdir);
    cr_expect_eq(system(cmd), 0);
}

static char *cama_checksum(env *e)
{
    char *v = tfs_test_pg_scalar(
        e->cama, "SELECT md5((SELECT coalesce(string_agg(t::text, '|' ORDER BY t.parid,"
                 " t.taxyr), '') FROM pardat t) || '#' || (SELECT coalesce(string_agg("
                 "t::text, '|' ORDER BY t.parid, t.taxyr), '') FROM asmt t))");
    cr_assert_not_null(v);
    return v;
}

/* The state store's rows that a run of a pair would leave, as one text. */
static char *state_rows(env *e, const char *pair)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM tfsync.sync_map WHERE pair = '%s') || '/' ||"
             " (SELECT count(*) FROM tfsync.cursors WHERE pair = '%s') || '/' ||"
             " (SELECT count(*) FROM tfsync.failed_records WHERE pair = '%s') || '/' ||"
             " (SELECT count(*) FROM tfsync.audit WHERE pair = '%s')",
             pair, pair, pair, pair);
    char *v = tfs_test_pg_scalar(e->state, sql);
    cr_assert_not_null(v);
    return v;
}

/* A job's answer: POST path body with the operate key, 200 expected (jobs.wait is long
 * enough for these small jobs; a 202 is polled to its end). */
static json_t *job(env *e, const char *path, const char *body)
{
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    if (r.status == 202) {
        json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
        tfs_test_response_free(&r);
        json_decref(tfs_test_wait_run(e->d, id, 120));
        cr_assert_fail("the %s job (run %lld) outlasted jobs.wait", path, (long long)id);
    }
    cr_assert_eq(r.status, 200, "POST %s: %ld %s", path, r.status, r.body ? r.body : r.error);
    json_t *out = json_incref(r.json);
    tfs_test_response_free(&r);
    return out;
}

static json_t *find(json_t *list, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o) {
        if (strcmp(json_string_value(json_object_get(o, k1)), v1) == 0 &&
            (!k2 || strcmp(json_string_value(json_object_get(o, k2)), v2) == 0))
            return o;
    }
    return NULL;
}

static void assert_counts_add_up(const json_t *run)
{
    const char *entity;
    json_t *c;
    json_object_foreach(json_object_get(run, "counts"), entity, c) {
        static const char *const terms[] = {"written", "unchanged", "skipped", "conflicts",
                                            "failed",  "deleted",   "set_aside"};
        json_int_t sum = 0;
        for (int i = 0; i < 7; i++)
            sum += json_integer_value(json_object_get(c, terms[i]));
        cr_assert_eq(json_integer_value(json_object_get(c, "read")), sum,
                     "%s: the counts do not add up", entity);
    }
}

Test(validate, finds_an_unknown_field_a_required_field_never_set_and_writes_nothing)
{
    env e;
    env_init(&e);
    json_t *run = tfs_test_wait_run(e.d, tfs_test_start_full(e.d, PAIR), 120);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded");
    assert_counts_add_up(run);
    json_decref(run);
    char *before = cama_checksum(&e);
    char *rows = state_rows(&e, BAD_PAIR);

    json_t *v = job(&e, "/sync/validate", "{\"pair\": \"" BAD_PAIR "\", \"sample\": 20}");
    cr_assert(json_is_false(json_object_get(v, "ok")), "a bad mapping validated ok");
    json_t *ent = json_array_get(json_object_get(v, "entities"), 0);
    json_t *schema = json_object_get(ent, "schema");
    char *dump = json_dumps(schema, JSON_COMPACT);
    cr_assert_not_null(find(json_object_get(schema, "unknown_fields"), "entity", "pardat",
                            "field", "not_a_field"),
                       "no unknown field pardat.not_a_field in %s", dump);
    cr_assert_not_null(find(json_object_get(schema, "required_never_set"), "entity", "asmt",
                            "field", "taxyr"),
                       "no required asmt.taxyr never set in %s", dump);
    cr_assert_not_null(find(json_object_get(schema, "mismatches"), "entity", "pardat", "field",
                            "zoning"),
                       "no length mismatch of pardat.zoning in %s", dump);
    free(dump);
    json_t *recs = json_object_get(ent, "records");
    cr_assert_eq(json_array_size(recs), 20);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "would_fail");
        cr_assert_gt(json_array_size(json_object_get(r, "reasons")), 0);
    }
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ent, "counts"),
                                                    "would_fail")),
                 20);
    json_decref(v);

    /* The good pair after its full run: every sampled record is unchanged. */
    v = job(&e, "/sync/validate", "{\"pair\": \"" PAIR "\", \"sample\": 5}");
    ent = json_array_get(json_object_get(v, "entities"), 0);
    cr_assert(json_is_true(json_object_get(v, "ok")), "the shipped mapping: %s",
              json_dumps(ent, JSON_COMPACT));
    json_array_foreach(json_object_get(ent, "records"), i, r) {
        cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "unchanged");
        cr_assert(json_is_object(json_object_get(json_object_get(r, "output"), "pardat")) ||
                  json_is_array(json_object_get(json_object_get(r, "output"), "pardat")));
    }
    json_decref(v);

    char *after = cama_checksum(&e);
    cr_assert_str_eq(after, before, "a validation changed CAMA");
    char *rows_after = state_rows(&e, BAD_PAIR);
    cr_assert_str_eq(rows_after, rows, "a validation wrote to the state store");
    free(after);
    free(rows_after);
    free(rows);
    free(before);

    /* Bad input is refused with what to fix. */
    tfs_test_response bad = tfs_test_http(e.d, "POST", "/sync/validate", TFS_TEST_KEY_OPERATE,
                                          "{\"pair\": \"" PAIR "\", \"sample\": 5000}");
    cr_assert_eq(bad.status, 400, "%s", bad.body);
    tfs_test_response_free(&bad);
    bad = tfs_test_http(e.d, "POST", "/sync/validate", TFS_TEST_KEY_READ,
                        "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(bad.status, 403, "a read key started a validation: %s", bad.body);
    tfs_test_response_free(&bad);
    env_down(&e);
}

#define RECORD                                                                                 \
    "{\"prop_id\": 900001, \"prop_val_yr\": 2026, \"sup_num\": 0, \"prop_type_cd\": \"R\","    \
    " \"geo_id\": \"90-0001\", \"simple_geo_id\": \"900001\", \"state_cd\": \"A1\","           \
    " \"zoning\": \"R1\", \"land_hstd_val\": 10000, \"imprv_hstd_val\": 90000,"                \
    " \"assessed_val\": 100000, \"legal_acreage\": 0.25, \"situs_num\": \"12\","              \
    " \"situs_street\": \"MAIN\", \"situs_street_sufix\": \"ST\", \"situs_city\": \"TOWN\","  \
    " \"situs_state\": \"TX\", \"situs_zip\": \"75001\", \"exemptions\": []}"

/* POST /transforms/pacs_to_cama.lua/test with the record and optional Lua text. */
static json_t *try_script(env *e, const char *lua)
{
    json_t *body = json_pack("{ss ss s[O]}", "pair", PAIR, "entity", "property", "records",
                             json_loads(RECORD, 0, NULL));
    json_decref(json_array_get(json_object_get(body, "records"), 0));
    if (lua)
        json_object_set_new(body, "source", json_string(lua));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *out = job(e, "/transforms/pacs_to_cama.lua/test", text);
    free(text);
    return out;
}

static json_t *first_record(json_t *ans)
{
    json_t *r = json_array_get(json_object_get(ans, "records"), 0);
    cr_assert_not_null(r, "no record in the answer");
    return r;
}

Test(validate, transform_test_runs_unsaved_text_and_gives_lua_errors_with_their_line)
{
    env e;
    env_init(&e);
    char path[320];
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", e.tdir);
    char *saved = tfs_test_read_file(path);

    /* The saved script. */
    json_t *ans = try_script(&e, NULL);
    json_t *r = first_record(ans);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "ok", "%s",
                     json_dumps(r, JSON_COMPACT));
    json_t *pardat = json_array_get(json_object_get(json_object_get(r, "output"), "pardat"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(pardat, "parid")), "900001");
    cr_assert_str_eq(json_string_value(json_object_get(pardat, "zoning")), "R1");
    json_decref(ans);

    /* An unsaved edit: its output, and the live script is not replaced. */
    size_t len = strlen(saved) + 512;
    char *edit = malloc(len);
    snprintf(edit, len, "%s\nlocal real_map = map\nfunction map(p)\n  local r = real_map(p)\n"
                        "  r.pardat.zoning = 'TRIED'\n  return r\nend\n", saved);
    ans = try_script(&e, edit);
    r = first_record(ans);
    cr_assert(json_is_true(json_object_get(ans, "unsaved")));
    pardat = json_array_get(json_object_get(json_object_get(r, "output"), "pardat"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(pardat, "zoning")), "TRIED");
    json_decref(ans);
    ans = try_script(&e, NULL);
    pardat = json_array_get(
        json_object_get(json_object_get(first_record(ans), "output"), "pardat"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(pardat, "zoning")), "R1",
                     "the unsaved text replaced the live script");
    json_decref(ans);
    char *now = tfs_test_read_file(path);
    cr_assert_str_eq(now, saved, "the script file changed");
    free(now);

    /* A validation problem: too long for pardat.adrstr (50). */
    snprintf(edit, len, "%s\nlocal real_map = map\nfunction map(p)\n  local r = real_map(p)\n"
                        "  r.pardat.adrstr = string.rep('x', 60)\n  return r\nend\n", saved);
    ans = try_script(&e, edit);
    r = first_record(ans);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "would_fail");
    char *probs = json_dumps(json_object_get(r, "problems"), JSON_COMPACT);
    cr_assert(strstr(probs, "adrstr"), "problems: %s", probs);
    free(probs);
    json_decref(ans);

    /* A runtime error on line 3 of the text. */
    ans = try_script(&e, "function map(p)\n  local x = nil\n  return x.y\nend\n");
    r = first_record(ans);
    json_t *le = json_object_get(r, "lua_error");
    cr_assert(json_is_object(le), "no lua_error: %s", json_dumps(r, JSON_COMPACT));
    cr_assert_eq(json_integer_value(json_object_get(le, "line")), 3, "%s",
                 json_dumps(le, JSON_COMPACT));
    json_decref(ans);

    /* A syntax error: the script does not load, with its line. */
    ans = try_script(&e, "function map(p)\n  return {\n\nend\n");
    le = json_object_get(ans, "lua_error");
    cr_assert(json_is_object(le), "no lua_error: %s", json_dumps(ans, JSON_COMPACT));
    cr_assert_gt(json_integer_value(json_object_get(le, "line")), 0, "%s",
                 json_dumps(le, JSON_COMPACT));
    json_decref(ans);

    /* The CLI: tfsync transform test with an unsaved edit, exit 0. */
    char rec_path[320], lua_path[320], cmd[1200];
    snprintf(rec_path, sizeof rec_path, "%s/rec.json", e.tdir);
    snprintf(lua_path, sizeof lua_path, "%s/edit.lua.txt", e.tdir);
    write_file(rec_path, RECORD);
    snprintf(edit, len, "%s\nlocal real_map = map\nfunction map(p)\n  local r = real_map(p)\n"
                        "  r.pardat.zoning = 'CLI'\n  return r\nend\n", saved);
    write_file(lua_path, edit);
    snprintf(cmd, sizeof cmd,
             "'%s/tfsync' --url http://127.0.0.1:%d --key " TFS_TEST_KEY_OPERATE
             " transform test pacs_to_cama.lua '%s' --pair " PAIR " --entity property"
             " --source '%s' | grep -q '\"zoning\": \"CLI\"'",
             TFS_BINARY_DIR, e.d->port, rec_path, lua_path);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tfsync transform test: %d (%s)", st, cmd);

    /* Nothing was written anywhere. */
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat"), 0);
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.sync_map"), 0);
    free(edit);
    free(saved);
    env_down(&e);
}
