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
#include "health.h"
#include "lease.h"
#include "plugin_host.h"

typedef struct tfs_pipeline tfs_pipeline;

/* cfg, plugins and health (whose breakers the run's calls report to; may be NULL) are
 * borrowed and must outlive the pipeline. The state store is connected to on first use, so
 * a pipeline is made while the store is down. */
int tfs_pipeline_new(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_health *health,
                     tfs_pipeline **out, tfs_error *err);
void tfs_pipeline_free(tfs_pipeline *p);

/* Gives back what the last run grew to hold: its batches' arenas, buffers and Lua garbage.
 * The connections and the Lua runtime stay for the next run. A worker calls it when a run
 * leaves it, so the memory of a run is held while it runs, not by every worker that ran
 * one (each keeps its pipeline). */
void tfs_pipeline_trim(tfs_pipeline *p);

/* Executes a run that is recorded in the state store (queued, waiting, or left running by
 * a crash, in which case it resumes from its last committed batch). Returns:
 * - 0 when the run was recorded as ended: "succeeded", "failed" with the reason (also in
 *   err, with the code in *ended_rc), or "cancelled" (a cancel was asked for, in the store
 *   or through *cancel). The final state is written again and again until the store
 *   answers, unless *stop is set meanwhile;
 * - TFS_ETRANSIENT when a system or the state store is unreachable (err says which): the
 *   run is left for the caller to record "waiting" and to execute again later; it goes on
 *   from its checkpoint;
 * - TFS_ELIMIT when *stop was set between batches or during a retry: the run stays as it is
 *   recorded, for the next start-up to resume.
 * *stop is also set to cancel (with *cancel); cancel may be NULL. */
int tfs_pipeline_execute(tfs_pipeline *p, int64_t run_id, const char *pair, const char *mode,
                         const atomic_int *stop, const atomic_int *cancel, int *ended_rc,
                         tfs_error *err);

/* The lease the next tfs_pipeline_execute runs under (copied; NULL or epoch 0: none):
 * every target write and batch commit of the run checks it, and a run whose lease was
 * taken over ends without recording a state (its new holder carries it on). */
void tfs_pipeline_set_lease(tfs_pipeline *p, const tfs_lease *l);

/* The state store connection of this pipeline (for the runner's bookkeeping), connected
 * or reconnected now; NULL while the store does not answer. Borrowed. */
struct tfs_store *tfs_pipeline_store(tfs_pipeline *p);

#endif
