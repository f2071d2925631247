/* tests/integration/erp_test.c — the ERP adapter on real files, end to end (issue 10):
 * PACS -> ERP billing roll (an outbox of CSV files with manifests) and ERP -> PACS payment
 * statuses (an inbox of CSV files), through a real tfsyncd over HTTP and real PostgreSQL.
 *
 * What they must show: the published files, parsed back by PostgreSQL's own CSV reader
 * (COPY ... CSV, not libcsv), hold exactly what the SQL twins compute after full and
 * incremental runs (last row per key across the files in run order); each manifest's row
 * count and SHA-256 are the file's; a reader polling the outbox during a run never sees a
 * file without its manifest or a manifest that does not match; a kill -9 of the daemon
 * while rows are pending neither loses nor duplicates them; names with quotes, commas and
 * newlines go out and come back intact; inbox files (BOM, CRLF, quoted fields) reach PACS
 * as the twin says, malformed lines end as dead letters naming file and line while the
 * rest is written, files move to the archive only after the run, and a missing inbox
 * fails the run with an error naming it.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"

TestSuite(erp, .timeout = 240);

#define TMPL_PACS "tfs_tmpl_pacs300"

#define OWNER_COLS                                                                              \
    "prop_id, tax_year, account, owner_name, mail_line1, mail_line2, mail_city, mail_state,"    \
    " mail_zip"
#define VALUE_COLS "prop_id, tax_year, taxable_value, exemption_codes"
#define BILL_COLS                                                                               \
    "bill_id, prop_id, tax_year, amount_due, amount_paid, payment_status, erp_modified"

typedef struct env {
    char *pacs, *state;
    char root[256], outbox[320], inbox[320], archive[320];
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static void mkdir_at(const char *p)
{
    cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
}

static void env_init(env *e, int batch)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TMPL_PACS, "epacs");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "estate");
    snprintf(e->root, sizeof e->root, "/tmp/tfs-erp-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(e->root));
    snprintf(e->outbox, sizeof e->outbox, "%s/outbox", e->root);
    snprintf(e->inbox, sizeof e->inbox, "%s/inbox", e->root);
    snprintf(e->archive, sizeof e->archive, "%s/archive", e->root);
    mkdir_at(e->outbox);
    mkdir_at(e->inbox);
    mkdir_at(e->archive);
    e->cfg = tfs_test_config_new(e->pacs, e->pacs, e->state);
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_del(systems, "cama");
    json_object_set_new(systems, "erp",
                        json_pack("{s:s, s:{s:s, s:s, s:s}}", "plugin", "erp", "settings",
                                  "outbox", e->outbox, "inbox", e->inbox, "archive",
                                  e->archive));
    json_object_set_new(
        e->cfg, "pairs",
        json_pack("[{s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}, {s:s, s:[s], s:s}]},"
                  " {s:s, s:s, s:s, s:i, s:f, s:[{s:s, s:[s], s:s}]}]",
                  "name", "pacs-to-erp", "source", "pacs", "target", "erp", "batch_size",
                  batch, "entities", "source", "owner", "targets", "roll_owner", "script",
                  "pacs_to_erp.lua", "source", "property", "targets", "roll_value", "script",
                  "pacs_value_to_erp.lua",
                  "name", "erp-to-pacs", "source", "erp", "target", "pacs", "batch_size", 50,
                  "max_failed_ratio", 0.5, "entities", "source", "payment", "targets",
                  "bill_status", "script", "erp_to_pacs.lua"));
    e->d = tfs_test_daemon_start(e->cfg);
}

static void env_down(env *e)
{
    if (e->d) {
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->state);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->root);
    if (!getenv("TFS_TEST_KEEP"))
        cr_expect_eq(system(cmd), 0);
}

static long long scalar_ll(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    long long x = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return x;
}

static json_int_t start_run(env *e, const char *pair, const char *mode)
{
    char path[64], body[128];
    snprintf(path, sizeof path, "/sync/%s", mode);
    snprintf(body, sizeof body, "{\"pair\": \"%s\"}", pair);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    cr_assert_eq(r.status, 202, "POST %s %s: want 202, got %ld %s%s", path, pair, r.status,
                 r.error, r.body ? r.body : "");
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    return id;
}

static json_t *wait_state(env *e, json_int_t id, const char *want)
{
    json_t *run = tfs_test_wait_run(e->d, id, 120);
    const char *state = json_string_value(json_object_get(run, "state"));
    if (!state || strcmp(state, want) != 0) {
        char *s = json_dumps(run, JSON_COMPACT);
        char *log = tfs_test_daemon_log(e->d);
        cr_assert_fail("run %lld ended %s, not %s: %s\n%s", (long long)id, state, want, s, log);
    }
    return run;
}

static json_t *run_pair(env *e, const char *pair, const char *mode, const char *want)
{
    return wait_state(e, start_run(e, pair, mode), want);
}

static long long count_of(json_t *run, const char *entity, const char *what)
{
    return tfs_test_count(run, entity, what);
}

/* ---- the outbox ---- */

/* Bytes in the whole pending files of an entity (<outbox>/.pending/<entity>.*.csv). */
static long long pending_bytes(const env *e, const char *entity)
{
    char dir[400], path[700];
    snprintf(dir, sizeof dir, "%s/.pending", e->outbox);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    long long total = 0;
    size_t len = strlen(entity);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, entity, len) != 0 || de->d_name[len] != '.' || l < 5 ||
            strcmp(de->d_name + l - 4, ".csv") != 0)
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0)
            total += st.st_size;
    }
    closedir(d);
    return total;
}

/* The published folders of an entity (<entity>-<run>), sorted by run id. */
static size_t published(const env *e, const char *entity, char out[][64], size_t max)
{
    DIR *d = opendir(e->outbox);
    cr_assert_not_null(d);
    struct dirent *de;
    size_t n = 0, len = strlen(entity);
    while ((de = readdir(d)))
        if (strncmp(de->d_name, entity, len) == 0 && de->d_name[len] == '-' && n < max)
            snprintf(out[n++], 64, "%s", de->d_name);
    closedir(d);
    /* by run id: numeric order of the suffix */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && atoll(out[j] + len + 1) < atoll(out[j - 1] + len + 1); j--) {
            char t[64];
            memcpy(t, out[j], 64);
            memcpy(out[j], out[j - 1], 64);
            memcpy(out[j - 1], t, 64);
        }
    return n;
}

/* cb_run_end comes after the store committed the run's final state, so a client can see
 * the run ended before the outbox is published: wait (at most 20 s) for the pending rows
 * to go. Returns whether they went. */
static int wait_published(const env *e)
{
    for (int i = 0; i < 2000; i++) {
        if (pending_bytes(e, "roll_owner") + pending_bytes(e, "roll_value") == 0)
            return 1;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return 0;
}

/* The same for the archive: wait for path to exist. */
static int wait_exists(const char *path)
{
    for (int i = 0; i < 2000; i++) {
        if (access(path, F_OK) == 0)
            return 1;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return 0;
}

static void sha256_hex(const char *buf, size_t len, char hex[65])
{
    unsigned char dig[32];
    cr_assert_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, dig), 0);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", dig[i]);
}

/* Whether a published folder is whole: its manifest names the file's SHA-256, size and
 * row count (lines after the header; rows hold no newline in these checks' data unless
 * quoted, so the count is checked by COPY later). Returns 1, or 0 with why. */
static int folder_whole(const env *e, const char *name, char *why, size_t size)
{
    char path[512], ent[64];
    snprintf(ent, sizeof ent, "%.*s", (int)(strrchr(name, '-') - name), name);
    snprintf(path, sizeof path, "%s/%s/manifest.json", e->outbox, name);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (!m) {
        snprintf(why, size, "%s has no readable manifest: %s", name, jerr.text);
        return 0;
    }
    snprintf(path, sizeof path, "%s/%s/%s.csv", e->outbox, name, ent);
    FILE *f = fopen(path, "rb");
    if (!f) {
        json_decref(m);
        snprintf(why, size, "%s has a manifest but no %s.csv", name, ent);
        return 0;
    }
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char hex[65];
    sha256_hex(buf, len, hex);
    const char *want = json_string_value(json_object_get(m, "sha256"));
    int ok = want && strcmp(want, hex) == 0 &&
             json_integer_value(json_object_get(m, "bytes")) == (json_int_t)len;
    if (!ok)
        snprintf(why, size, "%s: the file (%zu bytes, sha256 %s) is not the manifest's (%s)",
                 name, len, hex, want ? want : "?");
    json_decref(m);
    return ok;
}

/* Loads a CSV file into table (which exists) with PostgreSQL's CSV reader. */
static void copy_csv(const char *db, const char *table, const char *path)
{
    char *ci = tfs_test_pg_conninfo(db);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    char sql[256];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN (FORMAT csv, HEADER true)", table);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COPY_IN, "%s", PQerrorMessage(c));
    PQclear(r);
    char *text = tfs_test_read_file(path);
    cr_assert_eq(PQputCopyData(c, text, (int)strlen(text)), 1);
    free(text);
    cr_assert_eq(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "COPY %s from %s: %s", table, path,
                 PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Every published file of the roll loaded (in run order) into the state database, each
 * file's rows counted against its manifest and unique by key; then tables roll_owner and
 * roll_value hold the last row per key that is not a deletion. Returns the folders seen. */
static size_t load_roll(env *e)
{
    tfs_test_pg_exec(e->state,
                     "DROP TABLE IF EXISTS roll_owner, roll_value, raw_owner, raw_value;"
                     "CREATE TABLE raw_owner (action text, prop_id int, tax_year int,"
                     " account text, owner_name text, mail_line1 text, mail_line2 text,"
                     " mail_city text, mail_state text, mail_zip text, seq int);"
                     "CREATE TABLE raw_value (action text, prop_id int, tax_year int,"
                     " taxable_value numeric, exemption_codes text, seq int)");
    const char *ents[] = {"roll_owner", "roll_value"};
    const char *raws[] = {"raw_owner", "raw_value"};
    size_t total = 0;
    for (int k = 0; k < 2; k++) {
        char names[64][64];
        size_t n = published(e, ents[k], names, 64);
        total += n;
        for (size_t i = 0; i < n; i++) {
            char why[512], path[512], sql[512];
            cr_assert(folder_whole(e, names[i], why, sizeof why), "%s", why);
            tfs_test_pg_exec(e->state, "DROP TABLE IF EXISTS one_keep");
            snprintf(sql, sizeof sql, "CREATE TABLE one_keep AS SELECT * FROM %s WHERE false;"
                     "ALTER TABLE one_keep DROP COLUMN seq", raws[k]);
            tfs_test_pg_exec(e->state, sql);
            snprintf(path, sizeof path, "%s/%s/%s.csv", e->outbox, names[i], ents[k]);
            copy_csv(e->state, "one_keep", path);
            snprintf(path, sizeof path, "%s/%s/manifest.json", e->outbox, names[i]);
            json_t *m = json_load_file(path, 0, NULL);
            long long rows = scalar_ll(e->state, "SELECT count(*) FROM one_keep");
            cr_assert_eq(rows, json_integer_value(json_object_get(m, "rows")),
                         "%s: %lld rows, its manifest says %lld", names[i], rows,
                         (long long)json_integer_value(json_object_get(m, "rows")));
            json_decref(m);
            cr_assert_eq(scalar_ll(e->state, "SELECT count(*) - count(DISTINCT (prop_id,"
                                             " tax_year)) FROM one_keep"),
                         0, "%s repeats a key", names[i]);
            snprintf(sql, sizeof sql, "INSERT INTO %s SELECT *, %zu FROM one_keep", raws[k], i);
            tfs_test_pg_exec(e->state, sql);
        }
    }
    tfs_test_pg_exec(e->state,
                     "CREATE TABLE roll_owner AS SELECT " OWNER_COLS " FROM (SELECT DISTINCT ON"
                     " (prop_id, tax_year) * FROM raw_owner ORDER BY prop_id, tax_year, seq DESC)"
                     " l WHERE action = 'U';"
                     "CREATE TABLE roll_value AS SELECT " VALUE_COLS " FROM (SELECT DISTINCT ON"
                     " (prop_id, tax_year) * FROM raw_value ORDER BY prop_id, tax_year, seq DESC)"
                     " l WHERE action = 'U'");
    return total;
}

static void assert_roll_twins(env *e)
{
    load_roll(e);
    char *pacs = tfs_test_pg_conninfo(e->pacs);
    tfs_test_assert_matches_twin(pacs, e->state, "roll_owner", OWNER_COLS,
                                 "pacs_to_erp_owner.sql");
    tfs_test_assert_matches_twin(pacs, e->state, "roll_value", VALUE_COLS,
                                 "pacs_to_erp_value.sql");
    free(pacs);
}

/* A reader polling the outbox: every visible folder must be whole. */
typedef struct poller {
    env *e;
    atomic_int stop;
    int polls;
    char bad[512];
} poller;

static void *poll_outbox(void *arg)
{
    poller *p = arg;
    while (!atomic_load(&p->stop) && !p->bad[0]) {
        DIR *d = opendir(p->e->outbox);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (de->d_name[0] != '.' && !folder_whole(p->e, de->d_name, p->bad, sizeof p->bad))
                break;
        if (d)
            closedir(d);
        p->polls++;
    }
    return NULL;
}

/* ======================================================================================
 * 1. pacs-to-erp: full and incremental runs match the twins; names with quotes, commas and
 *    newlines survive; a polling reader never sees a partial folder; nothing to write
 *    publishes nothing.
 * ====================================================================================== */

Test(erp, roll_full_and_incremental_match_the_twins_and_are_never_seen_partial)
{
    env e;
    env_init(&e, 25);
    /* CSV's hard cases in an owner's name and address. */
    tfs_test_pg_exec(e.pacs,
                     "UPDATE account SET file_as_name = 'O''Brien, \"Red\" & Sons' WHERE acct_id"
                     " = (SELECT min(owner_id) FROM owner);"
                     "UPDATE address SET addr_line2 = E'Suite 4\\nBldg \"C\", rear' WHERE"
                     " acct_id = (SELECT min(owner_id) FROM owner)");
    poller p = {.e = &e};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, poll_outbox, &p), 0);
    json_t *run = run_pair(&e, "pacs-to-erp", "full", "succeeded");
    cr_assert(wait_published(&e), "the full run's rows were never published");
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    cr_assert_eq(p.bad[0], '\0', "a reader saw a partial outbox: %s", p.bad);
    cr_assert_gt(p.polls, 1, "the reader never polled during the run");
    long long owners = count_of(run, "owner", "written");
    long long values = count_of(run, "property", "written");
    json_decref(run);
    cr_assert_gt(owners, 200, "the full run wrote %lld owners", owners);
    cr_assert_gt(values, 200, "the full run wrote %lld values", values);
    cr_assert_eq(load_roll(&e), 2, "one folder per entity after the full run");
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) FROM roll_owner"), owners);
    assert_roll_twins(&e);
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) FROM roll_owner WHERE owner_name ="
                                    " 'O''Brien, \"Red\" & Sons' AND mail_line2 ="
                                    " E'Suite 4\\nBldg \"C\", rear'"),
                 scalar_ll(e.pacs, "SELECT count(DISTINCT o.prop_id) FROM owner o WHERE"
                                   " o.owner_id = (SELECT min(owner_id) FROM owner)"));
    /* The pending files are gone once published. */
    cr_assert_eq(pending_bytes(&e, "roll_owner") + pending_bytes(&e, "roll_value"), 0,
                 "published pending files were left behind");

    /* Nothing changed: nothing written, nothing published. */
    run = run_pair(&e, "pacs-to-erp", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "owner", "written") + count_of(run, "property", "written"), 0);
    json_decref(run);
    cr_assert_eq(load_roll(&e), 2, "a run that wrote nothing published a folder");

    /* Edits: a value, an exemption gone, an owner renamed. */
    tfs_test_pg_exec(e.pacs,
                     "UPDATE property_val SET assessed_val = assessed_val + 1000 WHERE prop_id IN"
                     " (SELECT prop_id FROM property ORDER BY prop_id LIMIT 3);"
                     "DELETE FROM property_exemption WHERE prop_id = (SELECT min(prop_id) FROM"
                     " property_exemption);"
                     "UPDATE account SET file_as_name = 'NEW, OWNER' WHERE acct_id ="
                     " (SELECT owner_id FROM owner WHERE owner_tax_yr = 2026 ORDER BY prop_id"
                     " DESC, pct_ownership DESC, owner_id LIMIT 1)");
    run = run_pair(&e, "pacs-to-erp", "incremental", "succeeded");
    cr_assert(wait_published(&e), "the incremental run's rows were never published");
    long long w = count_of(run, "owner", "written") + count_of(run, "property", "written");
    json_decref(run);
    cr_assert_geq(w, 3, "the incremental run wrote %lld", w);
    cr_assert_eq(load_roll(&e), 4, "the incremental run published one folder per entity");
    /* The new folders hold only what changed. */
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) FROM raw_owner WHERE seq = 1") +
                     scalar_ll(e.state, "SELECT count(*) FROM raw_value WHERE seq = 1"),
                 w);
    assert_roll_twins(&e);
    env_down(&e);
}

/* ======================================================================================
 * 2. A kill -9 while rows are pending: after the restart the run resumes, and the outbox
 *    holds every row once per file, exactly what the twins say.
 * ====================================================================================== */

Test(erp, kill9_while_rows_pending_neither_loses_nor_duplicates)
{
    env e;
    env_init(&e, 5);
    json_int_t id = start_run(&e, "pacs-to-erp", "full");
    int caught = 0;
    for (int i = 0; i < 200000 && !caught; i++) {
        if (pending_bytes(&e, "roll_owner") > 0)
            caught = 1;
        else
            nanosleep(&(struct timespec){0, 200 * 1000}, NULL);
    }
    cr_assert(caught, "no row was ever pending");
    tfs_test_daemon_kill9(e.d);
    cr_assert_gt(pending_bytes(&e, "roll_owner"), 0, "the run ended before the kill");
    char names[8][64];
    size_t early = published(&e, "roll_owner", names, 8);
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = tfs_test_wait_run(e.d, id, 120);
    const char *state = json_string_value(json_object_get(run, "state"));
    int resumed = state && strcmp(state, "succeeded") == 0;
    json_decref(run);
    /* Resumed or failed by the restart: either way a new full run completes the roll. */
    if (!resumed)
        json_decref(run_pair(&e, "pacs-to-erp", "full", "succeeded"));
    cr_assert_eq(early, 0, "the killed run had already published");
    cr_assert(wait_published(&e), "rows are still pending after the run");
    assert_roll_twins(&e);
    env_down(&e);
}

/* A crash at the worst moment of a publish: its folder renamed into place, its pending
 * files not yet removed (the plugin's TFS_ERP_FAULT_AFTER_PUBLISH hook exits there). The
 * next run's end must not publish those rows a second time: the publish journal says they
 * went out. */
Test(erp, crash_after_publishing_before_clearing_publishes_nothing_twice)
{
    env e;
    setenv("TFS_ERP_FAULT_AFTER_PUBLISH", "1", 1);
    env_init(&e, 50);
    unsetenv("TFS_ERP_FAULT_AFTER_PUBLISH");
    json_int_t id = start_run(&e, "pacs-to-erp", "full");
    char names[8][64];
    size_t n = 0;
    for (int i = 0; i < 6000 && n == 0; i++) {
        n = published(&e, "roll_owner", names, 8) + published(&e, "roll_value", names, 8);
        if (n == 0)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    cr_assert_eq(n, 1, "one entity's folder is published before the crash, got %zu", n);
    tfs_test_daemon_kill9(e.d); /* reaps the daemon the hook ended */
    cr_assert_gt(pending_bytes(&e, "roll_owner") + pending_bytes(&e, "roll_value"), 0,
                 "the hook did not stop the publish before its pending files went");
    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = tfs_test_wait_run(e.d, id, 120);
    json_decref(run);
    /* Nothing changed in PACS: the next run writes nothing, and its end publishes what is
     * still pending, without the rows of the folder already out. */
    json_decref(run_pair(&e, "pacs-to-erp", "incremental", "succeeded"));
    cr_assert(wait_published(&e), "rows are still pending after the run");
    assert_roll_twins(&e);
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) - count(DISTINCT (prop_id, tax_year))"
                                    " FROM raw_owner"),
                 0, "a roll_owner row was published twice");
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) - count(DISTINCT (prop_id, tax_year))"
                                    " FROM raw_value"),
                 0, "a roll_value row was published twice");
    env_down(&e);
}

/* ======================================================================================
 * 3. erp-to-pacs: inbox files (BOM, CRLF, quoted fields) reach PACS as the twin says;
 *    malformed lines are dead letters naming file and line; files are archived after the
 *    run; a changed row is written and an unchanged one is not; a missing inbox fails.
 * ====================================================================================== */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The good rows of a drop, as the twin's input (file, line and the columns). */
static void expect_rows(env *e, const char *values)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS erp_payment_in (file text, line int, bill_id text,"
             " prop_id int, tax_year int, amount_due_cents bigint, amount_paid_cents bigint,"
             " payment_status_type_cd text, last_modified date);"
             "INSERT INTO erp_payment_in VALUES %s", values);
    tfs_test_pg_exec(e->state, sql);
}

static void assert_bill_twin(env *e)
{
    char *st = tfs_test_pg_conninfo(e->state);
    tfs_test_assert_matches_twin(st, e->pacs, "property_bill_status", BILL_COLS,
                                 "erp_to_pacs.sql");
    free(st);
}

Test(erp, payments_reach_pacs_bad_lines_are_dead_letters_and_files_archive_after_the_run)
{
    env e;
    env_init(&e, 25);
    long long p1 = scalar_ll(e.pacs, "SELECT min(prop_id) FROM property");
    long long p2 = scalar_ll(e.pacs, "SELECT max(prop_id) FROM property");
    char text[4096], path[512];
    /* A BOM, CRLF, columns in another order, quoted fields (a comma in a bill id). */
    snprintf(text, sizeof text,
             "\xEF\xBB\xBF" "prop_id,bill_id,tax_year,amount_due_cents,amount_paid_cents,"
             "payment_status_type_cd,last_modified\r\n"
             "%lld,B-0001,2026,123456,123456,PD,2026-11-02\r\n"
             "%lld,\"B-0002,A\",2026,5000,\"2500\",pp,2026-11-03\r\n"
             "%lld,B-0003,2026,77,0,DU\r\n"                /* line 4: too few fields */
             "%lld,B-0004,2026,12x,0,DU,2026-11-04\r\n"    /* line 5: bad number */
             "%lld,B-0005,2026,100,0,DU,2026-02-30\r\n"    /* line 6: bad date */
             "%lld,B-0006,2026,900,100,DQ,2026-11-05\r\n",
             p1, p2, p1, p1, p1, p2);
    snprintf(path, sizeof path, "%s/pay-20261105-01.csv", e.inbox);
    write_file(path, text);
    /* A second file: an unterminated quote on its line 3. */
    snprintf(text, sizeof text,
             "bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,"
             "payment_status_type_cd,last_modified\n"
             "B-0007,%lld,2026,100,100,PD,2026-11-06\n"
             "\"B-0008,%lld,2026,100,100,PD,2026-11-06\n",
             p2, p2);
    snprintf(path, sizeof path, "%s/pay-20261105-02.csv", e.inbox);
    write_file(path, text);
    char v[2048];
    snprintf(v, sizeof v,
             "('pay-20261105-01.csv', 2, 'B-0001', %lld, 2026, 123456, 123456, 'PD', '2026-11-02'),"
             "('pay-20261105-01.csv', 3, 'B-0002,A', %lld, 2026, 5000, 2500, 'pp', '2026-11-03'),"
             "('pay-20261105-01.csv', 7, 'B-0006', %lld, 2026, 900, 100, 'DQ', '2026-11-05'),"
             "('pay-20261105-02.csv', 2, 'B-0007', %lld, 2026, 100, 100, 'PD', '2026-11-06')",
             p1, p2, p2, p2);
    expect_rows(&e, v);

    json_t *run = run_pair(&e, "erp-to-pacs", "full", "partial");
    cr_assert_eq(count_of(run, "payment", "written"), 4);
    cr_assert_eq(count_of(run, "payment", "read_failed"), 4);
    cr_assert_eq(count_of(run, "payment", "failed"), 4);
    json_decref(run);
    assert_bill_twin(&e);
    /* Each malformed line is a dead letter naming its file and line, with the reason. */
    tfs_test_response r =
        tfs_test_http(e.d, "GET", "/dead-letters?pair=erp-to-pacs", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *list = json_object_get(r.json, "dead_letters");
    const char *want[][2] = {{"pay-20261105-01.csv:4", "6 fields where the header has 7"},
                             {"pay-20261105-01.csv:5", "amount_due_cents \"12x\""},
                             {"pay-20261105-01.csv:6", "last_modified \"2026-02-30\""},
                             {"pay-20261105-02.csv:3", "unterminated quote"}};
    cr_assert_eq(json_array_size(list), 4, "%s", r.body);
    for (size_t i = 0; i < 4; i++) {
        int found = 0;
        json_t *dl;
        size_t k;
        json_array_foreach(list, k, dl)
        {
            const char *key = json_string_value(json_object_get(dl, "source_key"));
            const char *why = json_string_value(json_array_get(json_object_get(dl, "reasons"), 0));
            const char *stage = json_string_value(json_object_get(dl, "stage"));
            if (key && strcmp(key, want[i][0]) == 0 && why && strstr(why, want[i][1]) &&
                stage && strcmp(stage, "read") == 0)
                found = 1;
        }
        cr_assert(found, "no read dead letter %s with \"%s\": %s", want[i][0], want[i][1],
                  r.body);
    }
    tfs_test_response_free(&r);
    /* Archived after the run, the inbox empty. */
    snprintf(path, sizeof path, "%s/pay-20261105-01.csv", e.archive);
    cr_assert(wait_exists(path), "the first file was not archived");
    snprintf(path, sizeof path, "%s/pay-20261105-02.csv", e.archive);
    cr_assert(wait_exists(path), "the second file was not archived");
    snprintf(path, sizeof path, "%s/pay-20261105-01.csv", e.inbox);
    cr_assert_neq(access(path, F_OK), 0, "an archived file is still in the inbox");

    /* The next drop: B-0001 again unchanged, B-0006 paid. Only the change is written. */
    snprintf(text, sizeof text,
             "bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,"
             "payment_status_type_cd,last_modified\r\n"
             "B-0001,%lld,2026,123456,123456,PD,2026-11-02\r\n"
             "B-0006,%lld,2026,900,900,PD,2026-11-09\r\n",
             p1, p2);
    snprintf(path, sizeof path, "%s/pay-20261109-01.csv", e.inbox);
    write_file(path, text);
    snprintf(v, sizeof v,
             "('pay-20261109-01.csv', 2, 'B-0001', %lld, 2026, 123456, 123456, 'PD', '2026-11-02'),"
             "('pay-20261109-01.csv', 3, 'B-0006', %lld, 2026, 900, 900, 'PD', '2026-11-09')",
             p1, p2);
    expect_rows(&e, v);
    run = run_pair(&e, "erp-to-pacs", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "payment", "read"), 2);
    cr_assert_eq(count_of(run, "payment", "written"), 1);
    cr_assert_eq(count_of(run, "payment", "unchanged"), 1);
    json_decref(run);
    assert_bill_twin(&e);
    /* What erp-to-pacs wrote is no change of PACS's. */
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM change_log"), 0);

    snprintf(path, sizeof path, "%s/pay-20261109-01.csv", e.archive);
    cr_assert(wait_exists(path), "the third file was not archived");
    /* A missing inbox fails the run, naming the folder and the setting. */
    cr_assert_eq(rmdir(e.inbox), 0, "%s", strerror(errno));
    run = run_pair(&e, "erp-to-pacs", "incremental", "failed");
    const char *err = json_string_value(json_object_get(run, "error"));
    cr_assert(err && strstr(err, e.inbox) && strstr(err, "settings.inbox"),
              "the error does not name the inbox: %s", err ? err : "(none)");
    json_decref(run);
    env_down(&e);
}

/* ======================================================================================
 * 4. Gaps of issue 10: a kill -9 exactly between a batch's target write and its state
 *    commit; deletions in the outbox; a failed run's files stay in the inbox; the inbox's
 *    estimate; a file larger than a read, streamed, and resumed mid-file after a kill.
 * ====================================================================================== */

/* The test's own session holding an advisory lock that a trigger makes one write wait on. */
#define HOLD_LOCK 610011

static PGconn *connect_db(const char *db)
{
    char *ci = tfs_test_pg_conninfo(db);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

static void conn_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Waits (at most 60 s) until a session of db waits on the test's advisory lock. */
static void wait_advisory_waiter(const char *db, const char *what)
{
    for (int i = 0; i < 6000; i++) {
        if (scalar_ll(db, "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                          " current_database() AND wait_event_type = 'Lock' AND wait_event ="
                          " 'advisory'") > 0)
            return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("no session of %s ever waited on the hold (%s)", db, what);
}

/* Whole pending files of an entity. */
static int pending_files(const env *e, const char *entity)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/.pending", e->outbox);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int n = 0;
    size_t len = strlen(entity);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        n += strncmp(de->d_name, entity, len) == 0 && de->d_name[len] == '.' && l > 4 &&
             strcmp(de->d_name + l - 4, ".csv") == 0;
    }
    closedir(d);
    return n;
}

/* The kill lands after the 5th owner batch's cb_write returned (its pending file is on
 * disk) and before its state commit (the commit's first sync map row waits on the test's
 * lock), with 4 batches committed but not yet published (publishing is at run end). After
 * the restart the same run must end succeeded with every owner published exactly once,
 * the last row per key, nothing lost: an adapter that dropped the pending rows at start
 * loses the 4 committed batches, and one that published every row repeats the 5th's. */
Test(erp, kill9_between_target_write_and_state_commit_neither_loses_nor_duplicates)
{
    env e;
    env_init(&e, 5);
    PGconn *hold = connect_db(e.state);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE SEQUENCE test_hold_seq;"
             "CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NEW.entity = 'owner' AND nextval('test_hold_seq') = 21 THEN"
             " PERFORM pg_advisory_xact_lock(%d); END IF; RETURN NEW; END $$;"
             "CREATE TRIGGER test_hold BEFORE INSERT ON tfsync.sync_map FOR EACH ROW"
             " EXECUTE FUNCTION test_hold();"
             "SELECT pg_advisory_lock(%d)",
             HOLD_LOCK, HOLD_LOCK);
    conn_exec(hold, sql);
    json_int_t id = start_run(&e, "pacs-to-erp", "full");
    wait_advisory_waiter(e.state, "the 5th owner batch's commit");
    /* The batch's target write returned before its commit began. */
    cr_assert_geq(pending_files(&e, "roll_owner"), 5, "the held batch has no pending file");
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) FROM tfsync.sync_map WHERE entity ="
                                    " 'owner'"),
                 20, "4 owner batches of 5 committed before the held one");
    tfs_test_daemon_kill9(e.d);
    char names[8][64];
    cr_assert_eq(published(&e, "roll_owner", names, 8), 0, "the killed run had published");
    conn_exec(hold, "SELECT pg_advisory_unlock_all()");
    conn_exec(hold, "DROP TRIGGER test_hold ON tfsync.sync_map; DROP FUNCTION test_hold();"
                    " DROP SEQUENCE test_hold_seq");
    PQfinish(hold);

    e.d = tfs_test_daemon_start(e.cfg);
    json_decref(wait_state(&e, id, "succeeded"));
    cr_assert(wait_published(&e), "rows are still pending after the resumed run");
    assert_roll_twins(&e);
    /* Exactly once: no key in two rows of all that was published. */
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) - count(DISTINCT (prop_id, tax_year))"
                                    " FROM raw_owner"),
                 0, "a roll_owner row was published twice");
    cr_assert_eq(scalar_ll(e.state, "SELECT count(*) FROM raw_owner"),
                 scalar_ll(e.state, "SELECT count(*) FROM roll_owner"));
    env_down(&e);
}

/* PACS retires a property and drops the owner rows of another: the incremental run
 * publishes D rows with their keys, and a reader applying the folders in order (load_roll:
 * last row per key, deletions drop it) ends with the twins' state. */
Test(erp, retired_property_and_removed_owner_are_published_as_delete_rows)
{
    env e;
    env_init(&e, 25);
    json_decref(run_pair(&e, "pacs-to-erp", "full", "succeeded"));
    cr_assert(wait_published(&e), "the full run's rows were never published");
    long long retired = scalar_ll(e.pacs, "SELECT min(o.prop_id) FROM owner o");
    long long unowned = scalar_ll(e.pacs, "SELECT max(o.prop_id) FROM owner o");
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE property_val SET prop_inactive_dt = now() WHERE prop_id = %lld;"
             "DELETE FROM owner WHERE prop_id = %lld",
             retired, unowned);
    tfs_test_pg_exec(e.pacs, sql);
    json_t *run = run_pair(&e, "pacs-to-erp", "incremental", "succeeded");
    json_decref(run);
    cr_assert(wait_published(&e), "the incremental run's rows were never published");
    cr_assert_eq(load_roll(&e), 4, "the incremental run published one folder per entity");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM raw_owner WHERE seq = 1 AND action = 'D' AND prop_id = %lld"
             " AND tax_year = 2026 AND account IS NULL AND owner_name IS NULL",
             retired);
    cr_assert_eq(scalar_ll(e.state, sql), 1, "no D row of the retired property's owner");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM raw_value WHERE seq = 1 AND action = 'D' AND prop_id = %lld"
             " AND tax_year = 2026 AND taxable_value IS NULL",
             retired);
    cr_assert_eq(scalar_ll(e.state, sql), 1, "no D row of the retired property's value");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM raw_owner WHERE seq = 1 AND action = 'D' AND prop_id = %lld",
             unowned);
    cr_assert_eq(scalar_ll(e.state, sql), 1, "no D row of the property whose owners went");
    assert_roll_twins(&e);
    env_down(&e);
}

/* A run that fails archives nothing: its files stay in the inbox, and the next good run
 * reads them again and archives them then. PACS refuses the writes (its bill table gone
 * for a while). */
Test(erp, a_failed_run_leaves_its_files_in_the_inbox_for_the_next_run)
{
    env e;
    env_init(&e, 25);
    long long p1 = scalar_ll(e.pacs, "SELECT min(prop_id) FROM property");
    char text[1024], path[512];
    snprintf(text, sizeof text,
             "bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,"
             "payment_status_type_cd,last_modified\n"
             "F-0001,%lld,2026,100,100,PD,2026-11-06\n"
             "F-0002,%lld,2026,200,0,DU,2026-11-06\n",
             p1, p1);
    snprintf(path, sizeof path, "%s/pay-20261106-01.csv", e.inbox);
    write_file(path, text);
    char v[512];
    snprintf(v, sizeof v,
             "('pay-20261106-01.csv', 2, 'F-0001', %lld, 2026, 100, 100, 'PD', '2026-11-06'),"
             "('pay-20261106-01.csv', 3, 'F-0002', %lld, 2026, 200, 0, 'DU', '2026-11-06')",
             p1, p1);
    expect_rows(&e, v);
    tfs_test_pg_exec(e.pacs, "ALTER TABLE property_bill_status RENAME TO bill_status_away");
    json_t *run = run_pair(&e, "erp-to-pacs", "full", "failed");
    json_decref(run);
    /* The run's end is told after its final state: a stop waits for the worker, so
     * whatever it archived is archived now. */
    cr_assert_eq(tfs_test_daemon_stop_status(e.d), 0);
    e.d = NULL;
    cr_assert_eq(access(path, F_OK), 0, "the failed run's file left the inbox");
    snprintf(path, sizeof path, "%s/pay-20261106-01.csv", e.archive);
    cr_assert_neq(access(path, F_OK), 0, "the failed run archived its file");
    e.d = tfs_test_daemon_start(e.cfg);
    tfs_test_pg_exec(e.pacs, "ALTER TABLE bill_status_away RENAME TO property_bill_status");
    run = run_pair(&e, "erp-to-pacs", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "payment", "read"), 2, "the next run did not read the file");
    cr_assert_eq(count_of(run, "payment", "written"), 2);
    json_decref(run);
    assert_bill_twin(&e);
    snprintf(path, sizeof path, "%s/pay-20261106-01.csv", e.archive);
    cr_assert(wait_exists(path), "the file was not archived after the good run");
    env_down(&e);
}

/* A growing text buffer for the big file and its twin's VALUES. */
typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void text_add(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        cr_assert_geq(k, 0);
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        t->cap = t->cap ? t->cap * 2 : 1 << 16;
        while (t->cap < t->n + (size_t)k + 1)
            t->cap *= 2;
        t->p = realloc(t->p, t->cap);
        cr_assert_not_null(t->p);
    }
}

#define BIG_ROWS 4000
#define BIG_BAD_ROW 3200 /* a malformed row, past the kill point and past the first blocks */
#define BIG_HELD "BIG-002000"

/* A payment file of BIG_ROWS rows (about 190 KB: three of the reader's 64 KiB blocks,
 * 80 reads of 50), one of them malformed and one, across the first block's end, with a
 * quoted id holding a quote, a comma and a CRLF, with the twin's input rows for the good
 * ones (the dead letter's line counts the quoted line end).
 * The first read of the run is held at the PACS write of BIG_HELD (the 40th batch) and the
 * daemon killed there; after the restart the run resumes from its cursor in the middle of
 * the file: every good row reaches PACS (the twin), each read once (read counts exactly
 * the file's rows), the malformed one is a dead letter naming its line. The run's
 * estimate is the file's data lines. */
Test(erp, a_file_larger_than_a_read_is_streamed_and_resumed_mid_file_after_kill9)
{
    env e;
    env_init(&e, 25);
    long long lo = scalar_ll(e.pacs, "SELECT min(prop_id) FROM property");
    long long hi = scalar_ll(e.pacs, "SELECT max(prop_id) FROM property");
    text file = {0}, want = {0};
    text_add(&file, "\xEF\xBB\xBF" "bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,"
                    "payment_status_type_cd,last_modified\r\n");
    int line = 2, quoted = 0;
    for (int i = 1; i <= BIG_ROWS; i++, line++) {
        long long prop = i % 2 ? lo : hi;
        int due = 1000 + i, paid = i % 3 == 0 ? due : 0;
        const char *st = i % 3 == 0 ? "PD" : "DU";
        if (i == BIG_BAD_ROW) {
            text_add(&file, "BIG-%06d,%lld,2026,%d,%d,%s,2026-13-01\r\n", i, prop, due, paid, st);
            cr_assert_eq(line, BIG_BAD_ROW + 2, "the bad row's line");
            continue;
        }
        if (!quoted && file.n + 40 > 64 * 1024) {
            /* Across the first block's end: a quoted id with a quote, a comma and a CRLF
             * inside, so the record spans two blocks and two lines. */
            quoted = i;
            text_add(&file, "\"BIG-%06d \"\"q\"\",\r\nx\",%lld,2026,%d,%d,%s,2026-11-%02d\r\n", i,
                     prop, due, paid, st, 1 + i % 28);
            text_add(&want, ",('pay-big.csv', %d, 'BIG-%06d \"q\",' || E'\\r\\n' || 'x',"
                            " %lld, 2026, %d, %d, '%s', '2026-11-%02d')",
                     line, i, prop, due, paid, st, 1 + i % 28);
            line++;
            continue;
        }
        text_add(&file, "BIG-%06d,%lld,2026,%d,%d,%s,2026-11-%02d\r\n", i, prop, due, paid, st,
                 1 + i % 28);
        text_add(&want, "%s('pay-big.csv', %d, 'BIG-%06d', %lld, 2026, %d, %d, '%s',"
                        " '2026-11-%02d')",
                 want.n ? "," : "", line, i, prop, due, paid, st, 1 + i % 28);
    }
    cr_assert_gt(quoted, 1);
    cr_assert_gt(file.n, 2 * 64 * 1024, "the file must cross two read blocks");
    char path[512];
    snprintf(path, sizeof path, "%s/pay-big.csv", e.inbox);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(file.p, 1, file.n, f), file.n);
    cr_assert_eq(fclose(f), 0);
    free(file.p);
    tfs_test_pg_exec(e.state,
                     "CREATE TABLE erp_payment_in (file text, line int, bill_id text,"
                     " prop_id int, tax_year int, amount_due_cents bigint, amount_paid_cents"
                     " bigint, payment_status_type_cd text, last_modified date)");
    char *ins = malloc(want.n + 64);
    sprintf(ins, "INSERT INTO erp_payment_in VALUES %s", want.p);
    tfs_test_pg_exec(e.state, ins);
    free(ins);
    free(want.p);

    PGconn *hold = connect_db(e.pacs);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NEW.bill_id = '" BIG_HELD "' THEN PERFORM pg_advisory_xact_lock(%d); END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER test_hold BEFORE INSERT OR UPDATE ON property_bill_status FOR"
             " EACH ROW EXECUTE FUNCTION test_hold();"
             "SELECT pg_advisory_lock(%d)",
             HOLD_LOCK, HOLD_LOCK);
    conn_exec(hold, sql);
    json_int_t id = start_run(&e, "erp-to-pacs", "full");
    wait_advisory_waiter(e.pacs, "the PACS write of " BIG_HELD);
    snprintf(sql, sizeof sql,
             "SELECT coalesce((counts->'payment'->>'read')::bigint, 0) FROM tfsync.runs"
             " WHERE run_id = %lld",
             (long long)id);
    long long before = 0;
    for (int i = 0; i < 6000 && (before = scalar_ll(e.state, sql)) < 1000; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    cr_assert_geq(before, 1000, "batches before the held one were not committed");
    cr_assert_lt(before, BIG_ROWS, "the run read the whole file before the kill");
    tfs_test_daemon_kill9(e.d);
    conn_exec(hold, "SELECT pg_advisory_unlock_all()");
    conn_exec(hold, "DROP TRIGGER test_hold ON property_bill_status; DROP FUNCTION test_hold()");
    PQfinish(hold);
    snprintf(path, sizeof path, "%s/pay-big.csv", e.inbox);
    cr_assert_eq(access(path, F_OK), 0, "the killed run's file left the inbox");

    e.d = tfs_test_daemon_start(e.cfg);
    json_t *run = wait_state(&e, id, "partial");
    cr_assert_eq(count_of(run, "payment", "read"), BIG_ROWS, "each row is read once");
    cr_assert_eq(count_of(run, "payment", "written"), BIG_ROWS - 1);
    cr_assert_eq(count_of(run, "payment", "read_failed"), 1);
    /* The estimate counts lines: the quoted line end is one more. */
    cr_assert_eq(count_of(run, "payment", "estimated_total"), BIG_ROWS + 1);
    json_decref(run);
    assert_bill_twin(&e);
    tfs_test_response r =
        tfs_test_http(e.d, "GET", "/dead-letters?pair=erp-to-pacs", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *dl = json_array_get(json_object_get(r.json, "dead_letters"), 0);
    char key[64];
    snprintf(key, sizeof key, "pay-big.csv:%d", BIG_BAD_ROW + 2); /* after the quoted CRLF */
    cr_assert_eq(json_array_size(json_object_get(r.json, "dead_letters")), 1, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(dl, "source_key")), key, "%s", r.body);
    tfs_test_response_free(&r);
    snprintf(path, sizeof path, "%s/pay-big.csv", e.archive);
    cr_assert(wait_exists(path), "the file was not archived after the run");
    env_down(&e);
}
