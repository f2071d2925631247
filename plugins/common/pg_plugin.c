/* plugins/common/pg_plugin.c — libpq helpers our PostgreSQL adapters share, compiled into
 * each of them (a plugin links nothing of the core): how a failure is classified, its
 * message on one line, and notices routed to the host's log. */
#include "pg_plugin.h"

#include <stdbool.h>
#include <string.h>

#include "pg_sqlstate.h"

/* Transient or permanent, from the connection state and the result's SQLSTATE, by the
 * table the core uses too. */
int pgp_classify(PGconn *conn, const PGresult *res)
{
    bool ok = conn && PQstatus(conn) == CONNECTION_OK;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return pgp_failure_transient(ok, res != NULL, state) ? TFS_SDK_ETRANSIENT
                                                         : TFS_SDK_EPERMANENT;
}

/* m on one line (runs of white space made one space, none at the ends) in out. */
const char *pgp_oneline(const char *m, char *out, size_t cap)
{
    size_t n = 0;
    int space = 0;
    for (; *m && n + 1 < cap; m++) {
        if (*m == '\n' || *m == '\t' || *m == '\r' || *m == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            out[n++] = ' ';
        space = 0;
        out[n++] = *m;
    }
    out[n] = '\0';
    return out;
}

/* The error text of a result (or of the connection) on one line, without the "ERROR:"
 * prefix, in out. */
const char *pgp_message(PGconn *conn, const PGresult *res, char *out, size_t cap)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m)
        m = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                              : conn ? PQerrorMessage(conn) : NULL;
    return pgp_oneline(m && *m ? m : "unknown error", out, cap);
}

void pgp_notice(void *arg, const char *message)
{
    const tfs_sdk_host *host = arg;
    size_t len = strlen(message);
    while (len && (message[len - 1] == '\n' || message[len - 1] == ' '))
        len--;
    tfs_sdk_log_level level = TFS_SDK_LOG_INFO;
    if (strncmp(message, "WARNING", 7) == 0)
        level = TFS_SDK_LOG_WARN;
    else if (strncmp(message, "DEBUG", 5) == 0 || strncmp(message, "LOG", 3) == 0)
        level = TFS_SDK_LOG_DEBUG;
    host->log(host, level, "%.*s", (int)len, message);
}

int pgp_reconnect(PGconn *conn, const tfs_sdk_host *host, const char *system,
                  tfs_sdk_error *err)
{
    char msg[512];
    if (PQstatus(conn) == CONNECTION_OK)
        return 0;
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
        host->error_set(err, "could not connect to the %s database: %s", system,
                        pgp_message(conn, NULL, msg, sizeof msg));
        return TFS_SDK_ETRANSIENT;
    }
    return 1;
}
