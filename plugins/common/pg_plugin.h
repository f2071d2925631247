/* plugins/common/pg_plugin.h — libpq helpers shared by the PostgreSQL adapters (pacs,
 * cama). Part of each plugin's own sources: nothing here comes from the core. */
#ifndef TFS_PG_PLUGIN_H
#define TFS_PG_PLUGIN_H

#include <libpq-fe.h>
#include <stddef.h>

#include "tfsync_plugin.h"

/* TFS_SDK_ETRANSIENT or TFS_SDK_EPERMANENT, by the connection's state and the result's
 * SQLSTATE, after the one table in pg_sqlstate.h. res may be NULL (no result: transient). */
int pgp_classify(PGconn *conn, const PGresult *res);
/* m on one line (runs of white space made one space, none at the ends) in out. */
const char *pgp_oneline(const char *m, char *out, size_t cap);
/* The error text of a result (or of the connection) on one line, without the "ERROR:"
 * prefix, in out. */
const char *pgp_message(PGconn *conn, const PGresult *res, char *out, size_t cap);
/* Makes sure conn is connected, resetting it once when it is not. Returns 1 when it had
 * to reconnect (the caller's session state is gone), 0 when it was up, or
 * TFS_SDK_ETRANSIENT with err set ("could not connect to the <system> database"). */
int pgp_reconnect(PGconn *conn, const tfs_sdk_host *host, const char *system,
                  tfs_sdk_error *err);
/* The timeouts every adapter connection has: connect_timeout (whole seconds, libpq's
 * unit; what a server that accepts and never answers costs) and statement_timeout
 * (milliseconds, PostgreSQL's unit; 0 = none), as libpq parameters. */
typedef struct pgp_timeouts {
    char connect[16]; /* libpq connect_timeout */
    char options[48]; /* libpq options: "-c statement_timeout=N", or "" */
} pgp_timeouts;

/* Checks the two settings' text (NULL: the caller's declared default was not applied, an
 * error) into *out. 0, or -1 with the reason in why. */
int pgp_timeouts_parse(const char *connect_timeout, const char *statement_timeout,
                       pgp_timeouts *out, char *why, size_t cap);
/* PQconnectdbParams of conninfo (a string or URI) with the fallback application name and
 * the timeouts, which win over the same keys in conninfo. NULL only when out of memory;
 * PQreset keeps the timeouts. */
PGconn *pgp_connect(const char *conninfo, const char *app, const pgp_timeouts *t);
/* A libpq notice processor: arg is the plugin's host table; notices go to its log. */
void pgp_notice(void *arg, const char *message);

/* Lazy open (TFS_SDK_CAP_LAZY_OPEN): cb_open keeps what a connection needs and the first
 * read, fetch, write, health or changes call connects. *conn NULL: connects now (notices
 * to the host's log), else pgp_reconnect. Returns 1 when the session is new (the caller
 * sets it up), 0 when it was up, or TFS_SDK_ETRANSIENT with err set ("could not connect to
 * the <system> database: ..."; an out-of-memory too). A failed first connection is kept
 * in *conn, so the next call resets it. */
int pgp_ensure(PGconn **conn, const char *conninfo, const char *app, const pgp_timeouts *t,
               const tfs_sdk_host *host, const char *system, tfs_sdk_error *err);

/* For a cb_check: the settings every adapter connection has, checked without connecting.
 * config[conninfo] must parse as a libpq connection string or URI (PQconninfoParse),
 * config[connect_timeout] and config[statement_timeout] must be in range. A failure sets
 * err naming systems.<system>.settings.<key> (the system from host->config_system) and
 * returns TFS_SDK_EPERMANENT; 0 otherwise. */
int pgp_check_settings(const tfs_sdk_host *host, const char *const *config, size_t conninfo,
                       size_t connect_timeout, size_t statement_timeout, tfs_sdk_error *err);
/* "systems.<system>.settings" of a config array being checked or opened, in out ("settings"
 * when the host cannot tell the system). */
const char *pgp_settings_path(const tfs_sdk_host *host, const char *const *config, char *out,
                              size_t cap);
/* A whole number in [lo, hi], or -1. */
long long pgp_number_in(const char *s, long long lo, long long hi);

#endif
