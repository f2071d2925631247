/* core/pipeline.h — one run of one pair: read, transform, validate, compare, write, and
 * record, batch after batch, for each entity mapping in declared order.
 *
 * A tfs_pipeline holds what a worker thread needs to execute runs: its own state store
 * connections (one for the worker and the writing side, one for the committing side), its
 * own plugin instances (one per system and role, so a pair whose source and target are the
 * same system still has one for the reading thread and one for the writing thread), its
 * own Lua runtime and one arena per batch in flight. A run reads on the worker's thread,
 * compares and writes on a second and commits on a third (handoff.h). Memory stays flat
 * however large the tables are: everything of a batch lives in its arena, reset when the
 * arena takes the next batch.
 */
#ifndef TFS_PIPELINE_H
#define TFS_PIPELINE_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "lease.h"
#include "plugin_host.h"

typedef struct tfs_pipeline tfs_pipeline;

/* cfg and plugins are borrowed and must outlive the pipeline. */
int tfs_pipeline_new(const tfs_config *cfg, const tfs_plugin_host *plugins,
                     tfs_pipeline **out, tfs_error *err);
void tfs_pipeline_free(tfs_pipeline *p);

/* Executes a run that is recorded in the state store (queued or left running by a crash,
 * in which case it resumes from its last committed batch). Between batches it checks
 * *stop; when set it returns TFS_ELIMIT leaving the run "running" for the next start-up to
 * resume. Otherwise the run ends "succeeded" (records that failed are in failed_records) or
 * "failed" with the reason, which is also returned in err. */
int tfs_pipeline_execute(tfs_pipeline *p, int64_t run_id, const char *pair, const char *mode,
                         const atomic_int *stop, tfs_error *err);

/* The lease the next tfs_pipeline_execute runs under (copied; NULL or epoch 0: none):
 * every target write and batch commit of the run checks it, and a run whose lease was
 * taken over ends without recording a state (its new holder carries it on). */
void tfs_pipeline_set_lease(tfs_pipeline *p, const tfs_lease *l);

/* The state store connection of this pipeline (for the runner's bookkeeping). */
struct tfs_store *tfs_pipeline_store(tfs_pipeline *p);

#endif
