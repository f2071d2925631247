/* core/store.h — the state store: a PostgreSQL database (schema tfsync) that is the
 * authority on runs, cursors, the sync map and failed records.
 *
 * A tfs_store is one libpq connection and belongs to one thread. Migrations are versioned
 * and applied at start-up under an advisory lock, so several daemons starting together
 * apply each migration once. Every write of a batch (sync map rows, failed records, the
 * cursor and the run's counts) is one transaction, committed after the target committed,
 * in batch order: that is what makes a resumed run neither skip nor double a record.
 */
#ifndef TFS_STORE_H
#define TFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

typedef struct tfs_store tfs_store;

/* Connects (owned; tfs_store_close). Connection failures are TFS_ETRANSIENT. */
int tfs_store_open(const char *conninfo, tfs_store **out, tfs_error *err);
void tfs_store_close(tfs_store *s);
/* Applies the migrations not applied yet. */
int tfs_store_migrate(tfs_store *s, tfs_error *err);
/* A round trip to the server: 0 when the store answers. */
int tfs_store_ping(tfs_store *s, tfs_error *err);
/* Reconnects when the connection was lost; 0 when usable. */
int tfs_store_ensure(tfs_store *s, tfs_error *err);

/* Runs. States: queued, running, succeeded, failed. */
int tfs_store_run_create(tfs_store *s, const char *pair, const char *mode, const char *actor,
                         int64_t *run_id, tfs_error *err);
/* TFS_ECONFLICT from run_create sets *run_id to the run that holds the pair. */
int tfs_store_run_set_state(tfs_store *s, int64_t run_id, const char *state,
                            const char *error_text, const json_t *counts, tfs_error *err);
/* One run as JSON (new reference), TFS_ENOTFOUND when there is none. */
int tfs_store_run_json(tfs_store *s, int64_t run_id, json_t **out, tfs_error *err);
/* The latest run of each pair (new reference: {pair: run}). */
int tfs_store_last_runs_json(tfs_store *s, json_t **out, tfs_error *err);
/* Runs left queued or running (by a crash), oldest first: a JSON array of
 * {run_id, pair, mode, actor} (new reference). */
int tfs_store_unfinished_runs(tfs_store *s, json_t **out, tfs_error *err);

/* Cursors per (pair, entity, kind); kind "full" holds a full run's progress (with the run
 * it belongs to), "changes" the incremental position. *cursor is malloc'd (NULL when
 * none). */
int tfs_store_cursor_get(tfs_store *s, const char *pair, const char *entity, const char *kind,
                         int64_t *run_id, int *done, unsigned char **cursor, size_t *len,
                         tfs_error *err);
/* All cursors of a pair as JSON {entity: {kind: {...}}} (new reference). */
int tfs_store_cursors_json(tfs_store *s, const char *pair, json_t **out, tfs_error *err);

/* The stored target hash of each source key (in key order; NULL where the key has no
 * sync map row). hashes[i] are malloc'd 16-hex strings. */
int tfs_store_syncmap_hashes(tfs_store *s, const char *pair, const char *entity,
                             const char *const *keys, size_t n, char **hashes,
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
    const char *stage; /* "transform", "validate", "write" */
    json_t *reasons;   /* borrowed: array of strings */
    json_t *record;    /* borrowed: the source record */
} tfs_failed_row;

typedef struct tfs_audit_row {
    const char *source_key;
    const char *op;      /* "insert", "update", "delete", "deactivate" */
    const char *changes; /* JSON text: {target entity: {field: {"before", "after"}}} */
} tfs_audit_row;

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
    const json_t *counts; /* the run's counts so far */
    const char *const *mark_keys; /* seen by this full run though not written */
    size_t n_mark;
    const char *const *forget_keys; /* deleted from the target: their map rows go */
    size_t n_forget;
    const tfs_audit_row *audit;
    size_t n_audit;
    const char *actor;
} tfs_batch_commit;

/* The last written target record (JSON text) of each key, malloc'd, NULL where none. */
int tfs_store_syncmap_records(tfs_store *s, const char *pair, const char *entity,
                              const char *const *keys, size_t n, char **target_records,
                              tfs_error *err);
/* A full run begins an entity: its progress cursor restarts, and pending (the source's
 * change cursor of now; may be NULL) waits to become the incremental checkpoint. */
int tfs_store_full_start(tfs_store *s, const char *pair, const char *entity, int64_t run_id,
                         const void *pending, size_t pending_len, tfs_error *err);
/* Up to limit source keys (after `after`, NULL: from the first) whose sync map row was
 * not seen by the full run `generation`: the keys that vanished from the source. *keys is
 * a malloc'd array of malloc'd strings. */
int tfs_store_sweep_keys(tfs_store *s, const char *pair, const char *entity, int64_t generation,
                         const char *after, size_t limit, char ***keys, size_t *n,
                         tfs_error *err);
/* The "changes" checkpoints of the pairs, base64 text in a JSON array (new reference). */
int tfs_store_changes_cursors(tfs_store *s, const char *const *pairs, size_t n_pairs,
                              json_t **out, tfs_error *err);

typedef struct tfs_audit_filter {
    const char *pair, *entity, *key; /* NULL: any */
    int64_t run_id;                  /* 0: any */
    const char *since, *until;       /* ISO timestamps or NULL */
    int64_t after_id;                /* paging: entries after this id */
    long limit;
} tfs_audit_filter;
/* {"entries": [...], "next_after_id": id or null} (new reference). */
int tfs_store_audit_json(tfs_store *s, const tfs_audit_filter *f, json_t **out,
                         tfs_error *err);

/* Commits a batch's bookkeeping in one transaction. */
int tfs_store_batch_commit(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err);

/* Failed records as JSON (new reference), newest first, filtered by pair/run (NULL/0 for
 * any), at most limit. */
int tfs_store_failed_json(tfs_store *s, const char *pair, int64_t run_id, long limit,
                          json_t **out, tfs_error *err);

#endif
