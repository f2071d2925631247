/* tests/unit/lua_json_test.c — a source field's JSON text as the script sees it: every
 * value kind, escapes and surrogate pairs, integers and reals, nesting, arrays marked (an
 * empty one stays an array on the way out), and malformed text refused with the field's name
 * and the reason, as jansson's decoder refuses it (invalid UTF-8, \u0000, lone surrogates,
 * integers past 64 bits, trailing text, nesting past the limit).
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

static char tdir[PATH_MAX];
static char script_path[PATH_MAX + 8];
static tfs_arena *arena;

static void setup(void)
{
    strcpy(tdir, "/tmp/tfs_lua_json_test_XXXXXX");
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

TestSuite(lua_json, .init = setup, .fini = teardown, .timeout = 60);

static const tfs_sdk_field src_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"doc", TFS_SDK_JSON, 0, 0, 0, 0},
};
static const tfs_sdk_entity src_entity = {"src", src_fields, 2};
static const tfs_sdk_field out_fields[] = {
    {"j", TFS_SDK_JSON, 0, 0, 0, 0},
    {"t", TFS_SDK_TEXT, 0, 0, 0, 0},
};
static const tfs_sdk_entity out_entity = {"out", out_fields, 2};
static const tfs_sdk_entity *const targets[] = {&out_entity};

static void write_script(const char *text)
{
    FILE *f = fopen(script_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static int map(tfs_lua *rt, const char *doc, tfs_lua_output *out, tfs_error *err)
{
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1};
    cr_assert_eq(tfs_record_set_text(r, 1, TFS_SDK_JSON, doc, strlen(doc)), 0);
    memset(err, 0, sizeof *err);
    return tfs_lua_map(rt, "s.lua", r, "1", targets, 1, arena, out, err);
}

static tfs_lua *new_rt(void)
{
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
    return rt;
}

/* The script checks what it got, and sends the document back out as JSON. */
Test(lua_json, values_arrive_as_lua_values)
{
    write_script(
        "local function check(got, want, what)\n"
        "  if got ~= want then\n"
        "    error(what .. ': got ' .. tostring(got) .. ', want ' .. tostring(want))\n"
        "  end\n"
        "end\n"
        "function map(rec)\n"
        "  local d = rec.doc\n"

        "  check(d.s, 'a\"b\\\\c/\\b\\f\\n\\r\\t', 'escapes')\n"
        "  check(d.u, '\\u{e9}\\u{20ac}\\u{1f600}', 'unicode escapes')\n"
        "  check(d.raw, 'caf\\u{e9} \\u{1f600}', 'raw utf-8')\n"
        "  check(math.type(d.i), 'integer', 'integer type')\n"
        "  check(d.i, -9223372036854775807 - 1, 'smallest integer')\n"
        "  check(d.big, 9223372036854775807, 'largest integer')\n"
        "  check(math.type(d.r), 'float', 'real type')\n"
        "  check(d.r, -1.5e-3, 'real')\n"
        "  check(math.type(d.z), 'float', '1.0 is a real')\n"
        "  check(d.t, true, 'true')\n"
        "  check(d.f, false, 'false')\n"
        "  check(d.n, tf.null, 'null')\n"
        "  check(tf.isarray(d.a), true, 'array marked')\n"
        "  check(#d.a, 3, 'array length')\n"
        "  check(d.a[3].k[1], 'deep', 'nested')\n"
        "  check(tf.isarray(d.e), true, 'empty array marked')\n"
        "  check(tf.isarray(d.o), false, 'object not marked')\n"
        "  check(d[''], 'empty key', 'empty key')\n"
        "  return { out = { j = d, t = d.s } }\n"
        "end\n");
    tfs_lua *rt = new_rt();
    tfs_lua_output out;
    tfs_error err;
    int rc = map(rt,
                 " {\"s\": \"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\", \"u\": \"\\u00e9\\u20AC\\ud83d\\ude00\","
                 " \"raw\": \"caf\xc3\xa9 \xf0\x9f\x98\x80\", \"i\": -9223372036854775808,"
                 " \"big\": 9223372036854775807, \"r\": -1.5E-3, \"z\": 1.0, \"t\": true,"
                 " \"f\": false, \"n\": null, \"a\": [1, \"two\", {\"k\": [\"deep\"]}],"
                 " \"e\": [ ], \"o\": {}, \"\": \"empty key\"}\n",
                 &out, &err);
    cr_assert_eq(rc, 0, "%s\n%s", err.message, err.detail);
    cr_assert_eq(out.n, 1);
    const tfs_value *j = &out.recs[0]->values[0];
    cr_assert_eq(j->type, TFS_SDK_JSON);
    cr_expect_str_eq(j->u.s,
                     "{\"\":\"empty key\",\"a\":[1,\"two\",{\"k\":[\"deep\"]}],"
                     "\"big\":9223372036854775807,\"e\":[],\"f\":false,"
                     "\"i\":-9223372036854775808,\"n\":null,\"o\":{},"
                     "\"r\":-0.0015,\"raw\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
                     "\"s\":\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\",\"t\":true,"
                     "\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"z\":1.0}");
    tfs_lua_free(rt);
    /* a scalar at the top is a value too (a new runtime: the script changed within the
     * second its file is not stat'ed again) */
    write_script("function map(rec) return { out = { t = rec.doc } } end\n");
    rt = new_rt();
    rc = map(rt, "\"just text\"", &out, &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_str_eq(out.recs[0]->values[1].u.s, "just text");
    tfs_lua_free(rt);
}

Test(lua_json, malformed_text_refused)
{
    write_script("function map(rec) return { out = { j = rec.doc } } end\n");
    tfs_lua *rt = new_rt();
    static const struct {
        const char *doc, *why;
    } cases[] = {
        {"", "a value expected"},
        {"{\"a\":1,}", "string or '}' expected"},
        {"[1 2]", "',' or ']' expected"},
        {"{\"a\" 1}", "':' expected"},
        {"{\"a\":1", "',' or '}' expected"},
        {"\"open", "unterminated string"},
        {"\"tab\there\"", "control character in a string"},
        {"\"\\x\"", "invalid escape"},
        {"\"\\u12\"", "invalid \\u escape"},
        {"\"\\u0000\"", "\\u0000 is not allowed"},
        {"\"\\ude00\"", "a lone low surrogate"},
        {"\"\\ud83d x\"", "a high surrogate without its pair"},
        {"\"\xc3\x28\"", "invalid UTF-8"},
        {"\"\xed\xa0\x80\"", "invalid UTF-8"}, /* an encoded surrogate */
        {"\"\xc0\xaf\"", "invalid UTF-8"},     /* overlong */
        {"01", "end of text expected"},
        {"-", "invalid number"},
        {"1.", "invalid number"},
        {"1e+", "invalid number"},
        {"9223372036854775808", "too big integer"},
        {"1e999", "real number overflow"},
        {"tru", "invalid token"},
        {"nul", "invalid token"},
        {"'a'", "invalid token"},
        {"[] []", "end of text expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tfs_lua_output out;
        tfs_error err;
        int rc = map(rt, cases[i].doc, &out, &err);
        cr_expect_eq(rc, TFS_EINVAL, "%s: rc %d", cases[i].doc, rc);
        cr_expect(strstr(err.message, "source field \"doc\" holds invalid JSON: ") &&
                      strstr(err.message, cases[i].why),
                  "%s: expected \"%s\", got: %s", cases[i].doc, cases[i].why, err.message);
    }
    /* nesting: 64 levels below the top value are allowed, 65 are not */
    char deep[200];
    tfs_lua_output out;
    tfs_error err;
    for (int levels = 64; levels <= 65; levels++) {
        memset(deep, '[', (size_t)levels + 1);
        memset(deep + levels + 1, ']', (size_t)levels + 1);
        deep[2 * (levels + 1)] = '\0';
        int rc = map(rt, deep, &out, &err);
        if (levels == 64) {
            cr_expect_eq(rc, 0, "%s", err.message);
        } else {
            cr_expect_eq(rc, TFS_EINVAL);
            cr_expect(strstr(err.message, "JSON nested deeper than 64 levels"), "%s",
                      err.message);
        }
    }
    tfs_lua_free(rt);
}
