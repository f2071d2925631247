/* tests/sdk/compat_test.c — plugins built against the published SDK 1.0 to 1.4
 * headers (tests/sdk/v1_*) keep loading and syncing beside a 1.5 build of the same source
 * (tests/sdk/plugins/compat.c).
 *
 * In process: each loads with its own SDK version and capabilities, and the 1.3 calls the
 * host makes on every instance (cb_check, cb_write_limits, cb_estimate, cb_run_end, and for
 * 1.0 the change capture) read as absent past an old descriptor: the old builds are
 * followed in memory by callbacks that abort, so reading past struct_size would crash.
 * End to end: the real daemon with a real state store lists them in GET /plugins and syncs
 * a pair through each, a full run and then, with change data (1.1 and later), an
 * incremental one whose update, insertion and deletion reach the target file; the 1.0
 * pair, which has no change data, gets the same changes by a second full run. Only the 1.5
 * build, which declares TFS_SDK_CAP_INSERT, is handed inserts (its new keys, and only
 * those); the old builds refuse an operation kind they do not know, so an insert handed to
 * one would fail its record.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "plugin_host.h"
#include "record.h"
#include "tfs_test.h"

#define N_MINORS 6

static const char *so_path(unsigned minor, char *out, size_t cap)
{
    snprintf(out, cap, TFS_COMPAT_PLUGIN_DIR "/compat_v1_%u.so", minor);
    return out;
}

static void write_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

Test(compat, each_minor_loads_with_its_version_and_reads_nothing_past_its_descriptor)
{
    char dir[] = "/tmp/tfs-compat-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file[96];
    snprintf(file, sizeof file, "%s/src.tsv", dir);
    write_file(file, "1\t1\tone\t1.10\t0\n2\t2\t\\N\t\\N\t0\n", "w");
    for (unsigned minor = 0; minor < N_MINORS; minor++) {
        char path[256];
        tfs_error err = {0};
        tfs_plugin *p = NULL;
        cr_assert_eq(tfs_plugin_load(so_path(minor, path, sizeof path), 2026, &p, &err), 0,
                     "%s", err.message);
        tfs_plugin_info info = tfs_plugin_get_info(p);
        cr_expect_eq(info.sdk_major, 1);
        cr_expect_eq(info.sdk_minor, minor, "%s declares SDK 1.%u", path, info.sdk_minor);
        cr_expect_eq((info.capabilities & TFS_SDK_CAP_CHANGES) != 0, minor >= 1);
        cr_expect_eq(tfs_plugin_is_lazy(p), minor >= 3);
        json_t *settings = json_pack("{ss}", "file", file);
        cr_assert_eq(tfs_plugin_check(p, "src", settings, dir, &err), 0, "%s", err.message);
        tfs_instance *inst = NULL;
        cr_assert_eq(tfs_instance_open(p, "src", settings, dir, &inst, &err), 0, "%s",
                     err.message);
        size_t ops = 1, bytes = 1;
        tfs_instance_write_limits(inst, &ops, &bytes);
        cr_expect(ops == 0 && bytes == 0, "no write limits: %zu %zu", ops, bytes);
        int64_t count;
        cr_expect_eq(tfs_instance_estimate(inst, 0, &count, &err), TFS_ENOTFOUND);
        tfs_sdk_run_end end = {.struct_size = sizeof end, .run_id = 1, .pair = "x",
                               .mode = "full"};
        cr_expect_eq(tfs_instance_run_end(inst, &end, &err), 0);
        tfs_arena *a = tfs_arena_new();
        tfs_batch b;
        tfs_batch_init(&b, a, tfs_instance_entity_get(inst, 0));
        cr_expect_eq(tfs_instance_changes_start(inst, 0, &b, &err), 0, "%s", err.message);
        cr_expect_eq(b.cursor_set, minor >= 1, "1.%u change cursor", minor);
        tfs_batch_init(&b, a, tfs_instance_entity_get(inst, 0));
        cr_assert_eq(tfs_instance_read(inst, 0, TFS_SDK_READ_FULL, NULL, 0, 10, &b, &err), 0,
                     "%s", err.message);
        cr_expect_eq(b.n, 2);
        cr_expect(b.done);
        tfs_arena_free(a);
        tfs_instance_close(inst);
        json_decref(settings);
        tfs_plugin_free(p, true);
    }
    unlink(file);
    rmdir(dir);
}

/* The ids a 1.5 build was handed as inserts ("<file>.inserted"), or NULL (no such file). */
static char *inserted_ids(const char *file)
{
    char p[256];
    snprintf(p, sizeof p, "%s.inserted", file);
    if (access(p, F_OK) != 0)
        return NULL;
    return tfs_test_read_file(p);
}

/* An insert (SDK 1.5) reaches only a plugin that declares it takes them; any other gets an
 * upsert, which it applies (an old build refuses a kind it does not know). */
Test(compat, an_insert_reaches_only_a_plugin_that_takes_inserts)
{
    char dir[] = "/tmp/tfs-compat-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    for (unsigned minor = 0; minor < N_MINORS; minor++) {
        char path[256], file[96];
        snprintf(file, sizeof file, "%s/dst_%u.tsv", dir, minor);
        tfs_error err = {0};
        tfs_plugin *p = NULL;
        cr_assert_eq(tfs_plugin_load(so_path(minor, path, sizeof path), 2026, &p, &err), 0,
                     "%s", err.message);
        json_t *settings = json_pack("{ss}", "file", file);
        tfs_instance *inst = NULL;
        cr_assert_eq(tfs_instance_open(p, "dst", settings, dir, &inst, &err), 0, "%s",
                     err.message);
        cr_expect_eq(tfs_instance_takes_inserts(inst), minor >= 5, "SDK 1.%u", minor);
        tfs_arena *a = tfs_arena_new();
        tfs_record *rec = tfs_record_new(a, tfs_instance_entity_get(inst, 0));
        cr_assert_not_null(rec);
        rec->values[0].type = TFS_SDK_INT64;
        rec->values[0].u.i = 7;
        cr_assert_eq(tfs_record_set_text(rec, 1, TFS_SDK_TEXT, "seven", 5), 0);
        tfs_sdk_write_op op = {0, TFS_SDK_OP_INSERT, rec};
        tfs_results res;
        cr_assert_eq(tfs_results_init(&res, 1), 0);
        cr_assert_eq(tfs_instance_write(inst, &op, 1, &res, &err), 0, "%s", err.message);
        cr_expect_eq(res.status[0], TFS_SDK_OK, "SDK 1.%u: %s", minor,
                     res.message[0] ? res.message[0] : "");
        tfs_results_free(&res);
        char *t = tfs_test_read_file(file);
        cr_expect_str_eq(t, "1\t7\tseven\t\\N\t0\n", "the target of SDK 1.%u", minor);
        free(t);
        char *ids = inserted_ids(file);
        if (minor >= 5)
            cr_expect(ids && strcmp(ids, "7\n") == 0, "1.%u was handed an insert: %s", minor,
                      ids ? ids : "(none)");
        else
            cr_expect_null(ids, "1.%u was handed an insert", minor);
        free(ids);
        tfs_arena_free(a);
        tfs_instance_close(inst);
        json_decref(settings);
        tfs_plugin_free(p, true);
    }
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* ---- end to end ---- */

typedef struct env {
    char dir[64];
    char *state;
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static void path_in(const env *e, const char *name, unsigned minor, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s_v1_%u.tsv", e->dir, name, minor);
}

static char *target_text(const env *e, unsigned minor)
{
    char p[128];
    path_in(e, "dst", minor, p, sizeof p);
    return tfs_test_read_file(p);
}

static json_t *run(env *e, const char *mode, unsigned minor)
{
    char path[64], body[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    snprintf(body, sizeof body, "{\"pair\": \"v1-%u\"}", minor);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert_eq(r.status, 202, "POST %s %s: %ld %s", path, body, r.status, r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    json_t *st = tfs_test_wait_run(e->d, id, 60);
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "succeeded",
                     "the %s run of v1-%u: %s", mode, minor, json_dumps(st, 0));
    return st;
}

static void env_start(env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/tfs-compat-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    char script[128];
    snprintf(script, sizeof script, "%s/compat.lua", e->dir);
    write_file(script,
               "function map(rec)\n"
               "  return { item = { id = rec.id, name = rec.name, amount = rec.amount } }\n"
               "end\n",
               "w");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
    char *state = tfs_test_pg_conninfo(e->state);
    json_t *systems = json_object(), *pairs = json_array();
    for (unsigned m = 0; m < N_MINORS; m++) {
        char name[32], plugin[32], src[128], dst[128];
        snprintf(plugin, sizeof plugin, "compat_v1_%u", m);
        path_in(e, "src", m, src, sizeof src);
        path_in(e, "dst", m, dst, sizeof dst);
        write_file(src, "1\t1\tone\t1.10\t0\n2\t2\ttwo\t\\N\t0\n3\t3\tthree\t3.30\t0\n", "w");
        snprintf(name, sizeof name, "src_v1_%u", m);
        json_object_set_new(systems, name,
                            json_pack("{s:s, s:{s:s}}", "plugin", plugin, "settings", "file",
                                      src));
        snprintf(name, sizeof name, "dst_v1_%u", m);
        json_object_set_new(systems, name,
                            json_pack("{s:s, s:{s:s}}", "plugin", plugin, "settings", "file",
                                      dst));
        char pair[16], s[32], t[32];
        snprintf(pair, sizeof pair, "v1-%u", m);
        snprintf(s, sizeof s, "src_v1_%u", m);
        snprintf(t, sizeof t, "dst_v1_%u", m);
        /* max_delete_ratio 1: one deletion of four keys is not held for a confirmation. */
        json_array_append_new(pairs, json_pack("{s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}]}",
                                               "name", pair, "source", s, "target", t,
                                               "max_delete_ratio", 1, "entities", "source",
                                               "item", "targets", "item", "script",
                                               "compat.lua"));
    }
    json_t *tmpl = tfs_test_config_new("unused", "unused", e->state);
    e->cfg = json_pack("{s:O, s:{s:s}, s:s, s:s, s:i, s:i, s:O, s:o, s:o}", "listen",
                       json_object_get(tmpl, "listen"), "state", "conninfo", state,
                       "plugin_dir", TFS_COMPAT_PLUGIN_DIR, "transform_dir", e->dir,
                       "roll_year", 2026, "workers", 1, "api_keys",
                       json_object_get(tmpl, "api_keys"), "systems", systems, "pairs", pairs);
    cr_assert_not_null(e->cfg);
    json_decref(tmpl);
    free(state);
    e->d = tfs_test_daemon_start(e->cfg);
}

static void env_stop(env *e)
{
    cr_expect_eq(tfs_test_daemon_stop_status(e->d), 0);
    json_decref(e->cfg);
    tfs_test_db_drop(e->state);
    free(e->state);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    cr_expect_eq(system(cmd), 0);
}

Test(compat, old_plugins_sync_full_and_incremental_through_the_daemon, .timeout = 180)
{
    env e;
    env_start(&e);

    tfs_test_response r = tfs_test_http(e.d, "GET", "/plugins", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200);
    json_t *loaded = json_object_get(r.json, "plugins");
    cr_expect_eq(json_array_size(json_object_get(r.json, "refused")), 0, "%s", r.body);
    for (unsigned m = 0; m < N_MINORS; m++) {
        char name[32], sdk[8];
        snprintf(name, sizeof name, "compat_v1_%u", m);
        snprintf(sdk, sizeof sdk, "1.%u", m);
        const json_t *found = NULL;
        size_t i;
        json_t *p;
        json_array_foreach(loaded, i, p) {
            if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
                found = p;
        }
        cr_assert_not_null(found, "%s is not in GET /plugins: %s", name, r.body);
        cr_expect_str_eq(json_string_value(json_object_get(found, "sdk")), sdk);
    }
    tfs_test_response_free(&r);

    static const char *full = "1\t1\tone\t1.10\t0\n2\t2\ttwo\t\\N\t0\n3\t3\tthree\t3.30\t0\n";
    static const char *after = "1\t1\tone\t1.10\t0\n2\t2\tdeux\t2.00\t0\n3\t4\tfour\t\\N\t0\n";
    for (unsigned m = 0; m < N_MINORS; m++) {
        char dst[128];
        path_in(&e, "dst", m, dst, sizeof dst);
        json_decref(run(&e, "full", m));
        char *t = target_text(&e, m);
        cr_expect_str_eq(t, full, "the target of SDK 1.%u after a full run:\n%s", m, t);
        free(t);
        /* Every key of the first full run is new to the target: inserts, for 1.5 only. */
        char *ids = inserted_ids(dst);
        if (m >= 5)
            cr_expect(ids && strcmp(ids, "1\n2\n3\n") == 0, "inserts to 1.%u: %s", m,
                      ids ? ids : "(none)");
        else
            cr_expect_null(ids, "1.%u was handed inserts", m);
        free(ids);
        /* An update, a deletion and a new item in the source's log. */
        char src[128];
        path_in(&e, "src", m, src, sizeof src);
        write_file(src, "4\t2\tdeux\t2.00\t0\n5\t3\t\\N\t\\N\t1\n6\t4\tfour\t\\N\t0\n", "a");
        json_t *st = run(&e, m >= 1 ? "incremental" : "full", m);
        t = target_text(&e, m);
        cr_expect_str_eq(t, after, "the target of SDK 1.%u after the changes:\n%s", m, t);
        free(t);
        /* The new item 4 is an insert; the update of 2 and the deletion of 3 are not. */
        ids = inserted_ids(dst);
        if (m >= 5)
            cr_expect(ids && strcmp(ids, "1\n2\n3\n4\n") == 0, "inserts to 1.%u: %s", m,
                      ids ? ids : "(none)");
        else
            cr_expect_null(ids, "1.%u was handed inserts", m);
        free(ids);
        json_decref(st);
    }
    env_stop(&e);
}
