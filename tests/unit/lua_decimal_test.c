/* tests/unit/lua_decimal_test.c — decimals through a script: a source decimal copied
 * unchanged reaches a decimal or text field with its own text (also one no double holds),
 * a computed float as its shortest round-trip text without an exponent, negatives and
 * integer-valued floats included; a float field still gets a float; and a decimal's text is
 * remembered for its call only. Every test works in a fresh temporary transform directory.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"

static char tdir[PATH_MAX]; /* mkdtemp'd transform directory */
static char script_path[PATH_MAX + 8];
static tfs_arena *arena;

static void setup(void)
{
    strcpy(tdir, "/tmp/tfs_lua_dec_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir));
    snprintf(script_path, sizeof script_path, "%s/s.lua", tdir);
    arena = tfs_arena_new();
    cr_assert_not_null(arena);
}

static void teardown(void)
{
    tfs_arena_free(arena);
    remove(script_path);
    rmdir(tdir);
}

TestSuite(lua_decimal, .init = setup, .fini = teardown, .timeout = 60);

static const tfs_sdk_field src_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"a", TFS_SDK_DECIMAL, 0, 0, 20, 3},
    {"b", TFS_SDK_DECIMAL, 0, 0, 20, 3},
    {"c", TFS_SDK_DECIMAL, 0, 0, 20, 4},
};
static const tfs_sdk_entity src_entity = {"src", src_fields, 4};

static const tfs_sdk_field out_fields[] = {
    {"d", TFS_SDK_DECIMAL, 0, 0, 0, -1},
    {"e", TFS_SDK_DECIMAL, 0, 0, 0, -1},
    {"f", TFS_SDK_DECIMAL, 0, 0, 0, -1},
    {"t", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"x", TFS_SDK_FLOAT64, 0, 0, 0, 0},
};
static const tfs_sdk_entity out_entity = {"out", out_fields, 5};
static const tfs_sdk_entity *const targets[] = {&out_entity};

static void write_script(const char *text)
{
    FILE *f = fopen(script_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* A source record with decimals a, b and c (NULL: null). */
static tfs_record *src(const char *a, const char *b, const char *c)
{
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1};
    const char *v[] = {a, b, c};
    for (size_t i = 0; i < 3; i++)
        if (v[i])
            cr_assert_eq(tfs_record_set_text(r, i + 1, TFS_SDK_DECIMAL, v[i], strlen(v[i])), 0);
    return r;
}

static tfs_record *map_one(tfs_lua *rt, const tfs_record *rec)
{
    tfs_lua_output out;
    tfs_error err = {0};
    int rc = tfs_lua_map(rt, "s.lua", rec, "1", targets, 1, arena, &out, &err);
    cr_assert_eq(rc, 0, "map failed: %s\n%s", err.message, err.detail);
    cr_assert_eq(out.n, 1);
    return out.recs[0];
}

/* Field f of r holds text of type type that is exactly want. */
static void expect(const tfs_record *r, const char *field, tfs_sdk_type type, const char *want)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0);
    const tfs_value *v = &r->values[f];
    cr_assert_eq(v->type, type, "%s: expected a %s \"%s\", got a %s", field,
                 tfs_type_name(type), want, tfs_type_name(v->type));
    cr_expect_str_eq(v->u.s, want, "%s: expected \"%s\", got \"%s\"", field, want, v->u.s);
    cr_expect_eq(v->len, strlen(want), "%s: length", field);
}

static tfs_lua *new_rt(void)
{
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
    return rt;
}

Test(lua_decimal, copied_decimal_keeps_its_text)
{
    write_script("function map(rec)\n"
                 "  assert(math.type(rec.a) == 'float', 'a float, for arithmetic')\n"
                 "  return { out = { d = rec.a, e = rec.b, f = rec.c, t = rec.b,\n"
                 "                   x = rec.a } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    /* 1.005 is 1.00499999999999989... as a double: %.17g would give 1.0049999999999999 */
    tfs_record *r = map_one(rt, src("1.005", "12345678901234567.891", "0.2500"));
    expect(r, "d", TFS_SDK_DECIMAL, "1.005");
    expect(r, "e", TFS_SDK_DECIMAL, "12345678901234567.891"); /* no double holds it */
    expect(r, "f", TFS_SDK_DECIMAL, "0.2500");                /* the scale too */
    expect(r, "t", TFS_SDK_TEXT, "12345678901234567.891");
    /* a float field still gets the float */
    cr_assert_eq(r->values[4].type, TFS_SDK_FLOAT64);
    cr_expect_eq(r->values[4].u.f, 1.005);
    /* negatives, and the same again with other values in the reused source table */
    r = map_one(rt, src("-1.005", "-12345678901234567.891", "-0.0001"));
    expect(r, "d", TFS_SDK_DECIMAL, "-1.005");
    expect(r, "e", TFS_SDK_DECIMAL, "-12345678901234567.891");
    expect(r, "f", TFS_SDK_DECIMAL, "-0.0001");
    tfs_lua_free(rt);
}

Test(lua_decimal, computed_float_is_shortest_text)
{
    write_script("function map(rec)\n"
                 "  return { out = { d = 0.1 + 0.2, e = rec.a * 2, f = 1.005,\n"
                 "                   t = -(0.1 + 0.2), x = 0.1 + 0.2 } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    tfs_record *r = map_one(rt, src("2.5", NULL, NULL));
    expect(r, "d", TFS_SDK_DECIMAL, "0.30000000000000004");
    expect(r, "e", TFS_SDK_DECIMAL, "5"); /* an integer-valued float */
    expect(r, "f", TFS_SDK_DECIMAL, "1.005");
    expect(r, "t", TFS_SDK_TEXT, "-0.30000000000000004");
    cr_assert_eq(r->values[4].type, TFS_SDK_FLOAT64);
    cr_expect_eq(r->values[4].u.f, 0.1 + 0.2);
    tfs_lua_free(rt);
}

Test(lua_decimal, decimal_fields_get_no_exponent)
{
    write_script("function map(rec)\n"
                 "  return { out = { d = 1e20, e = -1.5e-7, f = -0.0, t = 1e20 } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    tfs_record *r = map_one(rt, src(NULL, NULL, NULL));
    expect(r, "d", TFS_SDK_DECIMAL, "100000000000000000000");
    expect(r, "e", TFS_SDK_DECIMAL, "-0.00000015");
    expect(r, "f", TFS_SDK_DECIMAL, "0");
    expect(r, "t", TFS_SDK_TEXT, "1e+20"); /* text keeps the short form */
    tfs_lua_free(rt);
}

/* Two source decimals of different value with one double: which one the script copied
 * cannot be known, so neither text is used. Of equal value, either text is right. */
Test(lua_decimal, ambiguous_double_gets_shortest_text)
{
    write_script("function map(rec)\n"
                 "  return { out = { d = rec.a, e = rec.b, f = rec.c } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    tfs_record *r = map_one(rt, src("12345678901234567.891", "12345678901234567.892",
                                    "7.50"));
    expect(r, "d", TFS_SDK_DECIMAL, "12345678901234568");
    expect(r, "e", TFS_SDK_DECIMAL, "12345678901234568");
    expect(r, "f", TFS_SDK_DECIMAL, "7.50");
    r = map_one(rt, src("0.25", "0.2500", NULL));
    expect(r, "d", TFS_SDK_DECIMAL, "0.25");
    expect(r, "e", TFS_SDK_DECIMAL, "0.25"); /* the same value as the first */
    tfs_lua_free(rt);
}

/* A decimal kept by the script from one record is a plain float in the next: its text
 * belonged to a record that is gone (the arena is reset in between). */
Test(lua_decimal, text_remembered_for_one_call_only)
{
    write_script("local kept\n"
                 "function map(rec)\n"
                 "  local prev = kept\n"
                 "  kept = rec.a\n"
                 "  return { out = { d = prev, e = rec.a } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    tfs_record *r = map_one(rt, src("12345678901234567.891", NULL, NULL));
    expect(r, "e", TFS_SDK_DECIMAL, "12345678901234567.891");
    tfs_arena_reset(arena);
    r = map_one(rt, src("1.25", NULL, NULL));
    expect(r, "d", TFS_SDK_DECIMAL, "12345678901234568");
    expect(r, "e", TFS_SDK_DECIMAL, "1.25");
    tfs_lua_free(rt);
}

/* Found by tests/fuzz/lua_fuzz.c: lua_stringtonumber reads to the first NUL, so a decimal's
 * text "1\0abc" reached the script as the number 1 (and left it a valid decimal). */
Test(lua_decimal, text_with_a_nul_is_no_number)
{
    write_script("function map(rec)\n"
                 "  assert(type(rec.a) == 'string', 'a string, not ' .. type(rec.a))\n"
                 "  return { out = { t = rec.a } }\n"
                 "end\n");
    tfs_lua *rt = new_rt();
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1};
    cr_assert_eq(tfs_record_set_text(r, 1, TFS_SDK_DECIMAL, "1\0abc", 5), 0);
    tfs_record *o = map_one(rt, r);
    cr_assert_eq(o->values[3].type, TFS_SDK_TEXT);
    cr_assert_eq(o->values[3].len, 5, "the whole text, NUL and all");
    tfs_lua_free(rt);
}
