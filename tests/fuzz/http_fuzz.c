/* tests/fuzz/http_fuzz.c — the HTTP request path: libmicrohttpd's parsing, then ours
 * (core/http.c: routing, bodies under the cap, the key check of auth.c, problem+json in
 * http_message.c) and the API's parameter and body parsing (api*.c), with the daemon's
 * routes and handlers over a config of one pair and a state store that is not there.
 *
 * The input is what a client sends on one connection (a request, whole or broken),
 * over loopback to a server started once, in process; the harness then half-closes and
 * reads the answer to the end. Invariants: every answer is HTTP with a status line,
 * headers and, for the daemon's own (JSON) answers, the body its framing says (an answer
 * libmicrohttpd makes itself ends what is read: its framing is item 2's); a JSON answer parses; a problem+json answer has
 * the type, title, status (the one sent) and detail RFC 9457 gives it; no 500 (an answer
 * the code did not mean); no answer carries an API key sent in an Authorization header; the server keeps answering
 * (/health on a connection of its own, every 256 inputs).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "config.h"
#include "fuzz_common.h"
#include "health.h"
#include "http.h"
#include "log.h"

static const char *const secrets[] = {"fuzz-read-key", "fuzz-operate-key", "fuzz-admin-key"};
static uint16_t port;
static tfs_api api;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir("http");
    static const char map[] = "function map(r) return { pardat = { id = r.id } } end\n";
    char cfgtext[2048];
    /* A state store that is not there: handlers that need it answer 503. */
    snprintf(cfgtext, sizeof cfgtext,
             "{\"state\": {\"conninfo\": \"host=%s/nosuchdir port=1 dbname=x\","
             " \"connect_timeout\": \"1s\"}, \"plugin_dir\": \".\", \"transform_dir\": \".\","
             " \"roll_year\": 2026, \"systems\": {\"pacs\": {\"plugin\": \"pacs\"},"
             " \"cama\": {\"plugin\": \"cama\"}}, \"pairs\": [{\"name\": \"pacs-to-cama\","
             " \"source\": \"pacs\", \"target\": \"cama\", \"entities\": [{\"source\":"
             " \"property\", \"targets\": [\"pardat\"], \"script\": \"map.lua\"}]}]}",
             dir);
    tfs_error err = {0};
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/tfsyncd.json", dir);
    tfs_config *cfg = NULL;
    tfs_config_slot *slot = NULL;
    static tfs_plugin_host plugins; /* none loaded */
    tfs_health *health = NULL;
    tfs_http_server *srv = NULL;
    tfs_api_key keys[3] = {{"reader", TFS_ROLE_READ, {0}},
                           {"operator", TFS_ROLE_OPERATE, {0}},
                           {"admin", TFS_ROLE_ADMIN, {0}}};
    for (int i = 0; i < 3; i++)
        tfs_auth_key_hash(secrets[i], keys[i].sha256);
    size_t n_routes;
    const tfs_http_route *routes = tfs_api_routes(&n_routes);
    tfs_log_set_level(TFS_LOG_ERROR);
    if (fuzz_write_file(dir, "map.lua", map, strlen(map)) ||
        fuzz_write_file(dir, "tfsyncd.json", cfgtext, strlen(cfgtext)) ||
        tfs_config_load(file, &cfg, &err) || tfs_config_slot_new(cfg, &slot, &err) ||
        tfs_health_start(cfg, &plugins, &health, &err) ||
        tfs_api_init(&api, slot, &plugins, NULL, health, &err)) {
        fprintf(stderr, "http_fuzz: %s\n", err.message);
        abort();
    }
    tfs_http_config hc = {.address = "127.0.0.1", .threads = 1, .max_body = 4096,
                          .connection_timeout_s = 2, .keys = keys, .n_keys = 3,
                          .invoke = tfs_api_invoke};
    if (tfs_http_start(&hc, routes, n_routes, &api, &srv, &err) != 0) {
        fprintf(stderr, "http_fuzz: %s\n", err.message);
        abort();
    }
    port = tfs_http_port(srv);
    return 0;
}

/* Sends data on a new connection, half-closes, reads the answer to the end into *out. */
static size_t exchange(const void *data, size_t size, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
               strerror(errno));
    for (size_t at = 0; at < size;) {
        ssize_t w = send(fd, (const char *)data + at, size - at, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may close on a bad request before reading it all */
        at += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t n = 0;
    for (;;) {
        /* A request left incomplete gets no answer until libmicrohttpd's idle timeout (it
         * does not close on the half-close): when nothing at all comes back in 20 ms the
         * input is taken as one; an answer under way must end within 10 s. */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, n ? 10000 : 20);
        if (pr < 0 && errno == EINTR)
            continue; /* libFuzzer's -timeout alarm */
        if (pr == 0 && n == 0)
            break;
        FUZZ_CHECK(pr > 0, "an answer that stops halfway: %.*s", (int)n, out);
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    /* No TIME_WAIT left behind: the fuzzer opens connections by the million. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return n;
}

static const char *header(const char *head, size_t head_len, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *p = head; p < head + head_len;) {
        const char *eol = memmem(p, (size_t)(head + head_len - p), "\r\n", 2);
        if (!eol)
            eol = head + head_len;
        if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Bit k: secrets[k] was sent, but only in an Authorization header, so an answer must not
 * show it (a key the client put in its path is its own to see echoed). */
static unsigned credentials_only(const uint8_t *in, size_t size)
{
    unsigned bits = 0;
    for (size_t k = 0; k < sizeof secrets / sizeof *secrets; k++) {
        size_t klen = strlen(secrets[k]);
        bool sent = false, elsewhere = false;
        for (const uint8_t *p = in; (p = memmem(p, size - (size_t)(p - in), secrets[k], klen));
             p += klen) {
            sent = true;
            const uint8_t *line = p;
            while (line > in && line[-1] != '\n')
                line--;
            if ((size_t)(p - line) < 14 || strncasecmp((const char *)line, "authorization:", 14))
                elsewhere = true;
        }
        if (sent && !elsewhere)
            bits |= 1u << k;
    }
    return bits;
}

/* Checks the answers in buf[0..n); returns how many. echo_ok: credentials_only's bits;
 * head_request: the first request was a HEAD, whose answer has no body (a request after
 * it, when the inserted "Connection: close" was folded into another header, has one). */
static int check_answers(const char *buf, size_t n, unsigned echo_ok, bool head_request)
{
    int answers = 0;
    for (const char *s = buf; s < buf + n; answers++) {
        size_t left = (size_t)(buf + n - s);
        FUZZ_CHECK(left > 12 && memcmp(s, "HTTP/1.", 7) == 0, "not an HTTP answer: %.60s", s);
        int status = atoi(s + 9);
        FUZZ_CHECK(status >= 100 && status <= 599 && s[12] == ' ', "status line %.40s", s);
        FUZZ_CHECK(status != 500, "a 500: %.400s", s);
        const char *end = memmem(s, left, "\r\n\r\n", 4);
        FUZZ_CHECK(end, "answer headers never end: %.200s", s);
        size_t head_len = (size_t)(end - s) + 2;
        const char *body = end + 4;
        size_t cl_len = 0, ct_len = 0, te_len = 0;
        const char *cl = header(s, head_len, "Content-Length", &cl_len);
        const char *ct = header(s, head_len, "Content-Type", &ct_len);
        const char *te = header(s, head_len, "Transfer-Encoding", &te_len);
        size_t body_len;
        if (!ct || ct_len < 12 || strncmp(ct, "application/", 12) != 0) {
            /* libmicrohttpd's own answer to a request it could not parse (HTML, or no
             * type): it closes the connection after it, and its Content-Length can be wrong
             * (issue 11, item 2, "Content-Length: -1"): nothing after it is read. */
            break;
        }
        if (head_request && answers == 0) {
            body_len = 0; /* the Content-Length of the GET, without its body */
        } else if (cl) {
            body_len = strtoul(cl, NULL, 10);
            FUZZ_CHECK(body_len <= (size_t)(buf + n - body), "a body shorter than its "
                       "Content-Length %zu: %.200s", body_len, s);
        } else {
            FUZZ_CHECK(!te, "a chunked answer (not expected here): %.200s", s);
            body_len = (size_t)(buf + n - body); /* to the close */
        }
        if (ct && ct_len >= 16 && strncmp(ct, "application/", 12) == 0 && status != 204 &&
            body_len > 0) {
            json_error_t je;
            json_t *j = json_loadb(body, body_len, 0, &je);
            FUZZ_CHECK(j, "a JSON answer that is not JSON (%s): %.*s", je.text, (int)body_len,
                       body);
            if (ct_len >= 24 && strncmp(ct, "application/problem+json", 24) == 0) {
                const char *type = json_string_value(json_object_get(j, "type"));
                FUZZ_CHECK(type && strncmp(type, "https://terrafusion.dev/problems/", 33) == 0,
                           "problem without its type: %.*s", (int)body_len, body);
                FUZZ_CHECK(json_is_string(json_object_get(j, "title")) &&
                               json_is_string(json_object_get(j, "detail")),
                           "problem without title or detail: %.*s", (int)body_len, body);
                FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == status,
                           "problem status differs from %d: %.*s", status, (int)body_len, body);
            }
            json_decref(j);
        }
        for (size_t k = 0; k < sizeof secrets / sizeof *secrets; k++)
            FUZZ_CHECK(!(echo_ok & (1u << k)) ||
                           !memmem(s, head_len + 2 + body_len, secrets[k], strlen(secrets[k])),
                       "an answer carries the key %s sent as a credential", secrets[k]);
        s = body + body_len;
    }
    return answers;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[1 << 20];
    if (size > 16384)
        return 0;
    /* "Connection: close" goes in after the request line: a keep-alive connection would
     * otherwise wait for the idle timeout (libmicrohttpd does not close on a half-close,
     * and stalls on pipelined requests), which would make the fuzzer a hundred times
     * slower. One request per input, then; a header of the input's own comes after. */
    static const char close_hdr[] = "Connection: close\r\n";
    static uint8_t in[16384 + sizeof close_hdr];
    const uint8_t *eol = memmem(data, size, "\r\n", 2);
    size_t at = eol ? (size_t)(eol - data) + 2 : size;
    memcpy(in, data, at);
    memcpy(in + at, close_hdr, sizeof close_hdr - 1);
    memcpy(in + at + sizeof close_hdr - 1, data + at, size - at);
    size_t n = exchange(in, size + sizeof close_hdr - 1, buf, sizeof buf);
    check_answers(buf, n, credentials_only(data, size), size >= 5 && !memcmp(data, "HEAD ", 5));
    /* The server is still there for the next client, now and then. */
    static unsigned runs;
    if (++runs % 256 == 0) {
        static const char health[] =
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        n = exchange(health, sizeof health - 1, buf, sizeof buf);
        FUZZ_CHECK(check_answers(buf, n, 0, false) == 1, "/health unanswered after an input: %.200s",
                   buf);
    }
    return 0;
}
