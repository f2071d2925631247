/* core/metrics.h — the daemon's metrics registry and its Prometheus text exposition
 * (format 0.0.4), for GET /metrics.
 *
 * The numbers live in memory, updated by whoever does the work as it happens (a batch's
 * commit, a run's end, a request's answer, a connection's open and close), under one
 * mutex held for a few additions; a scrape renders them and reads nothing else, so it
 * costs no query and no plugin call. Label values are names from the config (pairs,
 * entities, systems), route templates and fixed words: never a record key or a raw path.
 * Series past a fixed bound are not made (and counted in
 * tfsync_metrics_series_dropped_total) so a registry never grows without end. One
 * registry per process: the functions may be called from any thread.
 */
#ifndef TFS_METRICS_H
#define TFS_METRICS_H

#include <stdint.h>

#include "buf.h"

/* What one committed batch of a pair's entity did. */
typedef struct tfs_metrics_batch {
    int64_t read, written, unchanged, skipped, failed, deleted, swept, conflicts;
    double seconds;     /* from the start of its read to the end of its commit */
    double lua_seconds; /* of it in the Lua transform */
} tfs_metrics_batch;

/* Counts a batch the state store has committed. */
void tfs_metrics_batch_committed(const char *pair, const char *entity,
                                 const tfs_metrics_batch *b);
/* A run (or job) of a pair ended in state (succeeded, partial, failed, cancelled) after
 * seconds of this execution; mode is full, incremental, replay, resolve or validate. */
void tfs_metrics_run_ended(const char *pair, const char *mode, const char *state,
                           double seconds);
/* The pair's open conflicts and open dead letters as the state store counted them (at a
 * run's or job's end, after a discard and at start-up). */
void tfs_metrics_pair_open(const char *pair, int64_t conflicts, int64_t dead_letters);
/* An answered request: route is the route's template ("/sync/status/{run_id}") or NULL
 * when no route matched. */
void tfs_metrics_http_request(const char *route, const char *method, int status,
                              double seconds);
/* A connection opened (+1) or closed (-1). */
void tfs_metrics_connection(int delta);
/* A slot for one Lua runtime's memory figure (a worker's), or -1 when all are taken;
 * given back (its figure gone) by tfs_metrics_lua_slot_release when the runtime is freed
 * (a reload rebuilds the workers' pipelines). */
int tfs_metrics_lua_slot(void);
void tfs_metrics_lua_slot_release(int slot);
/* The memory in use of the runtime of slot now (set by the thread that runs it). */
void tfs_metrics_lua_memory(int slot, uint64_t bytes);
/* The memory the same worker's batches hold now (their arenas), set with the Lua figure. */
void tfs_metrics_batch_memory(int slot, uint64_t bytes);

/* Appends the registry's families (with HELP and TYPE lines) and the process's own
 * (resident memory, start time) to out. 0, or -1 when out ran out of memory. */
int tfs_metrics_render(tfs_buf *out);

/* For families whose numbers another module caches (health's breakers and lag): a HELP
 * and TYPE header, then samples. labels are name/value pairs, n_labels pairs of them;
 * values are escaped here. */
void tfs_metrics_family(tfs_buf *out, const char *name, const char *type, const char *help);
void tfs_metrics_sample(tfs_buf *out, const char *name, const char *const *labels,
                        unsigned n_labels, double value);

/* Forgets every number (for tests that start several daemons in one process). */
void tfs_metrics_reset(void);

#endif
