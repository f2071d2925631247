/* tests/fault/lease_test.c — several daemons on one state store: runs are taken under
 * leases with fencing epochs. Two scheduling daemons never run a pair twice at once; a
 * daemon killed mid-run leaves a lease that expires, after which the other takes the run
 * over and ends it exact; a daemon whose lease was taken cannot commit.
 *
 * Leases here last 3 s (renewed every 1 s) and idle daemons look for runs every 200 ms, so
 * a takeover after a kill takes about 3 s. Each case prints how long its healing took.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_env.h"

#define LEASE_TTL_S 3

static void short_leases(fault_env *e)
{
    json_object_set_new(e->cfg, "lease",
                        json_pack("{s:s, s:s, s:s}", "ttl", "3s", "heartbeat", "1s", "poll",
                                  "200ms"));
}

/* The node recorded with the run's live lease, or NULL (owned). */
static char *lease_node(fault_env *e, json_int_t run_id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((SELECT node FROM tfsync.leases WHERE unit = 'run:%lld'"
             " AND NOT released), '')", (long long)run_id);
    char *node = fault_text(FAULT_STATE, e->state, sql);
    if (node && !node[0]) {
        free(node);
        node = NULL;
    }
    return node;
}

/* Waits (up to 60 s) until a node other than the ones named holds the run's lease; that
 * node's id (owned). */
static char *wait_taken_by_other(fault_env *e, json_int_t run_id, const char *not1,
                                 const char *not2)
{
    long long until = fault_now_ms() + 60000;
    for (;;) {
        char *node = lease_node(e, run_id);
        if (node && strcmp(node, not1) != 0 && (!not2 || strcmp(node, not2) != 0))
            return node;
        free(node);
        cr_assert_lt(fault_now_ms(), until, "no other node took run %lld over",
                     (long long)run_id);
        fault_pause_ms(20);
    }
}

static void stop_ok(tfs_test_daemon *d, const char *who)
{
    char *log = tfs_test_daemon_log(d);
    int status = tfs_test_daemon_stop_status(d);
    cr_expect_eq(status, 0, "%s exited with %d; its log:\n%s", who, status, log);
    free(log);
}

Test(fault, lease_two_schedulers_never_overlap)
{
    fault_env e;
    fault_env_init(&e);
    short_leases(&e);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t full = fault_start_run(&e, "full");
    json_decref(fault_wait_ok(&e, full));
    tfs_test_daemon_stop(e.d);
    json_object_set_new(json_array_get(json_object_get(e.cfg, "pairs"), 0), "schedule",
                        json_pack("{s:s}", "incremental_every", "1s"));
    e.d = tfs_test_daemon_start(e.cfg);
    tfs_test_daemon *b = tfs_test_daemon_start(e.cfg);
    /* Both schedule the pair every second: wait for a dozen incremental runs, taken by
     * both nodes, while a few parcels change between them. */
    long long until = fault_now_ms() + 120000;
    for (int i = 0;; i++) {
        if (i % 10 == 0)
            fault_exec(FAULT_SOURCE, e.pacs,
                       "UPDATE property_val SET legal_desc = coalesce(legal_desc, '') || '.'"
                       " WHERE prop_id IN (SELECT prop_id FROM property"
                       " ORDER BY prop_id LIMIT 5)");
        json_int_t done = fault_int(FAULT_STATE, e.state,
                                    "SELECT count(*) FROM tfsync.runs WHERE mode = 'incremental'"
                                    " AND state = 'succeeded'");
        json_int_t nodes = fault_int(FAULT_STATE, e.state,
                                     "SELECT count(DISTINCT node) FROM tfsync.runs"
                                     " WHERE mode = 'incremental' AND state = 'succeeded'");
        if (done >= 12 && nodes == 2)
            break;
        cr_assert_lt(fault_now_ms(), until, "%lld incremental runs on %lld nodes in 120 s",
                     (long long)done, (long long)nodes);
        fault_pause_ms(100);
    }
    stop_ok(b, "the second daemon");
    tfs_test_daemon_stop(e.d);
    e.d = NULL;
    /* No two runs of the pair overlap in time, and none failed. */
    cr_assert_eq(fault_int(FAULT_STATE, e.state,
                           "SELECT count(*) FROM tfsync.runs a JOIN tfsync.runs b"
                           " ON a.pair = b.pair AND a.run_id < b.run_id"
                           " WHERE a.started_at IS NOT NULL AND b.started_at IS NOT NULL"
                           " AND tstzrange(a.started_at, coalesce(a.finished_at, 'infinity'))"
                           " && tstzrange(b.started_at, coalesce(b.finished_at, 'infinity'))"),
                 0, "two runs of the pair overlapped in time");
    cr_assert_eq(fault_int(FAULT_STATE, e.state,
                           "SELECT count(*) FROM tfsync.runs WHERE state = 'failed'"),
                 0, "a run failed");
    /* Each run was taken once: one lease epoch per run. */
    cr_assert_eq(fault_int(FAULT_STATE, e.state,
                           "SELECT count(*) FROM tfsync.leases WHERE epoch <> 1"),
                 0, "a run was taken more than once");
    fault_env_down(&e);
}

/* Holds the write of the middle property and starts a full run on e->d; the run. */
static json_int_t run_to_hold(fault_env *e, fault_hold *h, json_int_t *at)
{
    json_int_t total = fault_active_props(e);
    *at = total / 2;
    char parid[64];
    fault_nth_parid(e, *at, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(e, h, parid);
    json_int_t run_id = fault_start_run(e, "full");
    fault_hold_wait(e, h, run_id, *at / FAULT_BATCH * FAULT_BATCH);
    return run_id;
}

Test(fault, lease_takeover_after_kill9)
{
    fault_env e;
    fault_env_init(&e);
    short_leases(&e);
    /* A node of another host, as far as B can tell: B cannot see it die, only its lease
     * expire. (A dead process of B's own host is seen at once, by its pid.) */
    json_t *a_cfg = json_deep_copy(e.cfg);
    json_object_set_new(a_cfg, "node_id", json_string("node-a"));
    e.d = tfs_test_daemon_start(a_cfg);
    json_decref(a_cfg);
    fault_hold h;
    json_int_t at;
    json_int_t run_id = run_to_hold(&e, &h, &at);
    char *a_node = lease_node(&e, run_id);
    cr_assert(a_node, "the run has no live lease while it runs");
    /* The second node starts while the first holds the run: it must leave it alone. */
    tfs_test_daemon *b = tfs_test_daemon_start(e.cfg);
    fault_pause_ms(LEASE_TTL_S * 1000 / 2);
    char *still = lease_node(&e, run_id);
    cr_assert_str_eq(still, a_node, "the second node took a live lease");
    free(still);
    tfs_test_daemon_kill9(e.d);
    long long killed = fault_now_ms();
    e.d = b;
    fault_hold_release(&h);
    char *b_node = wait_taken_by_other(&e, run_id, a_node, NULL);
    long long took = fault_now_ms() - killed;
    json_t *run = fault_wait_ok(&e, run_id);
    long long healed = fault_now_ms() - killed;
    fprintf(stderr, "lease_takeover_after_kill9: node %s took run %lld over %lld ms after "
            "the kill (lease ttl %d s); the run ended %lld ms after the kill\n",
            b_node, (long long)run_id, took, LEASE_TTL_S, healed);
    cr_assert_geq(took, 1000, "the run was taken over before its lease could expire");
    json_int_t mapped = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map"
                                                        " WHERE entity = 'property'");
    fault_assert_exact(&e, run, run_id, mapped);
    cr_assert_str_eq(json_string_value(json_object_get(run, "node")), b_node,
                     "the status does not name the node that finished the run");
    json_decref(run);
    free(a_node);
    free(b_node);
    fault_env_down(&e);
}

Test(fault, lease_taken_node_cannot_commit)
{
    fault_env e;
    fault_env_init(&e);
    short_leases(&e);
    tfs_test_daemon *a = tfs_test_daemon_start(e.cfg);
    e.d = a;
    fault_hold h;
    json_int_t at;
    json_int_t run_id = run_to_hold(&e, &h, &at);
    char *a_node = lease_node(&e, run_id);
    cr_assert(a_node, "the run has no live lease while it runs");
    char cursor_sql[256];
    snprintf(cursor_sql, sizeof cursor_sql,
             "SELECT coalesce(string_agg(encode(cursor, 'hex') || updated_at::text, ','), '')"
             " FROM tfsync.cursors WHERE run_id = %lld", (long long)run_id);
    /* What a node taking the lease does (the epoch bumped), by a node that then stopped
     * renewing it: the lease runs out 10 s later, and only then is the run taken again. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE tfsync.leases SET node = 'thief', epoch = epoch + 1,"
             " expires_at = now() + interval '10 seconds' WHERE unit = 'run:%lld'",
             (long long)run_id);
    fault_exec(FAULT_STATE, e.state, sql);
    long long stolen = fault_now_ms();
    char *cursor_before = fault_text(FAULT_STATE, e.state, cursor_sql);
    json_int_t audit_before = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.audit");
    /* A's held write goes on; A must then stop without committing anything. */
    fault_hold_release(&h);
    long long until = fault_now_ms() + 30000;
    for (;;) {
        char *log = tfs_test_daemon_log(a);
        int stopped = strstr(log, "lost its lease") != NULL;
        free(log);
        if (stopped)
            break;
        cr_assert_lt(fault_now_ms(), until, "node A did not stop after losing its lease");
        fault_pause_ms(20);
    }
    char *cursor_after = fault_text(FAULT_STATE, e.state, cursor_sql);
    cr_assert_str_eq(cursor_after, cursor_before, "node A moved the run's checkpoint after its "
                     "lease was taken");
    cr_assert_eq(fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.audit"),
                 audit_before, "node A committed audit entries after its lease was taken");
    free(cursor_before);
    free(cursor_after);
    tfs_test_daemon *b = tfs_test_daemon_start(e.cfg);
    char *b_node = wait_taken_by_other(&e, run_id, "thief", NULL);
    long long took = fault_now_ms() - stolen;
    e.d = b;
    json_t *run = fault_wait_ok(&e, run_id);
    fprintf(stderr, "lease_taken_node_cannot_commit: node %s took run %lld %lld ms after its "
            "lease was taken (the taken lease ran 10 s); the run ended %lld ms after\n",
            b_node, (long long)run_id, took, fault_now_ms() - stolen);
    cr_assert(tfs_test_daemon_alive(a), "node A died after losing its lease");
    stop_ok(a, "node A");
    json_int_t mapped = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map"
                                                        " WHERE entity = 'property'");
    fault_assert_exact(&e, run, run_id, mapped);
    json_decref(run);
    free(a_node);
    free(b_node);
    fault_env_down(&e);
}
