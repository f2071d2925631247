/* tests/fuzz/geojson_fuzz.c — GeoJSON geometries as SDK 1.3 states them
 * (tfs_geometry_check, core/record.c), the one GeoJSON parsing of the tree: the GIS adapter
 * hands PostGIS's own ST_AsGeoJSON text and takes text back through PostGIS, so its C code
 * parses none.
 *
 * The input is a geometry's text. Invariants: tfs_geometry_check takes it exactly when a
 * reading of the SDK's words over jansson's tree does (an object, a known "type", its
 * "coordinates" array or a GeometryCollection's "geometries" array, "crs" naming
 * "EPSG:<digits>" from 1 to 999999), with that SRID, and gives a reason otherwise; a taken
 * geometry is a JSON object in the record's JSON forms (both the same JSON), and one a
 * script copies comes back a geometry with the same SRID (the validator checks it again).
 */
#include <limits.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "fuzz_common.h"
#include "lua_transform.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"shape", TFS_SDK_GEOMETRY, 0, 0, 0, 0},
};
static const tfs_sdk_entity parcel = {"parcel", fields, 2};
static const tfs_sdk_entity *const targets[] = {&parcel};
static const char copy_lua[] =
    "function map(rec) return { parcel = { id = rec.id, shape = rec.shape } } end\n";

static tfs_lua *rt;
static tfs_arena *arena;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir("geojson");
    tfs_error err = {0};
    if (fuzz_write_file(dir, "copy.lua", copy_lua, strlen(copy_lua)) ||
        tfs_lua_new(dir, NULL, 2026, &rt, &err) != 0) {
        fprintf(stderr, "geojson_fuzz: %s\n", err.message);
        abort();
    }
    arena = tfs_arena_new();
    return 0;
}

/* The SDK's words over jansson's tree: the SRID, or 0 when it is not a geometry. */
static long reference(const char *text, size_t len)
{
    static const char *const types[] = {"Point", "MultiPoint", "LineString",
                                        "MultiLineString", "Polygon", "MultiPolygon"};
    json_t *g = json_loadb(text, len, 0, NULL);
    long srid = 0;
    const char *type = json_string_value(json_object_get(g, "type"));
    const char *name = json_string_value(
        json_object_get(json_object_get(json_object_get(g, "crs"), "properties"), "name"));
    bool known = false;
    for (size_t i = 0; type && i < sizeof types / sizeof *types; i++)
        known |= strcmp(type, types[i]) == 0;
    bool shape = type && (known ? json_is_array(json_object_get(g, "coordinates"))
                                : strcmp(type, "GeometryCollection") == 0 &&
                                      json_is_array(json_object_get(g, "geometries")));
    if (json_is_object(g) && shape && name && strncmp(name, "EPSG:", 5) == 0) {
        const char *d = name + 5;
        size_t n = strspn(d, "0123456789");
        if (n > 0 && d[n] == '\0')
            srid = strtol(d, NULL, 10);
    }
    json_decref(g);
    return srid >= 1 && srid <= 999999 ? srid : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    const char *text = (const char *)data;
    char why[200] = "";
    int srid = -1;
    int rc = tfs_geometry_check(text, size, &srid, why, sizeof why);
    long want = reference(text, size);
    FUZZ_CHECK((rc == 0) == (want != 0), "tfs_geometry_check says %d (%s), the SDK's words %ld",
               rc, why, want);
    if (rc != 0) {
        FUZZ_CHECK(why[0], "a refusal without a reason");
        return 0;
    }
    FUZZ_CHECK(srid == want, "SRID %d, not %ld", srid, want);

    tfs_record *r = tfs_record_new(arena, &parcel);
    FUZZ_CHECK(r, "out of memory");
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1};
    FUZZ_CHECK(tfs_record_set_text(r, 1, TFS_SDK_GEOMETRY, text, size) == 0, "out of memory");
    json_t *j = tfs_record_to_json(r);
    FUZZ_CHECK(j && json_is_object(json_object_get(j, "shape")), "a geometry not embedded");
    tfs_buf buf = TFS_BUF_INIT;
    FUZZ_CHECK(tfs_record_json_append(&buf, r) == 0, "out of memory");
    json_t *k = json_loadb(buf.data, buf.len, 0, NULL);
    FUZZ_CHECK(k && fuzz_json_same(j, k), "the two JSON forms differ: %s", buf.data);
    json_decref(j);
    json_decref(k);
    tfs_buf_free(&buf);

    tfs_lua_output out = {0};
    tfs_error err = {0};
    int mrc = tfs_lua_map(rt, "copy.lua", r, "1", targets, 1, arena, &out, &err);
    /* lua_json.c nests 64 levels at most; jansson more. */
    if (mrc == 0) {
        FUZZ_CHECK(out.n == 1, "%zu records", out.n);
        const tfs_value *v = &out.recs[0]->values[1];
        FUZZ_CHECK(v->type == TFS_SDK_JSON || v->type == TFS_SDK_GEOMETRY,
                   "a copied geometry came back as %s", tfs_type_name(v->type));
        int srid2 = -1;
        FUZZ_CHECK(tfs_geometry_check(v->u.s, v->len, &srid2, why, sizeof why) == 0 &&
                       srid2 == srid,
                   "a copied geometry is no longer one (%s): %.*s", why, (int)v->len, v->u.s);
    } else {
        FUZZ_CHECK(strstr(err.message, "nested") || mrc == TFS_ELIMIT || mrc == TFS_ENOMEM ||
                       memchr(text, '\0', size),
                   "a geometry the script could not take: %s", err.message);
    }
    tfs_arena_reset(arena);
    return 0;
}
