/* tests/fault/fault_test.c — the fault suite: the daemon killed at chosen points of a full
 * sync of TFS_FAULT_PARCELS parcels (100,000 by default) and of an incremental run, then
 * started again; every case must end exactly right by itself.
 *
 * It runs under tests/fault/run.sh, on three PostgreSQL servers of its own (source, target,
 * state store, found through TFS_FAULT_<ROLE>_HOST/_PORT), one case at a time, so that a
 * case can stop one server alone. A kill lands at a known record, never after a sleep: a
 * CAMA trigger makes the write of one parcel wait for an advisory lock the test holds, and
 * the test kills the daemon once it waits there, with the batches before it committed.
 *
 * Every case ends with CAMA equal to the SQL twins (exact rows, no duplicates, no gaps),
 * the run's counts adding up, and one audit entry per applied record.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define HOLD_LOCK 4242
#define BATCH 1000

TestSuite(fault, .timeout = 900);

/* ---- the three servers ---- */

typedef enum { SOURCE, TARGET, STATE } role;
static const char *const role_env[] = {"SOURCE", "TARGET", "STATE"};

/* Points the helpers of tfs_test.h at the server of r. */
static void use(role r)
{
    char hk[64], pk[64];
    snprintf(hk, sizeof hk, "TFS_FAULT_%s_HOST", role_env[r]);
    snprintf(pk, sizeof pk, "TFS_FAULT_%s_PORT", role_env[r]);
    const char *host = getenv(hk), *port = getenv(pk);
    cr_assert(host && port, "%s and %s are not set: run the fault suite through "
              "tests/fault/run.sh (ctest -R fault)", hk, pk);
    tfs_test_pg_server(host, port);
}

static char *conninfo_on(role r, const char *db)
{
    use(r);
    return tfs_test_pg_conninfo(db);
}

static json_int_t int_on(role r, const char *db, const char *sql)
{
    use(r);
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

static char *text_on(role r, const char *db, const char *sql)
{
    use(r);
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    return v;
}

static void exec_on(role r, const char *db, const char *sql)
{
    use(r);
    tfs_test_pg_exec(db, sql);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The interval of loops that wait for a state (never for ordering). */
static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the environment: databases on their servers, a config, a daemon ---- */

typedef struct env {
    char *pacs, *cama, *state; /* database names, each on its own server */
    json_t *cfg;               /* owned; kept to start the daemon again after a kill */
    tfs_test_daemon *d;
} env;

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    use(SOURCE);
    e->pacs = tfs_test_db_clone("tfs_fault_pacs", "pacs");
    use(TARGET);
    e->cama = tfs_test_db_clone("tfs_fault_cama", "cama");
    use(STATE);
    e->state = tfs_test_db_clone("tfs_fault_state", "state");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    char *pacs = conninfo_on(SOURCE, e->pacs), *cama = conninfo_on(TARGET, e->cama),
         *state = conninfo_on(STATE, e->state);
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_set_new(json_object_get(json_object_get(systems, "pacs"), "settings"),
                        "conninfo", json_string(pacs));
    json_object_set_new(json_object_get(json_object_get(systems, "cama"), "settings"),
                        "conninfo", json_string(cama));
    json_object_set_new(json_object_get(e->cfg, "state"), "conninfo", json_string(state));
    json_object_set_new(json_array_get(json_object_get(e->cfg, "pairs"), 0), "batch_size",
                        json_integer(BATCH));
    free(pacs);
    free(cama);
    free(state);
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
    use(SOURCE);
    tfs_test_db_drop(e->pacs);
    use(TARGET);
    tfs_test_db_drop(e->cama);
    use(STATE);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

static json_int_t start_run(env *e, const char *mode)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(r.status, 202, "POST %s: want 202, got %ld %s%s", path, r.status, r.error,
                 r.body ? r.body : "");
    json_int_t run_id = json_integer_value(json_object_get(r.json, "run_id"));
    cr_assert_gt(run_id, 0, "POST %s: no run_id in %s", path, r.body);
    tfs_test_response_free(&r);
    return run_id;
}

/* counts.property.<what> of a run's status. */
static json_int_t count_of(json_t *run, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), "property"),
                                what);
    cr_assert(json_is_integer(c), "the run's counts have no integer property.%s", what);
    return json_integer_value(c);
}

static json_t *wait_ok(env *e, json_int_t run_id)
{
    json_t *run = tfs_test_wait_run(e->d, run_id, 600);
    const char *state = json_string_value(json_object_get(run, "state"));
    cr_assert_str_eq(state, "succeeded", "run %lld ended %s: %s", (long long)run_id, state,
                     json_string_value(json_object_get(run, "error")));
    return run;
}

/* ---- the hold: the write of one parcel waits for the test's advisory lock ---- */

typedef struct hold {
    PGconn *conn; /* on the CAMA database; holds the lock */
    char parid[64];
} hold;

/* The parid of the n-th (0-based) active property in key order, the order of a full read
 * and of a change window's keys. */
static void nth_parid(env *e, json_int_t n, const char *from, char out[64])
{
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT parid FROM %s a ORDER BY prop_id OFFSET %lld LIMIT 1",
             from, (long long)n);
    char *v = text_on(SOURCE, e->pacs, sql);
    snprintf(out, 64, "%s", v);
    free(v);
}

static void hold_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

static void hold_set(env *e, hold *h, const char *parid)
{
    snprintf(h->parid, sizeof h->parid, "%s", parid);
    use(TARGET);
    h->conn = tfs_test_pg_connect(e->cama);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE OR REPLACE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN IF NEW.parid = '%s' THEN PERFORM pg_advisory_xact_lock(%d); END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER test_hold BEFORE INSERT OR UPDATE ON pardat FOR EACH ROW"
             " EXECUTE FUNCTION test_hold();"
             "SELECT pg_advisory_lock(%d)",
             parid, HOLD_LOCK, HOLD_LOCK);
    hold_exec(h->conn, sql);
}

/* Waits until the run's write waits on the hold and at least `committed` records read by
 * the run are committed in the state store. */
static void hold_wait(env *e, const hold *h, json_int_t run_id, json_int_t committed)
{
    long long deadline = now_ms() + 300000;
    const char *waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                          " current_database() AND wait_event_type = 'Lock' AND wait_event ="
                          " 'advisory'";
    while (int_on(TARGET, e->cama, waiting) < 1) {
        cr_assert_lt(now_ms(), deadline, "the run never reached the held parcel %s", h->parid);
        pause_ms(20);
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((counts->'property'->>'read')::bigint, 0) FROM tfsync.runs"
             " WHERE run_id = %lld",
             (long long)run_id);
    json_int_t got;
    while ((got = int_on(STATE, e->state, sql)) < committed) {
        cr_assert_lt(now_ms(), deadline,
                     "run %lld committed %lld records before the held parcel %s, want %lld",
                     (long long)run_id, (long long)got, h->parid, (long long)committed);
        pause_ms(20);
    }
}

/* Lets go of the hold and removes it (after the daemon is dead). */
static void hold_release(hold *h)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d)", HOLD_LOCK);
    hold_exec(h->conn, sql);
    /* Waits for the dead daemon's CAMA session to let go of pardat. */
    hold_exec(h->conn, "DROP TRIGGER test_hold ON pardat; DROP FUNCTION test_hold()");
    PQfinish(h->conn);
    h->conn = NULL;
}

/* Holds the write of the n-th record of `from` (key order), starts the daemon (which
 * resumes run_id) or, with run_id 0, a full run, waits until the run waits at the held
 * record with the batches before it committed, and kills the daemon. Returns the run. The
 * held record is at least the n-th the run reads (it reads more than `from`), so at least
 * n / BATCH whole batches come before it. */
static json_int_t kill9_at(env *e, json_int_t run_id, json_int_t n, const char *from)
{
    hold h;
    char parid[64];
    nth_parid(e, n, from, parid);
    hold_set(e, &h, parid);
    if (!e->d)
        e->d = tfs_test_daemon_start(e->cfg);
    if (run_id == 0)
        run_id = start_run(e, "full");
    hold_wait(e, &h, run_id, n / BATCH * BATCH);
    tfs_test_daemon_kill9(e->d);
    e->d = NULL;
    hold_release(&h);
    return run_id;
}

/* ---- what every case ends with ---- */

/* CAMA equals the twins, the counts add up, and the run has one audit entry per applied
 * record: as many as it wrote, each for another key. */
static void assert_exact(env *e, json_t *run, json_int_t run_id, json_int_t want_written)
{
    char *pacs = conninfo_on(SOURCE, e->pacs);
    use(TARGET);
    tfs_test_assert_matches_twin(pacs, e->cama, "pardat", TFS_TEST_PARDAT_COLS,
                                 "pacs_to_cama_pardat.sql");
    tfs_test_assert_matches_twin(pacs, e->cama, "asmt", TFS_TEST_ASMT_COLS,
                                 "pacs_to_cama_asmt.sql");
    free(pacs);

    json_int_t read = count_of(run, "read"), written = count_of(run, "written");
    json_int_t sum = written + count_of(run, "unchanged") + count_of(run, "deleted") +
                     count_of(run, "transform_failed") + count_of(run, "validate_failed") +
                     count_of(run, "write_failed");
    cr_assert_eq(read, sum, "run %lld read %lld records, but its outcomes add up to %lld",
                 (long long)run_id, (long long)read, (long long)sum);
    if (want_written >= 0)
        cr_assert_eq(written, want_written, "run %lld wrote %lld records, want %lld",
                     (long long)run_id, (long long)written, (long long)want_written);

    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.audit WHERE run_id = %lld AND entity = 'property'",
             (long long)run_id);
    json_int_t entries = int_on(STATE, e->state, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT source_key) FROM tfsync.audit WHERE run_id = %lld AND"
             " entity = 'property'",
             (long long)run_id);
    json_int_t keys = int_on(STATE, e->state, sql);
    cr_assert_eq(entries, keys, "run %lld has %lld audit entries for %lld keys: some record "
                 "was audited twice", (long long)run_id, (long long)entries, (long long)keys);
    cr_assert_eq(entries, written, "run %lld has %lld audit entries for %lld records written",
                 (long long)run_id, (long long)entries, (long long)written);
}

static json_int_t active_props(env *e)
{
    return int_on(SOURCE, e->pacs, "SELECT count(*) FROM " TFS_TEST_ACTIVE_PROPS " a");
}

/* ---- kill -9 during a full sync into an empty CAMA ---- */

/* Kills the daemon at each of the fractions of the active properties (in key order) in
 * turn, starting it again after each, and checks that the one run then ends exact. */
static void full_sync_killed_at(const double *fractions, int n)
{
    env e;
    env_init(&e);
    json_int_t total = active_props(&e);
    cr_assert_gt(total, 2 * BATCH, "the PACS template has only %lld active properties",
                 (long long)total);
    json_int_t run_id = 0;
    for (int i = 0; i < n; i++) {
        json_int_t at = (json_int_t)(fractions[i] * (double)total);
        run_id = kill9_at(&e, run_id, at, TFS_TEST_ACTIVE_PROPS);
        cr_assert_eq(int_on(STATE, e.state,
                            "SELECT count(*) FROM tfsync.runs WHERE state = 'running'"),
                     1, "the killed run is no longer running in the state store");
    }
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = wait_ok(&e, run_id);
    /* Into an empty CAMA every record is written once, and each has its sync map row. */
    assert_exact(&e, run, run_id,
                 int_on(STATE, e.state, "SELECT count(*) FROM tfsync.sync_map WHERE entity ="
                                        " 'property'"));
    json_decref(run);
    cr_assert_eq(int_on(STATE, e.state, "SELECT count(*) FROM tfsync.runs"), 1,
                 "the resumed run is the same run, not a new one");
    env_down(&e);
}

Test(fault, full_sync_killed_in_its_first_batch)
{
    full_sync_killed_at((const double[]){0.0001}, 1);
}

Test(fault, full_sync_killed_midway)
{
    full_sync_killed_at((const double[]){0.5}, 1);
}

Test(fault, full_sync_killed_near_its_end)
{
    full_sync_killed_at((const double[]){0.97}, 1);
}

Test(fault, full_sync_killed_twice)
{
    full_sync_killed_at((const double[]){0.3, 0.7}, 2);
}

/* ---- kill -9 during an incremental run ---- */

#define CHANGED 20000

Test(fault, incremental_run_killed_midway)
{
    env e;
    env_init(&e);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t full = start_run(&e, "full");
    json_decref(wait_ok(&e, full));

    /* The first CHANGED active properties by prop_id get a new land value, in transactions
     * of 1,000, so every one changes its asmt row. */
    exec_on(SOURCE, e.pacs, "CREATE TABLE test_changed AS SELECT prop_id, parid,"
                            " (row_number() OVER (ORDER BY prop_id) - 1)::int AS n FROM "
                            TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id LIMIT 20000");
    for (int g = 0; g < CHANGED / 1000; g++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "UPDATE property_val v SET land_non_hstd_val = land_non_hstd_val + 1"
                 " FROM test_changed c WHERE c.n >= %d AND c.n < %d AND v.prop_id = c.prop_id"
                 " AND v.prop_val_yr = 2026",
                 g * 1000, (g + 1) * 1000);
        exec_on(SOURCE, e.pacs, sql);
    }
    hold h;
    char parid[64];
    nth_parid(&e, CHANGED * 6 / 10, "test_changed", parid);
    hold_set(&e, &h, parid);
    json_int_t run_id = start_run(&e, "incremental");
    hold_wait(&e, &h, run_id, CHANGED * 6 / 10 / BATCH * BATCH);
    tfs_test_daemon_kill9(e.d);
    e.d = NULL;
    hold_release(&h);

    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = wait_ok(&e, run_id);
    cr_assert_str_eq(json_string_value(json_object_get(run, "mode")), "incremental");
    assert_exact(&e, run, run_id, CHANGED);
    json_decref(run);
    /* The audited keys are the changed ones. */
    char *keys = text_on(SOURCE, e.pacs, "SELECT md5(string_agg(prop_id || '|2026', ','"
                                         " ORDER BY prop_id || '|2026')) FROM test_changed");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT md5(string_agg(source_key, ',' ORDER BY source_key)) FROM tfsync.audit"
             " WHERE run_id = %lld",
             (long long)run_id);
    char *audited = text_on(STATE, e.state, sql);
    cr_assert_str_eq(audited, keys, "the audited keys of run %lld are not the changed ones",
                     (long long)run_id);
    free(keys);
    free(audited);
    env_down(&e);
}
