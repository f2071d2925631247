/* tests/integration/gis_test.c — the GIS adapter on real PostGIS, end to end (issue 9):
 * PACS -> GIS parcel attributes and GIS -> PACS computed area and centroid, through a real
 * tfsyncd over HTTP.
 *
 * Each test clones the 300-parcel PACS template and the parcel layer made for it
 * (scripts/templates.sh, make_gis_templates) and runs the pairs pacs-to-gis (property ->
 * parcel_attr, owner -> parcel_owner) and gis-to-pacs (taxparcel -> parcel_gis). What
 * they must show: the targets hold exactly what the SQL twins (tests/integration/sql/
 * pacs_to_gis_attr.sql, pacs_owner_to_gis.sql, gis_to_pacs.sql) compute, after full and
 * after incremental runs; every shape is byte-identical after the attribute sync; PACS's
 * own tables are untouched by gis-to-pacs; the two pairs run one after the other write
 * nothing the second time (no ping-pong); a retired property clears its parcel's attributes
 * and a parcel deleted in GIS leaves PACS; an unknown parcel and an invalid or empty shape
 * end as dead letters with their reasons while the rest is written; through the plugin host,
 * a bad setting is refused offline and an open does not connect.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "plugin_host.h"
#include "tfs_test.h"

TestSuite(gis, .timeout = 240);

#define TMPL_PACS "tfs_tmpl_pacs300"
#define TMPL_GIS "tfs_tmpl_gis300"

/* Columns of the GIS views the twins are compared with, in the twins' order. */
#define ATTR_COLS                                                                               \
    "\"PARCELID\", \"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\", \"USEDSCRP\", \"NGHBRHDCD\","   \
    " \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\", \"CNTASSDVAL\", \"CNTTXBLVAL\""
#define OWNER_COLS                                                                              \
    "\"PARCELID\", \"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\", \"PSTLCITY\", \"PSTLSTATE\","  \
    " \"PSTLZIP5\""
#define PGIS_COLS                                                                               \
    "simple_geo_id, gis_acres, gis_centroid_lat, gis_centroid_lon, gis_srid, gis_stated_area"

/* One md5 over every parcel's shape bytes, in PARCELID order. */
#define SHAPES_MD5                                                                              \
    "SELECT md5(string_agg(\"PARCELID\" || ':' || coalesce(md5(ST_AsBinary(shape)), '-'),"      \
    " ',' ORDER BY \"PARCELID\")) FROM taxparcel"
/* One md5 over every table PACS owns (everything but property_gis and the change log). */
#define PACS_OWN_MD5                                                                            \
    "SELECT md5(concat_ws('|',"                                                                 \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM property t),"                      \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM property_val t),"                  \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM situs t),"                         \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM account t),"                       \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM address t),"                       \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM owner t),"                         \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM property_exemption t),"            \
    " (SELECT string_agg(t::text, ',' ORDER BY t::text) FROM sale t)))"

typedef struct env {
    char *pacs, *gis, *state;
    json_t *cfg;
    tfs_test_daemon *d;
} env;

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->pacs = tfs_test_db_clone(TMPL_PACS, "gpacs");
    e->gis = tfs_test_db_clone(TMPL_GIS, "ggis");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "gstate");
    /* The demo config, its CAMA system and pair replaced by GIS's. */
    e->cfg = tfs_test_config_new(e->pacs, e->pacs, e->state);
    json_t *systems = json_object_get(e->cfg, "systems");
    json_object_del(systems, "cama");
    char *gis = tfs_test_pg_conninfo(e->gis);
    json_object_set_new(systems, "gis",
                        json_pack("{s:s, s:{s:s}}", "plugin", "gis", "settings", "conninfo", gis));
    free(gis);
    json_object_set_new(
        e->cfg, "pairs",
        json_pack("[{s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}, {s:s, s:[s], s:s}]},"
                  " {s:s, s:s, s:s, s:i, s:[{s:s, s:[s], s:s}]}]",
                  "name", "pacs-to-gis", "source", "pacs", "target", "gis", "batch_size", 100,
                  "entities", "source", "property", "targets", "parcel_attr", "script",
                  "pacs_to_gis.lua", "source", "owner", "targets", "parcel_owner", "script",
                  "pacs_owner_to_gis.lua",
                  "name", "gis-to-pacs", "source", "gis", "target", "pacs", "batch_size", 100,
                  "entities", "source", "taxparcel", "targets", "parcel_gis", "script",
                  "gis_to_pacs.lua"));
    /* The views the twins are compared with: the GIS parcels holding what PACS sent. */
    tfs_test_pg_exec(e->gis,
                     "CREATE VIEW synced_attr AS SELECT " ATTR_COLS " FROM taxparcel"
                     " WHERE num_nonnulls(\"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\","
                     " \"USEDSCRP\", \"NGHBRHDCD\", \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\","
                     " \"CNTASSDVAL\", \"CNTTXBLVAL\") > 0;"
                     "CREATE VIEW synced_owner AS SELECT " OWNER_COLS " FROM taxparcel"
                     " WHERE num_nonnulls(\"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\","
                     " \"PSTLCITY\", \"PSTLSTATE\", \"PSTLZIP5\") > 0");
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
    tfs_test_db_drop(e->gis);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->gis);
    free(e->state);
}

static char *scalar(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    return v ? v : strdup("(null)");
}

static long long scalar_ll(const char *db, const char *sql)
{
    char *v = scalar(db, sql);
    long long x = strtoll(v, NULL, 10);
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

/* The targets hold what the twins compute. */
static void assert_twins(env *e)
{
    char *pacs = tfs_test_pg_conninfo(e->pacs);
    char *gis = tfs_test_pg_conninfo(e->gis);
    tfs_test_assert_matches_twin(pacs, e->gis, "synced_attr", ATTR_COLS,
                                 "pacs_to_gis_attr.sql");
    tfs_test_assert_matches_twin(pacs, e->gis, "synced_owner", OWNER_COLS,
                                 "pacs_owner_to_gis.sql");
    tfs_test_assert_matches_twin(gis, e->pacs, "property_gis", PGIS_COLS, "gis_to_pacs.sql");
    free(pacs);
    free(gis);
}

/* ======================================================================================
 * 1. Full and incremental runs both ways: the twins' contents, shapes byte-identical,
 *    PACS's own tables untouched, and no ping-pong (the second round writes nothing).
 * ====================================================================================== */

Test(gis, full_and_incremental_both_ways_without_ping_pong)
{
    env e;
    env_init(&e);
    char *shapes = scalar(e.gis, SHAPES_MD5);
    long long parcels = scalar_ll(e.gis, "SELECT count(*) FROM taxparcel");
    cr_assert_gt(parcels, 200, "the GIS template has %lld parcels", parcels);

    json_t *run = run_pair(&e, "pacs-to-gis", "full", "succeeded");
    long long attr = written(run, "property"), own = written(run, "owner");
    json_decref(run);
    /* What PACS wrote is no change of GIS's: its change log saw nothing. */
    cr_assert_eq(scalar_ll(e.gis, "SELECT count(*) FROM gis_change_log"), 0,
                 "the attribute sync reached the GIS change log");
    char *pacs_own = scalar(e.pacs, PACS_OWN_MD5);
    run = run_pair(&e, "gis-to-pacs", "full", "succeeded");
    cr_assert_eq(written(run, "taxparcel"), parcels, "gis-to-pacs wrote %lld of %lld parcels",
                 written(run, "taxparcel"), parcels);
    /* cb_estimate, as the run status shows it. */
    cr_assert_eq(count_of(run, "taxparcel", "estimated_total"), parcels);
    json_decref(run);
    /* Nor is what GIS wrote a change of PACS's. */
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM change_log"), 0,
                 "the GIS sync reached the PACS change log");
    cr_assert_gt(attr, 200, "pacs-to-gis wrote %lld parcel attributes", attr);
    cr_assert_gt(own, 200, "pacs-to-gis wrote %lld parcel owners", own);
    assert_twins(&e);
    /* The transform read the nested GeoJSON table: gis_srid comes from shape.crs. */
    cr_assert_eq(scalar_ll(e.pacs, "SELECT count(*) FROM property_gis WHERE gis_srid = 2277"),
                 parcels);

    char *now = scalar(e.gis, SHAPES_MD5);
    cr_assert_str_eq(now, shapes, "a shape changed in the attribute sync");
    free(now);
    now = scalar(e.pacs, PACS_OWN_MD5);
    cr_assert_str_eq(now, pacs_own, "gis-to-pacs changed a table PACS owns");
    free(now);

    /* Round two, full and incremental: nothing to write either way. */
    const char *modes[] = {"full", "incremental"};
    for (int m = 0; m < 2; m++) {
        json_t *prev = run_pair(&e, "pacs-to-gis", modes[m], "succeeded");
        cr_assert_eq(written(prev, "property") + written(prev, "owner"), 0,
                     "a second %s pacs-to-gis wrote %lld", modes[m],
                     written(prev, "property") + written(prev, "owner"));
        run = run_pair(&e, "gis-to-pacs", modes[m], "succeeded");
        cr_assert_eq(written(run, "taxparcel"), 0, "a second %s gis-to-pacs wrote %lld",
                     modes[m], written(run, "taxparcel"));
        if (m == 1) /* nothing even read: neither side's writes came back as changes */
            cr_assert_eq(count_of(run, "taxparcel", "read") + count_of(prev, "property", "read") +
                             count_of(prev, "owner", "read"),
                         0, "a second incremental round read changes");
        json_decref(prev);
        json_decref(run);
    }

    /* Edits on both sides: three situs streets and an owner's name in PACS, two shapes
     * moved and one grown in GIS. */
    tfs_test_pg_exec(e.pacs,
                     "UPDATE situs SET situs_street = 'GIS TEST ' || prop_id WHERE prop_id IN"
                     " (SELECT p.prop_id FROM property p JOIN situs s USING (prop_id)"
                     "  WHERE p.prop_type_cd = 'R' ORDER BY p.prop_id LIMIT 3);"
                     "UPDATE account SET file_as_name = 'GIS TEST OWNER' WHERE acct_id ="
                     " (SELECT min(o.owner_id) FROM owner o JOIN property p USING (prop_id)"
                     "  WHERE p.prop_type_cd = 'R' AND o.owner_id > 100)");
    tfs_test_pg_exec(e.gis,
                     "UPDATE taxparcel SET shape = ST_Translate(shape, 30, 40) WHERE objectid"
                     " IN (SELECT objectid FROM taxparcel ORDER BY objectid LIMIT 2);"
                     "UPDATE taxparcel SET shape = ST_Multi(ST_Scale(shape, 1.5, 1.5))"
                     " WHERE objectid = (SELECT max(objectid) FROM taxparcel)");
    shapes = (free(shapes), scalar(e.gis, SHAPES_MD5));
    pacs_own = (free(pacs_own), scalar(e.pacs, PACS_OWN_MD5));

    run = run_pair(&e, "pacs-to-gis", "incremental", "succeeded");
    cr_assert_eq(written(run, "property"), 3, "incremental pacs-to-gis wrote %lld properties",
                 written(run, "property"));
    cr_assert_geq(written(run, "owner"), 1);
    json_decref(run);
    run = run_pair(&e, "gis-to-pacs", "incremental", "succeeded");
    cr_assert_eq(written(run, "taxparcel"), 3, "incremental gis-to-pacs wrote %lld parcels",
                 written(run, "taxparcel"));
    json_decref(run);
    assert_twins(&e);
    cr_assert_eq(scalar_ll(e.gis, "SELECT count(*) FROM taxparcel WHERE \"SITEADDRESS\""
                                  " LIKE '% GIS TEST %'"),
                 3);
    now = scalar(e.gis, SHAPES_MD5);
    cr_assert_str_eq(now, shapes, "a shape changed in the incremental attribute sync");
    free(now);
    now = scalar(e.pacs, PACS_OWN_MD5);
    cr_assert_str_eq(now, pacs_own, "incremental gis-to-pacs changed a table PACS owns");
    free(now);

    /* Two PACS properties retire: the first one's parcel keeps its shape and loses the
     * attributes (GIS owns the parcel); the second one's parcel is also deleted in GIS,
     * which takes it out of PACS's property_gis. */
    const char *real = "SELECT p.simple_geo_id FROM property p JOIN property_val v USING (prop_id)"
                       " WHERE p.prop_type_cd = 'R' AND v.prop_val_yr = 2026 AND"
                       " v.prop_inactive_dt IS NULL AND p.prop_id > 10 ORDER BY p.prop_id";
    char sql[768];
    snprintf(sql, sizeof sql, "%s LIMIT 1", real);
    char *retired = scalar(e.pacs, sql);
    snprintf(sql, sizeof sql, "%s OFFSET 1 LIMIT 1", real);
    char *deleted = scalar(e.pacs, sql);
    snprintf(sql, sizeof sql,
             "UPDATE property_val v SET prop_inactive_dt = '2026-03-01' FROM property p"
             " WHERE p.prop_id = v.prop_id AND v.prop_val_yr = 2026 AND p.simple_geo_id IN"
             " ('%s', '%s')", retired, deleted);
    tfs_test_pg_exec(e.pacs, sql);
    snprintf(sql, sizeof sql, "DELETE FROM taxparcel WHERE \"PARCELID\" = '%s'", deleted);
    tfs_test_pg_exec(e.gis, sql);
    run = run_pair(&e, "pacs-to-gis", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "property", "deleted"), 2);
    cr_assert_eq(count_of(run, "owner", "deleted"), 2);
    json_decref(run);
    run = run_pair(&e, "gis-to-pacs", "incremental", "succeeded");
    cr_assert_eq(count_of(run, "taxparcel", "deleted"), 1);
    json_decref(run);
    snprintf(sql, sizeof sql,
             "SELECT num_nonnulls(\"SITEADDRESS\", \"CLASSCD\", \"LNDVALUE\", \"OWNERNME1\")"
             " || ',' || (shape IS NOT NULL) FROM taxparcel WHERE \"PARCELID\" = '%s'",
             retired);
    now = scalar(e.gis, sql);
    cr_assert_str_eq(now, "0,true", "the retired property's parcel %s: %s", retired, now);
    free(now);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM property_gis WHERE simple_geo_id = '%s'",
             deleted);
    cr_assert_eq(scalar_ll(e.pacs, sql), 0, "PACS keeps the deleted GIS parcel %s", deleted);
    assert_twins(&e);
    free(retired);
    free(deleted);

    /* And again nothing travels back. */
    run = run_pair(&e, "pacs-to-gis", "incremental", "succeeded");
    cr_assert_eq(written(run, "property") + written(run, "owner"), 0);
    json_decref(run);
    run = run_pair(&e, "gis-to-pacs", "incremental", "succeeded");
    cr_assert_eq(written(run, "taxparcel"), 0);
    json_decref(run);

    free(shapes);
    free(pacs_own);
    env_down(&e);
}

/* ======================================================================================
 * 2. An unknown parcel and bad shapes are dead letters with their reasons; the run goes
 *    on and writes the rest.
 * ====================================================================================== */

/* The open dead letters of pair as "entity key: reason; reason" lines (owned). */
static char *dead_letters(env *e, const char *pair, int *n)
{
    char path[128];
    snprintf(path, sizeof path, "/dead-letters?pair=%s&status=open", pair);
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body ? r.body : r.error);
    json_t *list = json_object_get(r.json, "dead_letters");
    size_t cap = 8192, len = 0;
    char *out = calloc(1, cap);
    cr_assert_not_null(out);
    size_t i;
    json_t *dl;
    *n = (int)json_array_size(list);
    json_array_foreach(list, i, dl)
    {
        len += (size_t)snprintf(out + len, cap - len, "%s %s [%s]:",
                                json_string_value(json_object_get(dl, "entity")),
                                json_string_value(json_object_get(dl, "source_key")),
                                json_string_value(json_object_get(dl, "stage")));
        size_t j;
        json_t *reason;
        json_array_foreach(json_object_get(dl, "reasons"), j, reason)
            len += (size_t)snprintf(out + len, cap - len, " %s;", json_string_value(reason));
        len += (size_t)snprintf(out + len, cap - len, "\n");
        if (len >= cap - 512)
            break;
    }
    tfs_test_response_free(&r);
    return out;
}

Test(gis, unknown_parcel_and_bad_shapes_are_dead_letters)
{
    env e;
    env_init(&e);
    /* The first real property's parcel vanishes from GIS; two others get a self-crossing
     * (bow-tie) shape and an empty one. */
    char *gone = scalar(e.gis, "SELECT min(\"PARCELID\") FROM taxparcel");
    char sql[512];
    snprintf(sql, sizeof sql, "DELETE FROM taxparcel WHERE \"PARCELID\" = '%s'", gone);
    tfs_test_pg_exec(e.gis, sql);
    char *bowtie = scalar(e.gis, "SELECT max(\"PARCELID\") FROM taxparcel");
    char *empty = scalar(e.gis, "SELECT min(\"PARCELID\") FROM taxparcel");
    snprintf(sql, sizeof sql,
             "UPDATE taxparcel SET shape = ST_GeomFromText('MULTIPOLYGON(((3100000 10180000,"
             " 3100100 10180100, 3100100 10180000, 3100000 10180100, 3100000 10180000)))',"
             " 2277) WHERE \"PARCELID\" = '%s';"
             "UPDATE taxparcel SET shape = ST_GeomFromText('MULTIPOLYGON EMPTY', 2277)"
             " WHERE \"PARCELID\" = '%s'",
             bowtie, empty);
    tfs_test_pg_exec(e.gis, sql);
    char *shapes = scalar(e.gis, SHAPES_MD5);
    long long parcels = scalar_ll(e.gis, "SELECT count(*) FROM taxparcel");

    json_t *run = run_pair(&e, "pacs-to-gis", "full", "partial");
    cr_assert_eq(count_of(run, "property", "failed"), 1);
    cr_assert_eq(count_of(run, "owner", "failed"), 1);
    cr_assert_gt(written(run, "property"), 200);
    json_decref(run);
    int n;
    char *dls = dead_letters(&e, "pacs-to-gis", &n);
    cr_assert_eq(n, 2, "want the property and owner of %s, got:\n%s", gone, dls);
    snprintf(sql, sizeof sql, "no such parcel in GIS: PARCELID %s", gone);
    cr_assert(strstr(dls, sql) && strstr(dls, "[write]"), "no \"%s\" in:\n%s", sql, dls);
    free(dls);
    /* Nothing was invented for it, and no shape changed. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM taxparcel WHERE \"PARCELID\" = '%s'", gone);
    cr_assert_eq(scalar_ll(e.gis, sql), 0);
    char *now = scalar(e.gis, SHAPES_MD5);
    cr_assert_str_eq(now, shapes);
    free(now);

    run = run_pair(&e, "gis-to-pacs", "full", "partial");
    cr_assert_eq(count_of(run, "taxparcel", "failed"), 2);
    cr_assert_eq(written(run, "taxparcel"), parcels - 2);
    json_decref(run);
    dls = dead_letters(&e, "gis-to-pacs", &n);
    cr_assert_eq(n, 2, "want the bow-tie and the empty shape, got:\n%s", dls);
    snprintf(sql, sizeof sql, "taxparcel %s [transform]:", bowtie);
    cr_assert(strstr(dls, sql) && strstr(dls, "invalid geometry: Self-intersection"),
              "no self-intersection reason for %s in:\n%s", bowtie, dls);
    snprintf(sql, sizeof sql, "taxparcel %s [transform]:", empty);
    cr_assert(strstr(dls, sql) && strstr(dls, "empty geometry"),
              "no empty-geometry reason for %s in:\n%s", empty, dls);
    free(dls);
    /* The good parcels are in PACS as the twin says (it leaves the bad shapes out). */
    char *gis = tfs_test_pg_conninfo(e.gis);
    tfs_test_assert_matches_twin(gis, e.pacs, "property_gis", PGIS_COLS, "gis_to_pacs.sql");
    free(gis);

    free(gone);
    free(bowtie);
    free(empty);
    free(shapes);
    env_down(&e);
}

/* ======================================================================================
 * 3. Through the real plugin host: settings refused offline, naming the key in full; an
 *    open that does not connect; an estimate from the catalogue.
 * ====================================================================================== */

static long long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

Test(gis, checks_offline_opens_lazily_and_estimates)
{
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_PLUGIN_DIR, 2026, &h, &err), 0, "%s", err.message);
    const tfs_plugin *p = tfs_plugin_host_get(h, "gis");
    cr_assert_not_null(p, "no gis plugin in " TFS_PLUGIN_DIR);
    cr_assert(tfs_plugin_is_lazy(p));

    /* An address that never answers (TEST-NET-1): connecting would take connect_timeout. */
    const char *nowhere = "host=192.0.2.1 port=5432 dbname=gis connect_timeout=3";
    json_t *bad = json_pack("{s:s, s:i}", "conninfo", nowhere, "fetch_size", 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_neq(tfs_plugin_check(p, "parcels", bad, "/", &err), 0, "fetch_size 0 passed");
    cr_assert(strstr(err.message, "systems.parcels.settings.fetch_size"),
              "the key is not named in full: %s", err.message);
    json_decref(bad);
    bad = json_pack("{s:s}", "conninfo", "host=x port=1 sslmode=bogus-value =");
    cr_assert_neq(tfs_plugin_check(p, "parcels", bad, "/", &err), 0);
    cr_assert(strstr(err.message, "systems.parcels.settings.conninfo"), "%s", err.message);
    json_decref(bad);

    json_t *good = json_pack("{s:s}", "conninfo", nowhere);
    tfs_instance *inst = NULL;
    cr_assert_eq(tfs_instance_open(p, "parcels", good, "/", &inst, &err), 0, "%s", err.message);
    cr_assert_lt(ms_since(&t0), 2000, "checking and opening took %lld ms: they connected",
                 ms_since(&t0));
    cr_assert_eq(tfs_instance_n_entities(inst), 3);
    /* The first call that needs the database is where an outage shows, as transient. */
    cr_assert_eq(tfs_instance_health(inst, &err), TFS_ETRANSIENT);
    cr_assert(strstr(err.message, "could not connect to the gis database"), "%s", err.message);
    tfs_instance_close(inst);
    json_decref(good);

    char *db = tfs_test_db_clone(TMPL_GIS, "gest");
    char *conninfo = tfs_test_pg_conninfo(db);
    good = json_pack("{s:s}", "conninfo", conninfo);
    cr_assert_eq(tfs_instance_open(p, "gis", good, "/", &inst, &err), 0, "%s", err.message);
    long long parcels = 0;
    char *n = tfs_test_pg_scalar(db, "SELECT count(*) FROM taxparcel");
    parcels = strtoll(n, NULL, 10);
    free(n);
    int64_t est = -1;
    cr_assert_eq(tfs_instance_estimate(inst, (size_t)tfs_instance_entity(inst, "taxparcel"), &est,
                                       &err),
                 0, "%s", err.message);
    cr_assert_eq(est, parcels, "estimate %lld, %lld parcels", (long long)est, parcels);
    cr_assert_eq(tfs_instance_estimate(inst, (size_t)tfs_instance_entity(inst, "parcel_attr"),
                                       &est, &err),
                 TFS_ENOTFOUND, "a target entity has an estimate");
    tfs_instance_close(inst);
    json_decref(good);
    free(conninfo);
    tfs_test_db_drop(db);
    free(db);
    tfs_plugin_host_free(h);
}
