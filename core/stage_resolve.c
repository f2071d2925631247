/* core/stage_resolve.c — the conflict stage of a batch (tfs_stage_resolve, see stage.h):
 * between the compare, which knows what the sync map last wrote, and the write, which
 * would overwrite the target. One fetch per target entity of the mapping for the records
 * about to be written, and for those the source did not change when the pair looks for
 * drift; each record whose target changed since the last write is decided by the pair's
 * policy (core/conflict.c), parked under manual; drift is counted and kept, or repaired.
 * What the commit takes of it (parked conflicts, drift rows, settled keys) is gathered by
 * tfs_stage_conflict_parts. docs/decisions.md says what is fetched and what it costs.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "conflict.h"
#include "stage_private.h"

/* Whether this batch looks at the target: the pair detects conflicts, its target can
 * fetch, and this is not a sweep (a deletion of a vanished key is applied as it is). */
static int detects_conflicts(const tfs_stage_ctx *b)
{
    return b->pair->conflict.detect && !b->sweeping && b->tgt && tfs_instance_can_fetch(b->tgt);
}

/* records as {entity: [records]} JSON text, grouped by entity in order, in the arena. */
static const char *records_json(tfs_buf *kb, const tfs_record *const *recs, size_t n,
                                tfs_arena *a)
{
    tfs_buf_reset(kb);
    tfs_buf_putc(kb, '{');
    int first = 1;
    for (size_t j = 0; j < n; j++) {
        if (!recs[j])
            continue;
        const tfs_sdk_entity *e = recs[j]->entity;
        int seen = 0;
        for (size_t k = 0; k < j && !seen; k++)
            seen = recs[k] && recs[k]->entity == e;
        if (seen)
            continue;
        if (!first)
            tfs_buf_putc(kb, ',');
        first = 0;
        tfs_json_string_append(kb, e->name, strlen(e->name));
        tfs_buf_puts(kb, ":[");
        for (size_t k = j, m = 0; k < n; k++) {
            if (!recs[k] || recs[k]->entity != e)
                continue;
            if (m++)
                tfs_buf_putc(kb, ',');
            tfs_record_json_append(kb, recs[k]);
        }
        tfs_buf_putc(kb, ']');
    }
    tfs_buf_putc(kb, '}');
    return kb->oom ? NULL : tfs_arena_strndup(a, tfs_buf_str(kb), kb->len);
}

/* The record of recs (n) with rec's entity and key, or NULL. */
static const tfs_record *same_record(tfs_record *const *recs, size_t n, const tfs_record *rec,
                                     const char *key, tfs_arena *a)
{
    for (size_t k = 0; k < n; k++) {
        if (recs[k]->entity != rec->entity)
            continue;
        const char *other = tfs_record_key(a, recs[k]);
        if (other && strcmp(other, key) == 0)
            return recs[k];
    }
    return NULL;
}

/* Orders records by their entity's place among the mapping's targets, then by key. */
typedef struct held_rec {
    size_t entity;
    const char *key;
    const tfs_record *rec;
} held_rec;

static int held_cmp(const void *x, const void *y)
{
    const held_rec *a = x, *b = y;
    if (a->entity != b->entity)
        return a->entity < b->entity ? -1 : 1;
    return strcmp(a->key, b->key);
}

int tfs_stage_target_hash(const tfs_stage_ctx *b, const tfs_record *const *recs, size_t n,
                          tfs_arena *a, tfs_buf *scratch, uint64_t *h)
{
    held_rec *hr = tfs_arena_alloc(a, (n ? n : 1) * sizeof *hr);
    const tfs_record **sorted = tfs_arena_alloc(a, (n ? n : 1) * sizeof *sorted);
    size_t m = 0;
    if (!hr || !sorted)
        return TFS_ENOMEM;
    for (size_t j = 0; j < n; j++) {
        if (!recs[j])
            continue;
        size_t e = 0;
        while (e < b->n_targets && b->targets[e] != recs[j]->entity)
            e++;
        if (!(hr[m].key = tfs_record_key(a, recs[j])))
            return TFS_ENOMEM;
        hr[m].entity = e;
        hr[m++].rec = recs[j];
    }
    qsort(hr, m, sizeof *hr, held_cmp);
    for (size_t j = 0; j < m; j++)
        sorted[j] = hr[j].rec;
    return tfs_canonical_hash(scratch, sorted, m, h, NULL);
}

static int target_hash(const tfs_stage_ctx *b, tfs_buf *sb, const tfs_record **tgt, size_t n,
                       tfs_arena *a, uint64_t *h)
{
    return tfs_stage_target_hash(b, tgt, n, a, sb, h);
}

/* The text of a timestamp or date field by name, or NULL. */
static const char *time_text(const tfs_record *rec, const char *field)
{
    int f = rec && field ? tfs_entity_field_index(rec->entity, field) : -1;
    if (f < 0 || !tfs_type_is_text(rec->values[f].type))
        return NULL;
    return rec->values[f].u.s;
}

/* For each record slot (i, j) of the records looked at, the target's current record
 * (NULL: none) in tgt[slot], fetched with one call per target entity. slot_of[i] is the
 * first slot of record i. */
static int fetch_targets(tfs_stage_ctx *b, tfs_stage_job *jb, const unsigned char *look,
                         const size_t *slot_of, const tfs_record **tgt, const char **keys,
                         tfs_error *err)
{
    tfs_arena *a = jb->arena;
    size_t n = jb->batch.n, n_slots = slot_of[n];
    const tfs_record **want = tfs_arena_alloc(a, (n_slots ? n_slots : 1) * sizeof *want);
    size_t *where = tfs_arena_alloc(a, (n_slots ? n_slots : 1) * sizeof *where);
    if (!want || !where)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t t = 0; t < b->n_targets; t++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; look[i] && j < jb->rs[i].out.n; j++)
                if (jb->rs[i].out.recs[j]->entity == b->targets[t]) {
                    want[k] = jb->rs[i].out.recs[j];
                    where[k++] = slot_of[i] + j;
                }
        if (!k)
            continue;
        int ti = tfs_instance_entity(b->tgt, b->targets[t]->name);
        tfs_batch fb;
        int rc;
        unsigned attempt = 0;
        do {
            tfs_batch_init(&fb, a, b->targets[t]);
            rc = tfs_instance_fetch(b->tgt, (size_t)ti, want, k, &fb, err);
        } while (tfs_stage_retry(b, b->tgt_breaker, NULL, &rc, &attempt, "a fetch", err));
        if (rc)
            return rc;
        /* Fetched records come in any order: an open-addressing table of their keys. */
        size_t cap = 16;
        while (cap < 2 * fb.n)
            cap *= 2;
        size_t *table = tfs_arena_calloc(a, cap, sizeof *table);
        const char **fkeys = tfs_arena_alloc(a, (fb.n ? fb.n : 1) * sizeof *fkeys);
        if (!table || !fkeys)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        for (size_t f = 0; f < fb.n; f++) {
            if (!(fkeys[f] = tfs_record_key(a, fb.recs[f])))
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            size_t h = tfs_hash_bytes(TFS_HASH_SEED, fkeys[f], strlen(fkeys[f])) & (cap - 1);
            while (table[h])
                h = (h + 1) & (cap - 1);
            table[h] = f + 1;
        }
        for (size_t w = 0; w < k; w++) {
            const char *key = keys[where[w]];
            size_t h = tfs_hash_bytes(TFS_HASH_SEED, key, strlen(key)) & (cap - 1);
            for (; table[h]; h = (h + 1) & (cap - 1))
                if (strcmp(fkeys[table[h] - 1], key) == 0) {
                    tgt[where[w]] = fb.recs[table[h] - 1];
                    break;
                }
        }
    }
    return 0;
}

/* Whether the entity's policy asks for a merge on every write (fields a side owns). */
static int merges_always(const tfs_config_conflicts *c, const tfs_sdk_entity *e)
{
    if (tfs_conflict_entity_policy(c, e->name, NULL) != TFS_POLICY_MERGE)
        return 0;
    for (size_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].field && strcmp(c->rules[i].entity, e->name) == 0)
            return 1;
    return 0;
}

/* A record to be written whose target was fetched: a conflict when a target record
 * changed since it was last written (or exists with no write behind it) and differs from
 * what would be written now; decided by the policy, parked by manual. */
static int resolve_write(tfs_stage_ctx *b, tfs_stage_job *jb, size_t i,
                         const tfs_record **tgt, const char **keys, tfs_error *err)
{
    tfs_stage_rec *r = &jb->rs[i];
    tfs_arena *a = jb->arena;
    tfs_buf *sb = b->write_scratch;
    const tfs_config_conflicts *c = &b->pair->conflict;
    /* The common case without parsing the last write: the target holds what the sync map
     * hashed (what was written, unless a merge or target_wins wrote something else), or
     * already what is to be written now. */
    int missing = 0, merge_always = 0;
    for (size_t j = 0; j < r->out.n; j++) {
        missing |= tgt[j] == NULL;
        r->in_target |= tgt[j] != NULL;
        merge_always |= merges_always(c, r->out.recs[j]->entity);
    }
    if (!missing && !merge_always) {
        uint64_t h;
        if (tfs_canonical_hash(sb, tgt, r->out.n, &h, err) != 0)
            return TFS_ENOMEM;
        if ((r->stored_hash && h == r->stored_hash) || h == r->tgt_hash)
            return 0;
    } else if (!merge_always && r->is_new) {
        int any = 0;
        for (size_t j = 0; j < r->out.n; j++)
            any |= tgt[j] != NULL;
        if (!any)
            return 0; /* a new key the target does not have: an insert */
    }
    tfs_record **base = NULL;
    size_t n_base = 0;
    if (r->old && tfs_stage_old_records(b, r->old, a, &base, &n_base) != 0)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory reading the last write");
    int conflict = 0, merge = 0;
    for (size_t j = 0; j < r->out.n; j++) {
        const tfs_record *s = r->out.recs[j];
        const tfs_record *bj = same_record(base, n_base, s, keys[j], a);
        int d = tfs_conflict_differs(tgt[j], s, sb);
        int changed = bj ? tfs_conflict_differs(tgt[j], bj, sb) : tgt[j] != NULL;
        if (d < 0 || changed < 0)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        /* Equal to what is to be written (a replay after a crash): nothing in dispute. */
        conflict |= d && changed;
        merge |= tgt[j] && merges_always(c, s->entity);
    }
    if (!conflict && !merge)
        return 0;
    json_t *disputes = json_array();
    tfs_record **recs = tfs_arena_calloc(a, r->out.n ? r->out.n : 1, sizeof *recs);
    if (!disputes || !recs) {
        json_decref(disputes);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const tfs_record *src = jb->batch.recs ? jb->batch.recs[i] : NULL;
    int parked = 0, any_target = 0, any_merged = 0, rc = 0;
    size_t n_recs = 0;
    for (size_t j = 0; j < r->out.n && !rc; j++) {
        const tfs_record *s = r->out.recs[j];
        const tfs_record *bj = same_record(base, n_base, s, keys[j], a);
        int d = tfs_conflict_differs(tgt[j], s, sb);
        int changed = bj ? tfs_conflict_differs(tgt[j], bj, sb) : tgt[j] != NULL;
        const tfs_record *res = s;
        tfs_conflict_outcome o = TFS_CONFLICT_SOURCE;
        if ((d && changed) || (tgt[j] && merges_always(c, s->entity))) {
            /* The source's time: a field of the source record, else one the mapping
             * set on the target record (a bookkeeping field such as wen, never written). */
            const char *st = time_text(src, c->newest_source);
            tfs_conflict_sides sides = {s, tgt[j], bj, st ? st : time_text(s, c->newest_source),
                                        time_text(tgt[j], c->newest_target)};
            if (tfs_conflict_decide(c, &sides, a, sb, &res, &o, disputes) != 0)
                rc = tfs_error_set(err, TFS_ENOMEM, "out of memory deciding a conflict");
        }
        parked |= o == TFS_CONFLICT_PARK;
        any_target |= o == TFS_CONFLICT_TARGET;
        any_merged |= o == TFS_CONFLICT_MERGED;
        if (res)
            recs[n_recs++] = (tfs_record *)res;
    }
    char *fields = rc ? NULL : json_dumps(disputes, JSON_COMPACT);
    json_decref(disputes);
    if (rc || !fields) {
        free(fields);
        return rc ? rc : tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    r->checked = 1;
    r->target = records_json(sb, tgt, r->out.n, a);
    if (!r->target || target_hash(b, sb, tgt, r->out.n, a, &r->target_hash) != 0) {
        free(fields);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    if (parked) {
        r->parked = 1;
        r->write = 0;
        jb->delta.conflicts++;
        r->fields = tfs_arena_strdup(a, fields);
        free(fields);
        return r->fields ? 0 : tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    if (!conflict && strcmp(fields, "[]") == 0) {
        /* A merge that only kept the fields the target owns: not a conflict. */
        free(fields);
        r->out.recs = recs;
        r->out.n = n_recs;
        return 0;
    }
    const char *decision = any_merged ? "merged" : any_target ? "target" : "source";
    tfs_buf_reset(sb);
    tfs_buf_printf(sb, "{\"conflict\":{\"policy\":\"%s\",\"decision\":\"%s\",\"fields\":%s}}",
                   tfs_conflict_policy_name(c->policy), decision, fields);
    free(fields);
    if (sb->oom || !(r->detail = tfs_arena_strndup(a, tfs_buf_str(sb), sb->len)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    /* The audit entry's "before" is what the target held: the edit this overwrites. */
    r->old = r->target;
    r->out.recs = recs;
    r->out.n = n_recs;
    return 0;
}

/* Records the source did not change whose target differs from the last write: drift.
 * The hash of the mapped records settles most at once (the target holds what was
 * mapped); the rest are compared with the last written records, read in one call. */
static int resolve_drift(tfs_stage_ctx *b, tfs_stage_job *jb, const unsigned char *look,
                         const size_t *slot_of, const tfs_record **tgt, const char **keys,
                         tfs_error *err)
{
    tfs_arena *a = jb->arena;
    tfs_buf *sb = b->write_scratch;
    size_t n = jb->batch.n, n_slow = 0;
    const char **slow = tfs_arena_alloc(a, (n ? n : 1) * sizeof *slow);
    size_t *slow_i = tfs_arena_alloc(a, (n ? n : 1) * sizeof *slow_i);
    if (!slow || !slow_i)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        if (!look[i] || r->write)
            continue;
        r->checked = 1;
        const tfs_record **t = tgt + slot_of[i];
        int missing = 0;
        for (size_t j = 0; j < r->out.n; j++)
            missing |= t[j] == NULL;
        uint64_t h = 0;
        if (!missing && tfs_canonical_hash(sb, t, r->out.n, &h, err) != 0)
            return TFS_ENOMEM;
        if (missing || h != r->tgt_hash) {
            slow_i[n_slow] = i;
            slow[n_slow++] = r->key;
        }
    }
    if (!n_slow)
        return 0;
    const char **old = tfs_arena_calloc(a, n_slow, sizeof *old);
    if (!old)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc;
    unsigned attempt = 0;
    do
        rc = tfs_store_batch_records(b->write_store, b->pair->name, b->em->source, slow, n_slow,
                                     a, old, err);
    while (tfs_stage_retry(b, b->store_breaker, b->write_store, &rc, &attempt, "a sync map read",
                       err));
    if (rc)
        return rc;
    for (size_t k = 0; k < n_slow; k++) {
        tfs_stage_rec *r = &jb->rs[slow_i[k]];
        const tfs_record **t = tgt + slot_of[slow_i[k]];
        const char **rk = keys + slot_of[slow_i[k]];
        tfs_record **base = NULL;
        size_t n_base = 0;
        if (old[k] && tfs_stage_old_records(b, old[k], a, &base, &n_base) != 0)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory reading the last write");
        int drift = 0;
        for (size_t j = 0; j < r->out.n && !drift; j++) {
            const tfs_record *bj = same_record(base, n_base, r->out.recs[j], rk[j], a);
            if ((drift = tfs_conflict_differs(t[j], bj, sb)) < 0)
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        }
        if (!drift)
            continue;
        r->drifted = 1;
        jb->delta.drift++;
        if (!(r->target = records_json(sb, t, r->out.n, a)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        if (b->pair->conflict.drift == TFS_DRIFT_REPAIR) {
            /* Written again as mapped; the audit entry shows the edit it undoes. */
            r->write = 1;
            jb->delta.unchanged--;
            r->old = r->target;
            r->detail = "{\"drift\":\"repaired\"}";
        }
    }
    return 0;
}

/* The conflict stage: between the compare (which knows what the sync map last wrote) and
 * the write (which would overwrite the target). One fetch per target entity for the
 * records about to be written, and for those unchanged when the pair looks for drift. */
int tfs_stage_resolve(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err)
{
    if (!detects_conflicts(b))
        return 0;
    tfs_arena *a = jb->arena;
    size_t n = jb->batch.n;
    int drift = b->pair->conflict.drift != TFS_DRIFT_IGNORE;
    unsigned char *look = tfs_arena_calloc(a, n ? n : 1, 1);
    size_t *slot_of = tfs_arena_alloc(a, (n + 1) * sizeof *slot_of);
    if (!look || !slot_of)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t n_slots = 0, n_look = 0;
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        slot_of[i] = n_slots;
        look[i] = !r->stage && !r->deleted && r->out.n > 0 &&
                  (r->write || (drift && !r->is_new));
        if (look[i]) {
            n_slots += r->out.n;
            n_look++;
        }
    }
    slot_of[n] = n_slots;
    if (!n_look)
        return 0;
    const tfs_record **tgt = tfs_arena_calloc(a, n_slots, sizeof *tgt);
    const char **keys = tfs_arena_alloc(a, n_slots * sizeof *keys);
    if (!tgt || !keys)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; look[i] && j < jb->rs[i].out.n; j++)
            if (!(keys[slot_of[i] + j] = tfs_record_key(a, jb->rs[i].out.recs[j])))
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc = fetch_targets(b, jb, look, slot_of, tgt, keys, err);
    for (size_t i = 0; !rc && i < n; i++)
        if (look[i] && jb->rs[i].write) {
            jb->rs[i].checked = 1;
            rc = resolve_write(b, jb, i, tgt + slot_of[i], keys + slot_of[i], err);
        }
    if (!rc && drift)
        rc = resolve_drift(b, jb, look, slot_of, tgt, keys, err);
    return rc;
}

int tfs_stage_conflict_parts(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_batch_commit *bc,
                             tfs_error *err)
{
    tfs_arena *a = jb->arena;
    size_t n = jb->batch.n, nc = 0, nd = 0, ns = 0;
    for (size_t i = 0; i < n; i++) {
        nc += jb->rs[i].parked;
        nd += jb->rs[i].drifted && !jb->rs[i].write;
        ns += jb->rs[i].checked;
    }
    if (!nc && !nd && !ns)
        return 0;
    tfs_conflict_row *cs = tfs_arena_calloc(a, nc ? nc : 1, sizeof *cs);
    tfs_drift_row *ds = tfs_arena_calloc(a, nd ? nd : 1, sizeof *ds);
    const char **ss = tfs_arena_calloc(a, ns ? ns : 1, sizeof *ss);
    if (!cs || !ds || !ss)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    tfs_buf *kb = b->commit_scratch;
    for (size_t i = 0; i < n; i++) {
        tfs_stage_rec *r = &jb->rs[i];
        if (r->parked) {
            tfs_conflict_row *c = &cs[bc->n_conflicts++];
            c->source_key = r->key;
            c->policy = tfs_conflict_policy_name(b->pair->conflict.policy);
            c->source_record = jb->batch.recs ? tfs_record_to_json(jb->batch.recs[i]) : NULL;
            c->source = records_json(kb, (const tfs_record *const *)r->out.recs, r->out.n, a);
            c->target = r->target;
            c->base = r->old;
            c->fields = r->fields;
            tfs_hash_hex(r->tgt_hash, c->source_hash);
            tfs_hash_hex(r->target_hash, c->target_hash);
            if (!c->source)
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        } else if (r->drifted && !r->write) {
            ds[bc->n_drift++] = (tfs_drift_row){r->key, r->target};
        } else if (r->checked && !r->stage) {
            ss[bc->n_settled++] = r->key;
        }
    }
    bc->conflicts = cs;
    bc->drift = ds;
    bc->settled_keys = ss;
    return 0;
}
