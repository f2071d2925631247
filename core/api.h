/* core/api.h — the HTTP API's routes and handlers over the runner, the state store and the
 * plugin host. The paths are the original service's; docs/openapi.yaml describes them. */
#ifndef TFS_API_H
#define TFS_API_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "health.h"
#include "http.h"
#include "plugin_host.h"
#include "runner.h"
#include "store.h"

typedef struct tfs_api tfs_api;

/* Reloads the config (POST /admin/reload): 0 with *changes (owned) saying what changed,
 * or the error with the reason, the old config kept. Serialised by the callee. */
typedef int (*tfs_api_reload_fn)(void *ctx, json_t **changes, tfs_error *err);

/* A handler gets its own copy of this struct (tfs_api_invoke), so fields are read-only
 * after init; what requests share and change lives behind shared. */
struct tfs_api {
    const tfs_config *cfg; /* in a handler: the request's config snapshot; NULL outside */
    tfs_config_slot *slot;
    const tfs_plugin_host *plugins;
    tfs_runner *runner;
    time_t started;
    tfs_api_reload_fn reload; /* NULL: POST /admin/reload answers 501 */
    void *reload_ctx;
    struct tfs_api_shared *shared;
    /* The probers' cached health and lag figures: request threads never call a system. */
    tfs_health *health;
    /* The status answers kept in memory (status_cache.h); set once it started, NULL
     * leaves /sync/status answering 503. */
    struct tfs_status_cache *status;
};

/* slot, plugins, runner and health are borrowed and must outlive the API. */
int tfs_api_init(tfs_api *api, tfs_config_slot *slot, const tfs_plugin_host *plugins,
                 tfs_runner *runner, tfs_health *health, tfs_error *err);
void tfs_api_destroy(tfs_api *api);

/* The route table, with tfs_api as the handlers' context. */
const tfs_http_route *tfs_api_routes(size_t *n);
/* The server's invoke hook (tfs_http_config.invoke) for these routes: calls the route's
 * handler with a per-request view of the tfs_api in ctx holding a config snapshot. */
void tfs_api_invoke(const tfs_http_route *route, const tfs_http_request *req,
                    tfs_http_response *resp, void *ctx);

#endif
