/* tests/integration/ui_test.c — the web console's files as tfsyncd serves them (issue 14):
 * raw HTTP over a real socket to the real daemon (raw, so the path goes out byte for byte:
 * a client library would fold "/../" or refuse "%00" before sending). /ui/ and each file
 * without a key, with the Content-Type, the strict Content-Security-Policy, nosniff, no
 * referrer and an ETag that answers 304; /ui sent to /ui/; every traversal, encoded
 * slash, double slash, NUL and near miss answered 404 without a byte of any file; HEAD
 * with the GET's headers and no body. Runs in the sanitizer build too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS_EMPTY, NULL, NULL, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(ui, .init = setup, .fini = teardown);

/* Raw, so the path goes out byte for byte. */
static tfs_test_raw raw(const char *method, const char *target, const char *extra)
{
    return tfs_test_http_raw(d->port, method, target, extra);
}

#define CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "             \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void expect_guarded(const tfs_test_raw *a, const char *what)
{
    char v[512];
    cr_expect_str_eq(tfs_test_raw_header(a, "Content-Security-Policy", v, sizeof v), CSP, "%s", what);
    cr_expect_str_eq(tfs_test_raw_header(a, "X-Content-Type-Options", v, sizeof v), "nosniff", "%s", what);
    cr_expect_str_eq(tfs_test_raw_header(a, "Referrer-Policy", v, sizeof v), "no-referrer", "%s", what);
}

Test(ui, the_console_is_served_without_a_key_with_a_strict_policy)
{
    tfs_test_raw a = raw("GET", "/ui/", NULL);
    char v[512];
    cr_assert_eq(a.status, 200, "%s", a.head);
    cr_expect_str_eq(tfs_test_raw_header(&a, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
    expect_guarded(&a, "/ui/");
    cr_expect_str_eq(tfs_test_raw_header(&a, "Cache-Control", v, sizeof v), "no-cache");
    char etag[128];
    tfs_test_raw_header(&a, "ETag", etag, sizeof etag);
    cr_expect(strlen(etag) == 34 && etag[0] == '"', "ETag %s", etag);
    cr_expect(strstr(a.body, "<script type=\"module\" src=\"app.js\"></script>"), "%s", a.body);
    /* No inline script or style: the policy would block them, so none may be needed. */
    cr_expect_null(strstr(a.body, "<script>"), "an inline script in index.html");
    cr_expect_null(strstr(a.body, "style="), "an inline style in index.html");
    cr_expect_null(strstr(a.body, "<style"), "an inline style sheet in index.html");

    /* Revalidated by its ETag: 304, no body. */
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    tfs_test_raw same = raw("GET", "/ui/", inm);
    cr_expect_eq(same.status, 304, "%s", same.head);
    cr_expect_eq(same.body_len, 0u);
    tfs_test_raw_free(&same);

    /* A key, even a wrong one, changes nothing. */
    tfs_test_raw bad = raw("GET", "/ui/app.js", "Authorization: Bearer not-a-key\r\n");
    cr_expect_eq(bad.status, 200, "%s", bad.head);
    cr_expect_str_eq(tfs_test_raw_header(&bad, "Content-Type", v, sizeof v), "text/javascript; charset=utf-8");
    expect_guarded(&bad, "/ui/app.js");
    cr_expect(strstr(bad.body, "import "), "app.js is the console's module");

    tfs_test_raw css = raw("GET", "/ui/app.css", NULL);
    cr_expect_eq(css.status, 200);
    cr_expect_str_eq(tfs_test_raw_header(&css, "Content-Type", v, sizeof v), "text/css; charset=utf-8");

    /* HEAD: the GET's status and length, no body. */
    tfs_test_raw head = raw("HEAD", "/ui/app.js", NULL);
    cr_expect_eq(head.status, 200);
    cr_expect_eq(head.body_len, 0u);
    char len[32];
    snprintf(len, sizeof len, "%zu", bad.body_len);
    cr_expect_str_eq(tfs_test_raw_header(&head, "Content-Length", v, sizeof v), len);

    tfs_test_raw bare = raw("GET", "/ui", NULL);
    cr_expect_eq(bare.status, 308, "%s", bare.head);
    cr_expect_str_eq(tfs_test_raw_header(&bare, "Location", v, sizeof v), "/ui/");
    tfs_test_raw_free(&a);
    tfs_test_raw_free(&bad);
    tfs_test_raw_free(&css);
    tfs_test_raw_free(&head);
    tfs_test_raw_free(&bare);
}

Test(ui, no_path_reaches_anything_but_the_embedded_files)
{
    static const char *const paths[] = {
        "/ui/../etc/passwd", "/ui/..", "/ui/../", "/ui/%2e%2e/", "/ui/%2e%2e/etc/passwd",
        "/ui/%2E%2E%2Fetc%2Fpasswd", "/ui/..%2fapp.js", "/ui/%2fapp.js", "/ui//app.js",
        "/ui/./app.js", "/ui/.%2fapp.js", "/ui/index.html%00.js", "/ui/app.js%00",
        "/ui/%00", "/ui/APP.JS", "/ui/app.js/", "/ui/app.js/x", "/ui/app", "/ui/.env",
        "/ui/..%5capp.js", "/ui/%5c..%5c..%5cetc%5cpasswd", "/ui/index.html%2f",
        "/ui/%252e%252e/", "/ui/app.js%20", "/ui/ app.js", "/uix", "/ui.js",
        "/ui/core/api_ui.c", "/ui/CMakeLists.txt",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        tfs_test_raw a = raw("GET", paths[i], NULL);
        /* A request line libmicrohttpd itself refuses (400) is refused too. */
        cr_expect(a.status == 404 || a.status == 400, "%s: %d\n%s", paths[i], a.status, a.head);
        cr_expect_null(strstr(a.body, "import "), "%s served a script", paths[i]);
        cr_expect_null(strstr(a.body, "<!doctype"), "%s served the page", paths[i]);
        cr_expect_null(strstr(a.body, "root:"), "%s served a file of the host", paths[i]);
        tfs_test_raw_free(&a);
    }
    /* And the daemon answers as before. */
    tfs_test_response h = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_expect_eq(h.status, 200);
    tfs_test_response_free(&h);
}
