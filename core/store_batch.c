/* core/store_batch.c — the sync map, cursors and a batch's transaction over libpq; see
 * store_batch.h.
 *
 * New sync map rows go in with COPY, known ones through a temporary table and one upsert,
 * audit entries with COPY: a batch costs a fixed number of round trips whatever its size.
 */
#include "store_batch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "store_audit.h"
#include "store_private.h"

/* At most this many bytes per PQputCopyData call: libpq grows its send buffer to the
 * largest call and keeps it for the connection's life, so a small chunk keeps that small
 * (and no length is ever near INT_MAX). */
#define COPY_CHUNK (64u * 1024)

int tfs_store_batch_cursor_get(tfs_store *s, const char *pair, const char *entity,
                               const char *kind, int64_t *run_id, int *done,
                               unsigned char **cursor, size_t *len, tfs_error *err)
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
        return tfs_store_fail(s, r, err, "read a cursor");
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

int tfs_store_batch_full_start(tfs_store *s, const char *pair, const char *entity,
                               int64_t run_id, const void *pending, size_t pending_len,
                               tfs_error *err)
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
        return tfs_store_fail(s, r, err, "start a full run's cursor");
    PQclear(r);
    return 0;
}

/* One sync map column (target_hash or target_record) of each key, NULL where the key has
 * no row; values borrowed from the result (*res, cleared by the caller). Ordinality gives
 * back the position, so duplicates and order need no lookup table. The LATERAL ... LIMIT 1
 * keeps it one index probe per key: as a plain join, a map that grew since it was last
 * analysed (a first full run) is hashed whole per batch. */
static int syncmap_column(tfs_store *s, const char *pair, const char *entity,
                          const char *const *keys, size_t n, int record, const char **out,
                          PGresult **res, tfs_error *err)
{
    *res = NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0)
        return 0;
    int rc = tfs_store_keys_literal(s, keys, n, err);
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
        return tfs_store_fail(s, r, err, "read the sync map");
    for (int row = 0; row < PQntuples(r); row++) {
        long i = strtol(PQgetvalue(r, row, 0), NULL, 10) - 1;
        if (i >= 0 && (size_t)i < n && !out[i])
            out[i] = PQgetvalue(r, row, 1);
    }
    *res = r;
    return 0;
}

int tfs_store_batch_hashes(tfs_store *s, const char *pair, const char *entity,
                           const char *const *keys, size_t n, uint64_t *hashes,
                           unsigned char *found, tfs_error *err)
{
    const char **text = calloc(n ? n : 1, sizeof *text);
    if (!text)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    PGresult *r;
    int rc = syncmap_column(s, pair, entity, keys, n, 0, text, &r, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        found[i] = text[i] != NULL;
        hashes[i] = text[i] ? strtoull(text[i], NULL, 16) : 0;
    }
    PQclear(r);
    free(text);
    return rc;
}

int tfs_store_batch_records(tfs_store *s, const char *pair, const char *entity,
                            const char *const *keys, size_t n, tfs_arena *a,
                            const char **records, tfs_error *err)
{
    PGresult *r;
    int rc = syncmap_column(s, pair, entity, keys, n, 1, records, &r, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (records[i] && !(records[i] = tfs_arena_strdup(a, records[i])))
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    PQclear(r);
    return rc;
}

/* The first column of r's rows (source keys) into an array in the arena; clears r. */
static int key_column(PGresult *r, tfs_arena *a, const char ***keys, size_t *n, tfs_error *err)
{
    int rows = PQntuples(r);
    const char **k = tfs_arena_calloc(a, (size_t)rows + 1, sizeof *k);
    int rc = k ? 0 : TFS_ENOMEM;
    for (int i = 0; rc == 0 && i < rows; i++)
        if (!(k[i] = tfs_arena_strdup(a, PQgetvalue(r, i, 0))))
            rc = TFS_ENOMEM;
    PQclear(r);
    if (rc)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    *keys = k;
    *n = (size_t)rows;
    return 0;
}

int tfs_store_batch_sweep_keys(tfs_store *s, const char *pair, const char *entity,
                               int64_t generation, const char *after, size_t limit,
                               tfs_arena *a, const char ***keys, size_t *n, tfs_error *err)
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
        return tfs_store_fail(s, r, err, "find keys that vanished from the source");
    return key_column(r, a, keys, n, err);
}

int tfs_store_batch_checkpoints(tfs_store *s, const char *const *pairs, size_t n_pairs,
                                tfs_arena *a, const void ***cursors, size_t **lens, size_t *n,
                                tfs_error *err)
{
    *cursors = NULL;
    *lens = NULL;
    *n = 0;
    int rc = tfs_store_keys_literal(s, pairs, n_pairs, err);
    if (rc)
        return rc;
    const char *params[] = {tfs_buf_str(&s->buf)};
    /* Binary result: the cursors are bytes the plugin owns the meaning of. A full run
     * still reading holds its start cursor in pending: the changes after it are its first
     * incremental run's to read. */
    PGresult *r = PQexecParams(s->conn,
                               "SELECT cursor FROM tfsync.cursors WHERE kind = 'changes'"
                               " AND cursor IS NOT NULL AND pair = ANY($1::text[])"
                               " UNION ALL SELECT pending FROM tfsync.cursors WHERE kind = 'full'"
                               " AND NOT done AND pending IS NOT NULL AND pair = ANY($1::text[])",
                               1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read change checkpoints");
    size_t rows = (size_t)PQntuples(r);
    const void **c = tfs_arena_calloc(a, rows + 1, sizeof *c);
    size_t *l = tfs_arena_calloc(a, rows + 1, sizeof *l);
    rc = c && l ? 0 : TFS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        l[i] = (size_t)PQgetlength(r, (int)i, 0);
        unsigned char *bytes = tfs_arena_alloc(a, l[i] ? l[i] : 1);
        if (!bytes) {
            rc = TFS_ENOMEM;
            break;
        }
        memcpy(bytes, PQgetvalue(r, (int)i, 0), l[i]);
        c[i] = bytes;
    }
    PQclear(r);
    if (rc)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    *cursors = c;
    *lens = l;
    *n = rows;
    return 0;
}

static int prepare_temp(tfs_store *s, tfs_error *err)
{
    if (s->temp_ready)
        return 0;
    int rc = tfs_pg_exec(s->conn,
                         "CREATE TEMP TABLE IF NOT EXISTS tmp_sync_map ("
                         " source_key text, source_hash text, target_hash text,"
                         " target_keys json, target_record json) ON COMMIT DELETE ROWS",
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
        return tfs_store_fail(s, r, err, what);
    PQclear(r);
    for (size_t off = 0; off < b->len;) {
        size_t chunk = b->len - off < COPY_CHUNK ? b->len - off : COPY_CHUNK;
        if (PQputCopyData(s->conn, b->data + off, (int)chunk) != 1) {
            PQputCopyEnd(s->conn, "could not send the rows");
            while ((r = PQgetResult(s->conn)))
                PQclear(r);
            return tfs_store_fail(s, NULL, err, what);
        }
        off += chunk;
    }
    if (PQputCopyEnd(s->conn, NULL) != 1)
        return tfs_store_fail(s, NULL, err, what);
    r = PQgetResult(s->conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        PGresult *rest;
        while ((rest = PQgetResult(s->conn)))
            PQclear(rest);
        return tfs_store_fail(s, r, err, what);
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
        return tfs_store_fail(s, r, err, "update the sync map");
    PQclear(r);
    return 0;
}

static int commit_once(tfs_store *s, const tfs_batch_commit *bc, int all_upserts,
                       tfs_error *err);

/* The batch's audit entries by COPY, each chained after the head as its row is built: its
 * SHA-256 is computed here, in the commit, with no round trip per entry. `at` is left to
 * its default, now(), the transaction's time that the head lock read (h->now_us). */
static int copy_audit(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                      tfs_audit_head *h, tfs_error *err)
{
    tfs_buf *b = &s->buf;
    tfs_buf_reset(b);
    const char *actor = bc->actor ? bc->actor : "?";
    tfs_audit_hasher *hs = NULL;
    int rc = tfs_audit_hasher_new(&hs);
    if (rc)
        return tfs_error_set(err, rc, "could not start a SHA-256");
    for (size_t i = 0; i < bc->n_audit; i++) {
        const tfs_audit_row *a = &bc->audit[i];
        tfs_audit_entry e = {.seq = h->seq + 1, .pair = bc->pair, .run_id = bc->run_id,
                             .entity = bc->entity, .source_key = a->source_key, .op = a->op,
                             .actor = actor, .at_us = h->now_us, .changes = a->changes,
                             .detail = a->detail};
        unsigned char hash[TFS_AUDIT_HASH_LEN];
        if ((rc = tfs_audit_hash(hs, &e, h->hash, hash))) {
            tfs_audit_hasher_free(hs);
            return tfs_error_set(err, rc, "could not hash an audit entry");
        }
        char prev_hex[65], hex[65];
        tfs_audit_hex(h->hash, prev_hex);
        tfs_audit_hex(hash, hex);
        const char *fields[] = {bc->pair, run_id,  bc->entity, a->source_key,
                                a->op,    a->changes, actor,   a->detail};
        for (int f = 0; f < 8; f++) {
            if (f)
                tfs_buf_putc(b, '\t');
            if (fields[f])
                tfs_pg_copy_escape(b, fields[f], strlen(fields[f]));
            else
                tfs_buf_puts(b, "\\N");
        }
        /* bytea in COPY's text form: \x and hex, the backslash doubled for COPY. */
        tfs_buf_printf(b, "\t%" PRId64 "\t\\\\x%s\t\\\\x%s\n", e.seq, prev_hex, hex);
        h->seq = e.seq;
        memcpy(h->hash, hash, sizeof hash);
    }
    tfs_audit_hasher_free(hs);
    return copy_in(s, "COPY tfsync.audit (pair, run_id, entity, source_key, op, changes, actor,"
                      " detail, seq, prev_hash, hash) FROM STDIN", "write the audit trail", err);
}

int tfs_store_batch_commit(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err)
{
    s->diag = (tfs_store_diag){{0}, {0}};
    int rc = commit_once(s, bc, 0, err);
    if (rc == TFS_EPERMANENT && strcmp(s->diag.sqlstate, "23505") == 0 &&
        strcmp(s->diag.constraint, "sync_map_pkey") == 0) {
        /* A key taken for new already had a row (another writer of the pair's map): redo
         * the batch with upserts only. */
        rc = commit_once(s, bc, 1, err);
    }
    if (rc == 0) /* the run's counts and cursor moved: the status cache hears of it */
        tfs_store_run_changed(s, bc->run_id);
    return rc;
}

/* The batch's failed records, one INSERT each (they are few). */
static int write_failed(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                        tfs_error *err)
{
    for (size_t i = 0; i < bc->n_failed; i++) {
        const tfs_failed_row *f = &bc->failed[i];
        char *reasons = json_dumps(f->reasons, JSON_COMPACT);
        char *rec = f->record ? json_dumps(f->record, JSON_COMPACT) : NULL;
        if (!reasons || (f->record && !rec)) {
            free(reasons);
            free(rec);
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        }
        const char *params[] = {bc->pair,  bc->entity, f->source_key,     id,
                                f->stage,  reasons,    rec,               f->error_class,
                                f->script_version};
        /* One open dead letter per key: failing again counts an attempt and keeps the
         * newest reasons (and the stored record when none was read). */
        PGresult *r = PQexecParams(
            s->conn,
            "INSERT INTO tfsync.failed_records (pair, entity, source_key, run_id, stage,"
            " reasons, record, error_class, script_version)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, 'permanent'), $9)"
            " ON CONFLICT (pair, entity, source_key) WHERE status = 'open' DO UPDATE SET"
            " run_id = EXCLUDED.run_id, stage = EXCLUDED.stage, reasons = EXCLUDED.reasons,"
            " record = coalesce(EXCLUDED.record, failed_records.record),"
            " error_class = EXCLUDED.error_class, script_version = EXCLUDED.script_version,"
            " attempts = failed_records.attempts + 1, updated_at = now()",
            9, NULL, params, NULL, NULL, 0);
        free(reasons);
        free(rec);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return tfs_store_fail(s, r, err, "store a failed record");
        PQclear(r);
    }
    return 0;
}

/* The open dead letters of the keys that went through close: 'resolved' by any run, or
 * 'replayed' by a replay, which audits each as op 'replay' with the dead letter it was.
 * In the batch's transaction, so a dead letter never stays open for a key the target has
 * right, nor closes for one whose batch did not commit. */
static int close_dead_letters(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                              tfs_error *err)
{
    if (!bc->n_ok)
        return 0;
    int rc = tfs_store_keys_literal(s, bc->ok_keys, bc->n_ok, err);
    if (rc)
        return rc;
    const char *params[] = {bc->pair, bc->entity, tfs_buf_str(&s->buf), id,
                            bc->replayed ? "replayed" : "resolved",
                            bc->actor ? bc->actor : "?"};
    PGresult *r = PQexecParams(
        s->conn,
        "WITH closed AS (UPDATE tfsync.failed_records SET status = $5, updated_at = now()"
        " WHERE pair = $1 AND entity = $2 AND status = 'open'"
        " AND source_key = ANY($3::text[])"
        " RETURNING id, source_key, stage, attempts, run_id, reasons)"
        " INSERT INTO tfsync.audit (pair, run_id, entity, source_key, op, changes, actor,"
        " detail) SELECT $1, $4::int8, $2, source_key, 'replay', '{}', $6,"
        " json_build_object('dead_letter', id, 'stage', stage, 'attempts', attempts,"
        " 'failed_in_run', run_id, 'reasons', reasons)"
        " FROM closed WHERE $5 = 'replayed'",
        6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "close dead letters");
    PQclear(r);
    return 0;
}

/* Keys this full run saw though it did not write them get its generation; keys deleted
 * from the target leave the map. */
static int mark_and_forget(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                           tfs_error *err)
{
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
        int rc = tfs_store_keys_literal(s, keys[k], counts[k], err);
        if (rc)
            return rc;
        const char *params[] = {bc->pair, bc->entity, tfs_buf_str(&s->buf), id};
        PGresult *r = PQexecParams(s->conn, sql[k], k == 0 ? 4 : 3, NULL, params, NULL, NULL,
                                   0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return tfs_store_fail(s, r, err, "update the sync map");
        PQclear(r);
    }
    return 0;
}

/* The entity's cursor after the batch; a full read done turns its pending change cursor
 * into the incremental checkpoint. */
static int save_cursor(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                       tfs_error *err)
{
    if (bc->cursor_len > INT32_MAX)
        return tfs_error_set(err, TFS_ELIMIT, "a cursor of %zu bytes is too long to store",
                             bc->cursor_len);
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
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "save a cursor");
    PQclear(r);
    if (!bc->cursor_done || strcmp(bc->cursor_kind, "full") != 0)
        return 0;
    /* Everything is read: what changed since the run began is what the next incremental
     * run must read. */
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
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "save the change checkpoint");
    PQclear(r);
    return 0;
}

static int save_counts(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                       tfs_error *err)
{
    tfs_buf_reset(&s->buf);
    if (tfs_store_counts_json(&s->buf, bc->counts, bc->n_counts) != 0)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *params[] = {id, tfs_buf_str(&s->buf)};
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE tfsync.runs SET counts = $2::jsonb, updated_at = now()"
                               " WHERE run_id = $1",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "update run counts");
    PQclear(r);
    return 0;
}

/* The fence: the lease row is locked (FOR SHARE) until the commit ends, so a node taking
 * the lease over (which updates the row) waits for this transaction, and a transaction
 * that starts after the takeover sees the new epoch and writes nothing. */
static int fence(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err)
{
    if (!bc->lease || !bc->lease->epoch)
        return 0;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%" PRId64, bc->lease->epoch);
    const char *params[] = {bc->lease->unit, epoch};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT 1 FROM tfsync.leases WHERE unit = $1 AND epoch = $2::int8"
                               " AND NOT released FOR SHARE",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "check the run's lease");
    int held = PQntuples(r) == 1;
    PQclear(r);
    if (held)
        return 0;
    tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 ": commit refused: node \"%s\" lost its "
                  "lease (epoch %" PRId64 ") to another node", bc->run_id, bc->lease->node,
                  bc->lease->epoch);
    return TFS_ECONFLICT;
}

/* The guard's set-aside deletions: those read by this batch join the run's, those it
 * applied leave them, in the batch's transaction. */
static int pending_deletes(tfs_store *s, const tfs_batch_commit *bc, const char *id,
                           tfs_error *err)
{
    const char *const *keys[] = {bc->set_aside_keys, bc->applied_keys};
    size_t counts[] = {bc->n_set_aside, bc->n_applied};
    static const char *const sql[] = {
        "INSERT INTO tfsync.pending_deletes (run_id, entity, source_key)"
        " SELECT $1::int8, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
        "DELETE FROM tfsync.pending_deletes WHERE run_id = $1::int8 AND entity = $2"
        " AND source_key = ANY($3::text[])"};
    for (int k = 0; k < 2; k++) {
        if (!counts[k])
            continue;
        int rc = tfs_store_keys_literal(s, keys[k], counts[k], err);
        if (rc)
            return rc;
        const char *params[] = {id, bc->entity, tfs_buf_str(&s->buf)};
        PGresult *r = PQexecParams(s->conn, sql[k], 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return tfs_store_fail(s, r, err, "set deletions aside");
        PQclear(r);
    }
    return 0;
}

static int commit_once(tfs_store *s, const tfs_batch_commit *bc, int all_upserts,
                       tfs_error *err)
{
    char id[32];
    int rc;
    snprintf(id, sizeof id, "%" PRId64, bc->run_id);
    if ((rc = prepare_temp(s, err)) ||
        (rc = tfs_pg_exec(s->conn,
                          bc->async_commit ? "BEGIN; SET LOCAL synchronous_commit TO off"
                                           : "BEGIN",
                          err)))
        return rc;
    /* The pair's audit head is locked right after the fence and before any other row, as
     * every writer of audit entries does, so two of them never wait on each other. */
    tfs_audit_head head;
    if ((rc = fence(s, bc, err)) || (rc = tfs_store_audit_lock(s, bc->pair, &head, err)) ||
        (bc->n_rows && (rc = write_sync_map(s, bc, id, all_upserts, err))) ||
        (rc = write_failed(s, bc, id, err)) ||
        (bc->n_audit && (rc = copy_audit(s, bc, id, &head, err))) ||
        (rc = close_dead_letters(s, bc, id, err)) ||
        (rc = mark_and_forget(s, bc, id, err)) || (rc = pending_deletes(s, bc, id, err)) ||
        (rc = tfs_store_conflicts_commit(s, bc, id, err)) ||
        (rc = tfs_store_audit_finish(s, &head, bc->run_id, err)) ||
        (bc->cursor_kind && (rc = save_cursor(s, bc, id, err))) ||
        (bc->counts && (rc = save_counts(s, bc, id, err))))
        goto fail;
    return tfs_pg_exec(s->conn, "COMMIT", err);
fail:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

/* A deactivated record's source hash is zero (stage.c): it is no longer a live key. */
#define DEACTIVATED_HASH "0000000000000000"

int tfs_store_batch_deletion_counts(tfs_store *s, const char *pair, const char *entity,
                                    int64_t run_id, int full, int64_t *would, int64_t *synced,
                                    tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {pair, entity, id, full ? "t" : "f"};
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT CASE WHEN $4::bool THEN (SELECT count(*) FROM tfsync.sync_map WHERE pair = $1"
        "   AND entity = $2 AND generation < $3::int8 AND source_hash <> '" DEACTIVATED_HASH "')"
        "  ELSE (SELECT count(*) FROM tfsync.pending_deletes WHERE run_id = $3::int8"
        "   AND entity = $2) END,"
        " (SELECT count(*) FROM tfsync.sync_map WHERE pair = $1 AND entity = $2"
        "   AND source_hash <> '" DEACTIVATED_HASH "')",
        4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "count the deletions of a run");
    *would = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *synced = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return 0;
}

int tfs_store_batch_pending_keys(tfs_store *s, int64_t run_id, const char *entity,
                                 const char *after, size_t limit, tfs_arena *a,
                                 const char ***keys, size_t *n, tfs_error *err)
{
    char id[32], lim[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {id, entity, after, lim};
    *keys = NULL;
    *n = 0;
    PGresult *r = PQexecParams(s->conn,
                               "SELECT source_key FROM tfsync.pending_deletes"
                               " WHERE run_id = $1::int8 AND entity = $2"
                               " AND ($3::text IS NULL OR source_key > $3)"
                               " ORDER BY source_key LIMIT $4::int8",
                               4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the deletions set aside");
    return key_column(r, a, keys, n, err);
}

int tfs_store_batch_pending_drop(tfs_store *s, int64_t run_id, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(s->conn,
                               "DELETE FROM tfsync.pending_deletes WHERE run_id = $1::int8", 1,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "drop the deletions set aside");
    PQclear(r);
    return 0;
}

/* ---- dead letters ------------------------------------------------------------------ */

/* ids as a PostgreSQL int8[] literal into s->buf ("{}" for none). */
static int ids_literal(tfs_store *s, const int64_t *ids, size_t n, tfs_error *err)
{
    tfs_buf_reset(&s->buf);
    tfs_buf_putc(&s->buf, '{');
    for (size_t i = 0; i < n; i++)
        tfs_buf_printf(&s->buf, "%s%" PRId64, i ? "," : "", ids[i]);
    tfs_buf_putc(&s->buf, '}');
    return s->buf.oom ? tfs_error_set(err, TFS_ENOMEM, "out of memory") : 0;
}

int tfs_store_batch_dead_letters_open(tfs_store *s, const char *pair, const char *entity,
                                      int *open, tfs_error *err)
{
    const char *params[] = {pair, entity};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT EXISTS (SELECT 1 FROM tfsync.failed_records WHERE"
                               " pair = $1 AND entity = $2 AND status = 'open')",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "look for open dead letters");
    *open = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

void tfs_store_dead_letters_free(tfs_dead_letter *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) {
        json_decref(d[i].record);
        d[i].record = NULL;
    }
}

int tfs_store_batch_dead_letters(tfs_store *s, const tfs_replay_filter *f, int64_t after_id,
                                 size_t limit, tfs_arena *a, tfs_dead_letter **out, size_t *n,
                                 tfs_error *err)
{
    *out = NULL;
    *n = 0;
    int rc = ids_literal(s, f->ids, f->n_ids, err);
    if (rc)
        return rc;
    char run[32], after[32], lim[32];
    snprintf(run, sizeof run, "%" PRId64, f->run_id);
    snprintf(after, sizeof after, "%" PRId64, after_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {f->pair, f->entity, run, f->stage, tfs_buf_str(&s->buf), after,
                            lim};
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT id, source_key, record, stage, attempts FROM tfsync.failed_records"
        " WHERE pair = $1 AND entity = $2 AND status = 'open'"
        " AND ($3::int8 = 0 OR run_id = $3::int8) AND ($4::text IS NULL OR stage = $4)"
        " AND (cardinality($5::int8[]) = 0 OR id = ANY($5::int8[]))"
        " AND id > $6::int8 ORDER BY id LIMIT $7::int8",
        7, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read dead letters");
    size_t rows = (size_t)PQntuples(r);
    tfs_dead_letter *d = tfs_arena_calloc(a, rows ? rows : 1, sizeof *d);
    rc = d ? 0 : TFS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        d[i].id = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
        d[i].source_key = tfs_arena_strdup(a, PQgetvalue(r, (int)i, 1));
        d[i].stage = tfs_arena_strdup(a, PQgetvalue(r, (int)i, 3));
        d[i].attempts = atoi(PQgetvalue(r, (int)i, 4));
        if (!PQgetisnull(r, (int)i, 2) &&
            !(d[i].record = json_loads(PQgetvalue(r, (int)i, 2), 0, NULL)))
            rc = TFS_ENOMEM;
        if (!d[i].source_key || !d[i].stage)
            rc = TFS_ENOMEM;
        *n = i + 1;
    }
    PQclear(r);
    if (rc) {
        tfs_store_dead_letters_free(d, *n);
        *n = 0;
        return tfs_error_set(err, rc, "out of memory reading dead letters");
    }
    *out = d;
    return 0;
}

int tfs_store_dead_letter_discard(tfs_store *s, int64_t id, const char *actor,
                                  char status[16], json_t **out, tfs_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, id);
    status[0] = '\0';
    if (out)
        *out = NULL;
    /* The pair's audit head locked first (as a batch commit does, so neither waits on the
     * other's rows), then the row, so a replay committing it at the same time either
     * closed it before (not open: refused) or waits for the discard. */
    const char *params[] = {text, actor ? actor : "?"};
    PGresult *r = PQexecParams(s->conn, "SELECT pair FROM tfsync.failed_records WHERE id = $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "discard a dead letter");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOTFOUND, "no dead letter %" PRId64, id);
    }
    char pair[256];
    snprintf(pair, sizeof pair, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    tfs_audit_head head;
    int rc = tfs_pg_exec(s->conn, "BEGIN", err);
    if (rc)
        return rc;
    if ((rc = tfs_store_audit_lock(s, pair, &head, err)))
        goto rollback;
    r = PQexecParams(
        s->conn,
        "WITH d AS (SELECT * FROM tfsync.failed_records WHERE id = $1::int8 FOR UPDATE),"
        " gone AS (UPDATE tfsync.failed_records f SET status = 'discarded', updated_at = now()"
        " FROM d WHERE f.id = d.id AND d.status = 'open' RETURNING f.*),"
        " audited AS (INSERT INTO tfsync.audit (pair, run_id, entity, source_key, op, changes,"
        " actor, detail) SELECT pair, run_id, entity, source_key, 'discard', '{}', $2,"
        " json_build_object('dead_letter', id, 'stage', stage, 'attempts', attempts,"
        " 'reasons', reasons) FROM gone)"
        " SELECT d.status, json_build_object('id', d.id, 'pair', d.pair, 'entity', d.entity,"
        " 'source_key', d.source_key, 'stage', d.stage, 'attempts', d.attempts,"
        " 'status', coalesce((SELECT status FROM gone), d.status))::text FROM d",
        2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tfs_store_fail(s, r, err, "discard a dead letter");
        goto rollback;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        rc = tfs_error_set(err, TFS_ENOTFOUND, "no dead letter %" PRId64, id);
        goto rollback;
    }
    snprintf(status, 16, "%s", PQgetvalue(r, 0, 0));
    if (out)
        *out = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    PQclear(r);
    if ((rc = tfs_store_audit_finish(s, &head, 0, err)) ||
        (rc = tfs_pg_exec(s->conn, "COMMIT", err))) {
        if (out) {
            json_decref(*out);
            *out = NULL;
        }
        goto rollback;
    }
    if (strcmp(status, "open") != 0)
        return tfs_error_set(err, TFS_ECONFLICT, "dead letter %" PRId64 " is %s, not open", id,
                             status);
    return 0;
rollback:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}
