/* core/api_audit.c — GET /audit/verify: the audit trail's hash chain walked in the state
 * store (store_audit.h), answered as the first entry of each pair that does not match. A
 * verdict is data, so a broken chain is 200 with "ok": false; only a bad query or an
 * unreachable store is an error. */
#include <stdio.h>
#include <string.h>

#include "api_internal.h"
#include "log.h"
#include "store_audit.h"

/* The config's rule for names: lowercase letters, digits, '-' and '_'. */
static int is_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

void tfs_api_audit_verify(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    const char *pair = tfs_http_query(req, "pair");
    /* A pair's name is a config name; a pair no longer in the
     * config may still have a chain, so it is not looked up there. */
    if (pair && !is_name(pair)) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "pair must be a pair's name (lowercase letters, digits, '-' and '_')");
        return;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *out = NULL;
    int rc = tfs_store_audit_verify(s, pair, &out, &err);
    tfs_api_store_put(api, s);
    if (rc) {
        tfs_api_store_problem(resp, &err);
        return;
    }
    if (!json_is_true(json_object_get(out, "ok")))
        tfs_log_error("api", "audit verify asked by %s found a mismatch",
                      req->actor ? req->actor : "?");
    tfs_http_json(resp, 200, out);
}
