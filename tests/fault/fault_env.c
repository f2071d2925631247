/* tests/fault/fault_env.c — the fault suite's environment; see fault_env.h. */
#include "fault_env.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* ---- the three servers ---- */

static const char *const role_env[] = {"SOURCE", "TARGET", "STATE"};

/* Points the helpers of tfs_test.h at the server of r. */
void fault_use(fault_role r)
{
    char hk[64], pk[64];
    snprintf(hk, sizeof hk, "TFS_FAULT_%s_HOST", role_env[r]);
    snprintf(pk, sizeof pk, "TFS_FAULT_%s_PORT", role_env[r]);
    const char *host = getenv(hk), *port = getenv(pk);
    cr_assert(host && port, "%s and %s are not set: run the fault suite through "
              "tests/fault/run.sh (ctest -R fault)", hk, pk);
    tfs_test_pg_server(host, port);
}

char *fault_conninfo(fault_role r, const char *db)
{
    fault_use(r);
    return tfs_test_pg_conninfo(db);
}

json_int_t fault_int(fault_role r, const char *db, const char *sql)
{
    fault_use(r);
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

char *fault_text(fault_role r, const char *db, const char *sql)
{
    fault_use(r);
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    return v;
}

void fault_exec(fault_role r, const char *db, const char *sql)
{
    fault_use(r);
    tfs_test_pg_exec(db, sql);
}

long long fault_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The interval of loops that wait for a state (never for ordering). */
void fault_pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the environment: databases on their servers, a config, a daemon ---- */

void fault_env_init(fault_env *e)
{
    memset(e, 0, sizeof *e);
    fault_use(FAULT_SOURCE);
    e->pacs = tfs_test_db_clone("tfs_fault_pacs", "pacs");
    fault_use(FAULT_TARGET);
    e->cama = tfs_test_db_clone("tfs_fault_cama", "cama");
    fault_use(FAULT_STATE);
    e->state = tfs_test_db_clone("tfs_fault_state", "state");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    char *pacs = fault_conninfo(FAULT_SOURCE, e->pacs),
         *cama = fault_conninfo(FAULT_TARGET, e->cama),
         *state = fault_conninfo(FAULT_STATE, e->state);
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_set_new(json_object_get(json_object_get(systems, "pacs"), "settings"),
                        "conninfo", json_string(pacs));
    json_object_set_new(json_object_get(json_object_get(systems, "cama"), "settings"),
                        "conninfo", json_string(cama));
    json_object_set_new(json_object_get(e->cfg, "state"), "conninfo", json_string(state));
    json_object_set_new(json_array_get(json_object_get(e->cfg, "pairs"), 0), "batch_size",
                        json_integer(FAULT_BATCH));
    free(pacs);
    free(cama);
    free(state);
}

void fault_env_down(fault_env *e)
{
    if (e->d) {
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    json_decref(e->cfg);
    fault_use(FAULT_SOURCE);
    tfs_test_db_drop(e->pacs);
    fault_use(FAULT_TARGET);
    tfs_test_db_drop(e->cama);
    fault_use(FAULT_STATE);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

json_int_t fault_start_run(fault_env *e, const char *mode)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" FAULT_PAIR "\"}");
    cr_assert_eq(r.status, 202, "POST %s: want 202, got %ld %s%s", path, r.status, r.error,
                 r.body ? r.body : "");
    json_int_t run_id = json_integer_value(json_object_get(r.json, "run_id"));
    cr_assert_gt(run_id, 0, "POST %s: no run_id in %s", path, r.body);
    tfs_test_response_free(&r);
    return run_id;
}

/* counts.property.<what> of a run's status. */
json_int_t fault_count(json_t *run, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), "property"),
                                what);
    cr_assert(json_is_integer(c), "the run's counts have no integer property.%s", what);
    return json_integer_value(c);
}

json_t *fault_wait_ok(fault_env *e, json_int_t run_id)
{
    json_t *run = tfs_test_wait_run(e->d, run_id, 600);
    const char *state = json_string_value(json_object_get(run, "state"));
    cr_assert_str_eq(state, "succeeded", "run %lld ended %s: %s", (long long)run_id, state,
                     json_string_value(json_object_get(run, "error")));
    return run;
}

/* ---- the hold: the write of one parcel waits for the test's advisory lock ---- */

/* The parid of the n-th (0-based) active property in key order, the order of a full read
 * and of a change window's keys. */
void fault_nth_parid(fault_env *e, json_int_t n, const char *from, char out[64])
{
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT parid FROM %s a ORDER BY prop_id OFFSET %lld LIMIT 1",
             from, (long long)n);
    char *v = fault_text(FAULT_SOURCE, e->pacs, sql);
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

void fault_hold_set(fault_env *e, fault_hold *h, const char *parid)
{
    snprintf(h->parid, sizeof h->parid, "%s", parid);
    fault_use(FAULT_TARGET);
    h->conn = tfs_test_pg_connect(e->cama);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE OR REPLACE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN IF NEW.parid = '%s' THEN PERFORM pg_advisory_xact_lock(%d); END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER test_hold BEFORE INSERT OR UPDATE ON pardat FOR EACH ROW"
             " EXECUTE FUNCTION test_hold();"
             "SELECT pg_advisory_lock(%d)",
             parid, FAULT_HOLD_LOCK, FAULT_HOLD_LOCK);
    hold_exec(h->conn, sql);
}

/* Waits until the run's write waits on the fault_hold and at least `committed` records read by
 * the run are committed in the state store. */
void fault_hold_wait(fault_env *e, const fault_hold *h, json_int_t run_id, json_int_t committed)
{
    long long deadline = fault_now_ms() + 300000;
    const char *waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                          " current_database() AND wait_event_type = 'Lock' AND wait_event ="
                          " 'advisory'";
    while (fault_int(FAULT_TARGET, e->cama, waiting) < 1) {
        cr_assert_lt(fault_now_ms(), deadline, "the run never reached the held parcel %s",
                     h->parid);
        fault_pause_ms(20);
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((counts->'property'->>'read')::bigint, 0) FROM tfsync.runs"
             " WHERE run_id = %lld",
             (long long)run_id);
    json_int_t got;
    while ((got = fault_int(FAULT_STATE, e->state, sql)) < committed) {
        cr_assert_lt(fault_now_ms(), deadline,
                     "run %lld committed %lld records before the held parcel %s, want %lld",
                     (long long)run_id, (long long)got, h->parid, (long long)committed);
        fault_pause_ms(20);
    }
}

/* Lets go of the fault_hold and removes it (after the daemon is dead). */
void fault_hold_release(fault_hold *h)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d)", FAULT_HOLD_LOCK);
    hold_exec(h->conn, sql);
    /* Waits for the dead daemon's CAMA session to let go of pardat. */
    hold_exec(h->conn, "DROP TRIGGER test_hold ON pardat; DROP FUNCTION test_hold()");
    PQfinish(h->conn);
    h->conn = NULL;
}

void fault_hold_drop(fault_hold *h)
{
    PQfinish(h->conn);
    h->conn = NULL;
}

/* ---- what every case ends with ---- */

/* CAMA equals the twins, the counts add up, and the run has one audit entry per applied
 * record: as many as it wrote, each for another key. */
void fault_assert_exact(fault_env *e, json_t *run, json_int_t run_id, json_int_t want_written)
{
    char *pacs = fault_conninfo(FAULT_SOURCE, e->pacs);
    fault_use(FAULT_TARGET);
    tfs_test_assert_matches_twin(pacs, e->cama, "pardat", TFS_TEST_PARDAT_COLS,
                                 "pacs_to_cama_pardat.sql");
    tfs_test_assert_matches_twin(pacs, e->cama, "asmt", TFS_TEST_ASMT_COLS,
                                 "pacs_to_cama_asmt.sql");
    free(pacs);

    json_int_t read = fault_count(run, "read"), written = fault_count(run, "written");
    json_int_t sum = written + fault_count(run, "unchanged") + fault_count(run, "deleted") +
                     fault_count(run, "transform_failed") + fault_count(run, "validate_failed") +
                     fault_count(run, "write_failed");
    cr_assert_eq(read, sum, "run %lld read %lld records, but its outcomes add up to %lld",
                 (long long)run_id, (long long)read, (long long)sum);
    if (want_written >= 0)
        cr_assert_eq(written, want_written, "run %lld wrote %lld records, want %lld",
                     (long long)run_id, (long long)written, (long long)want_written);

    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.audit WHERE run_id = %lld AND entity = 'property'",
             (long long)run_id);
    json_int_t entries = fault_int(FAULT_STATE, e->state, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT source_key) FROM tfsync.audit WHERE run_id = %lld AND"
             " entity = 'property'",
             (long long)run_id);
    json_int_t keys = fault_int(FAULT_STATE, e->state, sql);
    cr_assert_eq(entries, keys, "run %lld has %lld audit entries for %lld keys: some record "
                 "was audited twice", (long long)run_id, (long long)entries, (long long)keys);
    cr_assert_eq(entries, written, "run %lld has %lld audit entries for %lld records written",
                 (long long)run_id, (long long)entries, (long long)written);
}

json_int_t fault_active_props(fault_env *e)
{
    return fault_int(FAULT_SOURCE, e->pacs, "SELECT count(*) FROM " TFS_TEST_ACTIVE_PROPS " a");
}


/* Runs scripts/pg.sh <cmd> for r's server; fails the test unless it exits 0. */
static void pg_sh(fault_role r, const char *cmd)
{
    char dk[64], pk[64];
    snprintf(dk, sizeof dk, "TFS_FAULT_%s_DIR", role_env[r]);
    snprintf(pk, sizeof pk, "TFS_FAULT_%s_PORT", role_env[r]);
    const char *dir = getenv(dk), *port = getenv(pk);
    cr_assert(dir && port, "%s and %s are not set: run through tests/fault/run.sh", dk, pk);
    char sh[1024];
    snprintf(sh, sizeof sh,
             "TFS_PG_DIR='%s' TFS_PG_PORT='%s' bash '%s/scripts/pg.sh' %s >/dev/null 2>&1",
             dir, port, TFS_SOURCE_DIR, cmd);
    int st = system(sh);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "scripts/pg.sh %s of the %s server failed (status %d)", cmd, role_env[r], st);
}

void fault_server_stop(fault_role r)
{
    pg_sh(r, "stop");
}

void fault_server_crash(fault_role r)
{
    pg_sh(r, "crash");
}

void fault_server_start(fault_role r)
{
    pg_sh(r, "start");
}

void fault_resume_full_sync_exact(fault_env *e, json_int_t run_id)
{
    e->d = tfs_test_daemon_start(e->cfg);
    json_t *run = fault_wait_ok(e, run_id);
    json_int_t mapped = fault_int(FAULT_STATE, e->state, "SELECT count(*) FROM tfsync.sync_map"
                                                         " WHERE entity = 'property'");
    fault_assert_exact(e, run, run_id, mapped);
    json_decref(run);
    cr_assert_eq(fault_int(FAULT_STATE, e->state, "SELECT count(*) FROM tfsync.runs"), 1,
                 "the resumed run is the same run, not a new one");
}
