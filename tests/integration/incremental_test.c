/* tests/integration/incremental_test.c — incremental sync end to end (issue 3): change
 * capture in PACS, only the changed records written into CAMA, deletions as the pair's
 * delete action, the late commit, resume after SIGKILL, the schedule, and the audit trail.
 *
 * A real PostgreSQL, the real daemon with the real pacs and cama plugins, called over HTTP.
 * Each test clones its own databases from the templates scripts/test.sh prepared. Nothing
 * waits on a fixed sleep for ordering: runs are awaited through GET /sync/status, a run is
 * held at a known record with an advisory lock the test owns, and open transactions are
 * held on connections the test owns.
 *
 * Expected results come from PACS itself through the independent SQL mappings of
 * tests/integration/sql (the "SQL twins"): the set of records an incremental run must
 * write is the set of target rows whose twin row differs between before and after the
 * change. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define PARDAT_COLS                                                                             \
    "parid, taxyr, seq, cur, class, luc, nbhd, acres, adrno, adradd, adrdir, adrstr, adrsuf,"   \
    " unitno, cityname, statecode, postalcode, zoning, deactivat"
#define ASMT_COLS                                                                               \
    "parid, taxyr, seq, cur, valclass, valapr1, valapr2, valapr3, valasm1, valasm2, valasm3,"  \
    " deactivat"
#define OWNDAT_COLS                                                                             \
    "parid, taxyr, seq, cur, own1, own2, addr1, addr2, cityname, statecode, zip1, pctown,"     \
    " deactivat"

/* The exposed, active properties of the roll year: a property_val row for 2026 whose
 * highest supplement is not retired, a property row, and a situs row. Tests pick the
 * properties they change from here, so every change is visible in CAMA. */
#define ACTIVE_PROPS                                                                            \
    "(SELECT pv.prop_id, p.simple_geo_id AS parid FROM (SELECT DISTINCT ON (prop_id) prop_id,"  \
    " prop_inactive_dt FROM property_val WHERE prop_val_yr = 2026 ORDER BY prop_id, sup_num"    \
    " DESC) pv JOIN property p ON p.prop_id = pv.prop_id WHERE pv.prop_inactive_dt IS NULL"     \
    " AND p.simple_geo_id IS NOT NULL AND EXISTS (SELECT 1 FROM situs s WHERE s.prop_id ="      \
    " pv.prop_id))"

/* One timeout for the suite: with a .timeout on each of these tests, Criterion 2.4's runner
 * leaked two small blocks at exit, which fails the ASan suite. */
TestSuite(incremental, .timeout = 180);

/* ---- small utilities ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polling interval of the loops that wait for a condition (never for ordering). */
static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

static char *scalar_text(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    return v ? v : strdup("(null)");
}

/* A JSON value by a dotted path ("pairs.pacs-to-cama.last_run" splits at dots, so a name
 * with a dot cannot be reached; none here has one). Borrowed. */
static json_t *jget(json_t *root, const char *dotted)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", dotted);
    json_t *cur = root;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur;
}

static const char *jstr(json_t *root, const char *dotted)
{
    return json_string_value(jget(root, dotted));
}

/* counts.<entity>.<what> of a run; fails when it is missing, which is itself a finding. */
static json_int_t count_of(json_t *run, const char *entity, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), entity), what);
    if (!json_is_integer(c)) {
        char *s = json_dumps(json_object_get(run, "counts"), JSON_COMPACT);
        cr_assert_fail("the run's counts have no integer %s.%s: %s", entity, what, s);
    }
    return json_integer_value(c);
}

/* ---- the environment: databases and a daemon ---- */

typedef struct env {
    char *pacs, *cama, *state;
    json_t *cfg; /* owned, so a crashed daemon can be started again with the same config */
    tfs_test_daemon *d;
} env;

static json_t *pair_cfg(env *e)
{
    return json_array_get(json_object_get(e->cfg, "pairs"), 0);
}

/* Databases and the config of tfs_test_config_new; the test adjusts e->cfg, then starts. */
static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone("tfs_tmpl_pacs10k", "pacs");
    e->cama = tfs_test_db_clone("tfs_tmpl_cama", "cama");
    e->state = tfs_test_db_clone("tfs_tmpl_state", "state");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
}

static void add_entity(env *e, const char *source, const char *target, const char *script)
{
    json_array_append_new(json_object_get(pair_cfg(e), "entities"),
                          json_pack("{s:s, s:[s], s:s}", "source", source, "targets", target,
                                    "script", script));
}

static void env_start(env *e)
{
    e->d = tfs_test_daemon_start(e->cfg);
}

static void env_down(env *e)
{
    if (e->d) {
        /* A clean exit also means no leak or sanitizer report in the sanitizer build. */
        char *log = tfs_test_daemon_log(e->d);
        int status = tfs_test_daemon_stop_status(e->d);
        cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
        free(log);
    }
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

/* POST /sync/<mode> with the operate key; the run id (fails unless 202). */
static json_int_t start_run(env *e, const char *mode)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(r.status, 202, "POST %s: want 202, got %ld %s%s", path, r.status, r.error,
                 r.body ? r.body : "");
    json_t *id = json_object_get(r.json, "run_id");
    cr_assert(json_is_integer(id) && json_integer_value(id) > 0, "POST %s: no run_id in %s",
              path, r.body);
    json_int_t run_id = json_integer_value(id);
    tfs_test_response_free(&r);
    return run_id;
}

/* Waits for a run and asserts it succeeded; the final status (owned). */
static json_t *wait_ok(env *e, json_int_t run_id)
{
    json_t *run = tfs_test_wait_run(e->d, run_id, 120);
    const char *state = json_string_value(json_object_get(run, "state"));
    cr_assert_str_eq(state, "succeeded", "run %lld (%s) ended %s: %s", (long long)run_id,
                     json_string_value(json_object_get(run, "mode")), state,
                     json_string_value(json_object_get(run, "error")));
    return run;
}

/* One run of mode, started and awaited; the final status (owned). */
static json_t *sync_run(env *e, const char *mode)
{
    return wait_ok(e, start_run(e, mode));
}

/* ---- the SQL twins ---- */

typedef struct twin {
    const char *table, *cols, *sql;
} twin;

static const twin TWIN_PARDAT = {"pardat", PARDAT_COLS, "pacs_to_cama_pardat.sql"};
static const twin TWIN_ASMT = {"asmt", ASMT_COLS, "pacs_to_cama_asmt.sql"};
static const twin TWIN_OWNDAT = {"owndat", OWNDAT_COLS, "pacs_owner_to_cama_owndat.sql"};

/* Materialises the twin of t, as PACS is now, into the CAMA database as table dst. */
static void twin_snapshot(env *e, const twin *t, const char *dst)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s AS SELECT %s FROM %s WHERE false", dst,
             dst, t->cols, t->table);
    tfs_test_pg_exec(e->cama, sql);
    char *q = tfs_test_mapping_sql(t->sql);
    tfs_test_copy_between(e->pacs, q, e->cama, dst);
    free(q);
}

/* The target table t equals its twin: same count, nothing on either side that is not on
 * the other (EXCEPT ALL both ways). */
static void assert_matches_twin(env *e, const twin *t)
{
    char expected[64], sql[4096];
    snprintf(expected, sizeof expected, "expected_%s", t->table);
    twin_snapshot(e, t, expected);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t->table);
    json_int_t got = scalar_int(e->cama, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", expected);
    json_int_t want = scalar_int(e->cama, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM ((SELECT %s FROM %s EXCEPT ALL SELECT * FROM %s)"
             " UNION ALL (SELECT * FROM %s EXCEPT ALL SELECT %s FROM %s)) d",
             t->cols, t->table, expected, expected, t->cols, t->table);
    json_int_t diff = scalar_int(e->cama, sql);
    if (diff || got != want) {
        snprintf(sql, sizeof sql,
                 "SELECT string_agg(x, E'\\n') FROM (SELECT * FROM ("
                 "(SELECT 'cama:  ' || a::text AS x FROM (SELECT %s FROM %s EXCEPT ALL"
                 " SELECT * FROM %s) a LIMIT 3) UNION ALL"
                 "(SELECT 'twin:  ' || b::text FROM (SELECT * FROM %s EXCEPT ALL SELECT %s"
                 " FROM %s) b LIMIT 3)) y) z",
                 t->cols, t->table, expected, expected, t->cols, t->table);
        char *ex = scalar_text(e->cama, sql);
        cr_assert_fail("%s: %lld rows, the SQL twin %s gives %lld; %lld rows differ, e.g.\n%s",
                       t->table, (long long)got, t->sql, (long long)want, (long long)diff, ex);
    }
}

/* The number of distinct parids whose row differs between two twin snapshots (changed,
 * added or gone), over one or more snapshot pairs ("before_pardat", "after_pardat", ...). */
static json_int_t twin_changed_keys(env *e, const char *const *before, const char *const *after,
                                    int n)
{
    char sql[4096] = "SELECT count(DISTINCT (parid, taxyr)) FROM (";
    for (int i = 0; i < n; i++) {
        char part[512];
        snprintf(part, sizeof part,
                 "%s(SELECT parid, taxyr FROM ((TABLE %s EXCEPT ALL TABLE %s) UNION ALL"
                 " (TABLE %s EXCEPT ALL TABLE %s)) d%d)",
                 i ? " UNION ALL " : "", before[i], after[i], after[i], before[i], i);
        strncat(sql, part, sizeof sql - strlen(sql) - 1);
    }
    strncat(sql, ") k", sizeof sql - strlen(sql) - 1);
    return scalar_int(e->cama, sql);
}

/* md5 over the xmin of every row of table, in key order: the same after a run means no
 * row was rewritten. */
static char *xmins_of(env *e, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT md5(string_agg(xmin::text, ',' ORDER BY parid, taxyr)) FROM %s", table);
    return scalar_text(e->cama, sql);
}

/* ---- GET /audit ---- */

/* Every entry GET /audit?<query> gives, following next_after_id with pages of limit.
 * Returns a new array (owned). Asserts ascending ids across pages. */
static json_t *audit_all(env *e, const char *query, int limit)
{
    json_t *all = json_array();
    char after[32] = "";
    json_int_t last_id = 0;
    for (int page = 0;; page++) {
        cr_assert_lt(page, 200000 / limit + 10, "GET /audit?%s: paging does not end", query);
        char path[1024];
        snprintf(path, sizeof path, "/audit?%s%slimit=%d%s%s", query, *query ? "&" : "", limit,
                 *after ? "&after_id=" : "", after);
        tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
        cr_assert_eq(r.status, 200, "GET %s: %ld %s%s", path, r.status, r.error,
                     r.body ? r.body : "");
        json_t *entries = json_object_get(r.json, "entries");
        cr_assert(json_is_array(entries), "GET %s: no entries array: %.500s", path, r.body);
        cr_assert_leq(json_array_size(entries), (size_t)limit, "GET %s: more than limit=%d",
                      path, limit);
        size_t i;
        json_t *en;
        json_array_foreach(entries, i, en) {
            json_int_t id = json_integer_value(json_object_get(en, "id"));
            cr_assert_gt(id, last_id, "GET %s: ids must ascend (newest last): %lld after %lld",
                         path, (long long)id, (long long)last_id);
            last_id = id;
            json_array_append(all, en);
        }
        json_t *next = json_object_get(r.json, "next_after_id");
        cr_assert(next && (json_is_null(next) || json_is_integer(next)),
                  "GET %s: next_after_id must be present, an id or null: %.300s", path, r.body);
        int more = json_is_integer(next);
        if (more)
            snprintf(after, sizeof after, "%lld", (long long)json_integer_value(next));
        size_t got = json_array_size(entries);
        tfs_test_response_free(&r);
        if (!more)
            break;
        cr_assert_gt(got, 0, "GET %s: an empty page still names a next_after_id", path);
    }
    return all;
}

/* Asserts no entry's changes name a bookkeeping field (wen, who). */
static void assert_no_bookkeeping(json_t *entries)
{
    size_t i;
    json_t *en;
    json_array_foreach(entries, i, en) {
        const char *ent;
        json_t *fields;
        json_object_foreach(json_object_get(en, "changes"), ent, fields) {
            cr_assert(!json_object_get(fields, "wen") && !json_object_get(fields, "who"),
                      "audit entry %lld names a bookkeeping field (wen/who) of %s",
                      (long long)json_integer_value(json_object_get(en, "id")), ent);
        }
    }
}

/* ---- picking properties ---- */

/* The prop_id and parid of the n-th (0-based) exposed active property at or after from. */
static json_int_t pick_prop(env *e, int from, int n, char parid[64])
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT prop_id FROM " ACTIVE_PROPS " a WHERE prop_id >= %d ORDER BY prop_id"
             " OFFSET %d LIMIT 1",
             from, n);
    json_int_t id = scalar_int(e->pacs, sql);
    snprintf(sql, sizeof sql, "SELECT simple_geo_id FROM property WHERE prop_id = %lld",
             (long long)id);
    char *p = scalar_text(e->pacs, sql);
    snprintf(parid, 64, "%s", p);
    free(p);
    return id;
}

static char *cama_value(env *e, const char *table, const char *col, const char *parid)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s::text FROM %s WHERE parid = '%s' AND taxyr = 2026",
             col, table, parid);
    return scalar_text(e->cama, sql);
}

static json_int_t cama_rows(env *e, const char *table, const char *parid)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE parid = '%s' AND taxyr = 2026",
             table, parid);
    return scalar_int(e->cama, sql);
}

/* ======================================================================================
 * 1. One percent of the parcels change across property_val, situs and owners' mailing
 *    addresses: an incremental run writes exactly the records whose mapping changed, reads
 *    no more than the changed records, and leaves CAMA equal to the SQL twins.
 * ====================================================================================== */

Test(incremental, one_percent_changed_writes_exactly_those)
{
    env e;
    env_init(&e);
    add_entity(&e, "owner", "owndat", "pacs_owner_to_cama.lua");
    env_start(&e);

    json_t *run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "property", "failed"), 0);
    cr_assert_eq(count_of(run, "owner", "failed"), 0);
    json_decref(run);
    assert_matches_twin(&e, &TWIN_PARDAT);
    assert_matches_twin(&e, &TWIN_ASMT);
    assert_matches_twin(&e, &TWIN_OWNDAT);

    twin_snapshot(&e, &TWIN_PARDAT, "before_pardat");
    twin_snapshot(&e, &TWIN_ASMT, "before_asmt");
    twin_snapshot(&e, &TWIN_OWNDAT, "before_owndat");

    /* 100 properties spread over the county (ordered by a hash of prop_id): 40 get new
     * values (every 2026 supplement row), 40 a new street name (every situs row), and the
     * accounts owning the last 20 a new mailing address (which reaches every property
     * those accounts own). One connection, so the temporary table lives through it all;
     * each UPDATE is its own transaction. */
    tfs_test_pg_exec(
        e.pacs,
        "CREATE TEMP TABLE pick AS SELECT prop_id, row_number() OVER (ORDER BY md5(prop_id::text))"
        "  AS n FROM " ACTIVE_PROPS " a ORDER BY md5(prop_id::text) LIMIT 100;"
        "CREATE TABLE test_touched (prop_id integer, side text);"
        "UPDATE property_val v SET land_non_hstd_val = land_non_hstd_val + 1000,"
        "  imprv_non_hstd_val = imprv_non_hstd_val + 500"
        "  FROM pick WHERE pick.n <= 40 AND v.prop_id = pick.prop_id AND v.prop_val_yr = 2026;"
        "UPDATE situs s SET situs_street = 'INCREMENTAL ' || s.prop_id"
        "  FROM pick WHERE pick.n > 40 AND pick.n <= 80 AND s.prop_id = pick.prop_id;"
        /* The accounts: the owners of the last 20, and the investor account owning the
         * most properties, so that one address change reaches many owndat rows. */
        "CREATE TEMP TABLE accts AS SELECT DISTINCT o.owner_id FROM owner o JOIN pick ON"
        "  pick.prop_id = o.prop_id WHERE pick.n > 80 AND o.owner_tax_yr = 2026"
        "  UNION SELECT * FROM (SELECT owner_id FROM owner WHERE owner_tax_yr = 2026"
        "  GROUP BY owner_id ORDER BY count(DISTINCT prop_id) DESC, owner_id LIMIT 1) i;"
        "CREATE TABLE test_investor AS SELECT DISTINCT p.simple_geo_id AS parid FROM owner o"
        "  JOIN property p USING (prop_id) WHERE o.owner_tax_yr = 2026 AND o.owner_id ="
        "  (SELECT owner_id FROM owner WHERE owner_tax_yr = 2026 GROUP BY owner_id"
        "  ORDER BY count(DISTINCT prop_id) DESC, owner_id LIMIT 1);"
        "UPDATE address a SET addr_line1 = 'PO BOX ' || a.acct_id, addr_city = 'GEORGETOWN'"
        "  WHERE a.acct_id IN (SELECT owner_id FROM accts);"
        /* What was touched, for the bounds on what the run may read: the property entity's
         * tables (property_val, situs), and every property of the changed accounts. */
        "INSERT INTO test_touched SELECT prop_id, 'property' FROM pick WHERE n <= 80;"
        "INSERT INTO test_touched SELECT prop_id, 'owner' FROM pick;"
        "INSERT INTO test_touched SELECT DISTINCT o.prop_id, 'owner' FROM owner o"
        "  WHERE o.owner_id IN (SELECT owner_id FROM accts);");

    twin_snapshot(&e, &TWIN_PARDAT, "after_pardat");
    twin_snapshot(&e, &TWIN_ASMT, "after_asmt");
    twin_snapshot(&e, &TWIN_OWNDAT, "after_owndat");
    const char *const pb[] = {"before_pardat", "before_asmt"};
    const char *const pa[] = {"after_pardat", "after_asmt"};
    const char *const ob[] = {"before_owndat"}, *const oa[] = {"after_owndat"};
    json_int_t want_property = twin_changed_keys(&e, pb, pa, 2);
    json_int_t want_owner = twin_changed_keys(&e, ob, oa, 1);
    /* The test means something only if both sides changed as planned. */
    cr_assert_eq(want_property, 80, "the SQL twin should see 80 changed parcels, sees %lld",
                 (long long)want_property);
    cr_assert_geq(want_owner, 15, "the SQL twin should see about 20 or more changed owndat rows, sees %lld",
                  (long long)want_owner);
    /* One account's address change reaches the owndat row of every property it owns. */
    tfs_test_pg_exec(e.cama, "CREATE TABLE test_investor (parid text)");
    tfs_test_copy_between(e.pacs, "SELECT parid FROM test_investor", e.cama, "test_investor");
    json_int_t investor_props = scalar_int(e.cama, "SELECT count(*) FROM test_investor");
    json_int_t investor_changed = scalar_int(
        e.cama, "SELECT count(*) FROM (TABLE after_owndat EXCEPT ALL TABLE before_owndat) d"
                " WHERE parid IN (SELECT parid FROM test_investor)");
    cr_assert_geq(investor_props, 5, "the investor account owns %lld properties",
                  (long long)investor_props);
    cr_assert_geq(investor_changed, investor_props - 1,
                  "the investor's address change shows in %lld of its %lld owndat twin rows",
                  (long long)investor_changed, (long long)investor_props);
    json_int_t touched_property = scalar_int(
        e.pacs, "SELECT count(DISTINCT prop_id) FROM test_touched WHERE side = 'property'");
    json_int_t touched_owner = scalar_int(
        e.pacs, "SELECT count(DISTINCT prop_id) FROM test_touched WHERE side = 'owner'");

    json_int_t inc_id = start_run(&e, "incremental");
    run = wait_ok(&e, inc_id);
    cr_assert_str_eq(jstr(run, "mode"), "incremental");
    cr_assert_eq(count_of(run, "property", "written"), want_property,
                 "property: written %lld, the SQL twin changed %lld parcels",
                 (long long)count_of(run, "property", "written"), (long long)want_property);
    cr_assert_eq(count_of(run, "owner", "written"), want_owner,
                 "owner: written %lld, the SQL twin changed %lld owndat rows",
                 (long long)count_of(run, "owner", "written"), (long long)want_owner);
    cr_assert_eq(count_of(run, "property", "failed"), 0);
    cr_assert_eq(count_of(run, "owner", "failed"), 0);
    cr_assert_eq(count_of(run, "property", "deleted"), 0);
    cr_assert_eq(count_of(run, "owner", "deleted"), 0);
    cr_assert_leq(count_of(run, "property", "read"), touched_property,
                  "property: read %lld records, only %lld properties changed in its tables",
                  (long long)count_of(run, "property", "read"), (long long)touched_property);
    cr_assert_leq(count_of(run, "owner", "read"), touched_owner,
                  "owner: read %lld records, only %lld properties were touched at all",
                  (long long)count_of(run, "owner", "read"), (long long)touched_owner);
    cr_assert(json_is_object(jget(run, "counts.property.timings_ms")),
              "counts.property.timings_ms is missing");
    json_decref(run);

    /* One audit entry per applied source record, per entity, none naming wen or who. */
    char q[64];
    snprintf(q, sizeof q, "run_id=%lld", (long long)inc_id);
    json_t *entries = audit_all(&e, q, 1000);
    json_int_t n_property = 0, n_owner = 0;
    size_t i;
    json_t *en;
    json_array_foreach(entries, i, en) {
        const char *ent = jstr(en, "entity"), *op = jstr(en, "op");
        cr_assert(op && strcmp(op, "update") == 0, "entry %lld: op %s, want update",
                  (long long)json_integer_value(json_object_get(en, "id")), op);
        if (ent && strcmp(ent, "property") == 0)
            n_property++;
        else if (ent && strcmp(ent, "owner") == 0)
            n_owner++;
        else
            cr_assert_fail("an audit entry of entity %s", ent);
    }
    cr_assert_eq(n_property, want_property, "property: %lld audit entries for %lld changes",
                 (long long)n_property, (long long)want_property);
    cr_assert_eq(n_owner, want_owner, "owner: %lld audit entries for %lld changes",
                 (long long)n_owner, (long long)want_owner);
    assert_no_bookkeeping(entries);
    json_decref(entries);

    assert_matches_twin(&e, &TWIN_PARDAT);
    assert_matches_twin(&e, &TWIN_ASMT);
    assert_matches_twin(&e, &TWIN_OWNDAT);

    /* Nothing changed since: the next incremental run writes nothing. */
    run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "property", "written"), 0);
    cr_assert_eq(count_of(run, "owner", "written"), 0);
    json_decref(run);
    env_down(&e);
}

/* ======================================================================================
 * 2. Touched but unchanged rows write nothing.
 * ====================================================================================== */

Test(incremental, touched_but_unchanged_rows_write_nothing)
{
    env e;
    env_init(&e);
    env_start(&e);
    json_decref(sync_run(&e, "full"));

    char *pardat = xmins_of(&e, "pardat"), *asmt = xmins_of(&e, "asmt");
    /* Touched rows (the same values written back: the change log may skip them or report
     * them), and real source changes of a field no mapping uses (market): those are read
     * and their mapped output equals what CAMA holds. Either way nothing is written. */
    tfs_test_pg_exec(e.pacs,
                     "UPDATE property_val SET market = market WHERE prop_id <= 50;"
                     "UPDATE situs SET situs_street = situs_street WHERE prop_id BETWEEN 51 AND 60;"
                     "UPDATE property_val SET market = market + 1 WHERE prop_id BETWEEN 61 AND 80"
                     " AND prop_val_yr = 2026;");
    json_int_t unmapped = scalar_int(
        e.pacs, "SELECT count(*) FROM (SELECT DISTINCT ON (prop_id) prop_id, prop_inactive_dt"
                " FROM property_val WHERE prop_val_yr = 2026 AND prop_id BETWEEN 61 AND 80"
                " ORDER BY prop_id, sup_num DESC) v JOIN property USING (prop_id)"
                " WHERE prop_inactive_dt IS NULL");
    cr_assert_gt(unmapped, 15);

    json_int_t run_id = start_run(&e, "incremental");
    json_t *run = wait_ok(&e, run_id);
    cr_assert_eq(count_of(run, "property", "written"), 0,
                 "touched rows whose content did not change were written (%lld)",
                 (long long)count_of(run, "property", "written"));
    cr_assert_eq(count_of(run, "property", "deleted"), 0,
                 "touching rows deleted %lld records", (long long)count_of(run, "property", "deleted"));
    cr_assert_eq(count_of(run, "property", "failed"), 0);
    cr_assert_leq(count_of(run, "property", "read"), 80,
                  "read %lld records, only 80 properties were touched",
                  (long long)count_of(run, "property", "read"));
    cr_assert_geq(count_of(run, "property", "read"), unmapped,
                  "read %lld records: the change log missed the %lld properties whose market "
                  "value changed",
                  (long long)count_of(run, "property", "read"), (long long)unmapped);
    cr_assert_eq(count_of(run, "property", "unchanged"), count_of(run, "property", "read"),
                 "every record read is unchanged: read %lld, unchanged %lld",
                 (long long)count_of(run, "property", "read"),
                 (long long)count_of(run, "property", "unchanged"));
    json_decref(run);

    char *pardat2 = xmins_of(&e, "pardat"), *asmt2 = xmins_of(&e, "asmt");
    cr_assert_str_eq(pardat2, pardat, "pardat rows were rewritten (xmin changed)");
    cr_assert_str_eq(asmt2, asmt, "asmt rows were rewritten (xmin changed)");
    free(pardat), free(asmt), free(pardat2), free(asmt2);

    /* Nor does it leave audit entries: nothing was applied. */
    char q[64];
    snprintf(q, sizeof q, "run_id=%lld", (long long)run_id);
    json_t *entries = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(entries), 0, "run %lld applied nothing but has %zu audit entries",
                 (long long)run_id, json_array_size(entries));
    json_decref(entries);
    env_down(&e);
}

/* ======================================================================================
 * 3. Deletions: a retired property, a property whose 2026 values were deleted and a
 *    property deleted outright reach CAMA as the pair's delete action, through an
 *    incremental run; a property deleted before a full run is swept by that run.
 * ====================================================================================== */

static void deletions(const char *action)
{
    int deactivate = strcmp(action, "deactivate") == 0;
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "delete_action", json_string(action));
    env_start(&e);
    json_decref(sync_run(&e, "full"));

    char retired[64], novals[64], gone[64], swept[64], keep[64];
    json_int_t a = pick_prop(&e, 100, 0, retired);
    json_int_t b = pick_prop(&e, 100, 1, novals);
    json_int_t c = pick_prop(&e, 100, 2, gone);
    json_int_t d = pick_prop(&e, 100, 3, swept);
    pick_prop(&e, 100, 4, keep);
    const char *parids[] = {retired, novals, gone};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cama_rows(&e, "pardat", parids[i]), 1, "the full sync wrote %s", parids[i]);
        cr_assert_eq(cama_rows(&e, "asmt", parids[i]), 1);
    }
    json_int_t pardat_rows = scalar_int(e.cama, "SELECT count(*) FROM pardat");
    char keep_xmin_sql[256];
    snprintf(keep_xmin_sql, sizeof keep_xmin_sql,
             "SELECT xmin::text FROM pardat WHERE parid = '%s'", keep);
    char *keep_xmin = scalar_text(e.cama, keep_xmin_sql);

    char sql[1024];
    snprintf(sql, sizeof sql,
             "UPDATE property_val SET prop_inactive_dt = '2026-06-01' WHERE prop_id = %lld"
             " AND prop_val_yr = 2026;"
             "DELETE FROM property_val WHERE prop_id = %lld AND prop_val_yr = 2026;"
             "DELETE FROM property WHERE prop_id = %lld;",
             (long long)a, (long long)b, (long long)c);
    tfs_test_pg_exec(e.pacs, sql);

    json_int_t run_id = start_run(&e, "incremental");
    json_t *run = wait_ok(&e, run_id);
    cr_assert_eq(count_of(run, "property", "deleted"), 3,
                 "%s: a retirement, a deleted value row and a deleted property are 3 deletions,"
                 " counted %lld",
                 action, (long long)count_of(run, "property", "deleted"));
    cr_assert_eq(count_of(run, "property", "written"), 0,
                 "%s: nothing but deletions changed, yet %lld records were written", action,
                 (long long)count_of(run, "property", "written"));
    cr_assert_eq(count_of(run, "property", "failed"), 0);
    /* The run's date (UTC), from its start and its end, for a run across midnight. */
    char run_dates[2][16];
    const char *bounds[] = {"started_at", "finished_at"};
    for (int k = 0; k < 2; k++) {
        const char *t = jstr(run, bounds[k]);
        cr_assert_not_null(t, "the run has no %s", bounds[k]);
        snprintf(sql, sizeof sql, "SELECT ('%s'::timestamptz AT TIME ZONE 'UTC')::date::text", t);
        char *day = scalar_text(e.cama, sql);
        snprintf(run_dates[k], sizeof run_dates[k], "%s", day);
        free(day);
    }
    json_decref(run);

    for (int i = 0; i < 3; i++) {
        const char *tables[] = {"pardat", "asmt"};
        for (int t = 0; t < 2; t++) {
            if (deactivate) {
                cr_assert_eq(cama_rows(&e, tables[t], parids[i]), 1,
                             "deactivate: %s %s must stay", tables[t], parids[i]);
                char *v = cama_value(&e, tables[t], "deactivat", parids[i]);
                cr_assert(strcmp(v, run_dates[0]) == 0 || strcmp(v, run_dates[1]) == 0,
                          "deactivate: %s %s has deactivat %s, want the run's date %s",
                          tables[t], parids[i], v, run_dates[0]);
                free(v);
            } else {
                cr_assert_eq(cama_rows(&e, tables[t], parids[i]), 0,
                             "delete: %s %s must be gone", tables[t], parids[i]);
            }
        }
    }
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat"),
                 pardat_rows - (deactivate ? 0 : 3));
    char *keep_xmin2 = scalar_text(e.cama, keep_xmin_sql);
    cr_assert_str_eq(keep_xmin2, keep_xmin, "an untouched parcel was rewritten");
    free(keep_xmin2);

    /* The audit trail records each deletion as the action taken. */
    char q[128];
    snprintf(q, sizeof q, "run_id=%lld", (long long)run_id);
    json_t *entries = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(entries), 3, "%s: 3 audit entries for 3 deletions, got %zu",
                 action, json_array_size(entries));
    size_t i;
    json_t *en;
    json_array_foreach(entries, i, en) {
        cr_assert_str_eq(json_string_value(json_object_get(en, "op")), action);
        cr_assert_str_eq(json_string_value(json_object_get(en, "actor")), "operator");
        cr_assert_str_eq(json_string_value(json_object_get(en, "entity")), "property");
    }
    json_decref(entries);

    /* Mark and sweep: a property whose values vanish before a full run, with no
     * incremental run in between, is swept by that full run. The properties deleted
     * above stay deleted (or deactivated), and the retired one is not brought back. */
    snprintf(sql, sizeof sql, "DELETE FROM property_val WHERE prop_id = %lld AND prop_val_yr = 2026",
             (long long)d);
    tfs_test_pg_exec(e.pacs, sql);
    run = sync_run(&e, "full");
    /* The sweep's deletions are counted apart from the records read, as swept. */
    cr_assert_eq(count_of(run, "property", "swept"), 1,
                 "%s: the full run should sweep exactly the 1 vanished key, counted %lld", action,
                 (long long)count_of(run, "property", "swept"));
    cr_assert_eq(count_of(run, "property", "deleted"), 0);
    cr_assert_eq(count_of(run, "property", "written"), 0,
                 "%s: the full run after the deletions wrote %lld records", action,
                 (long long)count_of(run, "property", "written"));
    json_decref(run);
    const char *all[] = {retired, novals, gone, swept};
    for (int k = 0; k < 4; k++) {
        if (deactivate) {
            char *v = cama_value(&e, "pardat", "deactivat", all[k]);
            cr_assert_str_neq(v, "(null)", "deactivate: pardat %s lost its deactivat date after "
                              "the full run", all[k]);
            free(v);
            v = cama_value(&e, "asmt", "deactivat", all[k]);
            cr_assert_str_neq(v, "(null)", "deactivate: asmt %s has no deactivat", all[k]);
            free(v);
        } else {
            cr_assert_eq(cama_rows(&e, "pardat", all[k]), 0,
                         "delete: pardat %s is there after the full run", all[k]);
            cr_assert_eq(cama_rows(&e, "asmt", all[k]), 0,
                         "delete: asmt %s is there after the full run", all[k]);
        }
    }
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat"),
                 pardat_rows - (deactivate ? 0 : 4));
    free(keep_xmin);
    env_down(&e);
}

Test(incremental, deletions_delete_the_rows)
{
    deletions("delete");
}

Test(incremental, deletions_deactivate_the_rows)
{
    deletions("deactivate");
}

/* ======================================================================================
 * 4. The late commit: T1 changes A and stays open, T2 changes B and commits. A run
 *    delivers B and not A; once T1 commits, the next run delivers A.
 * ====================================================================================== */

static void exec_on(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

Test(incremental, late_commit_is_delivered_by_the_next_run)
{
    env e;
    env_init(&e);
    env_start(&e);
    json_decref(sync_run(&e, "full"));

    char pa[64], pb[64];
    json_int_t a = pick_prop(&e, 500, 0, pa), b = pick_prop(&e, 500, 1, pb);
    char *a_before = cama_value(&e, "asmt", "valapr1", pa);
    char *b_before = cama_value(&e, "asmt", "valapr1", pb);
    char sql[512];

    PGconn *t1 = tfs_test_pg_connect(e.pacs);
    exec_on(t1, "BEGIN");
    snprintf(sql, sizeof sql,
             "UPDATE property_val SET land_non_hstd_val = land_non_hstd_val + 12345"
             " WHERE prop_id = %lld AND prop_val_yr = 2026",
             (long long)a);
    exec_on(t1, sql);
    /* T1 has its transaction id now, older than T2's. */
    snprintf(sql, sizeof sql,
             "UPDATE property_val SET land_non_hstd_val = land_non_hstd_val + 12345"
             " WHERE prop_id = %lld AND prop_val_yr = 2026",
             (long long)b);
    tfs_test_pg_exec(e.pacs, sql); /* T2, committed */

    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "property", "written"), 1,
                 "the first run should write B only, wrote %lld",
                 (long long)count_of(run, "property", "written"));
    json_decref(run);
    char *b_after = cama_value(&e, "asmt", "valapr1", pb);
    char *a_mid = cama_value(&e, "asmt", "valapr1", pa);
    cr_assert_eq(strtoll(b_after, NULL, 10), strtoll(b_before, NULL, 10) + 12345,
                 "B (committed) was not delivered: valapr1 %s, was %s", b_after, b_before);
    cr_assert_str_eq(a_mid, a_before, "A is not committed yet but CAMA shows %s", a_mid);

    exec_on(t1, "COMMIT");
    PQfinish(t1);

    run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "property", "written"), 1,
                 "the run after T1's commit should write A only, wrote %lld",
                 (long long)count_of(run, "property", "written"));
    json_decref(run);
    char *a_after = cama_value(&e, "asmt", "valapr1", pa);
    cr_assert_eq(strtoll(a_after, NULL, 10), strtoll(a_before, NULL, 10) + 12345,
                 "A, committed after the first run's snapshot, was never delivered: valapr1 %s,"
                 " was %s",
                 a_after, a_before);
    assert_matches_twin(&e, &TWIN_ASMT);
    free(a_before), free(b_before), free(b_after), free(a_mid), free(a_after);
    env_down(&e);
}

/* ======================================================================================
 * 5. Resume after SIGKILL. An incremental run of 1,000 changed properties in batches of
 *    100 is held (an advisory lock the test owns, taken by a CAMA trigger for the 701st
 *    changed parcel) after at least three batches committed, the daemon is killed with
 *    SIGKILL, and a new daemon with the same config resumes the same run: the target ends
 *    equal to the SQL twin with exactly one audit entry per changed property.
 * ====================================================================================== */

#define RESUME_CHANGES 1000
#define RESUME_BLOCK_AT 700 /* 0-based: the 701st changed property, in the 8th batch */
#define RESUME_LOCK 4242

Test(incremental, resume_after_sigkill_ends_exact_with_one_audit_entry_each)
{
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "batch_size", json_integer(100));
    env_start(&e);
    json_decref(sync_run(&e, "full"));

    /* The first 1,000 active properties by prop_id change, in ten transactions of 100 in
     * prop_id order, so the blocked parcel comes late whether the run goes by key or by
     * commit order. */
    tfs_test_pg_exec(e.pacs, "CREATE TABLE test_changed AS SELECT prop_id, parid,"
                             " (row_number() OVER (ORDER BY prop_id) - 1)::int AS n FROM "
                             ACTIVE_PROPS " a ORDER BY prop_id LIMIT 1000");
    for (int g = 0; g < RESUME_CHANGES / 100; g++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "UPDATE property_val v SET land_non_hstd_val = land_non_hstd_val + 1"
                 " FROM test_changed c WHERE c.n >= %d AND c.n < %d AND v.prop_id = c.prop_id"
                 " AND v.prop_val_yr = 2026",
                 g * 100, (g + 1) * 100);
        tfs_test_pg_exec(e.pacs, sql);
    }
    char block_sql[128];
    snprintf(block_sql, sizeof block_sql, "SELECT parid FROM test_changed WHERE n = %d",
             RESUME_BLOCK_AT);
    char *blocked = scalar_text(e.pacs, block_sql);

    /* The hold: a CAMA trigger that takes the test's advisory lock for one parcel. */
    PGconn *holder = tfs_test_pg_connect(e.cama);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NEW.parid = '%s' THEN PERFORM pg_advisory_xact_lock(%d); END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER test_hold BEFORE INSERT OR UPDATE ON pardat FOR EACH ROW"
             " EXECUTE FUNCTION test_hold();",
             blocked, RESUME_LOCK);
    exec_on(holder, sql);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d)", RESUME_LOCK);
    exec_on(holder, sql);

    json_int_t run_id = start_run(&e, "incremental");
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    long long deadline = now_ms() + 60000;
    json_int_t written = 0;
    for (;;) {
        tfs_test_response r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
        cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
        const char *state = jstr(r.json, "state");
        cr_assert(state && strcmp(state, "succeeded") && strcmp(state, "failed"),
                  "the run ended (%s) although parcel %s is held: %s", state, blocked, r.body);
        written = json_integer_value(jget(r.json, "counts.property.written"));
        tfs_test_response_free(&r);
        if (written >= 300)
            break;
        cr_assert_lt(now_ms(), deadline,
                     "the run did not commit 3 batches of 100 before the held parcel %s: "
                     "written %lld",
                     blocked, (long long)written);
        pause_ms(20);
    }
    /* And it is really waiting on the hold (so the kill lands mid-run). */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND"
             " wait_event_type = 'Lock' AND wait_event = 'advisory'");
    deadline = now_ms() + 30000;
    while (scalar_int(e.cama, sql) < 1) {
        cr_assert_lt(now_ms(), deadline, "the run never reached the held parcel %s", blocked);
        pause_ms(20);
    }

    tfs_test_daemon_kill9(e.d);
    e.d = NULL;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d)", RESUME_LOCK);
    exec_on(holder, sql);
    /* Waits for the dead daemon's CAMA session to let go of pardat. */
    exec_on(holder, "DROP TRIGGER test_hold ON pardat; DROP FUNCTION test_hold()");
    PQfinish(holder);

    env_start(&e);
    json_t *run = tfs_test_wait_run(e.d, run_id, 120);
    cr_assert_str_eq(jstr(run, "state"), "succeeded", "the resumed run %lld ended %s: %s",
                     (long long)run_id, jstr(run, "state"), jstr(run, "error"));
    cr_assert_str_eq(jstr(run, "mode"), "incremental");
    cr_expect_eq(count_of(run, "property", "written"), RESUME_CHANGES,
                 "the resumed run counts %lld written (%lld before the kill), want %d",
                 (long long)count_of(run, "property", "written"), (long long)written,
                 RESUME_CHANGES);
    json_decref(run);

    assert_matches_twin(&e, &TWIN_PARDAT);
    assert_matches_twin(&e, &TWIN_ASMT);

    /* Exactly one audit entry per changed property, and none for anything else. */
    char q[64];
    snprintf(q, sizeof q, "run_id=%lld", (long long)run_id);
    json_t *entries = audit_all(&e, q, 250);
    tfs_test_pg_exec(e.cama, "CREATE TABLE test_audit_keys (key text, op text, run_id bigint)");
    PGconn *c = tfs_test_pg_connect(e.cama);
    size_t i;
    json_t *en;
    json_array_foreach(entries, i, en) {
        char rid[32];
        snprintf(rid, sizeof rid, "%lld", (long long)json_integer_value(json_object_get(en, "run_id")));
        const char *params[] = {json_string_value(json_object_get(en, "key")),
                                json_string_value(json_object_get(en, "op")), rid};
        PGresult *res = PQexecParams(c, "INSERT INTO test_audit_keys VALUES ($1, $2, $3)", 3,
                                     NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(res);
    }
    PQfinish(c);
    json_int_t n = (json_int_t)json_array_size(entries);
    json_decref(entries);
    json_int_t dups = scalar_int(e.cama, "SELECT count(*) FROM (SELECT key FROM test_audit_keys"
                                         " GROUP BY key HAVING count(*) > 1) d");
    char *dup_ex = scalar_text(e.cama, "SELECT string_agg(key || ' x' || n, ', ') FROM (SELECT"
                                       " key, count(*) n FROM test_audit_keys GROUP BY key"
                                       " HAVING count(*) > 1 LIMIT 5) d");
    cr_assert_eq(dups, 0, "%lld keys have more than one audit entry in run %lld, e.g. %s",
                 (long long)dups, (long long)run_id, dup_ex);
    free(dup_ex);
    cr_assert_eq(n, RESUME_CHANGES, "run %lld has %lld audit entries, want one for each of the"
                 " %d changed properties", (long long)run_id, (long long)n, RESUME_CHANGES);
    tfs_test_copy_between(e.pacs, "SELECT prop_id || '|2026' FROM test_changed", e.cama,
                 "test_audit_keys (key)");
    json_int_t unmatched = scalar_int(
        e.cama, "SELECT count(*) FROM (SELECT key FROM test_audit_keys GROUP BY key"
                " HAVING count(*) <> 2) d");
    cr_assert_eq(unmatched, 0, "%lld keys are in the audit trail or the changed set, not both",
                 (long long)unmatched);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM test_audit_keys WHERE op IS NOT NULL"
                                    " AND op <> 'update'"),
                 0, "every entry of the run is an update");
    free(blocked);
    env_down(&e);
}

/* ======================================================================================
 * 6. The schedule runs the pair by itself, and /sync/status shows it.
 * ====================================================================================== */

Test(incremental, schedule_runs_the_pair_and_status_shows_it)
{
    env e;
    env_init(&e);
    json_object_set_new(pair_cfg(&e), "schedule",
                        json_pack("{s:s}", "incremental_every", "200ms"));
    /* A second pair on the same systems whose first turn is an hour away: status shows its
     * schedule as configured. */
    json_t *hourly = json_deep_copy(pair_cfg(&e));
    json_object_set_new(hourly, "name", json_string("pacs-to-cama-hourly"));
    json_object_set_new(hourly, "schedule", json_pack("{s:s}", "incremental_every", "1h"));
    json_array_append_new(json_object_get(e.cfg, "pairs"), hourly);
    env_start(&e);

    /* The scheduler may already be running an incremental run (which fails: no full run
     * yet); a manual full run waits for it to end. */
    json_int_t full_id = 0;
    long long deadline = now_ms() + 30000;
    while (!full_id) {
        tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/full", TFS_TEST_KEY_OPERATE,
                                            "{\"pair\": \"" PAIR "\"}");
        if (r.status == 202) {
            full_id = json_integer_value(json_object_get(r.json, "run_id"));
        } else {
            cr_assert_eq(r.status, 409, "POST /sync/full: %ld %s", r.status, r.body);
            json_int_t busy = json_integer_value(json_object_get(r.json, "run_id"));
            cr_assert_gt(busy, 0, "409 without the running run_id: %s", r.body);
            json_decref(tfs_test_wait_run(e.d, busy, 60));
        }
        tfs_test_response_free(&r);
        cr_assert_lt(now_ms(), deadline, "could not start a full run beside the schedule");
    }
    json_decref(wait_ok(&e, full_id));

    char parid[64];
    json_int_t p = pick_prop(&e, 300, 0, parid);
    char *before = cama_value(&e, "pardat", "zoning", parid);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE property SET zoning = 'SCHED' WHERE prop_id = %lld",
             (long long)p);
    tfs_test_pg_exec(e.pacs, sql);
    cr_assert_str_neq(before, "SCHED");

    /* Until the change is in CAMA and the last run is a succeeded scheduled incremental
     * run, later than the full one. */
    deadline = now_ms() + 30000;
    json_t *status = NULL;
    for (;;) {
        char *now = cama_value(&e, "pardat", "zoning", parid);
        int delivered = strcmp(now, "SCHED") == 0;
        free(now);
        tfs_test_response r = tfs_test_http(e.d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
        cr_assert_eq(r.status, 200, "GET /sync/status: %ld %s", r.status, r.body);
        json_t *last = jget(r.json, "pairs." PAIR ".last_run");
        const char *mode = jstr(last, "mode"), *actor = jstr(last, "actor"),
                   *state = jstr(last, "state");
        if (delivered && mode && actor && state && strcmp(mode, "incremental") == 0 &&
            strcmp(actor, "scheduler") == 0 && strcmp(state, "succeeded") == 0 &&
            json_integer_value(json_object_get(last, "run_id")) > full_id) {
            status = json_incref(r.json);
            tfs_test_response_free(&r);
            break;
        }
        if (now_ms() > deadline) {
            char *log = tfs_test_daemon_log(e.d);
            cr_assert_fail("within 30 s of a change, with a 200ms schedule: delivered=%d, "
                           "last status %.1500s\nlog tail: %.2000s",
                           delivered, r.body, strlen(log) > 2000 ? log + strlen(log) - 2000 : log);
        }
        tfs_test_response_free(&r);
        pause_ms(20);
    }
    json_t *pair = jget(status, "pairs." PAIR);
    cr_assert_str_eq(jstr(pair, "schedule.incremental_every"), "200ms",
                     "status shows the schedule");
    const char *hourly_every = jstr(status, "pairs.pacs-to-cama-hourly.schedule.incremental_every");
    cr_expect(hourly_every && strcmp(hourly_every, "1h") == 0,
              "a pair configured with \"incremental_every\": \"1h\" shows %s in /sync/status,"
              " not the configured \"1h\"",
              hourly_every ? hourly_every : "no schedule");
    const char *next = jstr(pair, "next_run_at");
    cr_assert(next && strlen(next) >= 19 && next[4] == '-' && next[10] == 'T',
              "next_run_at should be an ISO time, is %s",
              next ? next : "missing or not a string");
    json_t *cp = jget(pair, "entities.property.checkpoint");
    cr_expect(json_is_object(cp), "entities.property.checkpoint is missing");
    cr_expect(json_is_integer(json_object_get(cp, "run_id")), "the checkpoint names its run");
    cr_expect_not_null(jstr(cp, "updated_at"), "the checkpoint has updated_at");
    json_decref(status);

    /* The change was applied by the scheduler, as the audit trail says. */
    char path[128];
    snprintf(path, sizeof path, "pair=" PAIR "&key=%lld%%7C2026", (long long)p);
    json_t *entries = audit_all(&e, path, 50);
    json_t *last = json_array_get(entries, json_array_size(entries) - 1);
    cr_assert_not_null(last, "no audit entry for %lld|2026", (long long)p);
    cr_assert_str_eq(jstr(last, "actor"), "scheduler");
    cr_assert_str_eq(jstr(last, "op"), "update");
    cr_assert_str_eq(jstr(last, "changes.pardat.zoning.after"), "SCHED");
    json_decref(entries);
    free(before);
    env_down(&e);
}

/* ======================================================================================
 * 7. The audit trail: the before and after of a changed field, filtered by key, paged;
 *    and /sync/status's checkpoint and lag around it.
 * ====================================================================================== */

Test(incremental, audit_shows_before_and_after_filtered_and_paged)
{
    env e;
    env_init(&e);
    env_start(&e);
    json_int_t full_id = start_run(&e, "full");
    json_decref(wait_ok(&e, full_id));

    char parid[64], sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT prop_id FROM " ACTIVE_PROPS " a JOIN property_val v USING (prop_id) WHERE"
             " v.prop_val_yr = 2026 AND v.property_use_cd IS NOT NULL AND prop_id >= 1000"
             " GROUP BY prop_id HAVING count(*) = 1 ORDER BY prop_id LIMIT 1");
    json_int_t p = scalar_int(e.pacs, sql); /* one value row, so one change in the log */
    snprintf(sql, sizeof sql, "SELECT simple_geo_id FROM property WHERE prop_id = %lld",
             (long long)p);
    char *pid = scalar_text(e.pacs, sql);
    snprintf(parid, sizeof parid, "%s", pid);
    free(pid);
    char *old_luc = cama_value(&e, "pardat", "luc", parid);
    cr_assert_str_neq(old_luc, "(null)");
    cr_assert_str_neq(old_luc, "ZZ9");

    /* /sync/status before: the full run's checkpoint, nothing pending. */
    tfs_test_response r = tfs_test_http(e.d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200);
    json_t *ent = jget(r.json, "pairs." PAIR ".entities.property");
    cr_expect(json_is_object(ent), "status has no entities.property: %.800s", r.body);
    cr_expect(json_is_null(jget(r.json, "pairs." PAIR ".schedule")),
              "no schedule configured, status shows %s",
              json_dumps(jget(r.json, "pairs." PAIR ".schedule"), JSON_COMPACT | JSON_ENCODE_ANY));
    cr_expect(json_is_null(jget(r.json, "pairs." PAIR ".next_run_at")),
              "no schedule, yet next_run_at is set");
    cr_expect_eq(json_integer_value(jget(ent, "checkpoint.run_id")), full_id,
                 "the checkpoint after the full run names it: %.500s", r.body);
    cr_expect_eq(json_integer_value(jget(ent, "lag.pending")), 0,
                 "nothing changed, lag.pending should be 0: %.500s", r.body);
    tfs_test_response_free(&r);

    snprintf(sql, sizeof sql,
             "UPDATE property_val SET property_use_cd = 'ZZ9' WHERE prop_id = %lld"
             " AND prop_val_yr = 2026",
             (long long)p);
    tfs_test_pg_exec(e.pacs, sql);

    /* The lag is the source prober's figure, refreshed every few seconds: poll for it. */
    for (int tries = 0;; tries++) {
        r = tfs_test_http(e.d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
        ent = jget(r.json, "pairs." PAIR ".entities.property");
        if (json_integer_value(jget(ent, "lag.pending")) >= 1 || tries >= 200)
            break;
        tfs_test_response_free(&r);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_expect(json_is_integer(jget(ent, "lag.age_ms")), "the lag says its age: %.500s", r.body);
    cr_expect_geq(json_integer_value(jget(ent, "lag.pending")), 1,
                  "one change waits, status shows %.500s", r.body);
    cr_expect(json_is_integer(jget(ent, "lag.oldest_age_ms")) &&
                  json_integer_value(jget(ent, "lag.oldest_age_ms")) >= 0,
              "lag.oldest_age_ms: %.500s", r.body);
    tfs_test_response_free(&r);

    json_int_t run_id = start_run(&e, "incremental");
    json_t *run = wait_ok(&e, run_id);
    cr_assert_eq(count_of(run, "property", "written"), 1);
    json_decref(run);

    for (int tries = 0;; tries++) {
        r = tfs_test_http(e.d, "GET", "/sync/status", TFS_TEST_KEY_READ, NULL);
        ent = jget(r.json, "pairs." PAIR ".entities.property");
        if (json_integer_value(jget(ent, "lag.pending")) == 0 || tries >= 200)
            break;
        tfs_test_response_free(&r);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_expect_eq(json_integer_value(jget(ent, "checkpoint.run_id")), run_id,
                 "the checkpoint moved to the incremental run: %.500s", r.body);
    cr_expect_eq(json_integer_value(jget(ent, "lag.pending")), 0, "after the run: %.500s", r.body);
    cr_expect_eq(json_integer_value(jget(r.json, "pairs." PAIR ".last_run.run_id")), run_id);
    tfs_test_response_free(&r);

    /* Filtered by key: the full run's insert, then this run's update, ascending. */
    char key[64], q[256];
    snprintf(key, sizeof key, "%lld|2026", (long long)p);
    snprintf(q, sizeof q, "pair=" PAIR "&key=%lld%%7C2026", (long long)p);
    json_t *entries = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(entries), 2,
                 "key %s: want 2 entries (insert by the full run, update by the incremental),"
                 " got %zu",
                 key, json_array_size(entries));
    json_t *ins = json_array_get(entries, 0), *upd = json_array_get(entries, 1);
    cr_assert_str_eq(jstr(ins, "op"), "insert");
    cr_assert_eq(json_integer_value(json_object_get(ins, "run_id")), full_id);
    cr_assert_str_eq(jstr(upd, "op"), "update");
    cr_assert_eq(json_integer_value(json_object_get(upd, "run_id")), run_id);
    cr_assert_str_eq(jstr(upd, "pair"), PAIR);
    cr_assert_str_eq(jstr(upd, "entity"), "property");
    cr_assert_str_eq(jstr(upd, "key"), key);
    cr_assert_str_eq(jstr(upd, "actor"), "operator");
    cr_assert_not_null(jstr(upd, "at"), "the entry has its time");
    cr_assert_str_eq(jstr(upd, "changes.pardat.luc.before"), old_luc,
                     "before of pardat.luc");
    cr_assert_str_eq(jstr(upd, "changes.pardat.luc.after"), "ZZ9", "after of pardat.luc");
    json_t *pardat_changes = jget(upd, "changes.pardat");
    cr_assert_eq(json_object_size(pardat_changes), 1,
                 "only luc changed in pardat; the entry lists %s",
                 json_dumps(pardat_changes, JSON_COMPACT));
    json_t *asmt_changes = jget(upd, "changes.asmt");
    cr_assert(!asmt_changes || json_object_size(asmt_changes) == 0,
              "nothing changed in asmt; the entry lists %s",
              json_dumps(asmt_changes, JSON_COMPACT));
    cr_assert(json_is_null(jget(ins, "changes.pardat.luc.before")),
              "an insert's before is null");
    cr_assert_str_eq(jstr(ins, "changes.pardat.luc.after"), old_luc);
    assert_no_bookkeeping(entries);

    /* Paging one at a time gives the same two entries. */
    json_t *paged = audit_all(&e, q, 1);
    cr_assert_eq(json_array_size(paged), 2, "limit=1 pages give %zu entries",
                 json_array_size(paged));
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(json_integer_value(jget(json_array_get(paged, i), "id")),
                     json_integer_value(jget(json_array_get(entries, i), "id")));
    snprintf(q, sizeof q, "/audit?pair=" PAIR "&key=%lld%%7C2026&limit=1", (long long)p);
    r = tfs_test_http(e.d, "GET", q, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "entries")), 1);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "next_after_id")),
                 json_integer_value(jget(ins, "id")),
                 "a full page names its last id as next_after_id: %s", r.body);
    tfs_test_response_free(&r);
    json_decref(paged);

    /* Filtered by run: this run applied exactly one record. By entity and run as well. */
    snprintf(q, sizeof q, "pair=" PAIR "&entity=property&run_id=%lld", (long long)run_id);
    json_t *by_run = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(by_run), 1, "run %lld applied 1 record, audit lists %zu",
                 (long long)run_id, json_array_size(by_run));
    cr_assert_eq(json_integer_value(jget(json_array_get(by_run, 0), "id")),
                 json_integer_value(jget(upd, "id")));
    json_decref(by_run);

    /* Filtered by time: a moment between the insert and the update splits them, whether
     * since and until include their bound or not; until a time before any run gives
     * nothing. */
    snprintf(sql, sizeof sql,
             "SELECT to_char((a + (b - a) / 2) AT TIME ZONE 'UTC',"
             " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM (SELECT '%s'::timestamptz a,"
             " '%s'::timestamptz b) t",
             jstr(ins, "at"), jstr(upd, "at"));
    char *mid = scalar_text(e.pacs, sql);
    snprintf(q, sizeof q, "pair=" PAIR "&key=%lld%%7C2026&since=%s", (long long)p, mid);
    json_t *since = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(since), 1, "since=%s (between insert and update): %zu entries",
                 mid, json_array_size(since));
    cr_assert_str_eq(jstr(json_array_get(since, 0), "op"), "update");
    json_decref(since);
    snprintf(q, sizeof q, "pair=" PAIR "&key=%lld%%7C2026&until=%s", (long long)p, mid);
    json_t *until = audit_all(&e, q, 100);
    cr_assert_eq(json_array_size(until), 1, "until=%s (between insert and update): %zu entries",
                 mid, json_array_size(until));
    cr_assert_str_eq(jstr(json_array_get(until, 0), "op"), "insert");
    json_decref(until);
    free(mid);
    json_t *none = audit_all(&e, "pair=" PAIR "&until=2000-01-01T00:00:00Z", 100);
    cr_assert_eq(json_array_size(none), 0, "until=2000-01-01 should give nothing, gives %zu",
                 json_array_size(none));
    json_decref(none);

    /* The read role suffices; no key does not. */
    r = tfs_test_http(e.d, "GET", "/audit?pair=" PAIR, NULL, NULL);
    cr_assert_eq(r.status, 401, "GET /audit without a key: %ld", r.status);
    tfs_test_response_free(&r);

    json_decref(entries);
    free(old_luc);
    env_down(&e);
}

/* ======================================================================================
 * POST /sync/incremental answers as /sync/full does, and an incremental run before any
 * full run fails saying to run a full sync first.
 * ====================================================================================== */

Test(incremental, incremental_before_a_full_run_fails_clearly)
{
    env e;
    env_init(&e);
    env_start(&e);

    json_int_t id = start_run(&e, "incremental");
    json_t *run = tfs_test_wait_run(e.d, id, 60);
    cr_assert_str_eq(jstr(run, "state"), "failed",
                     "an incremental run without a full run first must fail, it %s",
                     jstr(run, "state"));
    const char *error = jstr(run, "error");
    cr_assert(error && strstr(error, "full"),
              "the error should say to run a full sync first: %s", error);
    json_decref(run);
    cr_assert_eq(scalar_int(e.cama, "SELECT count(*) FROM pardat"), 0,
                 "the failed incremental run wrote into CAMA");

    struct {
        const char *key, *body;
        long status;
    } bad[] = {
        {TFS_TEST_KEY_OPERATE, "{\"pair\": \"no-such-pair\"}", 404},
        {TFS_TEST_KEY_OPERATE, "{}", 400},
        {TFS_TEST_KEY_OPERATE, "{\"pair\": ", 400},
        {TFS_TEST_KEY_READ, "{\"pair\": \"" PAIR "\"}", 403},
        {NULL, "{\"pair\": \"" PAIR "\"}", 401},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/incremental", bad[i].key,
                                            bad[i].body);
        cr_assert_eq(r.status, bad[i].status, "POST /sync/incremental %s: want %ld, got %ld %s",
                     bad[i].body, bad[i].status, r.status, r.body);
        cr_assert(strstr(r.content_type, "application/problem+json"), "%s", r.content_type);
        tfs_test_response_free(&r);
    }

    /* After a full run it works. */
    json_decref(sync_run(&e, "full"));
    run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "property", "written"), 0);
    json_decref(run);
    env_down(&e);
}

/* ======================================================================================
 * 9. A record the mapping no longer produces leaves the target: a sale marked confidential
 *    maps to nothing, and its CAMA sales row goes at the next incremental run, on record
 *    in the audit trail.
 * ====================================================================================== */

Test(incremental, a_record_the_mapping_stops_producing_is_deleted)
{
    env e;
    env_init(&e);
    add_entity(&e, "sale", "sales", "pacs_sale_to_cama.lua");
    env_start(&e);
    json_t *run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "sale", "failed"), 0);
    json_decref(run);

    /* A published sale of a single property. */
    char *sale = tfs_test_pg_scalar(
        e.pacs, "SELECT s.chg_of_owner_id FROM sale s JOIN chg_of_owner_prop_assoc a"
                " USING (chg_of_owner_id) WHERE s.confidential_sale = 'F'"
                " GROUP BY s.chg_of_owner_id HAVING count(*) = 1 ORDER BY 1 LIMIT 1");
    cr_assert_not_null(sale, "the generated PACS has no published single-property sale");
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sales WHERE instruno = '%s'", sale);
    cr_assert_eq(scalar_int(e.cama, sql), 1, "sale %s should be in CAMA after the full sync",
                 sale);

    char upd[256];
    snprintf(upd, sizeof upd, "UPDATE sale SET confidential_sale = 'T' WHERE chg_of_owner_id = %s",
             sale);
    tfs_test_pg_exec(e.pacs, upd);
    run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "sale", "written"), 1, "the one changed sale is applied");
    json_int_t run_id = json_integer_value(json_object_get(run, "run_id"));
    json_decref(run);
    cr_assert_eq(scalar_int(e.cama, sql), 0,
                 "a sale that became confidential must leave CAMA (it maps to nothing now)");

    char path[256];
    snprintf(path, sizeof path, "/audit?pair=" PAIR "&entity=sale&run_id=%lld",
             (long long)run_id);
    tfs_test_response r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *entries = json_object_get(r.json, "entries");
    cr_assert_eq(json_array_size(entries), 1, "%s", r.body);
    json_t *changes = json_object_get(json_array_get(entries, 0), "changes");
    const char *name;
    json_t *fields;
    int saw_price_gone = 0; /* saledt: always set; price often is not */
    json_object_foreach(changes, name, fields) {
        json_t *price = json_object_get(fields, "saledt");
        saw_price_gone |= strncmp(name, "sales", 5) == 0 && price &&
                          !json_is_null(json_object_get(price, "before")) &&
                          json_is_null(json_object_get(price, "after"));
    }
    cr_assert(saw_price_gone, "the audit entry shows the sales row's fields going: %s", r.body);
    tfs_test_response_free(&r);
    free(sale);
    env_down(&e);
}
