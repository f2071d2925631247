/* core/notify.h — the daemon's state told to its service manager by the sd_notify(3)
 * protocol (systemd's Type=notify): one datagram of "KEY=value" lines to the unix socket
 * named by $NOTIFY_SOCKET. A few lines of our own rather than a libsystemd dependency; when
 * $NOTIFY_SOCKET is not set (not run by systemd) every call does nothing. */
#ifndef TFS_NOTIFY_H
#define TFS_NOTIFY_H

/* Sends state (for example "READY=1\nSTATUS=listening on 127.0.0.1:8080") to
 * $NOTIFY_SOCKET. 0 when sent or when there is no socket to send to; TFS_EIO when the
 * socket is named but the datagram could not be sent (the caller logs it and goes on: the
 * service manager then times the start-up out by itself). Thread-safe. */
int tfs_notify(const char *state);

/* READY=1 with a STATUS line naming where the API listens. */
int tfs_notify_ready(const char *address, unsigned port);

/* RELOADING=1 with MONOTONIC_USEC (the clock systemd checks it against), before a reload;
 * a tfs_notify_ready after it ends the reload, whether the new config was taken or not. */
int tfs_notify_reloading(void);

/* STOPPING=1, when the daemon begins to stop. */
int tfs_notify_stopping(void);

#endif
