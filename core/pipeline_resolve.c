/* core/pipeline_resolve.c — the conflict resolve job of a pair; see pipeline_private.h.
 *
 * An operator's decision on a parked conflict, run by a worker as a job of the pair (so
 * never beside a sync of the pair): the target is fetched again, and if it changed since
 * the conflict was recorded the resolve is refused (409) with the new versions, the
 * conflict updated to them. Otherwise the choice is applied: "source" writes what the
 * mapping produced, "target" keeps the target and takes its version into the sync map (so
 * the same edit is not a conflict again), a record is validated against the target schema
 * and written. The sync map row, the audit entry ('resolve', with the resolving key's name)
 * and the conflict's new status commit in one transaction.
 *
 * params: {"conflict_id": N, "choose": "source"|"target"} or {"conflict_id": N, "record":
 * {target entity: [records]}}.
 */
#include "pipeline_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_diff.h"
#include "canonical.h"
#include "conflict.h"
#include "log.h"
#include "store_conflicts.h"
#include "validator.h"

/* The job's answer is a problem the request serves: status, type, title, detail and the
 * extra members of extra (taken). Returns code, with err set to the detail. */
static int refuse(tfs_pipeline *p, int code, int status, const char *type, const char *title,
                  json_t *extra, tfs_error *err, const char *fmt, ...) TFS_PRINTF(8, 9);

static int refuse(tfs_pipeline *p, int code, int status, const char *type, const char *title,
                  json_t *extra, tfs_error *err, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_t *prob = json_pack("{sissssss}", "status", status, "type", type, "title", title,
                             "detail", detail);
    if (prob && extra)
        json_object_update(prob, extra);
    json_decref(extra);
    json_decref(p->outcome.result);
    p->outcome.result = prob ? json_pack("{so}", "problem", prob) : NULL;
    tfs_error_set(err, code, "%s", detail);
    return code;
}

/* Records of a {entity: [records]} object, each of one of b's target entities, in the
 * arena; *what names the first problem when there is one (NULL: out of memory). */
static int records_of(const tfs_stage_ctx *b, const json_t *obj, tfs_arena *a,
                      tfs_record ***out, size_t *n, json_t *reasons)
{
    size_t cap = 0;
    const char *name;
    json_t *list;
    *out = NULL;
    *n = 0;
    if (!json_is_object(obj)) {
        json_array_append_new(reasons, json_string("the record must be an object {target "
                                                   "entity: [records]}"));
        return TFS_EINVAL;
    }
    json_object_foreach((json_t *)obj, name, list) cap += json_array_size(list);
    tfs_record **recs = tfs_arena_calloc(a, cap ? cap : 1, sizeof *recs);
    if (!recs)
        return TFS_ENOMEM;
    int bad = 0;
    json_object_foreach((json_t *)obj, name, list) {
        const tfs_sdk_entity *e = NULL;
        for (size_t t = 0; t < b->n_targets; t++)
            if (strcmp(b->targets[t]->name, name) == 0)
                e = b->targets[t];
        if (!e || !json_is_array(list)) {
            json_array_append_new(reasons,
                                  json_sprintf(!e ? "\"%s\" is not a target entity of this "
                                                    "mapping"
                                                  : "\"%s\" must be an array of records",
                                               name));
            bad = 1;
            continue;
        }
        size_t i;
        json_t *rec;
        json_array_foreach(list, i, rec) {
            if (!json_is_object(rec)) {
                json_array_append_new(reasons,
                                      json_sprintf("%s[%zu] must be an object", name, i));
                bad = 1;
                continue;
            }
            if (!(recs[*n] = tfs_record_from_json(a, e, rec)))
                return TFS_ENOMEM;
            (*n)++;
        }
    }
    *out = recs;
    return bad ? TFS_EINVAL : 0;
}

/* What the target holds now for each of recs (NULL where none), one fetch per entity. */
static int fetch_current(const tfs_stage_ctx *b, tfs_record *const *recs, size_t n,
                         tfs_arena *a, const tfs_record **held, tfs_error *err)
{
    for (size_t j = 0; j < n; j++) {
        held[j] = NULL;
        int done = 0;
        for (size_t k = 0; k < j && !done; k++)
            done = recs[k]->entity == recs[j]->entity;
        if (done)
            continue; /* fetched with an earlier record of its entity */
        const tfs_record **keys = tfs_arena_alloc(a, n * sizeof *keys);
        size_t nk = 0;
        if (!keys)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        for (size_t k = j; k < n; k++)
            if (recs[k]->entity == recs[j]->entity)
                keys[nk++] = recs[k];
        tfs_batch fb;
        tfs_batch_init(&fb, a, recs[j]->entity);
        int ti = tfs_instance_entity(b->tgt, recs[j]->entity->name);
        int rc = tfs_instance_fetch(b->tgt, (size_t)ti, keys, nk, &fb, err);
        if (rc)
            return rc;
        for (size_t k = j; k < n; k++) {
            if (recs[k]->entity != recs[j]->entity)
                continue;
            const char *key = tfs_record_key(a, recs[k]);
            for (size_t f = 0; key && f < fb.n && !held[k]; f++) {
                const char *fk = tfs_record_key(a, fb.recs[f]);
                if (fk && strcmp(fk, key) == 0)
                    held[k] = fb.recs[f];
            }
        }
    }
    return 0;
}

/* {entity: [records]} JSON (new reference) of the records that are not NULL. */
static json_t *versions_json(const tfs_record *const *recs, size_t n)
{
    json_t *o = json_object();
    for (size_t j = 0; o && j < n; j++) {
        if (!recs[j])
            continue;
        json_t *list = json_object_get(o, recs[j]->entity->name);
        if (!list) {
            list = json_array();
            json_object_set_new(o, recs[j]->entity->name, list);
        }
        json_array_append_new(list, tfs_record_to_json(recs[j]));
    }
    return o;
}

static char *dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* The fields in dispute between the conflict's source and the target's new version. */
static json_t *disputes_of(tfs_record *const *src, const tfs_record *const *held,
                           tfs_record *const *base, size_t n_base, size_t n, tfs_arena *a,
                           tfs_buf *scratch)
{
    tfs_config_conflicts manual = {.detect = 1, .policy = TFS_POLICY_MANUAL};
    json_t *d = json_array();
    for (size_t j = 0; d && j < n; j++) {
        const tfs_record *bj = NULL;
        const char *key = tfs_record_key(a, src[j]);
        for (size_t k = 0; key && k < n_base && !bj; k++) {
            const char *bk = base[k]->entity == src[j]->entity ? tfs_record_key(a, base[k]) : NULL;
            if (bk && strcmp(bk, key) == 0)
                bj = base[k];
        }
        tfs_conflict_sides s = {src[j], held[j], bj, NULL, NULL};
        const tfs_record *res;
        tfs_conflict_outcome o;
        if (tfs_conflict_decide(&manual, &s, a, scratch, &res, &o, d) != 0) {
            json_decref(d);
            return NULL;
        }
    }
    return d;
}

typedef struct resolve_job {
    int64_t id;
    json_t *conflict; /* owned */
    const char *choose; /* "source", "target" or "record" */
    const json_t *record;
    tfs_stage_ctx b;
    tfs_arena *a;
    tfs_record **src, **base, **chosen;
    size_t n_src, n_base, n_chosen;
    const tfs_record **held;
} resolve_job;

/* The target changed again since the conflict was recorded: the conflict takes the new
 * versions and the resolve is refused with them. */
static int target_moved(tfs_pipeline *p, resolve_job *j, const char *hex, tfs_error *err)
{
    json_t *target = versions_json(j->held, j->n_src);
    json_t *fields = disputes_of(j->src, j->held, j->base, j->n_base, j->n_src, j->a, &p->wscratch);
    char *t = dump(target), *f = dump(fields);
    int rc = t && f ? tfs_store_conflict_set_target(p->store, j->id, t, hex, f, err)
                    : tfs_error_set(err, TFS_ENOMEM, "out of memory");
    free(t);
    free(f);
    json_decref(fields);
    json_decref(target);
    if (rc)
        return rc;
    json_t *now = NULL;
    if ((rc = tfs_store_conflict_get(p->store, j->id, &now, err)))
        return rc;
    return refuse(p, TFS_ECONFLICT, 409, "target-changed", "Target changed",
                  json_pack("{so}", "conflict", now), err,
                  "the target's record changed since conflict %" PRId64 " was recorded; "
                  "the conflict now holds its new version: decide again on it",
                  j->id);
}

/* The records to write for a choice of "record": its shape, the conflict's keys, the
 * target schema. */
static int check_record(tfs_pipeline *p, resolve_job *j, tfs_error *err)
{
    json_t *reasons = json_array();
    int rc = records_of(&j->b, j->record, j->a, &j->chosen, &j->n_chosen, reasons);
    if (rc == TFS_ENOMEM) {
        json_decref(reasons);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < j->n_chosen; k++) {
        const char *key = tfs_record_key(j->a, j->chosen[k]);
        int known = 0;
        for (size_t s = 0; key && s < j->n_src && !known; s++) {
            const char *sk = j->src[s]->entity == j->chosen[k]->entity
                                 ? tfs_record_key(j->a, j->src[s])
                                 : NULL;
            known = sk && strcmp(sk, key) == 0;
        }
        if (!known)
            json_array_append_new(reasons, json_sprintf("%s \"%s\": not a record of this "
                                                        "conflict (its keys are those of "
                                                        "the source version)",
                                                        j->chosen[k]->entity->name,
                                                        key ? key : "?"));
        /* The target schema: types, lengths, required fields. The pair's validation
         * rules (another module) are applied here too once they exist. */
        if (tfs_validate_record(j->chosen[k], reasons) < 0) {
            json_decref(reasons);
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        }
    }
    if (j->n_chosen == 0 && json_array_size(reasons) == 0)
        json_array_append_new(reasons, json_string("the record holds no target record"));
    if (json_array_size(reasons) == 0) {
        json_decref(reasons);
        return 0;
    }
    size_t n = json_array_size(reasons);
    return refuse(p, TFS_EINVAL, 422, "invalid-record", "Invalid record",
                  json_pack("{so}", "reasons", reasons), err,
                  "the record of the resolve is not valid for the target (%zu reason%s): "
                  "fix it and resolve again",
                  n, n == 1 ? "" : "s");
}

/* Writes what was chosen (nothing for "target"), then commits the sync map row, the
 * audit entry and the conflict's status together. */
static int apply(tfs_pipeline *p, tfs_store_run *run, resolve_job *j, tfs_error *err)
{
    tfs_stage_ctx *b = &j->b;
    const char *key = json_string_value(json_object_get(j->conflict, "source_key"));
    tfs_stage_rec r = {.key = key, .is_new = json_is_null(json_object_get(j->conflict, "base"))};
    const char *hex = json_string_value(json_object_get(j->conflict, "source_hash"));
    r.tgt_hash = hex ? strtoull(hex, NULL, 16) : 0; /* the mapped records' hash */
    const json_t *srcrec = json_object_get(j->conflict, "source_record");
    if (json_is_object(srcrec)) {
        tfs_record *sr = tfs_record_from_json(j->a, tfs_instance_entity_get(b->src, b->src_entity),
                                              srcrec);
        if (sr)
            tfs_canonical_hash(&p->scratch, (const tfs_record *const *)&sr, 1, &r.src_hash, NULL);
    }
    int rc = 0;
    if (strcmp(j->choose, "target") == 0) {
        /* Nothing written: the map takes the target's version as the last written. */
        size_t m = 0;
        tfs_record **kept = tfs_arena_calloc(j->a, j->n_src ? j->n_src : 1, sizeof *kept);
        if (!kept)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        for (size_t k = 0; k < j->n_src; k++)
            if (j->held[k])
                kept[m++] = (tfs_record *)j->held[k];
        r.out.recs = kept;
        r.out.n = m;
    } else {
        int source = strcmp(j->choose, "source") == 0;
        size_t n_write = source ? j->n_src : j->n_chosen;
        /* The sync map's records: those written, then, for a record that leaves out some
         * of the conflict's target records, the target's own version of those. */
        tfs_record **all = tfs_arena_calloc(j->a, n_write + j->n_src + 1, sizeof *all);
        if (!all)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        memcpy(all, source ? j->src : j->chosen, n_write * sizeof *all);
        r.out.recs = all;
        r.out.n = n_write;
        for (size_t k = 0; !source && k < j->n_src; k++) {
            const char *sk = tfs_record_key(j->a, j->src[k]);
            int given = 0;
            for (size_t c = 0; sk && c < j->n_chosen && !given; c++) {
                const char *ck = j->chosen[c]->entity == j->src[k]->entity
                                     ? tfs_record_key(j->a, j->chosen[c])
                                     : NULL;
                given = ck && strcmp(ck, sk) == 0;
            }
            if (!given && j->held[k])
                all[r.out.n++] = (tfs_record *)j->held[k];
        }
        tfs_sdk_write_op *ops = tfs_arena_alloc(j->a, (n_write ? n_write : 1) * sizeof *ops);
        if (!ops)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        const tfs_sdk_entity *first = tfs_instance_entity_get(b->tgt, 0);
        for (size_t k = 0; k < n_write; k++)
            ops[k] = (tfs_sdk_write_op){(size_t)(all[k]->entity - first), TFS_SDK_OP_UPSERT,
                                        all[k]};
        /* One source record: every op is its (op_source 0), cut only by write limits. */
        size_t *owner = tfs_arena_calloc(j->a, n_write ? n_write : 1, sizeof *owner);
        if (!owner)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        tfs_results res;
        rc = tfs_stage_write_ops(b, ops, owner, n_write, j->a, &res, err);
        json_t *refused = json_array();
        for (size_t k = 0; rc == 0 && k < n_write; k++)
            if (res.status[k] != TFS_SDK_OK)
                json_array_append_new(refused, json_string(res.message[k] ? res.message[k]
                                                                          : "refused"));
        tfs_results_free(&res);
        if (rc == 0 && json_array_size(refused)) {
            /* The target's one transaction refused it: nothing was written. */
            return refuse(p, TFS_EINVAL, 422, "invalid-record", "Refused by the target",
                          json_pack("{so}", "reasons", refused), err,
                          "the target refused the record of conflict %" PRId64, j->id);
        }
        json_decref(refused);
        if (rc)
            return rc;
    }
    json_t *fields = json_object_get(j->conflict, "fields");
    json_t *target = versions_json(j->held, j->n_src);
    char *target_text = dump(target);
    json_decref(target);
    char *fields_text = dump(fields);
    tfs_syncmap_row row;
    const char *changes = NULL;
    char *detail = NULL;
    if (!target_text || !fields_text || tfs_stage_syncmap_row(b, &r, j->a, &row) != 0)
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if (!rc) {
        tfs_audit_subject subj = {.recs = (const tfs_record *const *)r.out.recs, .n = r.out.n,
                                  .old = target_text};
        changes = tfs_audit_diff_changes(&subj, &p->cscratch, j->a);
        json_t *d = json_pack("{s{sIsssO}}", "conflict", "id", (json_int_t)j->id, "choose",
                              j->choose, "fields", fields);
        detail = dump(d);
        json_decref(d);
        if (!changes || !detail)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    if (!rc) {
        tfs_audit_row audit = {key, "resolve", changes, detail};
        tfs_batch_commit bc = {
            .pair = b->pair->name, .entity = b->em->source, .run_id = run->run_id,
            .rows = &row, .n_rows = 1, .audit = &audit, .n_audit = 1, .actor = run->actor,
            .lease = b->lease,
            .resolve_id = j->id, .resolution = j->choose};
        rc = tfs_store_batch_commit(p->cstore, &bc, err);
    }
    free(target_text);
    free(fields_text);
    free(detail);
    if (rc == TFS_ECONFLICT && !p->outcome.result)
        return refuse(p, rc, 409, "conflict-not-open", "Conflict not open", NULL, err,
                      "conflict %" PRId64 " was resolved or superseded meanwhile", j->id);
    if (rc)
        return rc;
    json_t *now = NULL;
    tfs_store_conflict_get(p->store, j->id, &now, NULL);
    json_decref(p->outcome.result);
    p->outcome.result = json_pack("{sIsssIso*}", "conflict_id", (json_int_t)j->id,
                                  "resolution", j->choose, "written",
                                  (json_int_t)(strcmp(j->choose, "target") == 0 ? 0
                                               : strcmp(j->choose, "source") == 0
                                                   ? j->n_src
                                                   : j->n_chosen),
                                  "conflict", now);
    return 0;
}

/* Loads the conflict, its mapping and the three versions. */
static int load(tfs_pipeline *p, const tfs_stage_ctx *proto, resolve_job *j, tfs_error *err)
{
    int rc = tfs_store_conflict_get(p->store, j->id, &j->conflict, err);
    if (rc == TFS_ENOTFOUND)
        return refuse(p, rc, 404, "conflict-not-found", "Conflict not found", NULL, err,
                      "no conflict %" PRId64, j->id);
    if (rc)
        return rc;
    const char *status = json_string_value(json_object_get(j->conflict, "status"));
    const char *pair = json_string_value(json_object_get(j->conflict, "pair"));
    const char *entity = json_string_value(json_object_get(j->conflict, "entity"));
    if (!status || strcmp(status, "open") != 0)
        return refuse(p, TFS_ECONFLICT, 409, "conflict-not-open", "Conflict not open",
                      json_pack("{ss?}", "conflict_status", status), err,
                      "conflict %" PRId64 " is %s; only an open conflict can be resolved",
                      j->id, status ? status : "?");
    if (!pair || strcmp(pair, proto->pair->name) != 0)
        return refuse(p, TFS_EINVAL, 409, "conflict-not-open", "Conflict of another pair",
                      NULL, err, "conflict %" PRId64 " belongs to pair \"%s\"", j->id,
                      pair ? pair : "?");
    j->b = *proto;
    for (size_t i = 0; entity && i < proto->pair->n_entities; i++)
        if (strcmp(proto->pair->entities[i].source, entity) == 0)
            j->b.em = &proto->pair->entities[i];
    if (!j->b.em)
        return refuse(p, TFS_EINVAL, 409, "conflict-not-open", "Entity no longer mapped",
                      NULL, err, "pair \"%s\" no longer maps entity \"%s\"", pair,
                      entity ? entity : "?");
    if ((rc = tfs_pipeline_prepare_mapping(p, &j->b, err)))
        return rc;
    json_t *ignored = json_array();
    rc = records_of(&j->b, json_object_get(j->conflict, "source"), j->a, &j->src, &j->n_src,
                    ignored);
    const json_t *base = json_object_get(j->conflict, "base");
    if (!rc && json_is_object(base))
        rc = records_of(&j->b, base, j->a, &j->base, &j->n_base, ignored);
    json_decref(ignored);
    if (rc)
        return tfs_error_set(err, rc == TFS_ENOMEM ? rc : TFS_EPERMANENT,
                             "conflict %" PRId64 " holds records the target no longer has",
                             j->id);
    if (!(j->held = tfs_arena_calloc(j->a, j->n_src ? j->n_src : 1, sizeof *j->held)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    return fetch_current(&j->b, j->src, j->n_src, j->a, j->held, err);
}

int tfs_pipeline_resolve(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                         tfs_error *err)
{
    resolve_job j = {0};
    const json_t *params = run->params;
    j.id = json_integer_value(json_object_get(params, "conflict_id"));
    j.choose = json_string_value(json_object_get(params, "choose"));
    j.record = json_object_get(params, "record");
    if (j.record)
        j.choose = "record";
    if (j.id <= 0 || !j.choose ||
        (strcmp(j.choose, "source") && strcmp(j.choose, "target") && strcmp(j.choose, "record")))
        return refuse(p, TFS_EINVAL, 400, "invalid-body", "Invalid resolve", NULL, err,
                      "a resolve needs a conflict_id and \"choose\": \"source\" or \"target\", "
                      "or a \"record\"");
    if (!tfs_instance_can_fetch(proto->tgt))
        return refuse(p, TFS_EINVAL, 409, "no-conflict-detection", "No conflict detection",
                      NULL, err, "target \"%s\" cannot fetch its records", proto->pair->target);
    if (!(j.a = tfs_arena_new()))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc = load(p, proto, &j, err);
    if (rc == 0) {
        /* Does the target still hold what the conflict recorded? */
        uint64_t h = 0;
        if (tfs_stage_target_hash(&j.b, j.held, j.n_src, j.a, &p->wscratch, &h) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        char hex[17];
        tfs_hash_hex(h, hex);
        const char *was = json_string_value(json_object_get(j.conflict, "target_hash"));
        if (!rc && (!was || strcmp(was, hex) != 0))
            rc = target_moved(p, &j, hex, err);
    }
    if (rc == 0 && strcmp(j.choose, "record") == 0)
        rc = check_record(p, &j, err);
    if (rc == 0)
        rc = apply(p, run, &j, err);
    if (rc == 0)
        tfs_log_info("pipeline", "run %" PRId64 ": conflict %" PRId64 " resolved (%s) by %s",
                     run->run_id, j.id, j.choose, run->actor);
    free(j.b.targets);
    json_decref(j.conflict);
    tfs_arena_free(j.a);
    return rc;
}
