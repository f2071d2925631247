/* core/stage.h — the stages one batch of one entity mapping goes through: read and
 * transform (the reading side), compare, resolve and write (the writing side), commit (the
 * committing side).
 *
 * A batch lives in a tfs_stage_job: its source records, what the pipeline knows of each,
 * and the counts gathered for it, all in the job's arena. The stages share a
 * tfs_stage_ctx per entity mapping, which says which resources each side uses; a stage
 * touches only its own side's, so the three sides can run on three threads (see
 * handoff.h). Only the committing side changes the run's totals.
 */
#ifndef TFS_STAGE_H
#define TFS_STAGE_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "arena.h"
#include "breaker.h"
#include "retry.h"
#include "buf.h"
#include "config.h"
#include "error.h"
#include "lua_transform.h"
#include "plugin_host.h"
#include "record.h"
#include "store.h"
#include "store_batch.h"

/* Counts of an entity and where its time goes per stage, so an operator sees which side
 * is slow: the store's type, which records them. */
typedef tfs_store_counts tfs_stage_counts;

/* What the pipeline knows of one source record while its batch is processed. */
typedef struct tfs_stage_rec {
    const char *key;
    tfs_lua_output out;
    uint64_t src_hash, tgt_hash;
    json_t *reasons; /* set: failed (owned; tfs_stage_job_clear drops it) */
    const char *stage;
    int write;   /* needs writing */
    int is_new;  /* no sync map row yet */
    int deleted; /* gone from the source: the pair's delete action applies */
    int set_aside; /* a deletion an incremental run keeps for after its reads (the guard) */
    int skipped;   /* mapped to nothing, with nothing to remove: not written */
    tfs_sdk_op_kind kind; /* of the operations in out */
    const char *old; /* the sync map's last written target record (JSON), in the arena */
    tfs_record **orphans; /* last written target records the mapping no longer produces */
    size_t n_orphans;
    /* a failed record's dead letter: "permanent" (NULL), "limit" (a Lua limit),
     * "transient"; the version of the script that refused it (in the arena, or NULL) */
    const char *error_class;
    const char *script_version;
    /* conflict detection (tfs_stage_resolve); JSON texts in the arena */
    int checked;         /* the target was fetched for it */
    int in_target;       /* the fetch found a target record of it (then never an insert) */
    int parked;          /* a conflict the manual policy parks: not written */
    int drifted;         /* the target changed though the source did not */
    const char *detail;  /* for the write's audit entry: the decision taken, or NULL */
    const char *target;  /* what the target held: {entity: [records]} */
    const char *fields;  /* parked: the fields in dispute */
    uint64_t target_hash; /* of what the target held */
    uint64_t stored_hash; /* the sync map's target hash (0: no row), set by the compare */
} tfs_stage_rec;

/* One batch and its arena. */
typedef struct tfs_stage_job {
    tfs_arena *arena; /* the job's own, reset by each read */
    tfs_batch batch;
    tfs_stage_rec *rs; /* batch.n entries, in the arena */
    size_t n_rs;       /* entries of rs that hold something to clear */
    tfs_stage_counts delta; /* what the reading and writing sides counted for this batch */
    char script_version[13]; /* of the mapping when the batch was transformed; "": unknown */
    double started_ms; /* when its read began (the monotonic clock), for its latency */
} tfs_stage_job;

/* What the stages of one entity mapping share, and each side's own resources. */
typedef struct tfs_stage_ctx {
    const tfs_config_pair *pair;
    const tfs_config_entity *em;
    int64_t run_id;
    const char *actor;  /* for the audit trail */
    char today[11];     /* a deactivation's date, fixed when the run starts */
    const atomic_int *stop;
    const tfs_lease *lease; /* the run's: checked before each write and in each commit */
    int changes;  /* reading changes (an incremental run), else everything */
    int full;     /* a full run: mark what it sees, sweep what it did not */
    int sweeping; /* applying deletions after the reads: a full run's vanished keys
                   * (counted swept), an incremental run's set-aside ones (deleted) */
    /* the reading side */
    tfs_instance *src;
    size_t src_entity;
    tfs_lua *lua;
    tfs_buf *read_scratch;
    /* the writing side */
    tfs_instance *tgt;
    const tfs_sdk_entity **targets; /* target entities of the mapping, in tgt */
    size_t n_targets;
    tfs_store *write_store; /* the sync map's compare */
    tfs_buf *write_scratch;
    /* the committing side */
    tfs_store *commit_store;
    tfs_buf *commit_scratch, *commit_scratch2;
    tfs_stage_counts *c;         /* the run's totals for the entity: one of counts */
    const tfs_stage_counts *counts; /* every entity's, as the run records them */
    size_t n_counts;
    /* healing: each side's calls report to their system's breaker (NULL: none) and are
     * retried after the policy's waits until it opens */
    tfs_breaker *src_breaker, *tgt_breaker, *store_breaker;
    const tfs_retry_policy *retry;
    /* replaying dead letters: no cursor moves, and the keys that go through close their
     * dead letters as replayed (in any other run: as resolved) */
    int replaying;
    /* the committing side's: whether the entity may have open dead letters for the keys
     * that go through to close (asked of the store at the first commit; a failed record
     * sets it), so a run with none pays nothing for closing them */
    int dead_letters_known, dead_letters_open;
} tfs_stage_ctx;

/* Reading side: reads the batch after cursor (NULL: from the start) into the job (its
 * arena reset), retrying transient failures with backoff, then maps, validates and hashes
 * every record. A batch that moved nothing keeps cursor as its position. */
int tfs_stage_read(tfs_stage_ctx *b, tfs_stage_job *jb, const unsigned char *cursor,
                   size_t cursor_len, tfs_error *err);
/* Reading side of a replay: a job of the records of keys (n, with their dead letters'
 * stored source records, NULL where none) read again from the source where it can fetch
 * them (a key it no longer has is a deletion), else the stored records (none: a deletion,
 * which is what a dead letter without a record was); then mapped, validated and hashed
 * as tfs_stage_read does. keys and stored must not live in the job's arena. */
int tfs_stage_fetch(tfs_stage_ctx *b, tfs_stage_job *jb, const char *const *keys,
                    json_t *const *stored, size_t n, tfs_error *err);
/* A job of keys only, each deleted from the source (the sweep), in the job's arena. */
int tfs_stage_of_keys(tfs_stage_ctx *b, tfs_stage_job *jb, const char *const *keys, size_t n,
                      tfs_error *err);
/* Writing side: compare with the sync map, resolve, write to the target. */
int tfs_stage_compare(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err);
int tfs_stage_resolve(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err);
int tfs_stage_write(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err);
/* Writes n_ops operations (the ops of one source record adjacent, owner[i] the source
 * record of op i: any numbers, equal for one record) in as many target writes as the
 * target's write limits need (tfs_instance_write_limits, SDK 1.3): source records whole
 * into each call while they fit, a record whose ops alone pass a limit cut by the limit.
 * Each call is told its ops' source records (op_source, from 0 per call), checks the
 * run's lease first and is retried with backoff while transient. On success *res holds
 * one result per op, in the order of ops (tfs_results_free it); on a failure nothing is
 * left to free, and the calls before the failing one have written (writes are idempotent
 * by key, so the batch is written again whole). Planning memory is in the arena. */
int tfs_stage_write_ops(tfs_stage_ctx *b, const tfs_sdk_write_op *ops, const size_t *owner,
                        size_t n_ops, tfs_arena *a, tfs_results *res, tfs_error *err);
/* The three above in order, with their timings. */
int tfs_stage_process(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err);
/* Committing side: the job's sync map rows, failed records, audit entries, cursor and the
 * run's counts (its delta added first) in one state store transaction, retried while
 * transient. */
int tfs_stage_commit(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_error *err);
/* The sync map row of r as written (r->out), in the arena, with b's commit scratch
 * buffers: for a resolve job, which commits one record outside a batch. */
int tfs_stage_syncmap_row(tfs_stage_ctx *b, tfs_stage_rec *r, tfs_arena *a,
                          tfs_syncmap_row *row);
/* The hash of what a target holds for a record: recs (NULL entries skipped) ordered by
 * their entity's place among b's targets, then by key, so that it never depends on the
 * order they were fetched or stored in. A conflict keeps it; a resolve checks it. */
int tfs_stage_target_hash(const tfs_stage_ctx *b, const tfs_record *const *recs, size_t n,
                          tfs_arena *a, tfs_buf *scratch, uint64_t *h);
/* The hashes of the job's source keys, in its arena; -1 when out of memory. */
int tfs_stage_key_hashes(tfs_stage_job *jb, uint64_t **keys, size_t *n);
/* Drops what the job's records own outside the arena (their failure reasons); the arena
 * itself stays. */
void tfs_stage_job_clear(tfs_stage_job *jb);

#endif
