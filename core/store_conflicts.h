/* core/store_conflicts.h — conflicts and drift in the state store: the rows a batch
 * commits are in store_batch.h (tfs_batch_commit); this is what the API and the resolve
 * job read and update. Every JSON result is a new reference the caller owns.
 */
#ifndef TFS_STORE_CONFLICTS_H
#define TFS_STORE_CONFLICTS_H

#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "store.h"

typedef struct tfs_conflict_filter {
    const char *pair, *entity, *status; /* NULL: any */
    int64_t after_id;                   /* paging: conflicts after this id */
    long limit;
} tfs_conflict_filter;

/* {"conflicts": [summaries, oldest first], "next_after_id": id or null}. */
int tfs_store_conflicts_list(tfs_store *s, const tfs_conflict_filter *f, json_t **out,
                             tfs_error *err);
/* One conflict with its source, target and base versions and fields in dispute:
 * {"id", "pair", "entity", "source_key", "status", "policy", "run_id", "source",
 * "target", "base", "fields", "source_hash", "target_hash", "source_record", ...};
 * TFS_ENOTFOUND when there is none. */
int tfs_store_conflict_get(tfs_store *s, int64_t id, json_t **out, tfs_error *err);
/* A resolve found the target changed again: the open conflict takes the target's new
 * version (JSON texts), its hash and the fields now in dispute. TFS_ECONFLICT when it is
 * no longer open. */
int tfs_store_conflict_set_target(tfs_store *s, int64_t id, const char *target,
                                  const char *target_hash, const char *fields,
                                  tfs_error *err);
/* Drift of a pair, {"drift": [{"entity", "source_key", "run_id", "target", "detected_at"}]},
 * at most limit. */
int tfs_store_drift_list(tfs_store *s, const char *pair, long limit, json_t **out,
                         tfs_error *err);

#endif
