/* core/store_conflicts.c — conflicts and drift in the state store; see store_conflicts.h
 * and, for what a batch commits, store_batch.h.
 *
 * Parked conflicts are few (an operator reads each), so they take a statement or two
 * each; drift rows and settled keys take one statement per batch whatever their number.
 */
#include "store_conflicts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_batch.h"
#include "store_private.h"

/* One statement's single value: 0 and *out (a copy, malloc'd) when a row came,
 * TFS_ENOTFOUND when none did. */
static int exec_value(tfs_store *s, const char *sql, int n, const char *const *params,
                      char **out, const char *what, tfs_error *err)
{
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, what);
    int found = st == PGRES_TUPLES_OK && PQntuples(r) > 0;
    if (out)
        *out = found ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (found && out && !*out)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    return found ? 0 : TFS_ENOTFOUND;
}

/* The decision's audit entry: op 'conflict', detail {"conflict_id", "policy", "decision",
 * "fields"}. */
static int audit_parked(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                        const tfs_conflict_row *c, const char *conflict_id, tfs_error *err)
{
    const char *params[] = {bc->pair,  run_id,   bc->entity, c->source_key,
                            bc->actor ? bc->actor : "?", conflict_id, c->policy, c->fields};
    int rc = exec_value(
        s,
        "INSERT INTO tfsync.audit (pair, run_id, entity, source_key, op, changes, actor,"
        " detail) VALUES ($1, $2::int8, $3, $4, 'conflict', '{}', $5,"
        " json_build_object('conflict', json_build_object('id', $6::int8, 'policy', $7::text,"
        " 'decision', 'parked', 'fields', $8::json)))",
        8, params, NULL, "write a conflict's audit entry", err);
    return rc == TFS_ENOTFOUND ? 0 : rc;
}

/* Opens a parked conflict, or updates the open one of the key when its source is the same;
 * an open one with another source is superseded by the new one. */
static int park(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                const tfs_conflict_row *c, tfs_error *err)
{
    char *rec = c->source_record ? json_dumps(c->source_record, JSON_COMPACT) : NULL;
    char *id = NULL, *old = NULL;
    if (c->source_record && !rec)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *params[] = {bc->pair,  bc->entity,     c->source_key,  run_id,
                            c->policy, rec,            c->source,      c->target,
                            c->base,   c->fields,      c->source_hash, c->target_hash};
    int rc = exec_value(s,
                        "UPDATE tfsync.conflicts SET run_id = $4::int8, policy = $5,"
                        " source_record = $6::jsonb, target = $8::jsonb, base = $9::jsonb,"
                        " fields = $10::jsonb, target_hash = $12, updated_at = now()"
                        " WHERE pair = $1 AND entity = $2 AND source_key = $3"
                        " AND status = 'open' AND source_hash = $11 AND $7::jsonb = source"
                        " RETURNING id",
                        12, params, &id, "update a conflict", err);
    if (rc != TFS_ENOTFOUND)
        goto out;
    rc = exec_value(s,
                    "UPDATE tfsync.conflicts SET status = 'superseded', updated_at = now()"
                    " WHERE pair = $1 AND entity = $2 AND source_key = $3 AND status = 'open'"
                    " RETURNING id",
                    3, params, &old, "supersede a conflict", err);
    if (rc && rc != TFS_ENOTFOUND)
        goto out;
    rc = exec_value(s,
                    "INSERT INTO tfsync.conflicts (pair, entity, source_key, run_id, policy,"
                    " source_record, source, target, base, fields, source_hash, target_hash)"
                    " VALUES ($1, $2, $3, $4::int8, $5, $6::jsonb, $7::jsonb, $8::jsonb,"
                    " $9::jsonb, $10::jsonb, $11, $12) RETURNING id",
                    12, params, &id, "open a conflict", err);
    if (rc)
        goto out;
    if (old) {
        const char *sp[] = {old, id};
        rc = exec_value(s, "UPDATE tfsync.conflicts SET superseded_by = $2::int8"
                           " WHERE id = $1::int8",
                        2, sp, NULL, "supersede a conflict", err);
        if (rc == TFS_ENOTFOUND)
            rc = 0;
        if (rc)
            goto out;
    }
    rc = audit_parked(s, bc, run_id, c, id, err);
out:
    free(rec);
    free(id);
    free(old);
    return rc;
}

static int save_drift(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                      tfs_error *err)
{
    /* One statement: the keys and targets as two parallel JSON arrays. */
    json_t *keys = json_array(), *targets = json_array();
    int rc = keys && targets ? 0 : TFS_ENOMEM;
    for (size_t i = 0; !rc && i < bc->n_drift; i++) {
        json_t *t = json_loads(bc->drift[i].target, 0, NULL);
        if (!t || json_array_append_new(keys, json_string(bc->drift[i].source_key)) ||
            json_array_append_new(targets, t))
            rc = TFS_ENOMEM;
    }
    char *k = rc ? NULL : json_dumps(keys, JSON_COMPACT);
    char *t = rc ? NULL : json_dumps(targets, JSON_COMPACT);
    json_decref(keys);
    json_decref(targets);
    if (!k || !t) {
        free(k);
        free(t);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const char *params[] = {bc->pair, bc->entity, run_id, k, t};
    rc = exec_value(s,
                    "INSERT INTO tfsync.drift (pair, entity, source_key, run_id, target)"
                    " SELECT $1, $2, k.value #>> '{}', $3::int8, t.value"
                    " FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY k(value, i)"
                    " JOIN jsonb_array_elements($5::jsonb) WITH ORDINALITY t(value, i)"
                    " USING (i)"
                    " ON CONFLICT (pair, entity, source_key) DO UPDATE SET"
                    " run_id = EXCLUDED.run_id, target = EXCLUDED.target,"
                    " detected_at = now()",
                    5, params, NULL, "save drift", err);
    free(k);
    free(t);
    return rc == TFS_ENOTFOUND ? 0 : rc;
}

static int settle(tfs_store *s, const tfs_batch_commit *bc, tfs_error *err)
{
    int rc = tfs_store_keys_literal(s, bc->settled_keys, bc->n_settled, err);
    if (rc)
        return rc;
    const char *params[] = {bc->pair, bc->entity, tfs_buf_str(&s->buf)};
    rc = exec_value(s,
                    "WITH d AS (DELETE FROM tfsync.drift WHERE pair = $1 AND entity = $2"
                    " AND source_key = ANY($3::text[]))"
                    " UPDATE tfsync.conflicts SET status = 'superseded', updated_at = now()"
                    " WHERE pair = $1 AND entity = $2 AND status = 'open'"
                    " AND source_key = ANY($3::text[])",
                    3, params, NULL, "settle drift and conflicts", err);
    return rc == TFS_ENOTFOUND ? 0 : rc;
}

static int resolve(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                   tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, bc->resolve_id);
    const char *params[] = {id, bc->resolution, bc->actor ? bc->actor : "?", run_id};
    int rc = exec_value(s,
                        "UPDATE tfsync.conflicts SET status = 'resolved', resolution = $2,"
                        " resolved_by = $3, resolved_run = $4::int8, resolved_at = now(),"
                        " updated_at = now() WHERE id = $1::int8 AND status = 'open'"
                        " RETURNING id",
                        4, params, NULL, "resolve a conflict", err);
    if (rc == TFS_ENOTFOUND)
        return tfs_error_set(err, TFS_ECONFLICT, "conflict %s is no longer open", id);
    return rc;
}

int tfs_store_conflicts_commit(tfs_store *s, const tfs_batch_commit *bc, const char *run_id,
                               tfs_error *err)
{
    int rc = 0;
    /* Settled first: a key parked again in this batch is not among them. */
    if (bc->n_settled && (rc = settle(s, bc, err)))
        return rc;
    for (size_t i = 0; i < bc->n_conflicts; i++)
        if ((rc = park(s, bc, run_id, &bc->conflicts[i], err)))
            return rc;
    if (bc->n_drift && (rc = save_drift(s, bc, run_id, err)))
        return rc;
    if (bc->resolve_id && (rc = resolve(s, bc, run_id, err)))
        return rc;
    return 0;
}

/* ---- what the API reads ------------------------------------------------------------- */

static int json_value(tfs_store *s, const char *sql, int n, const char *const *params,
                      json_t **out, const char *what, tfs_error *err)
{
    char *text = NULL;
    *out = NULL;
    int rc = exec_value(s, sql, n, params, &text, what, err);
    if (rc)
        return rc;
    json_error_t je;
    *out = json_loads(text, JSON_DECODE_ANY, &je);
    free(text);
    if (!*out)
        return tfs_error_set(err, TFS_EPERMANENT, "could not %s: bad JSON from the store: %s",
                             what, je.text);
    return json_is_null(*out) ? (json_decref(*out), *out = NULL, TFS_ENOTFOUND) : 0;
}

#define CONFLICT_SUMMARY                                                                        \
    "'id', id, 'pair', pair, 'entity', entity, 'source_key', source_key, 'status', status,"   \
    " 'policy', policy, 'run_id', run_id, 'fields', fields, 'resolution', resolution,"        \
    " 'resolved_by', resolved_by, 'resolved_run', resolved_run, 'superseded_by',"             \
    " superseded_by, 'created_at', created_at, 'updated_at', updated_at, 'resolved_at',"      \
    " resolved_at"

int tfs_store_conflicts_list(tfs_store *s, const tfs_conflict_filter *f, json_t **out,
                             tfs_error *err)
{
    char after[32], lim[32];
    snprintf(after, sizeof after, "%" PRId64, f->after_id);
    snprintf(lim, sizeof lim, "%ld", f->limit);
    const char *params[] = {f->pair, f->entity, f->status, after, lim};
    return json_value(
        s,
        "SELECT json_build_object('conflicts', coalesce(json_agg(json_build_object("
        CONFLICT_SUMMARY ") ORDER BY id), '[]'), 'next_after_id',"
        " CASE WHEN count(*) = $5::int8 THEN max(id) END) FROM ("
        " SELECT * FROM tfsync.conflicts WHERE ($1::text IS NULL OR pair = $1)"
        " AND ($2::text IS NULL OR entity = $2) AND ($3::text IS NULL OR status = $3)"
        " AND id > $4::int8 ORDER BY id LIMIT $5::int8) c",
        5, params, out, "list conflicts", err);
}

int tfs_store_conflict_get(tfs_store *s, int64_t id, json_t **out, tfs_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, id);
    const char *params[] = {text};
    return json_value(s,
                      "SELECT json_build_object(" CONFLICT_SUMMARY ", 'source', source,"
                      " 'target', target, 'base', base, 'source_record', source_record,"
                      " 'source_hash', source_hash, 'target_hash', target_hash)"
                      " FROM tfsync.conflicts WHERE id = $1::int8",
                      1, params, out, "read a conflict", err);
}

int tfs_store_conflict_set_target(tfs_store *s, int64_t id, const char *target,
                                  const char *target_hash, const char *fields,
                                  tfs_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, id);
    const char *params[] = {text, target, target_hash, fields};
    int rc = exec_value(s,
                        "UPDATE tfsync.conflicts SET target = $2::jsonb, target_hash = $3,"
                        " fields = $4::jsonb, updated_at = now()"
                        " WHERE id = $1::int8 AND status = 'open' RETURNING id",
                        4, params, NULL, "update a conflict", err);
    if (rc == TFS_ENOTFOUND)
        return tfs_error_set(err, TFS_ECONFLICT, "conflict %" PRId64 " is no longer open", id);
    return rc;
}

int tfs_store_drift_list(tfs_store *s, const char *pair, long limit, json_t **out,
                         tfs_error *err)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *params[] = {pair, lim};
    return json_value(s,
                      "SELECT json_build_object('drift', coalesce(json_agg(json_build_object("
                      "'entity', entity, 'source_key', source_key, 'run_id', run_id,"
                      " 'target', target, 'detected_at', detected_at)"
                      " ORDER BY entity, source_key), '[]')) FROM (SELECT * FROM tfsync.drift"
                      " WHERE pair = $1 ORDER BY entity, source_key LIMIT $2::int8) d",
                      2, params, out, "list drift", err);
}
