/* core/store_views.c — the JSON read models of the state store that the HTTP API serves;
 * see store_views.h. JSON is built in SQL, so the server formats timestamps once and a
 * listing is one round trip.
 */
#include "store_views.h"

#include <inttypes.h>
#include <stdio.h>

#include "buf.h"

#include "store_private.h"

/* Runs sql, whose one row and column is JSON, into *out (new reference); TFS_ENOTFOUND when
 * there is no row or it is null. */
static int json_query(tfs_store *s, const char *sql, int n, const char *const *params,
                      json_t **out, const char *what, tfs_error *err)
{
    *out = NULL;
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, what);
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

/* Each entity's counts with its estimated_total (a full run's estimate, SDK 1.3) where
 * the run has one; estimated_totals has every estimate, of entities not committed yet
 * too. */
#define RUN_COUNTS                                                                              \
    "(SELECT coalesce(jsonb_object_agg(c.k, CASE WHEN estimates ? c.k THEN c.v ||"               \
    " jsonb_build_object('estimated_total', estimates -> c.k) ELSE c.v END), '{}'::jsonb)"       \
    " FROM jsonb_each(CASE WHEN jsonb_typeof(counts) = 'object' THEN counts ELSE '{}' END)"      \
    " AS c(k, v))"

/* The run columns as JSON, built in SQL so the server formats timestamps once. */
#define RUN_JSON                                                                                \
    "json_build_object('run_id', run_id, 'pair', pair, 'mode', mode, 'state', state,"           \
    " 'actor', actor, 'counts', " RUN_COUNTS ", 'error', error, 'created_at', created_at,"    \
    " 'started_at', started_at, 'finished_at', finished_at, 'updated_at', updated_at,"         \
    " 'waiting', CASE WHEN state = 'waiting' THEN json_build_object('reason', waiting_reason,"  \
    " 'since', waiting_since, 'for_ms', (extract(epoch FROM now() - waiting_since) * 1000)"     \
    "::int8) END, 'cancel_requested', cancel_requested,"                                       \
    " 'held', CASE WHEN state = 'held' THEN json_build_object('reason', held_reason,"          \
    " 'deletes', held_deletes) END, 'confirmed_deletes', confirmed_deletes,"                   \
    " 'params', params, 'result', result, 'run_end_errors', run_end_errors,"                   \
    " 'estimated_totals', coalesce(estimates, '{}'::jsonb),"                                    \
    " 'node', node, 'lease', (SELECT json_build_object('node', l.node, 'epoch', l.epoch,"        \
    " 'expires_at', l.expires_at, 'held', NOT l.released AND l.expires_at > now(),"             \
    " 'deaths', l.deaths) FROM tfsync.leases l WHERE l.unit = 'run:' || runs.run_id),"          \
    " 'elapsed_ms', (extract(epoch FROM coalesce(finished_at, now()) -"                       \
    " coalesce(started_at, now())) * 1000)::int8)"

int tfs_store_views_run(tfs_store *s, int64_t run_id, json_t **out, tfs_error *err)
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

int tfs_store_views_last_runs(tfs_store *s, json_t **out, tfs_error *err)
{
    int rc = json_query(
        s,
        "SELECT coalesce(json_object_agg(pair, j), '{}') FROM ("
        " SELECT DISTINCT ON (pair) pair, " RUN_JSON " AS j"
        " FROM tfsync.runs ORDER BY pair, run_id DESC) t",
        0, NULL, out, "read the last runs", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_views_cursors(tfs_store *s, const char *pair, json_t **out, tfs_error *err)
{
    const char *params[] = {pair};
    int rc = json_query(
        s,
        "SELECT coalesce(json_object_agg(entity, k), '{}') FROM ("
        " SELECT entity, json_object_agg(kind, json_build_object("
        "  'cursor', encode(cursor, 'escape'), 'done', done, 'run_id', run_id,"
        "  'updated_at', updated_at)) AS k"
        " FROM tfsync.cursors WHERE pair = $1 GROUP BY entity) t",
        1, params, out, "read cursors", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

/* A pair's cursors as JSON, grouped by entity then kind (cursors.pair = PAIR_SQL). */
#define CURSORS_JSON(PAIR_SQL)                                                                  \
    "(SELECT coalesce(json_object_agg(entity, k), '{}') FROM ("                                \
    " SELECT entity, json_object_agg(kind, json_build_object("                                 \
    "  'cursor', encode(cursor, 'escape'), 'done', done, 'run_id', run_id,"                    \
    "  'updated_at', updated_at)) AS k"                                                        \
    " FROM tfsync.cursors WHERE pair = " PAIR_SQL " GROUP BY entity) t)"

int tfs_store_views_all_cursors(tfs_store *s, json_t **out, tfs_error *err)
{
    int rc = json_query(s,
                        "SELECT coalesce(json_object_agg(p.pair, " CURSORS_JSON("p.pair")
                        "), '{}') FROM (SELECT DISTINCT pair FROM tfsync.cursors) p",
                        0, NULL, out, "read cursors", err);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_views_runs(tfs_store *s, const int64_t *ids, size_t n, json_t **out,
                         tfs_error *err)
{
    tfs_buf b = TFS_BUF_INIT;
    tfs_buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        tfs_buf_printf(&b, "%s%" PRId64, i ? "," : "", ids[i]);
    tfs_buf_putc(&b, '}');
    if (b.oom) {
        tfs_buf_free(&b);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const char *params[] = {tfs_buf_str(&b)};
    int rc = json_query(s,
                        "SELECT coalesce(json_object_agg(run_id, " RUN_JSON "), '{}')"
                        " FROM tfsync.runs WHERE run_id = ANY($1::int8[])",
                        1, params, out, "read runs", err);
    tfs_buf_free(&b);
    return rc == TFS_ENOTFOUND ? ((*out = json_object()) ? 0 : TFS_ENOMEM) : rc;
}

int tfs_store_views_run_and_cursors(tfs_store *s, int64_t run_id, json_t **out,
                                    tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    int rc = json_query(s,
                        "SELECT json_build_object('run', " RUN_JSON ", 'cursors', "
                        CURSORS_JSON("runs.pair") ") FROM tfsync.runs WHERE run_id = $1",
                        1, params, out, "read a run", err);
    if (rc == TFS_ENOTFOUND)
        tfs_error_set(err, rc, "no run %" PRId64, run_id);
    return rc;
}

int tfs_store_views_audit(tfs_store *s, const tfs_audit_filter *f, json_t **out,
                          tfs_error *err)
{
    char run[32], after[32], lim[32];
    snprintf(run, sizeof run, "%" PRId64, f->run_id);
    snprintf(after, sizeof after, "%" PRId64, f->after_id);
    snprintf(lim, sizeof lim, "%ld", f->limit);
    const char *params[] = {f->pair, f->entity, f->key, run, f->since, f->until, after, lim};
    int rc = json_query(
        s,
        "SELECT json_build_object('entries', coalesce(json_agg(json_build_object("
        " 'id', id, 'pair', pair, 'run_id', run_id, 'entity', entity, 'key',"
        " source_key, 'op', op, 'changes', changes, 'detail', detail, 'actor', actor, 'at', at)"
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

/* A dead letter's columns as JSON. */
#define FAILED_JSON                                                                             \
    "json_build_object('id', id, 'pair', pair, 'entity', entity, 'source_key', source_key,"    \
    " 'run_id', run_id, 'stage', stage, 'error_class', error_class, 'reasons', reasons,"       \
    " 'record', record, 'script_version', script_version, 'attempts', attempts,"              \
    " 'status', status, 'created_at', created_at, 'updated_at', updated_at)"

int tfs_store_views_failed(tfs_store *s, const tfs_dead_letter_filter *f, json_t **out,
                           tfs_error *err)
{
    char run[32], after[32], lim[32];
    snprintf(run, sizeof run, "%" PRId64, f->run_id);
    snprintf(after, sizeof after, "%" PRId64, f->after_id);
    snprintf(lim, sizeof lim, "%ld", f->limit);
    const char *params[] = {f->pair, f->entity, f->stage, f->status ? f->status : "open",
                            run, after, lim};
    return json_query(
        s,
        "SELECT json_build_object('dead_letters', coalesce(json_agg(" FAILED_JSON
        " ORDER BY id), '[]'), 'next_after_id', CASE WHEN count(*) = $7::int8"
        " THEN max(id) END) FROM (SELECT * FROM tfsync.failed_records"
        " WHERE ($1::text IS NULL OR pair = $1)"
        " AND ($2::text IS NULL OR entity = $2)"
        " AND ($3::text IS NULL OR stage = $3)"
        " AND ($4 = 'all' OR status = $4)"
        " AND ($5::int8 = 0 OR run_id = $5::int8)"
        " AND id > $6::int8 ORDER BY id LIMIT $7::int8) f",
        7, params, out, "read dead letters", err);
}

int tfs_store_views_failed_one(tfs_store *s, int64_t id, json_t **out, tfs_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, id);
    const char *params[] = {text};
    int rc = json_query(s, "SELECT " FAILED_JSON " FROM tfsync.failed_records WHERE id = $1",
                        1, params, out, "read a dead letter", err);
    if (rc == TFS_ENOTFOUND)
        tfs_error_set(err, rc, "no dead letter %" PRId64, id);
    return rc;
}
