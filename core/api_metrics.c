/* core/api_metrics.c — GET /metrics: the metrics registry's exposition (metrics.c) and the
 * figures the health module already caches (each system's breaker, each pair entity's
 * change lag), in the Prometheus text format 0.0.4. Nothing here asks a system or the
 * state store: a scrape is as cheap as the text it returns. */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"

#define METRICS_CT "text/plain; version=0.0.4; charset=utf-8"

static void breakers(tfs_api *api, tfs_buf *out)
{
    static const char *const states[] = {"closed", "half-open", "open"};
    tfs_metrics_family(out, "tfsync_breaker_state", "gauge",
                       "The circuit breaker of each system and of the state store: 1 for its "
                       "state now, 0 for the others.");
    for (size_t i = 0; i <= api->cfg->n_systems; i++) {
        const char *system = i < api->cfg->n_systems ? api->cfg->systems[i].name : NULL;
        json_t *h = tfs_health_json(api->health, system);
        const char *now = json_string_value(json_object_get(h, "circuit"));
        for (size_t k = 0; now && k < sizeof states / sizeof states[0]; k++) {
            const char *l[] = {"system", system ? system : "state_store", "state", states[k]};
            tfs_metrics_sample(out, "tfsync_breaker_state", l, 2,
                               strcmp(now, states[k]) == 0 ? 1 : 0);
        }
        json_decref(h);
    }
}

static void lag(tfs_api *api, tfs_buf *out)
{
    static const char *const names[] = {"tfsync_lag_pending_changes",
                                        "tfsync_lag_oldest_change_age_seconds"};
    static const char *const helps[] = {
        "Changes of a pair's source entity after its checkpoint, as the prober last counted.",
        "Age of the oldest change after a pair entity's checkpoint, as the prober last "
        "counted."};
    for (int m = 0; m < 2; m++) {
        tfs_metrics_family(out, names[m], "gauge", helps[m]);
        for (size_t i = 0; i < api->cfg->n_pairs; i++) {
            const tfs_config_pair *p = &api->cfg->pairs[i];
            for (size_t e = 0; e < p->n_entities; e++) {
                json_t *lg = tfs_health_lag(api->health, p->name, p->entities[e].source);
                if (!lg)
                    continue; /* not known (a source without change data): no series */
                const char *l[] = {"pair", p->name, "entity", p->entities[e].source};
                double v = m == 0 ? (double)json_integer_value(json_object_get(lg, "pending"))
                                  : (double)json_integer_value(
                                        json_object_get(lg, "oldest_age_ms")) / 1000.0;
                tfs_metrics_sample(out, names[m], l, 2, v);
                json_decref(lg);
            }
        }
    }
}

void tfs_api_metrics(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    /* An open route, so that metrics.public can open it on a reload; closed, it asks for
     * what every other GET asks for. */
    if (!api->cfg->metrics_public && req->role < TFS_ROLE_READ) {
        if (tfs_http_header(req, "Authorization"))
            tfs_http_problem(resp, 401, "unauthorized", "unauthorized",
                             "the API key sent is not one of the configured keys; send a "
                             "valid key as \"Authorization: Bearer <key>\", or set "
                             "metrics.public to true in the config to scrape without one");
        else
            tfs_http_problem(resp, 401, "unauthorized", "unauthorized",
                             "GET /metrics needs an API key; send it as the header "
                             "\"Authorization: Bearer <key>\", or set metrics.public to true "
                             "in the config to scrape without one");
        return;
    }
    tfs_buf out = TFS_BUF_INIT;
    tfs_metrics_render(&out);
    breakers(api, &out);
    lag(api, &out);
    if (out.oom) {
        tfs_buf_free(&out);
        tfs_http_problem(resp, 503, "unavailable", "service unavailable",
                         "the server is out of memory for the metrics; retry later");
        return;
    }
    char *text = strdup(tfs_buf_str(&out));
    tfs_buf_free(&out);
    if (!text) {
        tfs_http_problem(resp, 503, "unavailable", "service unavailable",
                         "the server is out of memory for the metrics; retry later");
        return;
    }
    tfs_http_text(resp, 200, METRICS_CT, text);
}
