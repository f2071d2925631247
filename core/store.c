/* core/store.c — the state store over libpq; see store.h. */
#include "store.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pg.h"

struct tfs_store {
    PGconn *conn;
    char *conninfo;
    int temp_ready; /* the temp tables of this connection exist */
    tfs_buf buf;
};

/* Versioned migrations, applied in order, each once. Append only: a released migration is
 * never edited, a change is a new one. */
static const char *const migrations[] = {
    /* 1: runs, cursors, sync map, failed records */
    "CREATE TABLE tfsync.runs ("
    "  run_id bigserial PRIMARY KEY,"
    "  pair text NOT NULL,"
    "  mode text NOT NULL CHECK (mode IN ('full', 'incremental')),"
    "  state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),"
    "  actor text NOT NULL,"
    "  counts jsonb NOT NULL DEFAULT '{}',"
    "  error text,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  started_at timestamptz,"
    "  finished_at timestamptz,"
    "  updated_at timestamptz NOT NULL DEFAULT now());"
    /* One active run per pair, for every daemon sharing this store. */
    "CREATE UNIQUE INDEX runs_one_active_per_pair ON tfsync.runs (pair)"
    "  WHERE state IN ('queued', 'running');"
    "CREATE INDEX runs_pair_created ON tfsync.runs (pair, run_id DESC);"
    "CREATE TABLE tfsync.cursors ("
    "  pair text NOT NULL,"
    "  entity text NOT NULL,"
    "  kind text NOT NULL CHECK (kind IN ('full', 'changes')),"
    "  cursor bytea,"
    "  done boolean NOT NULL DEFAULT false,"
    "  run_id bigint,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (pair, entity, kind));"
    "CREATE TABLE tfsync.sync_map ("
    "  pair text NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  source_hash text NOT NULL,"
    "  target_hash text NOT NULL,"
    "  target_keys jsonb NOT NULL,"
    "  target_record jsonb NOT NULL,"
    "  generation bigint NOT NULL DEFAULT 0,"
    "  run_id bigint NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (pair, entity, source_key));"
    "CREATE TABLE tfsync.failed_records ("
    "  id bigserial PRIMARY KEY,"
    "  pair text NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  run_id bigint NOT NULL,"
    "  stage text NOT NULL CHECK (stage IN ('read', 'transform', 'validate', 'write')),"
    "  reasons jsonb NOT NULL,"
    "  record jsonb,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  resolved_at timestamptz);"
    "CREATE INDEX failed_records_pair_run ON tfsync.failed_records (pair, run_id);",
    /* 2: change data checkpoints taken when a full run starts, and the audit trail */
    "ALTER TABLE tfsync.cursors ADD COLUMN pending bytea;"
    "CREATE TABLE tfsync.audit ("
    "  id bigserial PRIMARY KEY,"
    "  pair text NOT NULL,"
    "  run_id bigint NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  op text NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'deactivate')),"
    /* json, not jsonb: stored as written, which is cheaper for the million entries of a
     * first full run; it is read back as it was written. */
    "  changes json NOT NULL,"
    "  actor text NOT NULL,"
    "  at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX audit_pair_key ON tfsync.audit (pair, entity, source_key, id);"
    "CREATE INDEX audit_run ON tfsync.audit (run_id, id);",
};

int tfs_store_open(const char *conninfo, tfs_store **out, tfs_error *err)
{
    *out = NULL;
    tfs_store *s = calloc(1, sizeof *s);
    if (!s || !(s->conninfo = strdup(conninfo))) {
        free(s);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    s->conn = PQconnectdb(conninfo);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(s->conn));
        msg[strcspn(msg, "\n")] = '\0';
        tfs_store_close(s);
        tfs_error_set(err, TFS_ETRANSIENT, "could not connect to the state store: %s", msg);
        tfs_error_hint(err, "check state.conninfo in the config and that PostgreSQL runs");
        return TFS_ETRANSIENT;
    }
    tfs_pg_route_notices(s->conn, "store");
    *out = s;
    return 0;
}

void tfs_store_close(tfs_store *s)
{
    if (!s)
        return;
    PQfinish(s->conn);
    free(s->conninfo);
    tfs_buf_free(&s->buf);
    free(s);
}

int tfs_store_ensure(tfs_store *s, tfs_error *err)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    PQreset(s->conn);
    s->temp_ready = 0;
    if (PQstatus(s->conn) != CONNECTION_OK)
        return tfs_error_set(err, TFS_ETRANSIENT, "could not reconnect to the state store: %s",
                             PQerrorMessage(s->conn));
    return 0;
}

int tfs_store_migrate(tfs_store *s, tfs_error *err)
{
    int rc;
    /* Serialise concurrent start-ups; the lock dies with the transaction. */
    if ((rc = tfs_pg_exec(s->conn, "BEGIN", err)) ||
        (rc = tfs_pg_exec(s->conn, "SELECT pg_advisory_xact_lock(7406551)", err)) ||
        (rc = tfs_pg_exec(s->conn,
                          "CREATE SCHEMA IF NOT EXISTS tfsync;"
                          "CREATE TABLE IF NOT EXISTS tfsync.migrations ("
                          "  version int PRIMARY KEY,"
                          "  applied_at timestamptz NOT NULL DEFAULT now())",
                          err)))
        goto fail;
    PGresult *r = PQexec(s->conn, "SELECT coalesce(max(version), 0) FROM tfsync.migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tfs_pg_fail(s->conn, r, err, "read the state store's migrations");
        goto fail;
    }
    int have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    int want = (int)(sizeof migrations / sizeof migrations[0]);
    if (have > want) {
        rc = tfs_error_set(err, TFS_EPERMANENT,
                           "the state store is at migration %d, newer than this daemon's %d",
                           have, want);
        tfs_error_hint(err, "run the newer tfsyncd, or restore a state store of this version");
        goto fail;
    }
    for (int v = have + 1; v <= want; v++) {
        char ins[128];
        snprintf(ins, sizeof ins, "INSERT INTO tfsync.migrations (version) VALUES (%d)", v);
        if ((rc = tfs_pg_exec(s->conn, migrations[v - 1], err)) ||
            (rc = tfs_pg_exec(s->conn, ins, err))) {
            tfs_error_prefix(err, "migration %d", v);
            goto fail;
        }
        tfs_log_info("store", "applied state store migration %d", v);
    }
    return tfs_pg_exec(s->conn, "COMMIT", err);
fail:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

int tfs_store_run_create(tfs_store *s, const char *pair, const char *mode, const char *actor,
                         int64_t *run_id, tfs_error *err)
{
    const char *params[] = {pair, mode, actor};
    /* The unique index refuses a second active run of the pair. The run holding it may end
     * between our INSERT and the SELECT that names it; then the INSERT is tried again. */
    for (int attempt = 0; attempt < 5; attempt++) {
        PGresult *r = PQexecParams(s->conn,
                                   "INSERT INTO tfsync.runs (pair, mode, state, actor)"
                                   " VALUES ($1, $2, 'queued', $3) RETURNING run_id",
                                   3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            *run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            return 0;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!state || strcmp(state, "23505") != 0)
            return tfs_pg_fail(s->conn, r, err, "create a run");
        PQclear(r);
        r = PQexecParams(s->conn,
                         "SELECT run_id FROM tfsync.runs WHERE pair = $1"
                         " AND state IN ('queued', 'running')",
                         1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return tfs_pg_fail(s->conn, r, err, "find the running run");
        *run_id = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        PQclear(r);
        if (*run_id)
            return tfs_error_set(err, TFS_ECONFLICT,
                                 "pair \"%s\" is already running as run %" PRId64, pair,
                                 *run_id);
    }
    return tfs_error_set(err, TFS_ETRANSIENT, "could not create a run of \"%s\": the pair "
                         "kept changing hands", pair);
}

int tfs_store_ping(tfs_store *s, tfs_error *err)
{
    return tfs_pg_exec(s->conn, "SELECT 1", err);
}

int tfs_store_run_set_state(tfs_store *s, int64_t run_id, const char *state,
                            const char *error_text, const json_t *counts, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    char *cj = counts ? json_dumps(counts, JSON_COMPACT) : NULL;
    const char *params[] = {id, state, error_text, cj};
    PGresult *r = PQexecParams(
        s->conn,
        "UPDATE tfsync.runs SET state = $2, error = coalesce($3, error),"
        " counts = coalesce($4::jsonb, counts), updated_at = now(),"
        " started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now())"
        "              ELSE started_at END,"
        " finished_at = CASE WHEN $2 IN ('succeeded', 'failed') THEN now() END"
        " WHERE run_id = $1",
        4, NULL, params, NULL, NULL, 0);
    free(cj);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_pg_fail(s->conn, r, err, "update a run");
    PQclear(r);
    return 0;
}

/* The run columns as JSON, built in SQL so the server formats timestamps once. */
#define RUN_JSON                                                                                \
    "json_build_object('run_id', run_id, 'pair', pair, 'mode', mode, 'state', state,"           \
    " 'actor', actor, 'counts', counts, 'error', error, 'created_at', created_at,"             \
    " 'started_at', started_at, 'finished_at', finished_at, 'updated_at', updated_at,"         \
    " 'elapsed_ms', (extract(epoch FROM coalesce(finished_at, now()) -"                       \
    " coalesce(started_at, now())) * 1000)::int8)"

static int json_query(tfs_store *s, const char *sql, int n, const char *const *params,
                      json_t **out, const char *what, tfs_error *err)
{
    *out = NULL;
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_pg_fail(s->conn, r, err, what);
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return TFS_ENOTFOUND;
    }
    json_error_t je;
    *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &je);
    PQclear(r);
    if (!*out)
        return tfs_error_set(err, TFS_EPERMANENT, "could not %s: bad JSON from the store: %s",
                             what, je.text);
    return 0;
}

int tfs_store_run_json(tfs_store *s, int64_t run_id, json_t **out, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    int rc = json_query(s, "SELECT " RUN_JSON " FROM tfsync.runs WHERE run_id = $1", 1, params,
                        out, "read a run", err);
    if (rc == TFS_ENOTFOUND)
        tfs_error_set(err, rc, "no run %" PRId64, run_id);
    return rc;
}

int tfs_store_last_runs_json(tfs_store *s, json_t **out, tfs_error *err)
{
    int rc = json_query(s,
                        "SELECT coalesce(json_object_agg(pair, j), '{}') FROM ("
                        " SELECT DISTINCT ON (pair) pair, " RUN_JSON " AS j"
                        " FROM tfsync.runs ORDER BY pair, run_id DESC) t",
                        0, NULL, out, "read the last runs", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_unfinished_runs(tfs_store *s, json_t **out, tfs_error *err)
{
    int rc = json_query(s,
                        "SELECT coalesce(json_agg(json_build_object('run_id', run_id, 'pair',"
                        " pair, 'mode', mode, 'actor', actor) ORDER BY run_id), '[]')"
                        " FROM tfsync.runs WHERE state IN ('queued', 'running')",
                        0, NULL, out, "read unfinished runs", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_array()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_cursor_get(tfs_store *s, const char *pair, const char *entity, const char *kind,
                         int64_t *run_id, int *done, unsigned char **cursor, size_t *len,
                         tfs_error *err)
{
    const char *params[] = {pair, entity, kind};
    *cursor = NULL;
    *len = 0;
    *run_id = 0;
    *done = 0;
    /* Binary result: the cursor is bytes the plugin owns the meaning of. */
    PGresult *r = PQexecParams(s->conn,
                               "SELECT cursor, coalesce(run_id, 0)::int8, done FROM"
                               " tfsync.cursors WHERE pair = $1 AND entity = $2 AND kind = $3",
                               3, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_pg_fail(s->conn, r, err, "read a cursor");
    if (PQntuples(r) == 1) {
        if (!PQgetisnull(r, 0, 0)) {
            *len = (size_t)PQgetlength(r, 0, 0);
            *cursor = malloc(*len ? *len : 1);
            if (!*cursor) {
                PQclear(r);
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            }
            memcpy(*cursor, PQgetvalue(r, 0, 0), *len);
        }
        const unsigned char *b = (const unsigned char *)PQgetvalue(r, 0, 1);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | b[i];
        *run_id = (int64_t)v;
        *done = PQgetvalue(r, 0, 2)[0] != 0;
    }
    PQclear(r);
    return 0;
}

int tfs_store_cursors_json(tfs_store *s, const char *pair, json_t **out, tfs_error *err)
{
    const char *params[] = {pair};
    int rc = json_query(s,
                        "SELECT coalesce(json_object_agg(entity, k), '{}') FROM ("
                        " SELECT entity, json_object_agg(kind, json_build_object("
                        "  'cursor', encode(cursor, 'escape'), 'done', done, 'run_id', run_id,"
                        "  'updated_at', updated_at)) AS k"
                        " FROM tfsync.cursors WHERE pair = $1 GROUP BY entity) t",
                        1, params, out, "read cursors", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

/* The keys as a PostgreSQL text array literal, in s->buf. */
static int keys_literal(tfs_store *s, const char *const *keys, size_t n, tfs_error *err)
{
    tfs_buf *b = &s->buf;
    tfs_buf_reset(b);
    tfs_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            tfs_buf_putc(b, ',');
        tfs_pg_array_elem(b, keys[i]);
    }
    tfs_buf_putc(b, '}');
    return b->oom ? tfs_error_set(err, TFS_ENOMEM, "out of memory") : 0;
}

/* One sync map column (target_hash or target_record) of each key, malloc'd, NULL where the
 * key has no row. Ordinality gives back the position, so duplicates and order need no
 * lookup table. The LATERAL ... LIMIT 1 keeps it one index probe per key: as a plain join,
 * a map that grew since it was last analysed (a first full run) is hashed whole per batch. */
static int syncmap_column(tfs_store *s, const char *pair, const char *entity,
                          const char *const *keys, size_t n, int record, char **out,
                          tfs_error *err)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0)
        return 0;
    int rc = keys_literal(s, keys, n, err);
    if (rc)
        return rc;
    const char *params[] = {pair, entity, tfs_buf_str(&s->buf)};
    PGresult *r = PQexecParams(
        s->conn,
        record ? "SELECT k.i, m.v FROM unnest($3::text[]) WITH ORDINALITY AS k(key, i)"
                 " CROSS JOIN LATERAL (SELECT target_record AS v FROM tfsync.sync_map"
                 " WHERE pair = $1 AND entity = $2 AND source_key = k.key LIMIT 1) m"
               : "SELECT k.i, m.v FROM unnest($3::text[]) WITH ORDINALITY AS k(key, i)"
                 " CROSS JOIN LATERAL (SELECT target_hash AS v FROM tfsync.sync_map"
                 " WHERE pair = $1 AND entity = $2 AND source_key = k.key LIMIT 1) m",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_pg_fail(s->conn, r, err, "read the sync map");
    for (int row = 0; row < PQntuples(r); row++) {
        long i = strtol(PQgetvalue(r, row, 0), NULL, 10) - 1;
        if (i >= 0 && (size_t)i < n && !out[i])
            out[i] = strdup(PQgetvalue(r, row, 1));
    }
    PQclear(r);
    return 0;
}

int tfs_store_syncmap_records(tfs_store *s, const char *pair, const char *entity,
                              const char *const *keys, size_t n, char **target_records,
                              tfs_error *err)
{
    return syncmap_column(s, pair, entity, keys, n, 1, target_records, err);
}

int tfs_store_full_start(tfs_store *s, const char *pair, const char *entity, int64_t run_id,
                         const void *pending, size_t pending_len, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *vals[] = {pair, entity, id, pending};
    int lens[] = {0, 0, 0, (int)pending_len};
    int fmts[] = {0, 0, 0, 1};
    PGresult *r = PQexecParams(s->conn,
                               "INSERT INTO tfsync.cursors (pair, entity, kind, cursor, done,"
                               " run_id, pending) VALUES ($1, $2, 'full', NULL, false, $3, $4)"
                               " ON CONFLICT (pair, entity, kind) DO UPDATE SET cursor = NULL,"
                               " done = false, run_id = excluded.run_id,"
                               " pending = excluded.pending, updated_at = now()",
                               4, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_pg_fail(s->conn, r, err, "start a full run's cursor");
    PQclear(r);
    return 0;
}

int tfs_store_sweep_keys(tfs_store *s, const char *pair, const char *entity, int64_t generation,
                         const char *after, size_t limit, char ***keys, size_t *n,
                         tfs_error *err)
{
    char gen[32], lim[32];
    snprintf(gen, sizeof gen, "%" PRId64, generation);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {pair, entity, gen, after, lim};
    *keys = NULL;
    *n = 0;
    PGresult *r = PQexecParams(s->conn,
                               "SELECT source_key FROM tfsync.sync_map WHERE pair = $1"
                               " AND entity = $2 AND generation < $3::int8"
                               " AND ($4::text IS NULL OR source_key > $4)"
                               " ORDER BY source_key LIMIT $5::int8",
                               5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_pg_fail(s->conn, r, err, "find keys that vanished from the source");
    int rows = PQntuples(r);
    *keys = calloc((size_t)rows + 1, sizeof **keys);
    if (!*keys) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++)
        (*keys)[i] = strdup(PQgetvalue(r, i, 0));
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

int tfs_store_changes_cursors(tfs_store *s, const char *const *pairs, size_t n_pairs,
                              json_t **out, tfs_error *err)
{
    int rc = keys_literal(s, pairs, n_pairs, err);
    if (rc)
        return rc;
    const char *params[] = {tfs_buf_str(&s->buf)};
    rc = json_query(s,
                    /* A full run still reading holds its start cursor in pending: the
                     * changes after it are its first incremental run's to read. */
                    "SELECT coalesce(json_agg(encode(c, 'base64')), '[]') FROM ("
                    " SELECT cursor AS c FROM tfsync.cursors WHERE kind = 'changes'"
                    " AND cursor IS NOT NULL AND pair = ANY($1::text[])"
                    " UNION ALL SELECT pending FROM tfsync.cursors WHERE kind = 'full'"
                    " AND NOT done AND pending IS NOT NULL AND pair = ANY($1::text[])) x",
                    1, params, out, "read change checkpoints", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_array()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_audit_json(tfs_store *s, const tfs_audit_filter *f, json_t **out, tfs_error *err)
{
    char run[32], after[32], lim[32];
    snprintf(run, sizeof run, "%" PRId64, f->run_id);
    snprintf(after, sizeof after, "%" PRId64, f->after_id);
    snprintf(lim, sizeof lim, "%ld", f->limit);
    const char *params[] = {f->pair, f->entity, f->key, run, f->since, f->until, after, lim};
    int rc = json_query(s,
                        "SELECT json_build_object('entries', coalesce(json_agg(json_build_object("
                        " 'id', id, 'pair', pair, 'run_id', run_id, 'entity', entity, 'key',"
                        " source_key, 'op', op, 'changes', changes, 'actor', actor, 'at', at)"
                        " ORDER BY id), '[]'), 'next_after_id', CASE WHEN count(*) = $8::int8"
                        " THEN max(id) END) FROM (SELECT * FROM tfsync.audit"
                        " WHERE ($1::text IS NULL OR pair = $1)"
                        " AND ($2::text IS NULL OR entity = $2)"
                        " AND ($3::text IS NULL OR source_key = $3)"
                        " AND ($4::int8 = 0 OR run_id = $4::int8)"
                        " AND ($5::timestamptz IS NULL OR at >= $5::timestamptz)"
                        " AND ($6::timestamptz IS NULL OR at < $6::timestamptz)"
                        " AND id > $7::int8 ORDER BY id LIMIT $8::int8) a",
                        8, params, out, "read the audit trail", err);
    return rc;
}

int tfs_store_syncmap_hashes(tfs_store *s, const char *pair, const char *entity,
                             const char *const *keys, size_t n, char **hashes, tfs_error *err)
{
    return syncmap_column(s, pair, entity, keys, n, 0, hashes, err);
}

static int prepare_temp(tfs_store *s, tfs_error *err)
{
    if (s->temp_ready)
        return 0;
    int rc = tfs_pg_exec(s->conn,
                         "CREATE TEMP TABLE IF NOT EXISTS tmp_sync_map ("
                         " source_key text, source_hash text, target_hash text,"
                         " target_keys jsonb, target_record jsonb) ON COMMIT DELETE ROWS",
                         err);
    if (rc == 0)
        s->temp_ready = 1;
    return rc;
}

/* Sends s->buf (COPY text rows) through `sql`, a COPY ... FROM STDIN. */
static int copy_in(tfs_store *s, const char *sql, const char *what, tfs_error *err)
{
    tfs_buf *b = &s->buf;
    if (b->oom)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    PGresult *r = PQexec(s->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        return tfs_pg_fail(s->conn, r, err, what);
    PQclear(r);
    if (PQputCopyData(s->conn, b->data ? b->data : "", (int)b->len) != 1 ||
        PQputCopyEnd(s->conn, NULL) != 1)
        return tfs_pg_fail(s->conn, NULL, err, what);
    r = PQgetResult(s->conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        PGresult *rest;
        while ((rest = PQgetResult(s->conn)))
            PQclear(rest);
        return tfs_pg_fail(s->conn, r, err, what);
    }
    PQclear(r);
    while ((r = PQgetResult(s->conn)))
        PQclear(r);
    return 0;
}

/* Streams rows (new ones or not) through a COPY; 1 when rows went, 0 when none did. */
static int copy_rows(tfs_store *s, const tfs_batch_commit *bc, int new_rows, const char *copy_sql,
                     const char *run_id, tfs_error *err)
{
    tfs_buf *b = &s->buf;
    tfs_buf_reset(b);
    size_t n = 0;
    for (size_t i = 0; i < bc->n_rows; i++) {
        const tfs_syncmap_row *row = &bc->rows[i];
        if (!row->is_new != !new_rows)
            continue;
        n++;
        if (new_rows) {
            tfs_pg_copy_escape(b, bc->pair, strlen(bc->pair));
            tfs_buf_putc(b, '\t');
            tfs_pg_copy_escape(b, bc->entity, strlen(bc->entity));
            tfs_buf_putc(b, '\t');
        }
        tfs_pg_copy_escape(b, row->source_key, strlen(row->source_key));
        tfs_buf_putc(b, '\t');
        tfs_buf_puts(b, row->source_hash);
        tfs_buf_putc(b, '\t');
        tfs_buf_puts(b, row->target_hash);
        tfs_buf_putc(b, '\t');
        tfs_pg_copy_escape(b, row->target_keys, strlen(row->target_keys));
        tfs_buf_putc(b, '\t');
        tfs_pg_copy_escape(b, row->target_record, strlen(row->target_record));
        if (new_rows) {
            tfs_buf_putc(b, '\t');
            tfs_buf_puts(b, run_id);
            tfs_buf_putc(b, '\t');
            tfs_buf_puts(b, run_id); /* generation: the run that saw it */
        }
        tfs_buf_putc(b, '\n');
    }
    if (n == 0)
        return 0;
    int rc = copy_in(s, copy_sql, "copy sync map rows", err);
    return rc ? rc : 1;
}

/* New keys go straight into the sync map with COPY; known ones through a temporary table
 * and one upsert. all_upserts treats every row as known (the retry after a key turned out
 * to exist after all). */
static int write_sync_map(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                          int all_upserts, tfs_error *err)
{
    int rc = 0;
    if (!all_upserts) {
        rc = copy_rows(s, bc, 1,
                       "COPY tfsync.sync_map (pair, entity, source_key, source_hash, target_hash,"
                       " target_keys, target_record, run_id, generation) FROM STDIN",
                       id, err);
        if (rc < 0)
            return rc;
    }
    tfs_batch_commit known = *bc;
    tfs_syncmap_row *copy = NULL;
    if (all_upserts) {
        copy = malloc((bc->n_rows ? bc->n_rows : 1) * sizeof *copy);
        if (!copy)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        for (size_t i = 0; i < bc->n_rows; i++) {
            copy[i] = bc->rows[i];
            copy[i].is_new = 0;
        }
        known.rows = copy;
    }
    rc = copy_rows(s, &known, 0, "COPY tmp_sync_map FROM STDIN", id, err);
    free(copy);
    if (rc <= 0)
        return rc;
    const char *params[] = {bc->pair, bc->entity, id};
    PGresult *r = PQexecParams(
        s->conn,
        "INSERT INTO tfsync.sync_map AS m (pair, entity, source_key, source_hash,"
        " target_hash, target_keys, target_record, run_id, generation)"
        " SELECT $1, $2, source_key, source_hash, target_hash, target_keys, target_record,"
        " $3::int8, $3::int8 FROM tmp_sync_map"
        " ON CONFLICT (pair, entity, source_key) DO UPDATE SET"
        " source_hash = excluded.source_hash, target_hash = excluded.target_hash,"
        " target_keys = excluded.target_keys, target_record = excluded.target_record,"
        " run_id = excluded.run_id, generation = excluded.generation, updated_at = now()",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_pg_fail(s->conn, r, err, "update the sync map");
    PQclear(r);
    return 0;
}

static int commit_once(tfs_store *s, const tfs_batch_commit *bc, int all_upserts,
                       tfs_error *err);

static int copy_audit(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                      tfs_error *err)
{
    tfs_buf *b = &s->buf;
    tfs_buf_reset(b);
    const char *actor = bc->actor ? bc->actor : "?";
    for (size_t i = 0; i < bc->n_audit; i++) {
        const tfs_audit_row *a = &bc->audit[i];
        const char *fields[] = {bc->pair, run_id, bc->entity, a->source_key, a->op, a->changes,
                                actor};
        for (int f = 0; f < 7; f++) {
            if (f)
                tfs_buf_putc(b, '\t');
            tfs_pg_copy_escape(b, fields[f], strlen(fields[f]));
        }
        tfs_buf_putc(b, '\n');
    }
    return copy_in(s, "COPY tfsync.audit (pair, run_id, entity, source_key, op, changes, actor)"
                      " FROM STDIN", "write the audit trail", err);
}

int tfs_store_batch_commit(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err)
{
    int rc = commit_once(s, bc, 0, err);
    if (rc == TFS_EPERMANENT && strstr(err->message, "sync_map_pkey")) {
        /* A key taken for new already had a row (another writer of the pair's map): redo
         * the batch with upserts only. */
        rc = commit_once(s, bc, 1, err);
    }
    return rc;
}

static int commit_once(tfs_store *s, const tfs_batch_commit *bc, int all_upserts,
                       tfs_error *err)
{
    char id[32];
    int rc;
    snprintf(id, sizeof id, "%" PRId64, bc->run_id);
    if ((rc = prepare_temp(s, err)) || (rc = tfs_pg_exec(s->conn, "BEGIN", err)))
        return rc;
    if (bc->n_rows && (rc = write_sync_map(s, bc, id, all_upserts, err)))
        goto fail;
    for (size_t i = 0; i < bc->n_failed; i++) {
        const tfs_failed_row *f = &bc->failed[i];
        char *reasons = json_dumps(f->reasons, JSON_COMPACT);
        char *rec = f->record ? json_dumps(f->record, JSON_COMPACT) : NULL;
        const char *params[] = {bc->pair, bc->entity, f->source_key, id, f->stage, reasons, rec};
        PGresult *r = PQexecParams(s->conn,
                                   "INSERT INTO tfsync.failed_records (pair, entity, source_key,"
                                   " run_id, stage, reasons, record)"
                                   " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                   7, NULL, params, NULL, NULL, 0);
        free(reasons);
        free(rec);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = tfs_pg_fail(s->conn, r, err, "store a failed record");
            goto fail;
        }
        PQclear(r);
    }
    if (bc->n_mark || bc->n_forget) {
        const char *const *keys[] = {bc->mark_keys, bc->forget_keys};
        size_t counts[] = {bc->n_mark, bc->n_forget};
        static const char *const sql[] = {
            "UPDATE tfsync.sync_map SET generation = $4::int8 WHERE pair = $1 AND entity = $2"
            " AND source_key = ANY($3::text[])",
            "DELETE FROM tfsync.sync_map WHERE pair = $1 AND entity = $2"
            " AND source_key = ANY($3::text[])"};
        for (int k = 0; k < 2; k++) {
            if (!counts[k])
                continue;
            if ((rc = keys_literal(s, (const char *const *)keys[k], counts[k], err)))
                goto fail;
            const char *params[] = {bc->pair, bc->entity, tfs_buf_str(&s->buf), id};
            PGresult *r = PQexecParams(s->conn, sql[k], k == 0 ? 4 : 3, NULL, params, NULL,
                                       NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                rc = tfs_pg_fail(s->conn, r, err, "update the sync map");
                goto fail;
            }
            PQclear(r);
        }
    }
    if (bc->n_audit && (rc = copy_audit(s, bc, id, err)))
        goto fail;
    if (bc->cursor_kind) {
        const char *vals[] = {bc->pair, bc->entity, bc->cursor_kind, (const char *)bc->cursor,
                              bc->cursor_done ? "t" : "f", id};
        int lens[] = {0, 0, 0, (int)bc->cursor_len, 0, 0};
        int fmts[] = {0, 0, 0, 1, 0, 0};
        if (!bc->cursor)
            vals[3] = NULL;
        PGresult *r = PQexecParams(s->conn,
                                   "INSERT INTO tfsync.cursors (pair, entity, kind, cursor, done,"
                                   " run_id) VALUES ($1, $2, $3, $4, $5, $6)"
                                   " ON CONFLICT (pair, entity, kind) DO UPDATE SET"
                                   " cursor = excluded.cursor, done = excluded.done,"
                                   " run_id = excluded.run_id, updated_at = now()",
                                   6, NULL, vals, lens, fmts, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = tfs_pg_fail(s->conn, r, err, "save a cursor");
            goto fail;
        }
        PQclear(r);
        if (bc->cursor_done && strcmp(bc->cursor_kind, "full") == 0) {
            /* Everything is read: what changed since the run began is what the next
             * incremental run must read. */
            const char *params[] = {bc->pair, bc->entity, id};
            r = PQexecParams(s->conn,
                             "INSERT INTO tfsync.cursors (pair, entity, kind, cursor, run_id)"
                             " SELECT pair, entity, 'changes', pending, $3::int8"
                             " FROM tfsync.cursors WHERE pair = $1 AND entity = $2"
                             " AND kind = 'full' AND pending IS NOT NULL"
                             " ON CONFLICT (pair, entity, kind) DO UPDATE SET"
                             " cursor = excluded.cursor, run_id = excluded.run_id,"
                             " updated_at = now()",
                             3, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                rc = tfs_pg_fail(s->conn, r, err, "save the change checkpoint");
                goto fail;
            }
            PQclear(r);
        }
    }
    if (bc->counts) {
        char *cj = json_dumps(bc->counts, JSON_COMPACT);
        const char *params[] = {id, cj};
        PGresult *r = PQexecParams(s->conn,
                                   "UPDATE tfsync.runs SET counts = $2::jsonb, updated_at = now()"
                                   " WHERE run_id = $1",
                                   2, NULL, params, NULL, NULL, 0);
        free(cj);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = tfs_pg_fail(s->conn, r, err, "update run counts");
            goto fail;
        }
        PQclear(r);
    }
    return tfs_pg_exec(s->conn, "COMMIT", err);
fail:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

int tfs_store_failed_json(tfs_store *s, const char *pair, int64_t run_id, long limit,
                          json_t **out, tfs_error *err)
{
    char id[32], lim[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *params[] = {pair, id, lim};
    int rc = json_query(s,
                        "SELECT coalesce(json_agg(json_build_object('id', id, 'pair', pair,"
                        " 'entity', entity, 'source_key', source_key, 'run_id', run_id,"
                        " 'stage', stage, 'reasons', reasons, 'record', record,"
                        " 'created_at', created_at) ORDER BY id DESC), '[]') FROM ("
                        " SELECT * FROM tfsync.failed_records"
                        " WHERE ($1::text IS NULL OR pair = $1)"
                        " AND ($2::int8 = 0 OR run_id = $2::int8)"
                        " ORDER BY id DESC LIMIT $3::int8) f",
                        3, params, out, "read failed records", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_array()) ? 0 : TFS_ENOMEM) : rc;
}
