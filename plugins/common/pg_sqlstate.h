/* plugins/common/pg_sqlstate.h — the one table that says whether a PostgreSQL failure is
 * worth retrying, by SQLSTATE.
 *
 * Header-only and depending on nothing but libc, so that the PostgreSQL adapters (which
 * include only the SDK header and their own library, plugins/common being their own shared
 * code) and the core's state store (core/pg.c) both include this same file: a
 * classification written twice diverged once already (a lock timeout was transient in the
 * core and permanent in CAMA). Callers map the answer to their own codes (TFS_SDK_E* in a
 * plugin, TFS_E* in the core). The reasons are in docs/decisions.md.
 *
 * TRANSIENT: the statement or its data is not at fault and the same call may succeed later
 * (a lost connection, a server restart, a conflict with another transaction, a resource the
 * server lacks for now): the orchestrator retries it with backoff, and never dead-letters
 * a record for it. PERMANENT: everything else (bad data, bad SQL, a missing table or
 * privilege, corruption): retrying would only repeat it.
 */
#ifndef TFS_PG_SQLSTATE_H
#define TFS_PG_SQLSTATE_H

#include <stdbool.h>
#include <string.h>

/* One rule: a class (two characters, "08") or a code (five, "55P03"). A code's rule is
 * taken before its class's; a SQLSTATE no rule matches is permanent. */
typedef struct pgp_sqlstate_rule {
    const char *state;
    bool transient;
} pgp_sqlstate_rule;

/* The rules in SQLSTATE order, for pgp_sqlstate_transient and for the tests to walk.
 * *n gets their number. */
static inline const pgp_sqlstate_rule *pgp_sqlstate_rules(size_t *n)
{
    static const pgp_sqlstate_rule rules[] = {
        {"08", true},     /* connection exception: lost or refused; reconnect and retry */
        {"25P03", true},  /* idle-in-transaction timeout: the server closed the session */
        {"40001", true},  /* serialization failure: retry the transaction */
        {"40003", true},  /* statement completion unknown (connection lost in COMMIT):
                           * writes are idempotent upserts, so retrying is safe */
        {"40P01", true},  /* deadlock detected: one side was chosen to fail; retry */
        {"53", true},     /* insufficient resources: 53000, 53100 disk full, 53200 out of
                           * memory, 53300 too many connections, 53400 configuration limit:
                           * the server lacks it now, not the record */
        {"55P03", true},  /* lock not available: lock_timeout or NOWAIT; the holder ends */
        {"57014", true},  /* query canceled: statement_timeout or a cancel request */
        {"57P01", true},  /* admin shutdown: the server restarts */
        {"57P02", true},  /* crash shutdown: the server restarts after a crash */
        {"57P03", true},  /* cannot connect now: the server is starting up */
        {"57P05", true},  /* idle session timeout: the server closed the session */
        {"58000", true},  /* system error: the server's operating system failed a call */
        {"58030", true},  /* I/O error: the server's storage failed a read or write */
        {"58P01", false}, /* undefined file: a missing file stays missing */
        {"58P02", false}, /* duplicate file: a file in the way stays there */
        {"XX", false},    /* internal error (XX000), data corrupted (XX001), index
                           * corrupted (XX002): the same call meets the same fault */
    };
    *n = sizeof rules / sizeof rules[0];
    return rules;
}

/* True when a SQLSTATE (the five characters of PG_DIAG_SQLSTATE) is worth retrying. NULL
 * or not five characters: false. */
static inline bool pgp_sqlstate_transient(const char *state)
{
    if (!state || strlen(state) != 5)
        return false;
    size_t n;
    const pgp_sqlstate_rule *rules = pgp_sqlstate_rules(&n);
    const pgp_sqlstate_rule *by_class = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(rules[i].state);
        if (len == 5 && memcmp(rules[i].state, state, 5) == 0)
            return rules[i].transient;
        if (len == 2 && memcmp(rules[i].state, state, 2) == 0)
            by_class = &rules[i];
    }
    return by_class ? by_class->transient : false;
}

/* The whole decision for a failed call: connection_ok is PQstatus(conn) == CONNECTION_OK,
 * have_result whether the call returned a result at all, state its SQLSTATE or NULL.
 * A connection that is not up is transient whatever the result says; so is a call that
 * returned no result (libpq could not send it or read the answer). A result without a
 * SQLSTATE on a good connection is an error libpq made itself (bad input to it): permanent. */
static inline bool pgp_failure_transient(bool connection_ok, bool have_result, const char *state)
{
    if (!connection_ok || !have_result)
        return true;
    return pgp_sqlstate_transient(state);
}

#endif
