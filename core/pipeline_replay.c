/* core/pipeline_replay.c — the dead-letter replay job of a pair; see pipeline_private.h.
 *
 * The open dead letters its params select ({"entity", "run_id", "stage", "ids"}) go,
 * entity mapping by mapping and batch by batch in id order, through the stages of an
 * ordinary run with the current script and rules: read again from the source where it
 * can fetch them (else their stored records), mapped, validated, compared, resolved,
 * written and committed. The commit closes the dead letters of the keys that went through
 * as replayed (audited as op "replay"); those that fail again stay open with their new
 * reasons and one more attempt. The job's result says which, per key; the run is partial
 * when some failed again. It runs on the worker alone, as the sweep does.
 */
#include "pipeline_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_batch.h"

/* At most this many keys are listed in a replay's result (the counts say how many). */
#define REPLAY_MAX_LISTED 1000

typedef struct replay_result {
    json_t *keys; /* [{"id", "entity", "key", "outcome", "stage", "reasons", "attempts"}] */
    json_int_t replayed, failed_again;
    int64_t *ids; /* the ids asked for, sorted, and which of them were found */
    unsigned char *seen;
    size_t n_ids;
} replay_result;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void mark_seen(replay_result *res, int64_t id)
{
    int64_t *at = res->n_ids ? bsearch(&id, res->ids, res->n_ids, sizeof id, cmp_id) : NULL;
    if (at)
        res->seen[at - res->ids] = 1;
}

/* The params into the filter (ids into res, sorted); TFS_EINVAL for params the API would
 * not have sent. */
static int read_params(const json_t *params, const char *pair, tfs_replay_filter *f,
                       replay_result *res, tfs_error *err)
{
    *f = (tfs_replay_filter){.pair = pair};
    const json_t *ids = json_object_get(params, "ids");
    f->stage = json_string_value(json_object_get(params, "stage"));
    f->run_id = json_integer_value(json_object_get(params, "run_id"));
    f->entity = json_string_value(json_object_get(params, "entity"));
    size_t n = json_array_size(ids);
    if (!n)
        return 0;
    res->ids = calloc(n, sizeof *res->ids);
    res->seen = calloc(n, 1);
    if (!res->ids || !res->seen)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        res->ids[i] = json_integer_value(json_array_get(ids, i));
    qsort(res->ids, n, sizeof *res->ids, cmp_id);
    res->n_ids = n;
    f->ids = res->ids;
    f->n_ids = n;
    return 0;
}

/* What happened to each dead letter of the batch, from its record's stage. */
static int note_outcomes(replay_result *res, const tfs_stage_job *jb, const char *entity,
                         const tfs_dead_letter *dl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tfs_stage_rec *r = &jb->rs[i];
        int failed = r->stage != NULL;
        if (failed)
            res->failed_again++;
        else
            res->replayed++;
        mark_seen(res, dl[i].id);
        if (json_array_size(res->keys) >= REPLAY_MAX_LISTED)
            continue;
        json_t *k = json_pack("{sIsssssssi}", "id", (json_int_t)dl[i].id, "entity", entity,
                              "key", dl[i].source_key, "outcome",
                              failed ? "failed_again" : "replayed", "attempts",
                              dl[i].attempts + failed);
        if (!k)
            return TFS_ENOMEM;
        if (failed) {
            json_object_set_new(k, "stage", json_string(r->stage));
            json_object_set(k, "reasons", r->reasons ? r->reasons : json_array());
        }
        if (json_array_append_new(res->keys, k) != 0)
            return TFS_ENOMEM;
    }
    return 0;
}

/* Replays the selected dead letters of one entity mapping, batch by batch. */
static int replay_entity(tfs_pipeline *p, tfs_stage_ctx *b, tfs_replay_filter *f,
                         replay_result *res, tfs_error *err)
{
    /* The dead letters of a batch live in a second arena: the job's is reset when it
     * takes them (as the sweep's keys do). */
    tfs_stage_job *jb = &p->jobs[0];
    tfs_arena *ka = p->jobs[1].arena;
    tfs_stage_job_clear(&p->jobs[1]);
    f->entity = b->em->source;
    int64_t after = 0;
    int rc = 0;
    for (;;) {
        tfs_dead_letter *dl = NULL;
        size_t n = 0;
        if (b->stop && atomic_load(b->stop))
            return tfs_error_set(err, TFS_ELIMIT, "stopped between replay batches");
        tfs_arena_reset(ka);
        if ((rc = tfs_store_batch_dead_letters(p->store, f, after, b->pair->batch_size, ka, &dl,
                                               &n, err)) ||
            n == 0)
            break;
        const char **keys = tfs_arena_calloc(ka, n, sizeof *keys);
        json_t **stored = tfs_arena_calloc(ka, n, sizeof *stored);
        if (!keys || !stored) {
            tfs_store_dead_letters_free(dl, n);
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < n; i++) {
            keys[i] = dl[i].source_key;
            stored[i] = dl[i].record;
        }
        if (!(rc = tfs_stage_fetch(b, jb, keys, stored, n, err)) &&
            !(rc = tfs_stage_process(b, jb, err)) && !(rc = tfs_stage_commit(b, jb, err)) &&
            note_outcomes(res, jb, b->em->source, dl, n) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        after = dl[n - 1].id;
        tfs_store_dead_letters_free(dl, n);
        tfs_stage_job_clear(jb);
        if (rc)
            break;
    }
    tfs_stage_job_clear(jb);
    return rc;
}

/* {"replayed", "failed_again", "keys": [...], "keys_truncated", "not_open": [ids]}. */
static json_t *result_json(replay_result *res)
{
    json_t *not_open = json_array();
    for (size_t i = 0; not_open && i < res->n_ids; i++)
        if (!res->seen[i] && (i == 0 || res->ids[i] != res->ids[i - 1]))
            json_array_append_new(not_open, json_integer(res->ids[i]));
    json_int_t listed = (json_int_t)json_array_size(res->keys);
    return json_pack("{sIsIsOsbso*}", "replayed", res->replayed, "failed_again",
                     res->failed_again, "keys", res->keys, "keys_truncated",
                     listed < res->replayed + res->failed_again, "not_open", not_open);
}

int tfs_pipeline_replay(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                        tfs_error *err)
{
    const tfs_config_pair *pair = proto->pair;
    replay_result res = {.keys = json_array()};
    tfs_replay_filter f = {0};
    int rc = res.keys ? read_params(run->params, pair->name, &f, &res, err)
                      : tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *only = f.entity;
    for (size_t i = 0; rc == 0 && i < pair->n_entities; i++) {
        tfs_stage_ctx b = *proto;
        b.em = &pair->entities[i];
        if (only && strcmp(only, b.em->source) != 0)
            continue;
        b.replaying = 1;
        b.changes = 0; /* read by key, not for changes: its deletions apply at once */
        b.commit_store = p->store; /* one thread: the worker's connection */
        b.c = tfs_pipeline_counts_of(run, b.em->source);
        b.counts = run->counts;
        b.n_counts = run->n_counts;
        if ((rc = tfs_pipeline_prepare_mapping(p, &b, err)) == 0)
            rc = replay_entity(p, &b, &f, &res, err);
        free(b.targets);
    }
    if (rc == 0) {
        json_decref(p->outcome.result);
        if (!(p->outcome.result = result_json(&res)))
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        else if (res.failed_again)
            p->outcome.state = "partial";
    }
    json_decref(res.keys);
    free(res.ids);
    free(res.seen);
    return rc;
}
