/* core/health.h — what the daemon knows of the health of its systems and its state store,
 * found out by prober threads, never by a request thread.
 *
 * One circuit breaker per configured system and one for the state store (breaker.h). A
 * prober thread per system (and one for the store) checks it: every
 * TFS_HEALTH_REFRESH_MS_DEFAULT while its breaker is closed, at the breaker's backoff while
 * it is open (a probe that answers makes it half-open, and the waiting runs go on). Each
 * thread has its own plugin instance or store connection, so a system that never answers
 * stalls only its own prober, and readers see that as a check that has not answered. The
 * system prober also refreshes the change lag of every pair entity its system is the
 * source of, as often as its cost allows (TFS_HEALTH_LAG_COST_FACTOR: a count that reads a
 * long change log waits in proportion before the next), and at once when poked. GET /health and GET /sync/status read these cached figures only.
 */
#ifndef TFS_HEALTH_H
#define TFS_HEALTH_H

#include <jansson.h>

#include "breaker.h"
#include "config.h"
#include "error.h"
#include "plugin_host.h"

typedef struct tfs_health tfs_health;

/* Makes the breakers and starts the probers; waits up to a second for their first checks,
 * so a daemon that has just started reports what it found. Owned: tfs_health_stop. */
int tfs_health_start(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_health **out,
                     tfs_error *err);
/* Stops and joins the probers (a prober stuck in a call that never returns is left behind,
 * with the memory it uses) and frees h. Accepts NULL. */
void tfs_health_stop(tfs_health *h);

/* The breaker of a system (NULL when the config has no such system) and of the state
 * store: borrowed, valid until tfs_health_stop. */
tfs_breaker *tfs_health_breaker(tfs_health *h, const char *system);
tfs_breaker *tfs_health_store_breaker(tfs_health *h);

/* Asks the system's prober to check it and count its lag now (a run of a pair it is the
 * source of has just moved the checkpoint); does nothing for NULL or an unknown system. */
void tfs_health_poke(tfs_health *h, const char *system);

/* Milliseconds of the monotonic clock the breakers run on. */
int64_t tfs_health_now_ms(void);

/* {"status": "ok"|"degraded"|"down", "circuit": ..., "failures": n, "last_error": ...,
 * "checked_at": ..., "age_ms": n, "next_probe_in_ms": n|null} of the state store (system
 * NULL) or a system; a new reference, NULL for an unknown system. */
json_t *tfs_health_json(tfs_health *h, const char *system);
/* The cached lag of a pair's entity, {"pending", "oldest_age_ms", "age_ms"}: a new
 * reference, or NULL when not known. */
json_t *tfs_health_lag(tfs_health *h, const char *pair, const char *entity);

#endif
