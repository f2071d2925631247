/* plugins/common/pg_plugin.c — libpq helpers our PostgreSQL adapters share, compiled into
 * each of them (a plugin links nothing of the core): how a failure is classified, its
 * message on one line, notices routed to the host's log, the connection made by the first
 * call rather than by cb_open (lazy open), and the settings checked without connecting. */
#include "pg_plugin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_sqlstate.h"

/* Transient or permanent, from the connection state and the result's SQLSTATE, by the
 * table the core uses too. */
int pgp_classify(PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* A server that crashed (killed, or an immediate shutdown) closes the socket without
     * a FATAL message: libpq answers with an error that has no SQLSTATE while PQstatus
     * still says OK, until it reads the socket again. */
    bool ok = conn && PQstatus(conn) == CONNECTION_OK &&
              (state || (PQconsumeInput(conn) && PQstatus(conn) == CONNECTION_OK));
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

long long pgp_number_in(const char *s, long long lo, long long hi)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || *end || v < lo || v > hi ? -1 : v;
}

int pgp_timeouts_parse(const char *connect_timeout, const char *statement_timeout,
                       pgp_timeouts *out, char *why, size_t cap)
{
    long long c = pgp_number_in(connect_timeout, 1, 3600);
    long long st = pgp_number_in(statement_timeout, 0, 2147483647LL);
    if (c < 0) {
        snprintf(why, cap, "connect_timeout \"%s\" is not a number of seconds from 1 to 3600",
                 connect_timeout ? connect_timeout : "");
        return -1;
    }
    if (st < 0) {
        snprintf(why, cap, "statement_timeout \"%s\" is not a number of milliseconds from 0 "
                 "to 2147483647", statement_timeout ? statement_timeout : "");
        return -1;
    }
    snprintf(out->connect, sizeof out->connect, "%lld", c);
    if (st)
        snprintf(out->options, sizeof out->options, "-c statement_timeout=%lld", st);
    else
        out->options[0] = '\0';
    return 0;
}

PGconn *pgp_connect(const char *conninfo, const char *app, const pgp_timeouts *t)
{
    /* Keys after dbname override what the expanded conninfo says. */
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL, NULL};
    const char *values[] = {conninfo, app, t->connect, NULL, NULL};
    if (t->options[0]) {
        keys[3] = "options";
        values[3] = t->options;
    }
    return PQconnectdbParams(keys, values, 1);
}

int pgp_ensure(PGconn **conn, const char *conninfo, const char *app, const pgp_timeouts *t,
               const tfs_sdk_host *host, const char *system, tfs_sdk_error *err)
{
    char msg[512];
    if (*conn)
        return pgp_reconnect(*conn, host, system, err);
    if (!(*conn = pgp_connect(conninfo, app, t))) {
        host->error_set(err, "could not connect to the %s database: out of memory", system);
        return TFS_SDK_ETRANSIENT;
    }
    PQsetNoticeProcessor(*conn, pgp_notice, (void *)host);
    if (PQstatus(*conn) != CONNECTION_OK) {
        host->error_set(err, "could not connect to the %s database: %s", system,
                        pgp_message(*conn, NULL, msg, sizeof msg));
        return TFS_SDK_ETRANSIENT;
    }
    return 1;
}

const char *pgp_settings_path(const tfs_sdk_host *host, const char *const *config, char *out,
                              size_t cap)
{
    const char *system = TFS_SDK_HOST_HAS(host, config_system) ? host->config_system(config)
                                                               : NULL;
    if (system)
        snprintf(out, cap, "systems.%s.settings", system);
    else
        snprintf(out, cap, "settings");
    return out;
}

int pgp_check_settings(const tfs_sdk_host *host, const char *const *config, size_t conninfo,
                       size_t connect_timeout, size_t statement_timeout, tfs_sdk_error *err)
{
    char path[192], msg[512];
    char *perr = NULL;
    pgp_settings_path(host, config, path, sizeof path);
    const char *ci = config[conninfo];
    if (!ci) {
        host->error_set(err, "%s.conninfo: missing (a libpq connection string is required)",
                        path);
        return TFS_SDK_EPERMANENT;
    }
    /* The text itself is not repeated: it may hold a password. */
    PQconninfoOption *opts = PQconninfoParse(ci, &perr);
    if (!opts) {
        host->error_set(err, "%s.conninfo: not a valid libpq connection string or URI: %s",
                        path, perr ? pgp_oneline(perr, msg, sizeof msg) : "out of memory");
        PQfreemem(perr);
        return TFS_SDK_EPERMANENT;
    }
    PQconninfoFree(opts);
    const char *c = config[connect_timeout], *st = config[statement_timeout];
    if (pgp_number_in(c, 1, 3600) < 0) {
        host->error_set(err, "%s.connect_timeout: \"%s\" is not a number of seconds from 1 "
                        "to 3600", path, c ? c : "");
        return TFS_SDK_EPERMANENT;
    }
    if (pgp_number_in(st, 0, 2147483647LL) < 0) {
        host->error_set(err, "%s.statement_timeout: \"%s\" is not a number of milliseconds "
                        "from 0 to 2147483647", path, st ? st : "");
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}
