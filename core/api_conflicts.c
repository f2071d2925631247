/* core/api_conflicts.c — the conflicts of the pairs: GET /sync/conflicts (filtered, paged),
 * GET /sync/conflicts/{id} (its source, target and base versions and the fields in
 * dispute) and POST /sync/conflicts/{id}/resolve, a job of the conflict's pair (see
 * pipeline_resolve.c), so it never runs beside a sync of that pair; see api_internal.h.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store_conflicts.h"

void tfs_api_conflicts_list(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    static const char *const statuses[] = {"open", "resolved", "superseded"};
    tfs_api *api = ctx;
    tfs_conflict_filter f = {.pair = tfs_http_query(req, "pair"),
                             .entity = tfs_http_query(req, "entity"),
                             .status = tfs_http_query(req, "status")};
    const char *after = tfs_http_query(req, "after_id");
    int64_t run_id = 0, limit = 100;
    if (tfs_api_parse_run_and_limit(req, resp, &run_id, &limit) != 0)
        return;
    f.limit = (long)limit;
    if (after && tfs_api_parse_id(after, &f.after_id) != 0) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "after_id=\"%s\" must be the next_after_id of a previous page", after);
        return;
    }
    int known = !f.status;
    for (int i = 0; i < 3 && f.status; i++)
        known |= strcmp(f.status, statuses[i]) == 0;
    if (!known) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "status=\"%s\" is not a conflict status; use open, resolved or "
                         "superseded", f.status);
        return;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *out = NULL;
    int rc = tfs_store_conflicts_list(s, &f, &out, &err);
    tfs_api_store_put(api, s);
    if (rc)
        tfs_api_store_problem(resp, &err);
    else
        tfs_http_json(resp, 200, out);
}

/* The {id} of the path into *id and the conflict into *out (owned); -1 after answering. */
static int conflict_of_path(tfs_api *api, const tfs_http_request *req, tfs_http_response *resp,
                            int64_t *id, json_t **out)
{
    if (tfs_api_parse_id(req->params[0], id) != 0) {
        tfs_http_problem(resp, 400, "invalid-id", "Invalid conflict id",
                         "\"%s\" is not a conflict id (a positive integer)", req->params[0]);
        return -1;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return -1;
    tfs_error err = {0};
    int rc = tfs_store_conflict_get(s, *id, out, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "conflict-not-found", "Conflict not found",
                         "no conflict %" PRId64 "; GET /sync/conflicts lists them", *id);
        return -1;
    }
    if (rc) {
        tfs_api_store_problem(resp, &err);
        return -1;
    }
    return 0;
}

void tfs_api_conflict_get(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    int64_t id;
    json_t *c;
    if (conflict_of_path(ctx, req, resp, &id, &c) == 0)
        tfs_http_json(resp, 200, c);
}

void tfs_api_conflict_resolve(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    static const char *const allowed[] = {"choose", "record", NULL};
    static const char *example = "{\"choose\": \"source\"} or {\"choose\": \"target\"} or "
                                 "{\"record\": {\"pardat\": [{...}]}}";
    tfs_api *api = ctx;
    int64_t id;
    json_t *c = NULL, *params = NULL;
    json_t *body = tfs_api_body(req, resp, allowed, example, 0);
    if (!body)
        return;
    json_t *choose = json_object_get(body, "choose");
    json_t *record = json_object_get(body, "record");
    if ((choose && record) || (!choose && !record)) {
        tfs_http_problem(resp, 400, "invalid-body", "Invalid request body",
                         "give either \"choose\" or \"record\": %s", example);
        goto out;
    }
    if (choose && (!json_is_string(choose) || (strcmp(json_string_value(choose), "source") &&
                                               strcmp(json_string_value(choose), "target")))) {
        tfs_http_problem(resp, 400, "invalid-body", "Invalid request body",
                         "\"choose\" must be \"source\" or \"target\"");
        goto out;
    }
    if (record && !json_is_object(record)) {
        tfs_http_problem(resp, 400, "invalid-body", "Invalid request body",
                         "\"record\" must be an object {target entity: [records]}, in the "
                         "shape of the conflict's \"source\"");
        goto out;
    }
    if (conflict_of_path(api, req, resp, &id, &c) != 0)
        goto out;
    const char *status = json_string_value(json_object_get(c, "status"));
    if (!status || strcmp(status, "open") != 0) {
        tfs_http_problem(resp, 409, "conflict-not-open", "Conflict not open",
                         "conflict %" PRId64 " is %s; only an open conflict can be resolved",
                         id, status ? status : "?");
        /* Not "status": in a problem that is the HTTP status (RFC 9457). */
        json_object_set_new(resp->json, "conflict_status", json_string(status ? status : "?"));
        goto out;
    }
    params = json_pack("{sI}", "conflict_id", (json_int_t)id);
    json_object_set(params, choose ? "choose" : "record", choose ? choose : record);
    tfs_api_run_job(api, req, resp, json_string_value(json_object_get(c, "pair")), "resolve",
                    params);
out:
    json_decref(params);
    json_decref(c);
    json_decref(body);
}
