/* tests/unit/bytes_test.c — TFS_SDK_BYTES (SDK 1.3) through the core, every way it goes:
 * shown as base64 text in a record's JSON (tfs_record_to_json, the text appender the sync
 * map, audit and dead letters use), read back from that JSON byte for byte, bad base64
 * refused with the field and the reason, audit diffs showing base64, and a Lua script
 * getting the bytes as a string and returning them into a BYTES field unchanged. The
 * values hold NUL bytes and invalid UTF-8, which no JSON string could carry raw.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "audit_diff.h"
#include "buf.h"
#include "canonical.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"
#include "validator.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"blob", TFS_SDK_BYTES, 0, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"doc", fields, 2};

/* "a", NUL, "b", 0xff 0xfe (not UTF-8): "YQBi//4=" in base64. */
static const char raw[] = {'a', '\0', 'b', (char)0xff, (char)0xfe};
#define RAW_B64 "YQBi//4="

static tfs_arena *arena;

static void setup(void)
{
    cr_assert_not_null(arena = tfs_arena_new());
}

static void teardown(void)
{
    tfs_arena_free(arena);
}

TestSuite(bytes, .init = setup, .fini = teardown, .timeout = 60);

static tfs_record *doc(const char *bytes, size_t len)
{
    tfs_record *r = tfs_record_new(arena, &entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 7};
    cr_assert_eq(tfs_record_set_text(r, 1, TFS_SDK_BYTES, bytes, len), 0);
    return r;
}

Test(bytes, json_shows_base64)
{
    tfs_record *r = doc(raw, sizeof raw);
    json_t *j = tfs_record_to_json(r);
    cr_assert_not_null(j, "bytes that are not UTF-8 must still become JSON");
    cr_expect_str_eq(json_string_value(json_object_get(j, "blob")), RAW_B64);
    json_decref(j);

    tfs_buf b = {0};
    cr_assert_eq(tfs_record_json_append(&b, r), 0);
    cr_expect_str_eq(tfs_buf_str(&b), "{\"id\":7,\"blob\":\"" RAW_B64 "\"}");
    tfs_buf_free(&b);

    /* Padding of each length, and nothing for no bytes. */
    const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {{"", 0, ""}, {"f", 1, "Zg=="}, {"fo", 2, "Zm8="}, {"foo", 3, "Zm9v"},
                 {"foob", 4, "Zm9vYg=="}, {"\0", 1, "AA=="}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        j = tfs_record_to_json(doc(cases[i].in, cases[i].len));
        cr_expect_str_eq(json_string_value(json_object_get(j, "blob")), cases[i].out);
        json_decref(j);
    }
}

/* The appender encodes in chunks; a value longer than one chunk must read as one base64
 * text, the same as jansson's object gives. */
Test(bytes, long_values_encode_the_same_both_ways)
{
    char big[2000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    tfs_record *r = doc(big, sizeof big);
    json_t *j = tfs_record_to_json(r);
    tfs_buf b = {0};
    cr_assert_eq(tfs_value_json_append(&b, &r->values[1]), 0);
    const char *text = json_string_value(json_object_get(j, "blob"));
    char *want = malloc(strlen(text) + 3);
    cr_assert_not_null(want);
    sprintf(want, "\"%s\"", text);
    cr_expect_str_eq(tfs_buf_str(&b), want);
    cr_expect_eq(strlen(want), 2 + (sizeof big + 2) / 3 * 4);
    free(want);
    tfs_buf_free(&b);

    /* And back, byte for byte. */
    tfs_record *back;
    tfs_error err = {0};
    cr_assert_eq(tfs_record_from_json_checked(arena, &entity, j, &back, &err), 0, "%s",
                 err.message);
    cr_assert_eq(back->values[1].type, TFS_SDK_BYTES);
    cr_assert_eq(back->values[1].len, sizeof big);
    cr_expect_eq(memcmp(back->values[1].u.s, big, sizeof big), 0);
    json_decref(j);
}

Test(bytes, json_reads_back_byte_for_byte)
{
    json_t *j = tfs_record_to_json(doc(raw, sizeof raw));
    tfs_record *back = tfs_record_from_json(arena, &entity, j);
    cr_assert_not_null(back);
    cr_assert_eq(back->values[1].type, TFS_SDK_BYTES);
    cr_assert_eq(back->values[1].len, sizeof raw);
    cr_expect_eq(memcmp(back->values[1].u.s, raw, sizeof raw), 0, "NUL and 0xff kept");
    /* The same canonical hash as the record it came from: a stored record compares equal. */
    tfs_buf scratch = {0};
    uint64_t h1, h2;
    tfs_error err = {0};
    const tfs_record *a[] = {doc(raw, sizeof raw)}, *b[] = {back};
    cr_assert_eq(tfs_canonical_hash(&scratch, a, 1, &h1, &err), 0);
    cr_assert_eq(tfs_canonical_hash(&scratch, b, 1, &h2, &err), 0);
    cr_expect_eq(h1, h2);
    tfs_buf_free(&scratch);
    json_decref(j);
}

Test(bytes, bad_base64_is_refused_with_the_reason)
{
    const struct {
        const char *text, *why;
    } bad[] = {
        {"YQ!i", "'!' at offset 2"},
        {"YQB", "length 3 is not a multiple of 4"},
        {"Y=Bi", "'=' at offset 1"},
        {"YQ==YQ==", "'=' at offset 2"},
        {"YQBi\n//4=", "length 9"},
        {"YQ\xc3\xa9", "byte 0xc3 at offset 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = json_pack("{siss}", "id", 1, "blob", bad[i].text);
        cr_assert_not_null(j);
        tfs_record *r = NULL;
        tfs_error err = {0};
        cr_expect_eq(tfs_record_from_json_checked(arena, &entity, j, &r, &err), TFS_EINVAL,
                     "\"%s\" was accepted", bad[i].text);
        cr_expect_null(r);
        cr_expect(strstr(err.message, "field \"blob\" (bytes): not base64"), "%s",
                  err.message);
        cr_expect(strstr(err.message, bad[i].why), "\"%s\": %s", bad[i].text, err.message);
        cr_expect(strstr(err.hint, "base64"), "%s", err.hint);
        json_decref(j);
    }
}

/* An audit entry names a changed BYTES field with base64 before and after. */
Test(bytes, audit_diff_shows_base64)
{
    tfs_record *now = doc(raw, sizeof raw);
    const tfs_record *recs[] = {now};
    tfs_audit_subject s = {.recs = recs, .n = 1,
                           .old = "{\"doc\": [{\"id\": 7, \"blob\": \"Zm9v\"}]}"};
    tfs_buf scratch = {0};
    const char *changes = tfs_audit_diff_changes(&s, &scratch, arena);
    cr_assert_not_null(changes);
    json_t *j = json_loads(changes, 0, NULL);
    cr_assert_not_null(j, "%s", changes);
    json_t *blob = json_object_get(json_object_get(j, "doc"), "blob");
    cr_expect_str_eq(json_string_value(json_object_get(blob, "before")), "Zm9v", "%s", changes);
    cr_expect_str_eq(json_string_value(json_object_get(blob, "after")), RAW_B64, "%s", changes);
    json_decref(j);
    tfs_buf_free(&scratch);
}

/* ---- Lua ---- */

static char tdir[PATH_MAX];

static tfs_lua *rt_with(const char *script)
{
    strcpy(tdir, "/tmp/tfs_bytes_test_XXXXXX");
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

Test(bytes, lua_gets_a_string_and_returns_it_byte_for_byte)
{
    /* The script sees 5 bytes, NUL second, and builds a new value from them: the source's
     * bytes reversed, made in Lua with string.char (NUL and 0xff included). */
    tfs_lua *rt = rt_with(
        "function map(rec)\n"
        "  assert(type(rec.blob) == 'string', 'a string: ' .. type(rec.blob))\n"
        "  assert(#rec.blob == 5, 'five bytes: ' .. #rec.blob)\n"
        "  assert(rec.blob:byte(2) == 0 and rec.blob:byte(4) == 255, 'NUL and 0xff')\n"
        "  return { doc = { { id = rec.id, blob = rec.blob },\n"
        "                   { id = rec.id + 1, blob = rec.blob:reverse() .. string.char(0) } } }\n"
        "end\n");
    const tfs_sdk_entity *targets[] = {&entity};
    tfs_lua_output out;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_map(rt, "s.lua", doc(raw, sizeof raw), "7", targets, 1, arena, &out,
                             &err),
                 0, "%s", err.message);
    cr_assert_eq(out.n, 2);
    json_t *reasons = json_array();
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(tfs_validate_record(out.recs[i], reasons), 0, "%s",
                     json_dumps(reasons, 0));
    json_decref(reasons);
    const tfs_value *v = &out.recs[0]->values[1];
    cr_assert_eq(v->type, TFS_SDK_BYTES);
    cr_assert_eq(v->len, sizeof raw);
    cr_expect_eq(memcmp(v->u.s, raw, sizeof raw), 0);
    const char reversed[] = {(char)0xfe, (char)0xff, 'b', '\0', 'a', '\0'};
    v = &out.recs[1]->values[1];
    cr_assert_eq(v->type, TFS_SDK_BYTES);
    cr_assert_eq(v->len, sizeof reversed);
    cr_expect_eq(memcmp(v->u.s, reversed, sizeof reversed), 0);
    rt_done(rt);
}

/* The validator: a BYTES field takes bytes and text (a Lua string arrives as text), and
 * refuses other types with the reason. */
Test(bytes, validator_types_a_bytes_field)
{
    tfs_record *r = doc(raw, sizeof raw);
    r->values[1].type = TFS_SDK_TEXT; /* as a script's string arrives */
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 0);
    cr_expect_eq(r->values[1].type, TFS_SDK_BYTES);
    cr_expect_eq(r->values[1].len, sizeof raw, "NUL kept: no text check on bytes");
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 3};
    cr_assert_eq(tfs_validate_record(r, reasons), 1);
    cr_expect(strstr(json_string_value(json_array_get(reasons, 0)), "expected bytes, got int64"),
              "%s", json_string_value(json_array_get(reasons, 0)));
    json_decref(reasons);
}
