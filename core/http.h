/* core/http.h — the HTTP server: libmicrohttpd (epoll, internal thread pool, connection,
 * per-IP, memory and timeout limits, and a header deadline of our own), request bodies
 * buffered under a cap, the API-key
 * check of auth.h on every route that needs a role, routing by method and path pattern, and
 * application/problem+json errors (RFC 9457). It knows nothing of syncs: the API's
 * handlers are registered as routes (api.c).
 */
#ifndef TFS_HTTP_H
#define TFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth.h"
#include "error.h"

struct tfs_http_route;
struct tfs_http_request;
struct tfs_http_response;
/* Calls route->handler(req, resp, ...) for the server, with whatever context the caller
 * makes per request around it (the API's config snapshot). */
typedef void (*tfs_http_invoke)(const struct tfs_http_route *route,
                                const struct tfs_http_request *req,
                                struct tfs_http_response *resp, void *ctx);

typedef struct tfs_http_config {
    const char *address;  /* "127.0.0.1", "0.0.0.0", "::1"; NULL = 127.0.0.1 */
    uint16_t port;        /* 0 = any free port */
    /* 0 takes the default of limits.h (TFS_HTTP_*_DEFAULT). */
    unsigned threads;                /* thread pool size */
    size_t max_body;                 /* bytes; a larger body gets 413 */
    unsigned max_connections;
    unsigned max_connections_per_ip; /* UINT_MAX: no per-address limit */
    unsigned connection_timeout_s;   /* idle seconds before libmicrohttpd closes */
    /* From accept (or a kept-alive request's first line) to the end of the request
     * headers, in ms; a connection still sending headers then is closed. */
    unsigned header_timeout_ms;
    bool access_log_all; /* every request's access line at info, not only 4xx and 5xx */
    size_t connection_memory;        /* per-connection memory limit */
    const tfs_api_key *keys;
    size_t n_keys;
    const char *tls_cert_file; /* both set: HTTPS */
    const char *tls_key_file;
    tfs_http_invoke invoke;    /* NULL: the handler is called with ctx directly */
} tfs_http_config;

typedef struct tfs_http_request {
    const char *method;
    const char *path;
    const char *params[4]; /* the {captures} of the route's pattern, in order */
    size_t n_params;
    const char *body; /* NUL-terminated, body_len bytes; "" when there is none */
    size_t body_len;
    const char *actor; /* the key's name; NULL on a route without auth */
    tfs_role role;
    void *conn; /* private: the libmicrohttpd connection, for query arguments */
} tfs_http_request;

/* A query argument ("?pair=x"), borrowed for the request, or NULL. */
const char *tfs_http_query(const tfs_http_request *req, const char *name);

typedef struct tfs_http_response {
    int status;
    json_t *json;      /* owned: the response body as JSON, or */
    char *text;        /* owned (malloc): a text body, with */
    const char *content_type; /* static; default application/json */
    char location[256];       /* a Location header when not empty */
    /* Static bytes as the body (the web console's embedded files, ui_files.h), never
     * freed; taken when json and text are NULL. */
    const unsigned char *bytes;
    size_t bytes_len;
    /* More headers: static name, value pairs, NULL after the last. A Cache-Control among
     * them replaces the default no-store. */
    const char *headers[16];
    /* or a body owned elsewhere (tfs_http_shared): shared_len bytes, given back with
     * shared_release(shared_ctx) once sent */
    const char *shared;
    size_t shared_len;
    void (*shared_release)(void *ctx);
    void *shared_ctx;
    char etag[48];            /* an ETag header when not empty (a 304 carries it too) */
} tfs_http_response;

/* Sets resp to a problem+json: type is a short stable slug, becoming
 * "https://terrafusion.dev/problems/<slug>"; title is fixed per type; detail says what was
 * wrong and how to fix it. Returns 0. */
int tfs_http_problem(tfs_http_response *resp, int status, const char *type, const char *title,
                     const char *detail_fmt, ...) TFS_PRINTF(5, 6);
/* Sets resp to a JSON body (takes the reference). Returns 0. */
int tfs_http_json(tfs_http_response *resp, int status, json_t *body);

/* A handler fills resp; it is called on a server thread and must not block on a sync. */
typedef void (*tfs_http_handler)(const tfs_http_request *req, tfs_http_response *resp,
                                 void *ctx);

typedef struct tfs_http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/sync/status/{run_id}": a {capture} matches one segment */
    tfs_role min_role;
    tfs_http_handler handler;
} tfs_http_route;

typedef struct tfs_http_server tfs_http_server;

/* Starts serving. Routes and ctx must outlive the server. A path no route matches gets
 * 404; a path that matches with another method gets 405 with an Allow header; a request
 * without a valid key on a route that needs one gets 401 (with WWW-Authenticate: Bearer),
 * a key with too small a role 403. */
int tfs_http_start(const tfs_http_config *cfg, const tfs_http_route *routes, size_t n_routes,
                   void *ctx, tfs_http_server **out, tfs_error *err);
/* The port bound (useful with port 0). */
uint16_t tfs_http_port(const tfs_http_server *srv);
/* Stops serving and frees the server; accepts NULL. */
void tfs_http_stop(tfs_http_server *srv);

/* SHA-256 of a key: tfs_auth_key_hash (auth.h), kept under this name for the callers of
 * the server's interface. */
void tfs_http_key_hash(const char *key, unsigned char out[32]);

/* Added with http.c. */

/* Sets resp to a text body: takes text (malloc'd; freed by the server, or at once when resp
 * is NULL) with content_type (static, e.g. "text/plain; version=0.0.4" for /metrics; NULL
 * means application/json). Releases a body set before. Returns 0. */
int tfs_http_text(tfs_http_response *resp, int status, const char *content_type, char *text);
/* Sets resp to a body built once and shared between requests: len bytes at data, which
 * stay valid until release(ctx) is called (by the server once the answer is sent, or at
 * once when it is replaced or not sent); content_type as for tfs_http_text. Releases a
 * body set before. Returns 0. */
int tfs_http_shared(tfs_http_response *resp, int status, const char *content_type,
                    const char *data, size_t len, void (*release)(void *ctx), void *ctx);
/* Whether the request's If-None-Match names etag (or is *): the answer may be 304. */
bool tfs_http_etag_matches(const tfs_http_request *req, const char *etag);
/* Replaces the keys (copied) for the requests that start from now on; a request under
 * way finishes with the keys it was checked against. 0, TFS_EINVAL or TFS_ENOMEM (the old
 * keys stay then). */
int tfs_http_set_keys(tfs_http_server *srv, const tfs_api_key *keys, size_t n, tfs_error *err);
/* From now on every request gets 503 problem+json "shutting-down" (the daemon is
 * stopping); accepts NULL. */
void tfs_http_drain(tfs_http_server *srv);

/* The connections open now (accepted and not yet closed), for tests and metrics. */
unsigned tfs_http_open_connections(tfs_http_server *srv);

/* The request body as a JSON value (a new reference), parsed with duplicate keys refused:
 * NULL after answering resp with 400 invalid-body (empty, or not an object),
 * malformed-json or duplicate-key (naming the key). example is the body to suggest, e.g.
 * "{\"pair\": \"<name>\"}". Every handler that reads a JSON body goes through here. */
json_t *tfs_http_body_json(const tfs_http_request *req, tfs_http_response *resp,
                           const char *example);

/* A request header (name case-insensitive), borrowed for the request, or NULL. */
const char *tfs_http_header(const tfs_http_request *req, const char *name);

#endif
