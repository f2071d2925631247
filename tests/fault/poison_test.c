/* tests/fault/poison_test.c — a poison run: a plugin that crashes the daemon on one batch
 * (tests/fault/plugins/crashy.c) crashes it again at every restart, because the run resumes
 * at the same checkpoint. After resume.max_deaths (3) deaths there the run is failed with
 * that reason instead of resumed, the daemon stays up, and another pair's run works.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_env.h"

static void sh(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "could not run: %s", cmd);
}

/* A plugin folder with the shipped plugins and crashy.so, and a transform folder with the
 * shipped scripts and item.lua, both under dir; the config pointed at them with the pair
 * crash-pair (the crashing source, 50 items in batches of 10, crashing on the batch that
 * holds item 26) and a fixed node id, so a restarted daemon knows its dead leases. */
static void poison_config(fault_env *e, char dir[64])
{
    snprintf(dir, 64, "/tmp/tfs-poison-XXXXXX");
    cr_assert(mkdtemp(dir), "could not make a folder");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir %s/plugins %s/transforms && cp %s/*.so %s %s/plugins/ &&"
             " cp -r %s/* %s/transforms/ && printf 'function map(rec)\\n  return { item = rec"
             " }\\nend\\n' > %s/transforms/item.lua",
             dir, dir, json_string_value(json_object_get(e->cfg, "plugin_dir")),
             TFS_FAULT_CRASHY_SO, dir, json_string_value(json_object_get(e->cfg, "transform_dir")),
             dir, dir);
    sh(cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/plugins", dir);
    json_object_set_new(e->cfg, "plugin_dir", json_string(path));
    snprintf(path, sizeof path, "%s/transforms", dir);
    json_object_set_new(e->cfg, "transform_dir", json_string(path));
    json_object_set_new(e->cfg, "node_id", json_string("poison-node"));
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_set_new(systems, "crash_src",
                        json_pack("{s:s, s:{s:i, s:i}}", "plugin", "crashy", "settings", "rows",
                                  50, "crash_after", 25));
    json_object_set_new(systems, "crash_tgt",
                        json_pack("{s:s, s:{s:i}}", "plugin", "crashy", "settings", "rows", 0));
    json_array_append_new(json_object_get(e->cfg, "pairs"),
                          json_pack("{s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}]}", "name",
                                    "crash-pair", "source", "crash_src", "target", "crash_tgt",
                                    "batch_size", 10, "entities", "source", "item", "targets",
                                    "item", "script", "item.lua"));
}

/* Waits (up to 60 s) for the daemon to die by itself; reaps it. */
static void wait_crash(fault_env *e, int n)
{
    long long until = fault_now_ms() + 60000;
    while (tfs_test_daemon_alive(e->d)) {
        cr_assert_lt(fault_now_ms(), until, "the daemon did not crash (start %d)", n);
        fault_pause_ms(20);
    }
    int status = tfs_test_daemon_stop_status(e->d);
    cr_assert_eq(status, 128 + SIGABRT, "start %d ended with %d, not the plugin's abort()", n,
                 status);
    e->d = NULL;
}

Test(fault, poison_run_failed_after_three_deaths)
{
    fault_env e;
    fault_env_init(&e);
    char dir[64];
    poison_config(&e, dir);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = tfs_test_start_full(e.d, "crash-pair");
    long long t0 = fault_now_ms();
    wait_crash(&e, 1);
    /* Each start resumes the run at the checkpoint before the crashing batch, and dies. */
    for (int n = 2; n <= 3; n++) {
        e.d = tfs_test_daemon_start(e.cfg);
        wait_crash(&e, n);
    }
    /* The 4th start fails the run instead of resuming it, and stays up. */
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = tfs_test_wait_run(e.d, run_id, 60);
    long long healed = fault_now_ms() - t0;
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "failed");
    const char *why = json_string_value(json_object_get(run, "error"));
    cr_assert(why && strstr(why, "died 3 times in this run at the same checkpoint"),
              "the run's error does not say why: %s", why ? why : "(none)");
    json_decref(run);
    cr_assert(tfs_test_daemon_alive(e.d), "the 4th start crashed");
    /* The crashing batch (items 21-30) was never committed; the ones before may be (the
     * reader runs ahead of the committer, so how many depends on the moment of the crash). */
    cr_assert_leq(fault_int(FAULT_STATE, e.state,
                            "SELECT count(*) FROM tfsync.sync_map WHERE pair = 'crash-pair'"),
                  20, "a batch at or after the crashing one was committed");
    /* Another pair's run works on the same daemon. */
    json_int_t other = fault_start_run(&e, "full");
    json_t *ok = fault_wait_ok(&e, other);
    json_decref(ok);
    cr_assert(tfs_test_daemon_alive(e.d), "the daemon died after the poison run");
    fprintf(stderr, "poison_run_failed_after_three_deaths: 3 crashes and the run failed "
            "%lld ms after it started\n", healed);
    fault_env_down(&e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    sh(cmd);
}
