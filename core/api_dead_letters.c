/* core/api_dead_letters.c — the dead letters' handlers: list and show them, replay them
 * (one, or those a filter selects) as a replay job of their pair, and discard one; see
 * api_internal.h. Their routes are in the table at the end of api.c.
 *
 * A replay runs on a worker as a run of the pair (mode "replay", api_jobs.c): the request
 * never reads a source or writes a target itself. A discard is one state store
 * transaction, done here.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_batch.h"
#include "store_views.h"

static const char *const statuses[] = {"open", "replayed", "resolved", "discarded",
                                       "superseded", "all", NULL};
static const char *const stages[] = {"read", "transform", "validate", "conflict", "write",
                                     NULL};

static int listed(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* The {id} of the path; -1 after answering 400. */
static int dead_letter_id(const tfs_http_request *req, tfs_http_response *resp, int64_t *id)
{
    if (tfs_api_parse_id(req->params[0], id) == 0)
        return 0;
    tfs_http_problem(resp, 400, "invalid-id", "Invalid id",
                     "\"%s\" is not a dead letter id; ids are positive integers, as GET "
                     "/dead-letters lists them",
                     req->params[0]);
    return -1;
}

/* A source entity of the pair's mappings, or 0 after answering 400. */
static int pair_has_entity(const tfs_config_pair *pair, const char *entity,
                           tfs_http_response *resp)
{
    char list[256] = "";
    for (size_t i = 0; i < pair->n_entities; i++) {
        if (strcmp(pair->entities[i].source, entity) == 0)
            return 1;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 pair->entities[i].source);
    }
    tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                     "pair \"%s\" maps no source entity \"%s\"; its entities are %s",
                     pair->name, entity, list);
    return 0;
}

/* GET /dead-letters: filters pair, entity, run_id, stage, status (default open; "all"),
 * paged by limit and after_id, oldest first. */
void tfs_api_dead_letters_list(const tfs_http_request *req, tfs_http_response *resp,
                               void *ctx)
{
    tfs_api *api = ctx;
    tfs_dead_letter_filter f = {.pair = tfs_http_query(req, "pair"),
                                .entity = tfs_http_query(req, "entity"),
                                .stage = tfs_http_query(req, "stage"),
                                .status = tfs_http_query(req, "status")};
    int64_t lim = 100;
    if (tfs_api_parse_run_and_limit(req, resp, &f.run_id, &lim) != 0)
        return;
    f.limit = (long)lim;
    const char *after = tfs_http_query(req, "after_id");
    if (after && tfs_api_parse_id(after, &f.after_id) != 0) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "after_id=\"%s\" must be the next_after_id of a previous page", after);
        return;
    }
    if (f.status && !listed(statuses, f.status)) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "status=\"%s\" is not a status; use open (the default), replayed, "
                         "resolved, discarded, superseded or all",
                         f.status);
        return;
    }
    if (f.stage && !listed(stages, f.stage)) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "stage=\"%s\" is not a stage; use read, transform, validate, "
                         "conflict or write",
                         f.stage);
        return;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *out = NULL;
    int rc = tfs_store_views_failed(s, &f, &out, &err);
    tfs_api_store_put(api, s);
    if (rc)
        tfs_api_store_problem(resp, &err);
    else
        tfs_http_json(resp, 200, out);
}

/* One dead letter into *out; 0, or -1 after answering 400/404/503. */
static int fetch_one(tfs_api *api, const tfs_http_request *req, tfs_http_response *resp,
                     int64_t *id, json_t **out)
{
    if (dead_letter_id(req, resp, id) != 0)
        return -1;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return -1;
    tfs_error err = {0};
    int rc = tfs_store_views_failed_one(s, *id, out, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-dead-letter", "Unknown dead letter",
                         "there is no dead letter %" PRId64 "; GET /dead-letters lists them",
                         *id);
        return -1;
    }
    if (rc) {
        tfs_api_store_problem(resp, &err);
        return -1;
    }
    return 0;
}

void tfs_api_dead_letter_get(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    int64_t id;
    json_t *one = NULL;
    if (fetch_one(ctx, req, resp, &id, &one) == 0)
        tfs_http_json(resp, 200, one);
}

/* POST /dead-letters/{id}/replay: a replay job of the dead letter's pair for it alone. */
void tfs_api_dead_letter_replay(const tfs_http_request *req, tfs_http_response *resp,
                                void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    json_t *one = NULL;
    if (req->body_len) {
        static const char *const none[] = {NULL};
        json_t *body = tfs_api_body(req, resp, none, "no body (or {})", 1);
        if (!body)
            return;
        json_decref(body);
    }
    if (fetch_one(api, req, resp, &id, &one) != 0)
        return;
    const char *status = json_string_value(json_object_get(one, "status"));
    const char *pair = json_string_value(json_object_get(one, "pair"));
    if (!status || strcmp(status, "open") != 0) {
        tfs_http_problem(resp, 409, "dead-letter-closed", "Dead letter not open",
                         "dead letter %" PRId64 " is %s, not open: only open dead letters are "
                         "replayed",
                         id, status ? status : "?");
        json_object_set_new(resp->json, "dead_letter_status", json_string(status ? status : "?"));
    } else {
        json_t *params = json_pack("{s[I]}", "ids", (json_int_t)id);
        tfs_api_run_job(api, req, resp, pair, "replay", params);
        json_decref(params);
    }
    json_decref(one);
}

/* The filter body of POST /dead-letters/replay checked: 0, or -1 after answering 400. */
static int check_filter(tfs_api *api, const json_t *body, tfs_http_response *resp)
{
    const json_t *pair = json_object_get(body, "pair"), *entity = json_object_get(body, "entity"),
                 *run = json_object_get(body, "run_id"), *stage = json_object_get(body, "stage"),
                 *ids = json_object_get(body, "ids");
    if (!json_is_string(pair)) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "\"pair\" is required: the name of a pair, e.g. "
                         "{\"pair\": \"pacs-to-cama\"}");
        return -1;
    }
    const tfs_config_pair *p = tfs_config_pair_get(api->cfg, json_string_value(pair));
    if (!p) {
        tfs_http_problem(resp, 404, "unknown-pair", "Unknown pair",
                         "no pair \"%s\" in the config; GET /pairs lists them",
                         json_string_value(pair));
        return -1;
    }
    if (entity && (!json_is_string(entity) || !pair_has_entity(p, json_string_value(entity),
                                                                resp))) {
        if (!json_is_string(entity))
            tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                             "\"entity\" must be a source entity name");
        return -1;
    }
    if (run && (!json_is_integer(run) || json_integer_value(run) <= 0)) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "\"run_id\" must be a run id (a positive integer)");
        return -1;
    }
    if (stage && (!json_is_string(stage) || !listed(stages, json_string_value(stage)))) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "\"stage\" must be one of read, transform, validate, conflict, write");
        return -1;
    }
    if (ids) {
        size_t i;
        const json_t *v;
        int ok = json_is_array(ids) && json_array_size(ids) <= 10000;
        json_array_foreach(ids, i, v) ok = ok && json_is_integer(v) && json_integer_value(v) > 0;
        if (!ok) {
            tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                             "\"ids\" must be an array of at most 10000 dead letter ids "
                             "(positive integers)");
            return -1;
        }
    }
    return 0;
}

/* POST /dead-letters/replay {"pair", "entity", "run_id", "stage", "ids"}: a replay job of
 * the pair for its open dead letters the filter selects. */
void tfs_api_dead_letters_replay(const tfs_http_request *req, tfs_http_response *resp,
                                 void *ctx)
{
    static const char *const allowed[] = {"pair", "entity", "run_id", "stage", "ids", NULL};
    tfs_api *api = ctx;
    json_t *body = tfs_api_body(req, resp, allowed,
                                "{\"pair\": \"pacs-to-cama\", \"entity\": \"property\"}", 0);
    if (!body)
        return;
    if (check_filter(api, body, resp) == 0) {
        json_t *params = json_deep_copy(body);
        json_object_del(params, "pair");
        tfs_api_run_job(api, req, resp, json_string_value(json_object_get(body, "pair")),
                        "replay", params);
        json_decref(params);
    }
    json_decref(body);
}

/* The open gauges of a discarded dead letter's pair counted again (every pair's when the
 * row does not say), so the next scrape shows the discard: runs and jobs count them at
 * their end, and a discard is neither. Best effort: a failure leaves the gauges to the next
 * run. */
static void recount_open(tfs_api *api, tfs_store *s, const json_t *row)
{
    const char *pair = json_string_value(json_object_get(row, "pair"));
    for (size_t i = 0; i < api->cfg->n_pairs; i++) {
        const char *name = api->cfg->pairs[i].name;
        if (pair && strcmp(pair, name) != 0)
            continue;
        int64_t conflicts, dead;
        tfs_error e = {0};
        if (tfs_store_pair_open_counts(s, name, &conflicts, &dead, &e) == 0)
            tfs_metrics_pair_open(name, conflicts, dead);
        else
            tfs_log_debug("api", "open conflicts and dead letters of \"%s\" not counted: %s",
                          name, e.message);
    }
}

/* DELETE /dead-letters/{id} (role admin): the dead letter is discarded, audited with the
 * key's name. */
void tfs_api_dead_letter_discard(const tfs_http_request *req, tfs_http_response *resp,
                                 void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    if (dead_letter_id(req, resp, &id) != 0)
        return;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    char status[16];
    json_t *row = NULL;
    int rc = tfs_store_dead_letter_discard(s, id, req->actor, status, &row, &err);
    if (rc == 0)
        recount_open(api, s, row);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-dead-letter", "Unknown dead letter",
                         "there is no dead letter %" PRId64 "; GET /dead-letters lists them",
                         id);
    } else if (rc == TFS_ECONFLICT) {
        tfs_http_problem(resp, 409, "dead-letter-closed", "Dead letter not open",
                         "dead letter %" PRId64 " is %s, not open: only an open dead letter "
                         "can be discarded",
                         id, status);
        json_object_set_new(resp->json, "dead_letter_status", json_string(status));
    } else if (rc) {
        tfs_api_store_problem(resp, &err);
    } else {
        tfs_log_info("api", "dead letter %" PRId64 " discarded by %s", id,
                     req->actor ? req->actor : "?");
        tfs_http_json(resp, 200, row ? row : json_pack("{sIss}", "id", (json_int_t)id,
                                                       "status", "discarded"));
        return;
    }
    json_decref(row);
}
