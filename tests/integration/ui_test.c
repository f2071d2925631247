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
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tfs_test.h"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void setup(void)
{
    pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS_EMPTY, "pacs");
    cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "cama");
    state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "state");
    json_t *cfg = tfs_test_config_new(pacs, cama, state);
    d = tfs_test_daemon_start(cfg);
    json_decref(cfg);
}

static void teardown(void)
{
    char *log = tfs_test_daemon_log(d);
    int status = tfs_test_daemon_stop_status(d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
    tfs_test_db_drop(pacs);
    tfs_test_db_drop(cama);
    tfs_test_db_drop(state);
    free(pacs);
    free(cama);
    free(state);
}

TestSuite(ui, .init = setup, .fini = teardown);

typedef struct raw_answer {
    int status;
    char *head; /* the status line and headers */
    char *body;
    size_t body_len;
} raw_answer;

/* Sends "METHOD target HTTP/1.1" with extra header lines (each ending in \r\n) and reads
 * the answer to the end (Connection: close). */
static raw_answer raw(const char *method, const char *target, const char *extra)
{
    raw_answer a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect to the daemon");
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[2048];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n",
                     method, target, extra ? extra : "");
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(end, "%s %s: no complete answer: %s", method, target, buf);
    a.head = strndup(buf, (size_t)(end - buf) + 2);
    a.body_len = len - (size_t)(end + 4 - buf);
    a.body = malloc(a.body_len + 1);
    memcpy(a.body, end + 4, a.body_len);
    a.body[a.body_len] = '\0';
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &a.status), 1, "%s", buf);
    free(buf);
    return a;
}

static void raw_free(raw_answer *a)
{
    free(a->head);
    free(a->body);
}

/* The value of header name in a's head (a copy in out), or "" when absent. */
static const char *header(const raw_answer *a, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *l = strstr(a->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *line = l + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            break;
        }
    }
    return out;
}

#define CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "             \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void expect_guarded(const raw_answer *a, const char *what)
{
    char v[512];
    cr_expect_str_eq(header(a, "Content-Security-Policy", v, sizeof v), CSP, "%s", what);
    cr_expect_str_eq(header(a, "X-Content-Type-Options", v, sizeof v), "nosniff", "%s", what);
    cr_expect_str_eq(header(a, "Referrer-Policy", v, sizeof v), "no-referrer", "%s", what);
}

Test(ui, the_console_is_served_without_a_key_with_a_strict_policy)
{
    raw_answer a = raw("GET", "/ui/", NULL);
    char v[512];
    cr_assert_eq(a.status, 200, "%s", a.head);
    cr_expect_str_eq(header(&a, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
    expect_guarded(&a, "/ui/");
    cr_expect_str_eq(header(&a, "Cache-Control", v, sizeof v), "no-cache");
    char etag[128];
    header(&a, "ETag", etag, sizeof etag);
    cr_expect(strlen(etag) == 34 && etag[0] == '"', "ETag %s", etag);
    cr_expect(strstr(a.body, "<script type=\"module\" src=\"app.js\"></script>"), "%s", a.body);
    /* No inline script or style: the policy would block them, so none may be needed. */
    cr_expect_null(strstr(a.body, "<script>"), "an inline script in index.html");
    cr_expect_null(strstr(a.body, "style="), "an inline style in index.html");
    cr_expect_null(strstr(a.body, "<style"), "an inline style sheet in index.html");

    /* Revalidated by its ETag: 304, no body. */
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    raw_answer same = raw("GET", "/ui/", inm);
    cr_expect_eq(same.status, 304, "%s", same.head);
    cr_expect_eq(same.body_len, 0u);
    raw_free(&same);

    /* A key, even a wrong one, changes nothing. */
    raw_answer bad = raw("GET", "/ui/app.js", "Authorization: Bearer not-a-key\r\n");
    cr_expect_eq(bad.status, 200, "%s", bad.head);
    cr_expect_str_eq(header(&bad, "Content-Type", v, sizeof v), "text/javascript; charset=utf-8");
    expect_guarded(&bad, "/ui/app.js");
    cr_expect(strstr(bad.body, "import "), "app.js is the console's module");

    raw_answer css = raw("GET", "/ui/app.css", NULL);
    cr_expect_eq(css.status, 200);
    cr_expect_str_eq(header(&css, "Content-Type", v, sizeof v), "text/css; charset=utf-8");

    /* HEAD: the GET's status and length, no body. */
    raw_answer head = raw("HEAD", "/ui/app.js", NULL);
    cr_expect_eq(head.status, 200);
    cr_expect_eq(head.body_len, 0u);
    char len[32];
    snprintf(len, sizeof len, "%zu", bad.body_len);
    cr_expect_str_eq(header(&head, "Content-Length", v, sizeof v), len);

    raw_answer bare = raw("GET", "/ui", NULL);
    cr_expect_eq(bare.status, 308, "%s", bare.head);
    cr_expect_str_eq(header(&bare, "Location", v, sizeof v), "/ui/");
    raw_free(&a);
    raw_free(&bad);
    raw_free(&css);
    raw_free(&head);
    raw_free(&bare);
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
        raw_answer a = raw("GET", paths[i], NULL);
        /* A request line libmicrohttpd itself refuses (400) is refused too. */
        cr_expect(a.status == 404 || a.status == 400, "%s: %d\n%s", paths[i], a.status, a.head);
        cr_expect_null(strstr(a.body, "import "), "%s served a script", paths[i]);
        cr_expect_null(strstr(a.body, "<!doctype"), "%s served the page", paths[i]);
        cr_expect_null(strstr(a.body, "root:"), "%s served a file of the host", paths[i]);
        raw_free(&a);
    }
    /* And the daemon answers as before. */
    tfs_test_response h = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_expect_eq(h.status, 200);
    tfs_test_response_free(&h);
}
