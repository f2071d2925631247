/* tests/integration/guard_test.c — the guards of issue 8: a full run whose sweep, or an
 * incremental run whose retirements, would delete more than the pair's max_delete_ratio is
 * held with nothing deleted until an operator confirms the exact count (through a daemon
 * restart, and cancelled it deletes nothing); a run past max_failed_ratio fails and deletes
 * nothing; a run with dead letters ends partial; the CLI's exit codes for partial and
 * held; a record mapped to nothing (a confidential sale) counts as skipped with no audit
 * entry. In every run: read = written + unchanged + skipped + conflicts + failed + deleted
 * + set_aside.
 *
 * A real PostgreSQL, the real daemon with the real pacs and cama plugins, called over HTTP
 * (and through tfsync for the exit codes). Runs are awaited through GET /sync/status;
 * nothing waits on a fixed sleep. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"

TestSuite(guard, .timeout = 300);

/* ---- utilities ---- */

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

/* counts.<entity>.<what> of a run; fails when it is missing. */
static json_int_t count_of(const json_t *run, const char *entity, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), entity), what);
    if (!json_is_integer(c)) {
        char *s = json_dumps(json_object_get(run, "counts"), JSON_COMPACT);
        cr_assert_fail("the run's counts have no integer %s.%s: %s", entity, what, s);
    }
    return json_integer_value(c);
}

/* The rule every run keeps, for every entity it counted. */
static void assert_counts_add_up(const json_t *run)
{
    const char *entity;
    json_t *c;
    json_object_foreach(json_object_get(run, "counts"), entity, c) {
        json_int_t read = count_of(run, entity, "read");
        json_int_t sum = count_of(run, entity, "written") + count_of(run, entity, "unchanged") +
                         count_of(run, entity, "skipped") + count_of(run, entity, "conflicts") +
                         count_of(run, entity, "failed") + count_of(run, entity, "deleted") +
                         count_of(run, entity, "set_aside");
        char *s = json_dumps(c, JSON_COMPACT);
        cr_assert_eq(read, sum, "run %lld, %s: read %lld but written + unchanged + skipped + "
                     "conflicts + failed + deleted + set_aside = %lld: %s",
                     (long long)json_integer_value(json_object_get(run, "run_id")), entity,
                     (long long)read, (long long)sum, s);
        free(s);
    }
}

static const char *state_of(const json_t *run)
{
    const char *s = json_string_value(json_object_get(run, "state"));
    return s ? s : "(none)";
}

/* ---- the environment ---- */

typedef struct env {
    char *pacs, *cama, *state;
    json_t *cfg;
    tfs_test_daemon *d;
    char tdir[256]; /* a transform folder of the test's own, or "" */
} env;

static json_t *pair_cfg(env *e)
{
    return json_array_get(json_object_get(e->cfg, "pairs"), 0);
}

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "gpacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "gcama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "gstate");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
}

static void env_down(env *e)
{
    if (e->d) {
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
    if (e->tdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->tdir);
        cr_expect_eq(system(cmd), 0);
    }
}

/* A transform folder with the shipped scripts and guard_fail.lua: pacs_to_cama.lua, but
 * a property whose zoning is FAILME fails with a Lua error, so a test chooses which
 * records fail by writing PACS. The pair's script becomes it. */
static void use_failing_script(env *e)
{
    snprintf(e->tdir, sizeof e->tdir, "/tmp/tfs-guard-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(e->tdir));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, e->tdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *base = tfs_test_read_file(TFS_SOURCE_DIR "/transforms/pacs_to_cama.lua");
    char path[320];
    snprintf(path, sizeof path, "%s/guard_fail.lua", e->tdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\nlocal real_map = map\nfunction map(p)\n"
               "  if p.zoning == 'FAILME' then error('guard test: this record fails') end\n"
               "  return real_map(p)\nend\n",
            base);
    fclose(f);
    free(base);
    json_object_set_new(e->cfg, "transform_dir", json_string(e->tdir));
    json_t *ent = json_array_get(json_object_get(pair_cfg(e), "entities"), 0);
    json_object_set_new(ent, "script", json_string("guard_fail.lua"));
}

static json_int_t start_run(env *e, const char *mode)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(r.status, 202, "POST %s: want 202, got %ld %s", path, r.status,
                 r.body ? r.body : r.error);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    cr_assert(id > 0);
    return id;
}

/* Runs mode to its end (or held) and asserts the state and that its counts add up. */
static json_t *run_expect(env *e, const char *mode, const char *want)
{
    json_t *run = tfs_test_wait_run(e->d, start_run(e, mode), 240);
    cr_assert_str_eq(state_of(run), want, "a %s run ended %s (want %s): %s", mode,
                     state_of(run), want,
                     json_string_value(json_object_get(run, "error")));
    assert_counts_add_up(run);
    return run;
}

static json_t *run_status(env *e, json_int_t id)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *out = json_incref(r.json);
    tfs_test_response_free(&r);
    return out;
}

/* POST /sync/runs/{id}/confirm {"deletes": n}; the response (free it). */
static tfs_test_response confirm(env *e, json_int_t id, json_int_t n)
{
    char path[96], body[64];
    snprintf(path, sizeof path, "/sync/runs/%lld/confirm", (long long)id);
    snprintf(body, sizeof body, "{\"deletes\": %lld}", (long long)n);
    return tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
}

/* What CAMA holds, as one md5 over both tables in key order. */
static char *cama_checksum(env *e)
{
    char *v = tfs_test_pg_scalar(
        e->cama, "SELECT md5((SELECT coalesce(string_agg(t::text, '|' ORDER BY t.parid,"
                 " t.taxyr), '') FROM pardat t) || '#' || (SELECT coalesce(string_agg("
                 "t::text, '|' ORDER BY t.parid, t.taxyr), '') FROM asmt t))");
    cr_assert_not_null(v);
    return v;
}

static json_int_t synced_keys(env *e)
{
    return scalar_int(e->state, "SELECT count(*) FROM tfsync.sync_map WHERE pair = '" PAIR
                                "' AND entity = 'property'");
}

/* tfsync ... sync MODE PAIR --wait; its exit code. */
static int cli_sync_wait(env *e, const char *mode)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "'%s/tfsync' --url http://127.0.0.1:%d --key " TFS_TEST_KEY_OPERATE
             " sync %s " PAIR " --wait >/dev/null 2>&1",
             TFS_BINARY_DIR, e->d->port, mode);
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "tfsync did not exit normally: %d", st);
    return WEXITSTATUS(st);
}

static json_int_t last_run_id(env *e)
{
    return scalar_int(e->state, "SELECT max(run_id) FROM tfsync.runs");
}

/* ====================================================================================
 * A full run against a source emptied to one record: held, CAMA unchanged; the CLI says
 * 5; a confirm of a run that is not held, or of a wrong count, is refused; a cancel ends
 * it with nothing deleted; held again, it survives a restart, and confirmed it deletes
 * exactly the vanished keys.
 * ==================================================================================== */
Test(guard, full_run_on_an_emptied_source_is_held_until_confirmed)
{
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "delete_action", json_string("delete"));
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *first = run_expect(&e, "full", "succeeded");
    json_int_t first_id = json_integer_value(json_object_get(first, "run_id"));
    json_decref(first);
    json_int_t synced = synced_keys(&e);
    cr_assert_gt(synced, 1000, "the full run synced only %lld keys", (long long)synced);
    char *keep = tfs_test_pg_scalar(e.pacs, "SELECT parid FROM " TFS_TEST_ACTIVE_PROPS
                                            " a ORDER BY prop_id LIMIT 1");
    char sql[512];
    snprintf(sql, sizeof sql,
             "DELETE FROM property WHERE simple_geo_id IS DISTINCT FROM '%s'", keep);
    tfs_test_pg_exec(e.pacs, sql);
    char *before = cama_checksum(&e);

    /* Through the CLI: held is exit code 5. */
    cr_assert_eq(cli_sync_wait(&e, "full"), 5, "tfsync sync --wait of a held run");
    json_int_t id = last_run_id(&e);
    json_t *run = run_status(&e, id);
    cr_assert_str_eq(state_of(run), "held");
    assert_counts_add_up(run);
    json_int_t held = json_integer_value(json_object_get(
        json_object_get(json_object_get(run, "held"), "deletes"), "property"));
    cr_assert_eq(held, synced - 1, "held for %lld deletions, want %lld (every key but one)",
                 (long long)held, (long long)(synced - 1));
    const char *reason = json_string_value(json_object_get(json_object_get(run, "held"),
                                                           "reason"));
    cr_assert(reason && strstr(reason, "max_delete_ratio"), "held reason: %s", reason);
    cr_assert_eq(count_of(run, "property", "swept"), 0);
    json_decref(run);
    char *now = cama_checksum(&e);
    cr_assert_str_eq(now, before, "a held run changed CAMA");
    free(now);

    /* A run that is not held cannot be confirmed. */
    tfs_test_response r = confirm(&e, first_id, 0);
    cr_assert_eq(r.status, 409, "confirm of a succeeded run: %ld %s", r.status, r.body);
    cr_assert(strstr(json_string_value(json_object_get(r.json, "type")), "run-not-held"), "%s", r.body);
    tfs_test_response_free(&r);

    /* Cancelled, it ends cancelled at once, nothing deleted, and the pair is free. */
    char path[96];
    snprintf(path, sizeof path, "/sync/runs/%lld/cancel", (long long)id);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "");
    cr_assert_eq(r.status, 200, "cancel of a held run: %ld %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "cancelled");
    tfs_test_response_free(&r);
    run = run_status(&e, id);
    cr_assert_str_eq(state_of(run), "cancelled");
    json_decref(run);
    now = cama_checksum(&e);
    cr_assert_str_eq(now, before, "a cancelled held run changed CAMA");
    free(now);
    cr_assert_eq(synced_keys(&e), synced);

    /* Held again; the daemon is killed and started again; still held and confirmable. */
    json_t *again = run_expect(&e, "full", "held");
    id = json_integer_value(json_object_get(again, "run_id"));
    json_decref(again);
    tfs_test_daemon_kill9(e.d);
    e.d = tfs_test_daemon_start(e.cfg);
    run = run_status(&e, id);
    cr_assert_str_eq(state_of(run), "held", "after a restart the run is %s", state_of(run));
    json_decref(run);

    r = confirm(&e, id, synced);
    cr_assert_eq(r.status, 409, "a wrong count: %ld %s", r.status, r.body);
    cr_assert(strstr(json_string_value(json_object_get(r.json, "type")), "wrong-count"), "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "held_deletes")), synced - 1,
                 "%s", r.body);
    tfs_test_response_free(&r);
    now = cama_checksum(&e);
    cr_assert_str_eq(now, before, "a refused confirm changed CAMA");
    free(now);

    r = confirm(&e, id, synced - 1);
    cr_assert_eq(r.status, 202, "confirm: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    run = tfs_test_wait_run(e.d, id, 240);
    cr_assert_str_eq(state_of(run), "succeeded", "confirmed run: %s",
                     json_string_value(json_object_get(run, "error")));
    assert_counts_add_up(run);
    cr_assert_eq(count_of(run, "property", "swept"), synced - 1);
    cr_assert_eq(count_of(run, "property", "read"), 1, "the confirmed run read again");
    cr_assert_eq(json_integer_value(json_object_get(run, "confirmed_deletes")), synced - 1);
    json_decref(run);
    /* Exactly the vanished keys are gone: one parcel is left, the kept one. */
    char *left = tfs_test_pg_scalar(e.cama, "SELECT string_agg(DISTINCT parid, ',') FROM "
                                            "(SELECT parid FROM pardat UNION ALL SELECT parid"
                                            " FROM asmt) t");
    cr_assert_str_eq(left, keep, "CAMA holds %s after the sweep, want only %s", left, keep);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat"), 1);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM asmt"), 1);
    cr_assert_eq(synced_keys(&e), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tfsync.audit WHERE op = 'confirm' AND "
                              "run_id = %lld", (long long)id);
    cr_assert_eq(scalar_int(e.state, sql), 1, "the confirm is not on the audit trail");
    /* Its entry, chained from an API thread between the runs' batches, and a kill -9 on
     * the way: one chain that verifies. */
    tfs_test_assert_audit_verifies(e.d, synced);
    free(left);
    free(keep);
    free(before);
    env_down(&e);
}

/* ====================================================================================
 * An incremental run retiring 15% of the parcels: its deletions are set aside (in the
 * store), the run is held with CAMA unchanged; a wrong count is refused; confirmed, it
 * deactivates exactly the retired parcels.
 * ==================================================================================== */
Test(guard, incremental_mass_retirement_is_held_until_confirmed)
{
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "delete_action", json_string("deactivate"));
    e.d = tfs_test_daemon_start(e.cfg);
    json_decref(run_expect(&e, "full", "succeeded"));
    json_int_t synced = synced_keys(&e);
    json_int_t n = synced * 15 / 100;
    char sql[4096];
    snprintf(sql, sizeof sql,
             "CREATE TABLE retired AS SELECT prop_id, parid FROM " TFS_TEST_ACTIVE_PROPS
             " a ORDER BY prop_id LIMIT %lld;"
             "UPDATE property_val SET prop_inactive_dt = '2026-06-01' WHERE prop_val_yr = 2026"
             " AND prop_id IN (SELECT prop_id FROM retired)",
             (long long)n);
    tfs_test_pg_exec(e.pacs, sql);
    char *retired = tfs_test_pg_scalar(e.pacs, "SELECT string_agg(parid, ',' ORDER BY parid)"
                                               " FROM retired");
    char *before = cama_checksum(&e);
    /* Parcels inactive in PACS from the start are written deactivated by the mapping. */
    json_int_t inactive = scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE deactivat IS"
                                             " NOT NULL");

    json_t *run = run_expect(&e, "incremental", "held");
    json_int_t id = json_integer_value(json_object_get(run, "run_id"));
    json_int_t held = json_integer_value(json_object_get(
        json_object_get(json_object_get(run, "held"), "deletes"), "property"));
    cr_assert_eq(held, n, "held for %lld deletions, want the %lld retired", (long long)held,
                 (long long)n);
    cr_assert_eq(count_of(run, "property", "set_aside"), n);
    cr_assert_eq(count_of(run, "property", "deleted"), 0);
    json_decref(run);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tfsync.pending_deletes WHERE run_id = %lld",
             (long long)id);
    cr_assert_eq(scalar_int(e.state, sql), n, "the set-aside deletions are not in the store");
    char *now = cama_checksum(&e);
    cr_assert_str_eq(now, before, "a held incremental run changed CAMA");
    free(now);

    tfs_test_response r = confirm(&e, id, n - 1);
    cr_assert_eq(r.status, 409, "a wrong count: %ld %s", r.status, r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "held_deletes")), n);
    tfs_test_response_free(&r);
    r = confirm(&e, id, n);
    cr_assert_eq(r.status, 202, "confirm: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    /* Killed wherever its deletions are, the run resumes and still ends exactly. */
    tfs_test_daemon_kill9(e.d);
    e.d = tfs_test_daemon_start(e.cfg);
    run = tfs_test_wait_run(e.d, id, 240);
    cr_assert_str_eq(state_of(run), "succeeded", "confirmed run: %s",
                     json_string_value(json_object_get(run, "error")));
    assert_counts_add_up(run);
    cr_assert_eq(count_of(run, "property", "deleted"), n);
    cr_assert_eq(count_of(run, "property", "set_aside"), 0);
    json_decref(run);
    cr_assert_eq(scalar_int(e.state, sql), 0, "applied deletions are still set aside");
    /* Exactly the retired parcels are deactivated, nothing else. */
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE deactivat IS NOT NULL"),
                 inactive + n);
    size_t qlen = strlen(retired) + 256;
    char *q = malloc(qlen);
    cr_assert_not_null(q);
    snprintf(q, qlen, "SELECT string_agg(parid, ',' ORDER BY parid) FROM pardat WHERE"
                      " deactivat IS NOT NULL AND parid = ANY(string_to_array('%s', ','))",
             retired);
    char *gone = tfs_test_pg_scalar(e.cama, q);
    free(q);
    cr_assert_str_eq(gone, retired, "the retired parcels are not all deactivated");
    free(gone);
    free(retired);
    free(before);
    env_down(&e);
}

/* ====================================================================================
 * A run with a few dead letters ends partial (tfsync exits 4) and sweeps; past
 * max_failed_ratio a run fails (tfsync exits 1) and deletes nothing, its writes and dead
 * letters kept.
 * ==================================================================================== */
Test(guard, dead_letters_make_a_run_partial_and_past_the_ratio_failed)
{
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "delete_action", json_string("delete"));
    use_failing_script(&e);
    e.d = tfs_test_daemon_start(e.cfg);
    json_decref(run_expect(&e, "full", "succeeded"));
    json_int_t synced = synced_keys(&e);

    /* 1% fail, 3 vanish: partial, and the 3 are swept. */
    json_int_t few = synced / 100;
    char sql[4096];
    snprintf(sql, sizeof sql,
             "UPDATE property SET zoning = 'FAILME' WHERE prop_id IN (SELECT prop_id FROM "
             TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id LIMIT %lld);"
             "DELETE FROM property WHERE prop_id IN (SELECT prop_id FROM " TFS_TEST_ACTIVE_PROPS
             " a ORDER BY prop_id DESC LIMIT 3)",
             (long long)few);
    tfs_test_pg_exec(e.pacs, sql);
    cr_assert_eq(cli_sync_wait(&e, "full"), 4, "tfsync sync --wait of a partial run");
    json_t *run = run_status(&e, last_run_id(&e));
    cr_assert_str_eq(state_of(run), "partial");
    assert_counts_add_up(run);
    cr_assert_eq(count_of(run, "property", "failed"), few);
    cr_assert_eq(count_of(run, "property", "swept"), 3);
    json_decref(run);

    /* 10% fail and 3 more vanish: failed, nothing deleted, the writes kept. */
    json_int_t many = synced / 10;
    snprintf(sql, sizeof sql,
             "UPDATE property SET zoning = 'FAILME' WHERE prop_id IN (SELECT prop_id FROM "
             TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id LIMIT %lld);"
             "CREATE TABLE vanished AS SELECT prop_id, parid FROM " TFS_TEST_ACTIVE_PROPS
             " a ORDER BY prop_id DESC LIMIT 3;"
             "DELETE FROM property WHERE prop_id IN (SELECT prop_id FROM vanished);"
             "UPDATE property SET zoning = 'Z-NEW' WHERE prop_id IN (SELECT prop_id FROM "
             TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id DESC LIMIT 5)",
             (long long)many);
    tfs_test_pg_exec(e.pacs, sql);
    char *vanished = tfs_test_pg_scalar(e.pacs, "SELECT string_agg(quote_literal(parid), ',')"
                                                " FROM vanished");
    cr_assert_eq(cli_sync_wait(&e, "full"), 1, "tfsync sync --wait of a failed run");
    json_int_t id = last_run_id(&e);
    run = run_status(&e, id);
    cr_assert_str_eq(state_of(run), "failed");
    assert_counts_add_up(run);
    cr_assert_eq(count_of(run, "property", "failed"), many);
    cr_assert_eq(count_of(run, "property", "swept"), 0);
    const char *error = json_string_value(json_object_get(run, "error"));
    cr_assert(error && strstr(error, "max_failed_ratio"), "error: %s", error);
    json_decref(run);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pardat WHERE parid IN (%s)", vanished);
    cr_assert_eq(scalar_int(e.cama, sql), 3, "a failed run deleted vanished parcels");
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat WHERE zoning = 'Z-NEW'"), 5,
                 "the failed run's writes are not kept");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tfsync.failed_records WHERE run_id = %lld",
             (long long)id);
    cr_assert_eq(scalar_int(e.state, sql), many, "the dead letters are not kept");
    free(vanished);
    env_down(&e);
}

/* ====================================================================================
 * A confidential sale maps to nothing: counted skipped, not written, no audit entry (and
 * none with empty changes); CAMA holds what the SQL twin says.
 * ==================================================================================== */
Test(guard, a_record_mapped_to_nothing_is_skipped_not_written)
{
    env e;
    env_init(&e);
    json_array_append_new(json_object_get(pair_cfg(&e), "entities"),
                          json_pack("{s:s, s:[s], s:s}", "source", "sale", "targets", "sales",
                                    "script", "pacs_sale_to_cama.lua"));
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = run_expect(&e, "full", "succeeded");
    json_int_t read = count_of(run, "sale", "read");
    json_int_t skipped = count_of(run, "sale", "skipped");
    json_int_t written = count_of(run, "sale", "written");
    json_int_t sales = scalar_int(e.cama, "SELECT count(*) FROM sales");
    cr_assert_gt(skipped, 0, "the demo county has confidential sales, none skipped");
    cr_assert_eq(written, sales, "written %lld but CAMA has %lld sales", (long long)written,
                 (long long)sales);
    cr_assert_eq(read, written + skipped, "sale: read %lld, written %lld, skipped %lld",
                 (long long)read, (long long)written, (long long)skipped);
    json_decref(run);
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.audit WHERE entity = 'sale'"),
                 written, "every sale written has one audit entry, and no other has one");
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.audit WHERE changes::text"
                                     " IN ('{}', '')"),
                 0, "audit entries with empty changes");
    /* A second run changes nothing, and still counts them skipped. */
    run = run_expect(&e, "full", "succeeded");
    cr_assert_eq(count_of(run, "sale", "skipped"), skipped);
    cr_assert_eq(count_of(run, "sale", "written"), 0);
    json_decref(run);
    env_down(&e);
}

/* The state a run reaches first among want (a NULL-terminated list), polled; owned. */
static json_t *wait_state(env *e, json_int_t id, const char *const *want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 50; i++) {
        json_t *run = run_status(e, id);
        for (const char *const *w = want; *w; w++)
            if (strcmp(state_of(run), *w) == 0)
                return run;
        json_decref(run);
        usleep(20 * 1000); /* a polling interval, not an ordering */
    }
    cr_assert_fail("run %lld did not reach the state wanted in %d s", (long long)id, timeout_s);
    return NULL;
}

/* ====================================================================================
 * A full read that returns nothing from a source whose keys are all synced is held, and
 * a source that cannot be read at all is an error (the run waits or fails), never an
 * empty read: nothing is deleted either way.
 * ==================================================================================== */
Test(guard, an_empty_or_unreadable_source_deletes_nothing)
{
    env e;
    env_init(&e);
    e.d = tfs_test_daemon_start(e.cfg);
    json_decref(run_expect(&e, "full", "succeeded"));
    json_int_t synced = synced_keys(&e);
    char *before = cama_checksum(&e);

    tfs_test_pg_exec(e.pacs, "DELETE FROM property");
    json_t *run = run_expect(&e, "full", "held");
    json_int_t id = json_integer_value(json_object_get(run, "run_id"));
    cr_assert_eq(count_of(run, "property", "read"), 0);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(run, "held"), "deletes"), "property")),
                 synced, "an empty read must be held for every synced key");
    json_decref(run);
    char path[96];
    snprintf(path, sizeof path, "/sync/runs/%lld/cancel", (long long)id);
    tfs_test_response r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "");
    cr_assert_eq(r.status, 200, "%s", r.body);
    tfs_test_response_free(&r);

    /* The source database goes away: a read error, not an empty read. */
    tfs_test_db_drop(e.pacs);
    id = start_run(&e, "full");
    static const char *const stops[] = {"waiting", "failed", "succeeded", "held", "partial",
                                        NULL};
    run = wait_state(&e, id, stops, 120);
    cr_assert(strcmp(state_of(run), "waiting") == 0 || strcmp(state_of(run), "failed") == 0,
              "a run of an unreadable source ended %s", state_of(run));
    int waiting = strcmp(state_of(run), "waiting") == 0;
    json_decref(run);
    if (waiting) {
        snprintf(path, sizeof path, "/sync/runs/%lld/cancel", (long long)id);
        r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "");
        cr_assert_eq(r.status, 202, "%s", r.body);
        tfs_test_response_free(&r);
        static const char *const ended[] = {"cancelled", NULL};
        json_decref(wait_state(&e, id, ended, 60));
    }
    char *now = cama_checksum(&e);
    cr_assert_str_eq(now, before, "CAMA changed");
    cr_assert_eq(synced_keys(&e), synced);
    free(now);
    free(before);
    env_down(&e);
}
