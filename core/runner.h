/* core/runner.h — the orchestrator's worker pool: runs are queued here and executed on
 * worker threads, never on HTTP request threads.
 *
 * A run is first recorded in the state store (queued), where a unique index lets only one
 * run per pair be queued or running across every daemon sharing the store, then handed to
 * a worker. Each worker owns a tfs_pipeline (its own connections and Lua state), and
 * executes a run only while it holds the run's lease (lease.h), renewed by the runner's
 * lease thread, which also looks for runs any node may take: queued ones, and those left
 * by a node that died (its lease expired), resumed from their last committed batch.
 * Pairs with a schedule get their incremental runs from a scheduler thread, as actor
 * "scheduler"; a scheduled run never overlaps another run of its pair (the store refuses
 * it, and the scheduler tries again at the next tick).
 */
#ifndef TFS_RUNNER_H
#define TFS_RUNNER_H

#include <stdint.h>

#include "config.h"
#include "error.h"
#include "health.h"
#include "plugin_host.h"
#include "store.h"

typedef struct tfs_runner tfs_runner;

/* Starts the current config's workers worker threads, the lease thread and the thread that
 * schedules runs and tends the waiting ones. slot, plugins and health (its breakers tell
 * when a waiting run may go on) must outlive the runner. Each run takes a snapshot of
 * slot's config when it starts and keeps it to its end; the scheduler follows the slot's
 * config at its next tick.
 *
 * A run whose system or state store stops answering (its breaker opens) gives its worker
 * back and waits, parked here (keeping its lease) and recorded "waiting" with the reason;
 * it is queued again, from its checkpoint, once its breakers let it through (and after a
 * backoff, so a run that keeps meeting a transient failure never spins), or fails once it
 * has waited longer than its pair's max_wait. */
int tfs_runner_start(tfs_config_slot *slot, const tfs_plugin_host *plugins, tfs_health *health,
                     tfs_runner **out, tfs_error *err);
/* Asks workers to stop between batches, joins them and frees the runner; accepts NULL.
 * Runs interrupted this way stay "running" and are resumed at the next start-up. */
void tfs_runner_stop(tfs_runner *r);
/* Same, waiting at most grace_ms (negative: no bound) for the batches in flight. 0: the
 * runner is stopped and freed. TFS_ELIMIT: some threads are still in a batch; the runner
 * is left as it is (not freed) and the caller must end the process, which abandons
 * those batches the way a crash would: their transactions roll back and their runs
 * resume from the last committed batch at the next start-up. */
int tfs_runner_stop_within(tfs_runner *r, long long grace_ms);

/* Records a run of pair (mode "full" or "incremental") by actor in the store through the
 * caller's connection s and queues it. TFS_ENOTFOUND: no such pair; TFS_ECONFLICT: the pair
 * already has a queued, running or waiting run, whose id is put in *run_id. */
int tfs_runner_submit(tfs_runner *r, tfs_store *s, const char *pair, const char *mode,
                      const char *actor, int64_t *run_id, tfs_error *err);
/* The same for a job of the pair (mode "replay", "resolve" or "validate") with its
 * parameters (borrowed; NULL: none), which the pipeline reads from the run. A job holds
 * its pair as a run does: TFS_ECONFLICT while a run of the pair is under way. */
int tfs_runner_submit_job(tfs_runner *r, tfs_store *s, const char *pair, const char *mode,
                          const char *actor, const json_t *params, int64_t *run_id,
                          tfs_error *err);
/* Queues here a run the store has just queued again (a held run an operator
 * confirmed), unless this daemon has it already; a worker takes its lease as for any
 * queued run (the lease thread of any node would find it too). 0, or TFS_ENOMEM. */
int tfs_runner_requeue(tfs_runner *r, int64_t run_id, const char *pair, const char *mode);
/* When the scheduler next starts an incremental run of the pair (ms since the epoch), or 0
 * when the pair has no schedule. */
int64_t tfs_runner_next_run_ms(tfs_runner *r, const char *pair);

/* Ends a run of this daemon as cancelled: a queued or waiting one at once (its state is
 * recorded by the runner's thread within a tick), a running one at its next batch
 * boundary. 1: it was queued or waiting here; 2: it runs here; 0: not this daemon's now
 * (the store's cancel_requested, set by the caller, ends it when it is taken). */
int tfs_runner_cancel(tfs_runner *r, int64_t run_id);

/* At start-up: queues the runs this node may take now (queued ones nobody holds, and those
 * whose lease expired: their node died), as many as there are idle workers. A run another
 * node holds a live lease on is left to it. Later the runner's lease thread does the same
 * every lease.poll. */
int tfs_runner_resume(tfs_runner *r, tfs_store *s, tfs_error *err);
/* This node's id, as leases and runs record it; borrowed. */
const char *tfs_runner_node(const tfs_runner *r);

#endif
