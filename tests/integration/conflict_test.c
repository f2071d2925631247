/* tests/integration/conflict_test.c — conflicts end to end (issue 8): an appraiser's edit
 * made in CAMA with SQL while PACS changes the same parcel, decided by each policy; the
 * three-way merge keeping both sides' edits; the audit entry of an overwritten edit
 * showing the target's value; manual conflicts listed and resolved three ways over HTTP
 * and with the CLI; a resolve with an invalid record, and one on a target changed again;
 * a conflict superseded by a newer source; drift reported and repaired; a first sync into
 * a populated CAMA; a second full run that finds nothing.
 *
 * A real PostgreSQL, the real daemon with the real pacs and cama plugins, over HTTP. Runs
 * are awaited by polling their status; every run's counts must add up: read = written +
 * unchanged + skipped + conflicts + failed + deleted (+ set_aside). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tfs_test.h"

#define PAIR "pacs-to-cama"
#define TFSYNC TFS_BINARY_DIR "/tfsync"

TestSuite(conflict, .timeout = 240);

/* ---- small utilities ---- */

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

/* The text of a query's value, "(null)" for SQL NULL; owned. */
static char *scalar_text(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    return v ? v : strdup("(null)");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct env {
    char *pacs, *cama, *state;
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static json_t *pair_cfg(env *e)
{
    return json_array_get(json_object_get(e->cfg, "pairs"), 0);
}

/* Databases and a config whose pair has the conflicts object given as JSON text (NULL:
 * none, today's source_wins). */
static void env_init(env *e, const char *conflicts)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "cpacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "ccama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "cstate");
    e->cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    if (conflicts) {
        json_error_t je;
        json_t *c = json_loads(conflicts, 0, &je);
        cr_assert_not_null(c, "bad conflicts JSON in the test: %s", je.text);
        json_object_set_new(pair_cfg(e), "conflicts", c);
    }
}

static void env_start(env *e)
{
    e->d = tfs_test_daemon_start(e->cfg);
}

static void env_stop(env *e)
{
    if (!e->d)
        return;
    char *log = tfs_test_daemon_log(e->d);
    int status = tfs_test_daemon_stop_status(e->d);
    cr_expect_eq(status, 0, "tfsyncd exited with %d; its log:\n%s", status, log);
    free(log);
    e->d = NULL;
}

static void env_down(env *e)
{
    env_stop(e);
    json_decref(e->cfg);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

static json_int_t start_run(env *e, const char *mode)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    tfs_test_response r =
        tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, "{\"pair\": \"" PAIR "\"}");
    cr_assert_eq(r.status, 202, "POST %s: want 202, got %ld %s", path, r.status,
                 r.body ? r.body : r.error);
    json_int_t id = json_integer_value(json_object_get(r.json, "run_id"));
    tfs_test_response_free(&r);
    return id;
}

/* Polls the run until its state is final; asserts it did not fail. Owned. */
static json_t *wait_final(env *e, json_int_t run_id)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    for (int i = 0; i < 120 * 50; i++) {
        tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
        const char *st = json_string_value(json_object_get(r.json, "state"));
        if (st && (!strcmp(st, "succeeded") || !strcmp(st, "partial") || !strcmp(st, "failed") ||
                   !strcmp(st, "cancelled") || !strcmp(st, "held"))) {
            cr_assert(strcmp(st, "failed") && strcmp(st, "cancelled"),
                      "run %lld ended %s: %s", (long long)run_id, st, r.body);
            json_t *out = json_incref(r.json);
            tfs_test_response_free(&r);
            return out;
        }
        tfs_test_response_free(&r);
        cr_assert(tfs_test_daemon_alive(e->d), "the daemon died");
        sleep_ms(20);
    }
    cr_assert_fail("run %lld did not end", (long long)run_id);
    return NULL;
}

static json_int_t count_of(json_t *run, const char *what)
{
    json_t *c = json_object_get(json_object_get(json_object_get(run, "counts"), "property"), what);
    cr_assert(json_is_integer(c), "no counts.property.%s in %s", what,
              json_dumps(json_object_get(run, "counts"), JSON_COMPACT));
    return json_integer_value(c);
}

/* read = written + unchanged + skipped + conflicts + failed + deleted + set_aside (an
 * incremental run's deletions not yet applied), for every entity. */
static void assert_counts_add_up(json_t *run)
{
    const char *ent;
    json_t *c;
    json_object_foreach(json_object_get(run, "counts"), ent, c) {
        json_int_t parts = 0;
        const char *names[] = {"written", "unchanged", "skipped",  "conflicts",
                               "failed",  "deleted",   "set_aside"};
        for (int i = 0; i < 7; i++)
            parts += json_integer_value(json_object_get(c, names[i]));
        cr_assert_eq(json_integer_value(json_object_get(c, "read")), parts,
                     "%s: read %lld, but the parts add up to %lld: %s", ent,
                     (long long)json_integer_value(json_object_get(c, "read")), (long long)parts,
                     json_dumps(c, JSON_COMPACT));
    }
}

static json_t *sync_run(env *e, const char *mode)
{
    json_t *run = wait_final(e, start_run(e, mode));
    assert_counts_add_up(run);
    return run;
}

/* ---- the parcels a test edits ---- */

#define ACTIVE_PROPS TFS_TEST_ACTIVE_PROPS

typedef struct parcel {
    long prop_id;
    char parid[64];
    char key[64]; /* the source key, "prop_id|2026" */
} parcel;

static parcel pick(env *e, int nth)
{
    char sql[1024];
    parcel p;
    snprintf(sql, sizeof sql, "SELECT prop_id FROM %s a ORDER BY prop_id OFFSET %d LIMIT 1",
             ACTIVE_PROPS, nth * 37);
    p.prop_id = (long)scalar_int(e->pacs, sql);
    snprintf(sql, sizeof sql, "SELECT parid FROM %s a WHERE prop_id = %ld", ACTIVE_PROPS,
             p.prop_id);
    char *parid = scalar_text(e->pacs, sql);
    snprintf(p.parid, sizeof p.parid, "%s", parid);
    free(parid);
    snprintf(p.key, sizeof p.key, "%ld|2026", p.prop_id);
    return p;
}

/* A field of the parcel's pardat row in CAMA ("(null)" for null); owned. */
static char *pardat(env *e, const parcel *p, const char *field)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM pardat WHERE parid = '%s' AND taxyr = 2026",
             field, p->parid);
    return scalar_text(e->cama, sql);
}

static void assert_pardat(env *e, const parcel *p, const char *field, const char *want)
{
    char *got = pardat(e, p, field);
    cr_assert_str_eq(got, want, "pardat %s of %s: want %s, got %s", field, p->parid, want, got);
    free(got);
}

/* An appraiser edits the parcel's zoning in CAMA. */
static void cama_zoning(env *e, const parcel *p, const char *zoning)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE pardat SET zoning = '%s', wen = now(), who = 'appraiser'"
             " WHERE parid = '%s' AND taxyr = 2026",
             zoning, p->parid);
    tfs_test_pg_exec(e->cama, sql);
}

/* PACS changes the parcel's situs street (CAMA adrstr, upper case). */
static void pacs_street(env *e, const parcel *p, const char *street)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE situs SET situs_street = '%s' WHERE prop_id = %ld", street,
             p->prop_id);
    tfs_test_pg_exec(e->pacs, sql);
}

static void pacs_zoning(env *e, const parcel *p, const char *zoning)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE property SET zoning = '%s' WHERE prop_id = %ld", zoning,
             p->prop_id);
    tfs_test_pg_exec(e->pacs, sql);
}

/* The audit entries of a key in a run: {"entries": [...]}. Owned. */
static json_t *audit_of(env *e, const parcel *p, json_int_t run_id)
{
    char path[256];
    snprintf(path, sizeof path, "/audit?pair=" PAIR "&key=%ld%%7C2026&run_id=%lld", p->prop_id,
             (long long)run_id);
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *out = json_incref(json_object_get(r.json, "entries"));
    tfs_test_response_free(&r);
    return out;
}

/* The dispute of field in an audit entry's detail, or NULL. Borrowed. */
static json_t *dispute_of(json_t *entry, const char *field)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(json_object_get(json_object_get(entry, "detail"),
                                                       "conflict"), "fields"), i, f)
        if (!strcmp(json_string_value(json_object_get(f, "field")), field))
            return f;
    return NULL;
}

/* ---- policies ---- */

/* The default: the source overwrites the appraiser's zoning, and the audit entry shows the
 * value it overwrote. */
Test(conflict, source_wins_overwrites_and_audits_the_target_value)
{
    env e;
    env_init(&e, NULL);
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 1);
    char *orig = pardat(&e, &p, "coalesce(zoning, '(none)')");
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "Conflict Way");
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    cr_assert_eq(count_of(run, "written"), 1);
    assert_pardat(&e, &p, "coalesce(zoning, '(none)')", orig);
    assert_pardat(&e, &p, "adrstr", "CONFLICT WAY");
    json_t *entries = audit_of(&e, &p, json_integer_value(json_object_get(run, "run_id")));
    cr_assert_eq(json_array_size(entries), 1, "one entry for the write");
    json_t *en = json_array_get(entries, 0);
    json_t *z = json_object_get(json_object_get(json_object_get(en, "changes"), "pardat"),
                                "zoning");
    cr_assert_str_eq(json_string_value(json_object_get(z, "before")), "APPR1",
                     "the overwritten edit is the entry's before: %s",
                     json_dumps(en, JSON_COMPACT));
    json_t *d = dispute_of(en, "zoning");
    cr_assert_not_null(d, "the decision names zoning: %s", json_dumps(en, JSON_COMPACT));
    cr_assert_str_eq(json_string_value(json_object_get(d, "target")), "APPR1");
    cr_assert_str_eq(json_string_value(json_object_get(d, "decision")), "source");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
                         json_object_get(en, "detail"), "conflict"), "policy")),
                     "source_wins");
    json_decref(entries);
    json_decref(run);
    free(orig);
    env_down(&e);
}

/* target_wins keeps the appraiser's record whole, and later runs leave it so. */
Test(conflict, target_wins_keeps_the_target_record)
{
    env e;
    env_init(&e, "{\"policy\": \"target_wins\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 2);
    char *street = pardat(&e, &p, "adrstr");
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "Conflict Way");
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "conflicts"), 0, "decided, not parked");
    assert_pardat(&e, &p, "zoning", "APPR1");
    assert_pardat(&e, &p, "adrstr", street);
    json_t *entries = audit_of(&e, &p, json_integer_value(json_object_get(run, "run_id")));
    json_t *d = dispute_of(json_array_get(entries, 0), "adrstr");
    cr_assert_not_null(d, "the decision is audited");
    cr_assert_str_eq(json_string_value(json_object_get(d, "decision")), "target");
    cr_assert_str_eq(json_string_value(json_object_get(d, "source")), "CONFLICT WAY");
    json_decref(entries);
    json_decref(run);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "written"), 0, "nothing to write again");
    cr_assert_eq(count_of(run, "drift"), 0, "the kept record is not drift");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    assert_pardat(&e, &p, "zoning", "APPR1");
    json_decref(run);
    free(street);
    env_down(&e);
}

/* merge: the appraiser's zoning and PACS's street, different fields, are both kept. */
Test(conflict, merge_keeps_both_sides_edits)
{
    env e;
    env_init(&e, "{\"policy\": \"merge\", \"fallback\": \"source_wins\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 3), q = pick(&e, 4);
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "Merge Street");
    /* the same field on both sides: the fallback, source_wins */
    cama_zoning(&e, &q, "APPR2");
    pacs_zoning(&e, &q, "PZ2");
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "written"), 2);
    assert_pardat(&e, &p, "zoning", "APPR1");
    assert_pardat(&e, &p, "adrstr", "MERGE STREET");
    assert_pardat(&e, &q, "zoning", "PZ2");
    json_t *entries = audit_of(&e, &q, json_integer_value(json_object_get(run, "run_id")));
    json_t *d = dispute_of(json_array_get(entries, 0), "zoning");
    cr_assert_not_null(d, "both changed zoning: in dispute");
    cr_assert_str_eq(json_string_value(json_object_get(d, "target")), "APPR2");
    cr_assert_str_eq(json_string_value(json_object_get(d, "source")), "PZ2");
    cr_assert_str_eq(json_string_value(json_object_get(d, "decision")), "source");
    json_decref(entries);
    json_decref(run);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "written") + count_of(run, "drift") + count_of(run, "conflicts"),
                 0, "a merged record is settled");
    json_decref(run);
    env_down(&e);
}

/* Field ownership: CAMA owns zoning; a PACS zoning change never overwrites it, on this run
 * or a later one, while PACS's other fields go through. */
Test(conflict, merge_field_owned_by_cama)
{
    env e;
    env_init(&e, "{\"policy\": \"merge\", \"fields\": {\"pardat\": {\"zoning\": "
                 "\"target_wins\"}}}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 5);
    cama_zoning(&e, &p, "APPR1");
    pacs_zoning(&e, &p, "PZ1");
    pacs_street(&e, &p, "Owner Road");
    json_decref(sync_run(&e, "incremental"));
    assert_pardat(&e, &p, "zoning", "APPR1");
    assert_pardat(&e, &p, "adrstr", "OWNER ROAD");
    pacs_street(&e, &p, "Second Road");
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "written"), 1);
    assert_pardat(&e, &p, "zoning", "APPR1");
    assert_pardat(&e, &p, "adrstr", "SECOND ROAD");
    json_decref(run);
    env_down(&e);
}

/* newest_wins by the sale's date in PACS against CAMA's wen: the appraiser's edit is dated
 * 2001; a PACS change dated before it loses, one dated after it wins. */
Test(conflict, newest_wins_by_timestamps)
{
    env e;
    env_init(&e, "{\"policy\": \"newest_wins\", \"newest_fields\": {\"source\": \"sl_dt\", "
                 "\"target\": \"wen\"}}");
    json_array_append_new(json_object_get(pair_cfg(&e), "entities"),
                          json_pack("{s:s, s:[s], s:s}", "source", "sale", "targets", "sales",
                                    "script", "pacs_sale_to_cama.lua"));
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    const char *published = "SELECT s.chg_of_owner_id FROM sale s JOIN chg_of_owner_prop_assoc a"
                            " USING (chg_of_owner_id) WHERE s.confidential_sale = 'F'"
                            " GROUP BY s.chg_of_owner_id HAVING count(*) = 1 ORDER BY 1";
    char sql[1024];
    snprintf(sql, sizeof sql, "%s LIMIT 1", published);
    json_int_t older = scalar_int(e.pacs, sql);
    snprintf(sql, sizeof sql, "%s OFFSET 1 LIMIT 1", published);
    json_int_t newer = scalar_int(e.pacs, sql);
    snprintf(sql, sizeof sql,
             "UPDATE sales SET price = 1, wen = '2001-01-01 12:00:00+00', who = 'appraiser'"
             " WHERE instruno IN ('%lld', '%lld')", (long long)older, (long long)newer);
    tfs_test_pg_exec(e.cama, sql);
    snprintf(sql, sizeof sql,
             "UPDATE sale SET sl_dt = '2000-06-01', sl_price = 777 WHERE chg_of_owner_id = %lld;"
             "UPDATE sale SET sl_dt = '2020-06-01', sl_price = 888 WHERE chg_of_owner_id = %lld",
             (long long)older, (long long)newer);
    tfs_test_pg_exec(e.pacs, sql);
    json_decref(sync_run(&e, "incremental"));
    snprintf(sql, sizeof sql, "SELECT price || ' ' || saledt FROM sales WHERE instruno = '%lld'",
             (long long)older);
    char *got = scalar_text(e.cama, sql);
    cr_assert(strncmp(got, "1 ", 2) == 0, "the appraiser's later edit kept: %s", got);
    free(got);
    snprintf(sql, sizeof sql, "SELECT price || ' ' || saledt FROM sales WHERE instruno = '%lld'",
             (long long)newer);
    got = scalar_text(e.cama, sql);
    cr_assert_str_eq(got, "888 2020-06-01", "the later PACS change wins");
    free(got);
    env_down(&e);
}

/* ---- manual: parked, listed, resolved ---- */

static json_t *conflicts_list(env *e, const char *query)
{
    char path[256];
    snprintf(path, sizeof path, "/sync/conflicts?%s", query);
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *out = json_incref(json_object_get(r.json, "conflicts"));
    tfs_test_response_free(&r);
    return out;
}

/* The open conflict of a parcel's key; its id. */
static json_int_t conflict_id_of(env *e, const parcel *p)
{
    json_t *list = conflicts_list(e, "pair=" PAIR "&status=open&limit=1000");
    json_int_t id = 0;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
        if (!strcmp(json_string_value(json_object_get(c, "source_key")), p->key))
            id = json_integer_value(json_object_get(c, "id"));
    json_decref(list);
    cr_assert_gt(id, 0, "no open conflict for %s", p->key);
    return id;
}

static tfs_test_response resolve(env *e, json_int_t id, const char *body)
{
    char path[128];
    snprintf(path, sizeof path, "/sync/conflicts/%lld/resolve", (long long)id);
    tfs_test_response r = tfs_test_http(e->d, "POST", path, TFS_TEST_KEY_OPERATE, body);
    if (r.status == 500) {
        /* a job that failed: its run says why */
        snprintf(path, sizeof path, "/sync/status/%lld",
                 (long long)json_integer_value(json_object_get(r.json, "run_id")));
        tfs_test_response st = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
        free(r.body);
        r.body = st.body; /* what the assertions print */
        st.body = NULL;
        tfs_test_response_free(&st);
    }
    return r;
}

typedef struct cli_result {
    int code;
    char *out;
} cli_result;

static cli_result cli(env *e, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --url http://127.0.0.1:%d --key %s %s 2>&1", TFSYNC, e->d->port,
             TFS_TEST_KEY_OPERATE, args);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    while ((n = fread(out + len, 1, cap - len - 1, f)) > 0)
        len += n;
    out[len] = '\0';
    int st = pclose(f);
    return (cli_result){WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

/* Six parcels edited on both sides under manual: six conflicts parked, nothing written;
 * resolved source, target and record over HTTP and the same three with the CLI. */
Test(conflict, manual_parks_and_resolves_three_ways)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p[6];
    char *orig_zoning[6], *orig_street[6];
    for (int i = 0; i < 6; i++) {
        p[i] = pick(&e, 10 + i);
        orig_zoning[i] = pardat(&e, &p[i], "coalesce(zoning, '(none)')");
        orig_street[i] = pardat(&e, &p[i], "adrstr");
        char z[16];
        snprintf(z, sizeof z, "APPR%d", i);
        cama_zoning(&e, &p[i], z);
        pacs_street(&e, &p[i], "Manual Street");
    }
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "conflicts"), 6);
    cr_assert_eq(count_of(run, "written"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "partial",
                     "parked conflicts leave something to do");
    json_decref(run);
    for (int i = 0; i < 6; i++)
        assert_pardat(&e, &p[i], "adrstr", orig_street[i]); /* parked: not written */

    json_t *list = conflicts_list(&e, "pair=" PAIR "&status=open");
    cr_assert_eq(json_array_size(list), 6);
    json_decref(list);
    list = conflicts_list(&e, "pair=" PAIR "&status=open&limit=4");
    cr_assert_eq(json_array_size(list), 4, "paged");
    json_decref(list);

    /* one conflict in full: source, target, base, fields */
    json_int_t id0 = conflict_id_of(&e, &p[0]);
    char path[128];
    snprintf(path, sizeof path, "/sync/conflicts/%lld", (long long)id0);
    tfs_test_response r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200);
    json_t *src0 = json_array_get(json_object_get(json_object_get(r.json, "source"), "pardat"), 0);
    json_t *tgt0 = json_array_get(json_object_get(json_object_get(r.json, "target"), "pardat"), 0);
    json_t *base0 = json_array_get(json_object_get(json_object_get(r.json, "base"), "pardat"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(src0, "adrstr")), "MANUAL STREET");
    cr_assert_str_eq(json_string_value(json_object_get(tgt0, "zoning")), "APPR0");
    cr_assert_str_eq(json_string_value(json_object_get(base0, "adrstr")), orig_street[0]);
    cr_assert_geq(json_array_size(json_object_get(r.json, "fields")), 2, "zoning and adrstr");
    tfs_test_response_free(&r);

    /* HTTP: source */
    r = resolve(&e, id0, "{\"choose\": \"source\"}");
    cr_assert_eq(r.status, 200, "resolve source: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p[0], "adrstr", "MANUAL STREET");
    assert_pardat(&e, &p[0], "coalesce(zoning, '(none)')", orig_zoning[0]);
    /* HTTP: target */
    r = resolve(&e, conflict_id_of(&e, &p[1]), "{\"choose\": \"target\"}");
    cr_assert_eq(r.status, 200, "resolve target: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p[1], "zoning", "APPR1");
    assert_pardat(&e, &p[1], "adrstr", orig_street[1]);
    /* HTTP: a record, first invalid (too long a zoning, a text year), then merged */
    json_int_t id2 = conflict_id_of(&e, &p[2]);
    snprintf(path, sizeof path, "/sync/conflicts/%lld", (long long)id2);
    r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    json_t *merged = json_deep_copy(json_object_get(r.json, "source"));
    tfs_test_response_free(&r);
    json_t *m = json_array_get(json_object_get(merged, "pardat"), 0);
    json_object_set_new(m, "zoning", json_string("FAR-TOO-LONG-ZONING-CODE"));
    json_object_set_new(m, "acres", json_string("lots"));
    char *body = json_dumps(json_pack("{sO}", "record", merged), JSON_COMPACT);
    r = resolve(&e, id2, body);
    free(body);
    cr_assert_eq(r.status, 422, "an invalid record is refused: %ld %s", r.status, r.body);
    cr_assert_geq(json_array_size(json_object_get(r.json, "reasons")), 2,
                  "every reason: %s", r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p[2], "zoning", "APPR2"); /* nothing written */
    json_object_set_new(m, "zoning", json_string("APPR2"));
    json_object_del(m, "acres");
    /* only pardat: the target's asmt stays as it is, and is what the sync map takes */
    json_object_del(merged, "asmt");
    json_t *src2 = json_object_get(json_array_get(json_object_get(merged, "pardat"), 0), "parid");
    cr_assert_not_null(src2);
    body = json_dumps(json_pack("{sO}", "record", merged), JSON_COMPACT);
    r = resolve(&e, id2, body);
    free(body);
    cr_assert_eq(r.status, 200, "resolve record: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p[2], "zoning", "APPR2");
    assert_pardat(&e, &p[2], "adrstr", "MANUAL STREET");
    json_decref(merged);

    /* the CLI: list, show, then the same three ways */
    cli_result c = cli(&e, "conflicts list --pair " PAIR " --status open");
    cr_assert_eq(c.code, 0, "%s", c.out);
    cr_assert(strstr(c.out, p[3].key) && strstr(c.out, p[5].key), "list: %s", c.out);
    cr_assert_null(strstr(c.out, p[0].key), "resolved ones are not open: %s", c.out);
    free(c.out);
    char args[512];
    snprintf(args, sizeof args, "conflicts show %lld", (long long)conflict_id_of(&e, &p[3]));
    c = cli(&e, args);
    cr_assert_eq(c.code, 0, "%s", c.out);
    cr_assert(strstr(c.out, "pardat.zoning") && strstr(c.out, "APPR3"), "show: %s", c.out);
    free(c.out);
    snprintf(args, sizeof args, "conflicts resolve %lld source",
             (long long)conflict_id_of(&e, &p[3]));
    c = cli(&e, args);
    cr_assert_eq(c.code, 0, "%s", c.out);
    free(c.out);
    assert_pardat(&e, &p[3], "adrstr", "MANUAL STREET");
    assert_pardat(&e, &p[3], "coalesce(zoning, '(none)')", orig_zoning[3]);
    snprintf(args, sizeof args, "conflicts resolve %lld target",
             (long long)conflict_id_of(&e, &p[4]));
    c = cli(&e, args);
    cr_assert_eq(c.code, 0, "%s", c.out);
    free(c.out);
    assert_pardat(&e, &p[4], "zoning", "APPR4");
    assert_pardat(&e, &p[4], "adrstr", orig_street[4]);
    json_int_t id5 = conflict_id_of(&e, &p[5]);
    snprintf(path, sizeof path, "/sync/conflicts/%lld", (long long)id5);
    r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    json_t *rec = json_deep_copy(json_object_get(r.json, "source"));
    tfs_test_response_free(&r);
    json_object_set_new(json_array_get(json_object_get(rec, "pardat"), 0), "zoning",
                        json_string("CLI5"));
    char file[] = "/tmp/tfs-conflict-rec-XXXXXX";
    int fd = mkstemp(file);
    cr_assert_geq(fd, 0);
    close(fd);
    json_dump_file(rec, file, 0);
    json_decref(rec);
    /* an invalid record first: the CLI exits 2 with the reasons */
    char bad[] = "/tmp/tfs-conflict-bad-XXXXXX";
    fd = mkstemp(bad);
    cr_assert_geq(fd, 0);
    cr_assert_gt(write(fd, "{\"pardat\": [{\"parid\": null}]}", 29), 0);
    close(fd);
    snprintf(args, sizeof args, "conflicts resolve %lld --record %s", (long long)id5, bad);
    c = cli(&e, args);
    cr_assert_eq(c.code, 2, "an invalid record: %s", c.out);
    cr_assert(strstr(c.out, "parid"), "the reasons name the field: %s", c.out);
    free(c.out);
    unlink(bad);
    snprintf(args, sizeof args, "conflicts resolve %lld --record %s", (long long)id5, file);
    c = cli(&e, args);
    cr_assert_eq(c.code, 0, "%s", c.out);
    free(c.out);
    unlink(file);
    assert_pardat(&e, &p[5], "zoning", "CLI5");
    assert_pardat(&e, &p[5], "adrstr", "MANUAL STREET");

    /* every one resolved, with the resolving key's name on the audit trail */
    list = conflicts_list(&e, "pair=" PAIR "&status=resolved");
    cr_assert_eq(json_array_size(list), 6);
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k)
        cr_assert_str_eq(json_string_value(json_object_get(k, "resolved_by")), "operator");
    json_decref(list);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.audit WHERE op = 'resolve' AND actor = 'operator'");
    cr_assert_eq(scalar_int(e.state, sql), 6);
    /* The conflicts' and the resolves' entries are in the pair's chain, which verifies. */
    tfs_test_assert_audit_verifies(e.d, 12);
    /* settled: the next full run writes nothing and parks nothing */
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    cr_assert_eq(count_of(run, "written"), 0);
    cr_assert_eq(count_of(run, "drift"), 0);
    json_decref(run);
    for (int j = 0; j < 6; j++) {
        free(orig_zoning[j]);
        free(orig_street[j]);
    }
    env_down(&e);
}

/* A resolve while the target changed again is refused with the new version, which the
 * conflict now holds; decided again, it goes through. */
Test(conflict, resolve_on_a_changed_target_is_refused)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 20);
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "Refused Road");
    json_decref(sync_run(&e, "incremental"));
    json_int_t id = conflict_id_of(&e, &p);
    cama_zoning(&e, &p, "APPR9");
    tfs_test_response r = resolve(&e, id, "{\"choose\": \"source\"}");
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "type")) +
                         strlen(json_string_value(json_object_get(r.json, "type"))) -
                         strlen("target-changed"),
                     "target-changed");
    json_t *t = json_array_get(json_object_get(json_object_get(json_object_get(r.json, "conflict"),
                                                               "target"), "pardat"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(t, "zoning")), "APPR9",
                     "the new version: %s", r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p, "zoning", "APPR9");
    r = resolve(&e, id, "{\"choose\": \"target\"}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    assert_pardat(&e, &p, "zoning", "APPR9");
    /* a resolved conflict is not resolved twice; the problem's status stays the HTTP
     * status (RFC 9457), the conflict's own is conflict_status */
    r = resolve(&e, id, "{\"choose\": \"source\"}");
    cr_assert_eq(r.status, 409, "%ld %s", r.status, r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "status")), 409, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
                     "https://terrafusion.dev/problems/conflict-not-open", "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "conflict_status")), "resolved",
                     "%s", r.body);
    tfs_test_response_free(&r);
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    json_decref(run);
    env_down(&e);
}

/* A parked conflict whose source changes again: the old one superseded, one open. */
Test(conflict, a_newer_source_supersedes_the_open_conflict)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 21);
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "First Street");
    json_decref(sync_run(&e, "incremental"));
    json_int_t first = conflict_id_of(&e, &p);
    /* the same source again (a full run re-reads it): the same conflict, updated */
    json_t *run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "conflicts"), 1);
    json_decref(run);
    cr_assert_eq(conflict_id_of(&e, &p), first);
    pacs_street(&e, &p, "Second Street");
    json_decref(sync_run(&e, "incremental"));
    json_int_t second = conflict_id_of(&e, &p);
    cr_assert_neq(second, first);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT status || ' ' || superseded_by FROM tfsync.conflicts WHERE id = %lld",
             (long long)first);
    char *st = scalar_text(e.state, sql);
    char want[64];
    snprintf(want, sizeof want, "superseded %lld", (long long)second);
    cr_assert_str_eq(st, want);
    free(st);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.conflicts WHERE source_key = '%s' AND status = 'open'",
             p.key);
    cr_assert_eq(scalar_int(e.state, sql), 1);
    env_down(&e);
}

/* ---- drift, first syncs, clean runs ---- */

Test(conflict, drift_is_reported_and_left_alone)
{
    env e;
    env_init(&e, NULL);
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 30), q = pick(&e, 31);
    cama_zoning(&e, &p, "DRIFT1");
    cama_zoning(&e, &q, "DRIFT2");
    json_t *run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "drift"), 2);
    cr_assert_eq(count_of(run, "written"), 0);
    json_decref(run);
    assert_pardat(&e, &p, "zoning", "DRIFT1");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(source_key, ',' ORDER BY source_key) FROM tfsync.drift");
    char *keys = scalar_text(e.state, sql);
    char want[160];
    snprintf(want, sizeof want, "%s,%s", strcmp(p.key, q.key) < 0 ? p.key : q.key,
             strcmp(p.key, q.key) < 0 ? q.key : p.key);
    cr_assert_str_eq(keys, want);
    free(keys);
    env_stop(&e);
    /* repair: written again from the mapping */
    json_object_set_new(pair_cfg(&e), "conflicts", json_pack("{ss}", "drift", "repair"));
    env_start(&e);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "drift"), 2);
    cr_assert_eq(count_of(run, "written"), 2);
    json_decref(run);
    char *z = pardat(&e, &p, "coalesce(zoning, '(none)')");
    cr_assert_str_neq(z, "DRIFT1", "repaired");
    free(z);
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.drift"), 0);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "drift") + count_of(run, "written"), 0);
    json_decref(run);
    env_down(&e);
}

/* A second full run with no edits finds nothing: a fetch never differs from the sync map
 * by representation alone (decimals, char padding, wen and who). */
Test(conflict, second_full_run_finds_no_conflict_and_no_drift)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_t *run = sync_run(&e, "full");
    json_int_t read = count_of(run, "read");
    cr_assert_gt(read, 1000);
    json_decref(run);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    cr_assert_eq(count_of(run, "drift"), 0);
    cr_assert_eq(count_of(run, "written"), 0);
    cr_assert_eq(count_of(run, "unchanged"), read);
    json_decref(run);
    tfs_test_response r = tfs_test_http(e.d, "GET", "/pairs", TFS_TEST_KEY_READ, NULL);
    json_t *pair = json_array_get(json_object_get(r.json, "pairs"), 0);
    cr_assert(json_is_true(json_object_get(pair, "conflict_detection")), "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(pair, "conflict_policy")), "manual");
    tfs_test_response_free(&r);
    env_down(&e);
}

/* A first sync into a CAMA that already holds the parcels (a new state store): records the
 * target already holds exactly are written as any (no conflict), and the one an appraiser
 * changed is a conflict with no base. */
Test(conflict, first_sync_into_a_populated_target)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_t *run = sync_run(&e, "full");
    json_int_t read = count_of(run, "read");
    json_decref(run);
    env_stop(&e);
    parcel p = pick(&e, 40);
    cama_zoning(&e, &p, "APPR1");
    /* a state store that never synced this CAMA */
    char *fresh = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "cfresh");
    char *conninfo = tfs_test_pg_conninfo(fresh);
    json_object_set_new(json_object_get(e.cfg, "state"), "conninfo", json_string(conninfo));
    free(conninfo);
    env_start(&e);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "conflicts"), 1);
    cr_assert_eq(count_of(run, "written"), read - 1);
    json_decref(run);
    assert_pardat(&e, &p, "zoning", "APPR1");
    tfs_test_response r = tfs_test_http(e.d, "GET", "/sync/conflicts?status=open",
                                        TFS_TEST_KEY_READ, NULL);
    json_t *c = json_array_get(json_object_get(r.json, "conflicts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "source_key")), p.key);
    char path[64];
    snprintf(path, sizeof path, "/sync/conflicts/%lld",
             (long long)json_integer_value(json_object_get(c, "id")));
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert(json_is_null(json_object_get(r.json, "base")), "no base: %s", r.body);
    tfs_test_response_free(&r);
    env_down(&e);
    tfs_test_db_drop(fresh);
    free(fresh);
}

/* A replay after a crash is not a conflict: the target already holds what the batch wrote,
 * but the state store lost the batch's commit (its sync map row is the one before). Under
 * manual, which parks any conflict, the record is written as any, with its audit entry, and
 * its sync map row completed. */
Test(conflict, a_replay_after_a_lost_commit_is_not_a_conflict)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 50);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE TABLE saved_row AS SELECT * FROM tfsync.sync_map WHERE source_key = '%s'",
             p.key);
    tfs_test_pg_exec(e.state, sql);
    pacs_street(&e, &p, "Replay Road");
    json_decref(sync_run(&e, "incremental"));
    assert_pardat(&e, &p, "adrstr", "REPLAY ROAD");
    /* the commit lost: the row as it was before the batch */
    tfs_test_pg_exec(e.state,
                     "UPDATE tfsync.sync_map m SET source_hash = s.source_hash,"
                     " target_hash = s.target_hash, target_keys = s.target_keys,"
                     " target_record = s.target_record FROM saved_row s"
                     " WHERE m.pair = s.pair AND m.entity = s.entity"
                     " AND m.source_key = s.source_key");
    json_t *run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "conflicts"), 0, "not a conflict");
    cr_assert_eq(count_of(run, "written"), 1, "written again, as the replay would");
    json_t *entries = audit_of(&e, &p, json_integer_value(json_object_get(run, "run_id")));
    cr_assert_eq(json_array_size(entries), 1, "its audit entry");
    json_t *detail = json_object_get(json_array_get(entries, 0), "detail");
    cr_assert(!detail || json_is_null(detail), "no decision was needed: %s",
              json_dumps(detail, JSON_COMPACT));
    json_decref(entries);
    json_decref(run);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM tfsync.sync_map m JOIN saved_row s USING (pair, entity,"
             " source_key) WHERE m.target_hash <> s.target_hash");
    cr_assert_eq(scalar_int(e.state, sql), 1, "the sync map row completed");
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "written") + count_of(run, "conflicts") + count_of(run, "drift"),
                 0);
    json_decref(run);
    env_down(&e);
}

/* "detect": false: the target is never fetched, the source wins as before conflict
 * detection, and GET /pairs says why there is none. */
Test(conflict, detection_off_says_so_and_writes_as_before)
{
    env e;
    env_init(&e, "{\"detect\": false, \"policy\": \"manual\"}");
    env_start(&e);
    tfs_test_response r = tfs_test_http(e.d, "GET", "/pairs", TFS_TEST_KEY_READ, NULL);
    json_t *pair = json_array_get(json_object_get(r.json, "pairs"), 0);
    cr_assert(json_is_false(json_object_get(pair, "conflict_detection")), "%s", r.body);
    cr_assert_not_null(strstr(json_string_value(json_object_get(pair,
                                                                "conflict_detection_reason")),
                              "detect"), "%s", r.body);
    tfs_test_response_free(&r);
    json_decref(sync_run(&e, "full"));
    parcel p = pick(&e, 60);
    cama_zoning(&e, &p, "APPR1");
    pacs_street(&e, &p, "Unseen Street");
    json_t *run = sync_run(&e, "incremental");
    cr_assert_eq(count_of(run, "conflicts"), 0);
    cr_assert_eq(count_of(run, "written"), 1);
    json_decref(run);
    assert_pardat(&e, &p, "adrstr", "UNSEEN STREET");
    char *z = pardat(&e, &p, "coalesce(zoning, '(none)')");
    cr_assert_str_neq(z, "APPR1", "overwritten, as before conflict detection");
    free(z);
    run = sync_run(&e, "full");
    cr_assert_eq(count_of(run, "drift"), 0, "not looked for");
    json_decref(run);
    env_down(&e);
}

/* The answer of the dry run for one source key: the record of entity "property" in
 * POST /sync/validate's answer, or NULL. Borrowed from v. */
static json_t *dry_answer(json_t *v, const char *key)
{
    size_t i, j;
    json_t *ent, *rec;
    json_array_foreach(json_object_get(v, "entities"), i, ent) {
        if (strcmp(json_string_value(json_object_get(ent, "source")), "property") != 0)
            continue;
        json_array_foreach(json_object_get(ent, "records"), j, rec)
            if (strcmp(json_string_value(json_object_get(rec, "key")), key) == 0)
                return rec;
    }
    return NULL;
}

/* /sync/validate says what would conflict (and what drifted) as the run would decide it,
 * and writes nothing: no conflict or drift row, CAMA as it was. */
Test(conflict, validate_says_what_would_conflict_and_writes_nothing)
{
    env e;
    env_init(&e, "{\"policy\": \"manual\"}");
    json_object_set_new(e.cfg, "jobs", json_pack("{ss}", "wait", "120s"));
    env_start(&e);
    json_decref(sync_run(&e, "full"));
    parcel both = pick(&e, 0), source_only = pick(&e, 1), target_only = pick(&e, 2);
    cama_zoning(&e, &both, "APPR9");
    pacs_street(&e, &both, "Dry Run Way");
    pacs_street(&e, &source_only, "Source Only Way");
    cama_zoning(&e, &target_only, "APPR8");
    char *before = scalar_text(e.cama, "SELECT md5(string_agg(p::text, ',' ORDER BY parid))"
                                       " FROM pardat p");
    tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/validate", TFS_TEST_KEY_OPERATE,
                                        "{\"pair\": \"" PAIR "\", \"sample\": 1000}");
    cr_assert_eq(r.status, 200, "POST /sync/validate: %ld %s", r.status,
                 r.body ? r.body : r.error);
    cr_assert(json_is_true(json_object_get(r.json, "conflicts_checked")), "%s", r.body);
    json_t *a = dry_answer(r.json, both.key);
    cr_assert_not_null(a, "%s is in the sample", both.key);
    json_t *wc = json_object_get(a, "would_conflict");
    cr_assert(json_is_object(wc), "both sides changed: a conflict, got %s",
              json_dumps(a, JSON_COMPACT));
    cr_assert_str_eq(json_string_value(json_object_get(wc, "decision")), "park");
    cr_assert_geq(json_array_size(json_object_get(wc, "fields")), 2, "zoning and adrstr");
    a = dry_answer(r.json, source_only.key);
    cr_assert_not_null(a);
    cr_assert(json_is_false(json_object_get(a, "would_conflict")), "only the source changed: %s",
              json_dumps(a, JSON_COMPACT));
    cr_assert_str_eq(json_string_value(json_object_get(a, "status")), "would_update");
    a = dry_answer(r.json, target_only.key);
    cr_assert_not_null(a);
    cr_assert(json_is_false(json_object_get(a, "would_conflict")));
    cr_assert(json_is_true(json_object_get(a, "drift")), "the target changed alone: %s",
              json_dumps(a, JSON_COMPACT));
    tfs_test_response_free(&r);
    char *after = scalar_text(e.cama, "SELECT md5(string_agg(p::text, ',' ORDER BY parid))"
                                      " FROM pardat p");
    cr_assert_str_eq(after, before, "the dry run wrote nothing to CAMA");
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.conflicts"), 0);
    cr_assert_eq(scalar_int(e.state, "SELECT count(*) FROM tfsync.drift"), 0);
    assert_pardat(&e, &both, "zoning", "APPR9");
    free(before);
    free(after);
    env_down(&e);
}
