/* core/pg.c — shared libpq helpers; see pg.h. */
#include "pg.h"

#include <stdbool.h>
#include <string.h>

#include "../plugins/common/pg_sqlstate.h"

#include "log.h"

/* The table is the adapters' too (plugins/common/pg_sqlstate.h): one classification. */
int tfs_pg_classify(PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* A server that crashed (killed, or an immediate shutdown) closes the socket without
     * a FATAL message: libpq answers with an error that has no SQLSTATE while PQstatus
     * still says OK, until it reads the socket again. */
    bool ok = conn && PQstatus(conn) == CONNECTION_OK &&
              (state || (PQconsumeInput(conn) && PQstatus(conn) == CONNECTION_OK));
    return pgp_failure_transient(ok, res != NULL, state) ? TFS_ETRANSIENT : TFS_EPERMANENT;
}

int tfs_pg_fail(PGconn *conn, PGresult *res, tfs_error *err, const char *what)
{
    int code = tfs_pg_classify(conn, res);
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    char clean[400];
    snprintf(clean, sizeof clean, "%s", msg);
    size_t n = strlen(clean);
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    for (char *c = clean; *c; c++)
        if (*c == '\n')
            *c = ' ';
    tfs_error_set(err, code, "could not %s: %s", what, clean);
    PQclear(res);
    return code;
}

int tfs_pg_exec(PGconn *conn, const char *sql, tfs_error *err)
{
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_pg_fail(conn, r, err, "run a statement on the state store");
    PQclear(r);
    return 0;
}

void tfs_pg_copy_escape(tfs_buf *b, const char *s, size_t len)
{
    if (!s) {
        tfs_buf_append(b, "\\N", 2);
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '\\': rep = "\\\\"; break;
        case '\t': rep = "\\t"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        default: continue;
        }
        tfs_buf_append(b, s + start, i - start);
        tfs_buf_append(b, rep, 2);
        start = i + 1;
    }
    tfs_buf_append(b, s + start, len - start);
}

void tfs_pg_array_elem(tfs_buf *b, const char *s)
{
    tfs_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            tfs_buf_putc(b, '\\');
        tfs_buf_putc(b, *s);
    }
    tfs_buf_putc(b, '"');
}

static void notice(void *arg, const char *message)
{
    size_t n = strlen(message);
    while (n && message[n - 1] == '\n')
        n--;
    tfs_logf(TFS_LOG_INFO, arg, "%.*s", (int)n, message);
}

void tfs_pg_route_notices(PGconn *conn, const char *component)
{
    PQsetNoticeProcessor(conn, notice, (void *)component);
}
