/* tests/integration/audit_chain_test.c — the audit trail is hash-chained per pair: after
 * two full runs and an incremental one (updates, several batches each) the chain verifies,
 * and every way of tampering with it by SQL is found by GET /audit/verify and by
 * `tfsync audit verify`, naming the first entry that does not match: an entry's text
 * changed (its own hash), an entry deleted in the middle (the next one's link), the newest
 * entry deleted (the head, and with the head rewritten too, the head its run recorded), an
 * entry inserted by SQL (no place in the chain). Each tampering undone, the chain verifies
 * again, which shows the hash covers exactly the stored text.
 *
 * The real daemon, real PostgreSQL, over HTTP; the tampering is plain SQL on the state
 * store, as someone with SQL access would do it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define TFSYNC TFS_BINARY_DIR "/tfsync"

static char *pacs, *cama, *state;
static tfs_test_daemon *d;

static void setup(void)
{
    d = tfs_test_suite_start(TFS_TEST_TMPL_PACS10K, "a", NULL, &pacs, &cama, &state);
}

static void teardown(void)
{
    tfs_test_suite_end(d, &pacs, &cama, &state);
}

TestSuite(audit_chain, .init = setup, .fini = teardown, .timeout = 240);

static long long scalar(const char *sql)
{
    char *v = tfs_test_pg_scalar(state, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    long long x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

static json_t *run_to_end(const char *mode)
{
    char body[64], path[32];
    snprintf(body, sizeof body, "{\"pair\": \"" PAIR "\"}");
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r = tfs_test_http(d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert_eq(r.status, 202, "POST %s: %ld %s", path, r.status, r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    json_t *run = tfs_test_wait_run(d, id, 200);
    const char *st = json_string_value(json_object_get(run, "state"));
    cr_assert(st && strcmp(st, "succeeded") == 0, "run %lld ended %s", (long long)id, st);
    return run;
}

/* GET /audit/verify?pair=PAIR; the pair's result (owned). */
static json_t *verify(void)
{
    tfs_test_response r = tfs_test_http(d, "GET", "/audit/verify?pair=" PAIR,
                                        TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *p = json_incref(json_array_get(json_object_get(r.json, "pairs"), 0));
    cr_assert_not_null(p, "%s", r.body);
    cr_assert_eq(json_is_true(json_object_get(r.json, "ok")),
                 json_is_true(json_object_get(p, "ok")), "%s", r.body);
    tfs_test_response_free(&r);
    return p;
}

static void expect_ok(long long entries)
{
    json_t *p = verify();
    char *text = json_dumps(p, JSON_COMPACT);
    cr_assert(json_is_true(json_object_get(p, "ok")), "the chain does not verify: %s", text);
    cr_assert_eq(json_integer_value(json_object_get(p, "entries")), entries, "%s", text);
    free(text);
    json_decref(p);
}

/* The first mismatch is `what` at entry `id` (0: no entry named) with detail containing
 * `says`. */
static void expect_mismatch(const char *what, long long id, const char *says)
{
    json_t *p = verify();
    char *text = json_dumps(p, JSON_COMPACT);
    json_t *m = json_object_get(p, "mismatch");
    cr_assert(json_is_false(json_object_get(p, "ok")) && m, "tampering not found: %s", text);
    cr_assert_str_eq(json_string_value(json_object_get(m, "what")), what, "%s", text);
    if (id)
        cr_assert_eq(json_integer_value(json_object_get(m, "id")), id, "%s", text);
    cr_assert(strstr(json_string_value(json_object_get(m, "detail")), says), "%s", text);
    free(text);
    json_decref(p);
}

/* `tfsync audit verify --pair PAIR`: its exit code, and its output into out (owned). */
static int cli_verify(char **out)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s --url http://127.0.0.1:%d --key %s audit verify --pair " PAIR " 2>&1", TFSYNC,
             d->port, TFS_TEST_KEY_READ);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    int st = pclose(f);
    *out = strdup(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(audit_chain, several_runs_verify_and_each_tampering_is_found)
{
    /* Two full runs (the second writes nothing), then PACS edits and an incremental run. */
    json_decref(run_to_end("full"));
    long long first = scalar("SELECT count(*) FROM tfsync.audit");
    cr_assert_gt(first, 5000, "a full run of 10,000 parcels audited %lld entries", first);
    json_decref(run_to_end("full"));
    tfs_test_pg_exec(pacs, "UPDATE situs SET situs_street = 'AUDIT ' || prop_id"
                           " WHERE prop_id IN (SELECT prop_id FROM situs ORDER BY prop_id"
                           " LIMIT 40)");
    json_t *inc = run_to_end("incremental");
    json_int_t inc_id = json_integer_value(json_object_get(inc, "run_id"));
    json_decref(inc);
    long long total = scalar("SELECT count(*) FROM tfsync.audit");
    cr_assert_gt(total, first, "the incremental run audited nothing");
    cr_assert_eq(scalar("SELECT count(*) FROM tfsync.audit WHERE seq IS NULL OR hash IS NULL"),
                 0);
    cr_assert_eq(scalar("SELECT max(seq) FROM tfsync.audit"), total, "one chain, no gaps");
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT audit_seq FROM tfsync.runs WHERE run_id = %lld",
             (long long)inc_id);
    cr_assert_eq(scalar(sql), total, "the run recorded the head it ended at");
    expect_ok(total);
    char *out = NULL;
    cr_assert_eq(cli_verify(&out), 0, "%s", out);
    cr_assert(strstr(out, PAIR ": ok, "), "%s", out);
    free(out);

    /* An entry's text changed: its own hash no longer matches. */
    long long mid = scalar("SELECT id FROM tfsync.audit WHERE seq = 100");
    tfs_test_pg_exec(state, "CREATE TABLE tfsync.saved AS SELECT * FROM tfsync.audit"
                            " WHERE seq = 100");
    tfs_test_pg_exec(state, "UPDATE tfsync.audit SET actor = 'someone-else' WHERE seq = 100");
    expect_mismatch("hash", mid, "does not match its hash");
    cr_assert_eq(cli_verify(&out), 1, "%s", out);
    snprintf(sql, sizeof sql, "first mismatch: entry %lld (seq 100", mid);
    cr_assert(strstr(out, sql), "%s", out);
    cr_assert(strstr(out, "hash: its stored text does not match"), "%s", out);
    free(out);
    /* Put back, it verifies; then one byte of the JSON text (a space jsonb would drop). */
    tfs_test_pg_exec(state, "UPDATE tfsync.audit a SET actor = s.actor FROM tfsync.saved s"
                            " WHERE a.id = s.id");
    expect_ok(total);
    tfs_test_pg_exec(state, "UPDATE tfsync.audit SET changes = (changes::text || ' ')::json"
                            " WHERE seq = 100");
    expect_mismatch("hash", mid, "does not match its hash");
    tfs_test_pg_exec(state, "UPDATE tfsync.audit a SET changes = s.changes FROM tfsync.saved s"
                            " WHERE a.id = s.id");
    expect_ok(total);

    /* An entry deleted in the middle: the next one's link is broken. */
    long long next = scalar("SELECT id FROM tfsync.audit WHERE seq = 101");
    tfs_test_pg_exec(state, "DELETE FROM tfsync.audit WHERE seq = 100");
    expect_mismatch("link", next, "1 entry before it is missing");
    /* Renumbered to hide the gap (through negatives: seq is unique): still broken. */
    tfs_test_pg_exec(state, "UPDATE tfsync.audit SET seq = -seq WHERE seq > 100;"
                            "UPDATE tfsync.audit SET seq = -seq - 1 WHERE seq < 0");
    expect_mismatch("link", next, "prev_hash is not the hash of the entry before it");
    tfs_test_pg_exec(state, "UPDATE tfsync.audit SET seq = -seq WHERE seq >= 100;"
                            "UPDATE tfsync.audit SET seq = 1 - seq WHERE seq < 0;"
                            "INSERT INTO tfsync.audit SELECT * FROM tfsync.saved");
    expect_ok(total);

    /* The newest entry deleted: the chain ends before its head. */
    long long last_id = scalar("SELECT id FROM tfsync.audit ORDER BY seq DESC LIMIT 1");
    tfs_test_pg_exec(state, "DROP TABLE tfsync.saved;"
                            "CREATE TABLE tfsync.saved AS SELECT * FROM tfsync.audit"
                            " WHERE seq = (SELECT max(seq) FROM tfsync.audit);"
                            "DELETE FROM tfsync.audit WHERE id IN (SELECT id FROM tfsync.saved)");
    expect_mismatch("head", 0, "its newest entries are missing");
    /* And the head moved back too: the head the run recorded says it. */
    tfs_test_pg_exec(state, "CREATE TABLE tfsync.saved_head AS SELECT * FROM tfsync.audit_heads;"
                            "UPDATE tfsync.audit_heads h SET seq = a.seq, hash = a.hash"
                            " FROM tfsync.audit a WHERE a.pair = h.pair AND a.seq = h.seq - 1");
    snprintf(sql, sizeof sql, "run %lld ended at seq %lld but the chain ends at seq %lld",
             (long long)inc_id, total, total - 1);
    expect_mismatch("head", 0, sql);
    cr_assert_eq(cli_verify(&out), 1, "%s", out);
    cr_assert(strstr(out, sql), "%s", out);
    free(out);
    tfs_test_pg_exec(state, "INSERT INTO tfsync.audit SELECT * FROM tfsync.saved;"
                            "UPDATE tfsync.audit_heads h SET seq = s.seq, hash = s.hash"
                            " FROM tfsync.saved_head s WHERE s.pair = h.pair");
    expect_ok(total);
    (void)last_id;

    /* An entry added by SQL has no place in the chain. */
    tfs_test_pg_exec(state, "INSERT INTO tfsync.audit (pair, run_id, entity, source_key, op,"
                            " changes, actor) VALUES ('" PAIR "', 1, 'property', 'x|2026',"
                            " 'update', '{}', 'forger')");
    long long forged = scalar("SELECT id FROM tfsync.audit WHERE actor = 'forger'");
    expect_mismatch("unchained", forged, "has no place in it");
    tfs_test_pg_exec(state, "DELETE FROM tfsync.audit WHERE actor = 'forger'");
    expect_ok(total);

    /* A later run goes on from the same head, and the chain still verifies. */
    tfs_test_pg_exec(pacs, "UPDATE situs SET situs_street = 'AGAIN ' || prop_id"
                           " WHERE prop_id IN (SELECT prop_id FROM situs ORDER BY prop_id"
                           " LIMIT 5)");
    json_decref(run_to_end("incremental"));
    long long after = scalar("SELECT count(*) FROM tfsync.audit");
    cr_assert_gt(after, total);
    expect_ok(after);

    /* Unknown to the query's rules: 400, naming what a pair is. */
    tfs_test_response r = tfs_test_http(d, "GET", "/audit/verify?pair=%ff", TFS_TEST_KEY_READ,
                                        NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    r = tfs_test_http(d, "GET", "/audit/verify", NULL, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
}
