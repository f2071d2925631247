/* tests/unit/sqlstate_test.c — the one SQLSTATE table (plugins/common/pg_sqlstate.h) that
 * the core's state store and the PostgreSQL adapters share, decision by decision, and the
 * core's classifier over it. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../plugins/common/pg_sqlstate.h"
#include "pg.h"
#include "tfs_test.h"

static void expect(const char *state, bool transient, const char *what)
{
    cr_expect_eq(pgp_sqlstate_transient(state), transient, "%s (%s) should be %s", state,
                 what, transient ? "transient" : "permanent");
}

Test(sqlstate, connection_exceptions_are_transient)
{
    expect("08000", true, "connection exception");
    expect("08003", true, "connection does not exist");
    expect("08006", true, "connection failure");
    expect("08001", true, "unable to establish");
    expect("08004", true, "rejected establishment");
    expect("08P01", true, "protocol violation");
}

Test(sqlstate, transaction_conflicts_are_transient)
{
    expect("40001", true, "serialization failure");
    expect("40P01", true, "deadlock detected");
    expect("40003", true, "statement completion unknown");
    expect("40000", false, "transaction rollback");
    expect("40002", false, "transaction integrity constraint violation");
}

Test(sqlstate, insufficient_resources_are_transient)
{
    expect("53000", true, "insufficient resources");
    expect("53100", true, "disk full");
    expect("53200", true, "out of memory");
    expect("53300", true, "too many connections");
    expect("53400", true, "configuration limit exceeded");
}

Test(sqlstate, locks_cancels_and_shutdowns)
{
    expect("55P03", true, "lock not available");
    expect("55006", false, "object in use");
    expect("55000", false, "object not in prerequisite state");
    expect("57014", true, "query canceled");
    expect("57P01", true, "admin shutdown");
    expect("57P02", true, "crash shutdown");
    expect("57P03", true, "cannot connect now");
    expect("57P05", true, "idle session timeout");
    expect("57P04", false, "database dropped");
    expect("57000", false, "operator intervention");
    expect("25P03", true, "idle in transaction session timeout");
    expect("25001", false, "active sql transaction");
}

Test(sqlstate, system_and_internal_errors)
{
    expect("58000", true, "system error");
    expect("58030", true, "io error");
    expect("58P01", false, "undefined file");
    expect("58P02", false, "duplicate file");
    expect("XX000", false, "internal error");
    expect("XX001", false, "data corrupted");
    expect("XX002", false, "index corrupted");
}

Test(sqlstate, everything_else_is_permanent)
{
    expect("23505", false, "unique violation");
    expect("23502", false, "not null violation");
    expect("22001", false, "string data right truncation");
    expect("22P02", false, "invalid text representation");
    expect("42P01", false, "undefined table");
    expect("42501", false, "insufficient privilege");
    expect("42601", false, "syntax error");
    expect("28P01", false, "invalid password");
    expect("3D000", false, "invalid catalog name");
    expect("0A000", false, "feature not supported");
    expect("00000", false, "successful completion");
    expect(NULL, false, "no SQLSTATE");
    expect("", false, "empty");
    expect("08", false, "a bare class is not a SQLSTATE");
    expect("080000", false, "too long");
}

Test(sqlstate, connection_and_result_decide_first)
{
    cr_expect(pgp_failure_transient(false, true, "23505"), "a connection that is down");
    cr_expect(pgp_failure_transient(false, false, NULL), "down and no result");
    cr_expect(pgp_failure_transient(true, false, NULL), "no result at all");
    cr_expect_not(pgp_failure_transient(true, true, NULL), "libpq's own error, no SQLSTATE");
    cr_expect(pgp_failure_transient(true, true, "40P01"));
    cr_expect_not(pgp_failure_transient(true, true, "42P01"));
}

Test(sqlstate, rules_are_well_formed)
{
    size_t n;
    const pgp_sqlstate_rule *r = pgp_sqlstate_rules(&n);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(r[i].state);
        cr_expect(len == 2 || len == 5, "rule %zu \"%s\" is a class or a code", i, r[i].state);
        if (i)
            cr_expect_lt(strcmp(r[i - 1].state, r[i].state), 0,
                         "rules in order, no duplicates: \"%s\" then \"%s\"", r[i - 1].state,
                         r[i].state);
    }
}

/* The SQLSTATE of a result the server raised, classified by the core. */
static int classify_raised(PGconn *conn, const char *state)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '%s'; END $$",
             state);
    PGresult *r = PQexec(conn, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), state);
    int rc = tfs_pg_classify(conn, r);
    PQclear(r);
    return rc;
}

Test(sqlstate, core_classifier_uses_the_table)
{
    cr_expect_eq(tfs_pg_classify(NULL, NULL), TFS_ETRANSIENT, "no connection at all");
    PGconn *conn = tfs_test_pg_connect(NULL);
    cr_expect_eq(classify_raised(conn, "55P03"), TFS_ETRANSIENT, "lock not available");
    cr_expect_eq(classify_raised(conn, "53100"), TFS_ETRANSIENT, "disk full");
    cr_expect_eq(classify_raised(conn, "40P01"), TFS_ETRANSIENT, "deadlock");
    cr_expect_eq(classify_raised(conn, "23505"), TFS_EPERMANENT, "unique violation");
    cr_expect_eq(classify_raised(conn, "XX000"), TFS_EPERMANENT, "internal error");
    PQfinish(conn);
}
