/* tests/support/tfs_test.h — helpers for the integration tests: databases cloned from the
 * seeded templates that scripts/test.sh creates, a real tfsyncd started on a free port, and
 * an HTTP client over libcurl.
 *
 * The PostgreSQL server is the private one of scripts/pg.sh, found through TFS_TEST_PGHOST,
 * TFS_TEST_PGPORT and TFS_TEST_PGUSER, or else PGHOST, PGPORT and PGUSER, or else pg.sh's
 * defaults (/tmp/tfsync-pg-<uid>, 55432, postgres) when no host is set. Helpers that can
 * fail in a way a test cannot recover from fail the current Criterion test (cr_assert) with
 * a message that says what went wrong; they must be called from a test, fixture or theory.
 * Everything returned is owned by the caller unless said otherwise.
 */
#ifndef TFS_TEST_H
#define TFS_TEST_H

#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>

/* The databases scripts/test.sh seeds for tests to clone. */
#define TFS_TEST_TMPL_PACS10K "tfs_tmpl_pacs10k"     /* PACS schema + 10,000 parcels, seed 42, 2026 */
#define TFS_TEST_TMPL_PACS_EMPTY "tfs_tmpl_pacs_empty" /* PACS schema only */
#define TFS_TEST_TMPL_CAMA "tfs_tmpl_cama"             /* CAMA schema only */
#define TFS_TEST_TMPL_STATE "tfs_tmpl_state"           /* empty: tfsyncd migrates it */

/* The API keys of tfs_test_config_new, one per role. */
#define TFS_TEST_KEY_READ "read-key"
#define TFS_TEST_KEY_OPERATE "operate-key"
#define TFS_TEST_KEY_ADMIN "admin-key"

/* ---- PostgreSQL ---- */

/* Makes the helpers below talk to the server at host (a socket folder or a host name) and
 * port instead of the default one, until called again; (NULL, NULL) goes back to the
 * default. For suites that run several servers (tests/fault), which run one test at a
 * time. */
void tfs_test_pg_server(const char *host, const char *port);

/* A libpq conninfo string for dbname on the test server ("host=... port=... user=...
 * dbname=..."), values quoted as libpq wants. Owned (free). */
char *tfs_test_pg_conninfo(const char *dbname);

/* An open connection to dbname (NULL: "postgres"); fails the test when it cannot connect.
 * Owned: PQfinish it. */
PGconn *tfs_test_pg_connect(const char *dbname);

/* Runs sql (one or more statements) on dbname; fails the test on any error. */
void tfs_test_pg_exec(const char *dbname, const char *sql);

/* In CAMA database dbname: a table test_stmt (n, tbl, cmd) that logs, per statement that
 * inserts into pardat or asmt, the table and the first word of the statement (COPY: new
 * keys loaded straight in, SDK 1.5; INSERT: the upsert). A COPY rolled back to its
 * savepoint takes its log row with it. */
void tfs_test_cama_log_statements(const char *dbname);

/* The text of the first column of the first row of sql's result, malloc'd, or NULL when
 * there is no row or the value is SQL NULL; fails the test on an error. */
char *tfs_test_pg_scalar(const char *dbname, const char *sql);

/* Runs a SQL file with psql (-v ON_ERROR_STOP=1 -f path), with -v roll_year=<roll_year_var>
 * when roll_year_var is not NULL; fails the test with psql's messages if it fails. */
void tfs_test_pg_exec_file(const char *dbname, const char *path, const char *roll_year_var);

/* Creates a database from template_name with a name no other test uses (label, the pid, a
 * counter and a random suffix, folded to [a-z0-9_]); retries while the template is busy.
 * Returns the name, owned (free); drop it with tfs_test_db_drop. */
char *tfs_test_db_clone(const char *template_name, const char *label);

/* Drops a database, ending its sessions (WITH (FORCE)); accepts NULL and a missing one. */
void tfs_test_db_drop(const char *name);

/* The whole content of a file, malloc'd; fails the test when it cannot be read. */
char *tfs_test_read_file(const char *path);

/* The independent SQL twin of a mapping, tests/integration/sql/<name>, ready to run: the
 * psql variable :roll_year replaced by 2026 and comments dropped (a comment would swallow
 * the closing parenthesis of COPY (...)). malloc'd; fails the test when the file is
 * missing. */
char *tfs_test_mapping_sql(const char *name);

/* Streams the rows of query on src_db into dst_table of dst_db (COPY out, COPY in). */
void tfs_test_copy_between(const char *src_db, const char *query, const char *dst_db,
                           const char *dst_table);
/* The same between any two servers, each named by a full conninfo. */
void tfs_test_copy_conninfo(const char *src_conninfo, const char *query,
                            const char *dst_conninfo, const char *dst_table);

/* The CAMA columns the SQL twins give, per table. */
#define TFS_TEST_PARDAT_COLS                                                                    \
    "parid, taxyr, seq, cur, class, luc, nbhd, acres, adrno, adradd, adrdir, adrstr, adrsuf,"   \
    " unitno, cityname, statecode, postalcode, zoning, deactivat"
#define TFS_TEST_ASMT_COLS                                                                      \
    "parid, taxyr, seq, cur, valclass, valapr1, valapr2, valapr3, valasm1, valasm2, valasm3,"  \
    " deactivat"

/* The exposed, active PACS properties of the roll year (prop_id, parid): a property_val row
 * for 2026 whose highest supplement is not retired, a property row, and a situs row; every
 * change to one of them is visible in CAMA. A subquery, for FROM. */
#define TFS_TEST_ACTIVE_PROPS                                                                   \
    "(SELECT pv.prop_id, p.simple_geo_id AS parid FROM (SELECT DISTINCT ON (prop_id) prop_id,"  \
    " prop_inactive_dt FROM property_val WHERE prop_val_yr = 2026 ORDER BY prop_id, sup_num"    \
    " DESC) pv JOIN property p ON p.prop_id = pv.prop_id WHERE pv.prop_inactive_dt IS NULL"     \
    " AND p.simple_geo_id IS NOT NULL AND EXISTS (SELECT 1 FROM situs s WHERE s.prop_id ="      \
    " pv.prop_id))"

/* Asserts that CAMA table `table` of cama_db (on the selected server) holds exactly what
 * the SQL twin tests/integration/sql/<twin_sql> computes from the PACS database of
 * pacs_conninfo: the same count and nothing on either side that is not on the other
 * (EXCEPT ALL both ways); cols are the table's twin columns. Leaves the twin's rows in
 * cama_db as table expected_<table>. Fails the test with example rows otherwise. */
void tfs_test_assert_matches_twin(const char *pacs_conninfo, const char *cama_db,
                                  const char *table, const char *cols, const char *twin_sql);

/* ---- the daemon ---- */

typedef struct tfs_test_daemon {
    pid_t pid;
    int port;             /* the port it bound, from its ready file */
    char dir[256];        /* its private temporary folder: config, ready file, log */
    char config_path[320];
    char ready_path[320];
    char log_path[320];   /* its stdout and stderr */
    json_t *config;       /* owned: the config as written */
} tfs_test_daemon;

/* Starts TFS_BINARY_DIR/tfsyncd (or $TFS_TEST_TFSYNCD) with a copy of config written to a
 * fresh temporary folder; listen.port defaults to 0 and listen.ready_file to a file in that
 * folder. Waits until the ready file names the bound port (at most 20 s) and fails the test
 * with the log's tail if the daemon exits or never gets ready. config is borrowed and left
 * unchanged, so it can start another daemon (say after a crash). Owned: end it with
 * tfs_test_daemon_stop or tfs_test_daemon_kill9. The daemon gets SIGKILL if the test process
 * dies first. */
tfs_test_daemon *tfs_test_daemon_start(const json_t *config);

/* SIGTERM, waits for the exit (SIGKILL after 10 s), removes the folder (kept when
 * TFS_TEST_KEEP is set) and frees d. A sanitizer report in the daemon's log (the ASan
 * build) fails the test, without stopping it; kill9 does the same. Returns the exit code, 128 + signal when a signal
 * ended it (SIGKILL included), or -1 when it was not running; accepts NULL (returns -1). */
int tfs_test_daemon_stop_status(tfs_test_daemon *d);
/* The same, ignoring how it ended. */
void tfs_test_daemon_stop(tfs_test_daemon *d);
/* SIGKILL (a crash), reaps it, removes the folder and frees d; accepts NULL. Read the log
 * before, if you need it. */
void tfs_test_daemon_kill9(tfs_test_daemon *d);
/* Whether the process still runs (it is not reaped, so stop still works). */
int tfs_test_daemon_alive(const tfs_test_daemon *d);
/* Everything it has logged so far, malloc'd (free); "" when nothing. */
char *tfs_test_daemon_log(const tfs_test_daemon *d);

/* ---- config ---- */

/* The pacs-to-cama config of a demo county on the test server: plugin_dir TFS_PLUGIN_DIR,
 * transform_dir TFS_SOURCE_DIR/transforms, roll year 2026, 2 workers, keys "read-key"
 * (role read, name "reader"), "operate-key" (operate, "operator"), "admin-key" (admin,
 * "admin"). Owned (json_decref); change it freely before starting a daemon. */
json_t *tfs_test_config_new(const char *pacs_db, const char *cama_db, const char *state_db);

/* Hex SHA-256 of a key, as the config's api_keys[].sha256 wants it. */
void tfs_test_key_sha256_hex(const char *key, char out[65]);

/* ---- HTTP ---- */

typedef struct tfs_test_response {
    long status;  /* 0 when no HTTP answer came (connection refused, timeout): see error */
    char *body;   /* owned; "" when empty, NULL when no answer */
    json_t *json; /* owned; the body parsed, or NULL when it is not JSON */
    char content_type[128];
    char allow[128];
    char www_authenticate[128];
    char location[256];
    char error[256]; /* libcurl's message when status is 0 */
} tfs_test_response;

/* One request to the daemon at 127.0.0.1:d->port. key NULL: no Authorization header,
 * otherwise "Bearer <key>"; body NULL: none, otherwise sent as application/json. Never
 * fails the test by itself: a failed transfer gives status 0 and error. */
tfs_test_response tfs_test_http(const tfs_test_daemon *d, const char *method, const char *path,
                                const char *key, const char *body);
/* The same against any port (a daemon the test started another way, a dead port). */
tfs_test_response tfs_test_http_port(int port, const char *method, const char *path,
                                     const char *key, const char *body);
/* Frees what r owns and zeroes it; accepts NULL. */
void tfs_test_response_free(tfs_test_response *r);

/* Polls GET /sync/status/{run_id} with "read-key" every 20 ms until the state is
 * final ("succeeded", "partial", "failed", "cancelled") or "held" and returns that status (owned, json_decref). Fails the test
 * after timeout_s seconds, or at once if the daemon dies, with the last answer and the
 * log's tail. */
json_t *tfs_test_wait_run(const tfs_test_daemon *d, json_int_t run_id, int timeout_s);

/* POST /sync/full {"pair": pair} with "operate-key"; fails the test unless it gets 202 and
 * returns the run_id. */
json_int_t tfs_test_start_full(const tfs_test_daemon *d, const char *pair);

/* POST /sync/<mode> {"pair": pair} with "operate-key", awaited (120 s): the final status
 * (owned). Fails the test unless the run ends in state want, with the status and the log. */
json_t *tfs_test_run_pair(const tfs_test_daemon *d, const char *pair, const char *mode,
                          const char *want);

/* counts.<entity>.<what> of a run's status; fails the test when it is not an integer. */
long long tfs_test_count(json_t *run, const char *entity, const char *what);

/* GET /audit/verify (every pair) with "read-key": fails the test unless every chain
 * verifies and at least min_entries entries were walked. */
void tfs_test_assert_audit_verifies(const tfs_test_daemon *d, long long min_entries);

/* ---- a suite's fixture ---- */

/* The three databases of most suites: PACS cloned from pacs_template, CAMA from
 * TFS_TEST_TMPL_CAMA and an empty state store from TFS_TEST_TMPL_STATE, labelled prefix
 * (NULL: none) + "pacs", "cama", "state". Each owned: drop them with tfs_test_drop_dbs. */
void tfs_test_clone_dbs(const char *pacs_template, const char *prefix, char **pacs, char **cama,
                        char **state);
/* Drops and frees the three (each may be NULL) and sets the pointers to NULL. */
void tfs_test_drop_dbs(char **pacs, char **cama, char **state);
/* Stops d and expects (cr_expect: the test goes on) that it exited 0, its log in the
 * message otherwise; accepts NULL (which fails the expectation). */
void tfs_test_daemon_stop_clean(tfs_test_daemon *d);
/* A suite's set-up: tfs_test_clone_dbs, then the daemon started on tfs_test_config_new of
 * them after adjust (NULL: none) has changed it. */
tfs_test_daemon *tfs_test_suite_start(const char *pacs_template, const char *prefix,
                                      void (*adjust)(json_t *cfg), char **pacs, char **cama,
                                      char **state);
/* Its teardown: tfs_test_daemon_stop_clean(d), then tfs_test_drop_dbs. */
void tfs_test_suite_end(tfs_test_daemon *d, char **pacs, char **cama, char **state);

/* ---- raw sockets ---- */

/* A port of 127.0.0.1 that nothing listened on a moment ago (bound to 0, read, closed). */
int tfs_test_free_port(void);
/* A TCP socket connected to 127.0.0.1:port; fails the test when it cannot connect. Owned:
 * close it. */
int tfs_test_connect(int port);

typedef struct tfs_test_raw {
    int status;
    char *head; /* the status line and headers, each line ending in \r\n */
    char *body;
    size_t body_len;
} tfs_test_raw;

/* Sends "METHOD target HTTP/1.1" to 127.0.0.1:port byte for byte (a client library would
 * fold "/../" or refuse "%00"), with extra header lines (each ending in \r\n; NULL: none)
 * and Connection: close, and reads the answer to the end (10 s receive timeout). Fails the
 * test without a complete answer. Free with tfs_test_raw_free. */
tfs_test_raw tfs_test_http_raw(int port, const char *method, const char *target,
                               const char *extra);
void tfs_test_raw_free(tfs_test_raw *a);
/* The value of header name in a's head (a copy in out, cap bytes), or "" when absent. */
const char *tfs_test_raw_header(const tfs_test_raw *a, const char *name, char *out, size_t cap);

#endif
