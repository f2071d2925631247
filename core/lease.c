/* core/lease.c — leases and fencing epochs in tfsync.leases; see lease.h. One of the state
 * store's files (it shares store_private.h).
 */
#include "lease.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"
#include "pg.h"
#include "store_private.h"

void tfs_lease_node_id(const char *configured, char *out, size_t size)
{
    if (configured) {
        snprintf(out, size, "%s", configured);
        return;
    }
    char host[96] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

static void unit_of(int64_t run_id, char *out, size_t size)
{
    snprintf(out, size, "run:%" PRId64, run_id);
}

/* What a run's progress is recognised by: its pair's cursors and the counts its last
 * committed batch stored (they change with every commit, the sweep's too). */
#define CHECKPOINT_SQL                                                                         \
    "SELECT md5(coalesce((SELECT string_agg(entity || '/' || kind || '/' ||"                  \
    " coalesce(encode(cursor, 'hex'), '') || '/' || done::text, ',' ORDER BY entity, kind)"  \
    " FROM tfsync.cursors WHERE pair = $1), '') || '|' ||"                                   \
    " coalesce((SELECT counts::text FROM tfsync.runs WHERE run_id = $2::int8), ''))"

static int fail_run_poisoned(tfs_store *s, const char *id, const char *unit, int deaths,
                             tfs_error *err)
{
    char reason[256];
    snprintf(reason, sizeof reason,
             "the daemon died %d times in this run at the same checkpoint; it is not resumed "
             "again (see the daemon's log for the plugin it was loading or running)",
             deaths);
    const char *params[] = {id, reason};
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE tfsync.runs SET state = 'failed', error = $2,"
                               " finished_at = now(), updated_at = now() WHERE run_id = $1",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "fail a poison run");
    PQclear(r);
    const char *lp[] = {unit};
    r = PQexecParams(s->conn,
                     "UPDATE tfsync.leases SET released = true, expires_at = now(),"
                     " deaths = deaths + 1 WHERE unit = $1",
                     1, NULL, lp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "release a poison run's lease");
    PQclear(r);
    int rc = tfs_pg_exec(s->conn, "COMMIT", err);
    if (rc)
        return rc;
    tfs_store_run_changed(s, strtoll(id, NULL, 10));
    tfs_error_set(err, TFS_ELIMIT, "%s", reason);
    tfs_error_hint(err, "fix or replace the plugin or the data of that batch, then start a new "
                        "run");
    return TFS_ELIMIT;
}

/* Locks run id (queued or running) for this transaction, skipping it when another node
 * holds the row: TFS_ECONFLICT then. Its pair into pair. */
static int lock_run(tfs_store *s, int64_t run_id, const char *id, char *pair, size_t cap,
                    tfs_error *err)
{
    const char *p[] = {id};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT pair FROM tfsync.runs WHERE run_id = $1"
                               " AND state IN ('queued', 'running', 'waiting')"
                               " FOR UPDATE SKIP LOCKED",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "take a run");
    int rc = 0;
    if (PQntuples(r) == 0)
        rc = tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " is taken or finished", run_id);
    else
        snprintf(pair, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* A lease row as the claim finds it, locked for this transaction. */
typedef struct lease_row {
    int had, died, expired, deaths;
    char checkpoint[80], holder[128];
} lease_row;

static int lock_lease(tfs_store *s, const char *unit, lease_row *lr, tfs_error *err)
{
    const char *p[] = {unit};
    PGresult *r = PQexecParams(s->conn,
                               "SELECT node, released, expires_at <= now(), checkpoint, deaths"
                               " FROM tfsync.leases WHERE unit = $1 FOR UPDATE",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a lease");
    memset(lr, 0, sizeof *lr);
    lr->had = PQntuples(r) == 1;
    if (lr->had) {
        lr->died = strcmp(PQgetvalue(r, 0, 1), "f") == 0;
        lr->expired = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        lr->deaths = atoi(PQgetvalue(r, 0, 4));
        snprintf(lr->checkpoint, sizeof lr->checkpoint, "%s", PQgetvalue(r, 0, 3));
        snprintf(lr->holder, sizeof lr->holder, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return 0;
}

/* The run's checkpoint fingerprint (CHECKPOINT_SQL) into cp. */
static int run_checkpoint(tfs_store *s, const char *pair, const char *id, char *cp, size_t cap,
                          tfs_error *err)
{
    const char *p[] = {pair, id};
    PGresult *r = PQexecParams(s->conn, CHECKPOINT_SQL, 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read a run's checkpoint");
    snprintf(cp, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* Writes the lease of unit to node with a new epoch (into *epoch) and records the run's
 * node. */
static int write_lease(tfs_store *s, const char *unit, const char *id, const char *node,
                       const char *ttl, const char *cp, int deaths, int64_t *epoch,
                       tfs_error *err)
{
    char deaths_s[16];
    snprintf(deaths_s, sizeof deaths_s, "%d", deaths);
    const char *p4[] = {unit, id, node, ttl, cp, deaths_s};
    static const char sql[] =
        "INSERT INTO tfsync.leases (unit, run_id, node, epoch, expires_at, checkpoint, deaths)"
        " VALUES ($1, $2, $3, 1, now() + $4::int8 * interval '1 millisecond', $5, $6)"
        " ON CONFLICT (unit) DO UPDATE SET node = excluded.node,"
        " epoch = tfsync.leases.epoch + 1, expires_at = excluded.expires_at,"
        " released = false, checkpoint = excluded.checkpoint, deaths = excluded.deaths,"
        " taken_at = now()"
        " RETURNING epoch";
    PGresult *r = PQexecParams(s->conn, sql, 6, NULL, p4, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "take a lease");
    *epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    const char *p5[] = {id, node};
    r = PQexecParams(s->conn, "UPDATE tfsync.runs SET node = $2 WHERE run_id = $1", 2, NULL,
                     p5, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "record a run's node");
    PQclear(r);
    return 0;
}

int tfs_lease_claim(tfs_store *s, int64_t run_id, const char *node, long long ttl_ms,
                    unsigned max_deaths, tfs_lease *out, tfs_error *err)
{
    char id[32], unit[64], ttl[32], pair[128], cp[80];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    unit_of(run_id, unit, sizeof unit);
    snprintf(ttl, sizeof ttl, "%lld", ttl_ms);
    memset(out, 0, sizeof *out);
    lease_row lr;
    int rc;
    if ((rc = tfs_pg_exec(s->conn, "BEGIN", err)))
        return rc;
    if ((rc = lock_run(s, run_id, id, pair, sizeof pair, err)) ||
        (rc = lock_lease(s, unit, &lr, err)))
        goto fail;
    if (lr.died && !lr.expired) {
        rc = tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " is held by node \"%s\"",
                           run_id, lr.holder);
        goto fail;
    }
    if ((rc = run_checkpoint(s, pair, id, cp, sizeof cp, err)))
        goto fail;
    /* A holder that died: one more death at this checkpoint, or the first at a new one. */
    int deaths = lr.died ? (strcmp(cp, lr.checkpoint) == 0 ? lr.deaths + 1 : 1) : 0;
    if (lr.died)
        tfs_log_warn("lease", "run %" PRId64 ": node \"%s\" died holding it (%d time%s at this "
                     "checkpoint)", run_id, lr.holder, deaths, deaths == 1 ? "" : "s");
    if (max_deaths && deaths >= (int)max_deaths) {
        if ((rc = fail_run_poisoned(s, id, unit, deaths, err)) != TFS_ELIMIT)
            goto fail;
        return rc;
    }
    if ((rc = write_lease(s, unit, id, node, ttl, cp, deaths, &out->epoch, err)) ||
        (rc = tfs_pg_exec(s->conn, "COMMIT", err)))
        goto fail;
    out->run_id = run_id;
    snprintf(out->unit, sizeof out->unit, "%s", unit);
    snprintf(out->node, sizeof out->node, "%s", node);
    tfs_store_run_changed(s, run_id); /* its node and lease */
    return 0;
fail:
    PQclear(PQexec(s->conn, "ROLLBACK"));
    out->epoch = 0;
    return rc;
}

static int exec_params(tfs_store *s, const char *sql, int n, const char *const *params,
                       const char *what, int *rows, tfs_error *err)
{
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, what);
    if (rows)
        *rows = st == PGRES_TUPLES_OK ? PQntuples(r) : atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

int tfs_lease_renew(tfs_store *s, const tfs_lease *l, long long ttl_ms, tfs_error *err)
{
    if (!l->epoch)
        return 0;
    char ttl[32], epoch[32];
    snprintf(ttl, sizeof ttl, "%lld", ttl_ms);
    snprintf(epoch, sizeof epoch, "%" PRId64, l->epoch);
    const char *params[] = {l->unit, epoch, ttl};
    int rows = 0;
    int rc = exec_params(s,
                         "UPDATE tfsync.leases SET expires_at = now() + $3::int8 *"
                         " interval '1 millisecond' WHERE unit = $1 AND epoch = $2::int8"
                         " AND NOT released",
                         3, params, "renew a lease", &rows, err);
    if (rc == 0 && rows == 0)
        return tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " lost its lease (epoch %"
                             PRId64 ")", l->run_id, l->epoch);
    return rc;
}

int tfs_lease_release(tfs_store *s, const tfs_lease *l, tfs_error *err)
{
    if (!l->epoch)
        return 0;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%" PRId64, l->epoch);
    const char *params[] = {l->unit, epoch};
    return exec_params(s,
                       "UPDATE tfsync.leases SET released = true, expires_at = now(), deaths = 0"
                       " WHERE unit = $1 AND epoch = $2::int8",
                       2, params, "release a lease", NULL, err);
}

int tfs_lease_check(tfs_store *s, const tfs_lease *l, tfs_error *err)
{
    if (!l || !l->epoch)
        return 0;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%" PRId64, l->epoch);
    const char *params[] = {l->unit, epoch};
    int rows = 0;
    int rc = exec_params(s,
                         "SELECT 1 FROM tfsync.leases WHERE unit = $1 AND epoch = $2::int8"
                         " AND NOT released",
                         2, params, "check a lease", &rows, err);
    if (rc)
        return rc;
    if (rows == 0) {
        tfs_error_set(err, TFS_ECONFLICT, "run %" PRId64 " lost its lease (epoch %" PRId64
                      ") on node \"%s\": another node has taken it over", l->run_id, l->epoch,
                      l->node);
        return TFS_ECONFLICT;
    }
    return 0;
}

int tfs_lease_expire_node(tfs_store *s, const char *node, tfs_error *err)
{
    const char *params[] = {node};
    return exec_params(s,
                       "UPDATE tfsync.leases SET expires_at = now() WHERE node = $1"
                       " AND NOT released AND expires_at > now()",
                       1, params, "expire a node's leases", NULL, err);
}

/* A node id of this host's "hostname:pid" form whose process is gone. */
static int local_and_dead(const char *node)
{
    char me[160];
    tfs_lease_node_id(NULL, me, sizeof me);
    const char *colon = strrchr(me, ':');
    size_t host_len = (size_t)(colon - me) + 1;
    if (strncmp(node, me, host_len) != 0)
        return 0;
    char *end;
    long pid = strtol(node + host_len, &end, 10);
    if (end == node + host_len || *end || pid <= 0)
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int tfs_lease_candidates(tfs_store *s, tfs_lease_candidate *out, size_t max, size_t *n,
                         tfs_error *err)
{
    *n = 0;
    /* Live leases of this host's processes first: a dead one's can be ended now. */
    PGresult *r = PQexec(s->conn, "SELECT DISTINCT node FROM tfsync.leases WHERE NOT released"
                                  " AND expires_at > now()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the leases");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *node = PQgetvalue(r, i, 0);
        if (local_and_dead(node)) {
            tfs_log_info("lease", "node \"%s\" is no longer running; its leases end now", node);
            tfs_lease_expire_node(s, node, NULL);
        }
    }
    PQclear(r);
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[] = {lim};
    r = PQexecParams(s->conn,
                     "SELECT r.run_id, r.pair, r.mode FROM tfsync.runs r"
                     " LEFT JOIN tfsync.leases l ON l.unit = 'run:' || r.run_id"
                     " WHERE r.state IN ('queued', 'running', 'waiting')"
                     " AND (l.unit IS NULL OR l.released OR l.expires_at <= now())"
                     " ORDER BY r.run_id LIMIT $1::int8",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "find runs to take");
    for (int i = 0; i < PQntuples(r) && (size_t)i < max; i++) {
        out[i].run_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(out[i].pair, sizeof out[i].pair, "%s", PQgetvalue(r, i, 1));
        snprintf(out[i].mode, sizeof out[i].mode, "%s", PQgetvalue(r, i, 2));
        (*n)++;
    }
    PQclear(r);
    return 0;
}
