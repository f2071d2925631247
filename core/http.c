/* core/http.c — the HTTP server under the API: libmicrohttpd with an epoll thread pool and
 * every limit set on the daemon, request bodies buffered under a cap in the three phases of
 * libmicrohttpd's largepost example (set up on the first call, buffer on upload calls,
 * answer on the last, free in the completion callback), routing by method and path pattern,
 * and RFC 9457 problem+json errors; who may call a route is auth.c's answer, turned into
 * 401 and 403 here. It knows nothing of syncs: api.c registers its handlers as routes.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "tfs_limits.h"
#include "log.h"

#define HTTP_COMPONENT "http"
#define HTTP_MAGIC 0x54465348u /* "TFSH" */
#define HTTP_PROBLEM_BASE "https://terrafusion.dev/problems/"
#define HTTP_CT_JSON "application/json"
#define HTTP_CT_PROBLEM "application/problem+json"
#define HTTP_MAX_PARAMS 4
/* A certificate or key file larger than this is not PEM we want to hold in memory. */
#define HTTP_TLS_FILE_MAX (1024 * 1024)
/* Bytes of an over-long chunked body read and thrown away so the client still gets its
 * 413; past this the connection is dropped instead. */
#define HTTP_DISCARD_MAX (8u * 1024 * 1024)

struct tfs_http_server {
    unsigned magic;
    struct MHD_Daemon *daemon;
    const tfs_http_route *routes;
    size_t n_routes;
    void *ctx;
    tfs_http_invoke invoke;
    size_t max_body;
    tfs_auth *auth; /* the keys, copied: the config need not outlive the server */
    /* Read-held by a request for its key check; write-held only to swap in new keys. A
     * request keeps a copy of its actor, so a handler may itself swap the keys. */
    pthread_rwlock_t auth_lock;
    atomic_bool draining; /* set at shutdown: every request gets 503 */
    char *tls_cert; /* PEM read from the files, kept until the daemon is stopped */
    char *tls_key;
    size_t tls_key_len;
    uint16_t port;
};

/* The per-request context of the three phases, freed in the completion callback. */
typedef struct http_conn {
    uint64_t start_us;
    char *body; /* NUL-terminated; at most max_body + 1 bytes */
    size_t body_len, body_cap;
    size_t discarded; /* bytes dropped after the body went over the cap */
    bool too_large;
    bool oom;
    bool answered; /* a response was queued on the first call (Content-Length too big) */
    char *scratch; /* the captured path segments */
} http_conn;

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A JSON string of s; bytes jansson refuses (invalid UTF-8 from a client's path, a detail
 * cut inside a character) become '?', so a problem never loses its fields. */
static json_t *json_text(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        copy[i] = ch >= 0x80 ? '?' : (char)ch;
    }
    copy[len] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

static void free_jansson(void *p)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (f)
        f(p);
    else
        free(p);
}

static void response_clear_body(tfs_http_response *resp)
{
    json_decref(resp->json);
    resp->json = NULL;
    free(resp->text);
    resp->text = NULL;
}

/* Copies s into dst for a log line, replacing control bytes so a path cannot forge lines. */
static const char *log_safe(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
    return dst;
}

void tfs_http_key_hash(const char *key, unsigned char out[32])
{
    tfs_auth_key_hash(key, out);
}

/* ---- responses ----------------------------------------------------------------------- */

int tfs_http_problem(tfs_http_response *resp, int status, const char *type, const char *title,
                     const char *detail_fmt, ...)
{
    char detail[1024] = "";
    char type_uri[192];
    if (!resp)
        return 0;
    response_clear_body(resp);
    resp->location[0] = '\0';
    if (detail_fmt) {
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(detail, sizeof detail, detail_fmt, ap);
        va_end(ap);
    }
    snprintf(type_uri, sizeof type_uri, HTTP_PROBLEM_BASE "%s", type ? type : "internal");
    if (!title) {
        title = MHD_get_reason_phrase_for((unsigned)status);
    }
    json_t *o = json_object();
    if (o) {
        json_object_set_new(o, "type", json_text(type_uri));
        json_object_set_new(o, "title", json_text(title));
        json_object_set_new(o, "status", json_integer(status));
        json_object_set_new(o, "detail", json_text(detail));
    }
    resp->status = status;
    resp->json = o; /* NULL when out of memory: answered as a bare 500 */
    resp->content_type = HTTP_CT_PROBLEM;
    return 0;
}

int tfs_http_json(tfs_http_response *resp, int status, json_t *body)
{
    if (!resp) {
        json_decref(body);
        return 0;
    }
    response_clear_body(resp);
    resp->status = status;
    resp->json = body;
    resp->content_type = HTTP_CT_JSON;
    return 0;
}

int tfs_http_text(tfs_http_response *resp, int status, const char *content_type, char *text)
{
    if (!resp) {
        free(text);
        return 0;
    }
    response_clear_body(resp);
    resp->status = status;
    resp->text = text;
    resp->content_type = content_type;
    return 0;
}

const char *tfs_http_query(const tfs_http_request *req, const char *name)
{
    if (!req || !req->conn || !name)
        return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn,
                                       MHD_GET_ARGUMENT_KIND, name);
}

const char *tfs_http_header(const tfs_http_request *req, const char *name)
{
    if (!req || !req->conn || !name)
        return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_HEADER_KIND,
                                       name);
}

/* Used when even a problem could not be built (out of memory). */
static const char fallback_problem[] =
    "{\"type\":\"" HTTP_PROBLEM_BASE "internal\",\"title\":\"internal error\","
    "\"status\":500,\"detail\":\"the server could not build the response; see its log\"}";

static void add_header(struct MHD_Response *r, const char *name, const char *value)
{
    if (MHD_add_response_header(r, name, value) != MHD_YES)
        tfs_log_warn(HTTP_COMPONENT, "could not add header %s to a response", name);
}

/* Queues resp (consuming its body) on conn; *status_out gets the status really sent.
 * allow is the Allow header of a 405, challenge adds WWW-Authenticate to a 401. */
static enum MHD_Result send_response(struct MHD_Connection *conn, const char *method,
                                     const char *path, tfs_http_response *resp,
                                     const char *allow, bool challenge, int *status_out)
{
    struct MHD_Response *r = NULL;
    int status = resp->status;
    bool no_body = status == 204 || status == 304;
    bool empty = !resp->json && !resp->text;
    const char *ctype = resp->content_type ? resp->content_type : HTTP_CT_JSON;

    if (status < 100 || status > 599 || (empty && !no_body)) {
        char m[16], p[160];
        tfs_log_error(HTTP_COMPONENT, "handler for %s %s left no response (status %d)",
                      log_safe(m, sizeof m, method), log_safe(p, sizeof p, path), status);
        tfs_http_problem(resp, 500, "internal", "internal error",
                         "the handler for %s %s gave no response; this is a bug in the server, "
                         "see its log",
                         method, path);
        status = 500;
        ctype = HTTP_CT_PROBLEM;
    }

    if (no_body) {
        response_clear_body(resp);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (resp->text) {
        r = MHD_create_response_from_buffer(strlen(resp->text), resp->text,
                                            MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->text = NULL; /* libmicrohttpd frees it */
    } else if (resp->json) {
        if (strcmp(ctype, HTTP_CT_PROBLEM) == 0 && json_is_object(resp->json) &&
            !json_object_get(resp->json, "instance"))
            json_object_set_new(resp->json, "instance", json_text(path));
        char *s = json_dumps(resp->json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s) {
            r = MHD_create_response_from_buffer_with_free_callback(strlen(s), s, free_jansson);
            if (!r)
                free_jansson(s);
        }
    }
    response_clear_body(resp);
    if (!r) {
        status = 500;
        ctype = HTTP_CT_PROBLEM;
        no_body = false;
        r = MHD_create_response_from_buffer(sizeof fallback_problem - 1,
                                            (void *)fallback_problem, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
    }

    if (!no_body)
        add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (resp->location[0] && status != 500)
        add_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (allow)
        add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (challenge)
        add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");

    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    *status_out = status;
    return ret;
}

static void log_request(const char *method, const char *path, int status, uint64_t start_us)
{
    char m[16], p[256];
    tfs_log_debug(HTTP_COMPONENT, "%s %s %d %lluus", log_safe(m, sizeof m, method),
                  log_safe(p, sizeof p, path), status,
                  (unsigned long long)(now_us() - start_us));
}

/* ---- routing ------------------------------------------------------------------------- */

typedef struct span {
    size_t off, len;
} span;

/* Matches path[0..len) against pattern; a {capture} takes one non-empty segment. */
static bool route_match(const char *pattern, const char *path, size_t len, span caps[],
                        size_t *n_caps)
{
    const char *p = pattern;
    size_t u = 0, n = 0;
    while (*p && u < len) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t end = u;
            while (end < len && path[end] != '/')
                end++;
            if (!close || end == u || n == HTTP_MAX_PARAMS)
                return false;
            caps[n].off = u;
            caps[n].len = end - u;
            n++;
            p = close + 1;
            u = end;
        } else {
            if (*p != path[u])
                return false;
            p++;
            u++;
        }
    }
    if (*p != '\0' || u != len)
        return false;
    *n_caps = n;
    return true;
}

static bool method_matches(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    /* HEAD is a GET whose body libmicrohttpd leaves out. */
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Appends m to the Allow list unless it is there already. */
static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t mlen = strlen(m);
    for (const char *a = allow; *a;) {
        const char *e = strchr(a, ',');
        size_t alen = e ? (size_t)(e - a) : strlen(a);
        if (alen == mlen && memcmp(a, m, mlen) == 0)
            return;
        a = e ? e + 2 : a + alen;
    }
    size_t used = strlen(allow);
    if (used + mlen + 3 > cap)
        return;
    snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", m);
}

/* Routes the request, checks its key, runs the handler and queues the answer. */
static enum MHD_Result dispatch(tfs_http_server *srv, struct MHD_Connection *conn,
                                http_conn *hc, const char *method, const char *url)
{
    tfs_http_response resp;
    tfs_http_request req;
    char allow[128] = "";
    bool challenge = false;
    int status = 500;
    enum MHD_Result ret;
    size_t len = strlen(url);
    const tfs_http_route *route = NULL;
    span caps[HTTP_MAX_PARAMS];
    size_t n_caps = 0;
    bool auth_held = false;
    char *actor = NULL;

    memset(&resp, 0, sizeof resp);
    memset(&req, 0, sizeof req);
    if (atomic_load(&srv->draining)) {
        tfs_http_problem(&resp, 503, "shutting-down", "shutting down",
                         "the daemon is shutting down; retry when it is back");
        goto out;
    }
    /* One trailing slash is tolerated everywhere: "/health/" is "/health". */
    if (len > 1 && url[len - 1] == '/')
        len--;

    for (size_t i = 0; i < srv->n_routes; i++) {
        span c[HTTP_MAX_PARAMS];
        size_t n = 0;
        if (!route_match(srv->routes[i].pattern, url, len, c, &n))
            continue;
        if (method_matches(srv->routes[i].method, method)) {
            route = &srv->routes[i];
            memcpy(caps, c, sizeof c);
            n_caps = n;
            break;
        }
        allow_add(allow, sizeof allow, srv->routes[i].method);
        if (strcmp(srv->routes[i].method, "GET") == 0)
            allow_add(allow, sizeof allow, "HEAD");
    }

    if (!route && allow[0]) {
        tfs_http_problem(&resp, 405, "method-not-allowed", "method not allowed",
                         "%s is not allowed on %s; use %s", method, url, allow);
        goto out;
    }
    if (!route) {
        allow[0] = '\0';
        tfs_http_problem(&resp, 404, "not-found", "not found",
                         "no route %s %s; see docs/openapi.yaml for the routes", method, url);
        goto out;
    }
    allow[0] = '\0';

    req.role = TFS_ROLE_NONE;
    const tfs_api_key *key = NULL;
    const char *authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_AUTHORIZATION);
    pthread_rwlock_rdlock(&srv->auth_lock);
    auth_held = true;
    switch (tfs_auth_check(srv->auth, authorization, route->min_role, &key)) {
    case TFS_AUTH_OK:
        break;
    case TFS_AUTH_NO_KEY:
        challenge = true;
        tfs_http_problem(&resp, 401, "unauthorized", "unauthorized",
                         "%s %s needs an API key; send it as the header "
                         "\"Authorization: Bearer <key>\"",
                         method, url);
        goto out;
    case TFS_AUTH_BAD_KEY:
        challenge = true;
        tfs_http_problem(&resp, 401, "unauthorized", "unauthorized",
                         "the API key sent is not one of the configured keys; send "
                         "a valid key as \"Authorization: Bearer <key>\"");
        goto out;
    case TFS_AUTH_FORBIDDEN:
        tfs_http_problem(&resp, 403, "forbidden", "forbidden",
                         "%s %s needs role \"%s\"; the key \"%s\" has role \"%s\"", method,
                         url, tfs_role_name(route->min_role), key->name,
                         tfs_role_name(key->role));
        goto out;
    }
    if (key) {
        if (!(actor = strdup(key->name))) {
            tfs_http_problem(&resp, 503, "unavailable", "service unavailable",
                             "the server is out of memory; retry later");
            goto out;
        }
        req.actor = actor;
        req.role = key->role;
    }
    pthread_rwlock_unlock(&srv->auth_lock);
    auth_held = false;

    if (hc->too_large) {
        tfs_http_problem(&resp, 413, "body-too-large", "request body too large",
                         "the request body is larger than the limit of %zu bytes; "
                         "send a smaller body",
                         srv->max_body);
        goto out;
    }
    if (hc->oom) {
        tfs_http_problem(&resp, 503, "unavailable", "service unavailable",
                         "the server is out of memory for request bodies; retry later");
        goto out;
    }

    /* Captures are copied out NUL-terminated; together they are shorter than the path. */
    if (n_caps > 0) {
        hc->scratch = malloc(len + HTTP_MAX_PARAMS + 1);
        if (!hc->scratch) {
            tfs_http_problem(&resp, 503, "unavailable", "service unavailable",
                             "the server is out of memory; retry later");
            goto out;
        }
        char *w = hc->scratch;
        for (size_t i = 0; i < n_caps; i++) {
            memcpy(w, url + caps[i].off, caps[i].len);
            w[caps[i].len] = '\0';
            req.params[i] = w;
            w += caps[i].len + 1;
        }
    }
    req.n_params = n_caps;
    req.method = method;
    req.path = url;
    req.body = hc->body ? hc->body : "";
    req.body_len = hc->body ? hc->body_len : 0;
    req.conn = conn;
    if (srv->invoke)
        srv->invoke(route, &req, &resp, srv->ctx);
    else
        route->handler(&req, &resp, srv->ctx);

out:
    if (auth_held)
        pthread_rwlock_unlock(&srv->auth_lock);
    free(actor);
    ret = send_response(conn, method, url, &resp, allow[0] ? allow : NULL, challenge,
                        &status);
    log_request(method, url, status, hc->start_us);
    return ret;
}

/* ---- the three phases ---------------------------------------------------------------- */

/* Appends an upload chunk under the cap; past it the body is dropped and only counted. */
static enum MHD_Result body_append(tfs_http_server *srv, http_conn *hc, const char *data,
                                   size_t size)
{
    if (hc->too_large || hc->oom) {
        hc->discarded += size;
        if (hc->discarded > HTTP_DISCARD_MAX) {
            tfs_log_warn(HTTP_COMPONENT, "dropping a connection that sent more than %zu "
                                         "bytes over the body limit",
                         (size_t)HTTP_DISCARD_MAX);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (size > srv->max_body - hc->body_len) {
        hc->too_large = true;
        hc->discarded = hc->body_len + size - srv->max_body;
        free(hc->body);
        hc->body = NULL;
        hc->body_len = hc->body_cap = 0;
        return MHD_YES;
    }
    if (hc->body_len + size + 1 > hc->body_cap) {
        size_t cap = hc->body_cap ? hc->body_cap : 4096;
        while (cap < hc->body_len + size + 1)
            cap *= 2;
        if (cap > srv->max_body + 1)
            cap = srv->max_body + 1;
        char *nb = realloc(hc->body, cap);
        if (!nb) {
            hc->oom = true;
            free(hc->body);
            hc->body = NULL;
            hc->body_len = hc->body_cap = 0;
            return MHD_YES;
        }
        hc->body = nb;
        hc->body_cap = cap;
    }
    memcpy(hc->body + hc->body_len, data, size);
    hc->body_len += size;
    hc->body[hc->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    tfs_http_server *srv = cls;
    http_conn *hc = *con_cls;
    (void)version;

    if (!hc) {
        /* First call: only the headers are in. */
        hc = calloc(1, sizeof *hc);
        if (!hc)
            return MHD_NO;
        hc->start_us = now_us();
        *con_cls = hc;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && errno == 0 && n > srv->max_body) {
                /* Answered before the body is read: libmicrohttpd then skips it. */
                hc->too_large = true;
                hc->answered = true;
                return dispatch(srv, conn, hc, method, url);
            }
            if (end != cl && errno == 0 && n > 0) {
                /* A hint only: a client announcing a large body and sending nothing
                 * must not pin max_body bytes. */
                size_t cap = n + 1 < 65536 ? (size_t)n + 1 : 65536;
                hc->body = malloc(cap);
                if (hc->body) {
                    hc->body_cap = cap;
                    hc->body[0] = '\0';
                }
            }
        }
        return MHD_YES;
    }
    if (hc->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        enum MHD_Result r = body_append(srv, hc, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r;
    }
    /* Last call: the whole body is in. */
    hc->answered = true;
    return dispatch(srv, conn, hc, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_conn *hc = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (!hc)
        return;
    free(hc->body);
    free(hc->scratch);
    free(hc);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    tfs_logv(TFS_LOG_WARN, HTTP_COMPONENT, fmt, ap);
}

/* ---- start and stop ------------------------------------------------------------------ */

static int read_file(const char *what, const char *path, char **out, size_t *len,
                     tfs_error *err)
{
    int rc = 0;
    char *data = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = tfs_error_set(err, TFS_EIO, "could not read TLS %s \"%s\": %s", what, path,
                           strerror(errno));
        tfs_error_hint(err, "check tls_cert_file and tls_key_file in the http config");
        goto out;
    }
    data = malloc(HTTP_TLS_FILE_MAX + 1);
    if (!data) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not read TLS %s \"%s\": out of memory",
                           what, path);
        goto out;
    }
    n = fread(data, 1, HTTP_TLS_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = tfs_error_set(err, TFS_EIO, "could not read TLS %s \"%s\": read error", what,
                           path);
        goto out;
    }
    if (n == 0 || n > HTTP_TLS_FILE_MAX) {
        rc = tfs_error_set(err, TFS_EINVAL, "could not read TLS %s \"%s\": %s", what, path,
                           n == 0 ? "the file is empty" : "the file is larger than 1 MiB");
        tfs_error_hint(err, "give the PEM file of the %s", what);
        goto out;
    }
    data[n] = '\0';
    *out = data;
    *len = n;
    data = NULL;
out:
    if (f)
        fclose(f);
    free(data);
    return rc;
}

static int check_routes(const tfs_http_route *routes, size_t n_routes, tfs_error *err)
{
    for (size_t i = 0; i < n_routes; i++) {
        const tfs_http_route *r = &routes[i];
        size_t caps = 0;
        if (!r->method || !r->pattern || r->pattern[0] != '/' || !r->handler)
            return tfs_error_set(err, TFS_EINVAL,
                                 "could not start http server: route %zu is incomplete", i);
        for (const char *p = r->pattern; *p; p++) {
            if (*p != '{')
                continue;
            const char *close = strchr(p, '}');
            if (!close || close == p + 1 || ++caps > HTTP_MAX_PARAMS)
                return tfs_error_set(err, TFS_EINVAL,
                                     "could not start http server: bad route pattern \"%s\"",
                                     r->pattern);
            p = close;
        }
    }
    return 0;
}

static void server_free(tfs_http_server *srv)
{
    if (!srv)
        return;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    tfs_auth_free(srv->auth);
    pthread_rwlock_destroy(&srv->auth_lock);
    free(srv->tls_cert);
    if (srv->tls_key) {
        explicit_bzero(srv->tls_key, srv->tls_key_len);
        free(srv->tls_key);
    }
    srv->magic = 0;
    free(srv);
}

int tfs_http_start(const tfs_http_config *cfg, const tfs_http_route *routes, size_t n_routes,
                   void *ctx, tfs_http_server **out, tfs_error *err)
{
    int rc = 0;
    tfs_http_server *srv = NULL;
    struct sockaddr_storage ss;
    const char *address;
    char addr_copy[64];
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    if (out)
        *out = NULL;
    if (!cfg || !out || (!routes && n_routes > 0))
        return tfs_error_set(err, TFS_EINVAL,
                             "could not start http server: no config, routes or result given");
    if ((rc = check_routes(routes, n_routes, err)) < 0)
        return rc;

    srv = calloc(1, sizeof *srv);
    if (!srv)
        return tfs_error_set(err, TFS_ENOMEM, "could not start http server: out of memory");
    srv->magic = HTTP_MAGIC;
    pthread_rwlock_init(&srv->auth_lock, NULL);
    atomic_init(&srv->draining, false);
    srv->routes = routes;
    srv->n_routes = n_routes;
    srv->ctx = ctx;
    srv->invoke = cfg->invoke;
    srv->max_body = cfg->max_body ? cfg->max_body : TFS_HTTP_MAX_BODY_DEFAULT;

    unsigned threads = cfg->threads ? cfg->threads : TFS_HTTP_THREADS_DEFAULT;
    unsigned max_conn =
        cfg->max_connections ? cfg->max_connections : TFS_HTTP_MAX_CONNECTIONS_DEFAULT;
    unsigned max_per_ip = cfg->max_connections_per_ip ? cfg->max_connections_per_ip
                                                    : TFS_HTTP_MAX_CONNECTIONS_PER_IP_DEFAULT;
    unsigned timeout = cfg->connection_timeout_s ? cfg->connection_timeout_s
                                                 : TFS_HTTP_CONNECTION_TIMEOUT_S_DEFAULT;
    size_t conn_mem = cfg->connection_memory ? cfg->connection_memory
                                              : TFS_HTTP_CONNECTION_MEMORY_DEFAULT;

    if ((rc = tfs_auth_new(cfg->keys, cfg->n_keys, &srv->auth, err)) < 0) {
        tfs_error_prefix(err, "could not start http server");
        goto out;
    }

    /* The listen address: numeric IPv4 or IPv6 ("::1" or "[::1]"). */
    address = cfg->address && cfg->address[0] ? cfg->address : "127.0.0.1";
    if (strcmp(address, "localhost") == 0)
        address = "127.0.0.1";
    snprintf(addr_copy, sizeof addr_copy, "%s", address);
    if (addr_copy[0] == '[') {
        size_t l = strlen(addr_copy);
        if (l > 2 && addr_copy[l - 1] == ']') {
            memmove(addr_copy, addr_copy + 1, l - 2);
            addr_copy[l - 2] = '\0';
        }
    }
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (strlen(address) < sizeof addr_copy && inet_pton(AF_INET, addr_copy, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(cfg->port);
    } else if (strlen(address) < sizeof addr_copy &&
               inet_pton(AF_INET6, addr_copy, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        rc = tfs_error_set(err, TFS_EINVAL,
                           "could not start http server: invalid listen address \"%s\"",
                           address);
        tfs_error_hint(err, "give a numeric IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 "
                            "or ::1");
        goto out;
    }

    /* TLS when both files are configured; one without the other is a mistake. */
    struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL},
                                         {MHD_OPTION_END, 0, NULL},
                                         {MHD_OPTION_END, 0, NULL}};
    bool want_cert = cfg->tls_cert_file && cfg->tls_cert_file[0];
    bool want_key = cfg->tls_key_file && cfg->tls_key_file[0];
    if (want_cert != want_key) {
        rc = tfs_error_set(err, TFS_EINVAL, "could not start http server: %s is set but %s "
                                            "is not",
                           want_cert ? "tls_cert_file" : "tls_key_file",
                           want_cert ? "tls_key_file" : "tls_cert_file");
        tfs_error_hint(err, "set both for HTTPS, or neither for plain HTTP");
        goto out;
    }
    if (want_cert) {
        size_t cert_len = 0;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = tfs_error_set(err, TFS_EINVAL, "could not start http server: this "
                                                "libmicrohttpd was built without TLS");
            tfs_error_hint(err, "install a libmicrohttpd with GnuTLS, or drop tls_cert_file "
                                "and tls_key_file");
            goto out;
        }
        if ((rc = read_file("certificate", cfg->tls_cert_file, &srv->tls_cert, &cert_len,
                            err)) < 0 ||
            (rc = read_file("key", cfg->tls_key_file, &srv->tls_key, &srv->tls_key_len,
                            err)) < 0) {
            tfs_error_prefix(err, "could not start http server");
            goto out;
        }
        tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
        tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
        flags |= MHD_USE_TLS;
    }

    errno = 0;
    srv->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, (void *)NULL, /* first, to catch everything */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_mem,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)srv,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (!srv->daemon) {
        int e = errno;
        rc = tfs_error_set(err, TFS_EIO, "could not start http server on %s port %u%s%s",
                           address, (unsigned)cfg->port, e ? ": " : "", e ? strerror(e) : "");
        tfs_error_detail(err, "libmicrohttpd refused to start; its reason is in the log");
        tfs_error_hint(err, "check that the port is free and the address is one of this "
                            "host's, and that the TLS files are a matching PEM pair");
        goto out;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    tfs_log_info(HTTP_COMPONENT, "listening on %s://%s%s%s:%u (%u threads)",
                 want_cert ? "https" : "http", (flags & MHD_USE_IPv6) ? "[" : "", addr_copy,
                 (flags & MHD_USE_IPv6) ? "]" : "", (unsigned)srv->port, threads);
    *out = srv;
    srv = NULL;
out:
    server_free(srv);
    return rc;
}

uint16_t tfs_http_port(const tfs_http_server *srv)
{
    if (!srv || srv->magic != HTTP_MAGIC)
        return 0;
    return srv->port;
}

void tfs_http_stop(tfs_http_server *srv)
{
    if (!srv)
        return;
    if (srv->magic != HTTP_MAGIC) {
        tfs_log_error(HTTP_COMPONENT, "tfs_http_stop called on something that is not a "
                                      "server");
        return;
    }
    server_free(srv);
}

int tfs_http_set_keys(tfs_http_server *srv, const tfs_api_key *keys, size_t n, tfs_error *err)
{
    tfs_auth *a = NULL;
    int rc = tfs_auth_new(keys, n, &a, err);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&srv->auth_lock);
    tfs_auth *old = srv->auth;
    srv->auth = a;
    pthread_rwlock_unlock(&srv->auth_lock);
    tfs_auth_free(old);
    return 0;
}

void tfs_http_drain(tfs_http_server *srv)
{
    if (srv)
        atomic_store(&srv->draining, true);
}
