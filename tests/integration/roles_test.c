/* tests/integration/roles_test.c — every route asks for the role docs/security.md lists
 * for it: a key one role below gets 403 naming both roles, a key with the role gets past
 * the check (whatever the handler answers then), no key gets 401; /health needs none. The
 * table below is the one in docs/security.md: change both together.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS_EMPTY, "r", NULL, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(roles, .init = setup, .fini = teardown, .timeout = 120);

typedef struct route {
    const char *method, *path, *role;
} route;

/* docs/security.md, "Keys and roles". Bodies are left out: a request that passes the role
 * check is refused by its handler (400, 404), so nothing is started. */
static const route routes[] = {
    {"GET", "/sync/status", "read"},
    {"GET", "/sync/status/1", "read"},
    {"GET", "/pairs", "read"},
    {"GET", "/plugins", "read"},
    {"GET", "/audit", "read"},
    {"GET", "/audit/verify", "read"},
    {"GET", "/dead-letters", "read"},
    {"GET", "/dead-letters/1", "read"},
    {"GET", "/sync/conflicts", "read"},
    {"GET", "/sync/conflicts/1", "read"},
    {"POST", "/sync/full", "operate"},
    {"POST", "/sync/incremental", "operate"},
    {"POST", "/sync/runs/1/cancel", "operate"},
    {"POST", "/sync/runs/1/confirm", "operate"},
    {"POST", "/dead-letters/replay", "operate"},
    {"POST", "/dead-letters/1/replay", "operate"},
    {"POST", "/sync/conflicts/1/resolve", "operate"},
    {"POST", "/sync/validate", "operate"},
    {"POST", "/transforms/pacs_to_cama/test", "operate"},
    {"DELETE", "/dead-letters/1", "admin"},
    {"POST", "/admin/reload", "admin"},
};

static const char *key_of(const char *role)
{
    return !strcmp(role, "read") ? TFS_TEST_KEY_READ
           : !strcmp(role, "operate") ? TFS_TEST_KEY_OPERATE
                                      : TFS_TEST_KEY_ADMIN;
}

Test(roles, each_route_needs_the_role_the_docs_list)
{
    static const char *const order[] = {"read", "operate", "admin"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route *rt = &routes[i];
        int need = !strcmp(rt->role, "read") ? 0 : !strcmp(rt->role, "operate") ? 1 : 2;
        tfs_test_response r = tfs_test_http(d, rt->method, rt->path, NULL, NULL);
        cr_assert_eq(r.status, 401, "%s %s without a key: %ld %s", rt->method, rt->path,
                     r.status, r.body);
        tfs_test_response_free(&r);
        for (int k = 0; k < 3; k++) {
            r = tfs_test_http(d, rt->method, rt->path, key_of(order[k]), NULL);
            if (k < need) {
                cr_assert_eq(r.status, 403, "%s %s with role %s: %ld %s", rt->method, rt->path,
                             order[k], r.status, r.body);
                char want[64];
                snprintf(want, sizeof want, "needs role \"%s\"", rt->role);
                const char *detail = json_string_value(json_object_get(r.json, "detail"));
                cr_assert(detail && strstr(detail, want), "%s", r.body);
            } else {
                cr_assert(r.status != 403 && r.status != 401, "%s %s with role %s: %ld %s",
                          rt->method, rt->path, order[k], r.status, r.body);
            }
            tfs_test_response_free(&r);
        }
    }
    tfs_test_response r = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
}
