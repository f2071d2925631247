/* tests/integration/sdk13_test.c — what the host does with SDK 1.3's run-time features,
 * proven against the probe plugin (tests/sdk/plugins/probe.c, a source and target over
 * text files that records what it is told): op_source numbers one source record's ops
 * alike and adjacent; max_ops and max_bytes are never passed and every record is still
 * written exactly once, whole in one call unless it alone passes a limit; a full run's
 * estimated_total shows during the run, after it, after a restart and in tfsync status;
 * cb_run_end comes once per run and role, after the run's final state is committed, with
 * its mode (full, incremental, validate, replay) and outcome (succeeded, partial, failed),
 * not while a guard holds the run, and a failing one is shown on the run without changing
 * it; a deltas-only source is never swept.
 *
 * A real PostgreSQL state store and the real daemon, called over HTTP; runs are awaited
 * through GET /sync/status, the plugin's logs polled; nothing waits on a fixed sleep. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../sdk/tfsync_plugin.h"
#include "tfs_test.h"

TestSuite(sdk13, .timeout = 300);

/* ---- the environment ---- */

typedef struct env {
    char *state;
    char root[256]; /* the test's folder: transforms/, one store folder per system */
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static void mkdir_in(const env *e, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e->root, name);
    cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "could not write %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* n items in the store of system sys: ids 1..n, named <prefix>-<id>. */
static void write_items(const env *e, const char *sys, int n, const char *prefix)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/item.tsv", e->root, sys);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    for (int i = 1; i <= n; i++)
        fprintf(f, "%d\t%s-%02d\n", i, prefix, i);
    cr_assert_eq(fclose(f), 0);
}

/* A system on the probe plugin (or probe_deltas) over <root>/<name>; settings extra
 * merged in (borrowed). */
static void add_system(env *e, const char *name, const char *plugin, json_t *extra)
{
    mkdir_in(e, name);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", e->root, name);
    json_t *settings = json_pack("{ss}", "dir", dir);
    if (extra)
        json_object_update(settings, extra);
    json_object_set_new(json_object_get(e->cfg, "systems"), name,
                        json_pack("{ssso}", "plugin", plugin, "settings", settings));
}

static void add_pair(env *e, const char *name, const char *src, const char *tgt, int batch)
{
    json_array_append_new(json_object_get(e->cfg, "pairs"),
                          json_pack("{sssssssisfs[{sss[ss]ss}]}", "name", name, "source",
                                    src, "target", tgt, "batch_size", batch,
                                    /* a refused record makes a run partial, not failed */
                                    "max_failed_ratio", 0.5, "entities", "source", "item",
                                    "targets", "left", "right", "script", "probe.lua"));
}

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "s13state");
    snprintf(e->root, sizeof e->root, "/tmp/tfs-sdk13-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(e->root));
    mkdir_in(e, "transforms");
    char p[512];
    snprintf(p, sizeof p, "%s/transforms/probe.lua", e->root);
    /* One item gives two target records: the ops op_source must number alike. */
    write_text(p, "function map(r)\n"
                  "  return { left = { id = r.id, name = r.name },\n"
                  "           right = { id = r.id, name = r.name } }\n"
                  "end\n");
    e->cfg = tfs_test_config_new("unused", "unused", e->state);
    json_object_set_new(e->cfg, "plugin_dir", json_string(TFS_TEST_PROBE_DIR));
    snprintf(p, sizeof p, "%s/transforms", e->root);
    json_object_set_new(e->cfg, "transform_dir", json_string(p));
    json_object_set_new(e->cfg, "systems", json_object());
    json_object_set_new(e->cfg, "pairs", json_array());
}

static void env_start(env *e)
{
    e->d = tfs_test_daemon_start(e->cfg);
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
    tfs_test_db_drop(e->state);
    free(e->state);
    if (e->root[0] && !getenv("TFS_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->root);
        cr_expect_eq(system(cmd), 0);
    }
}

static json_int_t start_run(env *e, const char *pair, const char *mode)
{
    char path[64], body[256];
    snprintf(path, sizeof path, "/sync/%s", mode);
    snprintf(body, sizeof body, "{\"pair\": \"%s\"}", pair);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert_eq(r.status, 202, "POST %s %s: %ld %s", path, body, r.status, r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    return id;
}

/* Runs a pair to its end; returns the final status (owned). */
static json_t *run(env *e, const char *pair, const char *mode, const char *want_state)
{
    json_t *st = tfs_test_wait_run(e->d, start_run(e, pair, mode), 60);
    const char *s = json_string_value(json_object_get(st, "state"));
    if (want_state) {
        char *dump = json_dumps(st, JSON_COMPACT);
        cr_assert_str_eq(s ? s : "(none)", want_state, "run of %s: %s", pair, dump);
        free(dump);
    }
    return st;
}

static json_t *get_json(env *e, const char *path)
{
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *j = json_incref(r.json);
    tfs_test_response_free(&r);
    return j;
}

/* The whole file, or "" when it does not exist (yet). Owned. */
static char *slurp(const env *e, const char *sys, const char *file)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/%s", e->root, sys, file);
    FILE *f = fopen(p, "r");
    if (!f)
        return strdup("");
    fclose(f);
    return tfs_test_read_file(p);
}

/* ---- the probe's writes.log ---- */

typedef struct op {
    char entity[16];
    long id;
    long src;
} op;

typedef struct call {
    size_t n, bytes;
    op ops[256];
} call;

/* The calls of writes.log of system sys: *n_out calls, malloc'd. */
static call *parse_writes(const env *e, const char *sys, size_t *n_out)
{
    char *text = slurp(e, sys, "writes.log");
    size_t cap = 16, n = 0;
    call *calls = calloc(cap, sizeof *calls);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (n == cap)
            calls = realloc(calls, (cap *= 2) * sizeof *calls);
        call *c = &calls[n++];
        memset(c, 0, sizeof *c);
        cr_assert_eq(sscanf(line, "write n=%zu bytes=%zu", &c->n, &c->bytes), 2, "%s", line);
        cr_assert_leq(c->n, 256, "%s", line);
        char *ops = strstr(line, "ops=") + 4, *s2 = NULL;
        size_t k = 0;
        for (char *t = strtok_r(ops, " ", &s2); t; t = strtok_r(NULL, " ", &s2), k++) {
            op *o = &c->ops[k];
            cr_assert_eq(sscanf(t, "%15[a-z]:%ld:%ld", o->entity, &o->id, &o->src), 3, "%s", t);
        }
        cr_assert_eq(k, c->n, "writes.log: %zu ops listed of %zu: %s", k, c->n, line);
    }
    free(text);
    *n_out = n;
    return calls;
}

/* Every call numbers its source records from 0 in order, each number's ops adjacent and of
 * one item, each item's two ops (left and right) whole in one call and alike numbered
 * (with whole_records; without, a record may be cut but its ops still share numbers). */
static void assert_op_sources(const call *calls, size_t n, int whole_records)
{
    for (size_t c = 0; c < n; c++) {
        const call *k = &calls[c];
        cr_assert_gt(k->n, 0);
        cr_assert_eq(k->ops[0].src, 0, "call %zu: the first op's source is %ld, not 0", c,
                     k->ops[0].src);
        for (size_t i = 1; i < k->n; i++) {
            long d = k->ops[i].src - k->ops[i - 1].src;
            cr_assert(d == 0 || d == 1, "call %zu: op %zu's source %ld after %ld", c, i,
                      k->ops[i].src, k->ops[i - 1].src);
            if (d == 0)
                cr_assert_eq(k->ops[i].id, k->ops[i - 1].id,
                             "call %zu: ops %zu and %zu share source %ld but are items %ld "
                             "and %ld", c, i - 1, i, k->ops[i].src, k->ops[i - 1].id,
                             k->ops[i].id);
            else
                cr_assert_neq(k->ops[i].id, k->ops[i - 1].id,
                              "call %zu: item %ld's ops have sources %ld and %ld", c,
                              k->ops[i].id, k->ops[i - 1].src, k->ops[i].src);
        }
        if (!whole_records)
            continue;
        for (size_t i = 0; i < k->n; i++) {
            int left = 0, right = 0;
            for (size_t j = 0; j < k->n; j++)
                if (k->ops[j].id == k->ops[i].id) {
                    left += strcmp(k->ops[j].entity, "left") == 0;
                    right += strcmp(k->ops[j].entity, "right") == 0;
                }
            cr_assert(left == 1 && right == 1,
                      "call %zu: item %ld has %d left and %d right ops (a record cut though "
                      "it fits)", c, k->ops[i].id, left, right);
        }
    }
}

/* Across all calls, items 1..n_items each written exactly once to left and to right. */
static void assert_each_once(const call *calls, size_t n, long n_items)
{
    for (long id = 1; id <= n_items; id++) {
        int left = 0, right = 0;
        for (size_t c = 0; c < n; c++)
            for (size_t i = 0; i < calls[c].n; i++)
                if (calls[c].ops[i].id == id) {
                    left += strcmp(calls[c].ops[i].entity, "left") == 0;
                    right += strcmp(calls[c].ops[i].entity, "right") == 0;
                }
        cr_assert(left == 1 && right == 1, "item %ld written %d times to left, %d to right",
                  id, left, right);
    }
}

static long lines_of(const env *e, const char *sys, const char *file)
{
    char *t = slurp(e, sys, file);
    long n = 0;
    for (char *p = t; *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

/* ---- op_source and write limits ---- */

Test(sdk13, op_source_numbers_one_records_ops_alike_and_adjacent)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 25, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    size_t n;
    call *calls = parse_writes(&e, "tgt", &n);
    cr_assert_eq(n, 3, "25 items in batches of 10 are 3 writes, not %zu", n);
    assert_op_sources(calls, n, 1);
    assert_each_once(calls, n, 25);
    cr_assert_eq(calls[0].n, 20);
    cr_assert_eq(calls[0].ops[19].src, 9, "10 records, numbered 0..9");
    free(calls);
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 25);
    cr_assert_eq(lines_of(&e, "tgt", "right.tsv"), 25);
    env_down(&e);
}

Test(sdk13, max_ops_is_never_passed_and_records_stay_whole)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    json_t *lim = json_pack("{si}", "max_ops", 5);
    add_system(&e, "tgt", "probe", lim);
    json_decref(lim);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 25, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    size_t n;
    call *calls = parse_writes(&e, "tgt", &n);
    /* 2 ops a record, 5 at most a call: 2 records a call; batches of 10, 10 and 5
     * records make 5, 5 and 3 calls. */
    for (size_t c = 0; c < n; c++)
        cr_assert_leq(calls[c].n, 5, "call %zu has %zu ops, max_ops is 5", c, calls[c].n);
    cr_assert_eq(n, 13, "%zu calls, not 13", n);
    assert_op_sources(calls, n, 1);
    assert_each_once(calls, n, 25);
    free(calls);
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 25);
    cr_assert_eq(lines_of(&e, "tgt", "right.tsv"), 25);
    env_down(&e);
}

Test(sdk13, a_record_past_max_ops_alone_is_cut_by_the_limit)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    json_t *lim = json_pack("{si}", "max_ops", 1);
    add_system(&e, "tgt", "probe", lim);
    json_decref(lim);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 12, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    size_t n;
    call *calls = parse_writes(&e, "tgt", &n);
    cr_assert_eq(n, 24, "12 records of 2 ops, one op a call: %zu calls", n);
    for (size_t c = 0; c < n; c++)
        cr_assert_eq(calls[c].n, 1);
    assert_op_sources(calls, n, 0);
    assert_each_once(calls, n, 12);
    free(calls);
    env_down(&e);
}

Test(sdk13, max_bytes_is_never_passed_and_records_stay_whole)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    /* An op is {"id":N,"name":"name-NN"}: 25 or 26 bytes, a record 50 to 52; 130 bytes
     * take two records a call. */
    json_t *lim = json_pack("{si}", "max_bytes", 130);
    add_system(&e, "tgt", "probe", lim);
    json_decref(lim);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 25, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    size_t n;
    call *calls = parse_writes(&e, "tgt", &n);
    size_t most = 0;
    for (size_t c = 0; c < n; c++) {
        cr_assert_leq(calls[c].bytes, 130, "call %zu has %zu bytes, max_bytes is 130", c,
                      calls[c].bytes);
        most = calls[c].n > most ? calls[c].n : most;
    }
    cr_assert_eq(most, 4, "calls are packed with whole records while they fit (most ops in "
                 "a call: %zu)", most);
    assert_op_sources(calls, n, 1);
    assert_each_once(calls, n, 25);
    free(calls);
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 25);
    env_down(&e);
}

Test(sdk13, an_op_past_max_bytes_alone_is_written_alone)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    /* Every op (25 or 26 bytes) passes 10 bytes alone: it cannot be cut, so it goes in a
     * call by itself, and nothing is lost. */
    json_t *lim = json_pack("{si}", "max_bytes", 10);
    add_system(&e, "tgt", "probe", lim);
    json_decref(lim);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 6, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    size_t n;
    call *calls = parse_writes(&e, "tgt", &n);
    cr_assert_eq(n, 12, "6 records of 2 ops, each op alone: %zu calls", n);
    for (size_t c = 0; c < n; c++)
        cr_assert_eq(calls[c].n, 1);
    assert_op_sources(calls, n, 0);
    assert_each_once(calls, n, 6);
    free(calls);
    env_down(&e);
}

Test(sdk13, per_op_failures_under_write_limits_are_dead_letters_of_their_record)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    json_t *lim = json_pack("{siss}", "max_ops", 3, "refuse_name", "name-07");
    add_system(&e, "tgt", "probe", lim);
    json_decref(lim);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 12, "name");
    env_start(&e);
    json_t *st = run(&e, "p", "full", "partial");
    json_t *c = json_object_get(json_object_get(st, "counts"), "item");
    cr_assert_eq(json_integer_value(json_object_get(c, "written")), 11);
    cr_assert_eq(json_integer_value(json_object_get(c, "write_failed")), 1);
    json_decref(st);
    json_t *dl = get_json(&e, "/dead-letters?pair=p");
    json_t *list = json_object_get(dl, "dead_letters");
    cr_assert_eq(json_array_size(list), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "source_key")),
                     "7");
    json_decref(dl);
    env_down(&e);
}

/* ---- estimated_total ---- */

/* The progress entry of entity item of a run status. */
static json_t *progress_item(json_t *st)
{
    json_t *p = json_array_get(json_object_get(st, "progress"), 0);
    cr_assert_not_null(p, "no progress in the run's status");
    return p;
}

Test(sdk13, estimated_total_shows_during_and_after_a_full_run_and_after_a_restart)
{
    env e;
    env_init(&e);
    char gate[512];
    snprintf(gate, sizeof gate, "%s/gate", e.root);
    json_t *g = json_pack("{ss}", "gate", gate);
    add_system(&e, "src", "probe", g);
    json_decref(g);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 25, "name");
    env_start(&e);
    json_int_t id = start_run(&e, "p", "full");
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    /* The source's second read waits for the gate: the run is running until it opens. */
    json_t *st = NULL;
    for (int i = 0; i < 1000; i++) {
        json_decref(st);
        st = get_json(&e, path);
        const char *state = json_string_value(json_object_get(st, "state"));
        cr_assert(strcmp(state, "queued") == 0 || strcmp(state, "running") == 0,
                  "the gated run is %s", state);
        if (json_is_integer(json_object_get(progress_item(st), "estimated_total")))
            break;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL); /* polling the status */
    }
    char *dump = json_dumps(st, JSON_COMPACT);
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "running", "%s", dump);
    cr_assert_eq(json_integer_value(json_object_get(progress_item(st), "estimated_total")), 25,
                 "%s", dump);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "estimated_totals"),
                                                    "item")),
                 25, "%s", dump);
    free(dump);
    json_decref(st);
    write_text(gate, "open\n");
    st = tfs_test_wait_run(e.d, id, 60);
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "succeeded");
    json_decref(st);
    st = get_json(&e, path);
    cr_assert_eq(json_integer_value(json_object_get(progress_item(st), "estimated_total")), 25);
    json_t *c = json_object_get(json_object_get(st, "counts"), "item");
    cr_assert_eq(json_integer_value(json_object_get(c, "estimated_total")), 25);
    cr_assert_eq(json_integer_value(json_object_get(c, "read")), 25);
    json_decref(st);
    st = get_json(&e, "/sync/status");
    dump = json_dumps(st, JSON_COMPACT);
    cr_assert(strstr(dump, "\"estimated_total\":25") != NULL, "GET /sync/status: %s", dump);
    free(dump);
    json_decref(st);
    /* tfsync status prints it beside the counts. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "env -u TFSYNC_URL -u TFSYNC_KEY %s/tfsync --url http://127.0.0.1:%d --key %s "
             "status 2>&1", TFS_BINARY_DIR, e.d->port, TFS_TEST_KEY_READ);
    FILE *cli = popen(cmd, "r");
    cr_assert_not_null(cli);
    char out[8192];
    size_t got = fread(out, 1, sizeof out - 1, cli);
    out[got] = '\0';
    cr_assert_eq(pclose(cli), 0, "%s:\n%s", cmd, out);
    cr_assert(strstr(out, "estimated_total 25") != NULL, "tfsync status:\n%s", out);
    /* Stored with the run: a new daemon on the same store shows it. */
    tfs_test_daemon_stop(e.d);
    e.d = NULL;
    env_start(&e);
    st = get_json(&e, path);
    cr_assert_eq(json_integer_value(json_object_get(progress_item(st), "estimated_total")), 25);
    json_decref(st);
    env_down(&e);
}

Test(sdk13, estimated_total_is_null_when_the_source_cannot_tell)
{
    env e;
    env_init(&e);
    json_t *no = json_pack("{sb}", "estimate", 0);
    add_system(&e, "src", "probe", no);
    json_decref(no);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 5, "name");
    env_start(&e);
    json_t *st = run(&e, "p", "full", "succeeded");
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld",
             (long long)json_integer_value(json_object_get(st, "run_id")));
    json_decref(st);
    st = get_json(&e, path);
    json_t *est = json_object_get(progress_item(st), "estimated_total");
    cr_assert(est == NULL || json_is_null(est));
    json_t *c = json_object_get(json_object_get(st, "counts"), "item");
    est = json_object_get(c, "estimated_total");
    cr_assert(est == NULL || json_is_null(est));
    cr_assert_eq(json_integer_value(json_object_get(c, "read")), 5);
    json_decref(st);
    env_down(&e);
}

/* ---- cb_run_end ---- */

/* Starts a job of a pair (POST path body) and waits for its end; its run id. */
static json_int_t job(env *e, const char *path, const char *body)
{
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert(r.status == 200 || r.status == 202, "POST %s %s: %ld %s", path, body, r.status,
              r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    cr_assert_gt(id, 0, "POST %s: no run_id in %s", path, r.body);
    tfs_test_response_free(&r);
    json_decref(tfs_test_wait_run(e->d, id, 60));
    return id;
}

typedef struct end_line {
    char system[64], pair[64], mode[16];
    long long run, at_us;
    int outcome, role;
    unsigned size;
} end_line;

/* The run_end.log lines of system sys for run id, polled until there are want of them
 * (the call comes after the state the test saw is committed). */
static size_t run_end_lines(const env *e, const char *sys, json_int_t id, size_t want,
                            end_line *out, size_t cap)
{
    size_t n = 0;
    for (int attempt = 0; attempt < 1000; attempt++) {
        char *t = slurp(e, sys, "run_end.log"), *save = NULL;
        n = 0;
        for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            end_line x = {0};
            cr_assert_eq(sscanf(l, "run_end system=%63s run=%lld pair=%63s mode=%15s "
                                   "outcome=%d role=%d size=%u at_us=%lld",
                                x.system, &x.run, x.pair, x.mode, &x.outcome, &x.role, &x.size,
                                &x.at_us),
                         8, "%s", l);
            if (x.run == id && n < cap)
                out[n++] = x;
        }
        free(t);
        if (n >= want)
            break;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL); /* polling the log */
    }
    return n;
}

static long long finished_us(const env *e, json_int_t id)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT (extract(epoch FROM finished_at) * 1000000)::int8 FROM tfsync.runs "
             "WHERE run_id = %lld", (long long)id);
    char *v = tfs_test_pg_scalar(e->state, sql);
    cr_assert_not_null(v, "run %lld has no finished_at", (long long)id);
    long long x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

/* Exactly one run_end of run id on each side, with the run's pair, mode and outcome,
 * after the store committed the run's end. */
static void assert_ended(const env *e, const char *pair, json_int_t id, const char *mode,
                         int outcome)
{
    static const char *const sys[] = {"src", "tgt"};
    long long fin = finished_us(e, id);
    for (int role = 0; role < 2; role++) {
        end_line l[4];
        size_t n = run_end_lines(e, sys[role], id, 1, l, 4);
        cr_assert_eq(n, 1, "run %lld: %zu run_end calls on %s, not 1", (long long)id, n,
                     sys[role]);
        cr_assert_str_eq(l[0].system, sys[role]);
        cr_assert_str_eq(l[0].pair, pair);
        cr_assert_str_eq(l[0].mode, mode);
        cr_assert_eq(l[0].outcome, outcome, "run %lld: outcome %d, not %d", (long long)id,
                     l[0].outcome, outcome);
        cr_assert_eq(l[0].role, role, "%s was told role %d", sys[role], l[0].role);
        cr_assert_eq(l[0].size, (unsigned)sizeof(tfs_sdk_run_end), "struct_size %u",
                     l[0].size);
        cr_assert_geq(l[0].at_us, fin, "run %lld: run_end came %lld us before the store "
                      "committed the run's end", (long long)id, fin - l[0].at_us);
    }
}

Test(sdk13, run_end_comes_once_after_the_commit_with_the_outcome)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "ok", "src", "tgt", 10);
    write_items(&e, "src", 5, "name");
    env_start(&e);

    json_t *st = run(&e, "ok", "full", "succeeded");
    json_int_t id = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    assert_ended(&e, "ok", id, "full", TFS_SDK_RUN_SUCCEEDED);
    st = run(&e, "ok", "incremental", "succeeded");
    json_int_t id2 = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    assert_ended(&e, "ok", id2, "incremental", TFS_SDK_RUN_SUCCEEDED);
    /* A job is a run too: a dry run is ended like a sync. */
    json_int_t id3 = job(&e, "/sync/validate", "{\"pair\": \"ok\", \"sample\": 5}");
    assert_ended(&e, "ok", id3, "validate", TFS_SDK_RUN_SUCCEEDED);
    /* Still one call for the first run: each run is ended once. */
    end_line l[4];
    cr_assert_eq(run_end_lines(&e, "src", id, 1, l, 4), 1);
    env_down(&e);
}

Test(sdk13, run_end_of_partial_and_failed_runs)
{
    env e;
    env_init(&e);
    json_t *ref = json_pack("{ss}", "refuse_name", "name-03");
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", ref);
    json_decref(ref);
    add_pair(&e, "partial", "src", "tgt", 10);
    write_items(&e, "src", 5, "name");
    env_start(&e);
    json_t *st = run(&e, "partial", "full", "partial");
    json_int_t id = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    assert_ended(&e, "partial", id, "full", TFS_SDK_RUN_PARTIAL);
    /* Replaying the dead letter, which the target still refuses. */
    json_int_t rid = job(&e, "/dead-letters/replay", "{\"pair\": \"partial\"}");
    assert_ended(&e, "partial", rid, "replay", TFS_SDK_RUN_PARTIAL);
    env_down(&e);

    env_init(&e);
    json_t *fail = json_pack("{sb}", "fail_read", 1);
    add_system(&e, "src", "probe", fail);
    json_decref(fail);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "failing", "src", "tgt", 10);
    write_items(&e, "src", 5, "name");
    env_start(&e);
    st = run(&e, "failing", "full", "failed");
    id = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    assert_ended(&e, "failing", id, "full", TFS_SDK_RUN_FAILED);
    env_down(&e);
}

Test(sdk13, a_failing_run_end_is_shown_on_the_run_and_changes_nothing)
{
    env e;
    env_init(&e);
    json_t *f = json_pack("{sb}", "fail_run_end", 1);
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", f);
    json_decref(f);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 5, "name");
    env_start(&e);
    json_t *st = run(&e, "p", "full", "succeeded");
    json_int_t id = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    json_t *errs = NULL;
    for (int i = 0; i < 1000; i++) {
        st = get_json(&e, path);
        errs = json_incref(json_object_get(st, "run_end_errors"));
        cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "succeeded");
        json_decref(st);
        if (json_is_array(errs))
            break;
        json_decref(errs);
        errs = NULL;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL); /* polling the status */
    }
    cr_assert(json_is_array(errs), "no run_end_errors on the run");
    char *dump = json_dumps(errs, JSON_COMPACT);
    cr_assert_eq(json_array_size(errs), 1, "%s", dump);
    free(dump);
    json_t *x = json_array_get(errs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(x, "system")), "tgt");
    cr_assert_str_eq(json_string_value(json_object_get(x, "role")), "target");
    cr_assert(strstr(json_string_value(json_object_get(x, "error")), "fail_run_end is set"));
    json_decref(errs);
    char *log = tfs_test_daemon_log(e.d);
    cr_assert(strstr(log, "fail_run_end is set"), "the failure is logged");
    free(log);
    env_down(&e);
}

/* ---- TFS_SDK_CAP_DELTAS ---- */

Test(sdk13, a_deltas_source_is_never_swept)
{
    env e;
    env_init(&e);
    add_system(&e, "drop", "probe_deltas", NULL);
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", NULL);
    add_system(&e, "tgt2", "probe", NULL);
    add_pair(&e, "deltas", "drop", "tgt", 10);
    add_pair(&e, "plain", "src", "tgt2", 10);
    write_items(&e, "drop", 20, "name");
    env_start(&e);

    json_t *pairs = get_json(&e, "/pairs");
    json_t *ps = json_object_get(pairs, "pairs");
    for (size_t i = 0; i < json_array_size(ps); i++) {
        json_t *p = json_array_get(ps, i);
        int deltas = strcmp(json_string_value(json_object_get(p, "name")), "deltas") == 0;
        cr_assert_eq(json_is_true(json_object_get(p, "sweep")), !deltas);
        json_t *why = json_object_get(p, "sweep_reason");
        if (deltas)
            cr_assert(json_is_string(why) && strstr(json_string_value(why), "TFS_SDK_CAP_DELTAS"));
        else
            cr_assert_null(why);
    }
    json_decref(pairs);

    /* GET /plugins names every capability: the deltas build says deltas, the other not,
     * and both say they cannot fetch. */
    json_t *plugins = get_json(&e, "/plugins");
    json_t *loaded = json_object_get(plugins, "plugins");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(loaded); i++) {
        json_t *p = json_array_get(loaded, i);
        const char *name = json_string_value(json_object_get(p, "name"));
        if (strcmp(name, "probe") != 0 && strcmp(name, "probe_deltas") != 0)
            continue;
        seen++;
        int deltas = 0, no_fetch = 0;
        json_t *c;
        size_t j;
        json_array_foreach(json_object_get(p, "capabilities"), j, c) {
            deltas |= strcmp(json_string_value(c), "deltas") == 0;
            no_fetch |= strcmp(json_string_value(c), "no_fetch") == 0;
        }
        cr_assert_eq(deltas, strcmp(name, "probe_deltas") == 0, "%s capabilities", name);
        cr_assert(no_fetch, "%s is a target that cannot fetch", name);
    }
    cr_assert_eq(seen, 2);
    json_decref(plugins);

    json_decref(run(&e, "deltas", "full", "succeeded"));
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 20);
    /* The next drop holds 3 records, one changed: a full run writes it and deletes none
     * of the 17 it does not see (a sweep would, or its guard would hold the run). */
    char p[512];
    snprintf(p, sizeof p, "%s/drop/item.tsv", e.root);
    write_text(p, "1\tname-01\n2\tchanged\n3\tname-03\n");
    json_t *st = run(&e, "deltas", "full", "succeeded");
    json_t *c = json_object_get(json_object_get(st, "counts"), "item");
    char *dump = json_dumps(c, JSON_COMPACT);
    cr_assert_eq(json_integer_value(json_object_get(c, "read")), 3, "%s", dump);
    cr_assert_eq(json_integer_value(json_object_get(c, "written")), 1, "%s", dump);
    cr_assert_eq(json_integer_value(json_object_get(c, "deleted")), 0, "%s", dump);
    cr_assert_eq(json_integer_value(json_object_get(c, "swept")), 0, "%s", dump);
    free(dump);
    json_decref(st);
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 20);
    cr_assert_eq(lines_of(&e, "tgt", "right.tsv"), 20);
    char *left = slurp(&e, "tgt", "left.tsv");
    cr_assert(strstr(left, "2\tchanged\n"), "%s", left);
    free(left);
    /* An incremental run (no change data) reads the drop like a full run, sweeping
     * nothing either. */
    write_text(p, "4\tagain\n");
    json_decref(run(&e, "deltas", "incremental", "succeeded"));
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 20);
    left = slurp(&e, "tgt", "left.tsv");
    cr_assert(strstr(left, "4\tagain\n"), "%s", left);
    free(left);
    env_down(&e);
}

/* A held run is not ended: the one cb_run_end of a run a guard held comes after the
 * operator's confirm lets it finish. A plain (not deltas) probe source, the contrast to
 * the test above: its full run would sweep what it no longer reads. */
Test(sdk13, a_held_run_is_ended_once_after_its_confirm)
{
    env e;
    env_init(&e);
    add_system(&e, "src", "probe", NULL);
    add_system(&e, "tgt", "probe", NULL);
    add_pair(&e, "p", "src", "tgt", 10);
    write_items(&e, "src", 20, "name");
    env_start(&e);
    json_decref(run(&e, "p", "full", "succeeded"));
    write_items(&e, "src", 3, "name");
    json_t *st = run(&e, "p", "full", "held");
    json_int_t id = json_integer_value(json_object_get(st, "run_id"));
    json_decref(st);
    char path[80];
    snprintf(path, sizeof path, "/sync/runs/%lld/confirm", (long long)id);
    tfs_test_response r =
        tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "{\"deletes\": 17}");
    cr_assert(r.status == 200 || r.status == 202, "POST %s: %ld %s", path, r.status, r.body);
    tfs_test_response_free(&r);
    st = tfs_test_wait_run(e.d, id, 60);
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "succeeded");
    json_t *c = json_object_get(json_object_get(st, "counts"), "item");
    cr_assert_eq(json_integer_value(json_object_get(c, "swept")), 17);
    json_decref(st);
    assert_ended(&e, "p", id, "full", TFS_SDK_RUN_SUCCEEDED);
    cr_assert_eq(lines_of(&e, "tgt", "left.tsv"), 3);
    env_down(&e);
}
