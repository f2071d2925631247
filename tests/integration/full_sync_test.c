/* tests/integration/full_sync_test.c — the first real sync, end to end: a real PostgreSQL,
 * the real daemon with the real pacs and cama plugins, called over HTTP by libcurl.
 *
 * Each test clones its own databases from the templates scripts/test.sh prepared, so the
 * tests run in parallel without seeing each other. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "store.h"
#include "store_batch.h"
#include "tfs_test.h"

#define PARDAT_COLS                                                                             \
    "parid, taxyr, seq, cur, class, luc, nbhd, acres, adrno, adradd, adrdir, adrstr, adrsuf,"   \
    " unitno, cityname, statecode, postalcode, zoning, deactivat"
#define ASMT_COLS                                                                               \
    "parid, taxyr, seq, cur, valclass, valapr1, valapr2, valapr3, valasm1, valasm2, valasm3,"  \
    " deactivat"

typedef struct env {
    char *pacs, *cama, *state;
    tfs_test_daemon *d;
} env;

static void env_up(env *e, const char *pacs_template, const char *transform_dir)
{
    e->pacs = tfs_test_db_clone(pacs_template, "pacs");
    e->cama = tfs_test_db_clone("tfs_tmpl_cama", "cama");
    e->state = tfs_test_db_clone("tfs_tmpl_state", "state");
    json_t *cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    if (transform_dir)
        json_object_set_new(cfg, "transform_dir", json_string(transform_dir));
    e->d = tfs_test_daemon_start(cfg);
    json_decref(cfg);
}

static void env_down(env *e)
{
    /* A clean exit also means no leak or sanitizer report in the sanitizer build. */
    char *log = tfs_test_daemon_log(e->d);
    int status = tfs_test_daemon_stop_status(e->d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

/* Starts a full sync and waits for it to end `want`; returns the final run status. */
static json_t *full_sync_ending(env *e, const char *want)
{
    tfs_test_response r = tfs_test_http(e->d, "POST", "/sync/full", "operate-key",
                                        "{\"pair\": \"pacs-to-cama\"}");
    cr_assert_eq(r.status, 202, "POST /sync/full: %ld %s", r.status, r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    cr_assert_gt(id, 0);
    tfs_test_response_free(&r);
    json_t *run = tfs_test_wait_run(e->d, id, 300);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), want,
                     "run ended %s: %s", json_string_value(json_object_get(run, "state")),
                     json_string_value(json_object_get(run, "error")));
    return run;
}

/* A full sync that must succeed. */
static json_t *full_sync(env *e)
{
    return full_sync_ending(e, "succeeded");
}

static json_int_t count_of(json_t *run, const char *what)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(run, "counts"), "property"), what));
}

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

/* Target rows equal the independent SQL mapping: same count, no row on either side that is
 * not on the other, and the same checksum over all columns. */
static void assert_cama_matches_sql(env *e, json_int_t *rows)
{
    static const struct {
        const char *table, *cols, *sql;
    } t[] = {{"pardat", PARDAT_COLS, "pacs_to_cama_pardat.sql"},
             {"asmt", ASMT_COLS, "pacs_to_cama_asmt.sql"}};
    for (int i = 0; i < 2; i++) {
        char sql[2048];
        snprintf(sql, sizeof sql,
                 "DROP TABLE IF EXISTS expected_%s; CREATE TABLE expected_%s AS"
                 " SELECT %s FROM %s WHERE false",
                 t[i].table, t[i].table, t[i].cols, t[i].table);
        tfs_test_pg_exec(e->cama, sql);
        char *q = tfs_test_mapping_sql(t[i].sql);
        char dst[64];
        snprintf(dst, sizeof dst, "expected_%s", t[i].table);
        tfs_test_copy_between(e->pacs, q, e->cama, dst);
        free(q);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t[i].table);
        json_int_t got = scalar_int(e->cama, sql);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM expected_%s", t[i].table);
        json_int_t want = scalar_int(e->cama, sql);
        cr_assert_eq(got, want, "%s: %lld rows, the SQL mapping gives %lld", t[i].table,
                     (long long)got, (long long)want);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM ((SELECT %s FROM %s EXCEPT ALL SELECT * FROM expected_%s)"
                 " UNION ALL (SELECT * FROM expected_%s EXCEPT ALL SELECT %s FROM %s)) d",
                 t[i].cols, t[i].table, t[i].table, t[i].table, t[i].cols, t[i].table);
        json_int_t diff = scalar_int(e->cama, sql);
        if (diff) {
            snprintf(sql, sizeof sql,
                     "SELECT string_agg(x::text, E'\\n') FROM (SELECT * FROM (SELECT %s FROM %s"
                     " EXCEPT ALL SELECT * FROM expected_%s) a LIMIT 3) x",
                     t[i].cols, t[i].table, t[i].table);
            char *ex = tfs_test_pg_scalar(e->cama, sql);
            cr_assert_fail("%s: %lld rows differ from the SQL mapping, e.g.\n%s", t[i].table,
                           (long long)diff, ex ? ex : "?");
        }
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM (SELECT %s"
                 " FROM %s) x) = (SELECT md5(string_agg(y::text, '|' ORDER BY y::text)) FROM"
                 " expected_%s y)",
                 t[i].cols, t[i].table, t[i].table);
        char *same = tfs_test_pg_scalar(e->cama, sql);
        cr_assert_str_eq(same, "t", "%s checksum differs from the SQL mapping", t[i].table);
        free(same);
        if (rows)
            rows[i] = got;
    }
}

/* "table:COMMAND count, ..." of the statements logged since the last call. */
static char *statements(const char *cama)
{
    char *s = tfs_test_pg_scalar(cama, "SELECT coalesce(string_agg(k || ' ' || c, ', ' ORDER"
                                       " BY k), '') FROM (SELECT tbl || ':' || cmd AS k,"
                                       " count(*) AS c FROM test_stmt GROUP BY 1) x");
    cr_assert_not_null(s);
    tfs_test_pg_exec(cama, "TRUNCATE test_stmt");
    return s;
}

Test(full_sync, ten_thousand_parcels_match_the_sql_mapping, .timeout = 600)
{
    env e;
    env_up(&e, "tfs_tmpl_pacs10k", NULL);
    tfs_test_cama_log_statements(e.cama);
    /* Properties with 2026 values at their highest supplement, retired ones left out (the
     * PACS adapter reports a retirement as a deletion). */
    json_int_t exposed = scalar_int(
        e.pacs, "SELECT count(*) FROM (SELECT DISTINCT ON (prop_id) prop_inactive_dt"
                " FROM property_val WHERE prop_val_yr = 2026 ORDER BY prop_id, sup_num DESC) v"
                " WHERE prop_inactive_dt IS NULL");
    cr_assert_gt(exposed, 9000);
    json_t *run = full_sync(&e);
    cr_assert_eq(count_of(run, "read"), exposed);
    cr_assert_eq(count_of(run, "written"), exposed);
    cr_assert_eq(count_of(run, "failed"), 0);
    json_decref(run);
    json_int_t rows[2];
    assert_cama_matches_sql(&e, rows);
    cr_assert_eq(rows[0], exposed);
    cr_assert_eq(rows[1], exposed);
    /* Every key was new to CAMA: every batch COPYed straight into the tables (SDK 1.5
     * inserts), ten batches of 1,000, none through the upsert. */
    char *st = statements(e.cama);
    char want[96];
    json_int_t batches = (exposed + 999) / 1000;
    snprintf(want, sizeof want, "asmt:COPY %lld, pardat:COPY %lld", (long long)batches,
             (long long)batches);
    cr_assert_str_eq(st, want, "the statements that wrote CAMA");
    free(st);

    /* A second full sync writes nothing and leaves every row untouched. */
    const char *xmins = "SELECT md5(string_agg(xmin::text, ',' ORDER BY parid, taxyr)) FROM ";
    char q1[256], q2[256];
    snprintf(q1, sizeof q1, "%spardat", xmins);
    snprintf(q2, sizeof q2, "%sasmt", xmins);
    char *before1 = tfs_test_pg_scalar(e.cama, q1), *before2 = tfs_test_pg_scalar(e.cama, q2);
    run = full_sync(&e);
    cr_assert_eq(count_of(run, "read"), exposed);
    cr_assert_eq(count_of(run, "written"), 0, "the second full sync wrote %lld records",
                 (long long)count_of(run, "written"));
    cr_assert_eq(count_of(run, "unchanged"), exposed);
    json_decref(run);
    char *after1 = tfs_test_pg_scalar(e.cama, q1), *after2 = tfs_test_pg_scalar(e.cama, q2);
    cr_assert_str_eq(after1, before1, "pardat rows were rewritten (xmin changed)");
    cr_assert_str_eq(after2, before2, "asmt rows were rewritten (xmin changed)");
    free(before1), free(before2), free(after1), free(after2);
    env_down(&e);
}

/* Keys CAMA holds that the state store has no record of, with conflict detection off (so
 * nothing fetches them first): a state store that lost its commits, as after kill -9
 * between CAMA's commit and the state store's, for every batch. The host hands them as
 * inserts; CAMA's COPY finds each batch's rows there, rolls back to its savepoint and
 * upserts them, which changes no row. Every record is written once, none fails, and CAMA
 * still equals the SQL mapping. */
Test(full_sync, inserts_of_keys_already_in_cama_are_upserts, .timeout = 300)
{
    env e = {0};
    e.pacs = tfs_test_db_clone("tfs_tmpl_pacs10k", "pacs");
    e.cama = tfs_test_db_clone("tfs_tmpl_cama", "cama");
    e.state = tfs_test_db_clone("tfs_tmpl_state", "state");
    tfs_test_cama_log_statements(e.cama);
    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    json_object_set_new(json_array_get(json_object_get(cfg, "pairs"), 0), "conflicts",
                        json_pack("{sb}", "detect", 0));
    e.d = tfs_test_daemon_start(cfg);
    json_t *run = full_sync(&e);
    json_int_t written = count_of(run, "written");
    cr_assert_gt(written, 9000);
    json_decref(run);
    char *st = statements(e.cama);
    cr_assert(strstr(st, "pardat:COPY") && !strstr(st, "INSERT"), "first run: %s", st);
    free(st);
    const char *xmins = "SELECT md5(string_agg(xmin::text, ',' ORDER BY parid, taxyr))"
                        " FROM pardat";
    char *before = tfs_test_pg_scalar(e.cama, xmins);
    tfs_test_daemon_stop(e.d);

    /* the same CAMA, a state store that never saw it */
    char *fresh = tfs_test_db_clone("tfs_tmpl_state", "state");
    char *conninfo = tfs_test_pg_conninfo(fresh);
    json_object_set_new(json_object_get(cfg, "state"), "conninfo", json_string(conninfo));
    free(conninfo);
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);
    run = full_sync(&e);
    cr_assert_eq(count_of(run, "written"), written, "every record written once");
    cr_assert_eq(count_of(run, "failed"), 0);
    json_decref(run);
    st = statements(e.cama);
    char want[96];
    json_int_t batches = (written + 999) / 1000;
    snprintf(want, sizeof want, "asmt:INSERT %lld, pardat:INSERT %lld", (long long)batches,
             (long long)batches);
    cr_assert_str_eq(st, want, "every COPY rolled back to its savepoint, then upserted");
    free(st);
    char *after = tfs_test_pg_scalar(e.cama, xmins);
    cr_assert_str_eq(after, before, "the upserts changed no pardat row");
    free(before);
    free(after);
    assert_cama_matches_sql(&e, NULL);
    env_down(&e);
    tfs_test_db_drop(fresh);
    free(fresh);
}

/* Rows of a query as text, one line per row, fields separated by '|', NULL as \N. */
static char *rows_text(const char *db, const char *sql)
{
    PGconn *c = tfs_test_pg_connect(db);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++) {
        for (int j = 0; j < PQnfields(r); j++) {
            const char *v = PQgetisnull(r, i, j) ? "\\N" : PQgetvalue(r, i, j);
            size_t n = strlen(v);
            while (len + n + 3 > cap)
                out = realloc(out, cap *= 2);
            if (j)
                out[len++] = '|';
            memcpy(out + len, v, n);
            len += n;
        }
        out[len++] = '\n';
        out[len] = '\0';
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

static void assert_golden(const char *got, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/integration/expected/%s", TFS_SOURCE_DIR, name);
    if (getenv("TFS_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        fputs(got, f);
        fclose(f);
    }
    char *want = tfs_test_read_file(path);
    cr_assert_str_eq(got, want, "%s differs from the golden file:\n--- got\n%s", name, got);
    free(want);
}

Test(full_sync, edge_case_parcels_match_golden_rows, .timeout = 300)
{
    env e;
    e.pacs = tfs_test_db_clone("tfs_tmpl_pacs_empty", "pacs");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/integration/edge_cases.sql", TFS_SOURCE_DIR);
    tfs_test_pg_exec_file(e.pacs, path, "2026");
    e.cama = tfs_test_db_clone("tfs_tmpl_cama", "cama");
    e.state = tfs_test_db_clone("tfs_tmpl_state", "state");
    json_t *cfg = tfs_test_config_new(e.pacs, e.cama, e.state);
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    /* One dead letter of 20 records read (5%, not past max_failed_ratio): partial. */
    json_t *run = full_sync_ending(&e, "partial");
    cr_assert_eq(count_of(run, "read"), 20,
                 "9016 has no 2026 values and 9014 is retired: neither is read");
    cr_assert_eq(count_of(run, "written"), 19);
    cr_assert_eq(count_of(run, "validate_failed"), 1, "9022's parid is too long for CAMA");
    json_decref(run);

    char *pardat = rows_text(e.cama, "SELECT " PARDAT_COLS " FROM pardat ORDER BY parid");
    char *asmt = rows_text(e.cama, "SELECT " ASMT_COLS " FROM asmt ORDER BY parid");
    assert_golden(pardat, "edge_cases_pardat.out");
    assert_golden(asmt, "edge_cases_asmt.out");
    free(pardat);
    free(asmt);

    /* The invalid record is a dead letter with its reason, and was not written. */
    tfs_test_response r = tfs_test_http(e.d, "GET", "/dead-letters?pair=pacs-to-cama",
                                        "read-key", NULL);
    cr_assert_eq(r.status, 200);
    json_t *dl = json_object_get(r.json, "dead_letters");
    cr_assert_eq(json_array_size(dl), 1, "%s", r.body);
    json_t *d0 = json_array_get(dl, 0);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "source_key")), "9022|2026");
    cr_assert_str_eq(json_string_value(json_object_get(d0, "stage")), "validate");
    cr_assert(strstr(r.body, "pardat.parid: 35 characters, at most 30"),
              "the reason names the field and the limit: %s", r.body);
    tfs_test_response_free(&r);
    env_down(&e);
}

/* Copies transforms/ into a fresh folder the test may edit. */
static char *copy_transforms(void)
{
    char *dir = strdup("/tmp/tfs-transforms-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, dir);
    cr_assert_eq(system(cmd), 0);
    return dir;
}

static void append_to(const char *dir, const char *file, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(full_sync, edited_script_changes_the_target_and_a_raising_script_fails_one_key,
     .timeout = 300)
{
    char *dir = copy_transforms();
    env e;
    env_up(&e, "tfs_tmpl_pacs10k", dir);
    json_t *run = full_sync(&e);
    json_int_t n = count_of(run, "written");
    json_decref(run);
    cr_assert_gt(n, 9000);

    /* The analyst maps another field: luc now comes from the state code. Reloaded without a
     * restart. */
    append_to(dir, "pacs_to_cama.lua",
              "\nlocal shipped_map = map\n"
              "function map(rec)\n"
              "  local out = shipped_map(rec)\n"
              "  out.pardat.luc = 'S' .. tostring(rec.state_cd)\n"
              "  return out\n"
              "end\n");
    run = full_sync(&e);
    cr_assert_eq(count_of(run, "written"), n, "every pardat row changes");
    json_decref(run);
    json_int_t mismatched = scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE luc NOT LIKE 'S%'");
    cr_assert_eq(mismatched, 0, "%lld rows kept the old luc", (long long)mismatched);

    /* A script that raises on one key fails exactly that key, with file, line and key. */
    char *victim = tfs_test_pg_scalar(e.pacs, "SELECT min(prop_id) + 17 FROM property");
    char lua[512];
    snprintf(lua, sizeof lua,
             "\nlocal edited_map = map\n"
             "function map(rec)\n"
             "  if rec.prop_id == %s then error('refusing parcel ' .. rec.prop_id) end\n"
             "  local out = edited_map(rec)\n"
             "  out.pardat.luc = 'X'\n"
             "  return out\n"
             "end\n",
             victim);
    append_to(dir, "pacs_to_cama.lua", lua);
    run = full_sync_ending(&e, "partial"); /* a dead letter: done, not all applied */
    cr_assert_eq(count_of(run, "transform_failed"), 1);
    cr_assert_eq(count_of(run, "written"), n - 1);
    json_decref(run);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE luc = 'X'"), n - 1);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE luc <> 'X'"), 1,
                 "the failed key keeps its last written row, it is not passed through");

    tfs_test_response r = tfs_test_http(e.d, "GET", "/dead-letters?pair=pacs-to-cama&limit=10",
                                        "read-key", NULL);
    cr_assert_eq(r.status, 200);
    json_t *dl = json_object_get(r.json, "dead_letters");
    cr_assert_eq(json_array_size(dl), 1, "%s", r.body);
    json_t *d0 = json_array_get(dl, 0);
    char key[64];
    snprintf(key, sizeof key, "%s|2026", victim);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "source_key")), key);
    cr_assert_str_eq(json_string_value(json_object_get(d0, "stage")), "transform");
    const char *reason = json_string_value(json_array_get(json_object_get(d0, "reasons"), 0));
    cr_assert(reason && strstr(reason, "pacs_to_cama.lua:") && strstr(reason, "refusing parcel") &&
                  strstr(reason, key),
              "the reason names script, line and key: %s", reason);
    tfs_test_response_free(&r);
    free(victim);
    env_down(&e);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

/* A full sync of `pair` that must succeed; returns the final run status. */
static json_t *full_sync_of(env *e, const char *pair)
{
    char body[256];
    snprintf(body, sizeof body, "{\"pair\": \"%s\"}", pair);
    tfs_test_response r = tfs_test_http(e->d, "POST", "/sync/full", "operate-key", body);
    cr_assert_eq(r.status, 202, "POST /sync/full: %ld %s", r.status, r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    json_t *run = tfs_test_wait_run(e->d, id, 30); /* 50 items take well under a second */
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded",
                     "run ended %s: %s", json_string_value(json_object_get(run, "state")),
                     json_string_value(json_object_get(run, "error")));
    return run;
}

static json_int_t item_count(json_t *run, const char *what)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(run, "counts"), "item"), what));
}

/* A pair whose source and target are the same system: the reading side and the writing
 * side each get their own instance (they run on two threads, and a plugin instance is
 * never called from two). The template plugin keeps its table per instance, so the source
 * instance must not see what is written to the target one. With one shared instance the
 * run reads back what it writes (ids + 1000, then + 2000, ...) and never ends, and a
 * second run would read the first one's writes too. */
Test(full_sync, same_system_as_source_and_target_gets_an_instance_each, .timeout = 300)
{
    char *dir = strdup("/tmp/tfs-transforms-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    append_to(dir, "item_shift.lua",
              "function map(s)\n"
              "  return { item = { id = s.id + 1000, name = s.name, price = s.price,\n"
              "                    updated = s.updated } }\n"
              "end\n");
    env e = {0};
    e.state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
    json_t *cfg = tfs_test_config_new("unused_pacs", "unused_cama", e.state);
    json_object_set_new(cfg, "transform_dir", json_string(dir));
    /* The template is not a shipped plugin: it is built into a folder of its own. */
    json_object_set_new(cfg, "plugin_dir", json_string(TFS_TEMPLATE_PLUGIN_DIR));
    json_object_set_new(cfg, "workers", json_integer(1)); /* both runs on one worker */
    json_object_set_new(cfg, "systems",
                        json_pack("{s{sss{si}}}", "tpl", "plugin", "template", "settings",
                                  "rows", 50));
    json_object_set_new(cfg, "pairs",
                        json_pack("[{sssssssis[{sss[s]ss}]}]", "name", "tpl-self", "source",
                                  "tpl", "target", "tpl", "batch_size", 10, "entities",
                                  "source", "item", "targets", "item", "script",
                                  "item_shift.lua"));
    e.d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    json_t *run = full_sync_of(&e, "tpl-self");
    cr_assert_eq(item_count(run, "read"), 50, "first run read %lld",
                 (long long)item_count(run, "read"));
    cr_assert_eq(item_count(run, "written"), 50);
    json_decref(run);
    run = full_sync_of(&e, "tpl-self");
    cr_assert_eq(item_count(run, "read"), 50,
                 "the second run read %lld items: the source saw the target's writes",
                 (long long)item_count(run, "read"));
    cr_assert_eq(item_count(run, "unchanged"), 50);
    cr_assert_eq(item_count(run, "written"), 0);
    json_decref(run);

    char *log = tfs_test_daemon_log(e.d);
    int status = tfs_test_daemon_stop_status(e.d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
    tfs_test_db_drop(e.state);
    free(e.state);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    free(dir);
}

/* A key the compare took for new that has a sync map row by the time its batch commits
 * (another writer of the pair's map): the COPY of new rows hits the map's primary key
 * (SQLSTATE 23505, constraint sync_map_pkey) and the store redoes the batch as updates. */
Test(full_sync, new_key_that_exists_by_commit_time_is_updated, .timeout = 300)
{
    char *state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
    char *conninfo = tfs_test_pg_conninfo(state);
    tfs_store *s = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_store_open(conninfo, &s, &err), 0, "%s", err.message);
    cr_assert_eq(tfs_store_migrate(s, &err), 0, "%s", err.message);
    int64_t run_id = 0;
    cr_assert_eq(tfs_store_run_create(s, "p", "full", "test", NULL, &run_id, &err), 0, "%s",
                 err.message);
    tfs_syncmap_row row = {.source_key = "k1", .source_hash = "0000000000000001",
                           .target_hash = "00000000000000aa", .target_keys = "[]",
                           .target_record = "{}", .is_new = 1};
    tfs_batch_commit bc = {.pair = "p", .entity = "e", .run_id = run_id, .rows = &row,
                           .n_rows = 1, .actor = "test"};
    cr_assert_eq(tfs_store_batch_commit(s, &bc, &err), 0, "%s", err.message);
    snprintf(row.target_hash, sizeof row.target_hash, "00000000000000bb");
    cr_assert_eq(tfs_store_batch_commit(s, &bc, &err), 0, "a second \"new\" row of k1: %s",
                 err.message);
    uint64_t hash = 0;
    unsigned char found = 0;
    const char *keys[] = {"k1"};
    cr_assert_eq(tfs_store_batch_hashes(s, "p", "e", keys, 1, &hash, &found, &err), 0, "%s",
                 err.message);
    cr_assert(found);
    cr_assert_eq(hash, 0xbb, "the map holds the second write");
    tfs_store_close(s);
    free(conninfo);
    tfs_test_db_drop(state);
    free(state);
}

/* Migration 8 turns the sync map's target_keys and target_record from jsonb into json (the
 * daemon never asks PostgreSQL to look inside them): a store written before it keeps its
 * rows, read back as the records they were. The store is put back to migration 7 by hand. */
Test(full_sync, store_at_migration_7_keeps_its_sync_map_as_json, .timeout = 300)
{
    char *state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
    char *conninfo = tfs_test_pg_conninfo(state);
    tfs_store *s = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_store_open(conninfo, &s, &err), 0, "%s", err.message);
    cr_assert_eq(tfs_store_migrate(s, &err), 0, "%s", err.message);
    const char *type_sql = "SELECT string_agg(attname || ' ' || atttypid::regtype::text, ', '"
                           " ORDER BY attname) FROM pg_attribute WHERE attrelid ="
                           " 'tfsync.sync_map'::regclass AND attname LIKE 'target_%'";
    char *types = tfs_test_pg_scalar(state, type_sql);
    cr_expect_str_eq(types, "target_hash text, target_keys json, target_record json");
    free(types);
    tfs_test_pg_exec(state,
                     "ALTER TABLE tfsync.sync_map ALTER COLUMN target_keys TYPE jsonb,"
                     " ALTER COLUMN target_record TYPE jsonb;"
                     "DELETE FROM tfsync.migrations WHERE version = 8;"
                     "INSERT INTO tfsync.sync_map (pair, entity, source_key, source_hash,"
                     " target_hash, target_keys, target_record, run_id) VALUES ('p', 'e', 'k1',"
                     " '0000000000000001', '00000000000000aa',"
                     " '[{\"key\": \"k1\", \"hash\": \"00000000000000aa\", \"entity\": \"t\"}]',"
                     " '{\"t\": [{\"a\": 1.50, \"b\": null, \"c\": \"x\"}]}', 1)");
    cr_assert_eq(tfs_store_migrate(s, &err), 0, "%s", err.message);
    types = tfs_test_pg_scalar(state, type_sql);
    cr_expect_str_eq(types, "target_hash text, target_keys json, target_record json");
    free(types);
    tfs_arena *a = tfs_arena_new();
    cr_assert(a);
    const char *keys[] = {"k1", "k2"};
    const char *records[2];
    cr_assert_eq(tfs_store_batch_records(s, "p", "e", keys, 2, a, records, &err), 0, "%s",
                 err.message);
    cr_assert_not_null(records[0]);
    json_error_t je;
    json_t *got = json_loads(records[0], 0, &je);
    json_t *want = json_loads("{\"t\": [{\"a\": 1.50, \"b\": null, \"c\": \"x\"}]}", 0, &je);
    cr_expect(got && json_equal(got, want), "the record read back: %s", records[0]);
    cr_expect_null(records[1], "k2 has no row");
    json_decref(got);
    json_decref(want);
    tfs_arena_free(a);
    tfs_store_close(s);
    free(conninfo);
    tfs_test_db_drop(state);
    free(state);
}
