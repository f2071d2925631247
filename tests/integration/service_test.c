/* tests/integration/service_test.c — what a service manager sees of tfsyncd: the
 * sd_notify(3) messages a Type=notify unit relies on. The test plays systemd: it binds the
 * datagram socket named by NOTIFY_SOCKET (a path, then an abstract name), starts the real
 * daemon with it, and reads READY=1 once the API answers, RELOADING=1 then READY=1 around a
 * SIGHUP, and STOPPING=1 at SIGTERM. (`tfsyncd --version`: version_test.c.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"
#include "tfsync_plugin.h"

/* A bound notify socket: a file in a fresh folder, or an abstract name ("@..."). */
typedef struct notify_sock {
    int fd;
    char name[108]; /* as NOTIFY_SOCKET gives it */
    char dir[64];
} notify_sock;

static void sock_open(notify_sock *s, int abstract)
{
    memset(s, 0, sizeof *s);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;
    if (abstract) {
        snprintf(s->name, sizeof s->name, "@tfs-notify-%d-%ld", (int)getpid(), (long)time(NULL));
        memcpy(sa.sun_path, s->name, strlen(s->name));
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s->name));
    } else {
        snprintf(s->dir, sizeof s->dir, "/tmp/tfs-notify-XXXXXX");
        cr_assert_not_null(mkdtemp(s->dir));
        snprintf(s->name, sizeof s->name, "%s/notify", s->dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->name);
        len = sizeof sa;
    }
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&sa, len), 0, "bind %s: %s", s->name,
                 strerror(errno));
}

static void sock_close(notify_sock *s)
{
    close(s->fd);
    if (s->dir[0]) {
        unlink(s->name);
        rmdir(s->dir);
    }
}

/* The next message, waiting at most timeout_ms; "" when none came. */
static void next_message(notify_sock *s, char *buf, size_t cap, int timeout_ms)
{
    buf[0] = '\0';
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return;
    ssize_t n = recv(s->fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

/* Reads messages until one holds want (a line), failing the test after timeout_ms. */
static void expect_message(notify_sock *s, const char *want, int timeout_ms, char *got,
                           size_t cap)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
                                  (now.tv_nsec - t0.tv_nsec) / 1000000);
        cr_assert_gt(left, 0, "no \"%s\" on NOTIFY_SOCKET within %d ms (last: \"%s\")", want,
                     timeout_ms, got);
        next_message(s, got, cap, (int)left);
        if (got[0] && (strncmp(got, want, strlen(want)) == 0 || strstr(got, want)))
            return;
    }
}

static void notify_cycle(int abstract)
{
    notify_sock s;
    sock_open(&s, abstract);
    char *state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "notify");
    json_t *cfg = tfs_test_config_new("unused_pacs", "unused_cama", state);
    json_object_set_new(cfg, "systems", json_object());
    json_object_set_new(cfg, "pairs", json_array());
    setenv("NOTIFY_SOCKET", s.name, 1);
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);
    unsetenv("NOTIFY_SOCKET");

    char got[512] = "";
    expect_message(&s, "READY=1", 20000, got, sizeof got);
    char status[96];
    snprintf(status, sizeof status, "STATUS=listening on 127.0.0.1:%d", d->port);
    cr_expect_not_null(strstr(got, status), "READY=1 came without \"%s\": \"%s\"", status, got);
    /* READY=1 comes after the ready file: the API answers by then. */
    tfs_test_response r = tfs_test_http(d, "GET", "/health", NULL, NULL);
    cr_expect_neq(r.status, 0, "the API does not answer after READY=1: %s", r.error);
    tfs_test_response_free(&r);

    cr_assert_eq(kill(d->pid, SIGHUP), 0);
    expect_message(&s, "RELOADING=1", 10000, got, sizeof got);
    cr_expect_not_null(strstr(got, "\nMONOTONIC_USEC="), "RELOADING=1 without its clock: %s",
                       got);
    expect_message(&s, "READY=1", 10000, got, sizeof got);

    cr_assert_eq(kill(d->pid, SIGTERM), 0);
    expect_message(&s, "STOPPING=1", 10000, got, sizeof got);
    int rc = tfs_test_daemon_stop_status(d);
    cr_expect_eq(rc, 0, "tfsyncd exited %d", rc);
    json_decref(cfg);
    tfs_test_db_drop(state);
    free(state);
    sock_close(&s);
}

Test(service, tells_a_notify_socket_path_ready_reloading_and_stopping, .timeout = 60)
{
    notify_cycle(0);
}

Test(service, tells_an_abstract_notify_socket_too, .timeout = 60)
{
    notify_cycle(1);
}

/* Without NOTIFY_SOCKET (not under systemd) nothing is sent and nothing is logged about it. */
Test(service, no_notify_socket_no_message, .timeout = 60)
{
    unsetenv("NOTIFY_SOCKET");
    char *state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "nonotify");
    json_t *cfg = tfs_test_config_new("unused_pacs", "unused_cama", state);
    json_object_set_new(cfg, "systems", json_object());
    json_object_set_new(cfg, "pairs", json_array());
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);
    char *log = tfs_test_daemon_log(d);
    cr_expect_null(strstr(log, "service manager"), "%s", log);
    free(log);
    cr_expect_eq(tfs_test_daemon_stop_status(d), 0);
    json_decref(cfg);
    tfs_test_db_drop(state);
    free(state);
}
