/* core/pipeline.c — executing a run of a pair: its entity mappings in declared order, each
 * read batch by batch through the three-thread hand-off (handoff.h) and the stages of a
 * batch (stage.h), then, for a full run, the sweep of keys the run did not see, and the
 * trim of the source's change log. See pipeline.h.
 */
#include "pipeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "handoff.h"
#include "log.h"
#include "lua_transform.h"
#include "stage.h"
#include "store.h"

/* Batches in flight: one being read, one being written, one being committed and one
 * queued between them. */
#define N_SLOTS 4

/* What a pair's system is opened for: a pair whose source and target are the same system
 * gets one instance for each, since each side runs on its own thread and an instance is
 * never called from two threads. */
enum { ROLE_SOURCE, ROLE_TARGET, N_ROLES };

typedef struct open_system {
    char *name;
    tfs_instance *inst;
} open_system;

struct tfs_pipeline {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    tfs_store *store;  /* the worker's, and the writing side's during a hand-off */
    tfs_store *cstore; /* the committing side's own connection */
    tfs_lua *lua;
    tfs_stage_job jobs[N_SLOTS]; /* each with its own arena */
    tfs_buf scratch;             /* the reading side's */
    tfs_buf wscratch;            /* the writing side's */
    tfs_buf cscratch, cscratch2; /* the committing side's */
    open_system *systems[N_ROLES]; /* per role, up to n_systems each */
    size_t n_systems[N_ROLES];
};

int tfs_pipeline_new(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_pipeline **out,
                     tfs_error *err)
{
    *out = NULL;
    tfs_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    p->cfg = cfg;
    p->plugins = plugins;
    int rc = 0;
    for (int r = 0; r < N_ROLES; r++)
        if (!(p->systems[r] = calloc(cfg->n_systems + 1, sizeof *p->systems[r])))
            rc = TFS_ENOMEM;
    for (int i = 0; i < N_SLOTS; i++)
        if (!(p->jobs[i].arena = tfs_arena_new()))
            rc = TFS_ENOMEM;
    if (rc) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = tfs_store_open(cfg->state_conninfo, &p->store, err)) ||
        (rc = tfs_store_open(cfg->state_conninfo, &p->cstore, err)) ||
        (rc = tfs_lua_new(cfg->transform_dir, &cfg->lua, cfg->roll_year, &p->lua, err)))
        goto fail;
    *out = p;
    return 0;
fail:
    tfs_pipeline_free(p);
    return rc;
}

static void drop_system(open_system *s)
{
    tfs_instance_close(s->inst);
    s->inst = NULL;
}

void tfs_pipeline_free(tfs_pipeline *p)
{
    if (!p)
        return;
    for (int r = 0; r < N_ROLES; r++) {
        for (size_t i = 0; i < p->n_systems[r]; i++) {
            drop_system(&p->systems[r][i]);
            free(p->systems[r][i].name);
        }
        free(p->systems[r]);
    }
    tfs_store_close(p->store);
    tfs_store_close(p->cstore);
    tfs_lua_free(p->lua);
    for (int i = 0; i < N_SLOTS; i++) {
        tfs_stage_job_clear(&p->jobs[i]);
        tfs_arena_free(p->jobs[i].arena);
    }
    tfs_buf_free(&p->scratch);
    tfs_buf_free(&p->wscratch);
    tfs_buf_free(&p->cscratch);
    tfs_buf_free(&p->cscratch2);
    free(p);
}

struct tfs_store *tfs_pipeline_store(tfs_pipeline *p)
{
    return p->store;
}

/* The worker's instance of a system in a role, opened on first use and kept for later
 * runs. */
static int get_system(tfs_pipeline *p, const char *name, int role, open_system **out,
                      tfs_error *err)
{
    open_system *s = NULL;
    for (size_t i = 0; i < p->n_systems[role]; i++)
        if (strcmp(p->systems[role][i].name, name) == 0)
            s = &p->systems[role][i];
    if (!s) {
        if (p->n_systems[role] >= p->cfg->n_systems)
            return tfs_error_set(err, TFS_EPERMANENT, "no system \"%s\" in the config", name);
        s = &p->systems[role][p->n_systems[role]];
        if (!(s->name = strdup(name)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        p->n_systems[role]++;
    }
    *out = s;
    if (s->inst)
        return 0;
    const tfs_config_system *cs = tfs_config_system_get(p->cfg, name);
    const tfs_plugin *pl = cs ? tfs_plugin_host_get(p->plugins, cs->plugin) : NULL;
    if (!pl) {
        tfs_error_set(err, TFS_EPERMANENT, "system \"%s\" needs plugin \"%s\", which is not "
                      "loaded", name, cs ? cs->plugin : "?");
        tfs_error_hint(err, "see GET /plugins for the plugins loaded and the ones refused");
        return TFS_EPERMANENT;
    }
    return tfs_instance_open(pl, name, cs->settings, &s->inst, err);
}

/* ---- one entity mapping through the hand-off ----------------------------------------- */

/* The reading side's position: a copy of the last batch's cursor that outlives its
 * arena, where the next read starts. */
typedef struct reading {
    tfs_stage_ctx *b;
    unsigned char *cursor; /* malloc'd */
    size_t cursor_len;
} reading;

static int cb_read(void *ctx, void *slot, int *last, tfs_error *err)
{
    reading *rd = ctx;
    tfs_stage_job *jb = slot;
    int rc = tfs_stage_read(rd->b, jb, rd->cursor, rd->cursor_len, err);
    if (rc)
        return rc;
    *last = jb->batch.done || jb->batch.n == 0;
    if (*last)
        return 0;
    unsigned char *next = malloc(jb->batch.cursor_len ? jb->batch.cursor_len : 1);
    if (!next)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    memcpy(next, jb->batch.cursor, jb->batch.cursor_len);
    free(rd->cursor);
    rd->cursor = next;
    rd->cursor_len = jb->batch.cursor_len;
    return 0;
}

static int cb_keys(void *ctx, void *slot, uint64_t **keys, size_t *n)
{
    (void)ctx;
    return tfs_stage_key_hashes(slot, keys, n);
}

static int cb_write(void *ctx, void *slot, tfs_error *err)
{
    return tfs_stage_process(((reading *)ctx)->b, slot, err);
}

static int cb_commit(void *ctx, void *slot, tfs_error *err)
{
    return tfs_stage_commit(((reading *)ctx)->b, slot, err);
}

static void cb_release(void *ctx, void *slot)
{
    (void)ctx;
    tfs_stage_job_clear(slot);
}

/* Where a run's read of the entity starts: a changes read from the checkpoint; a full read
 * from its own progress when resumed, else from the start (recording the source's change
 * cursor of now). *skip when this run had read it all before it stopped. */
static int start_position(tfs_pipeline *p, tfs_stage_ctx *b, unsigned char **cursor,
                          size_t *cursor_len, int *skip, tfs_error *err)
{
    int64_t cursor_run;
    int done, rc;
    *skip = 0;
    if ((rc = tfs_store_cursor_get(p->store, b->pair->name, b->em->source,
                                   b->changes ? "changes" : "full", &cursor_run, &done, cursor,
                                   cursor_len, err)))
        return rc;
    if (b->changes) {
        /* The checkpoint is where the last committed batch left off, this run's or not. */
        if (*cursor)
            return 0;
        tfs_error_set(err, TFS_EPERMANENT,
                      "no change checkpoint for %s of pair \"%s\": run a full sync first "
                      "(POST /sync/full); it sets the checkpoint incremental runs start from",
                      b->em->source, b->pair->name);
        return TFS_EPERMANENT;
    }
    if (cursor_run == b->run_id) {
        *skip = done;
        return 0;
    }
    /* A fresh full read. A source with change data gives the change cursor of now, which
     * becomes the incremental checkpoint once everything is read. */
    free(*cursor);
    *cursor = NULL;
    *cursor_len = 0;
    tfs_batch start;
    tfs_arena *a = p->jobs[0].arena;
    tfs_stage_job_clear(&p->jobs[0]);
    tfs_arena_reset(a);
    tfs_batch_init(&start, a, tfs_instance_entity_get(b->src, b->src_entity));
    if ((rc = tfs_instance_changes_start(b->src, b->src_entity, &start, err)))
        return rc;
    return tfs_store_full_start(p->store, b->pair->name, b->em->source, b->run_id,
                                start.cursor_set ? start.cursor : NULL, start.cursor_len, err);
}

/* Reads and transforms batch after batch on this thread while a writer thread compares and
 * writes the one before and a committer thread commits the one before that, so the source,
 * the Lua runtime, the target and the state store all work at once. */
static int run_entity(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
{
    reading rd = {.b = b};
    int skip, rc;
    if ((rc = start_position(p, b, &rd.cursor, &rd.cursor_len, &skip, err)) || skip)
        goto out;
    if ((rc = tfs_store_ensure(p->cstore, err)))
        goto out;
    b->commit_store = p->cstore;
    tfs_handoff_stages st = {.ctx = &rd, .cb_read = cb_read, .cb_write = cb_write,
                             .cb_commit = cb_commit, .cb_release = cb_release,
                             /* Full reads never repeat a key: they always overlap. */
                             .cb_keys = b->changes ? cb_keys : NULL};
    void *slots[N_SLOTS];
    for (int i = 0; i < N_SLOTS; i++)
        slots[i] = &p->jobs[i];
    rc = tfs_handoff_run(&st, slots, N_SLOTS, b->stop, err);
out:
    free(rd.cursor);
    return rc;
}

/* After a full run has read every entity: the keys its sync map still holds but the run
 * did not see have vanished from the source, and get the pair's delete action, batch by
 * batch on this thread. */
static int sweep_entity(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
{
    char *after = NULL;
    int rc = 0;
    tfs_stage_job *jb = &p->jobs[0];
    b->commit_store = p->store;
    for (;;) {
        char **keys = NULL;
        size_t n = 0;
        if ((rc = tfs_store_sweep_keys(p->store, b->pair->name, b->em->source, b->run_id, after,
                                       b->pair->batch_size, &keys, &n, err)))
            break;
        if (n == 0) {
            free(keys);
            break;
        }
        rc = tfs_stage_of_keys(b, jb, keys, n, err);
        free(after);
        after = strdup(keys[n - 1]);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        if (!rc && !after)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        if (!rc && !(rc = tfs_stage_process(b, jb, err)))
            rc = tfs_stage_commit(b, jb, err);
        tfs_stage_job_clear(jb);
        if (rc)
            break;
    }
    free(after);
    return rc;
}
static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 (PostgreSQL's encode(..., 'base64'), newlines included) into out. */
static size_t b64_decode(const char *in, unsigned char *out)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in; in++) {
        int v = b64_value((unsigned char)*in);
        if (v < 0)
            continue;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* Lets the source forget the changes every pair reading it is past (its change log). */
static void trim_changes(tfs_pipeline *p, const tfs_config_pair *pair, tfs_instance *src)
{
    if (!(tfs_instance_capabilities(src) & TFS_SDK_CAP_CHANGES))
        return;
    const char **readers = calloc(p->cfg->n_pairs + 1, sizeof *readers);
    size_t n_readers = 0;
    for (size_t i = 0; readers && i < p->cfg->n_pairs; i++)
        if (strcmp(p->cfg->pairs[i].source, pair->source) == 0)
            readers[n_readers++] = p->cfg->pairs[i].name;
    json_t *list = NULL;
    tfs_error err = {0};
    if (!readers || tfs_store_changes_cursors(p->store, readers, n_readers, &list, &err) != 0) {
        free(readers);
        return;
    }
    size_t n = json_array_size(list);
    const void **cursors = calloc(n + 1, sizeof *cursors);
    size_t *lens = calloc(n + 1, sizeof *lens);
    unsigned char **bufs = calloc(n + 1, sizeof *bufs);
    for (size_t i = 0; cursors && lens && bufs && i < n; i++) {
        const char *b64 = json_string_value(json_array_get(list, i));
        if (!b64 || !(bufs[i] = malloc(strlen(b64) + 1)))
            continue;
        lens[i] = b64_decode(b64, bufs[i]);
        cursors[i] = bufs[i];
    }
    if (cursors && lens && bufs && n &&
        tfs_instance_changes_trim(src, (const void *const *)cursors, lens, n, &err) != 0)
        tfs_log_warn("pipeline", "%s", err.message);
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    free(cursors);
    free(readers);
    json_decref(list);
}

static int prepare_mapping(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
{
    const tfs_config_entity *em = b->em;
    int si = tfs_instance_entity(b->src, em->source);
    if (si < 0) {
        tfs_error_set(err, TFS_EPERMANENT, "source system \"%s\" has no entity \"%s\"",
                      b->pair->source, em->source);
        return TFS_EPERMANENT;
    }
    b->src_entity = (size_t)si;
    b->n_targets = em->n_targets;
    b->targets = calloc(em->n_targets, sizeof *b->targets);
    if (!b->targets)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t t = 0; t < em->n_targets; t++) {
        int ti = tfs_instance_entity(b->tgt, em->targets[t]);
        if (ti < 0)
            return tfs_error_set(err, TFS_EPERMANENT, "target system \"%s\" has no entity \"%s\"",
                                 b->pair->target, em->targets[t]);
        b->targets[t] = tfs_instance_entity_get(b->tgt, (size_t)ti);
    }
    return tfs_lua_load(p->lua, em->script, err);
}

/* Runs (or, with sweep, sweeps) every entity mapping of the pair in declared order. */
static int run_mappings(tfs_pipeline *p, const tfs_stage_ctx *proto, int sweep, tfs_error *err)
{
    const tfs_config_pair *pair = proto->pair;
    int rc = 0;
    for (size_t i = 0; i < pair->n_entities && rc == 0; i++) {
        tfs_stage_ctx b = *proto;
        b.em = &pair->entities[i];
        b.sweeping = sweep;
        /* Resumed runs carry on counting from what was committed. */
        json_t *prev = json_object_get(b.counts, b.em->source);
        if (prev) {
            b.c.read = json_integer_value(json_object_get(prev, "read"));
            b.c.written = json_integer_value(json_object_get(prev, "written"));
            b.c.unchanged = json_integer_value(json_object_get(prev, "unchanged"));
            b.c.deleted = json_integer_value(json_object_get(prev, "deleted"));
            b.c.transform_failed = json_integer_value(json_object_get(prev, "transform_failed"));
            b.c.validate_failed = json_integer_value(json_object_get(prev, "validate_failed"));
            b.c.write_failed = json_integer_value(json_object_get(prev, "write_failed"));
            json_t *t = json_object_get(prev, "timings_ms");
            b.c.read_ms = (double)json_integer_value(json_object_get(t, "read"));
            b.c.transform_ms = (double)json_integer_value(json_object_get(t, "transform"));
            b.c.compare_ms = (double)json_integer_value(json_object_get(t, "compare"));
            b.c.write_ms = (double)json_integer_value(json_object_get(t, "write"));
            b.c.commit_ms = (double)json_integer_value(json_object_get(t, "commit"));
        }
        if ((rc = prepare_mapping(p, &b, err)) == 0)
            rc = sweep ? sweep_entity(p, &b, err) : run_entity(p, &b, err);
        free(b.targets);
    }
    return rc;
}

int tfs_pipeline_execute(tfs_pipeline *p, int64_t run_id, const char *pair_name,
                         const char *mode, const atomic_int *stop, tfs_error *err)
{
    const tfs_config_pair *pair = tfs_config_pair_get(p->cfg, pair_name);
    json_t *counts = NULL;
    int rc;
    if ((rc = tfs_store_ensure(p->store, err)))
        return rc;
    if (!pair) {
        rc = tfs_error_set(err, TFS_EPERMANENT, "pair \"%s\" is no longer in the config",
                           pair_name);
        goto finish;
    }
    json_t *run;
    if ((rc = tfs_store_run_json(p->store, run_id, &run, err)))
        return rc;
    counts = json_deep_copy(json_object_get(run, "counts"));
    char actor[128];
    snprintf(actor, sizeof actor, "%s", json_string_value(json_object_get(run, "actor")));
    json_decref(run);
    int full = strcmp(mode, "full") == 0;
    char today[11];
    {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(today, sizeof today, "%Y-%m-%d", &tm);
    }
    if (!json_is_object(counts)) {
        json_decref(counts);
        counts = json_object();
    }
    if ((rc = tfs_store_run_set_state(p->store, run_id, "running", NULL, NULL, err)))
        goto out;
    tfs_log_info("pipeline", "run %" PRId64 ": %s sync of %s started", run_id, mode, pair_name);
    open_system *src, *tgt;
    if ((rc = get_system(p, pair->source, ROLE_SOURCE, &src, err)) ||
        (rc = get_system(p, pair->target, ROLE_TARGET, &tgt, err)))
        goto finish;
    /* A source with change data is read for changes; one without is read whole and
     * compared with the sync map's hashes, so only new and changed records are written.
     * A full run then sweeps, once every entity is read. */
    tfs_stage_ctx proto = {
        .pair = pair, .run_id = run_id, .actor = actor, .stop = stop, .full = full,
        .changes = !full && (tfs_instance_capabilities(src->inst) & TFS_SDK_CAP_CHANGES),
        .src = src->inst, .lua = p->lua, .read_scratch = &p->scratch,
        .tgt = tgt->inst, .write_store = p->store, .write_scratch = &p->wscratch,
        .commit_store = p->cstore, .commit_scratch = &p->cscratch,
        .commit_scratch2 = &p->cscratch2, .counts = counts};
    memcpy(proto.today, today, sizeof proto.today);
    rc = run_mappings(p, &proto, 0, err);
    if (rc == 0 && full)
        rc = run_mappings(p, &proto, 1, err);
    if (rc == 0)
        trim_changes(p, pair, src->inst);
    if (rc == TFS_ETRANSIENT || rc == TFS_EPERMANENT) {
        /* Drop the instances: a broken connection must not serve the next run. */
        drop_system(src);
        drop_system(tgt);
    }
finish:
    if (rc == TFS_ELIMIT && stop && atomic_load(stop)) {
        tfs_log_info("pipeline", "run %" PRId64 ": stopped; it resumes at the next start-up",
                     run_id);
        goto out;
    }
    {
        tfs_error e2 = {0};
        if (tfs_store_run_set_state(p->store, run_id, rc ? "failed" : "succeeded",
                                    rc ? err->message : NULL, counts, &e2) != 0)
            tfs_log_error("pipeline", "run %" PRId64 ": %s", run_id, e2.message);
    }
    if (rc)
        tfs_log_error("pipeline", "run %" PRId64 " failed: %s", run_id, err->message);
    else
        tfs_log_info("pipeline", "run %" PRId64 ": succeeded", run_id);
out:
    json_decref(counts);
    return rc;
}
