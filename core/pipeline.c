/* core/pipeline.c — executing a run of a pair: its entity mappings in declared order, each
 * read batch by batch through the three-thread hand-off (handoff.h) and the stages of a
 * batch (stage.h), then, for a full run, the sweep of keys the run did not see, and the
 * trim of the source's change log. See pipeline.h.
 */
#include "pipeline_private.h"

#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "handoff.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"
#include "lua_transform.h"
#include "stage.h"
#include "store.h"
#include "store_batch.h"

int tfs_pipeline_new(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_health *health,
                     tfs_pipeline **out, tfs_error *err)
{
    *out = NULL;
    tfs_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    p->cfg = cfg;
    p->plugins = plugins;
    p->health = health;
    p->metrics_slot = tfs_metrics_lua_slot();
    p->retry = (tfs_retry_policy){TFS_RETRY_BASE_MS_DEFAULT,
                                  cfg->retry_max_backoff_ms ? cfg->retry_max_backoff_ms
                                                            : TFS_RETRY_MAX_BACKOFF_MS_DEFAULT};
    int rc = 0;
    for (int r = 0; r < TFS_N_SIDES; r++)
        if (!(p->systems[r] = calloc(cfg->n_systems + 1, sizeof *p->systems[r])))
            rc = TFS_ENOMEM;
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        if (!(p->jobs[i].arena = tfs_arena_new()))
            rc = TFS_ENOMEM;
    if (rc) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = tfs_lua_new(cfg->transform_dir, &cfg->lua, cfg->roll_year, &p->lua, err)))
        goto fail;
    *out = p;
    return 0;
fail:
    tfs_pipeline_free(p);
    return rc;
}

void tfs_pipeline_drop_system(tfs_open_system *s)
{
    tfs_instance_close(s->inst);
    s->inst = NULL;
}

static void outcome_clear(tfs_run_outcome *o)
{
    json_decref(o->result);
    json_decref(o->held_deletes);
    free(o->held_reason);
    *o = (tfs_run_outcome){0};
}

/* What the batches of the last run left: their jobs' references and the stage buffers. */
static void free_batches(tfs_pipeline *p)
{
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        tfs_stage_job_clear(&p->jobs[i]);
    tfs_buf_free(&p->scratch);
    tfs_buf_free(&p->wscratch);
    tfs_buf_free(&p->cscratch);
    tfs_buf_free(&p->cscratch2);
}

void tfs_pipeline_free(tfs_pipeline *p)
{
    if (!p)
        return;
    for (int r = 0; r < TFS_N_SIDES; r++) {
        for (size_t i = 0; i < p->n_systems[r]; i++) {
            tfs_pipeline_drop_system(&p->systems[r][i]);
            free(p->systems[r][i].name);
        }
        free(p->systems[r]);
    }
    tfs_store_close(p->store);
    tfs_store_close(p->cstore);
    tfs_lua_free(p->lua);
    tfs_metrics_lua_slot_release(p->metrics_slot);
    outcome_clear(&p->outcome);
    free_batches(p);
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        tfs_arena_free(p->jobs[i].arena);
    free(p);
}

/* What the pipeline's batches hold now; their arenas are filled on other threads. */
static uint64_t batch_memory(const tfs_pipeline *p)
{
    uint64_t n = 0;
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        n += tfs_arena_held(p->jobs[i].arena);
    return n;
}

void tfs_pipeline_trim(tfs_pipeline *p)
{
    if (!p)
        return;
    free_batches(p);
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        tfs_arena_trim(p->jobs[i].arena);
    tfs_store_trim(p->store);
    tfs_store_trim(p->cstore);
    tfs_lua_collect(p->lua);
    tfs_metrics_lua_memory(p->metrics_slot, tfs_lua_memory(p->lua));
    tfs_metrics_batch_memory(p->metrics_slot, batch_memory(p));
#ifdef __GLIBC__
    /* glibc keeps freed memory in the arena of the thread that freed it, and a run's
     * writer and committer threads are new each entity: without this, the pages of one
     * run sit in arenas the next run's threads may not use, and the process grows by
     * what each run left behind. */
    malloc_trim(0);
#endif
}

void tfs_pipeline_set_lease(tfs_pipeline *p, const tfs_lease *l)
{
    if (l)
        p->lease = *l;
    else
        memset(&p->lease, 0, sizeof p->lease);
}


/* Connects (or reconnects) both state store connections; a failure counts against the
 * store's breaker. */
int tfs_pipeline_store_ready(tfs_pipeline *p, tfs_error *err)
{
    tfs_store **conns[] = {&p->store, &p->cstore};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!*conns[i])
            rc = tfs_store_open(p->cfg->state_conninfo, conns[i], err);
        else
            rc = tfs_store_ensure(*conns[i], err);
    }
    if (rc == TFS_ETRANSIENT)
        tfs_breaker_failure(tfs_health_store_breaker(p->health), err->message,
                            tfs_health_now_ms());
    return rc;
}

struct tfs_store *tfs_pipeline_store(tfs_pipeline *p)
{
    tfs_error err = {0};
    return tfs_pipeline_store_ready(p, &err) == 0 ? p->store : NULL;
}

/* The worker's instance of a system in a role, opened on first use and kept for later
 * runs. */
int tfs_pipeline_get_system(tfs_pipeline *p, const char *name, int role,
                            tfs_open_system **out, tfs_error *err)
{
    tfs_open_system *s = NULL;
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
    int rc = tfs_instance_open(pl, name, cs->settings, p->cfg->dir, &s->inst, err);
    tfs_breaker *br = tfs_health_breaker(p->health, name);
    if (rc == TFS_ETRANSIENT && br)
        tfs_breaker_failure(br, err->message, tfs_health_now_ms());
    return rc;
}

/* ---- one entity mapping through the hand-off ----------------------------------------- */

/* The reading side's position: a copy of the last batch's cursor that outlives its
 * arena, where the next read starts. */
typedef struct reading {
    tfs_pipeline *p;
    tfs_stage_ctx *b;
    unsigned char *cursor; /* malloc'd */
    size_t cursor_len;
} reading;

/* The log context of a stage's thread: the run, pair and entity the batch belongs to (the
 * writer and committer threads are the hand-off's, made for each entity). */
static void stage_context(const tfs_stage_ctx *b)
{
    tfs_log_context_set(b->run_id, b->pair->name, b->em->source);
}

static int on_read(void *ctx, void *slot, int *last, tfs_error *err)
{
    reading *rd = ctx;
    tfs_stage_job *jb = slot;
    stage_context(rd->b);
    int rc = tfs_stage_read(rd->b, jb, rd->cursor, rd->cursor_len, err);
    tfs_metrics_lua_memory(rd->p->metrics_slot, tfs_lua_memory(rd->b->lua));
    tfs_metrics_batch_memory(rd->p->metrics_slot, batch_memory(rd->p));
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

static int on_keys(void *ctx, void *slot, uint64_t **keys, size_t *n)
{
    (void)ctx;
    return tfs_stage_key_hashes(slot, keys, n);
}

static int on_write(void *ctx, void *slot, tfs_error *err)
{
    stage_context(((reading *)ctx)->b);
    return tfs_stage_process(((reading *)ctx)->b, slot, err);
}

static int on_commit(void *ctx, void *slot, tfs_error *err)
{
    stage_context(((reading *)ctx)->b);
    return tfs_stage_commit(((reading *)ctx)->b, slot, err);
}

static void on_release(void *ctx, void *slot)
{
    (void)ctx;
    tfs_stage_job_clear(slot);
}

/* A full run starting an entity asks the source how many records it holds (SDK 1.3
 * cb_estimate) and records it on the run, where the run's status shows it as the
 * entity's estimated_total (null: the source cannot tell). Best effort: progress is not
 * worth failing a run for. */
static void record_estimate(tfs_pipeline *p, tfs_stage_ctx *b)
{
    int64_t count = -1;
    tfs_error e2 = {0};
    int rc = tfs_instance_estimate(b->src, b->src_entity, &count, &e2);
    if (rc && rc != TFS_ENOTFOUND)
        tfs_log_warn("pipeline", "run %" PRId64 ": %s (no estimated_total for %s)", b->run_id,
                     e2.message, b->em->source);
    if (rc)
        count = -1;
    tfs_error e3 = {0};
    if (tfs_store_run_set_estimate(p->store, b->run_id, b->em->source, count, &e3) != 0)
        tfs_log_warn("pipeline", "run %" PRId64 ": %s", b->run_id, e3.message);
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
    if ((rc = tfs_store_batch_cursor_get(p->store, b->pair->name, b->em->source,
                                         b->changes ? "changes" : "full", &cursor_run, &done,
                                         cursor, cursor_len, err)))
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
    if (b->full)
        record_estimate(p, b);
    return tfs_store_batch_full_start(p->store, b->pair->name, b->em->source, b->run_id,
                                      start.cursor_set ? start.cursor : NULL, start.cursor_len,
                                      err);
}

/* Reads and transforms batch after batch on this thread while a writer thread compares and
 * writes the one before and a committer thread commits the one before that, so the source,
 * the Lua runtime, the target and the state store all work at once. */
static int run_entity(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
{
    reading rd = {.p = p, .b = b};
    int skip, rc;
    if ((rc = start_position(p, b, &rd.cursor, &rd.cursor_len, &skip, err)) || skip)
        goto out;
    if ((rc = tfs_store_ensure(p->cstore, err)))
        goto out;
    b->commit_store = p->cstore;
    tfs_handoff_stages st = {.ctx = &rd, .read_batch = on_read, .write_batch = on_write,
                             .commit_batch = on_commit, .release_slot = on_release,
                             /* Full reads never repeat a key: they always overlap. */
                             .batch_keys = b->changes ? on_keys : NULL};
    void *slots[TFS_PIPELINE_SLOTS];
    for (int i = 0; i < TFS_PIPELINE_SLOTS; i++)
        slots[i] = &p->jobs[i];
    rc = tfs_handoff_run(&st, slots, TFS_PIPELINE_SLOTS, b->stop, err);
out:
    tfs_log_context_set(b->run_id, b->pair->name, NULL); /* the entity is done */
    free(rd.cursor);
    return rc;
}

/* After a run has read every entity (and the guard let its deletions through), batch by
 * batch on this thread: a full run's vanished keys (those its sync map still holds but
 * the run did not see) get the pair's delete action; an incremental run's set-aside
 * deletions are applied, each batch taking its keys out of the set. */
static int sweep_entity(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
{
    /* The keys of a page live in a second arena: the job's is reset when it takes them.
     * The last key of a page, where the next starts, is the job's copy. */
    tfs_stage_job *jb = &p->jobs[0];
    tfs_arena *ka = p->jobs[1].arena;
    tfs_stage_job_clear(&p->jobs[1]);
    const char *after = NULL;
    int rc = 0;
    b->commit_store = p->store;
    for (;;) {
        const char **keys;
        size_t n;
        tfs_arena_reset(ka);
        if (b->full)
            rc = tfs_store_batch_sweep_keys(p->store, b->pair->name, b->em->source, b->run_id,
                                            after, b->pair->batch_size, ka, &keys, &n, err);
        else
            rc = tfs_store_batch_pending_keys(p->store, b->run_id, b->em->source, after,
                                              b->pair->batch_size, ka, &keys, &n, err);
        if (rc || n == 0)
            break;
        if ((rc = tfs_stage_of_keys(b, jb, keys, n, err)))
            break;
        after = jb->rs[n - 1].key;
        if (!(rc = tfs_stage_process(b, jb, err)))
            rc = tfs_stage_commit(b, jb, err);
        if (rc)
            break;
        tfs_stage_job_clear(jb);
    }
    tfs_stage_job_clear(jb);
    return rc;
}

/* Lets the source forget the changes every pair reading it is past (its change log). */
static void trim_changes(tfs_pipeline *p, const tfs_config_pair *pair, tfs_instance *src)
{
    if (!(tfs_instance_capabilities(src) & TFS_SDK_CAP_CHANGES))
        return;
    tfs_arena *a = p->jobs[0].arena; /* every batch is done with */
    tfs_stage_job_clear(&p->jobs[0]);
    tfs_arena_reset(a);
    const char **readers = tfs_arena_calloc(a, p->cfg->n_pairs + 1, sizeof *readers);
    size_t n_readers = 0;
    for (size_t i = 0; readers && i < p->cfg->n_pairs; i++)
        if (strcmp(p->cfg->pairs[i].source, pair->source) == 0)
            readers[n_readers++] = p->cfg->pairs[i].name;
    const void **cursors;
    size_t *lens, n;
    tfs_error err = {0};
    if (!readers ||
        tfs_store_batch_checkpoints(p->store, readers, n_readers, a, &cursors, &lens, &n,
                                    &err) != 0)
        return;
    /* The checkpoints read may be in commits not yet flushed (async_commit): the source
     * forgets changes only once a crash of the store can no longer take them back. */
    if (n && tfs_store_flush(p->store, &err) != 0) {
        tfs_log_warn("pipeline", "change log not trimmed: %s", err.message);
        return;
    }
    if (n && tfs_instance_changes_trim(src, (const void *const *)cursors, lens, n, &err) != 0)
        tfs_log_warn("pipeline", "%s", err.message);
}

int tfs_pipeline_prepare_mapping(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err)
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
    b->targets = calloc(em->n_targets + 1, sizeof *b->targets);
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

/* The run's counts per entity: what it committed before (a resumed run carries on
 * counting from there), then the pair's entities it has not counted yet. */
static int run_counts(const tfs_config_pair *pair, tfs_store_run *run, tfs_error *err)
{
    tfs_store_counts *all = realloc(run->counts,
                                    (run->n_counts + pair->n_entities + 1) * sizeof *all);
    if (!all)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    run->counts = all;
    for (size_t i = 0; i < pair->n_entities; i++) {
        const char *name = pair->entities[i].source;
        size_t k = 0;
        while (k < run->n_counts && strcmp(all[k].entity, name) != 0)
            k++;
        if (k < run->n_counts)
            continue;
        all[k] = (tfs_store_counts){.started = 0};
        snprintf(all[k].entity, sizeof all[k].entity, "%s", name);
        run->n_counts++;
    }
    return 0;
}

tfs_store_counts *tfs_pipeline_counts_of(tfs_store_run *run, const char *entity)
{
    for (size_t k = 0; k < run->n_counts; k++)
        if (strcmp(run->counts[k].entity, entity) == 0)
            return &run->counts[k];
    return NULL;
}

/* Runs (or, with sweep, sweeps) every entity mapping of the pair in declared order. */
static int run_mappings(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                        int sweep, tfs_error *err)
{
    const tfs_config_pair *pair = proto->pair;
    int rc = 0;
    for (size_t i = 0; i < pair->n_entities && rc == 0; i++) {
        tfs_stage_ctx b = *proto;
        b.em = &pair->entities[i];
        b.sweeping = sweep;
        b.c = tfs_pipeline_counts_of(run, b.em->source);
        b.counts = run->counts;
        b.n_counts = run->n_counts;
        if ((rc = tfs_pipeline_prepare_mapping(p, &b, err)) == 0)
            rc = sweep ? sweep_entity(p, &b, err) : run_entity(p, &b, err);
        free(b.targets);
    }
    return rc;
}

/* ---- the guards and the outcome -------------------------------------------------- */

static int64_t failed_of(const tfs_store_counts *c)
{
    return c->read_failed + c->transform_failed + c->validate_failed + c->write_failed;
}

/* Past the pair's max_failed_ratio of an entity's records read failing, the run fails
 * once its reads end, before any deletion: its writes and dead letters stay, its sweep
 * or set-aside deletions are not applied. Per entity, so that a small entity failing
 * whole is not hidden by a large one that went well. */
static int check_failures(const tfs_config_pair *pair, const tfs_store_run *run,
                          tfs_error *err)
{
    for (size_t k = 0; k < run->n_counts; k++) {
        const tfs_store_counts *c = &run->counts[k];
        int64_t failed = failed_of(c);
        if (c->read == 0 || (double)failed <= pair->max_failed_ratio * (double)c->read)
            continue;
        tfs_error_set(err, TFS_EPERMANENT,
                      "%" PRId64 " of the %" PRId64 " %s records read failed (%.1f%%), more "
                      "than the pair's max_failed_ratio (%.1f%%): the run applied no deletion",
                      failed, c->read, c->entity, 100.0 * (double)failed / (double)c->read,
                      100.0 * pair->max_failed_ratio);
        tfs_error_hint(err, "GET /dead-letters?run_id=%" PRId64 " lists the reasons; fix the "
                       "script or the data and replay them, or raise the pair's "
                       "max_failed_ratio", run->run_id);
        return TFS_EPERMANENT;
    }
    return 0;
}

/* The mass-deletion guard, once the reads end: when an entity's deletions would be more
 * than the pair's max_delete_ratio of its live synced keys, nothing is deleted and the
 * run is held (*held) with the count of every entity's deletions, until an operator
 * confirms that total (confirmed_deletes: a confirmed run goes on, and so does one that
 * resumes after a crash in its deletions, which only lowers the count). */
static int guard_deletions(tfs_pipeline *p, const tfs_stage_ctx *proto,
                           const tfs_store_run *run, int *held, tfs_error *err)
{
    const tfs_config_pair *pair = proto->pair;
    *held = 0;
    json_t *deletes = json_object();
    tfs_buf why = TFS_BUF_INIT;
    int64_t total = 0;
    int rc = deletes ? 0 : tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < pair->n_entities; i++) {
        const char *entity = pair->entities[i].source;
        int64_t would, synced;
        if ((rc = tfs_store_batch_deletion_counts(p->store, pair->name, entity, run->run_id,
                                                  proto->full, &would, &synced, err)))
            break;
        if (would == 0)
            continue;
        json_object_set_new(deletes, entity, json_integer(would));
        total += would;
        if ((double)would > pair->max_delete_ratio * (double)synced)
            tfs_buf_printf(&why, "%s%s: %" PRId64 " of %" PRId64 " synced keys (%.1f%%)",
                           why.len ? ", " : "", entity, would, synced,
                           100.0 * (double)would / (double)(synced ? synced : 1));
    }
    if (rc == 0 && why.oom)
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if (rc || why.len == 0 ||
        (run->confirmed_deletes >= 0 && total <= run->confirmed_deletes)) {
        json_decref(deletes);
        tfs_buf_free(&why);
        return rc;
    }
    tfs_buf msg = TFS_BUF_INIT;
    tfs_buf_printf(&msg, "the %s would delete more than the pair's max_delete_ratio (%.1f%%) "
                   "of an entity's synced keys (%s); nothing was deleted: confirm the %" PRId64
                   " deletions with POST /sync/runs/%" PRId64 "/confirm {\"deletes\": %" PRId64
                   "} (tfsync confirm %" PRId64 " %" PRId64 "), or cancel the run",
                   proto->full ? "full run's sweep" : "incremental run",
                   100.0 * pair->max_delete_ratio, tfs_buf_str(&why), total, run->run_id,
                   total, run->run_id, total);
    tfs_buf_free(&why);
    if (msg.oom || !(p->outcome.held_reason = strdup(tfs_buf_str(&msg)))) {
        tfs_buf_free(&msg);
        json_decref(deletes);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    tfs_buf_free(&msg);
    p->outcome.held_deletes = deletes;
    p->outcome.state = "held";
    *held = 1;
    return 0;
}

/* Succeeded, or partial when records of the run are dead letters or parked conflicts. */
static void settle_outcome(tfs_pipeline *p, const tfs_store_run *run)
{
    for (size_t k = 0; !p->outcome.state && k < run->n_counts; k++)
        if (failed_of(&run->counts[k]) + run->counts[k].conflicts > 0)
            p->outcome.state = "partial";
}

/* A sync: every entity read (not again for a confirmed incremental run, whose reads
 * ended before it was held; a full run skips the entities it read already), the failure
 * ratio, the deletion guard, then the deletions (a full run's sweep, an incremental
 * run's set-aside ones) and the outcome. */
static int run_sync(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                    tfs_error *err)
{
    int rc = 0, held = 0;
    if (proto->full || run->confirmed_deletes < 0)
        rc = run_mappings(p, proto, run, 0, err);
    if (rc == 0)
        rc = check_failures(proto->pair, run, err);
    /* A source of deltas only (TFS_SDK_CAP_DELTAS) is never swept: a key a full run did
     * not read is not gone, so neither the sweep nor its guard runs. */
    int sweeps = proto->full && !(tfs_instance_capabilities(proto->src) & TFS_SDK_CAP_DELTAS);
    if (rc == 0 && (sweeps || proto->changes)) {
        rc = guard_deletions(p, proto, run, &held, err);
        if (rc == 0 && !held)
            rc = run_mappings(p, proto, run, 1, err);
    }
    if (rc == 0 && !held)
        settle_outcome(p, run);
    return rc;
}

/* A run that ended without applying its set-aside deletions forgets them (best effort:
 * nothing reads a finished run's). */
static void drop_set_aside(tfs_pipeline *p, int64_t run_id)
{
    tfs_error e2 = {0};
    if (p->store && tfs_store_batch_pending_drop(p->store, run_id, &e2) != 0)
        tfs_log_debug("pipeline", "run %" PRId64 ": %s", run_id, e2.message);
}

/* Writes a run's final state, again and again (reconnecting, backing off) until the store
 * answers or *stop is set: a run that ends leaves a record. 0, or TFS_ELIMIT when stopped. */
static int record_end(tfs_pipeline *p, int64_t run_id, const char *state, const char *text,
                      const tfs_store_run *run, const atomic_int *stop)
{
    uint64_t rng = tfs_retry_seed();
    for (unsigned attempt = 1;; attempt++) {
        tfs_error e2 = {0};
        int rc = tfs_pipeline_store_ready(p, &e2);
        /* No counts when none were read (the pair is gone): the stored ones stay. */
        if (rc == 0 && strcmp(state, "held") == 0)
            rc = tfs_store_run_hold(p->store, run_id, p->outcome.held_reason,
                                    p->outcome.held_deletes, run->counts, run->n_counts, &e2);
        else if (rc == 0)
            rc = tfs_store_run_set_state(p->store, run_id, state, text,
                                         run->counts ? run->counts : NULL, run->n_counts, &e2);
        if (rc == 0) {
            tfs_breaker_success(tfs_health_store_breaker(p->health), tfs_health_now_ms());
            return 0;
        }
        if (rc != TFS_ETRANSIENT) {
            tfs_log_error("pipeline", "run %" PRId64 ": could not record it %s: %s", run_id,
                          state, e2.message);
            return rc;
        }
        if (attempt == 1)
            tfs_log_warn("pipeline", "run %" PRId64 ": %s; recording it %s once the state "
                         "store answers", run_id, e2.message, state);
        if (tfs_retry_sleep(tfs_retry_backoff_ms(&p->retry, attempt, &rng), stop) < 0)
            return TFS_ELIMIT;
    }
}

/* Writes a job's answer, as record_end writes the state: until the store answers. */
static void record_result(tfs_pipeline *p, int64_t run_id, const json_t *result,
                          const atomic_int *stop)
{
    uint64_t rng = tfs_retry_seed();
    for (unsigned attempt = 1;; attempt++) {
        tfs_error e2 = {0};
        int rc = tfs_pipeline_store_ready(p, &e2);
        if (rc == 0 && (rc = tfs_store_run_set_result(p->store, run_id, result, &e2)) == 0)
            return;
        if (rc != TFS_ETRANSIENT ||
            tfs_retry_sleep(tfs_retry_backoff_ms(&p->retry, attempt, &rng), stop) < 0) {
            tfs_log_error("pipeline", "run %" PRId64 ": could not record its answer: %s",
                          run_id, e2.message);
            return;
        }
    }
}

/* Tells the source and the target instances the run used that it has ended (SDK 1.3
 * cb_run_end), once the store has committed its final state, so a file target may publish
 * its outbox and a file source archive its inbox. A failure is logged and recorded on the
 * run (run_end_errors); the outcome stays. */
static void end_run(tfs_pipeline *p, int64_t run_id, const char *pair, const char *mode,
                    const char *state, tfs_open_system *src, tfs_open_system *tgt)
{
    static const char *const states[] = {"succeeded", "partial", "failed", "cancelled"};
    tfs_sdk_run_end end = {.struct_size = sizeof end, .run_id = run_id, .pair = pair,
                           .mode = mode, .outcome = TFS_SDK_RUN_FAILED};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcmp(state, states[i]) == 0)
            end.outcome = (tfs_sdk_run_outcome)i;
    tfs_open_system *used[] = {src, tgt};
    json_t *errors = NULL;
    /* The batches committed without waiting for the flush (async_commit), and a server
     * may say synchronous_commit = off for every commit: a plugin acts on the outcome
     * (archives an inbox, publishes an outbox) only once a crash cannot take it back. Not
     * told, it does that work at its next run's end. */
    tfs_error e1 = {0};
    if ((src || tgt) && tfs_store_flush(p->store, &e1) != 0) {
        tfs_log_warn("pipeline", "run %" PRId64 ": its systems are not told it ended: %s",
                     run_id, e1.message);
        return;
    }
    for (int role = 0; role < 2; role++) {
        if (!used[role] || !used[role]->inst)
            continue;
        end.role = role == 0 ? TFS_SDK_RUN_AS_SOURCE : TFS_SDK_RUN_AS_TARGET;
        tfs_error e2 = {0};
        if (tfs_instance_run_end(used[role]->inst, &end, &e2) == 0)
            continue;
        tfs_log_error("pipeline", "run %" PRId64 ": %s (as the run's %s; its outcome stays %s)",
                      run_id, e2.message, role == 0 ? "source" : "target", state);
        if (!errors)
            errors = json_array();
        json_array_append_new(errors, json_pack("{ssssss?}", "system",
                                                tfs_instance_system(used[role]->inst), "role",
                                                role == 0 ? "source" : "target", "error",
                                                e2.message));
    }
    tfs_error e3 = {0};
    if (errors && (tfs_pipeline_store_ready(p, &e3) != 0 ||
                   tfs_store_run_set_run_end_errors(p->store, run_id, errors, &e3) != 0))
        tfs_log_warn("pipeline", "run %" PRId64 ": could not record its run-end errors: %s",
                     run_id, e3.message);
    json_decref(errors);
}

/* A run's end in the metrics: its state and time, and the pair's open conflicts and dead
 * letters as the store counts them now (refreshed here, once a run, rather than by a query
 * per scrape). */
static void count_end(tfs_pipeline *p, const char *pair, const char *mode, const char *state,
                      int64_t started_ms)
{
    tfs_metrics_run_ended(pair, mode, state,
                          (double)(tfs_health_now_ms() - started_ms) / 1000.0);
    int64_t conflicts = 0, dead = 0;
    tfs_error e2 = {0};
    if (tfs_pipeline_store_ready(p, &e2) == 0 &&
        tfs_store_pair_open_counts(p->store, pair, &conflicts, &dead, &e2) == 0)
        tfs_metrics_pair_open(pair, conflicts, dead);
    else
        tfs_log_debug("pipeline", "open conflicts and dead letters not counted: %s",
                      e2.message);
}

/* Kept whole: every way out of a run (done, failed, cancelled, stopped, waiting, its
 * lease lost) is decided here, in one place, so that each records exactly one end. */
int tfs_pipeline_execute(tfs_pipeline *p, int64_t run_id, const char *pair_name,
                         const char *mode, const atomic_int *stop, const atomic_int *cancel,
                         int *ended_rc, tfs_error *err)
{
    const tfs_config_pair *pair = tfs_config_pair_get(p->cfg, pair_name);
    tfs_store_run run = {0};
    tfs_open_system *src = NULL, *tgt = NULL;
    int rc, cancelled = 0, drop = 0;
    if (ended_rc)
        *ended_rc = 0;
    outcome_clear(&p->outcome);
    /* Every line this thread writes for the run carries it (JSON logs). */
    tfs_log_context_set(run_id, pair_name, NULL);
    int64_t started_ms = tfs_health_now_ms();
    if ((rc = tfs_pipeline_store_ready(p, err)))
        return rc == TFS_ETRANSIENT ? rc : TFS_ETRANSIENT;
    if (!pair) {
        rc = tfs_error_set(err, TFS_EPERMANENT, "pair \"%s\" is no longer in the config",
                           pair_name);
        goto finish;
    }
    if ((rc = tfs_store_run_get(p->store, run_id, &run, err)) ||
        (rc = tfs_store_run_cancel_requested(p->store, run_id, &cancelled, err)))
        goto out; /* transient: it waits; not found: nothing to record */
    if (cancelled)
        goto finish;
    if ((rc = run_counts(pair, &run, err)))
        goto finish;
    int full = strcmp(mode, "full") == 0;
    char today[11];
    {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(today, sizeof today, "%Y-%m-%d", &tm);
    }
    if ((rc = tfs_store_run_set_state(p->store, run_id, "running", NULL, NULL, 0, err)))
        goto out;
    tfs_log_info("pipeline", "run %" PRId64 ": %s sync of %s running", run_id, mode, pair_name);
    if ((rc = tfs_pipeline_get_system(p, pair->source, TFS_SIDE_SOURCE, &src, err)) ||
        (rc = tfs_pipeline_get_system(p, pair->target, TFS_SIDE_TARGET, &tgt, err)))
        goto dropped;
    /* A source with change data is read for changes; one without is read whole and
     * compared with the sync map's hashes, so only new and changed records are written.
     * A full run then sweeps, once every entity is read. */
    tfs_stage_ctx proto = {
        .pair = pair, .run_id = run_id, .actor = run.actor, .stop = stop, .full = full,
        .lease = &p->lease,
        .changes = !full && (tfs_instance_capabilities(src->inst) & TFS_SDK_CAP_CHANGES),
        .src = src->inst, .lua = p->lua, .read_scratch = &p->scratch,
        .tgt = tgt->inst, .write_store = p->store, .write_scratch = &p->wscratch,
        .commit_store = p->cstore, .commit_scratch = &p->cscratch,
        .commit_scratch2 = &p->cscratch2,
        .src_breaker = tfs_health_breaker(p->health, pair->source),
        .tgt_breaker = tfs_health_breaker(p->health, pair->target),
        .store_breaker = tfs_health_store_breaker(p->health), .retry = &p->retry};
    memcpy(proto.today, today, sizeof proto.today);
    if (strcmp(mode, "replay") == 0) {
        rc = tfs_pipeline_replay(p, &proto, &run, err);
    } else if (strcmp(mode, "resolve") == 0) {
        rc = tfs_pipeline_resolve(p, &proto, &run, err);
    } else if (strcmp(mode, "validate") == 0) {
        rc = tfs_pipeline_validate(p, &proto, &run, err);
    } else {
        rc = run_sync(p, &proto, &run, err);
        if (rc == 0)
            trim_changes(p, pair, src->inst);
    }
dropped:
    /* Drop the instances once the run is over (after cb_run_end): a broken connection
     * must not serve the next run. */
    drop = rc == TFS_ETRANSIENT || rc == TFS_EPERMANENT;
    if (rc == TFS_ELIMIT && cancel && atomic_load(cancel)) {
        cancelled = 1;
        goto finish;
    }
    if (rc == TFS_ELIMIT && stop && atomic_load(stop)) {
        tfs_log_info("pipeline", "run %" PRId64 ": stopped; it resumes at the next start-up",
                     run_id);
        goto out;
    }
    if (rc == TFS_ETRANSIENT)
        goto out; /* the caller records it waiting */
finish:
    if (p->lease.epoch && tfs_lease_check(p->store, &p->lease, NULL) == TFS_ECONFLICT) {
        /* Another node took the run over: its state is theirs to record. */
        tfs_log_warn("pipeline", "run %" PRId64 ": node \"%s\" lost its lease; the node that "
                     "took it over carries the run on (%s)", run_id, p->lease.node,
                     rc ? err->message : "done here");
        goto out;
    }
    {
        const char *state = cancelled ? "cancelled"
                            : rc      ? "failed"
                            : p->outcome.state ? p->outcome.state
                                               : "succeeded";
        /* A job's answer first: whoever waits on the run reads it once the state ends. */
        if (p->outcome.result && !cancelled)
            record_result(p, run_id, p->outcome.result, stop);
        if (ended_rc)
            *ended_rc = cancelled ? 0 : rc;
        if (cancelled || rc)
            drop_set_aside(p, run_id);
        /* The metrics first: whoever sees the run ended in the API finds its end (and the
         * dead letters it left) in /metrics too. */
        if (strcmp(state, "held") != 0)
            count_end(p, pair_name, mode, state, started_ms);
        if (record_end(p, run_id, state, rc && !cancelled ? err->message : NULL, &run, stop) ==
            TFS_ELIMIT) {
            rc = tfs_error_set(err, TFS_ELIMIT, "stopped while recording the run %s", state);
            goto out;
        }
        if (strcmp(state, "held") != 0)
            end_run(p, run_id, pair_name, mode, state, src, tgt);
        if (pair)
            tfs_health_poke(p->health, pair->source); /* its lag changed */
        if (cancelled)
            tfs_log_info("pipeline", "run %" PRId64 ": cancelled", run_id);
        else if (rc)
            tfs_log_error("pipeline", "run %" PRId64 ": failed: %s", run_id, err->message);
        else if (p->outcome.held_reason)
            tfs_log_warn("pipeline", "run %" PRId64 ": held: %s", run_id,
                         p->outcome.held_reason);
        else
            tfs_log_info("pipeline", "run %" PRId64 ": %s", run_id, state);
        rc = 0;
    }
out:
    if (drop) {
        if (src)
            tfs_pipeline_drop_system(src);
        if (tgt)
            tfs_pipeline_drop_system(tgt);
    }
    tfs_store_run_clear(&run);
    tfs_log_context_set(run_id, pair_name, NULL); /* the caller's lines are the run's too */
    return rc;
}
