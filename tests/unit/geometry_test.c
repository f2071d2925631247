/* tests/unit/geometry_test.c — TFS_SDK_GEOMETRY (SDK 1.3): what the host takes as a
 * geometry (a GeoJSON geometry object naming its SRID, as PostGIS's ST_AsGeoJSON(geom, 15,
 * 2) writes it), what it refuses and why, a plugin's rec_set_text refused for a bad one,
 * and a script reading it as a nested table and handing one back into a geometry field.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"
#include "sdk_host.h"
#include "validator.h"

#define CRS "\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"EPSG:2277\"}}"
static const char square[] =
    "{\"type\":\"MultiPolygon\"," CRS ",\"coordinates\":[[[[0,0],[0,10],[10,10],[10,0],"
    "[0,0]]]]}";

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"shape", TFS_SDK_GEOMETRY, 0, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"parcel", fields, 2};

static tfs_arena *arena;

static void setup(void)
{
    cr_assert_not_null(arena = tfs_arena_new());
}

static void teardown(void)
{
    tfs_arena_free(arena);
}

TestSuite(geometry, .init = setup, .fini = teardown, .timeout = 60);

Test(geometry, a_geojson_geometry_with_its_srid_is_taken)
{
    char why[160] = "";
    int srid = 0;
    cr_assert_eq(tfs_geometry_check(square, strlen(square), &srid, why, sizeof why), 0, "%s",
                 why);
    cr_assert_eq(srid, 2277);
    static const char point[] = "{\"type\":\"Point\"," CRS ",\"coordinates\":[1.5,2.5]}";
    cr_assert_eq(tfs_geometry_check(point, strlen(point), NULL, why, sizeof why), 0, "%s", why);
    static const char coll[] =
        "{\"type\":\"GeometryCollection\"," CRS ",\"geometries\":[]}";
    cr_assert_eq(tfs_geometry_check(coll, strlen(coll), NULL, why, sizeof why), 0, "%s", why);
}

Test(geometry, what_is_not_one_is_refused_with_the_reason)
{
    static const struct {
        const char *text, *reason;
    } bad[] = {
        {"{\"type\":\"MultiPolygon\",", "not JSON"},
        {"[1,2]", "not a GeoJSON object"},
        {"{\"type\":\"Feature\"," CRS ",\"coordinates\":[]}", "no GeoJSON geometry \"type\""},
        {"{" CRS ",\"coordinates\":[]}", "no GeoJSON geometry \"type\""},
        {"{\"type\":\"Polygon\"," CRS "}", "Polygon geometry has no \"coordinates\" array"},
        {"{\"type\":\"GeometryCollection\"," CRS "}", "no \"geometries\" array"},
        {"{\"type\":\"Point\",\"coordinates\":[1,2]}", "names no SRID"},
        {"{\"type\":\"Point\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
         "\"urn:ogc:def:crs:OGC:1.3:CRS84\"}},\"coordinates\":[1,2]}",
         "names no SRID"},
        {"{\"type\":\"Point\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
         "\"EPSG:12x\"}},\"coordinates\":[1,2]}",
         "names no SRID"},
        /* found by tests/fuzz/geojson_fuzz.c: strtol took a sign and blanks */
        {"{\"type\":\"Point\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
         "\"EPSG:+4326\"}},\"coordinates\":[1,2]}",
         "names no SRID"},
        {"{\"type\":\"Point\",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
         "\"EPSG: 4326\"}},\"coordinates\":[1,2]}",
         "names no SRID"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[160] = "";
        cr_expect_eq(tfs_geometry_check(bad[i].text, strlen(bad[i].text), NULL, why,
                                        sizeof why),
                     -1, "taken: %s", bad[i].text);
        cr_expect(strstr(why, bad[i].reason), "%s: \"%s\" does not say \"%s\"", bad[i].text,
                  why, bad[i].reason);
    }
}

/* A plugin's rec_set_text of a geometry is checked: a bad one is refused (-1) and leaves
 * the field null, a good one is typed GEOMETRY. */
Test(geometry, a_plugins_bad_geometry_is_refused_at_rec_set_text)
{
    static tfs_sdk_host host;
    tfs_sdk_host_fill(&host, 2026);
    tfs_batch batch;
    tfs_batch_init(&batch, arena, &entity);
    tfs_sdk_record *r = host.batch_add(&batch);
    cr_assert_not_null(r);
    cr_assert_eq(host.rec_set_text(r, 1, TFS_SDK_GEOMETRY, "{\"type\":\"Point\"}", (size_t)-1),
                 -1);
    cr_assert_eq(host.rec_type(r, 1), TFS_SDK_NULL);
    cr_assert_eq(host.rec_set_text(r, 1, TFS_SDK_GEOMETRY, square, (size_t)-1), 0);
    cr_assert_eq(host.rec_type(r, 1), TFS_SDK_GEOMETRY);
}

static char tdir[PATH_MAX];

static tfs_lua *rt_with(const char *script)
{
    strcpy(tdir, "/tmp/tfs_geometry_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir));
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/s.lua", tdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(script, f);
    cr_assert_eq(fclose(f), 0);
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
    return rt;
}

static void rt_done(tfs_lua *rt)
{
    tfs_lua_free(rt);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/s.lua", tdir);
    remove(path);
    rmdir(tdir);
}

/* The script reads the shape as a table (its type, its SRID, a coordinate) and returns two
 * records: the shape as it came, and a table it built; the validator types both as
 * geometries. A third, a table without an SRID, is refused by the validator with the
 * reason. */
Test(geometry, scripts_read_and_return_geometry_as_tables)
{
    tfs_lua *rt = rt_with(
        "function map(rec)\n"
        "  assert(rec.shape.type == 'MultiPolygon', rec.shape.type)\n"
        "  assert(rec.shape.crs.properties.name == 'EPSG:2277')\n"
        "  assert(rec.shape.coordinates[1][1][3][2] == 10)\n"
        "  local pt = { type = 'Point', crs = rec.shape.crs, coordinates = { 5, 5 } }\n"
        "  return { parcel = { { id = 'a', shape = rec.shape }, { id = 'b', shape = pt },\n"
        "                      { id = 'c', shape = { type = 'Point', coordinates = { 1, 2 } } } } }\n"
        "end\n");
    tfs_record *src = tfs_record_new(arena, &entity);
    cr_assert_not_null(src);
    cr_assert_eq(tfs_record_set_text(src, 0, TFS_SDK_TEXT, "a", 1), 0);
    cr_assert_eq(tfs_record_set_text(src, 1, TFS_SDK_GEOMETRY, square, strlen(square)), 0);
    const tfs_sdk_entity *targets[] = {&entity};
    tfs_lua_output out;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_map(rt, "s.lua", src, "a", targets, 1, arena, &out, &err), 0, "%s",
                 err.message);
    cr_assert_eq(out.n, 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *reasons = json_array();
        cr_assert_eq(tfs_validate_record(out.recs[i], reasons), 0, "%s",
                     json_dumps(reasons, 0));
        json_decref(reasons);
        cr_assert_eq(out.recs[i]->values[1].type, TFS_SDK_GEOMETRY);
        int srid = 0;
        char why[160];
        cr_assert_eq(tfs_geometry_check(out.recs[i]->values[1].u.s, out.recs[i]->values[1].len,
                                        &srid, why, sizeof why),
                     0, "%s", why);
        cr_assert_eq(srid, 2277);
    }
    json_t *reasons = json_array();
    cr_assert_gt(tfs_validate_record(out.recs[2], reasons), 0);
    char *text = json_dumps(reasons, 0);
    cr_assert(strstr(text, "names no SRID"), "%s", text);
    free(text);
    json_decref(reasons);
    rt_done(rt);
}
