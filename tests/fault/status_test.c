/* tests/fault/status_test.c — the status answers kept in memory (core/status_cache.c)
 * under the faults they are built for: while a run is held mid-way, the counts of each
 * batch it committed are in the next GET although the periodic refresh is an hour away;
 * a run another node executes on the same state store shows on this node within its
 * api.status_refresh; and with the state store stopped, /sync/status and
 * /sync/status/{run_id} still answer at once with the last known state and its as_of, which
 * moves again once the store is back. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fault_env.h"

static json_t *get_json(tfs_test_daemon *d, const char *path, long want)
{
    tfs_test_response r = tfs_test_http(d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, want, "GET %s: %ld %s", path, r.status, r.body ? r.body : r.error);
    json_t *j = json_incref(r.json);
    tfs_test_response_free(&r);
    return j;
}

static json_t *last_run(json_t *status)
{
    return json_object_get(json_object_get(json_object_get(status, "pairs"), FAULT_PAIR),
                           "last_run");
}

static json_int_t db_read(fault_env *e, json_int_t run_id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((counts -> 'property' ->> 'read')::int8, 0) FROM tfsync.runs"
             " WHERE run_id = %lld",
             (long long)run_id);
    return fault_int(FAULT_STATE, e->state, sql);
}

Test(fault, status_shows_each_committed_batch_at_the_next_get)
{
    fault_env e;
    fault_env_init(&e);
    json_object_set_new(e.cfg, "api", json_pack("{ss}", "status_refresh", "1h"));
    json_int_t total = fault_active_props(&e);
    fault_hold h;
    char parid[64];
    json_int_t at = total / 2;
    fault_nth_parid(&e, at, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(&e, &h, parid);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    fault_hold_wait(&e, &h, run_id, at / FAULT_BATCH * FAULT_BATCH);
    /* Held: what the store has committed stands still, and the answer has it (read back
     * on the committing thread, within the moment the commit took). */
    json_int_t committed = db_read(&e, run_id);
    cr_assert_gt(committed, 0);
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    long long until = fault_now_ms() + 2000;
    json_int_t shown = -1;
    while (fault_now_ms() < until) {
        json_t *run = get_json(e.d, path, 200);
        shown = fault_count(run, "read");
        cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "running");
        json_decref(run);
        if (shown == committed)
            break;
        fault_pause_ms(20);
    }
    cr_assert_eq(shown, committed,
                 "the held run committed %lld records read; GET %s shows %lld (the refresh is "
                 "an hour away)",
                 (long long)committed, path, (long long)shown);
    json_t *status = get_json(e.d, "/sync/status", 200);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(last_run(status), "counts"), "property"),
                     "read")),
                 committed, "GET /sync/status shows other counts than the store");
    json_decref(status);
    fault_hold_release(&h);
    json_t *run = fault_wait_ok(&e, run_id);
    json_decref(run);
    fault_env_down(&e);
}

Test(fault, status_shows_another_nodes_run_within_the_refresh)
{
    fault_env e;
    fault_env_init(&e);
    json_object_set_new(e.cfg, "api", json_pack("{ss}", "status_refresh", "200ms"));
    json_t *b_cfg = json_deep_copy(e.cfg);
    json_object_set_new(e.cfg, "node_id", json_string("node-a"));
    json_object_set_new(b_cfg, "node_id", json_string("node-b"));
    e.d = tfs_test_daemon_start(e.cfg);
    tfs_test_daemon *b = tfs_test_daemon_start(b_cfg);
    json_decref(b_cfg);
    json_t *before = get_json(e.d, "/sync/status", 200);
    cr_assert(json_is_null(last_run(before)), "no run yet");
    json_decref(before);

    /* Started and executed by node b: node a hears of it only through the store. */
    tfs_test_response r = tfs_test_http(b, "POST", "/sync/full", TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" FAULT_PAIR "\"}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    json_int_t run_id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    json_t *done = tfs_test_wait_run(b, run_id, 600);
    cr_assert_str_eq(json_string_value(json_object_get(done, "state")), "succeeded");
    long long ended = fault_now_ms();
    /* Within the refresh (200 ms) and a generous margin for a loaded machine. */
    json_t *seen = NULL;
    while (fault_now_ms() - ended < 5000) {
        json_t *s = get_json(e.d, "/sync/status", 200);
        json_t *lr = last_run(s);
        if (json_integer_value(json_object_get(lr, "run_id")) == run_id &&
            strcmp(json_string_value(json_object_get(lr, "state")), "succeeded") == 0) {
            seen = json_incref(lr);
            json_decref(s);
            break;
        }
        json_decref(s);
        fault_pause_ms(20);
    }
    cr_assert_not_null(seen, "node a does not show node b's run %lld as succeeded 5 s after it "
                             "ended (api.status_refresh 200ms)",
                       (long long)run_id);
    cr_assert_eq(fault_count(seen, "written"), fault_count(done, "written"),
                 "node a shows other counts than node b");
    cr_assert_str_eq(json_string_value(json_object_get(seen, "node")), "node-b");
    fprintf(stderr, "status: node a showed node b's run %lld %lld ms after it ended\n",
            (long long)run_id, fault_now_ms() - ended);
    json_decref(seen);
    json_decref(done);
    char *log = tfs_test_daemon_log(b);
    int st = tfs_test_daemon_stop_status(b);
    cr_expect_eq(st, 0, "node b exited with %d; its log:\n%s", st, log);
    free(log);
    fault_env_down(&e);
}

Test(fault, status_answers_from_memory_while_the_state_store_is_down)
{
    fault_env e;
    fault_env_init(&e);
    json_object_set_new(e.cfg, "api", json_pack("{ss}", "status_refresh", "200ms"));
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    json_t *done = fault_wait_ok(&e, run_id);
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);

    fault_server_stop(FAULT_STATE);
    /* Nothing the store said after the stop: the as_of of the first answer is the last. */
    json_t *first = get_json(e.d, "/sync/status", 200);
    const char *as_of = json_string_value(json_object_get(first, "as_of"));
    cr_assert_not_null(as_of, "no as_of while the store is down");
    /* Over a second of the store being down (five refreshes): each answer at once, the
     * last known state, and the same as_of. */
    long long until = fault_now_ms() + 1500;
    int n = 0;
    while (fault_now_ms() < until) {
        long long t = fault_now_ms();
        json_t *s = get_json(e.d, "/sync/status", 200);
        cr_assert_lt(fault_now_ms() - t, 1000, "GET /sync/status took %lld ms with the store "
                                               "down",
                     fault_now_ms() - t);
        json_t *lr = last_run(s);
        cr_assert_eq(json_integer_value(json_object_get(lr, "run_id")), run_id);
        cr_assert_str_eq(json_string_value(json_object_get(lr, "state")), "succeeded");
        cr_assert_eq(fault_count(lr, "written"), fault_count(done, "written"));
        cr_assert_str_eq(json_string_value(json_object_get(s, "as_of")), as_of,
                         "as_of moved while the store was down");
        json_decref(s);
        json_t *run = get_json(e.d, path, 200);
        cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "succeeded");
        cr_assert_str_eq(json_string_value(json_object_get(run, "as_of")), as_of);
        json_decref(run);
        n++;
        fault_pause_ms(50);
    }
    cr_assert_gt(n, 3);
    fault_server_start(FAULT_STATE);
    /* Back: the refresh answers again and as_of moves on. */
    long long back = fault_now_ms();
    for (;;) {
        json_t *s = get_json(e.d, "/sync/status", 200);
        int moved = strcmp(json_string_value(json_object_get(s, "as_of")), as_of) != 0;
        json_decref(s);
        if (moved)
            break;
        cr_assert_lt(fault_now_ms() - back, 20000, "as_of still %s 20 s after the store is back",
                     as_of);
        fault_pause_ms(50);
    }
    json_decref(first);
    json_decref(done);
    fault_env_down(&e);
}
