/* core/store_audit.c — the audit hash chain in the state store; see store_audit.h. The
 * batch commit hashes its own entries in C as it builds their COPY rows (store_batch.c);
 * what this file chains after them are the few entries SQL writes (replays, conflicts,
 * discards, confirmations), read back in the same transaction. */
#include "store_audit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "store_private.h"

/* How many entries a walk reads at a time (the number and its text). */
#define VERIFY_PAGE 5000
#define VERIFY_PAGE_TEXT "5000"

/* `at` as the hash covers it (microseconds since 1970 UTC; extract is exact numeric). */
#define AT_US(col) "(extract(epoch FROM " col ") * 1000000)::int8"

static int64_t i8(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *text_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int tfs_store_audit_lock(tfs_store *s, const char *pair, tfs_audit_head *h, tfs_error *err)
{
    memset(h, 0, sizeof *h);
    h->pair = pair;
    const char *params[] = {pair};
    /* An upsert that updates nothing still locks the row, and RETURNING reads the newest
     * committed head (one round trip whether the row existed or not). */
    PGresult *r = PQexecParams(
        s->conn,
        "INSERT INTO tfsync.audit_heads AS h (pair) VALUES ($1)"
        " ON CONFLICT (pair) DO UPDATE SET pair = h.pair"
        " RETURNING h.seq, encode(h.hash, 'hex'), " AT_US("now()") ","
        " (SELECT last_unchained_id FROM tfsync.audit_chain_start)",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return tfs_store_fail(s, r, err, "lock the audit chain's head");
    h->seq = i8(r, 0, 0);
    int bad = tfs_audit_unhex(PQgetvalue(r, 0, 1), h->hash);
    h->now_us = i8(r, 0, 2);
    h->since = i8(r, 0, 3);
    PQclear(r);
    if (bad)
        return tfs_error_set(err, TFS_EPERMANENT, "the audit chain's head of pair \"%s\" has "
                             "no valid hash", pair);
    return 0;
}

/* Chains the entries SQL wrote in this transaction (no seq yet) after h. */
static int seal(tfs_store *s, tfs_audit_head *h, tfs_error *err)
{
    char since[32];
    snprintf(since, sizeof since, "%" PRId64, h->since);
    const char *params[] = {h->pair, since};
    PGresult *r = PQexecParams(
        s->conn,
        "SELECT id, run_id, entity, source_key, op, actor, " AT_US("at") ", changes::text,"
        " detail::text FROM tfsync.audit WHERE pair = $1 AND seq IS NULL AND id > $2::int8"
        " ORDER BY id",
        2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the audit entries to chain");
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return 0;
    }
    tfs_audit_hasher *hs = NULL;
    tfs_buf ids = TFS_BUF_INIT, seqs = TFS_BUF_INIT, prevs = TFS_BUF_INIT,
            hashes = TFS_BUF_INIT;
    int rc = tfs_audit_hasher_new(&hs);
    if (rc) {
        tfs_error_set(err, rc, "could not start a SHA-256");
        goto out;
    }
    tfs_buf *bufs[] = {&ids, &seqs, &prevs, &hashes};
    for (int b = 0; b < 4; b++)
        tfs_buf_putc(bufs[b], '{');
    for (int i = 0; i < n; i++) {
        tfs_audit_entry e = {.seq = h->seq + 1,
                             .pair = h->pair,
                             .run_id = i8(r, i, 1),
                             .entity = PQgetvalue(r, i, 2),
                             .source_key = PQgetvalue(r, i, 3),
                             .op = PQgetvalue(r, i, 4),
                             .actor = PQgetvalue(r, i, 5),
                             .at_us = i8(r, i, 6),
                             .changes = PQgetvalue(r, i, 7),
                             .detail = text_or_null(r, i, 8)};
        unsigned char out[TFS_AUDIT_HASH_LEN];
        if ((rc = tfs_audit_hash(hs, &e, h->hash, out))) {
            tfs_error_set(err, rc, "could not hash an audit entry");
            goto out;
        }
        char prev_hex[65], hex[65];
        tfs_audit_hex(h->hash, prev_hex);
        tfs_audit_hex(out, hex);
        const char *sep = i ? "," : "";
        tfs_buf_printf(&ids, "%s%s", sep, PQgetvalue(r, i, 0));
        tfs_buf_printf(&seqs, "%s%" PRId64, sep, e.seq);
        tfs_buf_printf(&prevs, "%s%s", sep, prev_hex);
        tfs_buf_printf(&hashes, "%s%s", sep, hex);
        h->seq = e.seq;
        memcpy(h->hash, out, sizeof out);
    }
    for (int b = 0; b < 4; b++)
        tfs_buf_putc(bufs[b], '}');
    if (ids.oom || seqs.oom || prevs.oom || hashes.oom) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto out;
    }
    const char *up[] = {ids.data, seqs.data, prevs.data, hashes.data};
    PGresult *u = PQexecParams(
        s->conn,
        "UPDATE tfsync.audit a SET seq = u.seq, prev_hash = decode(u.prev, 'hex'),"
        " hash = decode(u.hash, 'hex')"
        " FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS u(id, seq, prev, hash)"
        " WHERE a.id = u.id",
        4, NULL, up, NULL, NULL, 0);
    if (PQresultStatus(u) != PGRES_COMMAND_OK) {
        rc = tfs_store_fail(s, u, err, "chain audit entries");
        goto out;
    }
    PQclear(u);
out:
    PQclear(r);
    tfs_audit_hasher_free(hs);
    for (int b = 0; b < 4; b++)
        tfs_buf_free(bufs[b]);
    return rc;
}

int tfs_store_audit_finish(tfs_store *s, tfs_audit_head *h, int64_t run_id, tfs_error *err)
{
    int rc = seal(s, h, err);
    if (rc)
        return rc;
    char seq[32], run[32], hex[65];
    snprintf(seq, sizeof seq, "%" PRId64, h->seq);
    snprintf(run, sizeof run, "%" PRId64, run_id);
    tfs_audit_hex(h->hash, hex);
    const char *params[] = {h->pair, seq, hex, run};
    PGresult *r = PQexecParams(
        s->conn,
        "WITH head AS (UPDATE tfsync.audit_heads SET seq = $2::int8, hash = decode($3, 'hex'),"
        " updated_at = now() WHERE pair = $1)"
        " UPDATE tfsync.runs SET audit_seq = $2::int8, audit_hash = decode($3, 'hex')"
        " WHERE run_id = $4::int8 AND $4::int8 > 0",
        4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return tfs_store_fail(s, r, err, "move the audit chain's head");
    PQclear(r);
    return 0;
}

/* ---- verify ------------------------------------------------------------------------- */

static int verify_all(tfs_store *s, const char *pair, json_t **out, tfs_error *err);

static json_t *mismatch(const char *what, const PGresult *r, int row, const char *fmt, ...)
    TFS_PRINTF(4, 5);

/* The first entry that does not match: its columns from r's row (id, seq, run_id, entity,
 * source_key, op first; NULL r for none) and what differs. */
static json_t *mismatch(const char *what, const PGresult *r, int row, const char *fmt, ...)
{
    char detail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_t *m = json_pack("{s:s, s:s}", "what", what, "detail", detail);
    if (m && r) {
        json_object_set_new(m, "id", json_integer(i8(r, row, 0)));
        json_object_set_new(m, "seq", PQgetisnull(r, row, 1) ? json_null()
                                                             : json_integer(i8(r, row, 1)));
        json_object_set_new(m, "run_id", json_integer(i8(r, row, 2)));
        json_object_set_new(m, "entity", json_string(PQgetvalue(r, row, 3)));
        json_object_set_new(m, "source_key", json_string(PQgetvalue(r, row, 4)));
        json_object_set_new(m, "op", json_string(PQgetvalue(r, row, 5)));
    }
    return m;
}

/* The runs of the pair with a recorded head, in chain order. */
typedef struct run_head {
    int64_t run_id, seq;
    unsigned char hash[TFS_AUDIT_HASH_LEN];
} run_head;

static int read_run_heads(tfs_store *s, const char *pair, run_head **out, size_t *n,
                          tfs_error *err)
{
    const char *params[] = {pair};
    *out = NULL;
    *n = 0;
    PGresult *r = PQexecParams(s->conn,
                               "SELECT run_id, audit_seq, encode(audit_hash, 'hex')"
                               " FROM tfsync.runs WHERE pair = $1 AND audit_seq IS NOT NULL"
                               " ORDER BY audit_seq, run_id",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "read the runs' audit heads");
    int rows = PQntuples(r);
    run_head *h = calloc(rows ? (size_t)rows : 1, sizeof *h);
    if (!h) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        h[i].run_id = i8(r, i, 0);
        h[i].seq = i8(r, i, 1);
        if (tfs_audit_unhex(PQgetvalue(r, i, 2), h[i].hash) != 0)
            memset(h[i].hash, 0xff, sizeof h[i].hash); /* matches no entry */
    }
    PQclear(r);
    *out = h;
    *n = (size_t)rows;
    return 0;
}

/* One pair's chain; *out gets the pair's result object. */
static int verify_pair(tfs_store *s, const char *pair, json_t **out, tfs_error *err)
{
    static const unsigned char zero[TFS_AUDIT_HASH_LEN];
    json_t *res = json_pack("{s:s, s:b, s:I}", "pair", pair, "ok", 1, "entries", (json_int_t)0);
    json_t *bad = NULL;
    run_head *runs = NULL;
    size_t n_runs = 0, next_run = 0;
    tfs_audit_hasher *hs = NULL;
    PGresult *r = NULL;
    int rc = 0;
    if (!res || tfs_audit_hasher_new(&hs) != 0) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto out;
    }
    /* The head, the legacy count and the first unchained entry written after the start. */
    const char *p1[] = {pair};
    r = PQexecParams(
        s->conn,
        "SELECT (SELECT seq FROM tfsync.audit_heads WHERE pair = $1),"
        " (SELECT encode(hash, 'hex') FROM tfsync.audit_heads WHERE pair = $1),"
        " (SELECT count(*) FROM tfsync.audit WHERE pair = $1 AND seq IS NULL AND id <="
        "   (SELECT last_unchained_id FROM tfsync.audit_chain_start)),"
        " (SELECT last_unchained_id FROM tfsync.audit_chain_start)",
        1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tfs_store_fail(s, r, err, "read the audit chain's head");
        r = NULL;
        goto out;
    }
    int has_head = !PQgetisnull(r, 0, 0);
    int64_t head_seq = i8(r, 0, 0);
    unsigned char head_hash[TFS_AUDIT_HASH_LEN] = {0};
    if (has_head && tfs_audit_unhex(PQgetvalue(r, 0, 1), head_hash) != 0)
        memset(head_hash, 0xff, sizeof head_hash);
    json_object_set_new(res, "unchained", json_integer(i8(r, 0, 2)));
    json_object_set_new(res, "head", has_head ? json_pack("{s:I, s:s}", "seq",
                                                          (json_int_t)head_seq, "hash",
                                                          PQgetvalue(r, 0, 1))
                                              : json_null());
    char since[32];
    snprintf(since, sizeof since, "%" PRId64, i8(r, 0, 3));
    PQclear(r);
    const char *p2[] = {pair, since};
    r = PQexecParams(s->conn,
                     "SELECT id, seq, run_id, entity, source_key, op FROM tfsync.audit"
                     " WHERE pair = $1 AND seq IS NULL AND id > $2::int8 ORDER BY id LIMIT 1",
                     2, NULL, p2, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tfs_store_fail(s, r, err, "read the audit trail");
        r = NULL;
        goto out;
    }
    if (PQntuples(r) == 1) {
        bad = mismatch("unchained", r, 0, "entry %s was written after the chain began "
                       "(entries after id %s) but has no place in it", PQgetvalue(r, 0, 0),
                       since);
        goto out;
    }
    PQclear(r);
    r = NULL;
    if ((rc = read_run_heads(s, pair, &runs, &n_runs, err)))
        goto out;
    /* Runs that ended before the first entry (seq 0) hold the zero hash. */
    for (; next_run < n_runs && runs[next_run].seq <= 0; next_run++)
        if (runs[next_run].seq < 0 || memcmp(runs[next_run].hash, zero, sizeof zero) != 0) {
            bad = mismatch("run", NULL, 0, "run %" PRId64 " recorded an audit head (seq %"
                           PRId64 ") that no chain starts from", runs[next_run].run_id,
                           runs[next_run].seq);
            goto out;
        }

    int64_t last_seq = 0, last_id = 0, entries = 0;
    unsigned char last_hash[TFS_AUDIT_HASH_LEN] = {0};
    for (;;) {
        char after[32];
        snprintf(after, sizeof after, "%" PRId64, last_seq);
        const char *p3[] = {pair, after};
        r = PQexecParams(
            s->conn,
            "SELECT id, seq, run_id, entity, source_key, op, actor, " AT_US("at") ","
            " changes::text, detail::text, encode(prev_hash, 'hex'), encode(hash, 'hex')"
            " FROM tfsync.audit WHERE pair = $1 AND seq IS NOT NULL AND seq > $2::int8"
            " ORDER BY seq LIMIT " VERIFY_PAGE_TEXT,
            2, NULL, p3, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = tfs_store_fail(s, r, err, "read the audit trail");
            r = NULL;
            goto out;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            tfs_audit_entry e = {.seq = i8(r, i, 1),
                                 .pair = pair,
                                 .run_id = i8(r, i, 2),
                                 .entity = PQgetvalue(r, i, 3),
                                 .source_key = PQgetvalue(r, i, 4),
                                 .op = PQgetvalue(r, i, 5),
                                 .actor = PQgetvalue(r, i, 6),
                                 .at_us = i8(r, i, 7),
                                 .changes = PQgetvalue(r, i, 8),
                                 .detail = text_or_null(r, i, 9)};
            unsigned char prev[TFS_AUDIT_HASH_LEN], stored[TFS_AUDIT_HASH_LEN],
                computed[TFS_AUDIT_HASH_LEN];
            int prev_ok = tfs_audit_unhex(text_or_null(r, i, 10), prev) == 0;
            int stored_ok = tfs_audit_unhex(text_or_null(r, i, 11), stored) == 0;
            if (e.seq != last_seq + 1) {
                int64_t gap = e.seq - last_seq - 1;
                bad = mismatch("link", r, i, "its seq %" PRId64 " does not follow seq %" PRId64
                               " (entry %" PRId64 "): %" PRId64 " %s before it %s missing",
                               e.seq, last_seq, last_id, gap, gap == 1 ? "entry" : "entries",
                               gap == 1 ? "is" : "are");
                goto out;
            }
            if (!prev_ok || memcmp(prev, last_hash, sizeof prev) != 0) {
                bad = mismatch("link", r, i, "its prev_hash is not the hash of the entry "
                               "before it (seq %" PRId64 ", entry %" PRId64 ")", last_seq,
                               last_id);
                goto out;
            }
            if ((rc = tfs_audit_hash(hs, &e, prev, computed))) {
                tfs_error_set(err, rc, "could not hash an audit entry");
                goto out;
            }
            if (!stored_ok || memcmp(computed, stored, sizeof computed) != 0) {
                bad = mismatch("hash", r, i, "its stored text does not match its hash: it "
                               "was changed after it was written");
                goto out;
            }
            for (; next_run < n_runs && runs[next_run].seq == e.seq; next_run++)
                if (memcmp(runs[next_run].hash, stored, sizeof stored) != 0) {
                    bad = mismatch("run", r, i, "run %" PRId64 " ended at this entry with "
                                   "another hash: the entry was replaced", runs[next_run].run_id);
                    goto out;
                }
            last_seq = e.seq;
            last_id = i8(r, i, 0);
            memcpy(last_hash, stored, sizeof stored);
            entries++;
        }
        PQclear(r);
        r = NULL;
        if (n < VERIFY_PAGE)
            break;
    }
    json_object_set_new(res, "entries", json_integer(entries));
    if (next_run < n_runs) {
        bad = mismatch("head", NULL, 0, "run %" PRId64 " ended at seq %" PRId64 " but the "
                       "chain ends at seq %" PRId64 " (entry %" PRId64 "): its newest entries "
                       "are missing", runs[next_run].run_id, runs[next_run].seq, last_seq,
                       last_id);
        goto out;
    }
    if (entries && !has_head) {
        bad = mismatch("head", NULL, 0, "the chain has %" PRId64 " entries but no head row",
                       entries);
        goto out;
    }
    if (has_head && (head_seq != last_seq || memcmp(head_hash, last_hash, sizeof last_hash))) {
        bad = mismatch("head", NULL, 0, "the chain ends at seq %" PRId64 " (entry %" PRId64
                       ") but its head says seq %" PRId64 ": its newest entries are missing"
                       "%s", last_seq, last_id, head_seq,
                       head_seq == last_seq ? " or the last one was replaced" : "");
        goto out;
    }
out:
    if (bad) {
        json_object_set_new(res, "ok", json_false());
        json_object_set_new(res, "mismatch", bad);
    }
    PQclear(r);
    free(runs);
    tfs_audit_hasher_free(hs);
    if (rc) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

int tfs_store_audit_verify(tfs_store *s, const char *pair, json_t **out, tfs_error *err)
{
    *out = NULL;
    /* One snapshot for the whole walk: entries a running sync commits meanwhile would
     * otherwise run past the head read first. */
    int rc = tfs_pg_exec(s->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    if (rc)
        return rc;
    rc = verify_all(s, pair, out, err);
    tfs_error e2 = {0};
    if (tfs_pg_exec(s->conn, rc ? "ROLLBACK" : "COMMIT", &e2) && !rc) {
        json_decref(*out);
        *out = NULL;
        *err = e2;
        rc = e2.code;
    }
    return rc;
}

static int verify_all(tfs_store *s, const char *pair, json_t **out, tfs_error *err)
{
    PGresult *r;
    if (pair) {
        const char *params[] = {pair};
        r = PQexecParams(s->conn, "SELECT $1::text", 1, NULL, params, NULL, NULL, 0);
    } else {
        /* Every pair with a head or a chained entry: one whose head was deleted too. */
        r = PQexec(s->conn, "SELECT pair FROM tfsync.audit_heads UNION"
                            " SELECT DISTINCT pair FROM tfsync.audit WHERE seq IS NOT NULL"
                            " ORDER BY 1");
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return tfs_store_fail(s, r, err, "list the audit chains");
    json_t *res = json_pack("{s:b, s:[]}", "ok", 1, "pairs");
    if (!res) {
        PQclear(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        json_t *one = NULL;
        if ((rc = verify_pair(s, PQgetvalue(r, i, 0), &one, err)))
            break;
        if (!json_is_true(json_object_get(one, "ok")))
            json_object_set_new(res, "ok", json_false());
        json_array_append_new(json_object_get(res, "pairs"), one);
    }
    PQclear(r);
    if (rc) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}
