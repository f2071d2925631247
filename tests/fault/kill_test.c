/* tests/fault/kill_test.c — the daemon killed (SIGKILL) at chosen points of a full sync of
 * TFS_FAULT_PARCELS parcels (100,000 by default) and of an incremental run, then started
 * again: the same run ends by itself, exactly right.
 *
 * A kill lands at a known record, never after a sleep: the hold (fault_env.h) makes the
 * write of one parcel wait, and the test kills the daemon once the run waits there with
 * the batches before it committed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_env.h"

TestSuite(fault, .timeout = 900);

/* Holds the write of the n-th record of `from` (key order), starts the daemon (which
 * resumes run_id) or, with run_id 0, a full run, waits until the run waits at the held
 * record with the batches before it committed, and kills the daemon. Returns the run. The
 * held record is at least the n-th the run reads (it reads more than `from`), so at least
 * n / FAULT_BATCH whole batches come before it. */
static json_int_t kill9_at(fault_env *e, json_int_t run_id, json_int_t n, const char *from)
{
    fault_hold h;
    char parid[64];
    fault_nth_parid(e, n, from, parid);
    fault_hold_set(e, &h, parid);
    if (!e->d)
        e->d = tfs_test_daemon_start(e->cfg);
    if (run_id == 0)
        run_id = fault_start_run(e, "full");
    fault_hold_wait(e, &h, run_id, n / FAULT_BATCH * FAULT_BATCH);
    tfs_test_daemon_kill9(e->d);
    e->d = NULL;
    fault_hold_release(&h);
    return run_id;
}

/* ---- kill -9 during a full sync into an empty CAMA ---- */

/* Kills the daemon at each of the fractions of the active properties (in key order) in
 * turn, starting it again after each, and checks that the one run then ends exact. */
static void full_sync_killed_at(const double *fractions, int n)
{
    fault_env e;
    fault_env_init(&e);
    json_int_t total = fault_active_props(&e);
    cr_assert_gt(total, 2 * FAULT_BATCH, "the PACS template has only %lld active properties",
                 (long long)total);
    json_int_t run_id = 0;
    for (int i = 0; i < n; i++) {
        json_int_t at = (json_int_t)(fractions[i] * (double)total);
        run_id = kill9_at(&e, run_id, at, TFS_TEST_ACTIVE_PROPS);
        cr_assert_eq(fault_int(FAULT_STATE, e.state,
                            "SELECT count(*) FROM tfsync.runs WHERE state = 'running'"),
                     1, "the killed run is no longer running in the state store");
    }
    fault_resume_full_sync_exact(&e, run_id);
    fault_env_down(&e);
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
    fault_env e;
    fault_env_init(&e);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t full = fault_start_run(&e, "full");
    json_decref(fault_wait_ok(&e, full));

    /* The first CHANGED active properties by prop_id get a new land value, in transactions
     * of 1,000, so every one changes its asmt row. */
    fault_exec(FAULT_SOURCE, e.pacs, "CREATE TABLE test_changed AS SELECT prop_id, parid,"
                            " (row_number() OVER (ORDER BY prop_id) - 1)::int AS n FROM "
                            TFS_TEST_ACTIVE_PROPS " a ORDER BY prop_id LIMIT 20000");
    for (int g = 0; g < CHANGED / 1000; g++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "UPDATE property_val v SET land_non_hstd_val = land_non_hstd_val + 1"
                 " FROM test_changed c WHERE c.n >= %d AND c.n < %d AND v.prop_id = c.prop_id"
                 " AND v.prop_val_yr = 2026",
                 g * 1000, (g + 1) * 1000);
        fault_exec(FAULT_SOURCE, e.pacs, sql);
    }
    fault_hold h;
    char parid[64];
    fault_nth_parid(&e, CHANGED * 6 / 10, "test_changed", parid);
    fault_hold_set(&e, &h, parid);
    json_int_t run_id = fault_start_run(&e, "incremental");
    fault_hold_wait(&e, &h, run_id, CHANGED * 6 / 10 / FAULT_BATCH * FAULT_BATCH);
    tfs_test_daemon_kill9(e.d);
    e.d = NULL;
    fault_hold_release(&h);

    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = fault_wait_ok(&e, run_id);
    cr_assert_str_eq(json_string_value(json_object_get(run, "mode")), "incremental");
    fault_assert_exact(&e, run, run_id, CHANGED);
    json_decref(run);
    /* The audited keys are the changed ones. */
    char *keys = fault_text(FAULT_SOURCE, e.pacs, "SELECT md5(string_agg(prop_id || '|2026', ','"
                                         " ORDER BY prop_id || '|2026')) FROM test_changed");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT md5(string_agg(source_key, ',' ORDER BY source_key)) FROM tfsync.audit"
             " WHERE run_id = %lld",
             (long long)run_id);
    char *audited = fault_text(FAULT_STATE, e.state, sql);
    cr_assert_str_eq(audited, keys, "the audited keys of run %lld are not the changed ones",
                     (long long)run_id);
    /* The killed transaction took its entries and the chain's head with it: the chain the
     * resumed run went on with verifies. */
    tfs_test_assert_audit_verifies(e.d, CHANGED);
    free(keys);
    free(audited);
    fault_env_down(&e);
}
