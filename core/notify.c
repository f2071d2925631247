/* core/notify.c — sd_notify(3) without libsystemd: a datagram to the AF_UNIX socket named
 * by $NOTIFY_SOCKET, a path or, starting with '@', an abstract name. The protocol is the
 * one systemd documents as stable for reimplementations ("KEY=value\n..." in a single
 * SOCK_DGRAM message, sent by the main process). */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

int tfs_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !name[0])
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof sa.sun_path) {
        tfs_log_warn("core", "NOTIFY_SOCKET \"%s\" is not a socket path or abstract name; "
                     "not telling the service manager", name);
        return TFS_EIO;
    }
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract name: no file behind it */
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                   (name[0] == '/'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tfs_log_warn("core", "could not tell the service manager \"%s\": socket: %s", state,
                     strerror(errno));
        return TFS_EIO;
    }
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
    int saved = errno;
    close(fd);
    if (n < 0) {
        tfs_log_warn("core", "could not tell the service manager \"%s\" at \"%s\": %s", state,
                     name, strerror(saved));
        return TFS_EIO;
    }
    return 0;
}

int tfs_notify_ready(const char *address, unsigned port)
{
    char msg[320];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=listening on %s:%u", address, port);
    return tfs_notify(msg);
}

int tfs_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    return tfs_notify(msg);
}

int tfs_notify_stopping(void)
{
    return tfs_notify("STOPPING=1\nSTATUS=stopping");
}
