/* core/pg.h — small libpq helpers the core's PostgreSQL code shares: error classification
 * (transient or permanent), COPY text and array literal escaping. */
#ifndef TFS_PG_H
#define TFS_PG_H

#include <libpq-fe.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

/* TFS_ETRANSIENT or TFS_EPERMANENT, by the connection's state and the result's SQLSTATE,
 * after the table the adapters use too (plugins/common/pg_sqlstate.h). res may be NULL. */
int tfs_pg_classify(PGconn *conn, const PGresult *res);
/* Sets err from a failed result ("could not <what>: <server message>") and returns the
 * classified code. Clears res. */
int tfs_pg_fail(PGconn *conn, PGresult *res, tfs_error *err, const char *what);
/* Runs a command that returns no rows; 0 or the classified error. */
int tfs_pg_exec(PGconn *conn, const char *sql, tfs_error *err);
/* Appends s (len bytes) escaped for COPY ... FROM STDIN text format. NULL appends \N. */
void tfs_pg_copy_escape(tfs_buf *b, const char *s, size_t len);
/* Appends s as one element of a PostgreSQL array literal ("..." with \ and " escaped). */
void tfs_pg_array_elem(tfs_buf *b, const char *s);
/* Routes libpq notices on conn to the log under component. */
void tfs_pg_route_notices(PGconn *conn, const char *component);

#endif
