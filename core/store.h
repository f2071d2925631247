/* core/store.h — the state store: a PostgreSQL database (schema tfsync) that is the
 * authority on runs, cursors, the sync map and failed records. This part: connecting,
 * migrations, and the runs themselves; store_batch.h has what a batch reads and commits,
 * store_views.h the JSON read models the HTTP API serves.
 *
 * A tfs_store is one libpq connection and belongs to one thread. Migrations are versioned
 * and applied at start-up under an advisory lock, so several daemons starting together
 * apply each migration once.
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
/* The migration the store is at (*have, 0 for a store never migrated) and the one this
 * daemon brings it to (*want), changing nothing (tfsyncd --check --connect). */
int tfs_store_schema_version(tfs_store *s, int *have, int *want, tfs_error *err);
/* A round trip to the server: 0 when the store answers. */
int tfs_store_ping(tfs_store *s, tfs_error *err);
/* Returns once everything committed to the store before the call is durable: a run's
 * batches commit without waiting for the WAL flush (store_batch.h, async_commit), and
 * whatever acts outside the store on what they committed (the trim of a source's change
 * log) calls this first. */
int tfs_store_flush(tfs_store *s, tfs_error *err);
/* Gives back the memory a batch's statements grew (its COPY text); the connection stays. */
void tfs_store_trim(tfs_store *s);
/* Reconnects when the connection was lost; 0 when usable. */
int tfs_store_ensure(tfs_store *s, tfs_error *err);

/* One entity's counts in a run, and where its time went per stage (ms). Stored as the
 * run's counts {entity: {"read", "written", "unchanged", "deleted", "failed",
 * "read_failed", "transform_failed", "validate_failed", "write_failed", "skipped", "conflicts", "drift",
 * "swept", "timings_ms": {...}}}. Of the records read: read = written + unchanged +
 * skipped (mapped to nothing) + conflicts (parked) + failed + deleted (deletions that came
 * with the changes) + set_aside (those deletions while they wait for the guard); swept counts the deletions of a full run's sweep, apart; drift the
 * target-side edits of records whose source did not change (reported, left alone). */
typedef struct tfs_store_counts {
    char entity[128];
    int started; /* has counts to store: the entity's first batch was committed */
    int64_t read, written, unchanged, deleted, transform_failed, validate_failed,
        write_failed;
    int64_t read_failed; /* rec_fail (SDK 1.3): records the source could not read */
    int64_t skipped, conflicts, drift, swept;
    int64_t set_aside; /* an incremental run's deletions waiting for the guard; they move
                        * to deleted as they are applied */
    double read_ms, transform_ms, compare_ms, write_ms, commit_ms;
} tfs_store_counts;

/* A run as the pipeline needs it. counts is malloc'd (tfs_store_run_clear). */
typedef struct tfs_store_run {
    int64_t run_id;
    char pair[128], mode[16], state[16], actor[128];
    tfs_store_counts *counts; /* n_counts entities, each started */
    size_t n_counts;
    json_t *params; /* a job's parameters (replay, resolve, validate), or NULL; owned */
    json_t *result; /* a job's answer once it ended, or NULL; owned */
    int64_t confirmed_deletes; /* what an operator confirmed of a held run; -1: none */
} tfs_store_run;

/* The libpq connect_timeout of every connection opened after this call (state.connect_timeout;
 * 0: none), unless the conninfo names its own. */
void tfs_store_set_connect_timeout(long long seconds);

/* Runs, and the jobs of a pair, which are runs too (modes full, incremental, replay,
 * resolve, validate). States: queued, running, waiting (for a system or the store; the
 * text given is why, and the run keeps its pair), held (a guard stopped it until an
 * operator confirms; it keeps its pair), and the final ones: succeeded, partial (done,
 * with dead letters or parked conflicts), failed, cancelled. job_params: JSON text of a
 * job's parameters, or NULL. */
int tfs_store_run_create(tfs_store *s, const char *pair, const char *mode, const char *actor,
                         const char *job_params, int64_t *run_id, tfs_error *err);
/* Records a job's answer (NULL: none), which the request that started it serves. */
int tfs_store_run_set_result(tfs_store *s, int64_t run_id, const json_t *result,
                             tfs_error *err);
/* The run's state in state: 1 when it is final, 0 when not yet, or an error
 * (TFS_ENOTFOUND: no such run). */
int tfs_store_run_ended(tfs_store *s, int64_t run_id, char state[16], tfs_error *err);
/* 1 for succeeded, partial, failed and cancelled. */
int tfs_store_state_is_final(const char *state);
/* TFS_ECONFLICT from run_create sets *run_id to the run that holds the pair. counts: the
 * n_counts entities' counts to store (those started), or NULL to leave them. */
int tfs_store_run_set_state(tfs_store *s, int64_t run_id, const char *state,
                            const char *error_text, const tfs_store_counts *counts,
                            size_t n_counts, tfs_error *err);
/* A full run's estimate of an entity's record count (SDK 1.3 cb_estimate; count < 0:
 * the source cannot tell, shown as null), shown as the entity's estimated_total. */
int tfs_store_run_set_estimate(tfs_store *s, int64_t run_id, const char *entity,
                               int64_t count, tfs_error *err);
/* What went wrong telling the plugins that the run ended (SDK 1.3 cb_run_end): a JSON
 * array of {system, role, error} (borrowed), shown as the run's run_end_errors. */
int tfs_store_run_set_run_end_errors(tfs_store *s, int64_t run_id, const json_t *errors,
                                     tfs_error *err);
/* The pair's open conflicts and open dead letters (for the metrics, at a run's end). */
int tfs_store_pair_open_counts(tfs_store *s, const char *pair, int64_t *conflicts,
                               int64_t *dead_letters, tfs_error *err);
/* One run into *out (tfs_store_run_clear it), TFS_ENOTFOUND when there is none. */
int tfs_store_run_get(tfs_store *s, int64_t run_id, tfs_store_run *out, tfs_error *err);
void tfs_store_run_clear(tfs_store_run *r);
/* Asks that a queued, waiting or running run be cancelled (whoever runs it ends it as
 * cancelled at its next batch boundary); a held run, which nobody executes, is ended
 * cancelled at once, its set-aside deletions dropped. state gets its state after the call. TFS_ENOTFOUND for an
 * unknown run, TFS_ECONFLICT for a run that has ended. */
int tfs_store_run_cancel(tfs_store *s, int64_t run_id, char state[16], tfs_error *err);
/* Whether a cancel of the run was asked for. */
int tfs_store_run_cancel_requested(tfs_store *s, int64_t run_id, int *requested,
                                   tfs_error *err);
/* Holds a run (a guard stopped it before deleting): state held with the reason,
 * held_deletes ({entity: count}, borrowed) and the counts so far (NULL: leave them). The
 * run keeps its pair; nobody takes it until tfs_store_run_confirm queues it again. */
int tfs_store_run_hold(tfs_store *s, int64_t run_id, const char *reason,
                       const json_t *held_deletes, const tfs_store_counts *counts,
                       size_t n_counts, tfs_error *err);
/* An operator confirms the deletions of a held run: when deletes equals the held total,
 * the run is queued again with confirmed_deletes set (and one audit entry "confirm" per
 * entity, by actor); pair and mode (128 and 16 bytes) get the run's. *held_total gets the
 * held total, state the run's state. TFS_ENOTFOUND: no such run; TFS_ECONFLICT: it is not
 * held (state says what it is), or deletes is not the held total. */
int tfs_store_run_confirm(tfs_store *s, int64_t run_id, int64_t deletes, const char *actor,
                          char *pair, char *mode, int64_t *held_total, char state[16],
                          tfs_error *err);
/* Who is told of each change this daemon commits to a run (its state, counts, estimates,
 * result, lease): fn(ctx, s, run_id) on the thread that made it, after the store has
 * committed it, with s idle again (or inside the caller's transaction: then fn must not
 * read through s). One listener for the process (the status cache, status_cache.h); NULL
 * removes it. Set it before the threads that change runs start, clear it after they end. */
typedef void (*tfs_store_run_listener)(void *ctx, tfs_store *s, int64_t run_id);
void tfs_store_set_run_listener(tfs_store_run_listener fn, void *ctx);
/* Whether s is outside any transaction (what a listener checks before reading through s). */
int tfs_store_idle(tfs_store *s);

/* Runs left queued, running or waiting (by a crash or a stop), oldest first: *runs is a malloc'd array of *n
 * runs (free it), without counts. */
int tfs_store_unfinished_runs(tfs_store *s, tfs_store_run **runs, size_t *n, tfs_error *err);

#endif
