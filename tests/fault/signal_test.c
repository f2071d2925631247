/* tests/fault/signal_test.c — SIGTERM in the middle of a full sync of TFS_FAULT_PARCELS
 * parcels: the daemon answers 503 "shutting down" while it stops, exits 0 within its grace
 * (shutdown.grace, 5 s by default), and the run, left running in the state store, ends
 * exactly right after a restart.
 *
 * The run is stopped at a known record with the hold (fault_env.h), never after a sleep.
 * Held, the batch in flight cannot finish: the daemon abandons it when the grace is over.
 * Let go during the grace, the batch finishes and the daemon stops between batches.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_env.h"

/* What a SIGTERM looked like from outside. */
typedef struct term_seen {
    int status;        /* the exit status */
    long long exit_ms; /* from the signal to the exit */
    int saw_503;       /* an API call during the stop got 503 "shutting-down" */
    char *log;         /* the daemon's log (owned) */
} term_seen;

/* Sends SIGTERM and polls the API until the daemon is gone. With h, the hold is let go
 * once a 503 was seen (the batch in flight can then finish within the grace). */
static term_seen sigterm_and_watch(fault_env *e, fault_hold *h)
{
    term_seen t = {0};
    long long t0 = fault_now_ms();
    cr_assert_eq(kill(e->d->pid, SIGTERM), 0);
    while (tfs_test_daemon_alive(e->d)) {
        tfs_test_response r = tfs_test_http(e->d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
        const char *type = r.json ? json_string_value(json_object_get(r.json, "type")) : NULL;
        if (r.status == 503 && type && strstr(type, "shutting-down")) {
            t.saw_503 = 1;
            if (h && h->conn)
                fault_hold_release(h);
        }
        tfs_test_response_free(&r);
        cr_assert_lt(fault_now_ms() - t0, 15000, "tfsyncd still runs 15 s after SIGTERM");
        fault_pause_ms(20);
    }
    t.exit_ms = fault_now_ms() - t0;
    t.log = tfs_test_daemon_log(e->d);
    t.status = tfs_test_daemon_stop_status(e->d); /* reaps it */
    e->d = NULL;
    fprintf(stderr, "signal_test: tfsyncd exited %d %lld ms after SIGTERM\n", t.status,
            t.exit_ms);
    return t;
}

/* Holds the write of the record at `fraction` of the active properties, starts a full run,
 * waits until it waits there with the batches before committed, and SIGTERMs the daemon;
 * let_go: the hold is released during the grace. Then a restart must finish the run
 * exactly. grace: shutdown.grace in the config, or NULL for the default. */
static void sigterm_during_full_sync(double fraction, const char *grace, int let_go,
                                     long long max_exit_ms)
{
    fault_env e;
    fault_env_init(&e);
    if (grace)
        json_object_set_new(e.cfg, "shutdown", json_pack("{ss}", "grace", grace));
    json_int_t total = fault_active_props(&e);
    json_int_t at = (json_int_t)(fraction * (double)total);
    fault_hold h;
    char parid[64];
    fault_nth_parid(&e, at, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(&e, &h, parid);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    fault_hold_wait(&e, &h, run_id, at / FAULT_BATCH * FAULT_BATCH);

    term_seen t = sigterm_and_watch(&e, let_go ? &h : NULL);
    cr_expect_eq(t.status, 0, "tfsyncd exited with %d after SIGTERM; its log:\n%s", t.status,
                 t.log);
    cr_expect(t.saw_503, "no API call got 503 shutting-down while the daemon stopped");
    cr_expect_lt(t.exit_ms, max_exit_ms, "tfsyncd took %lld ms to exit after SIGTERM",
                 t.exit_ms);
    cr_expect(strstr(t.log, let_go ? "stopped" : "abandoned") != NULL,
              "the log does not say the daemon %s:\n%s", let_go ? "stopped" : "abandoned",
              t.log);
    free(t.log);
    if (h.conn)
        fault_hold_release(&h);
    cr_assert_eq(fault_int(FAULT_STATE, e.state,
                           "SELECT count(*) FROM tfsync.runs WHERE state = 'running'"),
                 1, "the interrupted run is not left running for the restart");

    fault_resume_full_sync_exact(&e, run_id);
    fault_env_down(&e);
}

/* Held at the record: the batch never finishes, so the daemon abandons it when its grace
 * of 2 s is over and still exits 0 well within 5 s. */
Test(fault, sigterm_at_the_hold_abandons_the_batch)
{
    sigterm_during_full_sync(0.5, "2s", 0, 5000);
}

/* Let go during the default grace of 5 s: the batch finishes, the daemon stops between
 * batches. */
Test(fault, sigterm_midway_finishes_the_batch)
{
    sigterm_during_full_sync(0.3, NULL, 1, 5000);
}
