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
/* A libpq notice processor: arg is the plugin's host table; notices go to its log. */
void pgp_notice(void *arg, const char *message);

#endif
