/* tests/support/tfs_test_suite.c — what the daemon suites' fixtures share: the three
 * databases most of them clone, the daemon started on the demo config of them, the
 * teardown that expects a clean exit, and raw sockets to 127.0.0.1 (a free port, a
 * connected client, a request sent byte for byte). */
#include "tfs_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <criterion/criterion.h>

static char *clone_labelled(const char *template_name, const char *prefix, const char *what)
{
    char label[64];
    snprintf(label, sizeof label, "%s%s", prefix ? prefix : "", what);
    return tfs_test_db_clone(template_name, label);
}

void tfs_test_clone_dbs(const char *pacs_template, const char *prefix, char **pacs, char **cama,
                        char **state)
{
    *pacs = clone_labelled(pacs_template, prefix, "pacs");
    *cama = clone_labelled(TFS_TEST_TMPL_CAMA, prefix, "cama");
    *state = clone_labelled(TFS_TEST_TMPL_STATE, prefix, "state");
}

void tfs_test_drop_dbs(char **pacs, char **cama, char **state)
{
    char **all[] = {pacs, cama, state};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tfs_test_db_drop(*all[i]);
        free(*all[i]);
        *all[i] = NULL;
    }
}

void tfs_test_daemon_stop_clean(tfs_test_daemon *d)
{
    char *log = tfs_test_daemon_log(d);
    int status = tfs_test_daemon_stop_status(d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
}

tfs_test_daemon *tfs_test_suite_start(const char *pacs_template, const char *prefix,
                                      void (*adjust)(json_t *cfg), char **pacs, char **cama,
                                      char **state)
{
    tfs_test_clone_dbs(pacs_template, prefix, pacs, cama, state);
    json_t *cfg = tfs_test_config_new(*pacs, *cama, *state);
    if (adjust)
        adjust(cfg);
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);
    json_decref(cfg);
    return d;
}

void tfs_test_suite_end(tfs_test_daemon *d, char **pacs, char **cama, char **state)
{
    tfs_test_daemon_stop_clean(d);
    tfs_test_drop_dbs(pacs, cama, state);
}

int tfs_test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(s, (struct sockaddr *)&a, &len) == 0,
              "no free port on 127.0.0.1");
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

int tfs_test_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket() failed");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0,
                 "connect to 127.0.0.1:%d failed", port);
    return fd;
}

tfs_test_raw tfs_test_http_raw(int port, const char *method, const char *target,
                               const char *extra)
{
    tfs_test_raw a = {0};
    int fd = tfs_test_connect(port);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", method,
                     target, extra ? extra : "");
    cr_assert(n > 0 && (size_t)n < sizeof req, "%s %s: the request is too long", method, target);
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

void tfs_test_raw_free(tfs_test_raw *a)
{
    free(a->head);
    free(a->body);
    a->head = a->body = NULL;
}

const char *tfs_test_raw_header(const tfs_test_raw *a, const char *name, char *out, size_t cap)
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
