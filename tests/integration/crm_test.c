/* tests/integration/crm_test.c — the CRM adapter against a real REST server, end to end
 * (issue 10): PACS owners -> CRM contacts (pacs-to-crm) and a clerk's mailing-address
 * edit in the CRM -> the PACS account (crm-to-pacs), through a real tfsyncd over HTTP.
 *
 * The CRM is npm's json-server 0.17.4 (tests/tools) behind tests/tools/crm_server.js, a
 * small proxy that checks the bearer token, injects 429/5xx/4xx/slow answers on demand and
 * logs every request with its time. Each test starts its own on a free port with an empty
 * data file and stops it. json-server missing fails the tests: it is part of the set-up.
 *
 * What they must show: the CRM holds exactly what the SQL twin (tests/integration/sql/
 * pacs_to_crm.sql) computes after full and incremental runs, and PACS what
 * crm_to_pacs.sql computes from the CRM after a clerk's edits; confidential owners never
 * appear in clear; the pairs run both ways repeatedly with no ping-pong (the second round
 * writes 0, the sync's own writes are no change on either side); a 429 is retried after
 * its Retry-After (measured in the proxy's log), a 5xx is retried; a 4xx is a dead letter
 * while the run goes on; a wrong token fails the run with a clear permanent error.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "plugin_host.h"
#include "tfs_test.h"

TestSuite(crm, .timeout = 240);

#define TMPL_PACS "tfs_tmpl_pacs300"
#define TOKEN "crm-test-token"
#define TOOLS TFS_SOURCE_DIR "/tests/tools"

/* The contact columns pacs_to_crm.sql computes, in its order. */
#define CONTACT_COLS                                                                            \
    "id, display_name, do_not_publish, mail_line1, mail_line2, mail_city, mail_state,"         \
    " mail_zip5, mail_zip4"
#define MAIL_COLS "acct_id, addr_line1, addr_line2, addr_city, addr_state, addr_zip"
/* The contact_property columns pacs_owner_to_crm.sql computes, in its order. */
#define PARCEL_COLS "contact_id, prop_id, tax_year, geo_id, primary_owner"

typedef struct crm_server {
    pid_t pid;
    int port;
    char dir[256], data[300], log[300];
} crm_server;

typedef struct env {
    char *pacs, *state;
    json_t *cfg;
    tfs_test_daemon *d;
    crm_server crm;
} env;

static void crm_start(crm_server *c)
{
    struct stat st;
    cr_assert(stat(TOOLS "/node_modules/json-server/package.json", &st) == 0,
              "json-server is not installed in " TOOLS ": run `npm ci` there (scripts/deps.sh "
              "does as root); the CRM tests need a real REST server");
    snprintf(c->dir, sizeof c->dir, "%s/tfs-crm-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(c->dir));
    snprintf(c->data, sizeof c->data, "%s/crm.json", c->dir);
    snprintf(c->log, sizeof c->log, "%s/requests.log", c->dir);
    FILE *f = fopen(c->data, "w");
    cr_assert_not_null(f);
    fputs("{\"contacts\": [], \"contact_properties\": []}\n", f);
    fclose(f);
    c->port = tfs_test_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    c->pid = fork();
    cr_assert(c->pid >= 0);
    if (c->pid == 0) {
        execlp("node", "node", TOOLS "/crm_server.js", port, c->data, TOKEN, c->log,
               (char *)NULL);
        _exit(127);
    }
    /* Poll until it answers (401 without a token is an answer). */
    for (int i = 0; i < 1000; i++) {
        tfs_test_response r = tfs_test_http_port(c->port, "GET", "/contacts?_limit=1", TOKEN,
                                                 NULL);
        long s = r.status;
        tfs_test_response_free(&r);
        if (s == 200)
            return;
        int status;
        cr_assert(waitpid(c->pid, &status, WNOHANG) == 0,
                  "the CRM server (node tests/tools/crm_server.js) exited at start");
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("the CRM server did not answer on port %d", c->port);
}

static void crm_stop(crm_server *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    unlink(c->data);
    unlink(c->log);
    rmdir(c->dir);
}

/* A request to the CRM as a clerk or the test (with the token); the answer must be 2xx. */
static json_t *crm_call(env *e, const char *method, const char *path, const char *body)
{
    tfs_test_response r = tfs_test_http_port(e->crm.port, method, path, TOKEN, body);
    cr_assert(r.status / 100 == 2, "%s %s on the CRM: %ld %s", method, path, r.status,
              r.body ? r.body : r.error);
    json_t *j = json_incref(r.json);
    tfs_test_response_free(&r);
    return j;
}

static void crm_faults(env *e, const char *rules)
{
    json_decref(crm_call(e, "POST", "/__faults", rules));
}

/* systems.crm.settings overrides: a JSON object or NULL. */
static void env_init(env *e, const char *token, const char *settings)
{
    memset(e, 0, sizeof *e);
    crm_start(&e->crm);
    e->pacs = tfs_test_db_clone(TMPL_PACS, "cpacs");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "cstate");
    e->cfg = tfs_test_config_new(e->pacs, e->pacs, e->state);
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_del(systems, "cama");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", e->crm.port);
    json_t *s = json_pack("{s:s, s:s, s:i, s:i, s:i}", "base_url", url, "token", token,
                          "timeout_ms", 5000, "retry_after_max_s", 5, "max_batch_ops", 40);
    if (settings) {
        json_t *over = json_loads(settings, 0, NULL);
        cr_assert_not_null(over);
        json_object_update(s, over);
        json_decref(over);
    }
    json_object_set_new(systems, "crm", json_pack("{s:s, s:o}", "plugin", "crm", "settings", s));
    json_object_set_new(
        e->cfg, "pairs",
        json_pack("[{s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}, {s:s, s:[s], s:s}]},"
                  " {s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}]}]",
                  "name", "pacs-to-crm", "source", "pacs", "target", "crm", "batch_size", 100,
                  "entities", "source", "account", "targets", "contact", "script",
                  "pacs_to_crm.lua", "source", "owner", "targets", "contact_property",
                  "script", "pacs_owner_to_crm.lua",
                  "name", "crm-to-pacs", "source", "crm", "target", "pacs", "batch_size", 100,
                  "entities", "source", "contact", "targets", "account_mail", "script",
                  "crm_to_pacs.lua"));
    tfs_test_pg_exec(e->pacs,
                     "CREATE VIEW synced_mail AS SELECT " MAIL_COLS " FROM address"
                     " WHERE addr_type_cd = 'M'");
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
    crm_stop(&e->crm);
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->state);
}

static long long scalar_ll(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    long long x = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return x;
}

/* One run of pair in mode, awaited (tfs_test_run_pair). */
static json_t *run_pair(env *e, const char *pair, const char *mode, const char *want)
{
    return tfs_test_run_pair(e->d, pair, mode, want);
}

static long long count_of(json_t *run, const char *entity, const char *what)
{
    return tfs_test_count(run, entity, what);
}

static long long written(json_t *run, const char *entity)
{
    return count_of(run, entity, "written") + count_of(run, entity, "deleted");
}

/* What pacs-to-crm wrote: contacts (from accounts) and their parcels (from owners). */
static long long written_to_crm(json_t *run)
{
    return written(run, "account") + written(run, "owner");
}

/* Every contact the CRM holds, loaded into table crm_contact of the PACS database (what
 * the twins are compared with); returns the CRM's JSON text (owned). */
static char *load_crm(env *e)
{
    json_t *all = crm_call(e, "GET", "/contacts?_sort=id", NULL);
    char *text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, "$crm$"));
    size_t cap = strlen(text) + 1024;
    char *sql = malloc(cap);
    snprintf(sql, cap,
             "DROP TABLE IF EXISTS crm_contact CASCADE;"
             "CREATE TABLE crm_contact AS SELECT * FROM json_to_recordset($crm$%s$crm$::json)"
             " AS x(id bigint, display_name text, first_name text, last_name text, email text,"
             " phone text, do_not_publish boolean, mail_line1 text, mail_line2 text,"
             " mail_city text, mail_state text, mail_zip5 text, mail_zip4 text,"
             " updated_at text)",
             text);
    tfs_test_pg_exec(e->pacs, sql);
    free(sql);
    json_t *parcels = crm_call(e, "GET", "/contact_properties?_sort=id", NULL);
    char *ptext = json_dumps(parcels, JSON_COMPACT);
    json_decref(parcels);
    cr_assert_not_null(ptext);
    cr_assert_null(strstr(ptext, "$crm$"));
    cap = strlen(ptext) + 1024;
    sql = malloc(cap);
    snprintf(sql, cap,
             "DROP TABLE IF EXISTS crm_contact_property CASCADE;"
             "CREATE TABLE crm_contact_property AS SELECT * FROM json_to_recordset("
             "$crm$%s$crm$::json) AS x(id text, contact_id bigint, prop_id bigint,"
             " tax_year bigint, geo_id text, primary_owner boolean)",
             ptext);
    tfs_test_pg_exec(e->pacs, sql);
    free(sql);
    free(ptext);
    /* The resource id is the key, as the adapter promises. */
    cr_assert_eq(scalar_ll(e->pacs, "SELECT count(*) FROM crm_contact_property WHERE id IS"
                                    " DISTINCT FROM concat_ws('-', contact_id, prop_id, tax_year)"),
                 0, "a contact_property's id is not <contact_id>-<prop_id>-<tax_year>");
    return text;
}

/* The CRM holds what pacs_to_crm.sql computes; PACS what crm_to_pacs.sql computes. */
static void assert_twins(env *e)
{
    char *text = load_crm(e);
    free(text);
    char *pacs = tfs_test_pg_conninfo(e->pacs);
    tfs_test_assert_matches_twin(pacs, e->pacs, "crm_contact", CONTACT_COLS,
                                 "pacs_to_crm.sql");
    tfs_test_assert_matches_twin(pacs, e->pacs, "crm_contact_property", PARCEL_COLS,
                                 "pacs_owner_to_crm.sql");
    free(pacs);
}

/* ======================================================================================
 * 1. Full and incremental runs both ways, contents against the twins, confidential
 *    owners never in clear, and no ping-pong.
 * ====================================================================================== */

Test(crm, full_and_incremental_both_ways_without_ping_pong)
{
    env e;
    env_init(&e, TOKEN, NULL);
    char *pacs_addr = tfs_test_pg_scalar(
        e.pacs, "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM address t");

    json_t *run = run_pair(&e, "pacs-to-crm", "full", "succeeded");
    long long contacts = written(run, "account");
    json_decref(run);
    cr_assert_gt(contacts, 200, "pacs-to-crm wrote %lld contacts", contacts);
    assert_twins(&e);
    /* Some accounts own several parcels: the test shows one contact for all of them. */
    cr_assert_gt(scalar_ll(e.pacs, "SELECT count(*) FROM (SELECT contact_id FROM"
                                   " crm_contact_property GROUP BY contact_id HAVING"
                                   " count(*) > 1) x"),
                 0, "no contact owns two parcels: the test shows nothing");

    /* Confidential owners: masked, no address, do_not_publish; their names nowhere. */
    long long conf = scalar_ll(e.pacs, "SELECT count(*) FROM crm_contact c JOIN account a"
                                       " ON a.acct_id = c.id WHERE a.confidential_flag = 'T'");
    cr_assert_gt(conf, 0, "no confidential owner among the contacts: the test shows nothing");
    cr_assert_eq(scalar_ll(e.pacs,
                           "SELECT count(*) FROM crm_contact c JOIN account a ON a.acct_id ="
                           " c.id WHERE a.confidential_flag = 'T' AND (c.display_name <>"
                           " 'CONFIDENTIAL OWNER' OR NOT c.do_not_publish OR num_nonnulls("
                           "c.mail_line1, c.mail_line2, c.mail_city, c.mail_state,"
                           " c.mail_zip5, c.mail_zip4) > 0)"),
                 0, "a confidential owner is in the CRM in clear");
    char *text = load_crm(&e);
    char *names = tfs_test_pg_scalar(
        e.pacs, "SELECT string_agg(file_as_name, '|') FROM account WHERE confidential_flag = 'T'"
                " AND file_as_name IS NOT NULL");
    for (char *n = names ? strtok(names, "|") : NULL; n; n = strtok(NULL, "|"))
        cr_assert_null(strstr(text, n), "the confidential owner %s is in the CRM's data", n);
    free(names);
    free(text);

    /* What pacs-to-crm wrote is no clerk's change: no updated_at. */
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM crm_contact WHERE updated_at IS NOT NULL"),
                 0);

    /* crm-to-pacs full: every address goes back unchanged, so PACS is the same and its
     * change log empty. */
    run = run_pair(&e, "crm-to-pacs", "full", "succeeded");
    /* cb_estimate: the listing's X-Total-Count, as the run status shows it. */
    cr_assert_eq(count_of(run, "contact", "estimated_total"),
                 scalar_ll(e.pacs, "SELECT count(*) FROM crm_contact"));
    json_decref(run);
    char *now = tfs_test_pg_scalar(
        e.pacs, "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM address t");
    cr_assert_str_eq(now, pacs_addr, "crm-to-pacs changed an address the CRM did not");
    free(now);
    free(pacs_addr);
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM change_log"), 0);

    /* Round two, full and incremental: nothing to write either way. */
    const char *modes[] = {"full", "incremental"};
    for (int m = 0; m < 2; m++) {
        json_t *a = run_pair(&e, "pacs-to-crm", modes[m], "succeeded");
        json_t *b = run_pair(&e, "crm-to-pacs", modes[m], "succeeded");
        cr_assert_eq(written_to_crm(a), 0, "a second %s pacs-to-crm wrote %lld", modes[m],
                     written_to_crm(a));
        cr_assert_eq(written(b, "contact"), 0, "a second %s crm-to-pacs wrote %lld",
                     modes[m], written(b, "contact"));
        json_decref(a);
        json_decref(b);
    }

    /* A clerk changes two mailing addresses in the CRM (and sets updated_at, as the CRM
     * does); PACS renames an owner. */
    char *ids = tfs_test_pg_scalar(
        e.pacs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM crm_contact"
                " WHERE NOT do_not_publish ORDER BY id LIMIT 2) x");
    long long id1 = 0, id2 = 0;
    cr_assert_eq(sscanf(ids, "%lld,%lld", &id1, &id2), 2);
    free(ids);
    char path[64];
    snprintf(path, sizeof path, "/contacts/%lld", id1);
    json_decref(crm_call(&e, "PATCH", path,
                         "{\"mail_line1\": \"PO BOX 4411\", \"mail_line2\": null,"
                         " \"mail_city\": \"GEORGETOWN\", \"mail_state\": \"TX\","
                         " \"mail_zip5\": \"78627\", \"mail_zip4\": \"4411\","
                         " \"updated_at\": \"2026-12-01T09:30:00.000Z\"}"));
    snprintf(path, sizeof path, "/contacts/%lld", id2);
    json_decref(crm_call(&e, "PATCH", path,
                         "{\"mail_line1\": \"12 ELM St\", \"mail_city\": \"HUTTO\","
                         " \"mail_zip5\": \"78634\", \"mail_zip4\": null,"
                         " \"updated_at\": \"2026-12-01T09:31:00.000Z\"}"));
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE account SET file_as_name = 'CRM TEST OWNER' WHERE acct_id = (SELECT"
             " min(id) FROM crm_contact WHERE NOT do_not_publish AND id NOT IN (%lld, %lld))",
             id1, id2);
    tfs_test_pg_exec(e.pacs, sql);

    run = run_pair(&e, "crm-to-pacs", "incremental", "succeeded");
    cr_assert_eq(written(run, "contact"), 2, "the clerk's 2 edits: crm-to-pacs wrote %lld",
                 written(run, "contact"));
    json_decref(run);
    snprintf(sql, sizeof sql,
             "SELECT concat_ws('|', addr_line1, addr_city, addr_zip) FROM address WHERE"
             " acct_id = %lld AND addr_type_cd = 'M'", id1);
    char *addr = tfs_test_pg_scalar(e.pacs, sql);
    cr_assert_str_eq(addr, "PO BOX 4411|GEORGETOWN|78627-4411");
    free(addr);
    /* The sync's write is no change of PACS: its change log never saw it. */
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM change_log WHERE tbl = 'address'"), 0,
                 "the CRM's address writes reached the PACS change log");
    /* Both sides now agree with their twins: PACS holds the CRM's addresses. */
    text = load_crm(&e);
    free(text);
    char *pacs = tfs_test_pg_conninfo(e.pacs);
    tfs_test_pg_exec(e.pacs,
                     "DROP VIEW IF EXISTS crm_mail; CREATE VIEW crm_mail AS SELECT " MAIL_COLS
                     " FROM synced_mail WHERE acct_id IN (SELECT id FROM crm_contact WHERE NOT"
                     " do_not_publish)");
    tfs_test_assert_matches_twin(pacs, e.pacs, "crm_mail", MAIL_COLS, "crm_to_pacs.sql");

    /* The rename flows to the CRM, the address writes do not come back. */
    run = run_pair(&e, "pacs-to-crm", "incremental", "succeeded");
    cr_assert_gt(written(run, "account"), 0);
    json_decref(run);
    assert_twins(&e);
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM crm_contact WHERE display_name ="
                                   " 'CRM TEST OWNER' AND updated_at IS NULL"),
                 1, "the rename is not in the CRM, or the sync bumped updated_at");

    for (int round = 0; round < 2; round++) {
        json_t *a = run_pair(&e, "crm-to-pacs", "incremental", "succeeded");
        json_t *b = run_pair(&e, "pacs-to-crm", "incremental", "succeeded");
        cr_assert_eq(written(a, "contact") + written_to_crm(b), 0,
                     "round %d after the edits wrote %lld + %lld: ping-pong", round,
                     written(a, "contact"), written_to_crm(b));
        json_decref(a);
        json_decref(b);
    }
    free(pacs);
    env_down(&e);
}

/* ======================================================================================
 * 1b. Parcels: a contact owns several; retiring one keeps the contact, an account that
 *     owns nothing any more (its only property retired, or its owner row removed) leaves
 *     the CRM, and the CRM matches both twins after the incremental run.
 * ====================================================================================== */

Test(crm, parcels_follow_ownership_and_contacts_outlive_one_retirement)
{
    env e;
    env_init(&e, TOKEN, NULL);
    json_t *run = run_pair(&e, "pacs-to-crm", "full", "succeeded");
    json_decref(run);
    char *text = load_crm(&e);
    free(text);
    assert_twins(&e);

    /* A owns several parcels; B is the sole owner of its only one; D co-owns its only
     * one with someone else. */
    long long a = scalar_ll(e.pacs, "SELECT min(contact_id) FROM (SELECT contact_id FROM"
                                    " crm_contact_property GROUP BY contact_id HAVING"
                                    " count(*) > 1) x");
    long long pa = 0, b = 0, pb = 0, d = 0, pd = 0;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT min(prop_id) FROM crm_contact_property WHERE"
                              " contact_id = %lld", a);
    pa = scalar_ll(e.pacs, sql);
    const char *single = "WITH n AS (SELECT contact_id, count(*) AS parcels, min(prop_id) AS"
                         " prop_id FROM crm_contact_property GROUP BY contact_id),"
                         " o AS (SELECT prop_id, count(*) AS owners FROM crm_contact_property"
                         " GROUP BY prop_id)";
    snprintf(sql, sizeof sql, "%s SELECT min(n.contact_id) FROM n JOIN o USING (prop_id) WHERE"
                              " n.parcels = 1 AND o.owners = 1 AND n.prop_id <> %lld", single, pa);
    b = scalar_ll(e.pacs, sql);
    snprintf(sql, sizeof sql, "SELECT prop_id FROM crm_contact_property WHERE contact_id = %lld",
             b);
    pb = scalar_ll(e.pacs, sql);
    snprintf(sql, sizeof sql, "%s SELECT min(n.contact_id) FROM n JOIN o USING (prop_id) WHERE"
                              " n.parcels = 1 AND o.owners > 1 AND n.prop_id NOT IN (%lld, %lld)",
             single, pa, pb);
    d = scalar_ll(e.pacs, sql);
    snprintf(sql, sizeof sql, "SELECT prop_id FROM crm_contact_property WHERE contact_id = %lld",
             d);
    pd = scalar_ll(e.pacs, sql);
    cr_assert(a > 0 && pa > 0 && b > 0 && pb > 0 && d > 0 && pd > 0,
              "the twin data lacks a case: A %lld (%lld), B %lld (%lld), D %lld (%lld)", a, pa,
              b, pb, d, pd);

    /* PACS retires A's first parcel and B's only one, and takes D off its parcel. */
    snprintf(sql, sizeof sql,
             "UPDATE property_val SET prop_inactive_dt = DATE '2026-11-30' WHERE prop_id IN"
             " (%lld, %lld) AND prop_val_yr = 2026;"
             "DELETE FROM owner WHERE owner_id = %lld AND prop_id = %lld AND owner_tax_yr = 2026",
             pa, pb, d, pd);
    tfs_test_pg_exec(e.pacs, sql);
    run = run_pair(&e, "pacs-to-crm", "incremental", "succeeded");
    cr_assert_geq(count_of(run, "account", "deleted"), 2, "B and D were not deleted");
    cr_assert_geq(count_of(run, "owner", "deleted"), 2, "the retired parcels were not deleted");
    json_decref(run);
    text = load_crm(&e);
    free(text);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM crm_contact WHERE id = %lld", a);
    cr_assert_eq(scalar_ll(e.pacs, sql), 1, "A (%lld) lost its contact with one of its parcels",
                 a);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM crm_contact_property WHERE prop_id IN"
                              " (%lld, %lld)", pa, pb);
    cr_assert_eq(scalar_ll(e.pacs, sql), 0, "a retired parcel is still in the CRM");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM crm_contact WHERE id IN (%lld, %lld)", b, d);
    cr_assert_eq(scalar_ll(e.pacs, sql), 0,
                 "an account owning nothing any more is still a contact (B %lld, D %lld)", b, d);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM crm_contact_property WHERE prop_id = %lld",
             pd);
    cr_assert_gt(scalar_ll(e.pacs, sql), 0, "D's co-owners lost their parcel");
    assert_twins(&e);

    run = run_pair(&e, "pacs-to-crm", "incremental", "succeeded");
    cr_assert_eq(written_to_crm(run), 0, "the round after wrote %lld", written_to_crm(run));
    json_decref(run);
    env_down(&e);
}

/* The requests of the proxy's log as an array of {t, method, url, status} (owned). */
static json_t *requests(env *e)
{
    char *text = tfs_test_read_file(e->crm.log);
    json_t *out = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        json_array_append_new(out, json_loads(line, 0, NULL));
    free(text);
    return out;
}

/* ======================================================================================
 * 2. A 429 is retried after its Retry-After, a 503 is retried, a 422 is a dead letter
 *    while the run goes on.
 * ====================================================================================== */

Test(crm, retry_after_5xx_and_4xx_dead_letter)
{
    env e;
    env_init(&e, TOKEN, "{\"timeout_ms\": 1000}");
    /* The first POST: 429 Retry-After 1; every GET of one contact: 422; the first GET of
     * another: 503, the next one answered after 2.5 s (past timeout_ms). */
    long long bad = scalar_ll(e.pacs, "SELECT min(owner_id) FROM owner WHERE owner_id > 50"
                                      " AND owner_id IN (SELECT acct_id FROM account WHERE"
                                      " confidential_flag = 'F')");
    char rules[512];
    snprintf(rules, sizeof rules,
             "[{\"method\": \"POST\", \"path\": \"/contacts\", \"status\": 429,"
             " \"retry_after\": 1, \"count\": 1},"
             " {\"method\": \"GET\", \"path\": \"/contacts/%lld\", \"status\": 422, \"count\": -1,"
             " \"error\": \"contact %lld is locked by a case\"},"
             " {\"method\": \"GET\", \"path\": \"/contacts/\", \"status\": 503, \"count\": 1},"
             " {\"method\": \"GET\", \"path\": \"/contacts/\", \"status\": 0, \"delay_ms\": 2500,"
             " \"count\": 1}]",
             bad, bad);
    crm_faults(&e, rules);
    json_t *run = run_pair(&e, "pacs-to-crm", "full", "partial");
    json_decref(run);

    json_t *reqs = requests(&e);
    size_t i;
    json_t *q;
    long long t429 = -1, tnext = -1;
    int saw503 = 0;
    const char *url429 = NULL;
    json_array_foreach(reqs, i, q) {
        long st = (long)json_integer_value(json_object_get(q, "status"));
        const char *url = json_string_value(json_object_get(q, "url"));
        const char *m = json_string_value(json_object_get(q, "method"));
        if (st == 429 && t429 < 0) {
            t429 = json_integer_value(json_object_get(q, "t"));
            url429 = url;
        } else if (t429 >= 0 && tnext < 0 && strcmp(m, "POST") == 0 &&
                   strcmp(url, url429) == 0) {
            tnext = json_integer_value(json_object_get(q, "t"));
        }
        if (st == 503)
            saw503 = 1;
    }
    cr_assert_geq(t429, 0, "the proxy answered no 429");
    cr_assert_geq(tnext, 0, "the POST answered 429 was never retried");
    cr_assert_geq(tnext - t429, 1000, "retried %lld ms after a 429 with Retry-After 1",
                  tnext - t429);
    cr_assert(saw503, "the proxy answered no 503");
    json_decref(reqs);
    /* The slow answer was given up after timeout_ms and retried. */
    char *log = tfs_test_daemon_log(e.d);
    cr_assert(strstr(log, "Timeout was reached"), "no timeout in the daemon's log:\n%s", log);
    free(log);

    /* The 422 is the one dead letter, with the server's message; the rest is there. */
    tfs_test_response r =
        tfs_test_http(e.d, "GET", "/dead-letters?pair=pacs-to-crm&status=open",
                      TFS_TEST_KEY_READ, NULL);
    json_t *list = json_object_get(r.json, "dead_letters");
    cr_assert_geq(json_array_size(list), 1, "no dead letter: %s", r.body);
    char *dl = json_dumps(list, JSON_COMPACT);
    char want[64];
    snprintf(want, sizeof want, "contact %lld is locked by a case", bad);
    cr_assert(strstr(dl, want), "the dead letters do not give the CRM's message: %s", dl);
    cr_assert(strstr(dl, "422"), "the dead letters do not give the status: %s", dl);
    free(dl);
    tfs_test_response_free(&r);
    crm_faults(&e, "[]");
    char *text = load_crm(&e);
    free(text);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM crm_contact WHERE id = %lld", bad);
    cr_assert_eq(scalar_ll(e.pacs, sql), 0);
    cr_assert_gt(scalar_ll(e.pacs, "SELECT count(*) FROM crm_contact"), 200);
    env_down(&e);
}

/* ======================================================================================
 * 2b. Retry-After as an HTTP-date is waited until that date; one past retry_after_max_s
 *     is left to the host's backoff and the run still ends; more contacts than a page
 *     share one updated_at (a bulk edit) and every one of them is read.
 * ====================================================================================== */

Test(crm, retry_after_date_and_bound_and_a_bulk_edit_larger_than_a_page)
{
    env e;
    env_init(&e, TOKEN, "{\"page_size\": 5}");
    /* The first POST: 429 until a date 5 s from now; its retry: 429 for an hour. */
    time_t until = time(NULL) + 5;
    char date[64], rules[512];
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&until, &tm));
    snprintf(rules, sizeof rules,
             "[{\"method\": \"POST\", \"path\": \"/contacts\", \"status\": 429,"
             " \"retry_after\": \"%s\", \"count\": 1},"
             " {\"method\": \"POST\", \"path\": \"/contacts\", \"status\": 429,"
             " \"retry_after\": 3600, \"count\": 1}]",
             date);
    crm_faults(&e, rules);
    json_t *run = run_pair(&e, "pacs-to-crm", "full", "succeeded");
    json_decref(run);
    json_t *reqs = requests(&e);
    size_t i;
    json_t *q;
    long long t429 = -1, tnext = -1;
    const char *url429 = NULL;
    json_array_foreach(reqs, i, q) {
        long st = (long)json_integer_value(json_object_get(q, "status"));
        const char *url = json_string_value(json_object_get(q, "url"));
        const char *m = json_string_value(json_object_get(q, "method"));
        if (st == 429 && t429 < 0) {
            t429 = json_integer_value(json_object_get(q, "t"));
            url429 = url;
        } else if (t429 >= 0 && tnext < 0 && strcmp(m, "POST") == 0 &&
                   strcmp(url, url429) == 0) {
            tnext = json_integer_value(json_object_get(q, "t"));
        }
    }
    json_decref(reqs);
    cr_assert_geq(t429, 0, "the proxy answered no 429");
    cr_assert_lt(t429, (long long)until * 1000 - 1500,
                 "the first POST came too late for the date to mean a wait: the test shows "
                 "nothing (429 at %lld, date %lld)", t429, (long long)until * 1000);
    cr_assert_geq(tnext, 0, "the POST answered 429 was never retried");
    /* An HTTP-date has whole seconds: the retry comes at that second or after. */
    cr_assert_geq(tnext, (long long)until * 1000 - 1000,
                  "retried at %lld, before the Retry-After date %s (%lld)", tnext, date,
                  (long long)until * 1000);
    char *log = tfs_test_daemon_log(e.d);
    cr_assert(strstr(log, "Retry-After 3600 s"),
              "the hour-long Retry-After was not left to the host's backoff:\n%s", log);
    free(log);

    /* A clerk's bulk edit: 12 contacts, one updated_at, page_size 5. */
    run = run_pair(&e, "crm-to-pacs", "full", "succeeded");
    json_decref(run);
    char *text = load_crm(&e);
    free(text);
    char *ids = tfs_test_pg_scalar(
        e.pacs, "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM crm_contact"
                " WHERE NOT do_not_publish ORDER BY id LIMIT 12) x");
    int n = 0;
    for (char *id = strtok(ids, ","); id; id = strtok(NULL, ","), n++) {
        char path[64];
        snprintf(path, sizeof path, "/contacts/%s", id);
        json_decref(crm_call(&e, "PATCH", path,
                             "{\"mail_line1\": \"1 BULK WAY\","
                             " \"updated_at\": \"2026-12-01T10:00:00.000Z\"}"));
    }
    free(ids);
    cr_assert_eq(n, 12);
    run = run_pair(&e, "crm-to-pacs", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "contact", "read"), 12,
                 "a bulk edit of 12 contacts with one updated_at, read 5 a page: %lld read",
                 count_of(run, "contact", "read"));
    cr_assert_eq(written(run, "contact"), 12);
    json_decref(run);
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM address WHERE addr_type_cd = 'M' AND"
                                   " addr_line1 = '1 BULK WAY'"),
                 12);
    run = run_pair(&e, "crm-to-pacs", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "contact", "read"), 0, "the bulk edit was read again");
    json_decref(run);
    env_down(&e);
}

/* ======================================================================================
 * 3. A wrong token fails the run with a clear permanent error; the daemon stays up.
 * ====================================================================================== */

Test(crm, wrong_token_is_a_clear_permanent_error)
{
    env e;
    env_init(&e, "not-the-token", NULL);
    json_t *run = run_pair(&e, "pacs-to-crm", "full", "failed");
    const char *err = json_string_value(json_object_get(run, "error"));
    cr_assert(err && strstr(err, "401") && strstr(err, "bearer token") &&
                  strstr(err, "invalid bearer token"),
              "the run's error does not say the token was refused: %s", err ? err : "(null)");
    json_decref(run);
    /* Permanent: no retry storm, a handful of requests at most. */
    json_t *reqs = requests(&e);
    cr_assert_leq(json_array_size(reqs), 5, "%zu requests with a refused token",
                  json_array_size(reqs));
    json_decref(reqs);
    tfs_test_response h = tfs_test_http(e.d, "GET", "/health", NULL, NULL);
    cr_assert_eq(h.status, 200);
    tfs_test_response_free(&h);
    env_down(&e);
}

/* ======================================================================================
 * 4. Through the plugin host: bad settings refused offline, naming the key; the token from
 *    a file beside the config; an open does not connect; the write limit is the setting.
 * ====================================================================================== */

static long long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

Test(crm, checks_offline_token_file_lazy_open_and_limits)
{
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_PLUGIN_DIR, 2026, &h, &err), 0, "%s", err.message);
    const tfs_plugin *p = tfs_plugin_host_get(h, "crm");
    cr_assert_not_null(p, "no crm plugin in " TFS_PLUGIN_DIR);
    cr_assert(tfs_plugin_is_lazy(p));

    json_t *bad = json_pack("{s:s, s:s}", "base_url", "ftp://crm", "token", "x");
    cr_assert_neq(tfs_plugin_check(p, "crm", bad, "/", &err), 0, "an ftp URL passed");
    cr_assert(strstr(err.message, "systems.crm.settings.base_url"), "%s", err.message);
    json_decref(bad);
    bad = json_pack("{s:s, s:s, s:s}", "base_url", "http://crm", "token", "x", "token_file",
                    "t");
    cr_assert_neq(tfs_plugin_check(p, "crm", bad, "/", &err), 0);
    cr_assert(strstr(err.message, "exclude each other"), "%s", err.message);
    json_decref(bad);
    bad = json_pack("{s:s}", "base_url", "http://crm");
    cr_assert_neq(tfs_plugin_check(p, "crm", bad, "/", &err), 0, "no token passed");
    cr_assert(strstr(err.message, "token or token_file"), "%s", err.message);
    json_decref(bad);

    crm_server c = {0};
    crm_start(&c);
    bad = json_pack("{s:s, s:s}", "base_url", "http://crm", "token_file", "no-such-token");
    cr_assert_neq(tfs_plugin_check(p, "crm", bad, c.dir, &err), 0);
    cr_assert(strstr(err.message, "systems.crm.settings.token_file") &&
                  strstr(err.message, "no-such-token"),
              "%s", err.message);
    json_decref(bad);
    char tokfile[400];
    snprintf(tokfile, sizeof tokfile, "%s/crm.token", c.dir);
    FILE *f = fopen(tokfile, "w");
    cr_assert_not_null(f);
    fputs(TOKEN "\n", f);
    fclose(f);

    /* An address that never answers (TEST-NET-1): opening must not try. */
    json_t *s = json_pack("{s:s, s:s, s:i, s:i}", "base_url", "http://192.0.2.1:9",
                          "token_file", "crm.token", "connect_timeout_ms", 300,
                          "max_batch_ops", 7);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tfs_instance *inst = NULL;
    cr_assert_eq(tfs_instance_open(p, "crm", s, c.dir, &inst, &err), 0, "%s", err.message);
    cr_assert_lt(ms_since(&t0), 200, "opening took %lld ms: it connected", ms_since(&t0));
    size_t ops = 0, bytes = 0;
    tfs_instance_write_limits(inst, &ops, &bytes);
    cr_assert_eq(ops, 7, "write limit %zu, max_batch_ops 7", ops);
    cr_assert_eq(tfs_instance_health(inst, &err), TFS_ETRANSIENT, "an unreachable CRM");
    tfs_instance_close(inst);
    json_decref(s);

    /* The token read from the file is the one the CRM takes. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", c.port);
    s = json_pack("{s:s, s:s}", "base_url", url, "token_file", "crm.token");
    cr_assert_eq(tfs_instance_open(p, "crm", s, c.dir, &inst, &err), 0, "%s", err.message);
    cr_assert_eq(tfs_instance_health(inst, &err), 0, "%s", err.message);
    tfs_instance_close(inst);
    json_decref(s);
    unlink(tokfile);
    crm_stop(&c);
    tfs_plugin_host_free(h);
}
