/* core/pipeline.c — executing a run batch by batch; see pipeline.h. */
#include "pipeline.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "audit_diff.h"
#include "buf.h"
#include "canonical.h"
#include "log.h"
#include "lua_transform.h"
#include "record.h"
#include "store.h"
#include "validator.h"

#define MAX_ATTEMPTS 6
#define N_ARENAS 4 /* batches in flight: read, queued, written, committed */

typedef struct open_system {
    char *name;
    tfs_instance *inst;
} open_system;

struct tfs_pipeline {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    tfs_store *store;
    tfs_lua *lua;
    /* A batch is read and transformed on the run's thread while the one before it is
     * compared, written and committed on a writer thread; each batch in flight owns an
     * arena. */
    tfs_arena *arenas[N_ARENAS];
    tfs_buf scratch;              /* the reading side's */
    tfs_buf wscratch;             /* the writing side's */
    tfs_buf cscratch, cscratch2;  /* the committing side's */
    tfs_store *cstore;            /* the committing side's own state store connection */
    open_system *systems;
    size_t n_systems;
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
    p->systems = calloc(cfg->n_systems + 1, sizeof *p->systems);
    int rc;
    if (!p->systems) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < N_ARENAS; i++) {
        if (!(p->arenas[i] = tfs_arena_new())) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            goto fail;
        }
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
    for (size_t i = 0; i < p->n_systems; i++) {
        drop_system(&p->systems[i]);
        free(p->systems[i].name);
    }
    free(p->systems);
    tfs_store_close(p->store);
    tfs_lua_free(p->lua);
    for (int i = 0; i < N_ARENAS; i++)
        tfs_arena_free(p->arenas[i]);
    tfs_buf_free(&p->scratch);
    tfs_buf_free(&p->wscratch);
    tfs_buf_free(&p->cscratch);
    tfs_buf_free(&p->cscratch2);
    tfs_store_close(p->cstore);
    free(p);
}

struct tfs_store *tfs_pipeline_store(tfs_pipeline *p)
{
    return p->store;
}

/* The worker's instance of a system, opened on first use and kept for later runs. */
static int get_system(tfs_pipeline *p, const char *name, open_system **out, tfs_error *err)
{
    open_system *s = NULL;
    for (size_t i = 0; i < p->n_systems; i++)
        if (strcmp(p->systems[i].name, name) == 0)
            s = &p->systems[i];
    if (!s) {
        s = &p->systems[p->n_systems];
        if (!(s->name = strdup(name)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        p->n_systems++;
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

/* Sleeps before attempt `attempt` (1-based): exponential backoff with full jitter, capped,
 * in slices so a stop request is honoured quickly. Returns 0, or -1 when stopped. */
static int backoff(int attempt, const atomic_int *stop)
{
    long cap_ms = 100L << (attempt < 7 ? attempt : 7);
    if (cap_ms > 10000)
        cap_ms = 10000;
    /* Both sides of a run back off, so the jitter's seed is local, not shared. */
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    unsigned rng = (unsigned)seed.tv_nsec ^ (unsigned)(uintptr_t)&seed;
    long ms = cap_ms / 2 + (long)(rand_r(&rng) % (unsigned)(cap_ms / 2 + 1));
    while (ms > 0) {
        if (stop && atomic_load(stop))
            return -1;
        long slice = ms > 100 ? 100 : ms;
        struct timespec ts = {0, slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return 0;
}

typedef struct entity_counts {
    json_int_t read, transform_failed, validate_failed, write_failed, written, unchanged,
        deleted;
    /* Where the time goes, per stage, so an operator sees which side is slow. */
    double read_ms, transform_ms, compare_ms, write_ms, commit_ms;
} entity_counts;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void counts_put(json_t *counts, const char *entity, const entity_counts *c)
{
    json_t *o = json_pack("{sIsIsIsIsIsIsIsI}", "read", c->read, "written", c->written,
                          "unchanged", c->unchanged, "deleted", c->deleted, "failed",
                          c->transform_failed + c->validate_failed + c->write_failed,
                          "transform_failed", c->transform_failed, "validate_failed",
                          c->validate_failed, "write_failed", c->write_failed);
    if (!o)
        return;
    json_t *t = json_pack("{sIsIsIsIsI}", "read", (json_int_t)c->read_ms, "transform",
                          (json_int_t)c->transform_ms, "compare", (json_int_t)c->compare_ms,
                          "write", (json_int_t)c->write_ms, "commit", (json_int_t)c->commit_ms);
    if (t)
        json_object_set_new(o, "timings_ms", t);
    json_object_set_new(counts, entity, o);
}

/* What the pipeline knows of one source record while its batch is processed. */
typedef struct rec_state {
    const char *key;
    tfs_lua_output out;
    uint64_t src_hash, tgt_hash;
    json_t *reasons; /* set: failed */
    const char *stage;
    int write;   /* needs writing */
    int is_new;  /* no sync map row yet */
    int deleted; /* gone from the source: the pair's delete action applies */
    tfs_sdk_op_kind kind; /* of the operations in out */
    char *old;   /* the sync map's last written target record (JSON), malloc'd */
    tfs_record **orphans; /* last written target records the mapping no longer produces */
    size_t n_orphans;
} rec_state;

typedef struct batch_ctx {
    tfs_pipeline *p;
    const tfs_config_pair *pair;
    const tfs_config_entity *em;
    int64_t run_id;
    tfs_instance *src, *tgt;
    size_t src_entity;
    const tfs_sdk_entity **targets; /* target entities of the mapping, in the target instance */
    size_t n_targets;
    entity_counts c; /* the writing side's running totals */
    json_t *counts;
    const atomic_int *stop;
    int changes;       /* reading changes (an incremental run), else everything */
    int full;          /* a full run: mark what it sees, sweep what it did not */
    const char *actor; /* for the audit trail */
    int sweeping;      /* applying deletions of vanished keys after a full run */
    char today[11];    /* a deactivation's date, fixed when the run starts */
} batch_ctx;

/* One batch on its way from the reading side to the writing side. */
typedef struct job {
    tfs_arena *arena;
    tfs_batch batch;
    rec_state *rs;
    entity_counts delta; /* what the reading side counted for this batch */
    uint64_t *keys;      /* hashes of its source keys, sorted (reading changes only) */
    size_t n_keys;
} job;

/* The hand-offs between the three sides of a run (reading, writing, committing): at
 * most N_ARENAS batches in flight. */
typedef struct handoff {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *to_write[N_ARENAS];
    size_t w_head, w_n;
    job *to_commit[N_ARENAS];
    size_t c_head, c_n;
    job *committing; /* the batch the committing side holds */
    tfs_arena *free_arenas[N_ARENAS];
    size_t n_free;
    int reader_done, writer_done;
    int rc; /* the first failure of the writing or committing side */
    tfs_error err;
    batch_ctx *b;
} handoff;

static void fail_rec(rec_state *r, const char *stage, const char *msg)
{
    if (!r->reasons)
        r->reasons = json_array();
    r->stage = stage;
    if (msg)
        json_array_append_new(r->reasons, json_string(msg));
}

/* Transform and validate every record, and hash what would be written. Counts go to
 * delta: this runs on the reading side. */
static int transform_batch(batch_ctx *b, tfs_batch *batch, rec_state *rs, tfs_arena *a,
                           entity_counts *delta)
{
    tfs_pipeline *p = b->p;
    for (size_t i = 0; i < batch->n; i++) {
        rec_state *r = &rs[i];
        const tfs_record *src = batch->recs[i];
        if (!(r->key = tfs_record_key(a, src)))
            return TFS_ENOMEM;
        if (src->deleted) {
            r->deleted = 1; /* nothing to map: the writing side works from the sync map */
            continue;
        }
        r->src_hash = tfs_hash_records(&p->scratch, &src, 1);
        tfs_error e = {0};
        if (tfs_lua_map(p->lua, b->em->script, src, r->key, b->targets, b->n_targets, a,
                        &r->out, &e) != 0) {
            fail_rec(r, "transform", e.message);
            if (e.detail[0]) /* the Lua traceback */
                json_array_append_new(r->reasons, json_string(e.detail));
            delta->transform_failed++;
            continue;
        }
        for (size_t j = 0; j < r->out.n; j++) {
            if (!r->reasons)
                r->reasons = json_array();
            int probs = tfs_validate_record(r->out.recs[j], r->reasons);
            if (probs < 0)
                return TFS_ENOMEM;
            if (probs > 0)
                r->stage = "validate";
        }
        if (r->stage) {
            delta->validate_failed++;
            continue;
        }
        json_decref(r->reasons);
        r->reasons = NULL;
        r->tgt_hash = tfs_hash_records(&p->scratch, (const tfs_record *const *)r->out.recs,
                                       r->out.n);
    }
    return 0;
}

/* The target records a deletion acts on, from the sync map's last written ones: keys only
 * to delete them, or whole with the deactivate field set to deactivate them. */
static int plan_deletion(batch_ctx *b, rec_state *r, tfs_arena *a, const char *stored_hash,
                         entity_counts *delta)
{
    json_t *old = json_loads(r->old, 0, NULL);
    if (!old)
        return TFS_ENOMEM;
    size_t n = 0, cap = 0;
    const char *ename;
    json_t *list;
    json_object_foreach(old, ename, list) cap += json_array_size(list);
    r->out.recs = tfs_arena_calloc(a, cap ? cap : 1, sizeof *r->out.recs);
    int rc = r->out.recs ? 0 : TFS_ENOMEM;
    int deactivate = b->pair->delete_action == TFS_DELETE_DEACTIVATE;
    json_object_foreach(old, ename, list) {
        int ti = tfs_instance_entity(b->tgt, ename);
        if (ti < 0 || rc)
            continue; /* an entity the target no longer has: nothing to act on */
        const tfs_sdk_entity *e = tfs_instance_entity_get(b->tgt, (size_t)ti);
        size_t k;
        json_t *obj;
        json_array_foreach(list, k, obj) {
            tfs_record *t = tfs_record_from_json(a, e, obj);
            if (!t) {
                rc = TFS_ENOMEM;
                break;
            }
            if (deactivate) {
                int f = tfs_entity_field_index(e, b->pair->deactivate_field);
                if (f < 0) {
                    if (!r->stage)
                        delta->write_failed++;
                    fail_rec(r, "write", NULL);
                    char msg[256];
                    snprintf(msg, sizeof msg, "cannot deactivate %s: it has no field \"%s\"; "
                             "set the pair's deactivate_field", e->name,
                             b->pair->deactivate_field);
                    json_array_append_new(r->reasons, json_string(msg));
                    continue;
                }
                if (t->values[f].type == TFS_SDK_NULL &&
                    tfs_record_set_text(t, (size_t)f, TFS_SDK_DATE, b->today, 10) < 0) {
                    rc = TFS_ENOMEM;
                    break;
                }
            }
            r->out.recs[n++] = t;
        }
    }
    json_decref(old);
    r->out.n = n;
    r->kind = deactivate ? TFS_SDK_OP_UPSERT : TFS_SDK_OP_DELETE;
    if (rc || r->stage)
        return rc;
    if (deactivate) {
        /* Already deactivated (a second sweep): nothing to write. */
        char hex[17];
        r->tgt_hash = tfs_hash_records(&b->p->wscratch, (const tfs_record *const *)r->out.recs,
                                       r->out.n);
        tfs_hash_hex(r->tgt_hash, hex);
        r->write = !stored_hash || strcmp(stored_hash, hex) != 0;
    } else {
        r->write = 1;
    }
    return 0;
}

/* The target records last written for r that its mapping no longer produces (a sale now
 * confidential, a one-to-many mapping with one record fewer): they are deleted with the
 * update, so nothing stale stays in the target. */
static int find_orphans(batch_ctx *b, rec_state *r, tfs_arena *a)
{
    json_t *old = json_loads(r->old, 0, NULL);
    if (!old)
        return TFS_ENOMEM;
    size_t cap = 0;
    const char *ename;
    json_t *list;
    json_object_foreach(old, ename, list) cap += json_array_size(list);
    r->orphans = tfs_arena_calloc(a, cap ? cap : 1, sizeof *r->orphans);
    int rc = r->orphans ? 0 : TFS_ENOMEM;
    json_object_foreach(old, ename, list) {
        int ti = tfs_instance_entity(b->tgt, ename);
        if (ti < 0 || rc)
            continue;
        const tfs_sdk_entity *e = tfs_instance_entity_get(b->tgt, (size_t)ti);
        size_t k;
        json_t *obj;
        json_array_foreach(list, k, obj) {
            tfs_record *t = tfs_record_from_json(a, e, obj);
            const char *okey = t ? tfs_record_key(a, t) : NULL;
            if (!okey) {
                rc = TFS_ENOMEM;
                break;
            }
            int kept = 0;
            for (size_t j = 0; j < r->out.n && !kept; j++) {
                const tfs_record *n = r->out.recs[j];
                const char *nkey = n->entity == e ? tfs_record_key(a, n) : NULL;
                kept = nkey && strcmp(nkey, okey) == 0;
            }
            if (!kept)
                r->orphans[r->n_orphans++] = t;
        }
    }
    json_decref(old);
    return rc;
}

/* Marks records whose target is already what they would write (same hash as the sync
 * map's last written), so that a repeated full sync writes nothing; fetches the last
 * written records that updates (for the audit trail) and deletions need. */
static int compare_batch(batch_ctx *b, size_t n, rec_state *rs, tfs_arena *a,
                         entity_counts *delta, tfs_error *err)
{
    tfs_pipeline *p = b->p;
    const char **keys = tfs_arena_alloc(a, (n ? n : 1) * sizeof *keys);
    char **hashes = tfs_arena_calloc(a, n ? n : 1, sizeof *hashes);
    if (!keys || !hashes)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        keys[i] = rs[i].key;
    int rc = tfs_store_syncmap_hashes(p->store, b->pair->name, b->em->source, keys, n, hashes,
                                      err);
    if (rc)
        return rc;
    size_t n_old = 0;
    for (size_t i = 0; i < n; i++) {
        rec_state *r = &rs[i];
        r->is_new = !hashes[i];
        if (r->deleted) {
            r->write = 0;
            if (hashes[i])
                keys[n_old++] = r->key;
            else
                delta->unchanged++; /* never written: nothing to delete */
        } else if (!r->stage) {
            char hex[17];
            tfs_hash_hex(r->tgt_hash, hex);
            r->write = !hashes[i] || strcmp(hashes[i], hex) != 0;
            if (!r->write)
                delta->unchanged++;
            else if (hashes[i])
                keys[n_old++] = r->key;
        }
    }
    char **old = tfs_arena_calloc(a, n_old ? n_old : 1, sizeof *old);
    if (!old)
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if (!rc && n_old)
        rc = tfs_store_syncmap_records(p->store, b->pair->name, b->em->source, keys, n_old, old,
                                       err);
    for (size_t i = 0, k = 0; !rc && i < n && k < n_old; i++) {
        rec_state *r = &rs[i];
        if (r->key != keys[k])
            continue;
        r->old = old[k++];
        if (r->deleted && r->old && plan_deletion(b, r, a, hashes[i], delta) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory planning a deletion");
        else if (!r->deleted && r->old && find_orphans(b, r, a) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory comparing with the last write");
    }
    for (size_t i = 0; i < n; i++)
        free(hashes[i]);
    return rc;
}

static int write_batch(batch_ctx *b, rec_state *rs, size_t n, tfs_arena *a,
                       entity_counts *delta, tfs_error *err)
{
    size_t n_ops = 0;
    for (size_t i = 0; i < n; i++)
        if (rs[i].write)
            n_ops += rs[i].out.n + rs[i].n_orphans;
    if (n_ops == 0)
        return 0;
    tfs_sdk_write_op *ops = tfs_arena_alloc(a, n_ops * sizeof *ops);
    size_t *owner = tfs_arena_alloc(a, n_ops * sizeof *owner);
    if (!ops || !owner)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const tfs_sdk_entity *tgt_entities = tfs_instance_entity_get(b->tgt, 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rs[i].write)
            continue;
        for (size_t j = 0; j < rs[i].out.n; j++) {
            const tfs_record *rec = rs[i].out.recs[j];
            /* Every target record's entity is one of the target instance's, so its position
             * there is its index for the plugin. */
            ops[k] = (tfs_sdk_write_op){(size_t)(rec->entity - tgt_entities),
                                        rs[i].deleted ? rs[i].kind : TFS_SDK_OP_UPSERT, rec};
            owner[k++] = i;
        }
        for (size_t j = 0; j < rs[i].n_orphans; j++) {
            const tfs_record *rec = rs[i].orphans[j];
            ops[k] = (tfs_sdk_write_op){(size_t)(rec->entity - tgt_entities),
                                        TFS_SDK_OP_DELETE, rec};
            owner[k++] = i;
        }
    }
    tfs_results res;
    int rc = 0;
    for (int attempt = 1;; attempt++) {
        if (tfs_results_init(&res, n_ops) != 0)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        rc = tfs_instance_write(b->tgt, ops, n_ops, &res, err);
        if (rc != TFS_ETRANSIENT || attempt >= MAX_ATTEMPTS)
            break;
        tfs_results_free(&res);
        tfs_log_warn("pipeline", "run %" PRId64 ": %s (attempt %d of %d, retrying)", b->run_id,
                     err->message, attempt, MAX_ATTEMPTS);
        if (backoff(attempt, b->stop) < 0)
            return tfs_error_set(err, TFS_ELIMIT, "stopped while retrying a write");
    }
    if (rc == 0) {
        for (size_t o = 0; o < n_ops; o++) {
            if (res.status[o] == TFS_SDK_OK)
                continue;
            rec_state *r = &rs[owner[o]];
            if (r->write) {
                r->write = 0;
                delta->write_failed++;
            }
            fail_rec(r, "write", res.message[o] ? res.message[o] : "the target refused it");
        }
    }
    tfs_results_free(&res);
    return rc;
}

static void counts_add(entity_counts *c, const entity_counts *d)
{
    c->read += d->read;
    c->transform_failed += d->transform_failed;
    c->validate_failed += d->validate_failed;
    c->write_failed += d->write_failed;
    c->unchanged += d->unchanged;
    c->read_ms += d->read_ms;
    c->transform_ms += d->transform_ms;
    c->compare_ms += d->compare_ms;
    c->write_ms += d->write_ms;
}

/* Sync map rows, failed records, audit entries, the cursor and the counts of one batch, in
 * one state store transaction (on s). The counts the other sides gathered for the batch
 * (delta) are added first: only this side touches the run's totals. */
static int commit_batch(batch_ctx *b, tfs_store *s, tfs_batch *batch, rec_state *rs,
                        tfs_arena *a, const entity_counts *delta, tfs_error *err)
{
    tfs_pipeline *p = b->p;
    counts_add(&b->c, delta);
    size_t n = batch->n, n_rows = 0, n_failed = 0, n_mark = 0, n_forget = 0, n_audit = 0;
    tfs_syncmap_row *rows = tfs_arena_calloc(a, n ? n : 1, sizeof *rows);
    tfs_failed_row *failed = tfs_arena_calloc(a, n ? n : 1, sizeof *failed);
    const char **mark = tfs_arena_calloc(a, n ? n : 1, sizeof *mark);
    const char **forget = tfs_arena_calloc(a, n ? n : 1, sizeof *forget);
    tfs_audit_row *audit = tfs_arena_calloc(a, n ? n : 1, sizeof *audit);
    if (!rows || !failed || !mark || !forget || !audit)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        rec_state *r = &rs[i];
        if (r->stage) {
            failed[n_failed++] = (tfs_failed_row){
                r->key, r->stage, r->reasons,
                batch->recs ? tfs_record_to_json(batch->recs[i]) : NULL};
            if (b->full && !r->deleted)
                mark[n_mark++] = r->key; /* it exists: the sweep must not take it */
            continue;
        }
        if (!r->write) {
            if (b->full && !r->deleted && !r->is_new)
                mark[n_mark++] = r->key;
            continue;
        }
        const char *op = r->deleted ? (r->kind == TFS_SDK_OP_DELETE ? "delete" : "deactivate")
                         : r->is_new ? "insert"
                                     : "update";
        tfs_audit_subject subj = {
            .recs = (const tfs_record *const *)r->out.recs, .n = r->out.n,
            .orphans = (const tfs_record *const *)r->orphans, .n_orphans = r->n_orphans,
            .old = r->old, .deleted = r->deleted,
            .removing = r->deleted && r->kind == TFS_SDK_OP_DELETE};
        const char *changes = tfs_audit_diff_changes(&subj, &p->cscratch, a);
        if (!changes)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        audit[n_audit++] = (tfs_audit_row){r->key, op, changes};
        if (r->deleted) {
            b->c.deleted++;
            if (r->kind == TFS_SDK_OP_DELETE) {
                forget[n_forget++] = r->key;
                continue;
            }
            r->src_hash = 0; /* a deactivated record's source is gone */
        } else {
            b->c.written++;
        }
        tfs_syncmap_row *row = &rows[n_rows++];
        row->source_key = r->key;
        row->is_new = r->is_new;
        tfs_hash_hex(r->src_hash, row->source_hash);
        tfs_hash_hex(r->tgt_hash, row->target_hash);
        /* JSON text built straight into a buffer: no jansson tree per record. */
        tfs_buf *kb = &p->cscratch;
        tfs_buf_reset(kb);
        tfs_buf_putc(kb, '[');
        for (size_t j = 0; j < r->out.n; j++) {
            const tfs_record *t = r->out.recs[j];
            char hex[17];
            tfs_hash_hex(tfs_hash_records(&p->cscratch2, &t, 1), hex);
            const char *tkey = tfs_record_key(a, t);
            if (j)
                tfs_buf_putc(kb, ',');
            tfs_buf_puts(kb, "{\"entity\":");
            tfs_json_string_append(kb, t->entity->name, strlen(t->entity->name));
            tfs_buf_puts(kb, ",\"key\":");
            tfs_json_string_append(kb, tkey ? tkey : "", tkey ? strlen(tkey) : 0);
            tfs_buf_printf(kb, ",\"hash\":\"%s\"}", hex);
        }
        tfs_buf_putc(kb, ']');
        row->target_keys = tfs_arena_strndup(a, tfs_buf_str(kb), kb->len);
        /* {"pardat": [{...}], "asmt": [{...}]}: records grouped by entity, in order. */
        tfs_buf_reset(kb);
        tfs_buf_putc(kb, '{');
        int first_entity = 1;
        for (size_t e = 0; e < tfs_instance_n_entities(b->tgt); e++) {
            int any = 0;
            for (size_t j = 0; j < r->out.n; j++) {
                const tfs_record *t = r->out.recs[j];
                if (t->entity != tfs_instance_entity_get(b->tgt, e))
                    continue;
                if (!any) {
                    if (!first_entity)
                        tfs_buf_putc(kb, ',');
                    first_entity = 0;
                    tfs_json_string_append(kb, t->entity->name, strlen(t->entity->name));
                    tfs_buf_puts(kb, ":[");
                } else {
                    tfs_buf_putc(kb, ',');
                }
                any = 1;
                tfs_record_json_append(kb, t);
            }
            if (any)
                tfs_buf_putc(kb, ']');
        }
        tfs_buf_putc(kb, '}');
        row->target_record = tfs_arena_strndup(a, tfs_buf_str(kb), kb->len);
        if (kb->oom || !row->target_keys || !row->target_record)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    counts_put(b->counts, b->em->source, &b->c);
    tfs_batch_commit bc = {
        .pair = b->pair->name,
        .entity = b->em->source,
        .run_id = b->run_id,
        .rows = rows,
        .n_rows = n_rows,
        .failed = failed,
        .n_failed = n_failed,
        .cursor_kind = b->changes ? "changes" : "full",
        .cursor = batch->cursor,
        .cursor_len = batch->cursor_len,
        .cursor_done = batch->done,
        .counts = b->counts,
        .mark_keys = mark,
        .n_mark = n_mark,
        .forget_keys = forget,
        .n_forget = n_forget,
        .audit = audit,
        .n_audit = n_audit,
        .actor = b->actor,
    };
    if (b->sweeping) /* no cursor moves */
        bc.cursor_kind = NULL;
    else if (!batch->cursor_set)
        bc.cursor = NULL; /* a first read that returned nothing */
    int rc = 0;
    for (int attempt = 1;; attempt++) {
        rc = tfs_store_batch_commit(s, &bc, err);
        if (rc != TFS_ETRANSIENT || attempt >= MAX_ATTEMPTS)
            break;
        tfs_log_warn("pipeline", "run %" PRId64 ": %s (attempt %d, retrying)", b->run_id,
                     err->message, attempt);
        if (backoff(attempt, b->stop) < 0)
            break;
        tfs_store_ensure(s, NULL);
    }
    for (size_t i = 0; i < n_failed; i++)
        json_decref(failed[i].record);
    return rc;
}

static int read_batch(batch_ctx *b, const unsigned char *cursor, size_t cursor_len,
                      tfs_batch *batch, tfs_arena *a, tfs_error *err)
{
    int rc;
    for (int attempt = 1;; attempt++) {
        tfs_arena_reset(a);
        tfs_batch_init(batch, a, tfs_instance_entity_get(b->src, b->src_entity));
        rc = tfs_instance_read(b->src, b->src_entity,
                               b->changes ? TFS_SDK_READ_CHANGES : TFS_SDK_READ_FULL, cursor,
                               cursor_len, b->pair->batch_size, batch, err);
        if (rc != TFS_ETRANSIENT || attempt >= MAX_ATTEMPTS)
            return rc;
        tfs_log_warn("pipeline", "run %" PRId64 ": %s (attempt %d of %d, retrying)", b->run_id,
                     err->message, attempt, MAX_ATTEMPTS);
        if (backoff(attempt, b->stop) < 0)
            return tfs_error_set(err, TFS_ELIMIT, "stopped while retrying a read");
    }
}

/* Compare and write one batch (the writing side); counts go to the job's delta. */
static int compare_and_write(batch_ctx *b, job *jb, tfs_error *err)
{
    double t2 = now_ms();
    int rc = compare_batch(b, jb->batch.n, jb->rs, jb->arena, &jb->delta, err);
    if (rc)
        return rc;
    double t3 = now_ms();
    jb->delta.compare_ms += t3 - t2;
    rc = write_batch(b, jb->rs, jb->batch.n, jb->arena, &jb->delta, err);
    jb->delta.write_ms += now_ms() - t3;
    return rc;
}

static int commit_job(batch_ctx *b, tfs_store *s, job *jb, tfs_error *err)
{
    double t4 = now_ms();
    /* commit_batch stores the counts: its own time shows from the next batch on. */
    int rc = commit_batch(b, s, &jb->batch, jb->rs, jb->arena, &jb->delta, err);
    b->c.commit_ms += now_ms() - t4;
    return rc;
}

/* Compare, write and commit one batch on this thread (the sweep). */
static int consume(batch_ctx *b, job *jb, tfs_error *err)
{
    int rc = compare_and_write(b, jb, err);
    return rc ? rc : commit_job(b, b->p->store, jb, err);
}

static void job_release(handoff *h, job *jb)
{
    for (size_t i = 0; i < jb->batch.n; i++) {
        json_decref(jb->rs[i].reasons);
        free(jb->rs[i].old);
    }
    pthread_mutex_lock(&h->lock);
    h->free_arenas[h->n_free++] = jb->arena;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void fail_handoff(handoff *h, int rc, const tfs_error *err)
{
    pthread_mutex_lock(&h->lock);
    if (!h->rc) {
        h->rc = rc;
        h->err = *err;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted hashes of a job's source keys, in its arena. */
static int hash_job_keys(job *jb)
{
    jb->keys = tfs_arena_alloc(jb->arena, (jb->batch.n ? jb->batch.n : 1) * sizeof *jb->keys);
    if (!jb->keys)
        return -1;
    for (size_t i = 0; i < jb->batch.n; i++)
        jb->keys[i] = tfs_hash_bytes(TFS_HASH_SEED, jb->rs[i].key, strlen(jb->rs[i].key));
    jb->n_keys = jb->batch.n;
    qsort(jb->keys, jb->n_keys, sizeof *jb->keys, cmp_u64);
    return 0;
}

static int job_has_key(const job *jb, uint64_t k)
{
    return jb && jb->keys && bsearch(&k, jb->keys, jb->n_keys, sizeof k, cmp_u64) != NULL;
}

/* Whether jb shares a key (or a hash: then it waits, harmlessly) with a batch the
 * committing side has not committed yet. Called with the lock held. */
static int shares_pending_key(const handoff *h, const job *jb)
{
    for (size_t i = 0; i < jb->n_keys; i++) {
        if (job_has_key(h->committing, jb->keys[i]))
            return 1;
        for (size_t q = 0; q < h->c_n; q++)
            if (job_has_key(h->to_commit[(h->c_head + q) % N_ARENAS], jb->keys[i]))
                return 1;
    }
    return 0;
}

/* The writing side: compares each batch with the sync map and writes it to the target,
 * then hands it to the committing side. Batches go through both in read order. */
static void *writer_main(void *arg)
{
    handoff *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        while (h->w_n == 0 && !h->reader_done)
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->w_n == 0) {
            h->writer_done = 1;
            pthread_cond_broadcast(&h->cond);
            pthread_mutex_unlock(&h->lock);
            break;
        }
        job *jb = h->to_write[h->w_head];
        h->w_head = (h->w_head + 1) % N_ARENAS;
        h->w_n--;
        /* Reading changes, a key may come again in a later batch: a batch that shares a key
         * with one not yet committed is compared only once that one is, or the old hash
         * would be compared with. Full reads never repeat a key, so they always overlap. */
        if (h->b->changes) {
            pthread_mutex_unlock(&h->lock);
            int hashed = hash_job_keys(jb) == 0;
            pthread_mutex_lock(&h->lock);
            while ((!hashed || shares_pending_key(h, jb)) && (h->c_n || h->committing) &&
                   !h->rc)
                pthread_cond_wait(&h->cond, &h->lock);
        }
        int failed = h->rc != 0;
        pthread_mutex_unlock(&h->lock);

        tfs_error err = {0};
        /* After a failure queued batches are dropped: what was not committed is read
         * again when the run resumes. */
        int rc = failed ? 0 : compare_and_write(h->b, jb, &err);
        if (failed || rc) {
            if (rc)
                fail_handoff(h, rc, &err);
            job_release(h, jb);
            continue;
        }
        pthread_mutex_lock(&h->lock);
        h->to_commit[(h->c_head + h->c_n) % N_ARENAS] = jb;
        h->c_n++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

/* The committing side: the state store transaction of each written batch, in order, on
 * its own connection, while the writing side goes on with the next batch. */
static void *committer_main(void *arg)
{
    handoff *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        while (h->c_n == 0 && !h->writer_done)
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->c_n == 0) {
            pthread_mutex_unlock(&h->lock);
            break;
        }
        job *jb = h->to_commit[h->c_head];
        h->c_head = (h->c_head + 1) % N_ARENAS;
        h->c_n--;
        h->committing = jb;
        int failed = h->rc != 0;
        pthread_mutex_unlock(&h->lock);

        tfs_error err = {0};
        int rc = failed ? 0 : commit_job(h->b, h->b->p->cstore, jb, &err);
        if (rc)
            fail_handoff(h, rc, &err);
        pthread_mutex_lock(&h->lock);
        h->committing = NULL;
        pthread_mutex_unlock(&h->lock);
        job_release(h, jb);
    }
    return NULL;
}

/* Reads and transforms batch after batch on this thread and hands each to the writer
 * thread, so that the source, the Lua runtime, the target and the state store all work at
 * once. Batches are committed in order, by the one writer. */
static int run_entity(tfs_pipeline *p, batch_ctx *b, tfs_error *err)
{
    int64_t cursor_run;
    int done, rc;
    unsigned char *saved = NULL;
    size_t saved_len = 0;
    if ((rc = tfs_store_cursor_get(p->store, b->pair->name, b->em->source,
                                   b->changes ? "changes" : "full", &cursor_run, &done, &saved,
                                   &saved_len, err)))
        return rc;
    if (b->changes) {
        /* The checkpoint is where the last committed batch left off, this run's or not. */
        if (!saved) {
            tfs_error_set(err, TFS_EPERMANENT,
                          "no change checkpoint for %s of pair \"%s\": run a full sync first "
                          "(POST /sync/full); it sets the checkpoint incremental runs start from",
                          b->em->source, b->pair->name);
            return TFS_EPERMANENT;
        }
    } else if (cursor_run != b->run_id) {
        /* A fresh full read. A source with change data gives the change cursor of now,
         * which becomes the incremental checkpoint once everything is read. */
        free(saved);
        saved = NULL;
        saved_len = 0;
        done = 0;
        tfs_batch start;
        tfs_arena_reset(p->arenas[0]);
        tfs_batch_init(&start, p->arenas[0], tfs_instance_entity_get(b->src, b->src_entity));
        if ((rc = tfs_instance_changes_start(b->src, b->src_entity, &start, err)))
            return rc;
        if ((rc = tfs_store_full_start(p->store, b->pair->name, b->em->source, b->run_id,
                                       start.cursor_set ? start.cursor : NULL,
                                       start.cursor_len, err)))
            return rc;
    } else if (done) {
        free(saved); /* this run had read it all before it stopped */
        return 0;
    }
    handoff h = {.b = b};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    for (int i = 0; i < N_ARENAS; i++)
        h.free_arenas[h.n_free++] = p->arenas[i];
    if ((rc = tfs_store_ensure(p->cstore, err))) {
        free(saved);
        pthread_mutex_destroy(&h.lock);
        pthread_cond_destroy(&h.cond);
        return rc;
    }
    pthread_t writer, committer;
    if (pthread_create(&writer, NULL, writer_main, &h) != 0) {
        free(saved);
        pthread_mutex_destroy(&h.lock);
        pthread_cond_destroy(&h.cond);
        return tfs_error_set(err, TFS_EIO, "could not start the writer thread");
    }
    if (pthread_create(&committer, NULL, committer_main, &h) != 0) {
        pthread_mutex_lock(&h.lock);
        h.reader_done = 1;
        pthread_cond_broadcast(&h.cond);
        pthread_mutex_unlock(&h.lock);
        pthread_join(writer, NULL);
        free(saved);
        pthread_mutex_destroy(&h.lock);
        pthread_cond_destroy(&h.cond);
        return tfs_error_set(err, TFS_EIO, "could not start the committer thread");
    }
    unsigned char *cursor = saved;
    size_t cursor_len = saved_len;
    for (;;) {
        if (atomic_load(b->stop)) {
            rc = tfs_error_set(err, TFS_ELIMIT, "stopped between batches");
            break;
        }
        pthread_mutex_lock(&h.lock);
        while (h.n_free == 0 && !h.rc)
            pthread_cond_wait(&h.cond, &h.lock);
        tfs_arena *a = h.rc ? NULL : h.free_arenas[--h.n_free];
        pthread_mutex_unlock(&h.lock);
        if (!a)
            break; /* the writer failed: its error is the run's */

        job jb_local = {.arena = a};
        job *jb = &jb_local;
        double t0 = now_ms();
        rc = read_batch(b, cursor, cursor_len, &jb->batch, a, err);
        double t1 = now_ms();
        /* read_batch reset the arena: the job itself lives there from now on. */
        if (rc == 0 && !(jb = tfs_arena_alloc(a, sizeof *jb)))
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        if (rc == 0 && !jb_local.batch.cursor_set && cursor) {
            /* A batch that moved nothing (often the last, empty one) keeps the position it
             * was read from, so the checkpoint never goes back to "nothing". */
            unsigned char *c = tfs_arena_alloc(a, cursor_len ? cursor_len : 1);
            if (!c) {
                rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            } else {
                memcpy(c, cursor, cursor_len);
                jb_local.batch.cursor = c;
                jb_local.batch.cursor_len = cursor_len;
                jb_local.batch.cursor_set = true;
            }
        }
        if (rc == 0) {
            *jb = jb_local;
            jb->delta.read = (json_int_t)jb->batch.n;
            jb->delta.read_ms = t1 - t0;
            jb->rs = tfs_arena_calloc(a, jb->batch.n ? jb->batch.n : 1, sizeof *jb->rs);
            if (!jb->rs)
                rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        }
        if (rc == 0 && (rc = transform_batch(b, &jb->batch, jb->rs, a, &jb->delta)))
            tfs_error_set(err, rc, "out of memory transforming a batch");
        if (rc == 0 && !jb->batch.done && jb->batch.n > 0 && !jb->batch.cursor_set) {
            rc = tfs_error_set(err, TFS_EPERMANENT, "%s returned a batch without a cursor",
                               tfs_instance_system(b->src));
            tfs_error_hint(err, "the plugin must call batch_set_cursor after each read");
        }
        if (rc) {
            if (jb != &jb_local)
                for (size_t i = 0; i < jb->batch.n; i++)
                    json_decref(jb->rs ? jb->rs[i].reasons : NULL);
            pthread_mutex_lock(&h.lock);
            h.free_arenas[h.n_free++] = a;
            pthread_mutex_unlock(&h.lock);
            break;
        }
        jb->delta.transform_ms = now_ms() - t1;
        int last = jb->batch.done || jb->batch.n == 0;
        if (!last) {
            /* The next read starts after this batch; keep a copy of the cursor that
             * outlives the batch's arena. */
            unsigned char *next = malloc(jb->batch.cursor_len ? jb->batch.cursor_len : 1);
            if (!next) {
                rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
                last = 1;
            } else {
                memcpy(next, jb->batch.cursor, jb->batch.cursor_len);
                free(saved);
                saved = cursor = next;
                cursor_len = jb->batch.cursor_len;
            }
        }
        pthread_mutex_lock(&h.lock);
        h.to_write[(h.w_head + h.w_n) % N_ARENAS] = jb;
        h.w_n++;
        pthread_cond_broadcast(&h.cond);
        pthread_mutex_unlock(&h.lock);
        if (last)
            break;
    }
    pthread_mutex_lock(&h.lock);
    h.reader_done = 1;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    pthread_join(writer, NULL);
    pthread_join(committer, NULL);
    if (h.rc && (rc == 0 || rc == TFS_ELIMIT)) {
        rc = h.rc;
        if (err)
            *err = h.err;
    }
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
    free(saved);
    return rc;
}

/* After a full run has read every entity: the keys its sync map still holds but the run
 * did not see have vanished from the source, and get the pair's delete action, batch by
 * batch on this thread. */
static int sweep_entity(tfs_pipeline *p, batch_ctx *b, tfs_error *err)
{
    char *after = NULL;
    int rc = 0;
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
        tfs_arena *a = p->arenas[0];
        tfs_arena_reset(a);
        job jb = {.arena = a};
        tfs_batch_init(&jb.batch, a, tfs_instance_entity_get(b->src, b->src_entity));
        jb.batch.n = n; /* no source records: only keys */
        jb.rs = tfs_arena_calloc(a, n, sizeof *jb.rs);
        for (size_t i = 0; jb.rs && i < n; i++) {
            jb.rs[i].key = tfs_arena_strdup(a, keys[i]);
            jb.rs[i].deleted = 1;
        }
        free(after);
        after = strdup(keys[n - 1]);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        if (!jb.rs || !after) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
        rc = consume(b, &jb, err);
        for (size_t i = 0; i < n; i++) {
            json_decref(jb.rs[i].reasons);
            free(jb.rs[i].old);
        }
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

static int prepare_mapping(tfs_pipeline *p, batch_ctx *b, tfs_error *err)
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
static int run_mappings(const batch_ctx *proto, int sweep, tfs_error *err)
{
    tfs_pipeline *p = proto->p;
    const tfs_config_pair *pair = proto->pair;
    int rc = 0;
    for (size_t i = 0; i < pair->n_entities && rc == 0; i++) {
        batch_ctx b = *proto;
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
    if ((rc = get_system(p, pair->source, &src, err)) ||
        (rc = get_system(p, pair->target, &tgt, err)))
        goto finish;
    /* A source with change data is read for changes; one without is read whole and
     * compared with the sync map's hashes, so only new and changed records are written.
     * A full run then sweeps, once every entity is read. */
    batch_ctx proto = {.p = p, .pair = pair, .run_id = run_id, .src = src->inst,
                       .tgt = tgt->inst, .counts = counts, .stop = stop, .full = full,
                       .actor = actor,
                       .changes = !full && (tfs_instance_capabilities(src->inst) &
                                            TFS_SDK_CAP_CHANGES)};
    memcpy(proto.today, today, sizeof proto.today);
    rc = run_mappings(&proto, 0, err);
    if (rc == 0 && full)
        rc = run_mappings(&proto, 1, err);
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
