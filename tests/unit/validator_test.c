/* tests/unit/validator_test.c — coercion to declared types and every reason reported. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decimal.h"
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
    cr_assert(strstr(all, "pardat.acres: \\\"12345.6\\\" is out of range for numeric(8,4)"), "%s",
              all);
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

/* The decimal text a value of acres (numeric(8,4)) becomes, or the reason it is refused. */
static const char *acres_of(tfs_value v)
{
    tfs_record *r = rec();
    r->values[2] = v;
    if (v.type == TFS_SDK_TEXT)
        tfs_record_set_text(r, 2, TFS_SDK_TEXT, v.u.s, strlen(v.u.s));
    json_t *reasons = json_array();
    int probs = tfs_validate_record(r, reasons);
    cr_assert_geq(probs, 0);
    static char out[256];
    if (probs) {
        snprintf(out, sizeof out, "%s", json_string_value(json_array_get(reasons, 0)));
    } else {
        cr_assert_eq(r->values[2].type, TFS_SDK_DECIMAL);
        cr_assert_eq(r->values[2].len, strlen(r->values[2].u.s));
        snprintf(out, sizeof out, "%s", r->values[2].u.s);
    }
    json_decref(reasons);
    return out;
}

#define TXT(x) ((tfs_value){.type = TFS_SDK_TEXT, .u.s = (x)})
#define FLT(x) ((tfs_value){.type = TFS_SDK_FLOAT64, .u.f = (x)})
#define INT(x) ((tfs_value){.type = TFS_SDK_INT64, .u.i = (x)})

Test(validator, decimals_round_on_their_digits_as_postgresql_does)
{
    /* numeric(8,4), as PostgreSQL stores them: half away from zero, on the digits. */
    cr_expect_str_eq(acres_of(TXT("0.00125")), "0.0013");
    cr_expect_str_eq(acres_of(TXT("-0.00125")), "-0.0013");
    cr_expect_str_eq(acres_of(TXT("1.00005")), "1.0001");
    cr_expect_str_eq(acres_of(TXT("9.99995")), "10.0000");
    cr_expect_str_eq(acres_of(TXT("1.5")), "1.5000");
    cr_expect_str_eq(acres_of(TXT("-0.00001")), "0.0000");
    cr_expect_str_eq(acres_of(TXT("1234.123456789012345678901234567890")), "1234.1235");
    cr_expect_str_eq(acres_of(TXT("2.5e-3")), "0.0025");
    /* 1.00105 is 1.0010499999999999... as a double: %.4f would say 1.0010. */
    cr_expect_str_eq(acres_of(FLT(1.00105)), "1.0011");
    cr_expect_str_eq(acres_of(FLT(1.00005)), "1.0001");
    cr_expect_str_eq(acres_of(FLT(0.1 + 0.2)), "0.3000");
    cr_expect_str_eq(acres_of(FLT(12.5)), "12.5000");
    cr_expect_str_eq(acres_of(INT(42)), "42.0000");
}

Test(validator, decimals_that_do_not_fit_or_parse_are_refused_clearly)
{
    cr_expect_str_eq(acres_of(TXT("9999.99995")),
                     "pardat.acres: \"9999.99995\" is out of range for numeric(8,4) (a "
                     "numeric(8,4) value must round to an absolute value below 10^4)");
    cr_expect_str_eq(acres_of(INT(10000)),
                     "pardat.acres: \"10000\" is out of range for numeric(8,4) (a "
                     "numeric(8,4) value must round to an absolute value below 10^4)");
    cr_expect_str_eq(acres_of(TXT("12,5")), "pardat.acres: \"12,5\" is not a decimal number");
    cr_expect_str_eq(acres_of(TXT("")), "pardat.acres: \"\" is not a decimal number");
    cr_expect_str_eq(acres_of(FLT(NAN)), "pardat.acres: expected a decimal, got nan");
    /* Bytes that are not UTF-8 are quoted as '?', not taken for running out of memory. */
    cr_expect_str_eq(acres_of(TXT("1\xff")), "pardat.acres: \"1?\" is not a decimal number");
}

Test(validator, long_decimal_results_are_kept_whole)
{
    static const tfs_sdk_field f1[] = {{"v", TFS_SDK_DECIMAL, 0, 0, 0, 2}};
    static const tfs_sdk_entity e1 = {"wide", f1, 1};
    char text[400];
    memset(text, '9', 300);
    strcpy(text + 300, ".995");
    tfs_record *r = tfs_record_new(arena, &e1);
    tfs_record_set_text(r, 0, TFS_SDK_TEXT, text, strlen(text));
    json_t *reasons = json_array();
    cr_assert_eq(tfs_validate_record(r, reasons), 0, "%s", json_dumps(reasons, 0));
    char want[400] = "1";
    memset(want + 1, '0', 300);
    strcpy(want + 301, ".00");
    cr_assert_str_eq(r->values[0].u.s, want);
    cr_assert_eq(r->values[0].len, 304);
    json_decref(reasons);
}

Test(validator, timestamps_and_dates_are_read_digit_by_digit)
{
    static const tfs_sdk_field f2[] = {{"seen", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
                                       {"day", TFS_SDK_DATE, 0, 0, 0, 0}};
    static const tfs_sdk_entity e2 = {"t", f2, 2};
    static const struct {
        const char *seen, *day;
        int problems;
    } cases[] = {
        {"2026-02-28 10:11:12.5", "2024-02-29", 0},
        {"2026-02-28T10:11:12", "2026-12-31", 0},
        {"2026-02-28", "2026-01-01", 0},
        {"2026-02-30 10:11:12", "2026-1-01", 2},
        {"2026-02-28X10:11:12", "+026-01-01", 2},
        {"2026-02-28 10:11:12", " 2026-1-1", 1},
        {"2026-02-28 10:11:12", "2026-01-0a", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tfs_record *r = tfs_record_new(arena, &e2);
        tfs_record_set_text(r, 0, TFS_SDK_TEXT, cases[i].seen, strlen(cases[i].seen));
        tfs_record_set_text(r, 1, TFS_SDK_TEXT, cases[i].day, strlen(cases[i].day));
        json_t *reasons = json_array();
        char *all;
        int n = tfs_validate_record(r, reasons);
        all = json_dumps(reasons, 0);
        cr_expect_eq(n, cases[i].problems, "%s / %s: %s", cases[i].seen, cases[i].day, all);
        free(all);
        json_decref(reasons);
    }
}

/* Text already in numeric(p,s)'s printed form is kept without rounding it again (the fast
 * path): on random decimal text and types, what the validator keeps or refuses is exactly
 * what tfs_decimal_round gives. */
Test(validator, kept_decimals_are_what_rounding_gives)
{
    static const char *const signs[] = {"", "", "-", "+"};
    uint64_t x = 88172645463325252u;
    for (int round = 0; round < 50000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t r = x;
        char text[64];
        size_t n = (size_t)snprintf(text, sizeof text, "%s", signs[r % 4]);
        r /= 4;
        for (size_t i = r % 5; i > 0; i--, r /= 3)
            text[n++] = (char)('0' + (r % 3 == 0 ? 0 : r % 10));
        r /= 5;
        if (r % 3) {
            text[n++] = '.';
            for (size_t i = r % 6; i > 0; i--, r /= 3)
                text[n++] = (char)('0' + (r % 3 == 0 ? 0 : r % 10));
        }
        r /= 3;
        text[n] = '\0';
        int scale = (int)(r % 6) - 1, precision = (int)(r / 6 % 8);
        tfs_sdk_field f[] = {{"v", TFS_SDK_DECIMAL, 0, 0, precision, scale}};
        tfs_sdk_entity e = {"t", f, 1};
        tfs_arena_reset(arena);
        tfs_record *rc = tfs_record_new(arena, &e);
        cr_assert_eq(tfs_record_set_text(rc, 0, TFS_SDK_DECIMAL, text, n), 0);
        json_t *reasons = json_array();
        int probs = tfs_validate_record(rc, reasons);
        json_decref(reasons);
        char want[256];
        int w = tfs_decimal_round(text, n, precision, scale, want, sizeof want, NULL);
        if (w < 0) {
            cr_assert_eq(probs, 1, "\"%s\" at (%d,%d) is refused by rounding, kept as \"%s\"",
                         text, precision, scale, rc->values[0].u.s);
            continue;
        }
        cr_assert_eq(probs, 0, "\"%s\" at (%d,%d) refused; rounding gives \"%s\"", text,
                     precision, scale, want);
        cr_assert_eq(rc->values[0].type, TFS_SDK_DECIMAL);
        cr_assert_str_eq(rc->values[0].u.s, want, "\"%s\" at (%d,%d)", text, precision, scale);
        cr_assert_eq(rc->values[0].len, (uint32_t)w);
    }
}
