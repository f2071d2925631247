/* tests/fault/fault_env.h — what the fault suite's cases share: the three servers of
 * tests/fault/run.sh (source, target, state store), each case's databases and daemon, the
 * hold that stops a run at a chosen record, and the checks every case ends with.
 *
 * The cases run one at a time (run.sh runs the executable with --jobs 1), so the server
 * the tfs_test.h helpers talk to can be switched with fault_use. Everything returned is
 * owned by the caller unless said otherwise; helpers fail the current test on an error.
 */
#ifndef TFS_FAULT_ENV_H
#define TFS_FAULT_ENV_H

#include <jansson.h>
#include <libpq-fe.h>

#include "tfs_test.h"

#define FAULT_PAIR "pacs-to-cama"
#define FAULT_BATCH 1000     /* the pair's batch_size */
#define FAULT_HOLD_LOCK 4242 /* the advisory lock of the hold */

typedef enum fault_role { FAULT_SOURCE, FAULT_TARGET, FAULT_STATE } fault_role;

/* ---- the servers ---- */

/* Points the tfs_test.h helpers at the server of r (TFS_FAULT_<ROLE>_HOST/_PORT). */
void fault_use(fault_role r);
/* A conninfo for db on r's server. */
char *fault_conninfo(fault_role r, const char *db);
/* A query's first value as an integer or text (NULL or no row fails), or a statement. */
json_int_t fault_int(fault_role r, const char *db, const char *sql);
char *fault_text(fault_role r, const char *db, const char *sql);
void fault_exec(fault_role r, const char *db, const char *sql);
/* Stops r's server (a fast shutdown: sessions are cut) or starts it again, through
 * scripts/pg.sh with the server's TFS_FAULT_<ROLE>_DIR and _PORT; start returns once it
 * accepts connections. */
void fault_server_stop(fault_role r);
void fault_server_start(fault_role r);
/* The server killed (immediate shutdown): no checkpoint, and WAL it had not yet written,
 * commits that did not wait for the flush among it, is lost. */
void fault_server_crash(fault_role r);

long long fault_now_ms(void);
/* The interval of loops that wait for a state (never for ordering). */
void fault_pause_ms(long ms);

/* ---- a case's databases, config and daemon ---- */

typedef struct fault_env {
    char *pacs, *cama, *state; /* database names, each on its own server */
    json_t *cfg;               /* owned; kept to start the daemon again after a kill */
    tfs_test_daemon *d;        /* NULL while not running */
} fault_env;

/* Clones the PACS (TFS_FAULT_PARCELS parcels), CAMA and state templates on their servers
 * and builds the pacs-to-cama config over them (batch_size FAULT_BATCH); starts nothing. */
void fault_env_init(fault_env *e);
/* Stops the daemon (which must exit 0), drops the databases, frees e. */
void fault_env_down(fault_env *e);
/* POST /sync/<mode> of FAULT_PAIR; the run id (fails unless 202). */
json_int_t fault_start_run(fault_env *e, const char *mode);
/* Waits (up to 600 s) for the run to end and asserts it succeeded; its status (owned). */
json_t *fault_wait_ok(fault_env *e, json_int_t run_id);
/* counts.property.<what> of a run's status. */
json_int_t fault_count(json_t *run, const char *what);
/* The number of active properties of the roll year (those the twins give a row). */
json_int_t fault_active_props(fault_env *e);

/* ---- the hold: the write of one parcel waits for the test's advisory lock ---- */

typedef struct fault_hold {
    PGconn *conn; /* on the CAMA database; holds the lock */
    char parid[64];
} fault_hold;

/* The parid of the n-th (0-based) property of `from` (a subquery or table of the PACS
 * database with prop_id and parid) in key order, the order of a full read and of a change
 * window's keys. */
void fault_nth_parid(fault_env *e, json_int_t n, const char *from, char out[64]);
/* Makes the write of parid's pardat row wait on the lock, which the test then holds. */
void fault_hold_set(fault_env *e, fault_hold *h, const char *parid);
/* Waits until the run waits at the hold and at least `committed` records read by the run
 * are committed in the state store. */
void fault_hold_wait(fault_env *e, const fault_hold *h, json_int_t run_id,
                     json_int_t committed);
/* Lets go of the lock and removes the hold (waits for a dead daemon's session to end). */
void fault_hold_release(fault_hold *h);

/* Lets go of the hold when the CAMA server was stopped under it: only closes the test's
 * session (the lock died with it). The trigger stays, harmless with nobody holding its lock. */
void fault_hold_drop(fault_hold *h);

/* ---- what every case ends with ---- */

/* CAMA equals the SQL twins (pardat, asmt), the run's counts add up to what it read, it
 * wrote want_written records (unless negative), and it has one audit entry per record it
 * wrote, each for another key. */
void fault_assert_exact(fault_env *e, json_t *run, json_int_t run_id, json_int_t want_written);
/* After a full sync into an empty CAMA was interrupted: starts the daemon, waits for run_id
 * to succeed, asserts it exact (every record written once: as many as the sync map holds)
 * and that it is the same run, not a new one. */
void fault_resume_full_sync_exact(fault_env *e, json_int_t run_id);

#endif
