/* core/store.c — the state store's connection, migrations and runs over libpq; see
 * store.h. The helpers the store's other files share (store_private.h) are here too.
 */
#include "store_audit.h"
#include "store_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "log.h"
#include "pg.h"
#include "tfs_limits.h"
#include "record.h"

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
    "  target_keys jsonb NOT NULL," /* json from migration 8 */
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
    /* 3: leases with fencing epochs on units of work (a run today; see lease.h), the node
     * that last took each run, and what a poison run is recognised by */
    "CREATE TABLE tfsync.leases ("
    "  unit text PRIMARY KEY,"
    "  run_id bigint NOT NULL,"
    "  node text NOT NULL,"
    "  epoch bigint NOT NULL,"
    "  expires_at timestamptz NOT NULL,"
    "  released boolean NOT NULL DEFAULT false,"
    "  checkpoint text NOT NULL DEFAULT '',"
    "  deaths int NOT NULL DEFAULT 0,"
    "  taken_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX leases_node ON tfsync.leases (node) WHERE NOT released;"
    "CREATE INDEX leases_run ON tfsync.leases (run_id);"
    "ALTER TABLE tfsync.runs ADD COLUMN node text;",
    /* 4: runs that wait for a system or the store to come back, and cancelled runs; a
     * waiting run still holds its pair. (partial and held come with the next issue.) */
    "ALTER TABLE tfsync.runs DROP CONSTRAINT runs_state_check;"
    "ALTER TABLE tfsync.runs ADD CONSTRAINT runs_state_check CHECK (state IN"
    "  ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'));"
    "ALTER TABLE tfsync.runs ADD COLUMN waiting_reason text,"
    "  ADD COLUMN waiting_since timestamptz,"
    "  ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;"
    "DROP INDEX tfsync.runs_one_active_per_pair;"
    "CREATE UNIQUE INDEX runs_one_active_per_pair ON tfsync.runs (pair)"
    "  WHERE state IN ('queued', 'running', 'waiting');",
    /* 5: nothing silently lost or overwritten. Runs: the jobs of a pair (replay, resolve,
     * validate) with their parameters and answer; partial and held outcomes, a held run
     * keeping its pair until it is confirmed. Conflicts, one open per source key. Dead
     * letters with their error class, script version, attempts and status, one open per
     * source key. Deletions an incremental run sets aside until the guard has seen their
     * total. Audit entries for decisions (conflicts, resolves, replays, discards). */
    "ALTER TABLE tfsync.runs DROP CONSTRAINT runs_mode_check;"
    "ALTER TABLE tfsync.runs ADD CONSTRAINT runs_mode_check CHECK (mode IN"
    "  ('full', 'incremental', 'replay', 'resolve', 'validate'));"
    "ALTER TABLE tfsync.runs DROP CONSTRAINT runs_state_check;"
    "ALTER TABLE tfsync.runs ADD CONSTRAINT runs_state_check CHECK (state IN ('queued',"
    "  'running', 'waiting', 'held', 'succeeded', 'partial', 'failed', 'cancelled'));"
    "ALTER TABLE tfsync.runs ADD COLUMN params jsonb,"
    "  ADD COLUMN result jsonb,"
    "  ADD COLUMN held_reason text,"
    "  ADD COLUMN held_deletes jsonb,"
    "  ADD COLUMN confirmed_deletes bigint;"
    "DROP INDEX tfsync.runs_one_active_per_pair;"
    "CREATE UNIQUE INDEX runs_one_active_per_pair ON tfsync.runs (pair)"
    "  WHERE state IN ('queued', 'running', 'waiting', 'held');"
    "CREATE TABLE tfsync.conflicts ("
    "  id bigserial PRIMARY KEY,"
    "  pair text NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  status text NOT NULL DEFAULT 'open'"
    "    CHECK (status IN ('open', 'resolved', 'superseded')),"
    "  policy text NOT NULL,"
    "  run_id bigint NOT NULL,"
    "  source_record jsonb,"          /* the source record as read */
    "  source jsonb NOT NULL,"        /* {entity: [records]}: what the mapping produced */
    "  target jsonb NOT NULL,"        /* {entity: [records]}: what the target held */
    "  base jsonb,"                   /* {entity: [records]}: last written; NULL: none */
    "  source_hash text,"
    "  target_hash text,"             /* of target: a resolve checks it still holds */
    "  fields jsonb NOT NULL DEFAULT '[]',"
    "  resolution text,"
    "  resolved_by text,"
    "  resolved_run bigint,"
    "  superseded_by bigint,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  resolved_at timestamptz);"
    "CREATE UNIQUE INDEX conflicts_one_open ON tfsync.conflicts (pair, entity, source_key)"
    "  WHERE status = 'open';"
    "CREATE INDEX conflicts_pair_status ON tfsync.conflicts (pair, status, id);"
    "CREATE TABLE tfsync.drift ("
    "  pair text NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  run_id bigint NOT NULL,"
    "  target jsonb,"
    "  detected_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (pair, entity, source_key));"
    "ALTER TABLE tfsync.failed_records"
    "  ADD COLUMN error_class text NOT NULL DEFAULT 'permanent',"
    "  ADD COLUMN script_version text,"
    "  ADD COLUMN attempts int NOT NULL DEFAULT 1,"
    "  ADD COLUMN status text NOT NULL DEFAULT 'open',"
    "  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();"
    "ALTER TABLE tfsync.failed_records DROP CONSTRAINT failed_records_stage_check;"
    "ALTER TABLE tfsync.failed_records ADD CONSTRAINT failed_records_stage_check CHECK"
    "  (stage IN ('read', 'transform', 'validate', 'conflict', 'write'));"
    "ALTER TABLE tfsync.failed_records ADD CONSTRAINT failed_records_status_check CHECK"
    "  (status IN ('open', 'replayed', 'resolved', 'discarded', 'superseded'));"
    /* Older stores kept a row per failure; the latest of each key stays open. */
    "UPDATE tfsync.failed_records f SET status = 'superseded' WHERE EXISTS"
    "  (SELECT 1 FROM tfsync.failed_records g WHERE g.pair = f.pair"
    "   AND g.entity = f.entity AND g.source_key = f.source_key AND g.id > f.id);"
    "UPDATE tfsync.failed_records SET status = 'resolved' WHERE resolved_at IS NOT NULL"
    "  AND status = 'open';"
    "CREATE UNIQUE INDEX failed_records_one_open ON tfsync.failed_records"
    "  (pair, entity, source_key) WHERE status = 'open';"
    "CREATE INDEX failed_records_pair_status ON tfsync.failed_records (pair, status, id);"
    "CREATE TABLE tfsync.pending_deletes ("
    "  run_id bigint NOT NULL,"
    "  entity text NOT NULL,"
    "  source_key text NOT NULL,"
    "  PRIMARY KEY (run_id, entity, source_key));"
    "ALTER TABLE tfsync.audit DROP CONSTRAINT audit_op_check;"
    "ALTER TABLE tfsync.audit ADD CONSTRAINT audit_op_check CHECK (op IN ('insert', 'update',"
    "  'delete', 'deactivate', 'conflict', 'resolve', 'replay', 'discard', 'confirm'));"
    "ALTER TABLE tfsync.audit ADD COLUMN detail json;",
    /* 6: SDK 1.3. A full run's estimate of each entity's record count ({entity: count or
     * null}, the source's cb_estimate), and what the plugins' cb_run_end answered when it
     * failed ([{system, role, error}]): both shown on the run, on any node. */
    "ALTER TABLE tfsync.runs ADD COLUMN estimates jsonb,"
    "  ADD COLUMN run_end_errors jsonb;",
    /* 7: the audit trail hash-chained per pair (store_audit.h): each entry's place in its
     * pair's chain, the hash of the entry before it and its own; the head of each chain,
     * locked by every transaction that writes entries; the head each run ended at. Entries
     * already there keep no seq: verify counts them as unchained, those up to
     * last_unchained_id. */
    "ALTER TABLE tfsync.audit ADD COLUMN seq bigint, ADD COLUMN prev_hash bytea,"
    "  ADD COLUMN hash bytea;"
    "CREATE UNIQUE INDEX audit_chain ON tfsync.audit (pair, seq) WHERE seq IS NOT NULL;"
    "CREATE INDEX audit_unchained ON tfsync.audit (pair, id) WHERE seq IS NULL;"
    "CREATE TABLE tfsync.audit_heads ("
    "  pair text PRIMARY KEY,"
    "  seq bigint NOT NULL DEFAULT 0,"
    "  hash bytea NOT NULL DEFAULT decode(repeat('0', 64), 'hex'),"
    "  updated_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE tfsync.audit_chain_start (last_unchained_id bigint NOT NULL);"
    "INSERT INTO tfsync.audit_chain_start SELECT coalesce(max(id), 0) FROM tfsync.audit;"
    "ALTER TABLE tfsync.runs ADD COLUMN audit_seq bigint, ADD COLUMN audit_hash bytea;",
    /* 8: the sync map's last written record and target keys as json, not jsonb: the daemon
     * writes them (a batch's COPY) and reads them back whole, and never asks PostgreSQL to
     * look inside; jsonb's parse and key sort was a third of the state store's CPU in a
     * first full run (docs/decisions.md). json still checks the text and keeps the
     * operators -> and ->> for a person querying the map. */
    "ALTER TABLE tfsync.sync_map ALTER COLUMN target_keys TYPE json,"
    "  ALTER COLUMN target_record TYPE json;",
};

static atomic_int connect_timeout_s = TFS_STATE_CONNECT_TIMEOUT_S_DEFAULT;

/* The one run listener: its function and context swapped together. */
typedef struct run_listener {
    tfs_store_run_listener fn;
    void *ctx;
} run_listener;
static run_listener listener_slots[2];
static _Atomic(run_listener *) listener;

void tfs_store_set_run_listener(tfs_store_run_listener fn, void *ctx)
{
    /* Two slots: the one not in use is written, then published. Set before the threads
     * that change runs start and cleared after they end (store.h), so no caller still
     * reads the slot being rewritten. */
    run_listener *cur = atomic_load(&listener);
    run_listener *next = cur == &listener_slots[0] ? &listener_slots[1] : &listener_slots[0];
    next->fn = fn;
    next->ctx = ctx;
    atomic_store(&listener, fn ? next : NULL);
}

void tfs_store_run_changed(tfs_store *s, int64_t run_id)
{
    run_listener *l = atomic_load(&listener);
    if (l && l->fn && run_id > 0)
        l->fn(l->ctx, s, run_id);
}

int tfs_store_idle(tfs_store *s)
{
    return s && s->conn && PQstatus(s->conn) == CONNECTION_OK &&
           PQtransactionStatus(s->conn) == PQTRANS_IDLE;
}

void tfs_store_set_connect_timeout(long long seconds)
{
    atomic_store(&connect_timeout_s, seconds > 0 ? (int)seconds : 0);
}

int tfs_store_open(const char *conninfo, tfs_store **out, tfs_error *err)
{
    *out = NULL;
    tfs_store *s = calloc(1, sizeof *s);
    if (!s || !(s->conninfo = strdup(conninfo))) {
        free(s);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    /* connect_timeout first, so that one the conninfo names itself wins. */
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%d", atomic_load(&connect_timeout_s));
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const values[] = {timeout, conninfo, NULL};
    s->conn = PQconnectdbParams(keys, values, 1);
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

void tfs_store_trim(tfs_store *s)
{
    if (s)
        tfs_buf_free(&s->buf);
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
        rc = tfs_store_fail(s, r, err, "read the state store's migrations");
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

int tfs_store_schema_version(tfs_store *s, int *have, int *want, tfs_error *err)
{
    *have = 0;
    *want = (int)(sizeof migrations / sizeof migrations[0]);
    /* A store never migrated has no table: version 0, not an error. */
    PGresult *r = PQexec(s->conn, "SELECT to_regclass('tfsync.migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the state store's migrations");
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    r = PQexec(s->conn, "SELECT coalesce(max(version), 0) FROM tfsync.migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the state store's migrations");
    *have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int tfs_store_run_create(tfs_store *s, const char *pair, const char *mode, const char *actor,
                         const char *job_params, int64_t *run_id, tfs_error *err)
{
    const char *params[] = {pair, mode, actor, job_params};
    /* The unique index refuses a second active run of the pair. The run holding it may end
     * between our INSERT and the SELECT that names it; then the INSERT is tried again. */
    for (int attempt = 0; attempt < 5; attempt++) {
        PGresult *r = PQexecParams(s->conn,
                                   "INSERT INTO tfsync.runs (pair, mode, state, actor, params)"
                                   " VALUES ($1, $2, 'queued', $3, $4::jsonb) RETURNING run_id",
                                   4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            *run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            tfs_store_run_changed(s, *run_id);
            return 0;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!state || strcmp(state, "23505") != 0)
            return tfs_store_fail(s, r, err, "create a run");
        PQclear(r);
        r = PQexecParams(s->conn,
                         "SELECT run_id FROM tfsync.runs WHERE pair = $1"
                         " AND state IN ('queued', 'running', 'waiting', 'held')",
                         1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            return tfs_store_fail(s, r, err, "find the running run");
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

int tfs_store_run_cancel(tfs_store *s, int64_t run_id, char state[16], tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(s->conn,
                               /* Nobody executes a held run: it ends here, and what
                                * it set aside is never applied. */
                               "WITH asked AS (UPDATE tfsync.runs SET cancel_requested = true,"
                               "  state = CASE WHEN state = 'held' THEN 'cancelled' ELSE state"
                               "  END, finished_at = CASE WHEN state = 'held' THEN now() ELSE"
                               "  finished_at END, updated_at = now() WHERE run_id = $1"
                               "  AND state IN ('queued', 'running', 'waiting', 'held')"
                               "  RETURNING state),"
                               " dropped AS (DELETE FROM tfsync.pending_deletes WHERE"
                               "  run_id = $1 AND (SELECT state FROM asked) = 'cancelled')"
                               " SELECT (SELECT state FROM asked),"
                               " (SELECT state FROM tfsync.runs WHERE run_id = $1)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "cancel a run");
    int asked = !PQgetisnull(r, 0, 0), known = !PQgetisnull(r, 0, 1);
    /* The state after the update when it applied (a held run is cancelled now). */
    snprintf(state, 16, "%s", asked ? PQgetvalue(r, 0, 0) : known ? PQgetvalue(r, 0, 1) : "");
    PQclear(r);
    if (!known)
        return tfs_error_set(err, TFS_ENOTFOUND, "no run %" PRId64, run_id);
    if (!asked)
        return tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " has already ended (%s)",
                             run_id, state);
    tfs_store_run_changed(s, run_id);
    return 0;
}

int tfs_store_run_cancel_requested(tfs_store *s, int64_t run_id, int *requested,
                                   tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT cancel_requested FROM tfsync.runs WHERE run_id = $1", 1,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a run");
    *requested = PQntuples(r) && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

int tfs_store_ping(tfs_store *s, tfs_error *err)
{
    return tfs_pg_exec(s->conn, "SELECT 1", err);
}

int tfs_store_flush(tfs_store *s, tfs_error *err)
{
    /* A transaction with an xid writes a commit record, and a synchronous commit returns
     * once the WAL is flushed up to it: up to every commit before it, on any connection. */
    int rc = tfs_pg_exec(s->conn,
                         "BEGIN; SET LOCAL synchronous_commit TO on;"
                         " SELECT pg_current_xact_id(); COMMIT",
                         err);
    if (rc)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}

int tfs_store_run_set_state(tfs_store *s, int64_t run_id, const char *state,
                            const char *error_text, const tfs_store_counts *counts,
                            size_t n_counts, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    tfs_buf cb = TFS_BUF_INIT;
    if (counts && tfs_store_counts_json(&cb, counts, n_counts) != 0) {
        tfs_buf_free(&cb);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const char *params[] = {id, state, error_text, counts ? tfs_buf_str(&cb) : NULL};
    /* A waiting run's text is why it waits, kept apart from a failed run's error; it
     * waits since the first time it was set waiting. */
    PGresult *r = PQexecParams(
        s->conn,
        "UPDATE tfsync.runs SET state = $2,"
        " error = CASE WHEN $2 = 'waiting' THEN error ELSE coalesce($3, error) END,"
        " waiting_reason = CASE WHEN $2 = 'waiting' THEN $3 END,"
        " waiting_since = CASE WHEN $2 = 'waiting' THEN coalesce(waiting_since, now()) END,"
        " counts = coalesce($4::jsonb, counts), updated_at = now(),"
        " started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now())"
        "              ELSE started_at END,"
        " finished_at = CASE WHEN $2 IN ('succeeded', 'partial', 'failed', 'cancelled')"
        "               THEN now() END"
        " WHERE run_id = $1",
        4, NULL, params, NULL, NULL, 0);
    tfs_buf_free(&cb);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "update a run");
    PQclear(r);
    tfs_store_run_changed(s, run_id);
    return 0;
}

int tfs_store_run_set_estimate(tfs_store *s, int64_t run_id, const char *entity,
                               int64_t count, tfs_error *err)
{
    char id[32], n[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    snprintf(n, sizeof n, "%" PRId64, count);
    const char *params[] = {id, entity, count >= 0 ? n : NULL};
    PGresult *r = PQexecParams(
        s->conn,
        "UPDATE tfsync.runs SET estimates = coalesce(estimates, '{}'::jsonb) ||"
        " jsonb_build_object($2::text, $3::int8), updated_at = now() WHERE run_id = $1",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "record a run's estimate");
    PQclear(r);
    tfs_store_run_changed(s, run_id);
    return 0;
}

int tfs_store_pair_open_counts(tfs_store *s, const char *pair, int64_t *conflicts,
                               int64_t *dead_letters, tfs_error *err)
{
    const char *params[] = {pair};
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT (SELECT count(*) FROM tfsync.conflicts WHERE pair = $1 AND status = 'open'),"
        " (SELECT count(*) FROM tfsync.failed_records WHERE pair = $1 AND status = 'open')",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return tfs_store_fail(s, r, err, "count a pair's open conflicts and dead letters");
    *conflicts = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *dead_letters = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return 0;
}

int tfs_store_run_set_run_end_errors(tfs_store *s, int64_t run_id, const json_t *errors,
                                     tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    char *text = json_dumps(errors, JSON_COMPACT);
    if (!text)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *params[] = {id, text};
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE tfsync.runs SET run_end_errors = $2::jsonb WHERE run_id = $1",
                               2, NULL, params, NULL, NULL, 0);
    free(text);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "record a run's run-end errors");
    PQclear(r);
    tfs_store_run_changed(s, run_id);
    return 0;
}

static int64_t int8_at(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int tfs_store_unfinished_runs(tfs_store *s, tfs_store_run **runs, size_t *n, tfs_error *err)
{
    *runs = NULL;
    *n = 0;
    PGresult *r = PQexec(s->conn, "SELECT run_id, pair, mode, actor FROM tfsync.runs"
                                  " WHERE state IN ('queued', 'running', 'waiting')"
                                  " ORDER BY run_id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read unfinished runs");
    int rows = PQntuples(r);
    tfs_store_run *out = calloc((size_t)rows + 1, sizeof *out);
    if (!out) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        out[i].run_id = int8_at(r, i, 0);
        snprintf(out[i].pair, sizeof out[i].pair, "%s", PQgetvalue(r, i, 1));
        snprintf(out[i].mode, sizeof out[i].mode, "%s", PQgetvalue(r, i, 2));
        snprintf(out[i].actor, sizeof out[i].actor, "%s", PQgetvalue(r, i, 3));
        snprintf(out[i].state, sizeof out[i].state, "unfinished");
    }
    PQclear(r);
    *runs = out;
    *n = (size_t)rows;
    return 0;
}

/* The keys as a PostgreSQL text array literal, in s->buf. */
int tfs_store_keys_literal(tfs_store *s, const char *const *keys, size_t n, tfs_error *err)
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


int tfs_store_fail(tfs_store *s, PGresult *res, tfs_error *err, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(s->diag.sqlstate, sizeof s->diag.sqlstate, "%s", state ? state : "");
    snprintf(s->diag.constraint, sizeof s->diag.constraint, "%s", constraint ? constraint : "");
    return tfs_pg_fail(s->conn, res, err, what);
}

int tfs_store_counts_json(tfs_buf *b, const tfs_store_counts *counts, size_t n)
{
    tfs_buf_putc(b, '{');
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const tfs_store_counts *c = &counts[i];
        if (!c->started)
            continue;
        if (!first)
            tfs_buf_putc(b, ',');
        first = 0;
        tfs_json_string_append(b, c->entity, strlen(c->entity));
        tfs_buf_printf(b,
                       ":{\"read\":%" PRId64 ",\"written\":%" PRId64 ",\"unchanged\":%" PRId64
                       ",\"deleted\":%" PRId64 ",\"failed\":%" PRId64
                       ",\"read_failed\":%" PRId64
                       ",\"transform_failed\":%" PRId64 ",\"validate_failed\":%" PRId64
                       ",\"write_failed\":%" PRId64,
                       c->read, c->written, c->unchanged, c->deleted,
                       c->read_failed + c->transform_failed + c->validate_failed +
                           c->write_failed,
                       c->read_failed, c->transform_failed, c->validate_failed, c->write_failed);
        tfs_buf_printf(b,
                       ",\"skipped\":%" PRId64 ",\"conflicts\":%" PRId64 ",\"drift\":%" PRId64
                       ",\"swept\":%" PRId64 ",\"set_aside\":%" PRId64,
                       c->skipped, c->conflicts, c->drift, c->swept, c->set_aside);
        tfs_buf_printf(b,
                       ",\"timings_ms\":{\"read\":%" PRId64 ",\"transform\":%" PRId64
                       ",\"compare\":%" PRId64 ",\"write\":%" PRId64 ",\"commit\":%" PRId64
                       "}}",
                       (int64_t)c->read_ms, (int64_t)c->transform_ms, (int64_t)c->compare_ms,
                       (int64_t)c->write_ms, (int64_t)c->commit_ms);
    }
    tfs_buf_putc(b, '}');
    return b->oom ? -1 : 0;
}

/* The run's counts, one row per entity, taken apart in SQL so no JSON is parsed here. */
static int run_counts(tfs_store *s, const char *id, tfs_store_run *out, tfs_error *err)
{
    const char *params[] = {id};
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT e.key, (e.value->>'read')::int8, (e.value->>'written')::int8,"
        " (e.value->>'unchanged')::int8, (e.value->>'deleted')::int8,"
        " (e.value->>'transform_failed')::int8, (e.value->>'validate_failed')::int8,"
        " (e.value->>'write_failed')::int8, (e.value->'timings_ms'->>'read')::int8,"
        " (e.value->'timings_ms'->>'transform')::int8,"
        " (e.value->'timings_ms'->>'compare')::int8,"
        " (e.value->'timings_ms'->>'write')::int8, (e.value->'timings_ms'->>'commit')::int8,"
        " (e.value->>'skipped')::int8, (e.value->>'conflicts')::int8,"
        " (e.value->>'drift')::int8, (e.value->>'swept')::int8,"
        " (e.value->>'set_aside')::int8, (e.value->>'read_failed')::int8"
        " FROM tfsync.runs r CROSS JOIN LATERAL jsonb_each(CASE WHEN"
        " jsonb_typeof(r.counts) = 'object' THEN r.counts ELSE '{}' END) e"
        " WHERE r.run_id = $1 AND jsonb_typeof(e.value) = 'object' ORDER BY e.key",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a run's counts");
    int rows = PQntuples(r);
    out->counts = calloc((size_t)rows + 1, sizeof *out->counts);
    if (!out->counts) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        tfs_store_counts *c = &out->counts[i];
        snprintf(c->entity, sizeof c->entity, "%s", PQgetvalue(r, i, 0));
        c->started = 1;
        c->read = int8_at(r, i, 1);
        c->written = int8_at(r, i, 2);
        c->unchanged = int8_at(r, i, 3);
        c->deleted = int8_at(r, i, 4);
        c->transform_failed = int8_at(r, i, 5);
        c->validate_failed = int8_at(r, i, 6);
        c->write_failed = int8_at(r, i, 7);
        c->read_ms = (double)int8_at(r, i, 8);
        c->transform_ms = (double)int8_at(r, i, 9);
        c->compare_ms = (double)int8_at(r, i, 10);
        c->write_ms = (double)int8_at(r, i, 11);
        c->commit_ms = (double)int8_at(r, i, 12);
        c->skipped = int8_at(r, i, 13);
        c->conflicts = int8_at(r, i, 14);
        c->drift = int8_at(r, i, 15);
        c->swept = int8_at(r, i, 16);
        c->set_aside = int8_at(r, i, 17);
        c->read_failed = int8_at(r, i, 18);
    }
    out->n_counts = (size_t)rows;
    PQclear(r);
    return 0;
}

int tfs_store_run_get(tfs_store *s, int64_t run_id, tfs_store_run *out, tfs_error *err)
{
    memset(out, 0, sizeof *out);
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT pair, mode, state, actor, params::text, result::text,"
                               " confirmed_deletes FROM tfsync.runs WHERE run_id = $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a run");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOTFOUND, "no run %" PRId64, run_id);
    }
    out->run_id = run_id;
    snprintf(out->pair, sizeof out->pair, "%s", PQgetvalue(r, 0, 0));
    snprintf(out->mode, sizeof out->mode, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->state, sizeof out->state, "%s", PQgetvalue(r, 0, 2));
    snprintf(out->actor, sizeof out->actor, "%s", PQgetvalue(r, 0, 3));
    out->confirmed_deletes = PQgetisnull(r, 0, 6) ? -1 : int8_at(r, 0, 6);
    for (int c = 4; c <= 5; c++) {
        json_t **dst = c == 4 ? &out->params : &out->result;
        if (!PQgetisnull(r, 0, c) && !(*dst = json_loads(PQgetvalue(r, 0, c), 0, NULL))) {
            PQclear(r);
            tfs_store_run_clear(out);
            return tfs_error_set(err, TFS_ENOMEM, "out of memory reading run %" PRId64, run_id);
        }
    }
    PQclear(r);
    int rc = run_counts(s, id, out, err);
    if (rc)
        tfs_store_run_clear(out);
    return rc;
}

void tfs_store_run_clear(tfs_store_run *r)
{
    if (!r)
        return;
    free(r->counts);
    r->counts = NULL;
    r->n_counts = 0;
    json_decref(r->params);
    json_decref(r->result);
    r->params = r->result = NULL;
}

int tfs_store_run_set_result(tfs_store *s, int64_t run_id, const json_t *result,
                             tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    if (result && !text)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *params[] = {id, text};
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE tfsync.runs SET result = $2::jsonb, updated_at = now()"
                               " WHERE run_id = $1",
                               2, NULL, params, NULL, NULL, 0);
    free(text);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "record a run's result");
    PQclear(r);
    tfs_store_run_changed(s, run_id);
    return 0;
}

int tfs_store_run_ended(tfs_store *s, int64_t run_id, char state[16], tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(s->conn, "SELECT state FROM tfsync.runs WHERE run_id = $1", 1,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a run");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOTFOUND, "no run %" PRId64, run_id);
    }
    snprintf(state, 16, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return tfs_store_state_is_final(state);
}

int tfs_store_state_is_final(const char *state)
{
    static const char *const finals[] = {"succeeded", "partial", "failed", "cancelled"};
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
        if (strcmp(state, finals[i]) == 0)
            return 1;
    return 0;
}

int tfs_store_run_hold(tfs_store *s, int64_t run_id, const char *reason,
                       const json_t *held_deletes, const tfs_store_counts *counts,
                       size_t n_counts, tfs_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    char *deletes = json_dumps(held_deletes, JSON_COMPACT);
    tfs_buf cb = TFS_BUF_INIT;
    if (!deletes || (counts && tfs_store_counts_json(&cb, counts, n_counts) != 0)) {
        free(deletes);
        tfs_buf_free(&cb);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const char *params[] = {id, reason, deletes, counts ? tfs_buf_str(&cb) : NULL};
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE tfsync.runs SET state = 'held', held_reason = $2,"
                               " held_deletes = $3::jsonb, counts = coalesce($4::jsonb, counts),"
                               " waiting_reason = NULL, waiting_since = NULL,"
                               " updated_at = now() WHERE run_id = $1",
                               4, NULL, params, NULL, NULL, 0);
    free(deletes);
    tfs_buf_free(&cb);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "hold a run");
    PQclear(r);
    tfs_store_run_changed(s, run_id);
    return 0;
}

int tfs_store_run_confirm(tfs_store *s, int64_t run_id, int64_t deletes, const char *actor,
                          char *pair, char *mode, int64_t *held_total, char state[16],
                          tfs_error *err)
{
    char id[32], n[32];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    snprintf(n, sizeof n, "%" PRId64, deletes);
    const char *params[] = {id, n, actor};
    /* The pair's audit head is locked first, as every writer of its entries does (so no two
     * lock it and a run the other way round), then one statement: the run is locked,
     * checked, queued again and the confirmation audited together, so two confirms (or a
     * confirm and a cancel) cannot both pass; the entries chained before COMMIT. */
    char run_pair[128] = "";
    PGresult *r = PQexecParams(s->conn, "SELECT pair FROM tfsync.runs WHERE run_id = $1", 1,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "confirm a held run");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOTFOUND, "no run %" PRId64, run_id);
    }
    snprintf(run_pair, sizeof run_pair, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    tfs_audit_head head;
    int rc;
    if ((rc = tfs_pg_exec(s->conn, "BEGIN", err)))
        return rc;
    if ((rc = tfs_store_audit_lock(s, run_pair, &head, err)))
        goto rollback;
    r = PQexecParams(
        s->conn,
        "WITH r AS (SELECT run_id, pair, mode, state, held_reason, held_deletes,"
        "   (SELECT coalesce(sum(e.value::int8), 0) FROM jsonb_each_text("
        "    coalesce(held_deletes, '{}')) e) AS total"
        "  FROM tfsync.runs WHERE run_id = $1 FOR UPDATE),"
        " ok AS (UPDATE tfsync.runs u SET state = 'queued', confirmed_deletes = $2::int8,"
        "   updated_at = now() FROM r WHERE u.run_id = r.run_id AND r.state = 'held'"
        "   AND r.total = $2::int8 RETURNING u.run_id),"
        " aud AS (INSERT INTO tfsync.audit (pair, run_id, entity, source_key, op, changes,"
        "   actor, detail) SELECT r.pair, r.run_id, e.key, '*', 'confirm', '{}'::json, $3,"
        "   json_build_object('deletes', e.value::int8, 'confirmed', $2::int8, 'reason',"
        "   r.held_reason) FROM r CROSS JOIN LATERAL jsonb_each_text(r.held_deletes) e"
        "   WHERE EXISTS (SELECT 1 FROM ok))"
        " SELECT pair, mode, state, total, EXISTS (SELECT 1 FROM ok) FROM r",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tfs_store_fail(s, r, err, "confirm a held run");
        goto rollback;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        rc = tfs_error_set(err, TFS_ENOTFOUND, "no run %" PRId64, run_id);
        goto rollback;
    }
    snprintf(pair, 128, "%s", PQgetvalue(r, 0, 0));
    snprintf(mode, 16, "%s", PQgetvalue(r, 0, 1));
    snprintf(state, 16, "%s", PQgetvalue(r, 0, 2));
    *held_total = int8_at(r, 0, 3);
    int done = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
    PQclear(r);
    if ((done && (rc = tfs_store_audit_finish(s, &head, 0, err))) ||
        (rc = tfs_pg_exec(s->conn, "COMMIT", err)))
        goto rollback;
    if (done) {
        snprintf(state, 16, "queued");
        tfs_store_run_changed(s, run_id);
        return 0;
    }
    if (strcmp(state, "held") != 0)
        return tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " is not held (it is %s)",
                             run_id, state);
    return tfs_error_set(err, TFS_ECONFLICT,
                         "run %" PRId64 " is held for %" PRId64 " deletions, not %" PRId64,
                         run_id, *held_total, deletes);
rollback:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return rc;
}
