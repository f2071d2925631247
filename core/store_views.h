/* core/store_views.h — what the HTTP API shows of the state store, as JSON: runs
 * (/sync/status, /sync/runs/{id}), cursors, the audit trail (/audit) and failed records
 * (/dead-letters). Read only; every result is a new reference the caller owns.
 */
#ifndef TFS_STORE_VIEWS_H
#define TFS_STORE_VIEWS_H

#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store.h"

/* One run as JSON, TFS_ENOTFOUND when there is none. */
int tfs_store_views_run(tfs_store *s, int64_t run_id, json_t **out, tfs_error *err);
/* The latest run of each pair: {pair: run}. */
int tfs_store_views_last_runs(tfs_store *s, json_t **out, tfs_error *err);
/* All cursors of a pair: {entity: {kind: {"cursor", "done", "run_id", "updated_at"}}}. */
int tfs_store_views_cursors(tfs_store *s, const char *pair, json_t **out, tfs_error *err);

/* The cursors of every pair: {pair: {entity: {kind: {...}}}} (the status cache's refresh). */
int tfs_store_views_all_cursors(tfs_store *s, json_t **out, tfs_error *err);
/* The runs of ids that exist: {"<run_id>": run} (the status cache's refresh). */
int tfs_store_views_runs(tfs_store *s, const int64_t *ids, size_t n, json_t **out,
                         tfs_error *err);
/* One run and its pair's cursors in one round trip: {"run": run, "cursors": {entity:
 * ...}}; TFS_ENOTFOUND when there is no such run. */
int tfs_store_views_run_and_cursors(tfs_store *s, int64_t run_id, json_t **out,
                                    tfs_error *err);

typedef struct tfs_audit_filter {
    const char *pair, *entity, *key; /* NULL: any */
    int64_t run_id;                  /* 0: any */
    const char *since, *until;       /* ISO timestamps or NULL */
    int64_t after_id;                /* paging: entries after this id */
    long limit;
} tfs_audit_filter;
/* {"entries": [...], "next_after_id": id or null}. */
int tfs_store_views_audit(tfs_store *s, const tfs_audit_filter *f, json_t **out,
                          tfs_error *err);

/* Which dead letters a listing shows. */
typedef struct tfs_dead_letter_filter {
    const char *pair, *entity, *stage; /* NULL: any */
    const char *status; /* NULL: "open"; "all": any status */
    int64_t run_id;     /* 0: any (the run that last failed the key) */
    int64_t after_id;   /* paging: dead letters after this id */
    long limit;
} tfs_dead_letter_filter;
/* Dead letters, oldest first: {"dead_letters": [{"id", "pair", "entity", "source_key",
 * "run_id", "stage", "error_class", "reasons", "record", "script_version", "attempts",
 * "status", "created_at", "updated_at"}], "next_after_id": id or null}. */
int tfs_store_views_failed(tfs_store *s, const tfs_dead_letter_filter *f, json_t **out,
                           tfs_error *err);
/* One dead letter (the fields above), TFS_ENOTFOUND when there is none. */
int tfs_store_views_failed_one(tfs_store *s, int64_t id, json_t **out, tfs_error *err);

#endif
