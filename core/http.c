/* core/http.c — the HTTP server under the API: libmicrohttpd with an epoll thread pool and
 * every limit set on the daemon, request bodies buffered under a cap in the three phases of
 * libmicrohttpd's largepost example (set up on the first call, buffer on upload calls,
 * answer on the last, free in the completion callback), routing by method and path pattern,
 * and RFC 9457 problem+json errors; who may call a route is auth.c's answer, turned into
 * 401 and 403 here. Every connection is tracked so a reaper thread can close those whose
 * request headers are late (libmicrohttpd has only an idle timeout, which a byte a second
 * resets), and each request gets an access log line. It knows nothing of syncs: api.c
 * registers its handlers as routes.
 */
#include "http.h"
#include "http_message.h"
#include "hex.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "tfs_limits.h"
#include "log.h"
#include "metrics.h"

#define HTTP_MAGIC 0x54465348u /* "TFSH" */
#define HTTP_MAX_PARAMS 4
/* A certificate or key file larger than this is not PEM we want to hold in memory. */
#define HTTP_TLS_FILE_MAX (1024 * 1024)
/* Bytes of an over-long chunked body read and thrown away so the client still gets its
 * 413; past this the connection is dropped instead. */
#define HTTP_DISCARD_MAX (8u * 1024 * 1024)

/* A connection as the header-deadline reaper sees it: registered when libmicrohttpd
 * accepts it (its socket context), unlinked when it notifies the close, which it does before
 * closing the socket, so a descriptor in the list is always still this connection's. */
typedef struct http_track {
    struct http_track *prev, *next;
    int fd;
    uint64_t deadline_us; /* the request headers must be in by then; 0: they are */
    unsigned requests;    /* answered on this connection so far */
    bool reaped;          /* shut down by the reaper */
    bool reap_logged;     /* ... and its access line written */
    bool routed;          /* the current request reached on_request */
    char client[64];      /* the peer's address, for the log */
    bool line_seen;       /* the current request's first line was read */
    char path[160];       /* its path, for the log */
} http_track;

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
    bool access_all;
    /* The connection list and the reaper (see http_track). */
    pthread_mutex_t track_lock;
    pthread_cond_t track_cond;
    http_track *tracked;
    unsigned n_tracked;
    uint64_t header_timeout_us;
    uint64_t idle_timeout_us;
    bool reaper_started, reaper_stop;
    pthread_t reaper;
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
    char client[64]; /* the peer's address, for the access log */
} http_conn;

/* ---- small helpers ------------------------------------------------------------------- */

/* The client whose request line this thread read last, for libmicrohttpd's own warnings
 * (they carry no connection); cleared once the request reaches routing or closes. */
static _Thread_local char mhd_client[64];
static _Thread_local uint64_t mhd_client_us;
/* A warning within this long of the request line on the same thread is about that request
 * (libmicrohttpd parses a request's line and headers in one pass when they arrived
 * together); later, another client's may be meant, so no address is given. */
#define HTTP_MHD_CLIENT_WINDOW_US 2000u

static void client_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof a);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, a, sizeof a);
    snprintf(out, cap, "%s", a);
}

static http_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* ---- connections and the header deadline --------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    tfs_http_server *srv = cls;
    tfs_metrics_connection(code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        http_track *t = calloc(1, sizeof *t);
        if (!t)
            return; /* untracked: only libmicrohttpd's idle timeout applies to it */
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        t->fd = fd ? fd->connect_fd : -1;
        client_text(ad ? ad->client_addr : NULL, t->client, sizeof t->client);
        pthread_mutex_lock(&srv->track_lock);
        t->deadline_us = tfs_http_now_us() + srv->header_timeout_us;
        t->next = srv->tracked;
        if (srv->tracked)
            srv->tracked->prev = t;
        srv->tracked = t;
        srv->n_tracked++;
        pthread_mutex_unlock(&srv->track_lock);
        *socket_context = t;
        return;
    }
    http_track *t = *socket_context;
    mhd_client[0] = '\0';
    if (!t)
        return;
    pthread_mutex_lock(&srv->track_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        srv->tracked = t->next;
    if (t->next)
        t->next->prev = t->prev;
    srv->n_tracked--;
    bool reaped = t->reaped;
    pthread_mutex_unlock(&srv->track_lock);
    /* A request whose line was read is logged by on_completed; one cut before that only
     * here. */
    if (reaped && !t->reap_logged)
        tfs_log_info(HTTP_ACCESS_COMPONENT, "%s - - - closed: no request line by the header "
                                            "deadline",
                     t->client);
    free(t);
    *socket_context = NULL;
}

/* Called by libmicrohttpd once a request line is in: a kept-alive connection's next
 * request gets its own header deadline from here (the idle timeout covers the wait). */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    tfs_http_server *srv = cls;
    http_track *t = track_of(conn);
    if (t) {
        pthread_mutex_lock(&srv->track_lock);
        if (t->requests > 0)
            t->deadline_us = tfs_http_now_us() + srv->header_timeout_us;
        pthread_mutex_unlock(&srv->track_lock);
        t->routed = false;
        t->line_seen = true;
        tfs_http_log_safe(t->path, sizeof t->path, uri);
        /* The query stays out of the log: only the path up to '?'. */
        char *q = strchr(t->path, '?');
        if (q)
            *q = '\0';
        snprintf(mhd_client, sizeof mhd_client, "%s", t->client);
        mhd_client_us = tfs_http_now_us();
    }
    return NULL;
}

/* Shuts down the sockets of connections whose headers are late; libmicrohttpd then sees
 * the socket closed and cleans the connection up on its own thread. shutdown() (not close)
 * leaves the descriptor to libmicrohttpd, and track_lock keeps it from being closed and
 * reused while we hold it (the close notification takes the lock first). */
static void *reaper_main(void *arg)
{
    tfs_http_server *srv = arg;
    uint64_t tick_us = srv->header_timeout_us / 10;
    if (tick_us < 20000)
        tick_us = 20000;
    if (tick_us > 250000)
        tick_us = 250000;
    pthread_mutex_lock(&srv->track_lock);
    while (!srv->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + tick_us * 1000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&srv->track_cond, &srv->track_lock, &ts);
        uint64_t now = tfs_http_now_us();
        for (http_track *t = srv->tracked; t; t = t->next) {
            if (t->reaped || t->deadline_us == 0 || t->deadline_us > now || t->fd < 0)
                continue;
            t->reaped = true;
            shutdown(t->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&srv->track_lock);
    return NULL;
}

unsigned tfs_http_open_connections(tfs_http_server *srv)
{
    if (!srv || srv->magic != HTTP_MAGIC)
        return 0;
    pthread_mutex_lock(&srv->track_lock);
    unsigned n = srv->n_tracked;
    pthread_mutex_unlock(&srv->track_lock);
    return n;
}

void tfs_http_key_hash(const char *key, unsigned char out[32])
{
    tfs_auth_key_hash(key, out);
}

/* libmicrohttpd's own unescaping with one change: "%00" stays the three characters it is.
 * Decoded, a NUL would cut the path (and a query value) short where C reads it, so
 * "/ui/index.html%00.js" would be answered as "/ui/index.html"; kept, it matches nothing. */
static size_t unescape_keeping_nul(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = tfs_hex_digit(r[1])) >= 0 && (lo = tfs_hex_digit(r[2])) >= 0 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
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
/* The route of method and the first len bytes of url, its captures in caps; NULL when
 * none matches, with the methods the path does allow in allow ("" when the path is
 * unknown). */
static const tfs_http_route *find_route(const tfs_http_server *srv, const char *method,
                                        const char *url, size_t len, span caps[],
                                        size_t *n_caps, char *allow, size_t allow_cap)
{
    for (size_t i = 0; i < srv->n_routes; i++) {
        span c[HTTP_MAX_PARAMS];
        size_t n = 0;
        if (!route_match(srv->routes[i].pattern, url, len, c, &n))
            continue;
        if (method_matches(srv->routes[i].method, method)) {
            memcpy(caps, c, sizeof c);
            *n_caps = n;
            allow[0] = '\0';
            return &srv->routes[i];
        }
        allow_add(allow, allow_cap, srv->routes[i].method);
        if (strcmp(srv->routes[i].method, "GET") == 0)
            allow_add(allow, allow_cap, "HEAD");
    }
    return NULL;
}

/* Who calls: the key's name (a copy, *actor, owned by the caller) and role go into req.
 * Returns 0, or -1 with the 401/403/503 answer in resp (*challenge for a 401). The key
 * table is read-held only here, so a handler may swap the keys. */
static int authenticate(tfs_http_server *srv, struct MHD_Connection *conn,
                        const tfs_http_route *route, const char *method, const char *url,
                        tfs_http_request *req, char **actor, tfs_http_response *resp,
                        bool *challenge)
{
    const tfs_api_key *key = NULL;
    const char *authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_AUTHORIZATION);
    int rc = -1;
    req->role = TFS_ROLE_NONE;
    pthread_rwlock_rdlock(&srv->auth_lock);
    if (route->min_role <= TFS_ROLE_NONE) {
        /* An open route answers everyone; a valid key sent anyway names the caller (and
         * may see more, as /health does); a wrong one is ignored, not refused. */
        if (authorization &&
            tfs_auth_check(srv->auth, authorization, TFS_ROLE_READ, &key) != TFS_AUTH_OK)
            key = NULL;
        rc = 0;
        goto named;
    }
    switch (tfs_auth_check(srv->auth, authorization, route->min_role, &key)) {
    case TFS_AUTH_OK:
        rc = 0;
        break;
    case TFS_AUTH_NO_KEY:
        *challenge = true;
        tfs_http_problem(resp, 401, "unauthorized", "unauthorized",
                         "%s %s needs an API key; send it as the header "
                         "\"Authorization: Bearer <key>\"",
                         method, url);
        break;
    case TFS_AUTH_BAD_KEY:
        *challenge = true;
        tfs_http_problem(resp, 401, "unauthorized", "unauthorized",
                         "the API key sent is not one of the configured keys; send "
                         "a valid key as \"Authorization: Bearer <key>\"");
        break;
    case TFS_AUTH_FORBIDDEN:
        tfs_http_problem(resp, 403, "forbidden", "forbidden",
                         "%s %s needs role \"%s\"; the key \"%s\" has role \"%s\"", method,
                         url, tfs_role_name(route->min_role), key->name,
                         tfs_role_name(key->role));
        break;
    }
named:
    if (rc == 0 && key) {
        if ((*actor = strdup(key->name))) {
            req->actor = *actor;
            req->role = key->role;
        } else {
            rc = -1;
            tfs_http_problem(resp, 503, "unavailable", "service unavailable",
                             "the server is out of memory; retry later");
        }
    }
    pthread_rwlock_unlock(&srv->auth_lock);
    return rc;
}

/* Copies the captured path segments out NUL-terminated into req->params (together they
 * are shorter than the path); -1 with a 503 in resp when out of memory. */
static int take_params(http_conn *hc, const char *url, size_t len, const span caps[],
                       size_t n_caps, tfs_http_request *req, tfs_http_response *resp)
{
    req->n_params = n_caps;
    if (n_caps == 0)
        return 0;
    hc->scratch = malloc(len + HTTP_MAX_PARAMS + 1);
    if (!hc->scratch) {
        tfs_http_problem(resp, 503, "unavailable", "service unavailable",
                         "the server is out of memory; retry later");
        return -1;
    }
    char *w = hc->scratch;
    for (size_t i = 0; i < n_caps; i++) {
        memcpy(w, url + caps[i].off, caps[i].len);
        w[caps[i].len] = '\0';
        req->params[i] = w;
        w += caps[i].len + 1;
    }
    return 0;
}

typedef struct query_check {
    const char *bad_key; /* the first argument that is not UTF-8 */
    bool key_itself;
} query_check;

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    query_check *qc = cls;
    (void)kind;
    if (key && !tfs_http_utf8_valid(key, strlen(key))) {
        qc->bad_key = key;
        qc->key_itself = true;
        return MHD_NO;
    }
    if (value && !tfs_http_utf8_valid(value, strlen(value))) {
        qc->bad_key = key;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Every query argument, name and value, is UTF-8 before any handler sees it (a handler
 * hands them to SQL, where PostgreSQL would refuse the bytes as a server error); -1 with
 * 400 invalid-query naming the argument in resp. */
static int check_query(struct MHD_Connection *conn, tfs_http_response *resp)
{
    query_check qc = {0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &qc);
    if (!qc.bad_key)
        return 0;
    if (qc.key_itself)
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "a query parameter's name is not valid UTF-8; percent-encode the "
                         "UTF-8 bytes of the name");
    else
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "query parameter \"%s\" is not valid UTF-8; percent-encode the "
                         "UTF-8 bytes of its value (e.g. %%C3%%A9 for \u00e9)",
                         qc.bad_key);
    return -1;
}

static enum MHD_Result dispatch(tfs_http_server *srv, struct MHD_Connection *conn,
                                http_conn *hc, const char *method, const char *url)
{
    tfs_http_response resp;
    tfs_http_request req;
    char allow[128] = "";
    bool challenge = false;
    int status = 500;
    size_t len = strlen(url);
    span caps[HTTP_MAX_PARAMS];
    size_t n_caps = 0;
    char *actor = NULL;
    char key_name[64] = "";

    memset(&resp, 0, sizeof resp);
    memset(&req, 0, sizeof req);
    /* One trailing slash is tolerated everywhere: "/health/" is "/health". */
    if (len > 1 && url[len - 1] == '/')
        len--;
    bool draining = atomic_load(&srv->draining);
    const tfs_http_route *route =
        draining ? NULL : find_route(srv, method, url, len, caps, &n_caps, allow, sizeof allow);
    if (draining) {
        tfs_http_problem(&resp, 503, "shutting-down", "shutting down",
                         "the daemon is shutting down; retry when it is back");
    } else if (!route && allow[0]) {
        tfs_http_problem(&resp, 405, "method-not-allowed", "method not allowed",
                         "%s is not allowed on %s; use %s", method, url, allow);
    } else if (!route) {
        tfs_http_problem(&resp, 404, "not-found", "not found",
                         "no route %s %s; see docs/openapi.yaml for the routes", method, url);
    } else if (authenticate(srv, conn, route, method, url, &req, &actor, &resp,
                            &challenge) == 0) {
        if (actor)
            snprintf(key_name, sizeof key_name, "%s", actor);
        if (hc->too_large) {
            tfs_http_problem(&resp, 413, "body-too-large", "request body too large",
                             "the request body is larger than the limit of %zu bytes; "
                             "send a smaller body",
                             srv->max_body);
        } else if (hc->oom) {
            tfs_http_problem(&resp, 503, "unavailable", "service unavailable",
                             "the server is out of memory for request bodies; retry later");
        } else if (check_query(conn, &resp) == 0 &&
                   take_params(hc, url, len, caps, n_caps, &req, &resp) == 0) {
            req.method = method;
            req.path = url;
            req.body = hc->body ? hc->body : "";
            req.body_len = hc->body ? hc->body_len : 0;
            req.conn = conn;
            if (srv->invoke)
                srv->invoke(route, &req, &resp, srv->ctx);
            else
                route->handler(&req, &resp, srv->ctx);
        }
    }
    free(actor);
    /* A handler that refuses a caller itself (GET /metrics when it is not public) asks
     * for a key the same way. */
    challenge = challenge || resp.status == 401;
    enum MHD_Result ret = tfs_http_send(conn, method, url, &resp,
                                        !route && allow[0] ? allow : NULL, challenge, &status);
    tfs_http_log_request(hc->client, method, url, status, hc->start_us,
                         key_name[0] ? key_name : NULL, srv->access_all);
    /* By the route's template, never the path: a path carries ids and whatever a client
     * sends. */
    tfs_metrics_http_request(route ? route->pattern : NULL, method, status,
                             (double)(tfs_http_now_us() - hc->start_us) / 1e6);
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
        hc->start_us = tfs_http_now_us();
        *con_cls = hc;
        /* The headers are in: the deadline is met; the body is under the idle timeout. */
        http_track *t = track_of(conn);
        if (t) {
            pthread_mutex_lock(&srv->track_lock);
            t->deadline_us = 0;
            pthread_mutex_unlock(&srv->track_lock);
            t->routed = true;
            snprintf(hc->client, sizeof hc->client, "%s", t->client);
        }
        mhd_client[0] = '\0';
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
    tfs_http_server *srv = cls;
    http_conn *hc = *con_cls;
    (void)toe;
    http_track *t = track_of(conn);
    if (t) {
        /* A kept-alive connection waits idle (libmicrohttpd's timeout) and then has the
         * header deadline for its next request line: both bound it from here. */
        pthread_mutex_lock(&srv->track_lock);
        bool reaped = t->reaped;
        t->requests++;
        t->deadline_us = tfs_http_now_us() + srv->idle_timeout_us + srv->header_timeout_us;
        pthread_mutex_unlock(&srv->track_lock);
        if (!hc && t->line_seen) {
            /* The request never reached routing: libmicrohttpd answered it itself (a
             * protocol error: its warning is logged before), or it was cut at the header
             * deadline, or the client left. Said here with the address, which
             * libmicrohttpd's own warning cannot always carry. */
            const union MHD_ConnectionInfo *st =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
            unsigned code = st ? st->http_status : 0;
            char status[8] = "-";
            if (code >= 100 && code <= 599)
                snprintf(status, sizeof status, "%u", code);
            t->reap_logged = reaped;
            tfs_log_info(HTTP_ACCESS_COMPONENT, "%s ? %s %s - %s", t->client, t->path, status,
                         reaped ? "closed: headers not complete by the header deadline"
                         : code ? "answered by the HTTP library before routing (a protocol "
                                  "error; see its warning)"
                                : "closed before the request was complete");
        }
        t->line_seen = false;
        t->routed = false;
    }
    if (!hc)
        return;
    free(hc->body);
    free(hc->scratch);
    free(hc);
    *con_cls = NULL;
}

/* libmicrohttpd's own warnings, with the HTML of its canned error pages taken out (a log
 * line is text) and the client it was reading from when known. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char raw[1024], text[1024];
    (void)cls;
    vsnprintf(raw, sizeof raw, fmt, ap);
    size_t o = 0;
    bool in_tag = false;
    for (size_t i = 0; raw[i] && o + 1 < sizeof text; i++) {
        char ch = raw[i];
        if (ch == '<')
            in_tag = true;
        else if (ch == '>' && in_tag)
            in_tag = false;
        else if (!in_tag && ch == '&') {
            /* The few entities of its pages, as text. */
            static const struct {
                const char *ent;
                char ch;
            } ents[] = {{"&quot;", '"'}, {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}};
            size_t k = 0;
            while (k < 4 && strncmp(raw + i, ents[k].ent, strlen(ents[k].ent)) != 0)
                k++;
            text[o++] = k < 4 ? ents[k].ch : '&';
            if (k < 4)
                i += strlen(ents[k].ent) - 1;
        } else if (!in_tag && ch != '\n')
            text[o++] = (ch == '\r' || ch == '\t') ? ' ' : ch;
    }
    text[o] = '\0';
    if (mhd_client[0] && tfs_http_now_us() - mhd_client_us <= HTTP_MHD_CLIENT_WINDOW_US)
        tfs_log_warn(HTTP_COMPONENT, "%s (reading a request from %s)", text, mhd_client);
    else
        tfs_log_warn(HTTP_COMPONENT, "%s", text);
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
        MHD_stop_daemon(srv->daemon); /* notifies every close: the list is empty after */
    if (srv->reaper_started) {
        pthread_mutex_lock(&srv->track_lock);
        srv->reaper_stop = true;
        pthread_cond_signal(&srv->track_cond);
        pthread_mutex_unlock(&srv->track_lock);
        pthread_join(srv->reaper, NULL);
    }
    pthread_cond_destroy(&srv->track_cond);
    pthread_mutex_destroy(&srv->track_lock);
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

/* The listen address: numeric IPv4 or IPv6 ("::1" or "[::1]"; "localhost" is 127.0.0.1)
 * into ss, its bare text into addr (for the log), MHD_USE_IPv6 into *flags. */
static int listen_address(const char *address, uint16_t port, struct sockaddr_storage *ss,
                          char *addr, size_t addr_cap, unsigned *flags, tfs_error *err)
{
    if (strcmp(address, "localhost") == 0)
        address = "127.0.0.1";
    snprintf(addr, addr_cap, "%s", address);
    if (addr[0] == '[') {
        size_t l = strlen(addr);
        if (l > 2 && addr[l - 1] == ']') {
            memmove(addr, addr + 1, l - 2);
            addr[l - 2] = '\0';
        }
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    bool fits = strlen(address) < addr_cap;
    if (fits && inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (fits && inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    int rc = tfs_error_set(err, TFS_EINVAL,
                           "could not start http server: invalid listen address \"%s\"",
                           address);
    tfs_error_hint(err, "give a numeric IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 "
                        "or ::1");
    return rc;
}

/* TLS when both files are configured (one without the other is a mistake): the PEM is
 * read into srv, the daemon options into opts, MHD_USE_TLS into *flags. */
static int load_tls(const tfs_http_config *cfg, tfs_http_server *srv,
                    struct MHD_OptionItem opts[3], unsigned *flags, tfs_error *err)
{
    int rc;
    bool want_cert = cfg->tls_cert_file && cfg->tls_cert_file[0];
    bool want_key = cfg->tls_key_file && cfg->tls_key_file[0];
    if (want_cert != want_key) {
        rc = tfs_error_set(err, TFS_EINVAL, "could not start http server: %s is set but %s "
                                            "is not",
                           want_cert ? "tls_cert_file" : "tls_key_file",
                           want_cert ? "tls_key_file" : "tls_cert_file");
        tfs_error_hint(err, "set both for HTTPS, or neither for plain HTTP");
        return rc;
    }
    if (!want_cert)
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        rc = tfs_error_set(err, TFS_EINVAL, "could not start http server: this "
                                            "libmicrohttpd was built without TLS");
        tfs_error_hint(err, "install a libmicrohttpd with GnuTLS, or drop tls_cert_file "
                            "and tls_key_file");
        return rc;
    }
    size_t cert_len = 0;
    if ((rc = read_file("certificate", cfg->tls_cert_file, &srv->tls_cert, &cert_len, err)) <
            0 ||
        (rc = read_file("key", cfg->tls_key_file, &srv->tls_key, &srv->tls_key_len, err)) < 0) {
        tfs_error_prefix(err, "could not start http server");
        return rc;
    }
    opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
    opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
    *flags |= MHD_USE_TLS;
    return 0;
}

/* Raises the open-file limit so max_conn connections fit beside the daemon's other
 * descriptors (as far as the hard limit allows); returns how many connections fit. */
static unsigned raise_nofile(unsigned max_conn)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_conn + TFS_HTTP_FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return max_conn;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = old;
        else
            tfs_log_info(HTTP_COMPONENT, "open-file limit raised from %llu to %llu",
                         (unsigned long long)old, (unsigned long long)rl.rlim_cur);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > 2 * TFS_HTTP_FD_RESERVE
                           ? (unsigned)(rl.rlim_cur - TFS_HTTP_FD_RESERVE)
                           : (unsigned)(rl.rlim_cur / 2);
        tfs_log_warn(HTTP_COMPONENT,
                     "listen.max_connections lowered from %u to %u: the open-file limit is "
                     "%llu (hard limit %llu); raise it (ulimit -n, LimitNOFILE= in systemd) "
                     "to serve more",
                     max_conn, fit, (unsigned long long)rl.rlim_cur,
                     (unsigned long long)rl.rlim_max);
        return fit;
    }
    return max_conn;
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
    struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL},
                                         {MHD_OPTION_END, 0, NULL},
                                         {MHD_OPTION_END, 0, NULL}};

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
    srv->access_all = cfg->access_log_all;
    srv->header_timeout_us = 1000u * (uint64_t)(cfg->header_timeout_ms
                                                    ? cfg->header_timeout_ms
                                                    : TFS_HTTP_HEADER_TIMEOUT_MS_DEFAULT);
    pthread_mutex_init(&srv->track_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->track_cond, &ca);
    pthread_condattr_destroy(&ca);

    unsigned threads = cfg->threads ? cfg->threads : TFS_HTTP_THREADS_DEFAULT;
    unsigned max_conn =
        cfg->max_connections ? cfg->max_connections : TFS_HTTP_MAX_CONNECTIONS_DEFAULT;
    unsigned max_per_ip = cfg->max_connections_per_ip ? cfg->max_connections_per_ip
                                                    : TFS_HTTP_MAX_CONNECTIONS_PER_IP_DEFAULT;
    unsigned timeout = cfg->connection_timeout_s ? cfg->connection_timeout_s
                                                 : TFS_HTTP_CONNECTION_TIMEOUT_S_DEFAULT;
    size_t conn_mem = cfg->connection_memory ? cfg->connection_memory
                                              : TFS_HTTP_CONNECTION_MEMORY_DEFAULT;
    if (max_per_ip == UINT_MAX)
        max_per_ip = 0; /* libmicrohttpd's "no limit" */
    srv->idle_timeout_us = 1000000u * (uint64_t)timeout;
    max_conn = raise_nofile(max_conn);
    if (max_per_ip > max_conn)
        max_per_ip = max_conn;

    if ((rc = tfs_auth_new(cfg->keys, cfg->n_keys, &srv->auth, err)) < 0) {
        tfs_error_prefix(err, "could not start http server");
        goto out;
    }

    address = cfg->address && cfg->address[0] ? cfg->address : "127.0.0.1";
    if ((rc = listen_address(address, cfg->port, &ss, addr_copy, sizeof addr_copy, &flags,
                             err)) < 0 ||
        (rc = load_tls(cfg, srv, tls_opts, &flags, err)) < 0)
        goto out;
    bool want_cert = (flags & MHD_USE_TLS) != 0;

    if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not start http server: no thread for the "
                                            "header deadline");
        goto out;
    }
    srv->reaper_started = true;

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
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, (void *)srv,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, (void *)srv,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_keeping_nul, (void *)NULL,
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
    tfs_log_info(HTTP_COMPONENT,
                 "listening on %s://%s%s%s:%u (%u threads, at most %u connections, %u per "
                 "address, headers within %llu ms, idle %u s)",
                 want_cert ? "https" : "http", (flags & MHD_USE_IPv6) ? "[" : "", addr_copy,
                 (flags & MHD_USE_IPv6) ? "]" : "", (unsigned)srv->port, threads, max_conn,
                 max_per_ip, (unsigned long long)(srv->header_timeout_us / 1000), timeout);
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
