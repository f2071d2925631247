/* core/stage.c — the stages of one batch; see stage.h.
 *
 * Reading: the source plugin's read, then the Lua mapping, validation and hashing of each
 * record. Writing: the sync map's hashes tell unchanged records from changed ones, the last
 * written records give deletions and orphans what to act on, the target plugin's write
 * applies the rest. Committing: the sync map rows and audit entries of what was applied,
 * the failed records, marks, cursor and counts, as one state store transaction.
 */
#include "stage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_diff.h"
#include "canonical.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"
#include "rules.h"
#include "stage_private.h"
#include "tfs_limits.h"
#include "validator.h"

/* After a call to the system behind br returned rc: 0 when it is done (rc is final), 1
 * to call again after the wait this sleeps. A success closes the breaker; a transient
 * failure counts against it and is retried until the breaker opens, when the run gives up
 * its worker and waits (rc stays TFS_ETRANSIENT). A stop during the wait ends in
 * TFS_ELIMIT, which leaves the run resumable. store, when the call was the state store's,
 * is reconnected before the next call. */
static int retry_after(tfs_stage_ctx *b, tfs_breaker *br, tfs_store *store, int *rc,
                       unsigned *attempt, const char *what, tfs_error *err)
{
    int64_t now = tfs_health_now_ms();
    if (*rc != TFS_ETRANSIENT) {
        if (*rc == 0 && br)
            tfs_breaker_success(br, now);
        return 0;
    }
    if (br) {
        tfs_breaker_failure(br, err->message, now);
        if (tfs_breaker_get(br).state == TFS_BREAKER_OPEN)
            return 0;
    }
    ++*attempt;
    tfs_log_warn("pipeline", "run %" PRId64 ": %s (attempt %u, retrying)", b->run_id,
                 err->message, *attempt);
    tfs_retry_policy def = {TFS_RETRY_BASE_MS_DEFAULT, TFS_RETRY_MAX_BACKOFF_MS_DEFAULT};
    const tfs_retry_policy *pol = b->retry ? b->retry : &def;
    uint64_t rng = tfs_retry_seed();
    if (tfs_retry_sleep(tfs_retry_backoff_ms(pol, *attempt, &rng), b->stop) < 0) {
        *rc = tfs_error_set(err, TFS_ELIMIT, "stopped while retrying %s", what);
        return 0;
    }
    if (store)
        tfs_store_ensure(store, NULL);
    return 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fail_rec(tfs_stage_rec *r, const char *stage, const char *msg)
{
    if (!r->reasons)
        r->reasons = json_array();
    r->stage = stage;
    if (msg)
        json_array_append_new(r->reasons, json_string(msg));
}

void tfs_stage_job_clear(tfs_stage_job *jb)
{
    for (size_t i = 0; jb->rs && i < jb->n_rs; i++) {
        json_decref(jb->rs[i].reasons);
        jb->rs[i].reasons = NULL;
    }
    jb->n_rs = 0;
}

/* ---- reading ------------------------------------------------------------------------ */

static int read_source(tfs_stage_ctx *b, tfs_stage_job *jb, const unsigned char *cursor,
                       size_t cursor_len, tfs_error *err)
{
    unsigned attempt = 0;
    int rc;
    do {
        tfs_arena_reset(jb->arena);
        tfs_batch_init(&jb->batch, jb->arena, tfs_instance_entity_get(b->src, b->src_entity));
        rc = tfs_instance_read(b->src, b->src_entity,
                               b->changes ? TFS_SDK_READ_CHANGES : TFS_SDK_READ_FULL, cursor,
                               cursor_len, b->pair->batch_size, &jb->batch, err);
    } while (retry_after(b, b->src_breaker, NULL, &rc, &attempt, "a read", err));
    return rc;
}

/* The version of the mapping's script now, in the arena (NULL when it does not load). */
static const char *script_version(tfs_stage_ctx *b, tfs_arena *a)
{
    char v[13];
    return tfs_lua_script_version(b->lua, b->em->script, v, NULL) == 0
               ? tfs_arena_strdup(a, v)
               : NULL;
}

/* Transform and validate every record, and hash what would be written. Counts go to the
 * job's delta: this runs on the reading side. */
static int transform(tfs_stage_ctx *b, tfs_stage_job *jb)
{
    tfs_batch *batch = &jb->batch;
    tfs_arena *a = jb->arena;
    tfs_stage_counts *delta = &jb->delta;
    tfs_lua_set_stop(b->lua, b->stop); /* a script stuck in a loop notices the stop */
    for (size_t i = 0; i < batch->n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        const tfs_record *src = batch->recs[i];
        jb->n_rs = i + 1;
        if (!(r->key = tfs_record_key(a, src)))
            return TFS_ENOMEM;
        if (src->deleted) {
            r->deleted = 1; /* nothing to map: the writing side works from the sync map */
            continue;
        }
        if (tfs_canonical_hash(b->read_scratch, &src, 1, &r->src_hash, NULL) != 0)
            return TFS_ENOMEM;
        if (src->fail_reason) { /* rec_fail: the source could not read it */
            fail_rec(r, "read", src->fail_reason);
            delta->read_failed++;
            continue;
        }
        tfs_error e = {0};
        int mrc = tfs_lua_map(b->lua, b->em->script, src, r->key, b->targets, b->n_targets, a,
                              &r->out, &e);
        if (mrc != 0 && tfs_lua_stopped(b->lua))
            return TFS_ELIMIT; /* the batch is abandoned: the run resumes at the next start */
        if (mrc != 0) {
            fail_rec(r, "transform", e.message);
            if (e.detail[0]) /* the Lua traceback */
                json_array_append_new(r->reasons, json_string(e.detail));
            r->error_class = mrc == TFS_ELIMIT ? "limit" : NULL;
            r->script_version = script_version(b, a);
            delta->transform_failed++;
            continue;
        }
        unsigned char *typed = tfs_arena_alloc(a, r->out.n ? r->out.n : 1);
        if (!typed)
            return TFS_ENOMEM;
        for (size_t j = 0; j < r->out.n; j++) {
            if (!r->reasons)
                r->reasons = json_array();
            int probs = tfs_validate_record(r->out.recs[j], r->reasons);
            if (probs < 0)
                return TFS_ENOMEM;
            if (probs > 0)
                r->stage = "validate";
            typed[j] = probs == 0;
        }
        if (!r->reasons && r->out.n_problems && !(r->reasons = json_array()))
            return TFS_ENOMEM; /* a record mapped to nothing that validate() refused */
        /* What the schema cannot say: the pair's rules, then the script's validate(). */
        tfs_rules_env env = {tfs_lua_roll_year(b->lua), tfs_lua_lookup_has, b->lua};
        int beyond = tfs_rules_check_all(&b->pair->validation, r->out.recs, typed, r->out.n,
                                         b->em->script, r->out.problems, r->out.n_problems,
                                         &env, r->reasons);
        if (beyond < 0)
            return TFS_ENOMEM;
        if (beyond > 0)
            r->stage = "validate";
        if (r->stage) {
            r->script_version = script_version(b, a);
            delta->validate_failed++;
            continue;
        }
        json_decref(r->reasons);
        r->reasons = NULL;
        if (tfs_canonical_hash(b->read_scratch, (const tfs_record *const *)r->out.recs,
                               r->out.n, &r->tgt_hash, NULL) != 0)
            return TFS_ENOMEM;
    }
    return 0;
}

/* The job's records through transform(), its rules checked against the targets first
 * (a rule naming a field the target lacks fails the run, not every record). */
static int transform_job(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    int rc = tfs_rules_verify(&b->pair->validation, b->targets, b->n_targets, b->pair->name,
                              err);
    if (rc)
        return rc == TFS_EINVAL ? TFS_EPERMANENT : rc;
    if ((rc = transform(b, jb)))
        return rc == TFS_ELIMIT ? tfs_error_set(err, rc, "stopped while transforming a batch")
                                : tfs_error_set(err, rc, "out of memory transforming a batch");
    char v[13];
    if (tfs_lua_script_version(b->lua, b->em->script, v, NULL) == 0)
        memcpy(jb->script_version, v, sizeof v);
    else
        jb->script_version[0] = '\0';
    return 0;
}

int tfs_stage_read(tfs_stage_ctx *b, tfs_stage_job *jb, const unsigned char *cursor,
                   size_t cursor_len, tfs_error *err)
{
    tfs_stage_job_clear(jb);
    memset(&jb->delta, 0, sizeof jb->delta);
    jb->rs = NULL;
    double t0 = now_ms();
    jb->started_ms = t0;
    int rc = read_source(b, jb, cursor, cursor_len, err);
    double t1 = now_ms();
    if (rc)
        return rc;
    tfs_arena *a = jb->arena;
    if (!jb->batch.cursor_set && cursor) {
        /* A batch that moved nothing (often the last, empty one) keeps the position it was
         * read from, so the checkpoint never goes back to "nothing". */
        unsigned char *c = tfs_arena_alloc(a, cursor_len ? cursor_len : 1);
        if (!c)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        memcpy(c, cursor, cursor_len);
        jb->batch.cursor = c;
        jb->batch.cursor_len = cursor_len;
        jb->batch.cursor_set = true;
    }
    jb->delta.read = (json_int_t)jb->batch.n;
    jb->delta.read_ms = t1 - t0;
    if (!(jb->rs = tfs_arena_calloc(a, jb->batch.n ? jb->batch.n : 1, sizeof *jb->rs)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if ((rc = transform_job(b, jb, err)))
        return rc;
    if (!jb->batch.done && jb->batch.n > 0 && !jb->batch.cursor_set) {
        rc = tfs_error_set(err, TFS_EPERMANENT, "%s returned a batch without a cursor",
                           tfs_instance_system(b->src));
        tfs_error_hint(err, "the plugin must call batch_set_cursor after each read");
        return rc;
    }
    jb->delta.transform_ms = now_ms() - t1;
    return 0;
}

/* A record of the source entity holding only the key fields of key (the text
 * tfs_record_key makes: values joined by '|', '|' and '\\' escaped), as text. */
static tfs_record *key_record(tfs_stage_ctx *b, tfs_arena *a, const char *key)
{
    const tfs_sdk_entity *e = tfs_instance_entity_get(b->src, b->src_entity);
    tfs_record *r = tfs_record_new(a, e);
    char *part = r ? tfs_arena_alloc(a, strlen(key) + 1) : NULL;
    if (!part)
        return NULL;
    const char *p = key;
    for (size_t f = 0; f < e->n_fields; f++) {
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY))
            continue;
        size_t len = 0;
        for (; *p && *p != '|'; p++)
            part[len++] = *p == '\\' && p[1] ? *++p : *p;
        if (tfs_record_set_text(r, f, TFS_SDK_TEXT, part, len) < 0)
            return NULL;
        if (*p == '|')
            p++;
    }
    return r;
}

/* The current source records of keys into got (in the job's arena), where the source can
 * fetch them; retried with backoff while transient. */
static int fetch_source(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_record **keyrecs, size_t n,
                        tfs_batch *got, tfs_error *err)
{
    unsigned attempt = 0;
    int rc;
    do {
        tfs_batch_init(got, jb->arena, tfs_instance_entity_get(b->src, b->src_entity));
        rc = tfs_instance_fetch(b->src, b->src_entity, (const tfs_record *const *)keyrecs, n,
                                got, err);
    } while (retry_after(b, b->src_breaker, NULL, &rc, &attempt, "a fetch", err));
    return rc;
}

int tfs_stage_fetch(tfs_stage_ctx *b, tfs_stage_job *jb, const char *const *keys,
                    json_t *const *stored, size_t n, tfs_error *err)
{
    tfs_stage_job_clear(jb);
    memset(&jb->delta, 0, sizeof jb->delta);
    jb->rs = NULL;
    tfs_arena_reset(jb->arena);
    tfs_arena *a = jb->arena;
    const tfs_sdk_entity *e = tfs_instance_entity_get(b->src, b->src_entity);
    tfs_batch_init(&jb->batch, a, e);
    tfs_record **recs = tfs_arena_calloc(a, n ? n : 1, sizeof *recs);
    if (!recs)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    double t0 = now_ms();
    jb->started_ms = t0;
    int fetch = tfs_instance_can_fetch(b->src);
    for (size_t i = 0; i < n; i++) {
        /* The stored record as it was read; a key alone where none was kept. */
        recs[i] = !fetch && stored[i] ? tfs_record_from_json(a, e, stored[i])
                                      : key_record(b, a, keys[i]);
        if (!recs[i])
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        recs[i]->deleted = fetch || !stored[i];
    }
    if (fetch && n) {
        tfs_batch got;
        int rc = fetch_source(b, jb, recs, n, &got, err);
        if (rc)
            return rc;
        /* Matched back by key; a key the source no longer has stays a deletion. */
        for (size_t g = 0; g < got.n; g++) {
            const char *gk = tfs_record_key(a, got.recs[g]);
            if (!gk)
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            for (size_t i = 0; i < n; i++)
                if (recs[i]->deleted && strcmp(keys[i], gk) == 0) {
                    recs[i] = got.recs[g];
                    break;
                }
        }
    }
    jb->batch.recs = recs;
    jb->batch.n = jb->batch.cap = n;
    jb->batch.done = true;
    jb->delta.read = (json_int_t)n;
    jb->delta.read_ms = now_ms() - t0;
    if (!(jb->rs = tfs_arena_calloc(a, n ? n : 1, sizeof *jb->rs)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    double t1 = now_ms();
    int rc = transform_job(b, jb, err);
    jb->delta.transform_ms = now_ms() - t1;
    return rc;
}

int tfs_stage_of_keys(tfs_stage_ctx *b, tfs_stage_job *jb, const char *const *keys, size_t n,
                      tfs_error *err)
{
    tfs_stage_job_clear(jb);
    memset(&jb->delta, 0, sizeof jb->delta);
    tfs_arena_reset(jb->arena);
    tfs_batch_init(&jb->batch, jb->arena, tfs_instance_entity_get(b->src, b->src_entity));
    jb->batch.n = n; /* no source records: only keys */
    if (!(jb->rs = tfs_arena_calloc(jb->arena, n ? n : 1, sizeof *jb->rs)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(jb->rs[i].key = tfs_arena_strdup(jb->arena, keys[i])))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        jb->rs[i].deleted = 1;
    }
    jb->n_rs = n;
    return 0;
}

int tfs_stage_key_hashes(tfs_stage_job *jb, uint64_t **keys, size_t *n)
{
    uint64_t *k = tfs_arena_alloc(jb->arena, (jb->batch.n ? jb->batch.n : 1) * sizeof *k);
    if (!k)
        return -1;
    for (size_t i = 0; i < jb->batch.n; i++)
        k[i] = tfs_hash_bytes(TFS_HASH_SEED, jb->rs[i].key, strlen(jb->rs[i].key));
    *keys = k;
    *n = jb->batch.n;
    return 0;
}

/* ---- comparing ---------------------------------------------------------------------- */

/* The target records of old (the sync map's last written, JSON text) that exist in the
 * target's schema, in the arena: what deletions act on and orphans are looked for in. */
static int old_records(tfs_stage_ctx *b, const char *old_text, tfs_arena *a,
                       tfs_record ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    json_t *old = json_loads(old_text, 0, NULL);
    if (!old)
        return TFS_ENOMEM;
    size_t n = 0, cap = 0;
    const char *ename;
    json_t *list;
    json_object_foreach(old, ename, list) cap += json_array_size(list);
    tfs_record **recs = tfs_arena_calloc(a, cap ? cap : 1, sizeof *recs);
    int rc = recs ? 0 : TFS_ENOMEM;
    json_object_foreach(old, ename, list) {
        int ti = tfs_instance_entity(b->tgt, ename);
        if (ti < 0 || rc)
            continue; /* an entity the target no longer has: nothing to act on */
        const tfs_sdk_entity *e = tfs_instance_entity_get(b->tgt, (size_t)ti);
        size_t k;
        json_t *obj;
        json_array_foreach(list, k, obj) {
            if (!(recs[n] = tfs_record_from_json(a, e, obj))) {
                rc = TFS_ENOMEM;
                break;
            }
            n++;
        }
    }
    json_decref(old);
    *out = recs;
    *n_out = n;
    return rc;
}

/* The target records a deletion acts on, from the sync map's last written ones: keys only
 * to delete them, or whole with the deactivate field set to deactivate them. */
static int plan_deletion(tfs_stage_ctx *b, tfs_stage_rec *r, tfs_arena *a,
                         uint64_t stored_hash, tfs_stage_counts *delta)
{
    tfs_record **old;
    size_t n_old;
    int rc = old_records(b, r->old, a, &old, &n_old);
    if (rc)
        return rc;
    int deactivate = b->pair->delete_action == TFS_DELETE_DEACTIVATE;
    size_t n = 0;
    for (size_t k = 0; k < n_old; k++) {
        tfs_record *t = old[k];
        if (deactivate) {
            int f = tfs_entity_field_index(t->entity, b->pair->deactivate_field);
            if (f < 0) {
                if (!r->stage)
                    delta->write_failed++;
                fail_rec(r, "write", NULL);
                char msg[256];
                snprintf(msg, sizeof msg, "cannot deactivate %s: it has no field \"%s\"; "
                         "set the pair's deactivate_field", t->entity->name,
                         b->pair->deactivate_field);
                json_array_append_new(r->reasons, json_string(msg));
                continue;
            }
            if (t->values[f].type == TFS_SDK_NULL &&
                tfs_record_set_text(t, (size_t)f, TFS_SDK_DATE, b->today, 10) < 0)
                return TFS_ENOMEM;
        }
        old[n++] = t;
    }
    r->out.recs = old;
    r->out.n = n;
    r->kind = deactivate ? TFS_SDK_OP_UPSERT : TFS_SDK_OP_DELETE;
    if (r->stage)
        return 0;
    if (deactivate) {
        /* Already deactivated (a second sweep): nothing to write. */
        if (tfs_canonical_hash(b->write_scratch, (const tfs_record *const *)r->out.recs,
                               r->out.n, &r->tgt_hash, NULL) != 0)
            return TFS_ENOMEM;
        r->write = r->tgt_hash != stored_hash;
    } else {
        r->write = 1;
    }
    return 0;
}

/* The target records last written for r that its mapping no longer produces (a sale now
 * confidential, a one-to-many mapping with one record fewer): they are deleted with the
 * update, so nothing stale stays in the target. */
static int find_orphans(tfs_stage_ctx *b, tfs_stage_rec *r, tfs_arena *a)
{
    tfs_record **old;
    size_t n_old;
    int rc = old_records(b, r->old, a, &old, &n_old);
    if (rc)
        return rc;
    r->orphans = old;
    r->n_orphans = 0;
    for (size_t k = 0; k < n_old; k++) {
        tfs_record *t = old[k];
        const char *okey = tfs_record_key(a, t);
        if (!okey)
            return TFS_ENOMEM;
        int kept = 0;
        for (size_t j = 0; j < r->out.n && !kept; j++) {
            const tfs_record *nw = r->out.recs[j];
            const char *nkey = nw->entity == t->entity ? tfs_record_key(a, nw) : NULL;
            kept = nkey && strcmp(nkey, okey) == 0;
        }
        if (!kept)
            r->orphans[r->n_orphans++] = t;
    }
    return 0;
}

/* Marks records whose target is already what they would write (same hash as the sync
 * map's last written), so that a repeated full sync writes nothing; fetches the last
 * written records that updates (for the audit trail) and deletions need. */
int tfs_stage_compare(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    size_t n = jb->batch.n;
    tfs_stage_rec *rs = jb->rs;
    tfs_arena *a = jb->arena;
    tfs_stage_counts *delta = &jb->delta;
    const char **keys = tfs_arena_alloc(a, (n ? n : 1) * sizeof *keys);
    uint64_t *hashes = tfs_arena_alloc(a, (n ? n : 1) * sizeof *hashes);
    unsigned char *found = tfs_arena_alloc(a, n ? n : 1);
    if (!keys || !hashes || !found)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        keys[i] = rs[i].key;
    int rc;
    unsigned attempt = 0;
    do
        rc = tfs_store_batch_hashes(b->write_store, b->pair->name, b->em->source, keys, n,
                                    hashes, found, err);
    while (retry_after(b, b->store_breaker, b->write_store, &rc, &attempt, "a sync map read",
                       err));
    if (rc)
        return rc;
    size_t n_old = 0;
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &rs[i];
        r->is_new = !found[i];
        r->stored_hash = found[i] ? hashes[i] : 0;
        if (r->deleted) {
            r->write = 0;
            if (found[i])
                keys[n_old++] = r->key;
            else
                delta->unchanged++; /* never written: nothing to delete */
        } else if (!r->stage) {
            r->write = !found[i] || hashes[i] != r->tgt_hash;
            if (!r->write)
                delta->unchanged++;
            else if (found[i])
                keys[n_old++] = r->key;
        }
    }
    const char **old = tfs_arena_calloc(a, n_old ? n_old : 1, sizeof *old);
    if (!old)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    attempt = 0;
    while (n_old) {
        rc = tfs_store_batch_records(b->write_store, b->pair->name, b->em->source, keys, n_old,
                                     a, old, err);
        if (!retry_after(b, b->store_breaker, b->write_store, &rc, &attempt,
                         "a sync map read", err))
            break;
    }
    if (rc)
        return rc;
    for (size_t i = 0, k = 0; !rc && i < n && k < n_old; i++) {
        tfs_stage_rec *r = &rs[i];
        if (r->key != keys[k])
            continue;
        r->old = old[k++];
        if (r->deleted && r->old && plan_deletion(b, r, a, hashes[i], delta) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory planning a deletion");
        else if (!r->deleted && r->old && find_orphans(b, r, a) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory comparing with the last write");
    }
    return rc;
}

/* Writes every record to write (and deletes its orphans), each record's operations
 * adjacent, in the plugin calls the target's write limits allow (tfs_stage_write_ops);
 * per-operation refusals fail their record alone. */
int tfs_stage_write(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    tfs_stage_rec *rs = jb->rs;
    size_t n = jb->batch.n;
    size_t n_ops = 0;
    for (size_t i = 0; i < n; i++)
        if (rs[i].write)
            n_ops += rs[i].out.n + rs[i].n_orphans;
    if (n_ops == 0)
        return 0;
    tfs_sdk_write_op *ops = tfs_arena_alloc(jb->arena, n_ops * sizeof *ops);
    size_t *owner = tfs_arena_alloc(jb->arena, n_ops * sizeof *owner);
    if (!ops || !owner)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const tfs_sdk_entity *tgt_entities = tfs_instance_entity_get(b->tgt, 0);
    int inserts = tfs_instance_takes_inserts(b->tgt);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rs[i].write)
            continue;
        /* A key with no sync map row that the conflict fetch (if any) did not find in the
         * target is an insert (SDK 1.5): the plugin may load it the fast way, and upserts
         * it when it is there after all (a replay after a lost state commit). */
        tfs_sdk_op_kind kind = rs[i].deleted ? rs[i].kind
                               : inserts && rs[i].is_new && !rs[i].in_target
                                   ? TFS_SDK_OP_INSERT
                                   : TFS_SDK_OP_UPSERT;
        for (size_t j = 0; j < rs[i].out.n; j++) {
            const tfs_record *rec = rs[i].out.recs[j];
            /* Every target record's entity is one of the target instance's, so its position
             * there is its index for the plugin. */
            ops[k] = (tfs_sdk_write_op){(size_t)(rec->entity - tgt_entities), kind, rec};
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
    int rc = tfs_stage_write_ops(b, ops, owner, n_ops, jb->arena, &res, err);
    if (rc == 0) {
        for (size_t o = 0; o < n_ops; o++) {
            if (res.status[o] == TFS_SDK_OK)
                continue;
            tfs_stage_rec *r = &rs[owner[o]];
            if (r->write) {
                r->write = 0;
                jb->delta.write_failed++;
            }
            fail_rec(r, "write", res.message[o] ? res.message[o] : "the target refused it");
            if (res.status[o] == TFS_SDK_ETRANSIENT)
                r->error_class = "transient";
        }
    }
    tfs_results_free(&res);
    return rc;
}

/* Between the compare and the write: a record mapped to nothing that leaves nothing to
 * remove (a confidential sale) is skipped, neither written nor audited nor in the sync
 * map; an incremental run's deletions wait in the store until its reads end and the
 * deletion guard has weighed their total (pipeline.c applies them). */
static void skip_and_set_aside(tfs_stage_ctx *b, tfs_stage_job *jb)
{
    for (size_t i = 0; i < jb->batch.n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        if (r->stage || !r->write)
            continue;
        if (r->deleted && b->changes && !b->sweeping) {
            r->write = 0;
            r->set_aside = 1;
        } else if (!r->deleted && r->out.n == 0 && r->n_orphans == 0) {
            r->write = 0;
            r->skipped = 1;
            jb->delta.skipped++;
        }
    }
}

int tfs_stage_process(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    double t2 = now_ms();
    int rc = tfs_stage_compare(b, jb, err);
    if (rc)
        return rc;
    skip_and_set_aside(b, jb);
    double t3 = now_ms();
    jb->delta.compare_ms += t3 - t2;
    if ((rc = tfs_stage_resolve(b, jb, err)))
        return rc;
    rc = tfs_stage_write(b, jb, err);
    jb->delta.write_ms += now_ms() - t3;
    return rc;
}

/* ---- committing --------------------------------------------------------------------- */

static void counts_add(tfs_stage_counts *c, const tfs_stage_counts *d)
{
    c->started = 1;
    c->read += d->read;
    c->read_failed += d->read_failed;
    c->transform_failed += d->transform_failed;
    c->validate_failed += d->validate_failed;
    c->write_failed += d->write_failed;
    c->unchanged += d->unchanged;
    c->skipped += d->skipped;
    c->conflicts += d->conflicts;
    c->drift += d->drift;
    c->read_ms += d->read_ms;
    c->transform_ms += d->transform_ms;
    c->compare_ms += d->compare_ms;
    c->write_ms += d->write_ms;
}

/* The sync map row of a written record: its hashes, its target keys and the records as
 * written, as JSON text built straight into a buffer (no jansson tree per record). */
static int syncmap_row(tfs_stage_ctx *b, tfs_stage_rec *r, tfs_arena *a, tfs_syncmap_row *row)
{
    row->source_key = r->key;
    row->is_new = r->is_new;
    tfs_hash_hex(r->src_hash, row->source_hash);
    tfs_hash_hex(r->tgt_hash, row->target_hash);
    tfs_buf *kb = b->commit_scratch;
    tfs_buf_reset(kb);
    tfs_buf_putc(kb, '[');
    for (size_t j = 0; j < r->out.n; j++) {
        const tfs_record *t = r->out.recs[j];
        char hex[17];
        uint64_t th;
        if (tfs_canonical_hash(b->commit_scratch2, &t, 1, &th, NULL) != 0)
            return TFS_ENOMEM;
        tfs_hash_hex(th, hex);
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
    return kb->oom || !row->target_keys || !row->target_record ? TFS_ENOMEM : 0;
}

int tfs_stage_syncmap_row(tfs_stage_ctx *b, tfs_stage_rec *r, tfs_arena *a,
                          tfs_syncmap_row *row)
{
    return syncmap_row(b, r, a, row);
}

/* What the transaction of one batch holds, gathered from its records. */
typedef struct commit_rows {
    tfs_syncmap_row *rows;
    tfs_failed_row *failed;
    const char **mark, **forget, **set_aside;
    tfs_audit_row *audit;
    size_t n_rows, n_failed, n_mark, n_forget, n_audit, n_set_aside;
} commit_rows;

/* A batch logs this many of its failed records (each a line carrying its key, in the log
 * context); the rest are in the dead letters only, so a broken script cannot flood the
 * log with a line per record. */
#define TFS_STAGE_FAILED_LOGGED 10

/* The lines of a committed batch's failed records (now dead letters): each one's stage and
 * first reason, its key in the log context (and in the message, for text lines). */
static void log_failed(const tfs_stage_ctx *b, const tfs_failed_row *f, size_t n)
{
    for (size_t i = 0; i < n && i < TFS_STAGE_FAILED_LOGGED; i++) {
        const char *reason = NULL;
        json_t *first = json_is_array(f[i].reasons) ? json_array_get(f[i].reasons, 0)
                                                    : f[i].reasons;
        if (json_is_string(first))
            reason = json_string_value(first);
        else if (json_is_object(first))
            reason = json_string_value(json_object_get(first, "message"));
        tfs_log_context_key(f[i].source_key);
        tfs_log_warn("pipeline", "run %" PRId64 ": %s record \"%s\" failed at %s: %s",
                     b->run_id, b->em->source, f[i].source_key ? f[i].source_key : "",
                     f[i].stage, reason ? reason : "see its dead letter");
    }
    if (n > TFS_STAGE_FAILED_LOGGED)
        tfs_log_warn("pipeline", "run %" PRId64 ": %zu more %s records of the batch failed; "
                     "GET /dead-letters lists them all",
                     b->run_id, n - TFS_STAGE_FAILED_LOGGED, b->em->source);
    tfs_log_context_key(NULL);
}

/* Sorts each record of the batch into the transaction's parts and counts what was
 * applied into the run's totals. */
static int gather(tfs_stage_ctx *b, tfs_stage_job *jb, commit_rows *cr, tfs_error *err)
{
    tfs_arena *a = jb->arena;
    size_t n = jb->batch.n;
    cr->rows = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->rows);
    cr->failed = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->failed);
    cr->mark = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->mark);
    cr->forget = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->forget);
    cr->audit = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->audit);
    cr->set_aside = tfs_arena_calloc(a, n ? n : 1, sizeof *cr->set_aside);
    if (!cr->rows || !cr->failed || !cr->mark || !cr->forget || !cr->audit || !cr->set_aside)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        if (r->stage) {
            cr->failed[cr->n_failed++] = (tfs_failed_row){
                .source_key = r->key, .stage = r->stage, .reasons = r->reasons,
                .record = jb->batch.recs ? tfs_record_to_json(jb->batch.recs[i]) : NULL};
            if (b->full && !r->deleted)
                cr->mark[cr->n_mark++] = r->key; /* it exists: the sweep must not take it */
            continue;
        }
        if (r->set_aside) {
            cr->set_aside[cr->n_set_aside++] = r->key;
            b->c->set_aside++;
            continue;
        }
        if (!r->write) {
            if (b->full && !r->deleted && !r->is_new)
                cr->mark[cr->n_mark++] = r->key;
            /* A deletion with nothing left to do (already deactivated) leaves the target
             * as it is; a sweep's such keys are not records read. */
            if (r->deleted && !r->is_new && !b->full)
                b->c->unchanged++;
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
        const char *changes = tfs_audit_diff_changes(&subj, b->commit_scratch, a);
        if (!changes)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        cr->audit[cr->n_audit++] = (tfs_audit_row){r->key, op, changes, r->detail};
        if (r->deleted) {
            if (b->sweeping && b->full)
                b->c->swept++; /* not among the records read */
            else
                b->c->deleted++;
            if (r->kind == TFS_SDK_OP_DELETE) {
                cr->forget[cr->n_forget++] = r->key;
                continue;
            }
            r->src_hash = 0; /* a deactivated record's source is gone */
        } else {
            b->c->written++;
        }
        if (syncmap_row(b, r, a, &cr->rows[cr->n_rows++]))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return 0;
}

/* What the dead letters of the batch keep beyond gather()'s rows (their error class and
 * the script's version), and the keys that went through, whose open dead letters close. */
static int dead_letter_parts(tfs_stage_job *jb, commit_rows *cr, const char ***ok,
                             size_t *n_ok, tfs_error *err)
{
    size_t n = jb->batch.n, k = 0;
    *n_ok = 0;
    if (!(*ok = tfs_arena_calloc(jb->arena, n ? n : 1, sizeof **ok)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        if (!r->stage) {
            if (!r->set_aside) /* a deletion not applied yet goes through when it is */
                (*ok)[(*n_ok)++] = r->key;
            continue;
        }
        size_t j = k; /* gather() keeps the records' order */
        while (j < cr->n_failed && cr->failed[j].source_key != r->key)
            j++;
        if (j == cr->n_failed)
            continue;
        k = j + 1;
        tfs_failed_row *f = &cr->failed[j];
        f->error_class = r->error_class;
        f->script_version = r->script_version ? r->script_version
                            : jb->script_version[0] ? jb->script_version
                                                    : NULL;
    }
    return 0;
}

/* The source keys of a job, in its arena; NULL when out of memory. */
static const char **keys_of(tfs_stage_job *jb)
{
    const char **k = tfs_arena_calloc(jb->arena, jb->batch.n ? jb->batch.n : 1, sizeof *k);
    for (size_t i = 0; k && i < jb->batch.n; i++)
        k[i] = jb->rs[i].key;
    return k;
}

/* What the committed batch added to the run's totals of the entity (before: the totals
 * before it), into the metrics. */
static void count_committed(const tfs_stage_ctx *b, const tfs_stage_job *jb,
                            const tfs_stage_counts *before)
{
    const tfs_stage_counts *c = b->c;
    tfs_metrics_batch m = {
        .read = c->read - before->read,
        .written = c->written - before->written,
        .unchanged = c->unchanged - before->unchanged,
        .skipped = c->skipped - before->skipped,
        .failed = (c->read_failed + c->transform_failed + c->validate_failed +
                   c->write_failed) -
                  (before->read_failed + before->transform_failed +
                   before->validate_failed + before->write_failed),
        .deleted = c->deleted - before->deleted,
        .swept = c->swept - before->swept,
        .conflicts = c->conflicts - before->conflicts,
        .seconds = jb->started_ms > 0 ? (now_ms() - jb->started_ms) / 1000.0 : 0,
        .lua_seconds = jb->delta.transform_ms / 1000.0};
    tfs_metrics_batch_committed(b->pair->name, b->em->source, &m);
}

int tfs_stage_commit(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    double t4 = now_ms();
    tfs_stage_counts before = *b->c;
    counts_add(b->c, &jb->delta);
    commit_rows cr = {0};
    const char **ok = NULL;
    size_t n_ok = 0;
    /* The counts committed hold the time of the commits before this one. */
    int rc = gather(b, jb, &cr, err);
    if (rc == 0)
        rc = dead_letter_parts(jb, &cr, &ok, &n_ok, err);
    /* One run of a pair at a time: only this committer opens the entity's dead letters, so
     * once the store said there were none, none exist until it commits a failure. */
    if (rc == 0 && !b->dead_letters_known && n_ok) {
        /* Not answered: close them anyway, the commit will say what the store can do. */
        b->dead_letters_known = tfs_store_batch_dead_letters_open(
                                    b->commit_store, b->pair->name, b->em->source,
                                    &b->dead_letters_open, NULL) == 0;
        if (!b->dead_letters_known)
            b->dead_letters_open = 1;
    }
    if (!b->dead_letters_open)
        n_ok = 0;
    tfs_batch_commit bc = {
        .pair = b->pair->name,
        .entity = b->em->source,
        .run_id = b->run_id,
        /* A sync run's batches; a replay, an operator's request, waits for its flush. */
        .async_commit = !b->replaying,
        .rows = cr.rows,
        .n_rows = cr.n_rows,
        .failed = cr.failed,
        .n_failed = cr.n_failed,
        .cursor_kind = b->changes ? "changes" : "full",
        .cursor = jb->batch.cursor,
        .cursor_len = jb->batch.cursor_len,
        .cursor_done = jb->batch.done,
        .counts = b->counts,
        .n_counts = b->n_counts,
        .mark_keys = cr.mark,
        .n_mark = cr.n_mark,
        .forget_keys = cr.forget,
        .n_forget = cr.n_forget,
        .audit = cr.audit,
        .n_audit = cr.n_audit,
        .actor = b->actor,
        .lease = b->lease,
        .ok_keys = ok,
        .n_ok = n_ok,
        .replayed = b->replaying,
        .set_aside_keys = cr.set_aside,
        .n_set_aside = cr.n_set_aside,
    };
    if (rc == 0)
        rc = tfs_stage_conflict_parts(b, jb, &bc, err);
    if (b->sweeping && !b->full) { /* applying set-aside deletions: every key of the job */
        bc.applied_keys = (const char *const *)keys_of(jb);
        bc.n_applied = jb->batch.n;
        b->c->set_aside -= (int64_t)jb->batch.n; /* now deleted, unchanged or failed */
        if (!bc.applied_keys && rc == 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    if (b->sweeping || b->replaying) /* no cursor moves */
        bc.cursor_kind = NULL;
    else if (!jb->batch.cursor_set)
        bc.cursor = NULL; /* a first read that returned nothing */
    if (rc == 0) {
        /* Not retried in place: a commit cut off by a lost connection may have committed
         * (PostgreSQL's reply was lost, not its work), and a second one would add the
         * batch's audit entries again. The run waits instead and resumes from the
         * checkpoint the store holds, which says whether it did, as after a crash. */
        rc = tfs_store_batch_commit(b->commit_store, &bc, err);
        if (b->store_breaker && rc == 0)
            tfs_breaker_success(b->store_breaker, tfs_health_now_ms());
        else if (b->store_breaker && rc == TFS_ETRANSIENT)
            tfs_breaker_failure(b->store_breaker, err->message, tfs_health_now_ms());
    }
    if (rc == 0 && cr.n_failed)
        b->dead_letters_open = 1; /* their keys may go through in a later batch */
    if (rc == 0) {
        count_committed(b, jb, &before);
        log_failed(b, cr.failed, cr.n_failed);
    }
    for (size_t i = 0; i < cr.n_failed; i++)
        json_decref(cr.failed[i].record);
    for (size_t i = 0; i < bc.n_conflicts; i++)
        json_decref(bc.conflicts[i].source_record);
    b->c->commit_ms += now_ms() - t4;
    return rc;
}

/* ---- for stage_resolve.c (stage_private.h) ------------------------------------------ */

int tfs_stage_retry(tfs_stage_ctx *b, tfs_breaker *br, tfs_store *store, int *rc,
                    unsigned *attempt, const char *what, tfs_error *err)
{
    return retry_after(b, br, store, rc, attempt, what, err);
}

int tfs_stage_old_records(tfs_stage_ctx *b, const char *old_text, tfs_arena *a,
                          tfs_record ***out, size_t *n_out)
{
    return old_records(b, old_text, a, out, n_out);
}
