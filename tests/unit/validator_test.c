/* tests/unit/validator_test.c — coercion to declared types and every reason reported. */
#include <criterion/criterion.h>
#include <string.h>

#include "validator.h"

static const tfs_sdk_field fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 10, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 8, 4},
    {"adrno", TFS_SDK_INT64, 0, 0, 0, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"pardat", fields, 6};

static tfs_arena *arena;
static void setup(void) { arena = tfs_arena_new(); }
static void teardown(void) { tfs_arena_free(arena); }
TestSuite(validator, .init = setup, .fini = teardown);

static tfs_record *rec(void)
{
    tfs_record *r = tfs_record_new(arena, &entity);
    tfs_record_set_text(r, 0, TFS_SDK_TEXT, "R123", 4);
    r->values[1] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 2026.0};
    r->values[2] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 1.23456};
    r->values[3] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 42};
    tfs_record_set_text(r, 4, TFS_SDK_TEXT, "2024-02-29", 10);
    tfs_record_set_text(r, 5, TFS_SDK_TEXT, "whatever", 8);
    return r;
}

Test(validator, coerces_lossless_values)
{
    tfs_record *r = rec();
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 0, "%s", json_dumps(reasons, 0));
    cr_assert_eq(r->values[1].type, TFS_SDK_INT64);
    cr_assert_eq(r->values[1].u.i, 2026);
    cr_assert_eq(r->values[2].type, TFS_SDK_DECIMAL);
    cr_assert_str_eq(r->values[2].u.s, "1.2346", "rounded to the scale");
    cr_assert_eq(r->values[4].type, TFS_SDK_DATE);
    cr_assert_eq(r->values[5].type, TFS_SDK_NULL, "bookkeeping is the target's");
    json_decref(reasons);
}

Test(validator, reports_every_problem)
{
    tfs_record *r = rec();
    tfs_record_set_text(r, 0, TFS_SDK_TEXT, "R12345678901", 12);
    r->values[1] = (tfs_value){.type = TFS_SDK_NULL};
    tfs_record_set_text(r, 2, TFS_SDK_TEXT, "12345.6", 7);
    r->values[3] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 1.5};
    tfs_record_set_text(r, 4, TFS_SDK_TEXT, "2023-02-29", 10);
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 5);
    char *all = json_dumps(reasons, 0);
    cr_assert(strstr(all, "pardat.parid: 12 characters, at most 10"), "%s", all);
    cr_assert(strstr(all, "pardat.taxyr: is required but null"), "%s", all);
    cr_assert(strstr(all, "pardat.acres: 12345.6 is out of range"), "%s", all);
    cr_assert(strstr(all, "pardat.adrno: expected an integer, got 1.5"), "%s", all);
    cr_assert(strstr(all, "pardat.deactivat: expected a date"), "%s", all);
    free(all);
    json_decref(reasons);
}

Test(validator, text_for_number_refused)
{
    tfs_record *r = rec();
    tfs_record_set_text(r, 3, TFS_SDK_TEXT, "12B", 3);
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 1);
    cr_assert(strstr(json_string_value(json_array_get(reasons, 0)), "\"12B\""));
    json_decref(reasons);
}

Test(validator, utf8_length_counts_characters)
{
    tfs_record *r = rec();
    const char *s = "\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91\xc3\x91"; /* 10 x Ñ */
    tfs_record_set_text(r, 0, TFS_SDK_TEXT, s, strlen(s));
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 0, "10 characters fit in 10");
    json_decref(reasons);
}
