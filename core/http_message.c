/* core/http_message.c — what a handler reads of a request and writes as its answer
 * (problem+json, JSON, text; query arguments and headers), and how an answer goes on the
 * wire: status, body (JSON, text or static bytes), Content-Type, Cache-Control, Location, Allow,
 * WWW-Authenticate and a handler's own static headers, with
 * a fallback problem when even that cannot be built. The server itself is http.c.
 */
#include "http_message.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

uint64_t tfs_http_now_us(void)
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
    resp->bytes = NULL;
    resp->bytes_len = 0;
    if (resp->shared && resp->shared_release)
        resp->shared_release(resp->shared_ctx);
    resp->shared = NULL;
    resp->shared_release = NULL;
    resp->shared_ctx = NULL;
}

int tfs_http_shared(tfs_http_response *resp, int status, const char *content_type,
                    const char *data, size_t len, void (*release)(void *ctx), void *ctx)
{
    response_clear_body(resp);
    resp->status = status;
    resp->content_type = content_type;
    resp->shared = data;
    resp->shared_len = len;
    resp->shared_release = release;
    resp->shared_ctx = ctx;
    return 0;
}

bool tfs_http_etag_matches(const tfs_http_request *req, const char *etag)
{
    const char *inm = tfs_http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (!inm || !etag || !etag[0])
        return false;
    /* A list of tags (RFC 9110 13.1.2), weak ones compared by their opaque part. */
    size_t n = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
                                         p[n] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

/* Copies s into dst for a log line, replacing control bytes so a path cannot forge lines. */
const char *tfs_http_log_safe(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
    return dst;
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
enum MHD_Result tfs_http_send(struct MHD_Connection *conn, const char *method, const char *path,
                              tfs_http_response *resp, const char *allow, bool challenge,
                              int *status_out)
{
    struct MHD_Response *r = NULL;
    int status = resp->status;
    bool no_body = status == 204 || status == 304;
    bool empty = !resp->json && !resp->text && !resp->shared && !resp->bytes;
    const char *ctype = resp->content_type ? resp->content_type : HTTP_CT_JSON;

    if (status < 100 || status > 599 || (empty && !no_body)) {
        char m[16], p[160];
        tfs_log_error(HTTP_COMPONENT, "handler for %s %s left no response (status %d)",
                      tfs_http_log_safe(m, sizeof m, method),
                      tfs_http_log_safe(p, sizeof p, path), status);
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
    } else if (resp->shared) {
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            resp->shared_len, (void *)resp->shared, resp->shared_release, resp->shared_ctx);
        if (r)
            resp->shared = NULL; /* libmicrohttpd gives it back */
    } else if (resp->bytes) {
        r = MHD_create_response_from_buffer(resp->bytes_len, (void *)resp->bytes,
                                            MHD_RESPMEM_PERSISTENT);
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
    bool cache_given = false;
    for (size_t i = 0; i + 1 < sizeof resp->headers / sizeof resp->headers[0] &&
                       resp->headers[i] && resp->headers[i + 1];
         i += 2) {
        add_header(r, resp->headers[i], resp->headers[i + 1]);
        cache_given = cache_given ||
                      strcasecmp(resp->headers[i], MHD_HTTP_HEADER_CACHE_CONTROL) == 0;
    }
    if (!cache_given)
        add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (resp->etag[0] && status != 500)
        add_header(r, MHD_HTTP_HEADER_ETAG, resp->etag);
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

void tfs_http_log_request(const char *client, const char *method, const char *path, int status,
                          uint64_t start_us, const char *key_name, bool all)
{
    char c[64], m[16], p[256], k[64];
    uint64_t us = tfs_http_now_us() - start_us;
    tfs_log_level level = status >= 400 || all ? TFS_LOG_INFO : TFS_LOG_DEBUG;
    tfs_http_log_safe(c, sizeof c, client && client[0] ? client : "-");
    tfs_http_log_safe(m, sizeof m, method);
    tfs_http_log_safe(p, sizeof p, path);
    tfs_http_log_safe(k, sizeof k, key_name ? key_name : "-");
    /* In JSON the same line carries each part as a field of its own. */
    tfs_log_field f[] = {{"client", c, 0},   {"method", m, 0},
                         {"path", p, 0},     {"status", NULL, status},
                         {"duration_ms", NULL, (double)us / 1000.0},
                         {"key_name", key_name ? k : NULL, 0}};
    unsigned nf = key_name ? 6 : 5;
    tfs_log_fields(level, HTTP_ACCESS_COMPONENT, f, nf, "%s %s %s %d %llu.%03llums key=%s", c,
                   m, p, status, (unsigned long long)(us / 1000),
                   (unsigned long long)(us % 1000), k);
}

/* ---- request bodies ------------------------------------------------------------------ */

/* The object key that ends at byte end of text (jansson's position on a duplicate key is
 * just past the key's closing quote), decoded, or NULL. Strings are tracked from the start
 * so a quote inside a string is never taken for the key's opening quote. */
static json_t *key_ending_at(const char *text, size_t len, size_t end)
{
    size_t start = 0;
    bool in = false;
    for (size_t i = 0; i < len && i < end; i++) {
        if (!in) {
            if (text[i] == '"') {
                in = true;
                start = i;
            }
        } else if (text[i] == '\\') {
            i++;
        } else if (text[i] == '"') {
            in = false;
            if (i + 1 == end)
                return json_loadb(text + start, i + 1 - start, JSON_DECODE_ANY, NULL);
        }
    }
    return NULL;
}

json_t *tfs_http_body_json(const tfs_http_request *req, tfs_http_response *resp,
                           const char *example)
{
    json_error_t je;
    if (req->body_len == 0) {
        tfs_http_problem(resp, 400, "invalid-body", "Invalid request body",
                         "the body is empty; send %s as application/json", example);
        return NULL;
    }
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body && json_error_code(&je) == json_error_duplicate_key) {
        /* A repeated key is ambiguous (which one counts depends on the parser), so it is
         * refused as the config loader refuses it. */
        json_t *k = key_ending_at(req->body, req->body_len, (size_t)je.position);
        char *name = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL; /* quoted and escaped */
        tfs_http_problem(resp, 400, "duplicate-key", "Duplicate key",
                         "the key %.200s appears twice in one object of the body (line %d, "
                         "column %d); send each key once, e.g. %s",
                         name ? name : "\"?\"", je.line, je.column, example);
        free_jansson(name);
        json_decref(k);
        return NULL;
    }
    if (!body) {
        tfs_http_problem(resp, 400, "malformed-json", "Malformed JSON",
                         "the body is not valid JSON: %s at line %d, column %d; send %s",
                         je.text, je.line, je.column, example);
        return NULL;
    }
    if (!json_is_object(body)) {
        tfs_http_problem(resp, 400, "invalid-body", "Invalid request body",
                         "the body must be a JSON object like %s", example);
        json_decref(body);
        return NULL;
    }
    return body;
}

/* ---- text checks --------------------------------------------------------------------- */

bool tfs_http_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(e - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}
