/* tests/unit/http_test.c — the HTTP server (core/http.c) against a real libcurl client: a
 * server on 127.0.0.1 port 0 per test with a small route table, then routing and captures,
 * 404/405/401/403/413/500 problems and their shape, keys and roles, JSON, text and echoed
 * bodies, headers, many concurrent clients, TLS, and start-up errors. After every error the
 * server must still answer.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "http.h"
#include "log.h"

#define MAX_BODY 4096

/* ---- handlers ------------------------------------------------------------------------ */

static void h_health(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    tfs_http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

/* Reports what the server handed over: captures, actor, role, method, path. */
static void h_report(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    json_t *params = json_array();
    for (size_t i = 0; i < req->n_params; i++)
        json_array_append_new(params, json_string(req->params[i]));
    tfs_http_json(resp, 200,
                  json_pack("{s:o, s:s?, s:s, s:s, s:s, s:i}", "params", params, "actor",
                            req->actor, "role", tfs_role_name(req->role), "method",
                            req->method, "path", req->path, "ctx", *(int *)ctx));
}

static void h_start(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    tfs_http_json(resp, 202, json_pack("{s:s, s:s}", "run_id", "r-1", "actor", req->actor));
    snprintf(resp->location, sizeof resp->location, "/sync/status/r-1");
}

static void h_echo(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    bool nul = req->body != NULL && req->body[req->body_len] == '\0';
    tfs_http_json(resp, 200,
                  json_pack("{s:s%, s:I, s:b}", "body", req->body, req->body_len, "len",
                            (json_int_t)req->body_len, "nul", nul));
}

static void h_metrics(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    resp->status = 200;
    resp->text = strdup("# TYPE tfs_up gauge\ntfs_up 1\n");
    resp->content_type = "text/plain; version=0.0.4";
}

static void h_empty(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)resp;
    (void)ctx;
}

static void h_status_only(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    resp->status = 200; /* a status but no body: a handler bug */
}

static void h_problem(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    tfs_http_json(resp, 200, json_object()); /* replaced below, must not leak */
    tfs_http_problem(resp, 409, "already-running", "sync already running",
                     "pair \"%s\" is already running as run r-9", req->params[0]);
}

static void h_query(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    tfs_http_json(resp, 200,
                  json_pack("{s:s?, s:s?, s:s?}", "pair", tfs_http_query(req, "pair"),
                            "missing", tfs_http_query(req, "nope"), "x_test",
                            tfs_http_header(req, "X-Test")));
}

static void h_text_helper(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    tfs_http_text(resp, 200, "text/plain", strdup("plain words"));
}

static void h_no_content(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    resp->status = 204;
}

static int server_ctx = 42;

static const tfs_http_route routes[] = {
    {"GET", "/health", TFS_ROLE_NONE, h_health},
    {"GET", "/sync/status", TFS_ROLE_READ, h_report},
    {"GET", "/sync/status/{run_id}", TFS_ROLE_READ, h_report},
    {"POST", "/sync/full", TFS_ROLE_OPERATE, h_start},
    {"POST", "/sync/conflicts/{id}/resolve", TFS_ROLE_OPERATE, h_report},
    {"GET", "/a/{x}/b/{y}", TFS_ROLE_NONE, h_report},
    {"POST", "/reload", TFS_ROLE_ADMIN, h_report},
    {"POST", "/echo", TFS_ROLE_NONE, h_echo},
    {"PUT", "/echo", TFS_ROLE_NONE, h_echo},
    {"GET", "/metrics", TFS_ROLE_READ, h_metrics},
    {"GET", "/empty", TFS_ROLE_NONE, h_empty},
    {"GET", "/status-only", TFS_ROLE_NONE, h_status_only},
    {"GET", "/problem/{pair}", TFS_ROLE_NONE, h_problem},
    {"GET", "/query", TFS_ROLE_NONE, h_query},
    {"GET", "/text", TFS_ROLE_NONE, h_text_helper},
    {"DELETE", "/things/{id}", TFS_ROLE_NONE, h_no_content},
};

/* ---- the server of each test --------------------------------------------------------- */

static tfs_http_server *srv;
static tfs_api_key keys[3];
static char base[64];

static tfs_http_config test_config(void)
{
    tfs_http_key_hash("reader-secret", keys[0].sha256);
    keys[0].name = "dashboard";
    keys[0].role = TFS_ROLE_READ;
    tfs_http_key_hash("operator-secret", keys[1].sha256);
    keys[1].name = "scheduler";
    keys[1].role = TFS_ROLE_OPERATE;
    tfs_http_key_hash("admin-secret", keys[2].sha256);
    keys[2].name = "root";
    keys[2].role = TFS_ROLE_ADMIN;
    tfs_http_config cfg = {0};
    cfg.address = "127.0.0.1";
    cfg.port = 0;
    cfg.threads = 2;
    cfg.max_body = MAX_BODY;
    cfg.keys = keys;
    cfg.n_keys = 3;
    return cfg;
}

static void server_up(void)
{
    tfs_error err = {0};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tfs_http_config cfg = test_config();
    int rc = tfs_http_start(&cfg, routes, sizeof routes / sizeof routes[0], &server_ctx, &srv,
                            &err);
    cr_assert_eq(rc, 0, "start: %s", err.message);
    cr_assert_neq(tfs_http_port(srv), 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)tfs_http_port(srv));
}

static void server_down(void)
{
    tfs_http_stop(srv);
    srv = NULL;
    curl_global_cleanup();
}

/* ---- the client ---------------------------------------------------------------------- */

typedef struct result {
    CURLcode code;
    long status;
    char *body;
    size_t len;
    char content_type[128];
    char allow[128];
    char www_auth[128];
    char location[256];
    char cache_control[64];
} result;

typedef struct upload {
    const char *data;
    size_t len, pos;
} upload;

static size_t on_body(char *ptr, size_t size, size_t n, void *userdata)
{
    result *r = userdata;
    size_t add = size * n;
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, ptr, add);
    r->len += add;
    nb[r->len] = '\0';
    r->body = nb;
    return add;
}

/* Hands the body over in pieces of at most 1000 bytes, for chunked uploads. */
static size_t on_read(char *buf, size_t size, size_t n, void *userdata)
{
    upload *u = userdata;
    size_t want = size * n, left = u->len - u->pos;
    if (want > left)
        want = left;
    if (want > 1000)
        want = 1000;
    memcpy(buf, u->data + u->pos, want);
    u->pos += want;
    return want;
}

static void copy_header(CURL *c, const char *name, char *dst, size_t cap)
{
    struct curl_header *h = NULL;
    dst[0] = '\0';
    if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
        snprintf(dst, cap, "%s", h->value);
}

typedef struct request {
    const char *method;
    const char *path;
    const char *key;   /* sent as Bearer when set */
    const char *auth;  /* a raw Authorization header instead */
    const char *body;  /* NULL: no body */
    size_t body_len;
    bool chunked;
    bool expect; /* let curl send "Expect: 100-continue" as it does for large bodies */
    const char *extra_header;
} request;

/* Performs rq on c (a handle kept by the caller for keep-alive, or NULL for a fresh one). */
static result perform(CURL *c, const char *base_url, request rq)
{
    result r;
    memset(&r, 0, sizeof r);
    bool own = c == NULL;
    if (own)
        c = curl_easy_init();
    else
        curl_easy_reset(c);
    cr_assert_not_null(c);
    char url[512], auth[256];
    struct curl_slist *hdrs = NULL;
    upload up = {rq.body, rq.body_len, 0};
    snprintf(url, sizeof url, "%s%s", base_url, rq.path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    if (rq.key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", rq.key);
        hdrs = curl_slist_append(hdrs, auth);
    } else if (rq.auth) {
        snprintf(auth, sizeof auth, "Authorization: %s", rq.auth);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (rq.extra_header)
        hdrs = curl_slist_append(hdrs, rq.extra_header);
    if (rq.body && rq.chunked) {
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (rq.body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq.body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)rq.body_len);
    }
    hdrs = curl_slist_append(hdrs, rq.expect ? "Expect: 100-continue" : "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(rq.method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq.method);
    r.code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    copy_header(c, "Content-Type", r.content_type, sizeof r.content_type);
    copy_header(c, "Allow", r.allow, sizeof r.allow);
    copy_header(c, "WWW-Authenticate", r.www_auth, sizeof r.www_auth);
    copy_header(c, "Location", r.location, sizeof r.location);
    copy_header(c, "Cache-Control", r.cache_control, sizeof r.cache_control);
    curl_slist_free_all(hdrs);
    if (own)
        curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static result call(request rq)
{
    return perform(NULL, base, rq);
}

static json_t *parse(const result *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    cr_assert_not_null(j, "not JSON (%s): %s", je.text, r->body);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Checks an RFC 9457 problem and returns its detail (a copy). */
static char *check_problem(const result *r, long status, const char *slug, const char *path)
{
    char type[160];
    cr_assert_eq(r->code, CURLE_OK, "curl: %s", curl_easy_strerror(r->code));
    cr_assert_eq(r->status, status, "status %ld, body %s", r->status, r->body);
    cr_assert_str_eq(r->content_type, "application/problem+json");
    cr_assert_str_eq(r->cache_control, "no-store");
    json_t *j = parse(r);
    snprintf(type, sizeof type, "https://terrafusion.dev/problems/%s", slug);
    cr_assert_str_eq(jstr(j, "type"), type);
    cr_assert(json_is_string(json_object_get(j, "title")) && jstr(j, "title")[0] != '\0');
    cr_assert(json_is_integer(json_object_get(j, "status")));
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), status);
    cr_assert(json_is_string(json_object_get(j, "detail")) && jstr(j, "detail")[0] != '\0');
    cr_assert_str_eq(jstr(j, "instance"), path);
    char *detail = strdup(jstr(j, "detail"));
    json_decref(j);
    return detail;
}

static void result_free(result *r)
{
    free(r->body);
    r->body = NULL;
}

/* The server still answers. */
static void assert_alive(void)
{
    result r = call((request){.method = "GET", .path = "/health"});
    cr_assert_eq(r.code, CURLE_OK, "curl: %s", curl_easy_strerror(r.code));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    result_free(&r);
}

static char *filled(size_t n, char c)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

TestSuite(http, .init = server_up, .fini = server_down, .timeout = 120);

/* ---- routing ------------------------------------------------------------------------- */

Test(http, open_route_answers_json)
{
    result r = call((request){.method = "GET", .path = "/health"});
    cr_assert_eq(r.code, CURLE_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_str_eq(r.cache_control, "no-store");
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    result_free(&r);
}

/* One access line per request: client, method, path, status, milliseconds, key name; a
 * 2xx at debug (the access log's levels are tested in http_abuse_test.c). */
Test(http, request_is_logged_at_debug)
{
    char tmpl[] = "/tmp/tfs-http-log-XXXXXX";
    int fd = mkstemp(tmpl);
    cr_assert_geq(fd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    tfs_log_set_level(TFS_LOG_DEBUG);
    result r = call((request){.method = "GET", .path = "/a/p/b/q"});
    tfs_log_set_level(TFS_LOG_INFO);
    dup2(saved, STDERR_FILENO);
    close(saved);
    cr_assert_eq(r.status, 200);
    result_free(&r);
    char text[4096];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(tmpl);
    cr_assert_gt(n, 0);
    text[n] = '\0';
    const char *line = strstr(text, "debug [access] 127.0.0.1 GET /a/p/b/q 200 ");
    cr_assert_not_null(line, "%s", text);
    cr_assert_not_null(strstr(line, "ms key=-\n"), "%s", text);
}

Test(http, captures_one_and_two_segments)
{
    result r = call((request){.method = "GET", .path = "/sync/status/run-77",
                              .key = "reader-secret"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = parse(&r);
    json_t *p = json_object_get(j, "params");
    cr_assert_eq(json_array_size(p), 1);
    cr_assert_str_eq(json_string_value(json_array_get(p, 0)), "run-77");
    cr_assert_str_eq(jstr(j, "path"), "/sync/status/run-77");
    cr_assert_str_eq(jstr(j, "method"), "GET");
    cr_assert_eq(json_integer_value(json_object_get(j, "ctx")), 42);
    json_decref(j);
    result_free(&r);

    r = call((request){.method = "GET", .path = "/a/one/b/two"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    p = json_object_get(j, "params");
    cr_assert_eq(json_array_size(p), 2);
    cr_assert_str_eq(json_string_value(json_array_get(p, 0)), "one");
    cr_assert_str_eq(json_string_value(json_array_get(p, 1)), "two");
    cr_assert(json_is_null(json_object_get(j, "actor")) || !json_object_get(j, "actor"));
    cr_assert_str_eq(jstr(j, "role"), "none");
    json_decref(j);
    result_free(&r);

    /* The capture-less route next to the capturing one. */
    r = call((request){.method = "GET", .path = "/sync/status", .key = "reader-secret"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "params")), 0);
    json_decref(j);
    result_free(&r);
}

Test(http, trailing_slash_is_tolerated)
{
    result r = call((request){.method = "GET", .path = "/health/"});
    cr_assert_eq(r.status, 200);
    result_free(&r);
    r = call((request){.method = "GET", .path = "/a/one/b/two/"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = parse(&r);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "params"), 1)), "two");
    json_decref(j);
    result_free(&r);
}

Test(http, unknown_route_is_404_problem)
{
    result r = call((request){.method = "GET", .path = "/nope"});
    char *detail = check_problem(&r, 404, "not-found", "/nope");
    cr_assert_str_eq(detail, "no route GET /nope; see docs/openapi.yaml for the routes");
    free(detail);
    result_free(&r);
    assert_alive();

    /* A capture never matches an empty or extra segment. */
    const char *paths[] = {"/a//b/two", "/a/one/b/two/three", "/sync/status/x/y", "/healthz",
                           "/", "/a/one/b"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        r = call((request){.method = "GET", .path = paths[i]});
        cr_assert_eq(r.status, 404, "%s gave %ld", paths[i], r.status);
        result_free(&r);
    }
    assert_alive();
}

Test(http, wrong_method_is_405_with_allow)
{
    result r = call((request){.method = "GET", .path = "/sync/full", .key = "admin-secret"});
    char *detail = check_problem(&r, 405, "method-not-allowed", "/sync/full");
    cr_assert_str_eq(r.allow, "POST");
    cr_assert(strstr(detail, "POST") != NULL, "%s", detail);
    free(detail);
    result_free(&r);
    assert_alive();

    /* Two routes share the path: both methods are listed. */
    r = call((request){.method = "DELETE", .path = "/echo"});
    free(check_problem(&r, 405, "method-not-allowed", "/echo"));
    cr_assert_str_eq(r.allow, "POST, PUT");
    result_free(&r);

    /* A GET route allows HEAD too, and HEAD is served by it. */
    r = call((request){.method = "POST", .path = "/health", .body = "{}", .body_len = 2});
    free(check_problem(&r, 405, "method-not-allowed", "/health"));
    cr_assert_str_eq(r.allow, "GET, HEAD");
    result_free(&r);
    r = call((request){.method = "HEAD", .path = "/health"});
    cr_assert_eq(r.code, CURLE_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "");
    result_free(&r);
    assert_alive();
}

/* ---- authentication and roles -------------------------------------------------------- */

Test(http, missing_key_is_401)
{
    result r = call((request){.method = "GET", .path = "/sync/status"});
    char *detail = check_problem(&r, 401, "unauthorized", "/sync/status");
    cr_assert_str_eq(r.www_auth, "Bearer");
    cr_assert(strstr(detail, "Authorization: Bearer <key>") != NULL, "%s", detail);
    free(detail);
    result_free(&r);
    assert_alive();

    /* Another scheme, or an empty token, is no key either. */
    const char *bad[] = {"Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "reader-secret"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = call((request){.method = "GET", .path = "/sync/status", .auth = bad[i]});
        free(check_problem(&r, 401, "unauthorized", "/sync/status"));
        cr_assert_str_eq(r.www_auth, "Bearer");
        result_free(&r);
    }
    assert_alive();
}

Test(http, wrong_key_is_401_without_echo)
{
    result r = call((request){.method = "GET", .path = "/metrics", .key = "wrong-key-123"});
    char *detail = check_problem(&r, 401, "unauthorized", "/metrics");
    cr_assert_str_eq(r.www_auth, "Bearer");
    cr_assert(strstr(r.body, "wrong-key-123") == NULL, "key echoed: %s", r.body);
    cr_assert(strstr(detail, "Bearer") != NULL, "%s", detail);
    free(detail);
    result_free(&r);

    /* A prefix of a real key is not the key. */
    r = call((request){.method = "GET", .path = "/metrics", .key = "reader-secre"});
    free(check_problem(&r, 401, "unauthorized", "/metrics"));
    result_free(&r);
    assert_alive();
}

Test(http, read_key_on_operate_route_is_403)
{
    result r = call((request){.method = "POST", .path = "/sync/full", .key = "reader-secret",
                              .body = "{\"pair\":\"pacs-to-cama\"}", .body_len = 23});
    char *detail = check_problem(&r, 403, "forbidden", "/sync/full");
    cr_assert(strstr(detail, "\"operate\"") != NULL, "%s", detail);
    cr_assert(strstr(detail, "\"read\"") != NULL, "%s", detail);
    cr_assert(strstr(detail, "dashboard") != NULL, "%s", detail);
    cr_assert_str_eq(r.www_auth, "");
    free(detail);
    result_free(&r);
    assert_alive();

    r = call((request){.method = "POST", .path = "/reload", .key = "operator-secret"});
    detail = check_problem(&r, 403, "forbidden", "/reload");
    cr_assert(strstr(detail, "\"admin\"") != NULL, "%s", detail);
    free(detail);
    result_free(&r);
    assert_alive();
}

Test(http, right_key_passes_actor_and_role)
{
    result r = call((request){.method = "POST", .path = "/sync/full", .key = "operator-secret",
                              .body = "{\"pair\":\"pacs-to-cama\"}", .body_len = 23});
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(r.location, "/sync/status/r-1");
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "actor"), "scheduler");
    json_decref(j);
    result_free(&r);

    /* A larger role is enough; the handler sees the key's own role. */
    r = call((request){.method = "POST", .path = "/sync/conflicts/c-5/resolve",
                       .key = "admin-secret", .body = "{}", .body_len = 2});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    cr_assert_str_eq(jstr(j, "actor"), "root");
    cr_assert_str_eq(jstr(j, "role"), "admin");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "params"), 0)), "c-5");
    json_decref(j);
    result_free(&r);

    /* The scheme is case-insensitive. */
    r = call((request){.method = "GET", .path = "/sync/status/x", .auth = "bearer reader-secret"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    cr_assert_str_eq(jstr(j, "actor"), "dashboard");
    cr_assert_str_eq(jstr(j, "role"), "read");
    json_decref(j);
    result_free(&r);
}

/* ---- bodies -------------------------------------------------------------------------- */

Test(http, post_body_is_echoed_nul_terminated)
{
    const char *body = "{\"pair\":\"pacs-to-cama\",\"note\":\"h\\u00e9\"}";
    result r = call((request){.method = "POST", .path = "/echo", .body = body,
                              .body_len = strlen(body)});
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "body"), body);
    cr_assert_eq(json_integer_value(json_object_get(j, "len")), (json_int_t)strlen(body));
    cr_assert(json_is_true(json_object_get(j, "nul")));
    json_decref(j);
    result_free(&r);

    /* Chunked, several pieces. */
    char *big = filled(3000, 'x');
    r = call((request){.method = "PUT", .path = "/echo", .body = big, .body_len = 3000,
                       .chunked = true});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "len")), 3000);
    cr_assert_str_eq(jstr(j, "body"), big);
    json_decref(j);
    result_free(&r);
    free(big);

    /* No body at all: "" and length 0. */
    r = call((request){.method = "POST", .path = "/echo", .body = "", .body_len = 0});
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = parse(&r);
    cr_assert_str_eq(jstr(j, "body"), "");
    cr_assert_eq(json_integer_value(json_object_get(j, "len")), 0);
    cr_assert(json_is_true(json_object_get(j, "nul")));
    json_decref(j);
    result_free(&r);
}

Test(http, body_at_the_limit_is_accepted)
{
    char *body = filled(MAX_BODY, 'a');
    result r = call((request){.method = "POST", .path = "/echo", .body = body,
                              .body_len = MAX_BODY});
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = parse(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "len")), MAX_BODY);
    json_decref(j);
    result_free(&r);
    r = call((request){.method = "POST", .path = "/echo", .body = body, .body_len = MAX_BODY,
                       .chunked = true});
    cr_assert_eq(r.status, 200, "%s", r.body);
    result_free(&r);
    free(body);
}

Test(http, body_over_limit_with_content_length_is_413)
{
    char *body = filled(MAX_BODY + 1, 'b');
    result r = call((request){.method = "POST", .path = "/echo", .body = body,
                              .body_len = MAX_BODY + 1});
    char *detail = check_problem(&r, 413, "body-too-large", "/echo");
    cr_assert(strstr(detail, "4096 bytes") != NULL, "%s", detail);
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "title"), "request body too large");
    json_decref(j);
    free(detail);
    result_free(&r);
    free(body);
    assert_alive();

    /* Much larger: refused from the header, the body is never read. */
    body = filled(2 * 1024 * 1024, 'c');
    r = call((request){.method = "POST", .path = "/echo", .body = body,
                       .body_len = 2 * 1024 * 1024});
    free(check_problem(&r, 413, "body-too-large", "/echo"));
    result_free(&r);
    /* With "Expect: 100-continue" the 413 comes instead of the 100. */
    r = call((request){.method = "POST", .path = "/echo", .body = body,
                       .body_len = 2 * 1024 * 1024, .expect = true});
    free(check_problem(&r, 413, "body-too-large", "/echo"));
    result_free(&r);
    free(body);
    assert_alive();
}

/* A huge Content-Length is refused from the headers alone: the 413 arrives although the
 * body is never sent. */
Test(http, huge_content_length_is_refused_before_the_body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(tfs_http_port(srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 5000000000\r\n\r\n";
    cr_assert_eq(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    char buf[2048];
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\"instance\"") || got == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[got] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 413", 12) == 0, "got: %s", buf);
    cr_assert(strstr(buf, "body-too-large") != NULL, "got: %s", buf);
    assert_alive();
}

Test(http, body_over_limit_chunked_is_413)
{
    char *body = filled(MAX_BODY + 1, 'd');
    result r = call((request){.method = "POST", .path = "/echo", .body = body,
                              .body_len = MAX_BODY + 1, .chunked = true});
    char *detail = check_problem(&r, 413, "body-too-large", "/echo");
    cr_assert(strstr(detail, "4096 bytes") != NULL, "%s", detail);
    free(detail);
    result_free(&r);
    free(body);
    assert_alive();

    body = filled(200 * 1024, 'e');
    r = call((request){.method = "PUT", .path = "/echo", .body = body, .body_len = 200 * 1024,
                       .chunked = true});
    free(check_problem(&r, 413, "body-too-large", "/echo"));
    result_free(&r);
    r = call((request){.method = "PUT", .path = "/echo", .body = body, .body_len = 200 * 1024,
                       .chunked = true, .expect = true});
    free(check_problem(&r, 413, "body-too-large", "/echo"));
    result_free(&r);
    free(body);
    assert_alive();
}

/* ---- responses ----------------------------------------------------------------------- */

Test(http, text_response_keeps_its_content_type)
{
    result r = call((request){.method = "GET", .path = "/metrics", .key = "reader-secret"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.content_type, "text/plain; version=0.0.4");
    cr_assert_str_eq(r.cache_control, "no-store");
    cr_assert_str_eq(r.body, "# TYPE tfs_up gauge\ntfs_up 1\n");
    result_free(&r);

    r = call((request){.method = "GET", .path = "/text"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.content_type, "text/plain");
    cr_assert_str_eq(r.body, "plain words");
    result_free(&r);
}

Test(http, empty_handler_response_is_500)
{
    result r = call((request){.method = "GET", .path = "/empty"});
    char *detail = check_problem(&r, 500, "internal", "/empty");
    cr_assert(strstr(detail, "GET /empty") != NULL, "%s", detail);
    free(detail);
    result_free(&r);
    assert_alive();

    r = call((request){.method = "GET", .path = "/status-only"});
    free(check_problem(&r, 500, "internal", "/status-only"));
    result_free(&r);
    assert_alive();
}

Test(http, handler_problem_gets_instance)
{
    result r = call((request){.method = "GET", .path = "/problem/pacs-to-cama"});
    char *detail = check_problem(&r, 409, "already-running", "/problem/pacs-to-cama");
    cr_assert_str_eq(detail, "pair \"pacs-to-cama\" is already running as run r-9");
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "title"), "sync already running");
    json_decref(j);
    free(detail);
    result_free(&r);
    assert_alive();
}

Test(http, no_content_has_no_body)
{
    result r = call((request){.method = "DELETE", .path = "/things/9"});
    cr_assert_eq(r.code, CURLE_OK);
    cr_assert_eq(r.status, 204);
    cr_assert_str_eq(r.body, "");
    cr_assert_str_eq(r.cache_control, "no-store");
    result_free(&r);
    assert_alive();
}

Test(http, query_arguments_and_headers)
{
    result r = call((request){.method = "GET", .path = "/query?pair=pacs-to-cama&x=1",
                              .extra_header = "X-Test: yes"});
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "pair"), "pacs-to-cama");
    cr_assert_null(jstr(j, "missing"));
    cr_assert_str_eq(jstr(j, "x_test"), "yes");
    json_decref(j);
    result_free(&r);
}

Test(http, odd_paths_still_give_valid_problems)
{
    /* %ff decodes to a byte that is not UTF-8; %0a to a newline. */
    result r = call((request){.method = "GET", .path = "/x%ff%0a"});
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.content_type, "application/problem+json");
    json_t *j = parse(&r);
    cr_assert_str_eq(jstr(j, "type"), "https://terrafusion.dev/problems/not-found");
    cr_assert_not_null(jstr(j, "instance"));
    json_decref(j);
    result_free(&r);
    assert_alive();
}

/* ---- load ---------------------------------------------------------------------------- */

typedef struct worker {
    int id;
    int ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    for (int i = 0; i < 50; i++) {
        char path[64], want[64];
        snprintf(path, sizeof path, "/sync/status/t%d-%d", w->id, i);
        snprintf(want, sizeof want, "\"t%d-%d\"", w->id, i);
        /* Every fifth request is an error that must not disturb the others. */
        bool bad = i % 5 == 4;
        result r = perform(c, base, (request){.method = "GET", .path = path,
                                              .key = bad ? "nope" : "reader-secret"});
        if (r.code == CURLE_OK && r.status == (bad ? 401 : 200) &&
            (bad || strstr(r.body, want) != NULL))
            w->ok++;
        free(r.body);
    }
    curl_easy_cleanup(c);
    return NULL;
}

Test(http, concurrent_requests_are_all_answered)
{
    enum { N = 4 };
    pthread_t t[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){i, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        total += w[i].ok;
    }
    cr_assert_eq(total, N * 50, "%d of %d answered right", total, N * 50);
    assert_alive();
}

/* ---- roles, hashes, start-up --------------------------------------------------------- */

Test(http_misc, role_names)
{
    cr_assert_eq(tfs_role_from_name("read"), TFS_ROLE_READ);
    cr_assert_eq(tfs_role_from_name("operate"), TFS_ROLE_OPERATE);
    cr_assert_eq(tfs_role_from_name("admin"), TFS_ROLE_ADMIN);
    cr_assert_eq(tfs_role_from_name("Admin"), -1);
    cr_assert_eq(tfs_role_from_name(""), -1);
    cr_assert_eq(tfs_role_from_name(NULL), -1);
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_READ), "read");
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_OPERATE), "operate");
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_ADMIN), "admin");
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_NONE), "none");
}

Test(http_misc, key_hash_is_sha256)
{
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char h[32];
    tfs_http_key_hash("abc", h);
    cr_assert_arr_eq(h, abc, 32);
}

Test(http_misc, start_errors_are_clear)
{
    tfs_http_server *s = NULL;
    tfs_error err = {0};
    tfs_http_config cfg = {0};
    cfg.address = "not-an-address";
    int rc = tfs_http_start(&cfg, routes, 1, NULL, &s, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_assert_null(s);
    cr_assert(strstr(err.message, "\"not-an-address\"") != NULL, "%s", err.message);

    cfg.address = "127.0.0.1";
    cfg.tls_cert_file = "/nonexistent/cert.pem";
    cfg.tls_key_file = "/nonexistent/key.pem";
    rc = tfs_http_start(&cfg, routes, 1, NULL, &s, &err);
    cr_assert_eq(rc, TFS_EIO);
    cr_assert_null(s);
    cr_assert(strstr(err.message, "/nonexistent/cert.pem") != NULL, "%s", err.message);

    cfg.tls_key_file = NULL;
    rc = tfs_http_start(&cfg, routes, 1, NULL, &s, &err);
    cr_assert_eq(rc, TFS_EINVAL, "%s", err.message);
    cr_assert(strstr(err.message, "tls_key_file") != NULL, "%s", err.message);

    cfg.tls_cert_file = NULL;
    tfs_http_route bad = {"GET", "/x/{oops", TFS_ROLE_NONE, h_health};
    rc = tfs_http_start(&cfg, &bad, 1, NULL, &s, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_assert_null(s);

    /* A port already taken. */
    tfs_http_server *first = NULL;
    cr_assert_eq(tfs_http_start(&cfg, routes, 1, NULL, &first, &err), 0, "%s", err.message);
    cfg.port = tfs_http_port(first);
    rc = tfs_http_start(&cfg, routes, 1, NULL, &s, &err);
    cr_assert_lt(rc, 0);
    cr_assert_null(s);
    cr_assert(strstr(err.message, "could not start http server") != NULL, "%s", err.message);
    tfs_http_stop(first);
    tfs_http_stop(NULL);
}

Test(http_misc, ipv6_loopback)
{
    tfs_http_server *s = NULL;
    tfs_error err = {0};
    tfs_http_config cfg = {0};
    char url[64];
    cfg.address = "::1";
    if (tfs_http_start(&cfg, routes, 1, NULL, &s, &err) != 0)
        cr_skip_test("no IPv6 loopback here: %s", err.message);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(url, sizeof url, "http://[::1]:%u", (unsigned)tfs_http_port(s));
    result r = perform(NULL, url, (request){.method = "GET", .path = "/health"});
    cr_assert_eq(r.code, CURLE_OK, "%s", curl_easy_strerror(r.code));
    cr_assert_eq(r.status, 200);
    free(r.body);
    tfs_http_stop(s);
    curl_global_cleanup();
}

/* Writes a fresh self-signed ECDSA certificate and its key as PEM files under dir. */
static void make_cert(const char *dir, char *cert_path, char *key_path, size_t cap)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t pem;
    time_t now = time(NULL);
    cr_assert_eq(gnutls_x509_privkey_init(&key), 0);
    cr_assert_eq(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                              0),
                 0);
    cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, "\x01", 1);
    gnutls_x509_crt_set_activation_time(crt, now - 3600);
    gnutls_x509_crt_set_expiration_time(crt, now + 3600);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9);
    cr_assert_eq(gnutls_x509_crt_set_key(crt, key), 0);
    cr_assert_eq(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);

    snprintf(cert_path, cap, "%s/cert.pem", dir);
    snprintf(key_path, cap, "%s/key.pem", dir);
    cr_assert_eq(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
    FILE *f = fopen(cert_path, "wb");
    cr_assert_not_null(f);
    fwrite(pem.data, 1, pem.size, f);
    fclose(f);
    gnutls_free(pem.data);
    cr_assert_eq(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), 0);
    f = fopen(key_path, "wb");
    cr_assert_not_null(f);
    fwrite(pem.data, 1, pem.size, f);
    fclose(f);
    gnutls_free(pem.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

Test(http_misc, https_when_cert_and_key_are_set, .timeout = 120)
{
    char dir[] = "/tmp/tfs-http-tls-XXXXXX";
    char cert[256], key[256], url[64];
    tfs_http_server *s = NULL;
    tfs_error err = {0};
    tfs_http_config cfg = test_config();
    cr_assert_not_null(mkdtemp(dir));
    make_cert(dir, cert, key, sizeof cert);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    int rc = tfs_http_start(&cfg, routes, sizeof routes / sizeof routes[0], &server_ctx, &s,
                            &err);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    cr_assert_eq(rc, 0, "%s", err.message);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned)tfs_http_port(s));
    result r = perform(NULL, url, (request){.method = "GET", .path = "/sync/status/tls",
                                            .key = "reader-secret"});
    cr_assert_eq(r.code, CURLE_OK, "%s", curl_easy_strerror(r.code));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"tls\"") != NULL, "%s", r.body);
    free(r.body);

    /* Plain HTTP to the TLS port gets no HTTP answer. */
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)tfs_http_port(s));
    r = perform(NULL, url, (request){.method = "GET", .path = "/health"});
    cr_assert(r.code != CURLE_OK || r.status != 200);
    free(r.body);
    tfs_http_stop(s);
    curl_global_cleanup();
}
