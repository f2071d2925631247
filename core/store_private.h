/* core/store_private.h — the state store's own view of its connection, shared by the
 * store's files only (store.c, store_batch.c, store_views.c); everywhere else tfs_store is
 * an incomplete type.
 */
#ifndef TFS_STORE_PRIVATE_H
#define TFS_STORE_PRIVATE_H

#include <libpq-fe.h>

#include "buf.h"
#include "store.h"

/* What the server said of the last failure: decisions are taken on these codes, never on
 * the message's text. */
typedef struct tfs_store_diag {
    char sqlstate[6];    /* PG_DIAG_SQLSTATE, "" when none */
    char constraint[64]; /* PG_DIAG_CONSTRAINT_NAME, "" when none */
} tfs_store_diag;

struct tfs_store {
    PGconn *conn;
    char *conninfo;
    int temp_ready; /* the temp tables of this connection exist */
    tfs_buf buf;
    tfs_store_diag diag; /* of the last failure through tfs_store_fail */
};

/* tfs_pg_fail that also keeps res's SQLSTATE and constraint name in s->diag. */
int tfs_store_fail(tfs_store *s, PGresult *res, tfs_error *err, const char *what);
/* The keys as a PostgreSQL text array literal, in s->buf. */
int tfs_store_keys_literal(tfs_store *s, const char *const *keys, size_t n, tfs_error *err);
/* Appends the started counts as the run's counts, a JSON object, to b; 0 or -1. */
int tfs_store_counts_json(tfs_buf *b, const tfs_store_counts *counts, size_t n);

/* Tells the run listener (tfs_store_set_run_listener) that run_id changed; called by the
 * store's files after each committed change of a run. */
void tfs_store_run_changed(tfs_store *s, int64_t run_id);

struct tfs_batch_commit;
/* In a batch's transaction (store_conflicts.c): its parked conflicts (with their audit
 * entries), drift rows, settled keys and a resolve job's conflict. */
int tfs_store_conflicts_commit(tfs_store *s, const struct tfs_batch_commit *bc,
                               const char *run_id, tfs_error *err);

#endif
