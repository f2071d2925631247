/* tests/unit/http_abuse_test.c — the HTTP server (core/http.c) under hostile and careless
 * clients, over real sockets: 1,000 slow clients and a fresh /health still answered fast;
 * the header deadline (the 5-second default and a short configured one) closing a client
 * that drips its headers while a kept-alive idle connection stays; the per-address limit;
 * query parameters that are not UTF-8; duplicate keys in JSON bodies; the access log
 * and libmicrohttpd's own warnings as an operator reads them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "http.h"
#include "log.h"

/* ---- handlers ------------------------------------------------------------------------ */

static void h_health(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    tfs_http_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_query(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    tfs_http_json(resp, 200, json_pack("{s:s?}", "pair", tfs_http_query(req, "pair")));
}

static void h_body(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    json_t *body = tfs_http_body_json(req, resp, "{\"pair\": \"<name>\"}");
    if (body)
        tfs_http_json(resp, 200, body);
}

static const tfs_http_route routes[] = {
    {"GET", "/health", TFS_ROLE_NONE, h_health},
    {"GET", "/q", TFS_ROLE_NONE, h_query},
    {"GET", "/secret", TFS_ROLE_READ, h_health},
    {"POST", "/body", TFS_ROLE_NONE, h_body},
};

/* ---- the server ---------------------------------------------------------------------- */

static tfs_http_server *srv;
static tfs_api_key keys[1];
static uint16_t port;

static tfs_http_config base_config(void)
{
    tfs_http_key_hash("reader-secret", keys[0].sha256);
    keys[0].name = "dashboard";
    keys[0].role = TFS_ROLE_READ;
    tfs_http_config cfg = {0};
    cfg.address = "127.0.0.1";
    cfg.threads = 2;
    cfg.max_body = 4096;
    cfg.keys = keys;
    cfg.n_keys = 1;
    return cfg;
}

static void start(tfs_http_config cfg)
{
    tfs_error err = {0};
    int rc = tfs_http_start(&cfg, routes, sizeof routes / sizeof routes[0], NULL, &srv, &err);
    cr_assert_eq(rc, 0, "start: %s", err.message);
    port = tfs_http_port(srv);
}

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void)
{
    tfs_http_stop(srv);
    srv = NULL;
    curl_global_cleanup();
}

TestSuite(http_abuse, .init = setup, .fini = teardown, .timeout = 120);

/* ---- clients ------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A TCP connection to the server from source address src ("127.0.0.2": loopback takes
 * any 127/8 address), or -1. */
static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (src) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_text(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* closed: the caller looks at that */
        off += (size_t)n;
    }
}

/* Whether the server closed fd (EOF or reset) within wait_ms; what it sent is read and
 * dropped. */
static bool closed_within(int fd, int wait_ms)
{
    uint64_t end = now_ms() + (uint64_t)wait_ms;
    for (;;) {
        uint64_t t = now_ms();
        if (t >= end)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(end - t));
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

/* Reads one whole answer (headers and a Content-Length body) from fd into buf. */
static bool read_answer(int fd, char *buf, size_t cap, int wait_ms)
{
    size_t len = 0;
    uint64_t end = now_ms() + (uint64_t)wait_ms;
    buf[0] = '\0';
    while (now_ms() < end && len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        const char *eoh = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (eoh && cl && len >= (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10))
            return true;
    }
    return false;
}

typedef struct result {
    long status;
    char *body;
    size_t len;
    double seconds;
} result;

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

/* One request on a fresh connection (key sent as Bearer when set). */
static result call(const char *method, const char *path, const char *key, const char *body)
{
    result r = {0};
    char url[512], auth[128];
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    uint64_t t0 = now_ms();
    curl_easy_perform(c);
    r.seconds = (double)(now_ms() - t0) / 1000.0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static const char *problem_type(const result *r, char *out, size_t cap)
{
    json_t *j = json_loads(r->body, 0, NULL);
    snprintf(out, cap, "%s", j ? json_string_value(json_object_get(j, "type")) : "(not json)");
    json_decref(j);
    return out;
}

/* ---- the log ------------------------------------------------------------------------- */

static char log_path[] = "/tmp/tfs-http-abuse-log-XXXXXX";
static int log_fd = -1, saved_stderr = -1;

static void log_capture(tfs_log_level level)
{
    log_fd = mkstemp(log_path);
    cr_assert_geq(log_fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    dup2(log_fd, STDERR_FILENO);
    tfs_log_set_level(level);
}

/* The log written so far (malloc'd), still capturing. */
static char *log_text(void)
{
    char *text = calloc(1, 1 << 20);
    ssize_t n = pread(log_fd, text, (1 << 20) - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static void log_release(void)
{
    if (log_fd < 0)
        return;
    tfs_log_set_level(TFS_LOG_INFO);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(log_fd);
    unlink(log_path);
    log_fd = -1;
}

/* Polls the log until it contains needle or wait_ms pass; the log, malloc'd. */
static char *log_wait_for(const char *needle, int wait_ms)
{
    uint64_t end = now_ms() + (uint64_t)wait_ms;
    for (;;) {
        char *t = log_text();
        if (strstr(t, needle) || now_ms() >= end)
            return t;
        free(t);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- slow clients -------------------------------------------------------------------- */

#define SLOW 1000

typedef struct dripper {
    int *fds;
    size_t n;
    atomic_bool stop;
} dripper;

/* Sends one header byte to every slow socket each 500 ms, as a slowloris does, so
 * libmicrohttpd's idle timeout never fires for them. */
static void *drip(void *arg)
{
    dripper *d = arg;
    while (!atomic_load(&d->stop)) {
        for (size_t i = 0; i < d->n; i++) /* a failed send: closed, the test sees it */
            (void)send(d->fds[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        struct pollfd none;
        poll(&none, 0, 500);
    }
    return NULL;
}

static void raise_own_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4096 && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 4096)) {
        rl.rlim_cur = 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_cur, 2 * SLOW + 200,
                  "this test needs %d descriptors (server and clients in one process)",
                  2 * SLOW + 200);
}

/* The attack: 1,000 clients each sending a header byte a second. With the default
 * limits a fresh client still gets /health in under a second, and the default header
 * deadline (5 s) then closes every slow one. */
Test(http_abuse, thousand_slow_clients_leave_health_answering_then_are_closed_at_5s)
{
    raise_own_nofile();
    start(base_config()); /* every limit at its default */
    static int fds[SLOW];
    uint64_t opened = now_ms();
    for (int i = 0; i < SLOW; i++) {
        fds[i] = connect_from(NULL);
        cr_assert_geq(fds[i], 0, "connect %d: %s", i, strerror(errno));
        send_text(fds[i], "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    }
    dripper d = {.fds = fds, .n = SLOW};
    atomic_init(&d.stop, false);
    pthread_t th;
    pthread_create(&th, NULL, drip, &d);

    /* Every slow client is the server's (accepted and held), not waiting in the backlog. */
    uint64_t end = now_ms() + 3000;
    while (tfs_http_open_connections(srv) < SLOW && now_ms() < end) {
        struct pollfd none;
        poll(&none, 0, 10);
    }
    cr_assert_geq(tfs_http_open_connections(srv), SLOW,
                  "the server holds only %u of %d slow connections",
                  tfs_http_open_connections(srv), SLOW);

    result r = call("GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200, "a fresh /health with %d slow clients open: %ld", SLOW,
                 r.status);
    cr_assert_lt(r.seconds, 1.0, "a fresh /health took %.3f s with %d slow clients open",
                 r.seconds, SLOW);
    free(r.body);
    cr_assert_geq(tfs_http_open_connections(srv), SLOW, "slow clients were dropped early");

    /* The default header deadline: none is closed before 5 s, all soon after. */
    int64_t left = 4700 - (int64_t)(now_ms() - opened);
    if (left > 0)
        cr_assert_not(closed_within(fds[SLOW - 1], (int)left),
                      "a slow client was closed before the 5 s header deadline");
    end = opened + 7000;
    while (tfs_http_open_connections(srv) > 0 && now_ms() < end) {
        struct pollfd none;
        poll(&none, 0, 20);
    }
    uint64_t all_closed = now_ms() - opened;
    cr_assert_eq(tfs_http_open_connections(srv), 0,
                 "%u slow clients still open %llu ms after they connected",
                 tfs_http_open_connections(srv), (unsigned long long)all_closed);
    cr_assert_geq(all_closed, 4900, "closed after %llu ms, before the 5 s deadline",
                  (unsigned long long)all_closed);
    cr_assert(closed_within(fds[0], 1000), "the client's side did not see the close");
    atomic_store(&d.stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < SLOW; i++)
        close(fds[i]);
    r = call("GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
}

/* A configured short deadline: a client dripping its headers is closed at it (and the
 * access log names it), while a client that sent its request is answered. */
Test(http_abuse, short_header_deadline_closes_a_slow_client)
{
    log_capture(TFS_LOG_INFO);
    tfs_http_config cfg = base_config();
    cfg.header_timeout_ms = 1000;
    start(cfg);
    int fd = connect_from("127.0.0.3");
    cr_assert_geq(fd, 0);
    uint64_t t0 = now_ms();
    send_text(fd, "GET /health HTTP/1.1\r\nHost: x\r\n");
    bool closed = false;
    while (!closed && now_ms() - t0 < 3000) {
        send(fd, "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        closed = closed_within(fd, 200);
    }
    uint64_t took = now_ms() - t0;
    close(fd);
    cr_assert(closed, "a client dripping headers was not closed within 3 s");
    cr_assert_geq(took, 900, "closed after %llu ms, before the 1 s deadline",
                  (unsigned long long)took);
    cr_assert_leq(took, 1600, "closed after %llu ms, long after the 1 s deadline",
                  (unsigned long long)took);
    char *log = log_wait_for("headers not complete by the header deadline", 2000);
    log_release();
    cr_assert(strstr(log, "[access] 127.0.0.3 ? /health - - closed: headers not complete by "
                          "the header deadline"),
              "%s", log);
    free(log);
    result r = call("GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
}

/* The deadline is for headers being sent, not for a kept-alive connection waiting between
 * requests (libmicrohttpd's idle timeout is): an idle connection past the deadline still
 * serves its next request. */
Test(http_abuse, kept_alive_connection_idles_past_the_header_deadline)
{
    tfs_http_config cfg = base_config();
    cfg.header_timeout_ms = 300;
    start(cfg);
    int fd = connect_from(NULL);
    cr_assert_geq(fd, 0);
    char buf[4096];
    send_text(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(read_answer(fd, buf, sizeof buf, 2000), "first answer: %s", buf);
    cr_assert(strstr(buf, "200 OK"), "%s", buf);
    cr_assert_not(closed_within(fd, 1000), "an idle kept-alive connection was closed at the "
                                           "header deadline");
    send_text(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(read_answer(fd, buf, sizeof buf, 2000), "second answer: %s", buf);
    cr_assert(strstr(buf, "200 OK"), "%s", buf);
    /* Its next request dripped slowly is held to the deadline again. */
    uint64_t t0 = now_ms();
    send_text(fd, "GET /health HTTP/1.1\r\n");
    bool closed = false;
    while (!closed && now_ms() - t0 < 3000) {
        send(fd, "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        closed = closed_within(fd, 100);
    }
    close(fd);
    cr_assert(closed, "a kept-alive connection dripping its next headers was not closed");
    cr_assert_leq(now_ms() - t0, 1000);
}

/* listen.max_per_ip: one address past its limit is refused while another is served. */
Test(http_abuse, per_address_limit_is_configurable)
{
    tfs_http_config cfg = base_config();
    cfg.max_connections_per_ip = 2;
    start(cfg);
    int a = connect_from("127.0.0.4"), b = connect_from("127.0.0.4");
    cr_assert(a >= 0 && b >= 0);
    send_text(a, "GET /health HTTP/1.1\r\n");
    send_text(b, "GET /health HTTP/1.1\r\n");
    uint64_t end = now_ms() + 2000;
    while (tfs_http_open_connections(srv) < 2 && now_ms() < end) {
        struct pollfd none;
        poll(&none, 0, 10);
    }
    int c = connect_from("127.0.0.4");
    cr_assert_geq(c, 0);
    cr_assert(closed_within(c, 2000), "a third connection from one address was kept");
    int other = connect_from("127.0.0.5");
    cr_assert_geq(other, 0);
    char buf[4096];
    send_text(other, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(read_answer(other, buf, sizeof buf, 2000), "%s", buf);
    cr_assert(strstr(buf, "200 OK"), "%s", buf);
    close(a);
    close(b);
    close(c);
    close(other);
}

/* ---- client errors ------------------------------------------------------------------- */

Test(http_abuse, query_parameters_must_be_utf8)
{
    start(base_config());
    char type[128];
    result r = call("GET", "/q?pair=%ff", NULL, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    cr_assert(strstr(problem_type(&r, type, sizeof type), "/invalid-query"), "%s", r.body);
    cr_assert(strstr(r.body, "query parameter \\\"pair\\\" is not valid UTF-8"), "%s", r.body);
    free(r.body);
    /* Overlong, surrogate, truncated: all refused; a real é is taken. */
    const char *bad[] = {"/q?pair=%c0%af", "/q?pair=%ed%a0%80", "/q?pair=abc%e2%82",
                         "/q?%ff=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = call("GET", bad[i], NULL, NULL);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i], r.status, r.body);
        free(r.body);
    }
    r = call("GET", "/q?pair=caf%C3%A9", NULL, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "caf\\u00e9") || strstr(r.body, "café"), "%s", r.body);
    free(r.body);
}

Test(http_abuse, duplicate_body_keys_are_refused_naming_the_key)
{
    start(base_config());
    char type[128];
    static const struct {
        const char *body, *key;
    } cases[] = {
        {"{\"pair\":\"x\",\"pair\":\"pacs-to-cama\"}", "\\\"pair\\\""},
        {"{\"a\": {\"b\": 1, \"c\": \"\\\"b\\\"\", \"b\": 2}}", "\\\"b\\\""},
        {"{\"q\\\"uote\": 1, \"q\\\"uote\": 2}", "\\\"q\\\\\\\"uote\\\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = call("POST", "/body", NULL, cases[i].body);
        cr_assert_eq(r.status, 400, "%s: %ld %s", cases[i].body, r.status, r.body);
        cr_assert(strstr(problem_type(&r, type, sizeof type), "/duplicate-key"), "%s", r.body);
        cr_assert(strstr(r.body, cases[i].key), "%s should name %s", r.body, cases[i].key);
        free(r.body);
    }
    result r = call("POST", "/body", NULL, "{\"pair\":\"x\",\"other\":{\"pair\":1}}");
    cr_assert_eq(r.status, 200, "the same key in two objects is fine: %s", r.body);
    free(r.body);
}

/* ---- the log ------------------------------------------------------------------------- */

Test(http_abuse, access_log_has_client_status_time_and_key_name_never_the_key)
{
    log_capture(TFS_LOG_INFO);
    start(base_config());
    result r = call("GET", "/health", NULL, NULL);
    free(r.body);
    r = call("GET", "/nowhere", NULL, NULL);
    free(r.body);
    r = call("GET", "/secret", "reader-secret", NULL);
    free(r.body);
    r = call("GET", "/secret", "wrong-secret", NULL);
    free(r.body);
    char *log = log_wait_for("/secret 401", 2000);
    log_release();
    cr_assert(strstr(log, "info  [access] 127.0.0.1 GET /nowhere 404 "), "%s", log);
    cr_assert(strstr(log, "info  [access] 127.0.0.1 GET /secret 401 "), "%s", log);
    cr_assert_null(strstr(log, "GET /health 200"), "a 2xx is at debug by default: %s", log);
    cr_assert_null(strstr(log, "GET /secret 200"), "%s", log);
    cr_assert_null(strstr(log, "secret key"), "%s", log);
    cr_assert_null(strstr(log, "reader-secret"), "the key itself was logged: %s", log);
    cr_assert_null(strstr(log, "wrong-secret"), "the key itself was logged: %s", log);
    cr_assert(strstr(log, " ms key=-\n") || strstr(log, "ms key=-\n"), "%s", log);
    free(log);
}

Test(http_abuse, access_log_all_writes_2xx_at_info_with_the_key_name)
{
    log_capture(TFS_LOG_INFO);
    tfs_http_config cfg = base_config();
    cfg.access_log_all = true;
    start(cfg);
    result r = call("GET", "/secret", "reader-secret", NULL);
    free(r.body);
    char *log = log_wait_for("/secret 200", 2000);
    log_release();
    const char *line = strstr(log, "info  [access] 127.0.0.1 GET /secret 200 ");
    cr_assert(line, "%s", log);
    cr_assert(strstr(line, "ms key=dashboard\n"), "%s", log);
    cr_assert_null(strstr(log, "reader-secret"), "%s", log);
    free(log);
}

/* What libmicrohttpd answers by itself is logged as text (no HTML) with the client's
 * address, and the connection's access line says the request never reached routing. */
Test(http_abuse, library_refusals_are_logged_with_the_client_and_no_html)
{
    log_capture(TFS_LOG_INFO);
    start(base_config());
    int fd = connect_from("127.0.0.6");
    cr_assert_geq(fd, 0);
    send_text(fd, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
    char buf[4096];
    read_answer(fd, buf, sizeof buf, 2000);
    cr_assert(strstr(buf, "400 Bad Request"), "%s", buf);
    closed_within(fd, 2000);
    close(fd);
    char *log = log_wait_for("answered by the HTTP library", 2000);
    log_release();
    cr_assert(strstr(log, "info  [access] 127.0.0.6 ? /body 400 - answered by the HTTP library "
                          "before routing"),
              "%s", log);
    const char *warn = strstr(log, "warn  [http] ");
    cr_assert(warn, "%s", log);
    for (const char *w = warn; w && (w = strstr(w, "warn  [http] ")); w++) {
        const char *eol = strchr(w, '\n');
        size_t len = eol ? (size_t)(eol - w) : strlen(w);
        cr_assert_null(memchr(w, '<', len), "HTML in a log line: %.*s", (int)len, w);
    }
    cr_assert(strstr(log, "(reading a request from 127.0.0.6)"), "%s", log);
    free(log);
}

/* What libmicrohttpd answers by itself (docs/security.md says what of it is left): the
 * status of each protocol error, the connection closed after it, and the server still up.
 * Its bodies are its own HTML without a Content-Type, and in 0.9.75 a refused header
 * (Content-Length: -1, a missing Host in strict mode) gets its status line and headers
 * twice; only the first status line is looked at here. */
Test(http_abuse, protocol_errors_answered_by_the_library_close_and_the_server_stays_up)
{
    start(base_config());
    static char big_header[80000], long_uri[80000];
    snprintf(big_header, sizeof big_header, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big_header + strlen(big_header), 'a', 70000);
    strcat(big_header, "\r\n\r\n");
    snprintf(long_uri, sizeof long_uri, "GET /");
    memset(long_uri + 5, 'a', 70000);
    strcat(long_uri, " HTTP/1.1\r\nHost: x\r\n\r\n");
    static const struct {
        const char *request;
        const char *status;
    } cases[] = {
        {"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
        {big_header, "HTTP/1.1 431 "},
        {long_uri, "HTTP/1.1 414 "},
        {"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "HTTP/1.1 400 "},
        {"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = connect_from(NULL);
        cr_assert_geq(fd, 0);
        send_text(fd, cases[i].request);
        char buf[8192];
        read_answer(fd, buf, sizeof buf, 2000);
        cr_assert(strncmp(buf, cases[i].status, strlen(cases[i].status)) == 0,
                  "case %zu: want %s, got %.200s", i, cases[i].status, buf);
        cr_assert(closed_within(fd, 2000), "case %zu: the connection stayed open", i);
        close(fd);
        result r = call("GET", "/health", NULL, NULL);
        cr_assert_eq(r.status, 200, "case %zu: the server must still answer", i);
        free(r.body);
    }
}

/* The server raises the process's open-file limit to fit max_connections, and when the
 * hard limit is too low it serves fewer connections and says how to raise it. (Each test
 * runs in its own process, so lowering the limits here touches no other test.) */
Test(http_abuse, open_file_limit_raised_to_fit_or_connections_lowered)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    cr_assert(rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 4096 + 256,
              "the hard limit %llu is too low for this test", (unsigned long long)rl.rlim_max);
    rl.rlim_cur = 1024;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    start(base_config());
    getrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_cur, 4096 + 256, "soft limit after start: %llu",
                  (unsigned long long)rl.rlim_cur);
    tfs_http_stop(srv);
    srv = NULL;

    log_capture(TFS_LOG_INFO);
    rl.rlim_cur = 1024;
    rl.rlim_max = 2048;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    start(base_config());
    char *log = log_text();
    log_release();
    cr_assert(strstr(log, "listen.max_connections lowered from 4096 to 1792: the open-file "
                          "limit is 2048"),
              "%s", log);
    cr_assert(strstr(log, "at most 1792 connections"), "%s", log);
    free(log);
    result r = call("GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
}
