/* core/status_cache.h — the answers of GET /sync/status and GET /sync/status/{run_id},
 * kept in memory and built once per change, so a request never waits on the state store.
 *
 * What the state store holds of runs and cursors is read into memory and kept there: every
 * change this daemon commits to a run (its state, counts and cursor after each batch, its
 * estimates, result, lease) is read back at once, on the thread and connection that
 * committed it, through the store's run listener (store.h), so the next GET shows it; a
 * refresher thread reads the whole of it again every api.status_refresh (what other nodes
 * and SQL changed) and samples, every tick, what the answers show of health (health.h) and
 * of the schedule (runner.h). Each change rebuilds the answers' bytes and their ETag and
 * swaps them in under a short lock; a reader takes a reference to the bytes it serves and
 * never waits on a rebuild. While the store does not answer, the last known state is
 * served with its age: as_of, when the store last answered the refresh.
 *
 * The answers are the run and status shapes of store_views.h, the same JSON built by the
 * same SQL, with as_of added.
 */
#ifndef TFS_STATUS_CACHE_H
#define TFS_STATUS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "health.h"
#include "runner.h"

typedef struct tfs_status_cache tfs_status_cache;

/* An answer built once: its bytes and their ETag, shared by reference between the readers
 * that serve it. */
typedef struct tfs_status_body tfs_status_body;
/* The body of json (compact), with a strong ETag of its bytes; NULL when out of memory. */
tfs_status_body *tfs_status_body_new(const json_t *json);
const char *tfs_status_body_bytes(const tfs_status_body *b, size_t *len);
/* The quoted ETag, e.g. "\"5f0c...\"". */
const char *tfs_status_body_etag(const tfs_status_body *b);
/* One more reference (returns b), and one less (the last frees it); both accept NULL. */
tfs_status_body *tfs_status_body_ref(tfs_status_body *b);
void tfs_status_body_release(void *b);

/* Reads the state store's runs and cursors once (for a second at most: the refresher
 * goes on trying when the store does not answer), starts the refresher and becomes the
 * store's run listener. health and runner outlive the cache. */
int tfs_status_cache_start(tfs_config_slot *slot, tfs_health *health, tfs_runner *runner,
                           tfs_status_cache **out, tfs_error *err);
/* Stops listening and the refresher, frees it all; accepts NULL. Call it after the
 * threads that change runs (the runner, the HTTP server) have stopped. */
void tfs_status_cache_stop(tfs_status_cache *c);

/* GET /sync/status for the current config (a reference; release it), or NULL while the
 * state store has never answered since the start. cfg is the request's snapshot: when it
 * is not the config the answer was built for, the answer is built again now for the
 * current one (a reload). */
tfs_status_body *tfs_status_cache_status(tfs_status_cache *c, const tfs_config *cfg);
/* GET /sync/status/{run_id} of a run the cache holds (the last run of each pair and the
 * runs this node changed lately), or NULL: the caller asks the store. */
tfs_status_body *tfs_status_cache_run(tfs_status_cache *c, const tfs_config *cfg,
                                      int64_t run_id);

/* The answer of GET /sync/status/{run_id} from a run as store_views.h shows it and its
 * pair's cursors (borrowed): the run with its progress per entity, and as_of (an ISO time,
 * or NULL to leave it out). A new value. */
json_t *tfs_status_run_json(const tfs_config *cfg, const json_t *run, const json_t *cursors,
                            const char *as_of);

#endif
