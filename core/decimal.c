/* core/decimal.c — exact decimal text; see decimal.h.
 *
 * Rounding works on the digits of the text as they are, without copying them: the digit
 * string is the integer digits followed by the fraction digits, its leading and trailing
 * zeros left out, and `pos` says how many of its digits stand before the point (negative
 * for 0.00ddd, beyond its length for 12e5). Rounding to a scale keeps pos + scale digits
 * and looks at the next one; a carry turns the last kept digit that is not 9 into the next
 * digit and drops the 9s after it (they become zeros), or, when every kept digit is 9,
 * the result is a single 1 one place further left.
 */
#include "decimal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tfs_decimal_from_double(double d, char *buf, size_t size)
{
    if (size < 32)
        return TFS_ELIMIT;
    if (!isfinite(d))
        return TFS_EINVAL;
    /* The shortest of %.1g..%.17g that reads back exactly; 17 digits always do. */
    for (int prec = 1; prec <= 17; prec++) {
        int n = snprintf(buf, size, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return n;
    }
    return TFS_EINVAL; /* not reached */
}

/* The digits of a parsed decimal text, read in place. */
typedef struct digits {
    const char *s;
    size_t int_at, n_int; /* the integer digits: s[int_at .. int_at + n_int) */
    size_t frac_at;       /* the fraction digits follow from here */
    size_t skip;          /* leading zeros of integer + fraction digits */
    long n;               /* significant digits after them, trailing zeros left out */
    long pos;             /* how many of those stand before the point */
    bool neg;
} digits;

/* Digit i (0-based, after the leading zeros) of the digit string; i < d->n. */
static char digit_at(const digits *d, long i)
{
    size_t r = d->skip + (size_t)i;
    return r < d->n_int ? d->s[d->int_at + r] : d->s[d->frac_at + (r - d->n_int)];
}

/* Digit i of a rounded result: the text's first rn digits, the last one replaced by
 * `last` when a carry changed it (0: not), then zeros. */
static char result_digit(const digits *d, long i, long rn, char last)
{
    if (i < 0 || i >= rn)
        return '0';
    return i == rn - 1 && last ? last : digit_at(d, i);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int bad_text(const char *s, size_t len, const char *why, tfs_error *err)
{
    int shown = len > 40 ? 40 : (int)len;
    tfs_error_set(err, TFS_EINVAL, "\"%.*s%s\" is not a decimal number%s%s", shown, s,
                  len > 40 ? "..." : "", why ? ": " : "", why ? why : "");
    tfs_error_hint(err, "write digits with an optional sign, point and exponent, such as "
                        "\"-12.50\" or \"1.5e3\"");
    return TFS_EINVAL;
}

static int parse(const char *s, size_t len, digits *d, tfs_error *err)
{
    memset(d, 0, sizeof *d);
    d->s = s;
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        d->neg = s[i++] == '-';
    d->int_at = i;
    while (i < len && is_digit(s[i]))
        i++;
    d->n_int = i - d->int_at;
    size_t n_frac = 0;
    d->frac_at = i;
    if (i < len && s[i] == '.') {
        d->frac_at = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        n_frac = i - d->frac_at;
    }
    if (d->n_int + n_frac == 0)
        return bad_text(s, len, NULL, err);
    long exp = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i == len || !is_digit(s[i]))
            return bad_text(s, len, "no digits in its exponent", err);
        for (; i < len && is_digit(s[i]); i++) {
            exp = exp * 10 + (s[i] - '0');
            if (exp > TFS_DECIMAL_MAX_EXPONENT)
                return bad_text(s, len, "its exponent is out of range", err);
        }
        if (eneg)
            exp = -exp;
    }
    if (i != len)
        return bad_text(s, len, NULL, err);
    size_t total = d->n_int + n_frac;
    d->n = (long)total;
    while (d->skip < total && digit_at(d, 0) == '0') /* digit_at(d, 0) is s[skip] */
        d->skip++, d->n--;
    while (d->n > 0 && digit_at(d, d->n - 1) == '0')
        d->n--;
    d->pos = (long)d->n_int - (long)d->skip + exp;
    return 0;
}

int tfs_decimal_round(const char *s, size_t len, int precision, int scale, char *out,
                      size_t size, tfs_error *err)
{
    if (scale < TFS_DECIMAL_MIN_SCALE || scale > TFS_DECIMAL_MAX_SCALE)
        return tfs_error_set(err, TFS_EINVAL, "scale %d is out of range for a decimal "
                             "(%d to %d)", scale, TFS_DECIMAL_MIN_SCALE,
                             TFS_DECIMAL_MAX_SCALE);
    if (precision < 0 || precision > TFS_DECIMAL_MAX_PRECISION)
        return tfs_error_set(err, TFS_EINVAL, "precision %d is out of range for a decimal "
                             "(0 to %d)", precision, TFS_DECIMAL_MAX_PRECISION);
    if (len > TFS_DECIMAL_MAX_TEXT)
        return tfs_error_set(err, TFS_ELIMIT, "decimal text of %zu bytes is longer than "
                             "the limit of %d", len, TFS_DECIMAL_MAX_TEXT);
    digits d;
    int rc = parse(s, len, &d, err);
    if (rc < 0)
        return rc;

    /* The result: its first rn digits are the text's, except that the last one is `last`
     * when a carry changed it; every digit after them is 0. */
    long keep = d.pos + scale; /* digits that stand before the rounding position */
    long rn = d.n, rpos = d.pos;
    char last = 0;
    if (keep < d.n) {
        bool up = keep >= 0 && digit_at(&d, keep) >= '5';
        rn = keep < 0 ? 0 : keep;
        if (up) {
            long j = keep - 1;
            while (j >= 0 && digit_at(&d, j) == '9')
                j--;
            if (j < 0) {
                rn = 1, last = '1', rpos = d.pos + 1; /* 9.995 -> 10.00 */
            } else {
                rn = j + 1, last = (char)(digit_at(&d, j) + 1);
            }
        }
    }
    bool zero = rn == 0;
    if (zero)
        rpos = 0;

    if (precision > 0 && !zero && rpos > (long)precision - scale) {
        int shown = len > 40 ? 40 : (int)len;
        tfs_error_set(err, TFS_EINVAL, "\"%.*s%s\" is out of range for numeric(%d,%d)", shown,
                      s, len > 40 ? "..." : "", precision, scale);
        tfs_error_detail(err, "a numeric(%d,%d) value must round to an absolute value below "
                              "10^%d", precision, scale, precision - scale);
        tfs_error_hint(err, "scale the value in the mapping or widen the target column");
        return TFS_EINVAL;
    }

    bool neg = d.neg && !zero;
    long n_int = rpos > 0 ? rpos : 1;
    long n_frac = scale > 0 ? scale : 0;
    long total = (neg ? 1 : 0) + n_int + (n_frac ? 1 + n_frac : 0);
    if ((size_t)total >= size) {
        if (size)
            out[0] = '\0';
        return (int)total;
    }
    char *o = out;
    if (neg)
        *o++ = '-';
    /* Result digit i stands rpos - i places before the point (after it when negative). */
    if (rpos <= 0)
        *o++ = '0';
    for (long i = 0; i < rpos; i++)
        *o++ = result_digit(&d, i, rn, last);
    if (n_frac) {
        *o++ = '.';
        for (long i = rpos; i < rpos + n_frac; i++)
            *o++ = result_digit(&d, i, rn, last);
    }
    *o = '\0';
    return (int)total;
}

size_t tfs_decimal_from_int64(int64_t v, char *buf)
{
    char tmp[TFS_DECIMAL_INT64_SIZE];
    /* The magnitude as unsigned, so INT64_MIN has one too. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}
