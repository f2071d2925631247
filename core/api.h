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

typedef struct tfs_api {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    tfs_runner *runner;
    time_t started;
    /* State store connections for request threads: one per request at a time. */
    pthread_mutex_t pool_lock;
    tfs_store **pool;
    size_t n_pool, cap_pool;
    /* The probers' cached health and lag figures: request threads never call a system. */
    tfs_health *health;
} tfs_api;

int tfs_api_init(tfs_api *api, const tfs_config *cfg, const tfs_plugin_host *plugins,
                 tfs_runner *runner, tfs_health *health, tfs_error *err);
void tfs_api_destroy(tfs_api *api);

/* The route table, with tfs_api as the handlers' context. */
const tfs_http_route *tfs_api_routes(size_t *n);

#endif
