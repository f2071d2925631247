/* core/store_batch.h — what a run's batches read from and commit to the state store: the
 * sync map (hashes and last written records of source keys, marks, the sweep's keys),
 * cursors and change checkpoints, and the one transaction that commits a batch.
 *
 * Results are typed (hashes as numbers, records and keys as text in the caller's arena,
 * cursors as bytes), so nothing the store answers is parsed back by the caller. Every
 * write of a batch (sync map rows, failed records, audit entries, the cursor and the run's
 * counts) is one transaction, committed after the target committed, in batch order: that
 * is what makes a resumed run neither skip nor double a record.
 */
#ifndef TFS_STORE_BATCH_H
#define TFS_STORE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "arena.h"
#include "error.h"
#include "lease.h"
#include "store.h"

/* Cursors per (pair, entity, kind); kind "full" holds a full run's progress (with the run
 * it belongs to), "changes" the incremental position. *cursor is malloc'd (NULL when
 * none). */
int tfs_store_batch_cursor_get(tfs_store *s, const char *pair, const char *entity,
                               const char *kind, int64_t *run_id, int *done,
                               unsigned char **cursor, size_t *len, tfs_error *err);
/* A full run begins an entity: its progress cursor restarts, and pending (the source's
 * change cursor of now; may be NULL) waits to become the incremental checkpoint. */
int tfs_store_batch_full_start(tfs_store *s, const char *pair, const char *entity,
                               int64_t run_id, const void *pending, size_t pending_len,
                               tfs_error *err);

/* The stored target hash of each key: found[i] is 0 where the key has no sync map row. */
int tfs_store_batch_hashes(tfs_store *s, const char *pair, const char *entity,
                           const char *const *keys, size_t n, uint64_t *hashes,
                           unsigned char *found, tfs_error *err);
/* The last written target record (JSON text {"entity": [records]}) of each key, in the
 * arena; NULL where none. */
int tfs_store_batch_records(tfs_store *s, const char *pair, const char *entity,
                            const char *const *keys, size_t n, tfs_arena *a,
                            const char **records, tfs_error *err);
/* Up to limit source keys (after `after`, NULL: from the first) whose sync map row was
 * not seen by the full run `generation`: the keys that vanished from the source. *keys is
 * an array of n strings, all in the arena. */
int tfs_store_batch_sweep_keys(tfs_store *s, const char *pair, const char *entity,
                               int64_t generation, const char *after, size_t limit,
                               tfs_arena *a, const char ***keys, size_t *n, tfs_error *err);
/* What the deletion guard weighs for an entity of a run: *would, the deletions it is
 * about to apply (a full run: the live keys of the sync map it did not see; an
 * incremental run: the keys it set aside), and *synced, the entity's live keys in the
 * sync map (a deactivated key is not live). */
int tfs_store_batch_deletion_counts(tfs_store *s, const char *pair, const char *entity,
                                    int64_t run_id, int full, int64_t *would, int64_t *synced,
                                    tfs_error *err);
/* Up to limit keys the run set aside for the entity (after `after`, NULL: from the
 * first), in key order, in the arena. */
int tfs_store_batch_pending_keys(tfs_store *s, int64_t run_id, const char *entity,
                                 const char *after, size_t limit, tfs_arena *a,
                                 const char ***keys, size_t *n, tfs_error *err);
/* Forgets what the run set aside (a run that ended without applying it). */
int tfs_store_batch_pending_drop(tfs_store *s, int64_t run_id, tfs_error *err);
/* The "changes" checkpoints of the pairs, and the pending ones of full runs still
 * reading: *n cursors as bytes ((*cursors)[i], (*lens)[i]), all in the arena. */
int tfs_store_batch_checkpoints(tfs_store *s, const char *const *pairs, size_t n_pairs,
                                tfs_arena *a, const void ***cursors, size_t **lens, size_t *n,
                                tfs_error *err);

typedef struct tfs_syncmap_row {
    const char *source_key;
    char source_hash[17];
    char target_hash[17];
    const char *target_keys;   /* JSON text: [{"entity", "key", "hash"}] */
    const char *target_record; /* JSON text: {"entity": [records]} as last written */
    int is_new; /* the key had no sync map row when the batch was compared */
} tfs_syncmap_row;

typedef struct tfs_failed_row {
    const char *source_key;
    const char *stage; /* "read", "transform", "validate", "conflict", "write" */
    json_t *reasons;   /* borrowed: array of strings */
    json_t *record;    /* borrowed: the source record */
    const char *error_class;    /* "permanent" (NULL), "transient", ... */
    const char *script_version; /* of the mapping script that ran, or NULL */
} tfs_failed_row;

typedef struct tfs_audit_row {
    const char *source_key;
    const char *op;      /* "insert", "update", "delete", "deactivate" */
    const char *changes; /* JSON text: {target entity: {field: {"before", "after"}}} */
    const char *detail;  /* JSON text or NULL: a decision taken on the way (a conflict) */
} tfs_audit_row;

/* A record parked by the manual policy: an open conflict, one per (pair, entity, key). The
 * JSON texts are {target entity: [records]}. */
typedef struct tfs_conflict_row {
    const char *source_key;
    const char *policy;
    json_t *source_record; /* borrowed: the source record as read, or NULL */
    const char *source;    /* what the mapping produced */
    const char *target;    /* what the target holds */
    const char *base;      /* what was last written; NULL: nothing */
    const char *fields;    /* JSON array of the fields in dispute */
    char source_hash[17];  /* of the mapped records: the sync map's target hash */
    char target_hash[17];  /* of target: a resolve checks the target still holds it */
} tfs_conflict_row;

/* A target record edited while its source did not change. */
typedef struct tfs_drift_row {
    const char *source_key;
    const char *target; /* JSON text {target entity: [records]} as the target holds it */
} tfs_drift_row;

typedef struct tfs_batch_commit {
    const char *pair;
    const char *entity;
    int64_t run_id;
    const tfs_syncmap_row *rows;
    size_t n_rows;
    const tfs_failed_row *failed;
    size_t n_failed;
    const char *cursor_kind; /* NULL: no cursor change */
    const void *cursor;
    size_t cursor_len;
    int cursor_done; /* with kind "full": the entity is read; its pending change cursor
                      * becomes the "changes" checkpoint in the same transaction */
    const tfs_store_counts *counts; /* the run's counts so far, NULL: unchanged */
    size_t n_counts;
    const char *const *mark_keys; /* seen by this full run though not written */
    size_t n_mark;
    const char *const *forget_keys; /* deleted from the target: their map rows go */
    size_t n_forget;
    const tfs_audit_row *audit;
    size_t n_audit;
    const char *actor;
    const tfs_lease *lease; /* the run's lease, checked in the transaction; NULL: none */
    /* A run's batch: the commit does not wait for the WAL flush. A server that crashes
     * before the flush loses at most the last such commits, as a whole and in order,
     * which only sends the run back to an earlier checkpoint, where it reads, writes
     * (idempotently) and audits those batches again (docs/decisions.md). 0: the commit
     * waits, as the server's synchronous_commit says (an operator's resolve). */
    int async_commit;
    /* Keys that went through (written, unchanged, deleted, mapped to nothing): their open
     * dead letters close, as 'resolved', or with replayed (a replay run) as 'replayed'
     * with an audit entry 'replay' each. */
    const char *const *ok_keys;
    size_t n_ok;
    int replayed;
    /* the deletion guard: keys an incremental run read as deleted, set aside in
     * tfsync.pending_deletes (so a crash keeps them) until the run's window is read; and
     * set-aside keys applied by this batch, which leave it */
    const char *const *set_aside_keys;
    size_t n_set_aside;
    const char *const *applied_keys;
    size_t n_applied;
    /* conflict detection (store_conflicts.c) */
    const tfs_conflict_row *conflicts; /* parked: opened, or updated when already open */
    size_t n_conflicts;
    const tfs_drift_row *drift; /* kept in tfsync.drift */
    size_t n_drift;
    const char *const *settled_keys; /* written or found in step: their drift rows go,
                                      * an open conflict of theirs is superseded */
    size_t n_settled;
    int64_t resolve_id;     /* a resolve job: this open conflict becomes resolved */
    const char *resolution; /* "source", "target", "record" */
} tfs_batch_commit;

/* Commits a batch's bookkeeping in one transaction. With a lease, the transaction first
 * locks the lease row and refuses (TFS_ECONFLICT, nothing written) unless the lease still
 * has its epoch: a node that lost its lease cannot commit. A key taken for new that turns out to
 * have a row (unique violation of the sync map's key) is retried as an update. */
int tfs_store_batch_commit(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err);

/* ---- dead letters (failed records) ---- */

/* An open dead letter as a replay takes it. */
typedef struct tfs_dead_letter {
    int64_t id;
    const char *source_key; /* in the arena */
    json_t *record;         /* owned: the source record as it was read, or NULL */
    const char *stage;      /* in the arena */
    int attempts;
} tfs_dead_letter;

/* Which open dead letters a replay takes: of the pair, and of entity, run_id (0: any),
 * stage (NULL: any) and ids (n_ids; 0: any) as given. */
typedef struct tfs_replay_filter {
    const char *pair, *entity, *stage;
    int64_t run_id;
    const int64_t *ids;
    size_t n_ids;
} tfs_replay_filter;

/* Whether (pair, entity) has any open dead letter, into *open. */
int tfs_store_batch_dead_letters_open(tfs_store *s, const char *pair, const char *entity,
                                      int *open, tfs_error *err);

/* Up to limit open dead letters matching f with an id above after_id, oldest first, into
 * *out (n; in the arena, each record owned: tfs_store_dead_letters_free). */
int tfs_store_batch_dead_letters(tfs_store *s, const tfs_replay_filter *f, int64_t after_id,
                                 size_t limit, tfs_arena *a, tfs_dead_letter **out, size_t *n,
                                 tfs_error *err);
/* Drops the records of n dead letters. */
void tfs_store_dead_letters_free(tfs_dead_letter *d, size_t n);

/* Discards an open dead letter: status 'discarded', and an audit entry 'discard' with
 * actor (the API key's name) and the reasons it had. *status gets the dead letter's status
 * before (TFS_ECONFLICT when it was not open); TFS_ENOTFOUND when there is none. *out
 * (new reference, may be NULL) gets the dead letter as it is now. */
int tfs_store_dead_letter_discard(tfs_store *s, int64_t id, const char *actor,
                                  char status[16], json_t **out, tfs_error *err);

#endif
