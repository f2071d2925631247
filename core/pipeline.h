/* core/pipeline.h — one run of one pair: read, transform, validate, compare, write, and
 * record, batch after batch, for each entity mapping in declared order.
 *
 * A tfs_pipeline holds what a worker thread needs to execute runs: its own state store
 * connection, its own plugin instances (one per system, never shared between threads), its
 * own Lua runtime and its batch arena. Memory stays flat however large the tables are:
 * everything of a batch lives in the arena, reset after the batch is committed.
 */
#ifndef TFS_PIPELINE_H
#define TFS_PIPELINE_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
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

/* The state store connection of this pipeline (for the runner's bookkeeping). */
struct tfs_store *tfs_pipeline_store(tfs_pipeline *p);

#endif
