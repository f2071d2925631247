/* tests/unit/decimal_test.c — rounding decimal text on its digits, half away from zero,
 * the way PostgreSQL numeric does, and the errors of text that is not a decimal or does
 * not fit its precision. The expected values are what PostgreSQL answers for
 * round('<text>'::numeric, <scale>) and '<text>'::numeric(<p>,<s>). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "decimal.h"

/* The rounded text, or "error: <message>" (static storage, one call at a time). */
static const char *rnd(const char *s, int precision, int scale)
{
    static char out[2048];
    tfs_error err = {0};
    int n = tfs_decimal_round(s, strlen(s), precision, scale, out, sizeof out, &err);
    if (n < 0) {
        cr_assert_neq(err.message[0], '\0', "an error without a message for \"%s\"", s);
        snprintf(out, sizeof out, "error: %s", err.message);
        return out;
    }
    cr_assert_eq((size_t)n, strlen(out), "the length returned for \"%s\" is not its length", s);
    return out;
}

#define ROUNDS(text, scale, want) \
    cr_expect_str_eq(rnd(text, 0, scale), want, "round(%s, %d)", text, scale)

Test(decimal, half_way_cases_round_away_from_zero)
{
    ROUNDS("0.125", 2, "0.13");
    ROUNDS("0.135", 2, "0.14");
    ROUNDS("1.005", 2, "1.01");
    ROUNDS("2.5", 0, "3");
    ROUNDS("-2.5", 0, "-3");
    ROUNDS("0.5", 0, "1");
    ROUNDS("1.5", 0, "2");
    ROUNDS("-0.125", 2, "-0.13");
    ROUNDS("-1.005", 2, "-1.01");
    ROUNDS("0.124999999999999999999", 2, "0.12");
    ROUNDS("0.12500000000000000001", 2, "0.13");
    ROUNDS("1.00005", 4, "1.0001");
}

Test(decimal, carries_reach_the_integer_digits)
{
    ROUNDS("9.995", 2, "10.00");
    ROUNDS("99.5", 0, "100");
    ROUNDS("-9.9999", 3, "-10.000");
    ROUNDS("0.0995", 3, "0.100");
    ROUNDS("0.995", 2, "1.00");
    ROUNDS("19.95", 1, "20.0");
    ROUNDS("1299.96", 1, "1300.0");
    ROUNDS("0.9", 0, "1");
    ROUNDS("0.4", 0, "0");
}

Test(decimal, long_values_keep_every_digit)
{
    ROUNDS("123456789012345678901234567890.123456789012345678905", 20,
           "123456789012345678901234567890.12345678901234567891");
    ROUNDS("123456789012345678901234567890", 0, "123456789012345678901234567890");
    ROUNDS("-999999999999999999999999999999.5", 0, "-1000000000000000000000000000000");
    ROUNDS("0.000000000000000000000000000001", 30, "0.000000000000000000000000000001");
    ROUNDS("0.000000000000000000000000000001", 29, "0.00000000000000000000000000000");
    ROUNDS("12345678901234567.89", 1, "12345678901234567.9");
}

Test(decimal, more_scale_than_digits_pads_with_zeros)
{
    ROUNDS("1.5", 3, "1.500");
    ROUNDS("12", 2, "12.00");
    ROUNDS("5.", 1, "5.0");
    ROUNDS(".5", 2, "0.50");
    ROUNDS("0.05", 2, "0.05");
    ROUNDS("7", 0, "7");
}

Test(decimal, signs_and_zeros_are_normalised)
{
    ROUNDS("-0", 0, "0");
    ROUNDS("-0.00", 2, "0.00");
    ROUNDS("-0.001", 2, "0.00");
    ROUNDS("-0.005", 2, "-0.01");
    ROUNDS("+7.25", 1, "7.3");
    ROUNDS("000123.4500", 2, "123.45");
    ROUNDS("0", 3, "0.000");
    ROUNDS("00.000", 0, "0");
}

Test(decimal, exponent_notation)
{
    ROUNDS("1.5e3", 0, "1500");
    ROUNDS("1.5E-3", 4, "0.0015");
    ROUNDS("2.5e-1", 0, "0");
    ROUNDS("5e-1", 0, "1");
    ROUNDS("1.23456e2", 2, "123.46");
    ROUNDS("-1.25e+0", 1, "-1.3");
    ROUNDS("1e-07", 8, "0.00000010");
    char want[400] = "1";
    memset(want + 1, '0', 300);
    want[301] = '\0';
    ROUNDS("1e+300", 0, want);
    cr_expect(strstr(rnd("1e1001", 0, 0), "exponent is out of range"), "%s", rnd("1e1001", 0, 0));
}

Test(decimal, negative_scales_round_to_tens_and_hundreds)
{
    ROUNDS("125", -1, "130");
    ROUNDS("-125", -1, "-130");
    ROUNDS("124.9", -1, "120");
    ROUNDS("1234.5", -2, "1200");
    ROUNDS("49", -2, "0");
    ROUNDS("50", -2, "100");
    ROUNDS("-950", -3, "-1000");
}

Test(decimal, precision_overflow_names_value_precision_and_scale)
{
    tfs_error err = {0};
    char out[64];
    int rc = tfs_decimal_round("12345.6", 7, 8, 4, out, sizeof out, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_expect_str_eq(err.message, "\"12345.6\" is out of range for numeric(8,4)");
    cr_expect(strstr(err.detail, "below 10^4"), "%s", err.detail);
    cr_expect_neq(err.hint[0], '\0');
    /* Rounding decides: 9999.99995 becomes 10000.0000, which numeric(8,4) cannot hold. */
    cr_expect(strstr(rnd("9999.99995", 8, 4), "out of range for numeric(8,4)"));
    cr_expect_str_eq(rnd("9999.99994", 8, 4), "9999.9999");
    cr_expect_str_eq(rnd("-9999.99994", 8, 4), "-9999.9999");
    cr_expect(strstr(rnd("-12345", 8, 4), "out of range"));
    cr_expect(strstr(rnd("0.995", 2, 2), "out of range for numeric(2,2)"));
    cr_expect_str_eq(rnd("0.994", 2, 2), "0.99");
    cr_expect_str_eq(rnd("0.000001", 2, 2), "0.00");
    cr_expect_str_eq(rnd("9949", 3, -1), "9950");
    cr_expect(strstr(rnd("99950", 3, -1), "out of range for numeric(3,-1)"));
    /* numeric(2,4): values below 0.01 */
    cr_expect_str_eq(rnd("0.0099", 2, 4), "0.0099");
    cr_expect(strstr(rnd("0.01", 2, 4), "out of range"));
    cr_expect_str_eq(rnd("123456789012345678901234567890", 0, 0),
                     "123456789012345678901234567890", "precision 0 is unbounded");
    cr_expect_str_eq(rnd("1e+30", 31, 0), "1000000000000000000000000000000");
}

Test(decimal, malformed_text_is_refused_with_the_text_quoted)
{
    static const char *const bad[] = {"", "-", "+", ".", "-.", "abc", "1.2.3", "1e", "1e+",
                                      "e5", " 1", "1 ", "0x10", "NaN", "Infinity", "1,5",
                                      "--1", "1-", "1.5e3.2", "١"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tfs_error err = {0};
        char out[64];
        int rc = tfs_decimal_round(bad[i], strlen(bad[i]), 0, 2, out, sizeof out, &err);
        cr_expect_eq(rc, TFS_EINVAL, "\"%s\" gave %d", bad[i], rc);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\" is not a decimal number", bad[i]);
        cr_expect(strstr(err.message, quoted), "\"%s\": %s", bad[i], err.message);
        cr_expect_neq(err.hint[0], '\0');
    }
    /* A long text is shown cut. */
    char longbad[200];
    memset(longbad, '7', sizeof longbad);
    longbad[150] = 'x';
    tfs_error err = {0};
    cr_assert_eq(tfs_decimal_round(longbad, sizeof longbad, 0, 0, NULL, 0, &err), TFS_EINVAL);
    cr_expect(strlen(err.message) < 120 && strstr(err.message, "...\" is not"), "%s",
              err.message);
    /* Text with a NUL inside is not a decimal either. */
    cr_expect_eq(tfs_decimal_round("1\0002", 3, 0, 0, NULL, 0, NULL), TFS_EINVAL);
}

Test(decimal, bad_scale_or_precision_and_long_text)
{
    char out[64];
    tfs_error err = {0};
    cr_expect_eq(tfs_decimal_round("1", 1, 0, 1001, out, sizeof out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "scale 1001 is out of range"), "%s", err.message);
    cr_expect_eq(tfs_decimal_round("1", 1, -1, 0, out, sizeof out, &err), TFS_EINVAL);
    cr_expect_eq(tfs_decimal_round("1", 1, 1001, 0, out, sizeof out, &err), TFS_EINVAL);
    cr_expect_eq(tfs_decimal_round("1", TFS_DECIMAL_MAX_TEXT + 1, 0, 0, out, sizeof out, &err),
                 TFS_ELIMIT);
}

Test(decimal, too_small_a_buffer_gives_the_length_needed)
{
    const char *s = "123456.125";
    char small[4] = "zzz";
    int n = tfs_decimal_round(s, strlen(s), 0, 2, small, sizeof small, NULL);
    cr_assert_eq(n, 9, "123456.13 is 9 bytes");
    cr_expect_eq(small[0], '\0', "nothing half-written");
    cr_assert_eq(tfs_decimal_round(s, strlen(s), 0, 2, NULL, 0, NULL), 9);
    char fit[10];
    cr_assert_eq(tfs_decimal_round(s, strlen(s), 0, 2, fit, sizeof fit, NULL), 9);
    cr_expect_str_eq(fit, "123456.13");
}

/* A float reaches a decimal field as its shortest text, then rounds on those digits: 1.005
 * is 1.00499999999999989... as a double, which %.2f makes 1.00, but its text is "1.005". */
static const char *from_double(double d, int scale)
{
    char text[40];
    cr_assert_geq(tfs_decimal_from_double(d, text, sizeof text), 0);
    return rnd(text, 0, scale);
}

Test(decimal, floats_round_on_their_shortest_text)
{
    cr_expect_str_eq(from_double(1.005, 2), "1.01");
    cr_expect_str_eq(from_double(0.125, 2), "0.13");
    cr_expect_str_eq(from_double(2.675, 2), "2.68");
    cr_expect_str_eq(from_double(0.1 + 0.2, 2), "0.30");
    cr_expect_str_eq(from_double(1e-7, 8), "0.00000010");
    cr_expect_str_eq(from_double(-2.5, 0), "-3");
    cr_expect_str_eq(from_double(1e22, 0), "10000000000000000000000");
    cr_expect_str_eq(from_double(-0.0, 2), "0.00");
}

/* Every value k/1000 for |k| <= 30000, rounded to 2 and 0 digits, against integer
 * arithmetic: half away from zero, sign kept only for a non-zero result. */
Test(decimal, agrees_with_integer_rounding_over_a_range)
{
    for (long k = -30000; k <= 30000; k++) {
        long a = k < 0 ? -k : k;
        char text[32], want2[32], want0[32];
        snprintf(text, sizeof text, "%s%ld.%03ld", k < 0 ? "-" : "", a / 1000, a % 1000);
        long c = (a + 5) / 10; /* hundredths, half away from zero */
        snprintf(want2, sizeof want2, "%s%ld.%02ld", k < 0 && c ? "-" : "", c / 100, c % 100);
        long u = (a + 500) / 1000;
        snprintf(want0, sizeof want0, "%s%ld", k < 0 && u ? "-" : "", u);
        cr_assert_str_eq(rnd(text, 0, 2), want2, "round(%s, 2)", text);
        cr_assert_str_eq(rnd(text, 0, 0), want0, "round(%s, 0)", text);
    }
}
