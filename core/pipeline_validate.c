/* core/pipeline_validate.c — the dry runs of a pair, on a worker as a job of mode
 * "validate" (see pipeline_private.h); nothing is written to the target, the sync map,
 * the cursors or the dead letters, only the job's answer to the run.
 *
 * Two kinds, by the job's params:
 * - {"sample": N} (POST /sync/validate): for each entity mapping, the first N records of
 *   the source's full read (no cursor stored) through the script and the validator, each
 *   answered with what would happen to it (insert, update, unchanged by the sync map's
 *   hash, skip, fail and why), and the mapping checked against the target's described
 *   schema from those outputs: fields the target lacks, required fields the script never
 *   sets, type and length mismatches.
 * - {"test": {"script", "entity", "records", "source"}} (POST /transforms/{name}/test):
 *   the given source records through the script (the saved one, or the unsaved text in
 *   source, loaded into a fresh Lua runtime of the same sandbox and limits, so the live
 *   script is untouched), the validator, the pair's rules and the script's validate():
 *   each record's output, problems or Lua error with its line.
 * Both run here rather than on the request thread because the schemas come from the
 * pair's adapters, which only workers call (request threads never call a system).
 */
#include "pipeline_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "canonical.h"
#include "lua_transform.h"
#include "record.h"
#include "rules.h"
#include "store_batch.h"
#include "tfs_limits.h"
#include "validator.h"

/* The line of a Lua error message "script.lua:42: ..." (0: none), from Lua's own format. */
static long lua_line(const char *script, const char *msg)
{
    size_t n = strlen(script);
    for (const char *at = strstr(msg, script); at; at = strstr(at + 1, script)) {
        if (at[n] != ':')
            continue;
        char *end;
        long line = strtol(at + n + 1, &end, 10);
        if (end != at + n + 1 && *end == ':')
            return line;
    }
    return 0;
}

static json_t *lua_error_json(const char *script, const tfs_error *e)
{
    json_t *j = json_pack("{ss}", "message", e->message);
    long line = lua_line(script, e->message);
    if (line)
        json_object_set_new(j, "line", json_integer(line));
    if (e->detail[0])
        json_object_set_new(j, "traceback", json_string(e->detail));
    return j;
}

/* The outputs as {entity: [records]}. */
static json_t *outputs_json(const tfs_lua_output *out)
{
    json_t *o = json_object();
    for (size_t j = 0; o && j < out->n; j++) {
        const tfs_record *t = out->recs[j];
        json_t *list = json_object_get(o, t->entity->name);
        if (!list) {
            list = json_array();
            json_object_set_new(o, t->entity->name, list);
        }
        json_array_append_new(list, tfs_record_to_json(t));
    }
    return o;
}

/* The first check a mapped record goes through before it is written: the target's schema
 * (tfs_validate_record coerces it in place); dry_record then adds the pair's rules and
 * the script's validate() as the runs do (tfs_rules_check_all), so this dry run and the
 * runs answer alike. Problems go to reasons; -1 when out of memory. */
static int check_record(const tfs_stage_ctx *b, tfs_record *rec, json_t *reasons)
{
    (void)b;
    return tfs_validate_record(rec, reasons);
}

/* What the schema check learns from one mapping's outputs over the sample, per target
 * entity and field: how often a required field was null, and the problems the validator
 * found with it. */
typedef struct field_tally {
    int64_t set, required_null;
    json_t *mismatch; /* the first problem met, borrowed from a record's reasons */
    int64_t n_mismatch;
} field_tally;

typedef struct schema_tally {
    const tfs_stage_ctx *b;
    field_tally **f; /* [target][field] */
    int64_t outputs; /* target records produced, per all targets */
    json_t *unknown; /* {"entity.field": count} from the script's refusals */
} schema_tally;

static int tally_new(schema_tally *t, const tfs_stage_ctx *b)
{
    memset(t, 0, sizeof *t);
    t->b = b;
    t->unknown = json_object();
    t->f = calloc(b->n_targets + 1, sizeof *t->f);
    if (!t->f || !t->unknown)
        return -1;
    for (size_t i = 0; i < b->n_targets; i++)
        if (!(t->f[i] = calloc(b->targets[i]->n_fields + 1, sizeof *t->f[i])))
            return -1;
    return 0;
}

static void tally_free(schema_tally *t)
{
    for (size_t i = 0; t->f && i < t->b->n_targets; i++) {
        for (size_t k = 0; t->f[i] && k < t->b->targets[i]->n_fields; k++)
            json_decref(t->f[i][k].mismatch);
        free(t->f[i]);
    }
    free(t->f);
    json_decref(t->unknown);
}

static int target_index(const tfs_stage_ctx *b, const tfs_sdk_entity *e)
{
    for (size_t i = 0; i < b->n_targets; i++)
        if (b->targets[i] == e)
            return (int)i;
    return -1;
}

/* Before validation: which fields the script set. */
static void tally_output(schema_tally *t, const tfs_record *rec)
{
    int ti = target_index(t->b, rec->entity);
    if (ti < 0)
        return;
    for (size_t k = 0; k < rec->entity->n_fields; k++) {
        const tfs_sdk_field *f = &rec->entity->fields[k];
        if (rec->values[k].type != TFS_SDK_NULL)
            t->f[ti][k].set++;
        else if ((f->flags & TFS_SDK_FIELD_REQUIRED) && !(f->flags & TFS_SDK_FIELD_BOOKKEEPING))
            t->f[ti][k].required_null++;
    }
}

/* After validation: the validator's problems, by the field each names ("entity.field: ..."
 * is its own message format, validator.c). */
static void tally_problems(schema_tally *t, const json_t *reasons, size_t from)
{
    for (size_t i = from; i < json_array_size(reasons); i++) {
        json_t *msg = json_array_get(reasons, i);
        const char *s = json_string_value(msg);
        const char *colon = s ? strchr(s, ':') : NULL;
        const char *dot = s ? strchr(s, '.') : NULL;
        if (!colon || !dot || dot > colon)
            continue;
        for (size_t ti = 0; ti < t->b->n_targets; ti++) {
            const tfs_sdk_entity *e = t->b->targets[ti];
            if (strlen(e->name) != (size_t)(dot - s) || strncmp(e->name, s, (size_t)(dot - s)))
                continue;
            for (size_t k = 0; k < e->n_fields; k++) {
                const char *fn = e->fields[k].name;
                if (strlen(fn) != (size_t)(colon - dot - 1) ||
                    strncmp(fn, dot + 1, (size_t)(colon - dot - 1)))
                    continue;
                field_tally *ft = &t->f[ti][k];
                if ((e->fields[k].flags & TFS_SDK_FIELD_REQUIRED) &&
                    strstr(s, "required") != NULL)
                    continue; /* reported as a required field not set */
                if (!ft->mismatch)
                    ft->mismatch = json_incref(msg);
                ft->n_mismatch++;
            }
        }
    }
}

/* A script's refusal of a field its target lacks ("map() returned unknown field "x" for
 * entity "e"", lua_convert.c's message) counted by entity and field. */
static int tally_unknown(schema_tally *t, const char *msg)
{
    char field[128], entity[128];
    const char *at = strstr(msg, "map() returned unknown field \"");
    if (!at || sscanf(at, "map() returned unknown field \"%127[^\"]\" for entity \"%127[^\"]\"",
                      field, entity) != 2)
        return 0;
    char k[260];
    snprintf(k, sizeof k, "%s.%s", entity, field);
    json_int_t n = json_integer_value(json_object_get(t->unknown, k));
    json_object_set_new(t->unknown, k, json_integer(n + 1));
    return 1;
}

static json_t *tally_json(const schema_tally *t)
{
    json_t *unknown = json_array(), *never = json_array(), *some = json_array(),
           *mism = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(t->unknown, k, v) {
        const char *dot = strchr(k, '.');
        json_array_append_new(unknown, json_pack("{s:s%, s:s, s:O}", "entity", k,
                                                 (size_t)(dot - k), "field", dot + 1,
                                                 "records", v));
    }
    for (size_t ti = 0; ti < t->b->n_targets; ti++) {
        const tfs_sdk_entity *e = t->b->targets[ti];
        for (size_t f = 0; f < e->n_fields; f++) {
            const field_tally *ft = &t->f[ti][f];
            if (ft->required_null && !ft->set)
                json_array_append_new(never, json_pack("{ss ss}", "entity", e->name, "field",
                                                       e->fields[f].name));
            else if (ft->required_null)
                json_array_append_new(some, json_pack("{ss ss sI}", "entity", e->name, "field",
                                                      e->fields[f].name, "records",
                                                      (json_int_t)ft->required_null));
            if (ft->n_mismatch)
                json_array_append_new(mism, json_pack("{ss ss sI sO}", "entity", e->name,
                                                      "field", e->fields[f].name, "records",
                                                      (json_int_t)ft->n_mismatch, "example",
                                                      ft->mismatch));
        }
    }
    json_t *out = json_pack("{so so so so}", "unknown_fields", unknown, "required_never_set",
                            never, "required_sometimes_null", some, "mismatches", mism);
    json_object_set_new(out, "ok", json_boolean(json_array_size(unknown) == 0 &&
                                                json_array_size(never) == 0 &&
                                                json_array_size(mism) == 0));
    return out;
}

/* One source record through the script and the checks: its answer, with status
 * "would_fail" (and stage, reasons), "would_skip" (mapped to nothing) or "mapped" (with
 * the output; *hash is what it would write). */
static json_t *dry_record(const tfs_stage_ctx *b, tfs_lua *lua, const char *script,
                          const tfs_record *src, const char *key, tfs_arena *a, tfs_buf *scratch,
                          schema_tally *t, uint64_t *hash)
{
    tfs_lua_output out = {0};
    tfs_error e = {0};
    json_t *r = json_pack("{ss}", "key", key ? key : "?");
    if (tfs_lua_map(lua, script, src, key, b->targets, b->n_targets, a, &out, &e) != 0) {
        json_object_set_new(r, "status", json_string("would_fail"));
        json_object_set_new(r, "stage", json_string("transform"));
        json_object_set_new(r, "reasons", json_pack("[s]", e.message));
        json_object_set_new(r, "lua_error", lua_error_json(script, &e));
        if (t)
            tally_unknown(t, e.message);
        return r;
    }
    json_t *reasons = json_array();
    unsigned char *typed = tfs_arena_alloc(a, out.n ? out.n : 1);
    if (!typed) {
        json_decref(reasons);
        json_decref(r);
        return NULL;
    }
    for (size_t j = 0; j < out.n; j++) {
        if (t)
            tally_output(t, out.recs[j]);
        size_t before = json_array_size(reasons);
        if (check_record(b, out.recs[j], reasons) < 0) {
            json_decref(reasons);
            json_decref(r);
            return NULL;
        }
        typed[j] = json_array_size(reasons) == before;
        if (t)
            tally_problems(t, reasons, before);
    }
    tfs_rules_env env = {tfs_lua_roll_year(lua), tfs_lua_lookup_has, lua};
    if (tfs_rules_check_all(&b->pair->validation, out.recs, typed, out.n, script, out.problems,
                            out.n_problems, &env, reasons) < 0) {
        json_decref(reasons);
        json_decref(r);
        return NULL;
    }
    json_object_set_new(r, "output", outputs_json(&out));
    if (json_array_size(reasons)) {
        json_object_set_new(r, "status", json_string("would_fail"));
        json_object_set_new(r, "stage", json_string("validate"));
        json_object_set_new(r, "reasons", reasons);
        return r;
    }
    json_decref(reasons);
    if (out.n == 0) {
        json_object_set_new(r, "status", json_string("would_skip"));
        return r;
    }
    json_object_set_new(r, "status", json_string("mapped"));
    if (hash && tfs_canonical_hash(scratch, (const tfs_record *const *)out.recs, out.n, hash,
                                   NULL) != 0)
        *hash = 0;
    return r;
}

/* Whether the mapping's source and targets were all found, so that an error of its
 * preparation was the script's (tfs_pipeline_prepare_mapping loads it last). */
static int targets_resolved(const tfs_stage_ctx *b)
{
    if (!b->targets)
        return 0;
    for (size_t t = 0; t < b->em->n_targets; t++)
        if (!b->targets[t])
            return 0;
    return 1;
}

/* ---- POST /sync/validate ------------------------------------------------------------ */

/* Up to want records of the source's full read from its start, into *recs (the arena). */
static int read_sample(tfs_stage_ctx *b, size_t want, tfs_arena *a, tfs_record ***recs,
                       size_t *n, tfs_error *err)
{
    *recs = tfs_arena_calloc(a, want ? want : 1, sizeof **recs);
    *n = 0;
    if (!*recs)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const void *cursor = NULL;
    size_t cursor_len = 0;
    while (*n < want) {
        tfs_batch batch;
        tfs_batch_init(&batch, a, tfs_instance_entity_get(b->src, b->src_entity));
        size_t max = want - *n < b->pair->batch_size ? want - *n : b->pair->batch_size;
        int rc = tfs_instance_read(b->src, b->src_entity, TFS_SDK_READ_FULL, cursor,
                                   cursor_len, max, &batch, err);
        if (rc)
            return rc;
        for (size_t i = 0; i < batch.n && *n < want; i++)
            (*recs)[(*n)++] = batch.recs[i];
        if (batch.done || batch.n == 0 || !batch.cursor_set)
            break;
        cursor = batch.cursor;
        cursor_len = batch.cursor_len;
    }
    return 0;
}

/* Adds the sync map's view to each mapped answer: insert (no row), update or unchanged
 * (the hash of what it would write against the last written one). */
static int compare_sample(tfs_pipeline *p, const tfs_stage_ctx *b, json_t *answers,
                          const char **keys, const uint64_t *hashes, size_t n, tfs_arena *a,
                          json_t *totals, tfs_error *err)
{
    uint64_t *stored = tfs_arena_alloc(a, (n ? n : 1) * sizeof *stored);
    unsigned char *found = tfs_arena_alloc(a, n ? n : 1);
    if (!stored || !found)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc = n ? tfs_store_batch_hashes(p->store, b->pair->name, b->em->source, keys, n, stored,
                                        found, err)
               : 0;
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(answers, i);
        const char *st = json_string_value(json_object_get(r, "status"));
        if (strcmp(st, "mapped") == 0) {
            st = !found[i] ? "would_insert" : stored[i] != hashes[i] ? "would_update"
                                                                     : "unchanged";
            json_object_set_new(r, "status", json_string(st)); /* st is static text */
        }
        /* Filled by would_conflict() where the pair detects conflicts; null: not checked. */
        json_object_set_new(r, "would_conflict", json_null());
        json_object_set_new(totals, st,
                            json_integer(json_integer_value(json_object_get(totals, st)) + 1));
    }
    return 0;
}

/* What the conflict stage would decide for the sample, without writing: the sample's keys
 * go through the stages a replay uses (read again, mapped, compared with the sync map,
 * the target fetched and the pair's policy applied) in a job of their own, and each
 * answer gets would_conflict: false, or the decision ({"policy", "decision", "fields"};
 * decision "park" for manual), and drift: true where the target changed alone. The job's
 * records never reach a write or a commit. */
static int would_conflict(tfs_pipeline *p, tfs_stage_ctx *b, json_t *answers,
                          tfs_record *const *recs, const char **keys, size_t n, json_t *totals,
                          tfs_error *err)
{
    tfs_stage_job *jb = &p->jobs[1]; /* jobs[0]'s arena holds the sample */
    json_t **stored = calloc(n ? n : 1, sizeof *stored);
    if (!stored)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (!(stored[i] = tfs_record_to_json(recs[i])))
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if (!rc)
        rc = tfs_stage_fetch(b, jb, keys, stored, n, err);
    if (!rc)
        rc = tfs_stage_compare(b, jb, err);
    if (!rc)
        rc = tfs_stage_resolve(b, jb, err);
    json_int_t n_conflicts = 0, n_drift = 0;
    for (size_t i = 0; !rc && i < jb->n_rs; i++) {
        const tfs_stage_rec *r = &jb->rs[i];
        json_t *ans = NULL;
        for (size_t k = 0; k < json_array_size(answers) && !ans; k++) {
            json_t *a = json_array_get(answers, k);
            if (strcmp(json_string_value(json_object_get(a, "key")), r->key) == 0)
                ans = a;
        }
        if (!ans || r->stage)
            continue;
        json_t *verdict = json_false();
        if (r->parked) {
            json_t *fields = r->fields ? json_loads(r->fields, 0, NULL) : NULL;
            verdict = json_pack("{sssssO}", "policy",
                                tfs_conflict_policy_name(b->pair->conflict.policy),
                                "decision", "park", "fields",
                                fields ? fields : json_array());
            json_decref(fields);
        } else if (r->detail) {
            json_t *d = json_loads(r->detail, 0, NULL);
            json_t *c = json_object_get(d, "conflict");
            verdict = c ? json_incref(c) : json_false();
            json_decref(d);
        }
        if (!verdict)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        n_conflicts += json_is_object(verdict);
        n_drift += r->drifted != 0;
        json_object_set_new(ans, "would_conflict", verdict);
        if (r->drifted)
            json_object_set_new(ans, "drift", json_true());
    }
    if (!rc) {
        json_object_set_new(totals, "would_conflict", json_integer(n_conflicts));
        json_object_set_new(totals, "drift", json_integer(n_drift));
    }
    tfs_stage_job_clear(jb);
    for (size_t i = 0; i < n; i++)
        json_decref(stored[i]);
    free(stored);
    return rc;
}

/* Whether the pair looks at its target for conflicts (what the conflict stage checks). */
static int checks_conflicts(const tfs_stage_ctx *b)
{
    return b->pair->conflict.detect && tfs_instance_can_fetch(b->tgt);
}

static int validate_mapping(tfs_pipeline *p, const tfs_stage_ctx *proto,
                            const tfs_config_entity *em, size_t sample, json_t **out,
                            tfs_error *err)
{
    tfs_stage_ctx b = *proto;
    b.em = em;
    tfs_stage_job_clear(&p->jobs[0]);
    tfs_arena *a = p->jobs[0].arena;
    tfs_arena_reset(a);
    json_t *res = json_pack("{ss ss}", "source", em->source, "script", em->script);
    json_t *targets = json_array();
    for (size_t t = 0; t < em->n_targets; t++)
        json_array_append_new(targets, json_string(em->targets[t]));
    json_object_set_new(res, "targets", targets);
    schema_tally tally = {.b = &b};
    int rc = tfs_pipeline_prepare_mapping(p, &b, err);
    if (rc && rc != TFS_ETRANSIENT && rc != TFS_ENOMEM && targets_resolved(&b)) {
        /* The script does not load: every record would fail with it. */
        json_object_set_new(res, "script_error", lua_error_json(em->script, err));
        json_object_set_new(res, "ok", json_false());
        *out = res;
        free(b.targets);
        tfs_error_clear(err);
        return 0;
    }
    if (rc)
        goto fail;
    /* A rule naming a field the target lacks fails a run at its first batch: say so. */
    tfs_error re = {0};
    if (tfs_rules_verify(&b.pair->validation, b.targets, b.n_targets, b.pair->name, &re)) {
        json_object_set_new(res, "rules_error", json_pack("{ssss}", "message", re.message,
                                                          "hint", re.hint));
        json_object_set_new(res, "ok", json_false());
    }
    tfs_record **recs;
    size_t n;
    if ((rc = read_sample(&b, sample, a, &recs, &n, err)))
        goto fail;
    if (tally_new(&tally, &b) != 0) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto fail;
    }
    json_t *answers = json_array();
    json_object_set_new(res, "records", answers);
    const char **keys = tfs_arena_calloc(a, n ? n : 1, sizeof *keys);
    uint64_t *hashes = tfs_arena_calloc(a, n ? n : 1, sizeof *hashes);
    if (!keys || !hashes) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = tfs_record_key(a, recs[i]);
        json_t *r = dry_record(&b, p->lua, em->script, recs[i], keys[i], a, &p->scratch, &tally,
                               &hashes[i]);
        if (!r || !keys[i]) {
            json_decref(r);
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            goto fail;
        }
        json_array_append_new(answers, r);
    }
    json_t *totals = json_pack("{sI}", "read", (json_int_t)n);
    json_object_set_new(res, "counts", totals);
    if ((rc = compare_sample(p, &b, answers, keys, hashes, n, a, totals, err)))
        goto fail;
    /* A rule the target cannot check stops the stages (as it stops a run): said above. */
    if (checks_conflicts(&b) && !json_object_get(res, "rules_error")) {
        tfs_error ce = {0};
        rc = would_conflict(p, &b, answers, recs, keys, n, totals, &ce);
        if (rc == TFS_EPERMANENT) {
            json_object_set_new(res, "conflicts_error", json_pack("{ssss}", "message",
                                                                  ce.message, "hint", ce.hint));
            rc = 0;
        } else if (rc) {
            *err = ce;
            goto fail;
        }
    }
    json_t *schema = tally_json(&tally);
    json_object_set_new(res, "ok", json_boolean(json_is_true(json_object_get(schema, "ok")) &&
                                                !json_object_get(totals, "would_fail") &&
                                                !json_object_get(res, "rules_error")));
    json_object_set_new(res, "schema", schema);
    tally_free(&tally);
    free(b.targets);
    *out = res;
    return 0;
fail:
    if (tally.f || tally.unknown)
        tally_free(&tally);
    free(b.targets);
    json_decref(res);
    return rc;
}

static int validate_pair(tfs_pipeline *p, const tfs_stage_ctx *proto, size_t sample,
                         json_t **out, tfs_error *err)
{
    json_t *res = json_pack("{ss sI sb}", "pair", proto->pair->name, "sample",
                            (json_int_t)sample, "conflicts_checked", checks_conflicts(proto));
    json_t *list = json_array();
    json_object_set_new(res, "entities", list);
    int ok = 1, rc = 0;
    for (size_t i = 0; i < proto->pair->n_entities && rc == 0; i++) {
        json_t *one = NULL;
        if ((rc = validate_mapping(p, proto, &proto->pair->entities[i], sample, &one, err)))
            break;
        ok = ok && json_is_true(json_object_get(one, "ok"));
        json_array_append_new(list, one);
    }
    if (rc) {
        json_decref(res);
        return rc;
    }
    json_object_set_new(res, "ok", json_boolean(ok));
    *out = res;
    return 0;
}

/* ---- POST /transforms/{name}/test --------------------------------------------------- */

static int transform_test(tfs_pipeline *p, const tfs_stage_ctx *proto, const json_t *test,
                          json_t **out, tfs_error *err)
{
    const char *script = json_string_value(json_object_get(test, "script"));
    const char *entity = json_string_value(json_object_get(test, "entity"));
    const json_t *records = json_object_get(test, "records");
    const json_t *text = json_object_get(test, "source");
    const tfs_config_entity *em = NULL;
    for (size_t i = 0; entity && i < proto->pair->n_entities; i++)
        if (strcmp(proto->pair->entities[i].source, entity) == 0)
            em = &proto->pair->entities[i];
    if (!script || !em || !json_is_array(records))
        return tfs_error_set(err, TFS_EPERMANENT, "a transform test needs a script, an entity "
                             "of pair \"%s\" and records", proto->pair->name);
    /* A fresh runtime, so the text tried never reaches the workers' scripts. */
    tfs_lua *lua = NULL;
    int rc = tfs_lua_new(p->cfg->transform_dir, &p->cfg->lua, p->cfg->roll_year, &lua, err);
    if (rc)
        return rc;
    tfs_stage_ctx b = *proto;
    tfs_config_entity em2 = *em;
    em2.script = (char *)script; /* the script named by the request, on this mapping's entities */
    b.em = &em2;
    b.lua = lua;
    tfs_stage_job_clear(&p->jobs[0]);
    tfs_arena *a = p->jobs[0].arena;
    tfs_arena_reset(a);
    json_t *res = json_pack("{ss ss ss sb}", "pair", proto->pair->name, "entity", em->source,
                            "script", script, "unsaved", json_is_string(text));
    /* Unsaved text is pinned in the fresh runtime first; the mapping's preparation (its
     * targets, then the script) then loads the script from there, never from its file. */
    if (json_is_string(text) &&
        (rc = tfs_lua_load_text(lua, script, json_string_value(text), json_string_length(text),
                                err)) == TFS_ENOMEM)
        goto out;
    tfs_lua *workers = p->lua;
    p->lua = lua;
    rc = tfs_pipeline_prepare_mapping(p, &b, err);
    p->lua = workers;
    if (rc && (rc == TFS_ETRANSIENT || rc == TFS_ENOMEM || !targets_resolved(&b)))
        goto out;
    if (rc) { /* the script does not load: its error, with the line */
        json_object_set_new(res, "lua_error", lua_error_json(script, err));
        json_object_set_new(res, "ok", json_false());
        tfs_error_clear(err);
        rc = 0;
        *out = res;
        res = NULL;
        goto out;
    }
    const tfs_sdk_entity *se = tfs_instance_entity_get(b.src, b.src_entity);
    json_t *answers = json_array();
    json_object_set_new(res, "records", answers);
    int ok = 1;
    size_t i;
    json_t *obj;
    json_array_foreach(records, i, obj) {
        tfs_record *src = NULL;
        tfs_error je = {0};
        int jrc = tfs_record_from_json_checked(a, se, obj, &src, &je);
        if (jrc == TFS_EINVAL) {
            /* A value the source entity cannot hold (bytes that are not base64): this
             * record's problem, said as the reader would fix it; the others go on. */
            json_array_append_new(answers, json_pack("{ss s[s]}", "status", "invalid",
                                                     "problems", je.message));
            ok = 0;
            continue;
        }
        const char *key = src ? tfs_record_key(a, src) : NULL;
        json_t *r = src && key ? dry_record(&b, lua, script, src, key, a, &p->scratch, NULL, NULL)
                               : NULL;
        if (!r) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            goto out;
        }
        /* Fields of the record its source entity does not have: a typo the script would
         * otherwise see as null. */
        json_t *unknown = json_array();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)obj, k, v)
            if (tfs_entity_field_index(se, k) < 0)
                json_array_append_new(unknown, json_string(k));
        if (json_array_size(unknown))
            json_object_set_new(r, "unknown_source_fields", unknown);
        else
            json_decref(unknown);
        const char *st = json_string_value(json_object_get(r, "status"));
        if (strcmp(st, "mapped") == 0)
            json_object_set_new(r, "status", json_string("ok"));
        else if (strcmp(st, "would_skip") == 0)
            json_object_set_new(r, "status", json_string("skipped"));
        else
            ok = 0;
        json_t *reasons = json_object_get(r, "reasons");
        json_object_set_new(r, "problems", reasons ? json_incref(reasons) : json_array());
        json_array_append_new(answers, r);
    }
    json_object_set_new(res, "ok", json_boolean(ok));
    *out = res;
    res = NULL;
out:
    json_decref(res);
    free(b.targets);
    tfs_lua_free(lua);
    return rc;
}

int tfs_pipeline_validate(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                          tfs_error *err)
{
    json_t *test = json_object_get(run->params, "test");
    json_t *result = NULL;
    int rc;
    if (json_is_object(test)) {
        rc = transform_test(p, proto, test, &result, err);
    } else {
        json_int_t sample = json_integer_value(json_object_get(run->params, "sample"));
        if (sample <= 0)
            sample = TFS_VALIDATE_SAMPLE_DEFAULT;
        if (sample > TFS_VALIDATE_SAMPLE_MAX)
            sample = TFS_VALIDATE_SAMPLE_MAX;
        rc = validate_pair(p, proto, (size_t)sample, &result, err);
    }
    if (rc == 0)
        p->outcome.result = result;
    return rc;
}
