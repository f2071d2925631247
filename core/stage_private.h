/* core/stage_private.h — what the stage module's files share (stage.c, stage_resolve.c):
 * the retry loop of a call to a system, the last written records of a key, and what the
 * conflict stage adds to a batch's commit. Not for other modules. */
#ifndef TFS_STAGE_PRIVATE_H
#define TFS_STAGE_PRIVATE_H

#include "stage.h"

/* After a call to the system behind br returned *rc: 0 when it is done, 1 to call again
 * after the backoff this sleeps (stage.c's retry_after). */
int tfs_stage_retry(tfs_stage_ctx *b, tfs_breaker *br, tfs_store *store, int *rc,
                    unsigned *attempt, const char *what, tfs_error *err);
/* The target records of old_text (the sync map's last written JSON) that the target's
 * schema has, in the arena. */
int tfs_stage_old_records(tfs_stage_ctx *b, const char *old_text, tfs_arena *a,
                          tfs_record ***out, size_t *n_out);
/* The job's parked conflicts, drift rows and settled keys into bc, in the job's arena
 * (stage_resolve.c); the source records of the conflicts are new references the caller
 * drops after the commit. */
int tfs_stage_conflict_parts(tfs_stage_ctx *b, tfs_stage_job *jb, tfs_batch_commit *bc,
                             tfs_error *err);

#endif
