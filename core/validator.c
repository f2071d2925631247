/* core/validator.c — type coercion and schema checks of target records; see validator.h. */
#include "validator.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decimal.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* overlong forms, surrogates and values past U+10FFFF */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
        (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

/* Replaces each byte that is not part of valid UTF-8 by '?': a reason quotes the value,
 * which may be any bytes or cut in the middle of a character, and JSON strings must be
 * UTF-8 (jansson refuses others, which would look like running out of memory). */
static void utf8_scrub(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq((const unsigned char *)s + i, n - i);
        if (len == 0) {
            s[i++] = '?';
        } else {
            i += len;
        }
    }
}

static int add(json_t *reasons, const tfs_record *rec, size_t f, const char *fmt, ...)
    TFS_SDK_PRINTF(4, 5);
static int add(json_t *reasons, const tfs_record *rec, size_t f, const char *fmt, ...)
{
    char msg[300], full[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s.%s: %s", rec->entity->name, rec->entity->fields[f].name,
             msg);
    utf8_scrub(full);
    return json_array_append_new(reasons, json_string(full)) == 0 ? 1 : -1;
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* s[0..len) is a date YYYY-MM-DD, digit by digit (no sign, no blanks). Only those 10 bytes
 * are read: a timestamp's date part is checked in place. */
static int valid_date(const char *s, size_t len)
{
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static int set_text(tfs_record *rec, size_t f, tfs_sdk_type type, const char *text)
{
    return tfs_record_set_text(rec, f, type, text, strlen(text));
}

/* Whether s is already what tfs_decimal_round gives for numeric(precision, scale): an
 * optional '-' before a value that is not zero, no leading zeros (one "0" before the point),
 * exactly scale digits after the point (none and no point at scale 0), within the
 * precision. Source decimals copied to a column of the same type are, and rounding them
 * again is most of a decimal's validation. */
static bool already_rounded(const char *s, size_t len, int precision, int scale)
{
    size_t i = 0, int_digits = 0;
    bool nonzero = false;
    if (scale < 0 || (precision > 0 && precision - scale < 1))
        return false;
    if (i < len && s[i] == '-')
        i++;
    size_t int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        nonzero |= s[i++] != '0';
    int_digits = i - int_start;
    if (int_digits == 0 || (int_digits > 1 && s[int_start] == '0'))
        return false;
    if (s[int_start] == '0')
        int_digits = 0; /* "0.25": no digit before the point counts */
    if (scale > 0) {
        if (i == len || s[i] != '.')
            return false;
        size_t f = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            nonzero |= s[i++] != '0';
        if (i - f != (size_t)scale)
            return false;
    }
    if (i != len || (s[0] == '-' && !nonzero))
        return false;
    return precision == 0 || int_digits <= (size_t)(precision - scale);
}

/* Rounds a decimal field's value to the field's scale on its digits (decimal.h) and
 * checks it against the precision. A Lua number is first written as its shortest
 * round-trip text, so 1.005 rounds as the text "1.005", not as the double below it. */
static int check_decimal(tfs_record *rec, size_t f, json_t *reasons)
{
    const tfs_sdk_field *fd = &rec->entity->fields[f];
    tfs_value *v = &rec->values[f];
    char num[64];
    const char *text;
    size_t len;
    if (v->type == TFS_SDK_INT64) {
        len = tfs_decimal_from_int64(v->u.i, num);
        text = num;
    } else if (v->type == TFS_SDK_FLOAT64) {
        int n = tfs_decimal_from_double(v->u.f, num, sizeof num);
        if (n < 0)
            return add(reasons, rec, f, "expected a decimal, got %g", v->u.f);
        text = num;
        len = (size_t)n;
    } else if (v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DECIMAL) {
        text = v->u.s;
        len = v->len;
    } else {
        return add(reasons, rec, f, "expected a decimal, got %s", tfs_type_name(v->type));
    }
    if (already_rounded(text, len, fd->precision, fd->scale)) {
        if (text != v->u.s)
            return tfs_record_set_text(rec, f, TFS_SDK_DECIMAL, text, len) < 0 ? -1 : 0;
        v->type = TFS_SDK_DECIMAL;
        return 0;
    }
    /* Most results fit here; a longer one is rounded again straight into the arena. */
    char small[128];
    tfs_error err = {0};
    int n = tfs_decimal_round(text, len, fd->precision, fd->scale, small, sizeof small, &err);
    if (n < 0) {
        if (err.detail[0])
            return add(reasons, rec, f, "%s (%s)", err.message, err.detail);
        return add(reasons, rec, f, "%s", err.message);
    }
    if ((size_t)n < sizeof small) {
        /* Text already rounded (the common case: a source decimal copied) stays where it
         * is, in the record's arena, instead of a second copy. */
        if (text == v->u.s && (size_t)n == len && memcmp(small, text, len) == 0) {
            v->type = TFS_SDK_DECIMAL;
            return 0;
        }
        return tfs_record_set_text(rec, f, TFS_SDK_DECIMAL, small, (size_t)n) < 0 ? -1 : 0;
    }
    char *big = tfs_arena_alloc(rec->arena, (size_t)n + 1);
    if (!big)
        return -1;
    tfs_decimal_round(text, len, fd->precision, fd->scale, big, (size_t)n + 1, NULL);
    *v = (tfs_value){.type = TFS_SDK_DECIMAL, .len = (uint32_t)n, .u.s = big};
    return 0;
}

static int check_int(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if (v->type == TFS_SDK_INT64)
        return 0;
    if (v->type == TFS_SDK_FLOAT64) {
        int64_t x;
        if (v->u.f == trunc(v->u.f) && tfs_value_to_int64(v, &x, NULL) == 0) {
            *v = (tfs_value){.type = TFS_SDK_INT64, .u.i = x};
            return 0;
        }
        return add(reasons, rec, f, "expected an integer, got %g", v->u.f);
    }
    if (v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DECIMAL) {
        char *end;
        errno = 0;
        long long x = strtoll(v->u.s, &end, 10);
        if (v->len && *end == '\0' && errno == 0) {
            *v = (tfs_value){.type = TFS_SDK_INT64, .u.i = x};
            return 0;
        }
        return add(reasons, rec, f, "expected an integer, got \"%.40s\"", v->u.s);
    }
    return add(reasons, rec, f, "expected an integer, got %s", tfs_type_name(v->type));
}

static int check_float(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if (v->type == TFS_SDK_FLOAT64)
        return 0;
    if (v->type == TFS_SDK_INT64) {
        *v = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = (double)v->u.i};
        return 0;
    }
    return add(reasons, rec, f, "expected a number, got %s", tfs_type_name(v->type));
}

static int check_text(tfs_record *rec, size_t f, json_t *reasons)
{
    const tfs_sdk_field *fd = &rec->entity->fields[f];
    tfs_value *v = &rec->values[f];
    char tmp[64];
    if (v->type == TFS_SDK_INT64) {
        tfs_decimal_from_int64(v->u.i, tmp);
        if (set_text(rec, f, TFS_SDK_TEXT, tmp) < 0)
            return -1;
    } else if (v->type == TFS_SDK_FLOAT64) {
        /* The shortest text that reads back as the same double, as the Lua runtime writes
         * floats (an infinity or a NaN has none: its C spelling, which says what it is). */
        if (tfs_decimal_from_double(v->u.f, tmp, sizeof tmp) < 0)
            snprintf(tmp, sizeof tmp, "%g", v->u.f);
        if (set_text(rec, f, TFS_SDK_TEXT, tmp) < 0)
            return -1;
    } else if (tfs_type_is_text(v->type) && !tfs_type_is_json(v->type) &&
               v->type != TFS_SDK_BYTES) {
        v->type = TFS_SDK_TEXT;
    } else {
        return add(reasons, rec, f, "expected text, got %s", tfs_type_name(v->type));
    }
    if (memchr(v->u.s, '\0', v->len))
        return add(reasons, rec, f, "text holds a NUL character");
    if (fd->max_length > 0) {
        size_t n = utf8_chars(v->u.s, v->len);
        if (n > (size_t)fd->max_length)
            return add(reasons, rec, f, "%zu characters, at most %d", n, fd->max_length);
    }
    return 0;
}

static int check_date(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if ((v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DATE) && valid_date(v->u.s, v->len)) {
        v->type = TFS_SDK_DATE;
        return 0;
    }
    if (tfs_type_is_text(v->type))
        return add(reasons, rec, f, "expected a date YYYY-MM-DD, got \"%.40s\"", v->u.s);
    return add(reasons, rec, f, "expected a date, got %s", tfs_type_name(v->type));
}

static int check_timestamp(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if ((v->type == TFS_SDK_TEXT || v->type == TFS_SDK_TIMESTAMP) && v->len >= 10 &&
        valid_date(v->u.s, 10) && (v->len == 10 || v->u.s[10] == ' ' || v->u.s[10] == 'T')) {
        v->type = TFS_SDK_TIMESTAMP;
        return 0;
    }
    return add(reasons, rec, f, "expected a timestamp YYYY-MM-DD HH:MM:SS");
}

static int check_json(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if (tfs_type_is_json(v->type)) {
        v->type = TFS_SDK_JSON;
        return 0;
    }
    if (v->type != TFS_SDK_TEXT)
        return add(reasons, rec, f, "expected JSON, got %s", tfs_type_name(v->type));
    /* jansson reports an allocation that failed as a syntax error. */
    unsigned long failed = tfs_alloc_failures();
    json_t *j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
    if (!j && tfs_alloc_failures() != failed)
        return -1;
    if (!j)
        return add(reasons, rec, f, "expected JSON, got text that does not parse");
    json_decref(j);
    v->type = TFS_SDK_JSON;
    return 0;
}

/* A GeoJSON geometry with its SRID (SDK 1.3): a script hands a table (JSON here) or text. */
static int check_geometry(tfs_record *rec, size_t f, json_t *reasons)
{
    tfs_value *v = &rec->values[f];
    if (v->type != TFS_SDK_GEOMETRY && v->type != TFS_SDK_JSON && v->type != TFS_SDK_TEXT)
        return add(reasons, rec, f, "expected a geometry, got %s", tfs_type_name(v->type));
    char why[160];
    int rc = tfs_geometry_check(v->u.s, v->len, NULL, why, sizeof why);
    if (rc == -2)
        return -1;
    if (rc)
        return add(reasons, rec, f, "%s", why);
    v->type = TFS_SDK_GEOMETRY;
    return 0;
}

static int check_field(tfs_record *rec, size_t f, json_t *reasons)
{
    const tfs_sdk_field *fd = &rec->entity->fields[f];
    tfs_value *v = &rec->values[f];
    if (fd->flags & TFS_SDK_FIELD_BOOKKEEPING) {
        *v = (tfs_value){.type = TFS_SDK_NULL};
        return 0;
    }
    if (v->type == TFS_SDK_NULL) {
        if (fd->flags & (TFS_SDK_FIELD_REQUIRED | TFS_SDK_FIELD_KEY))
            return add(reasons, rec, f, "is required but null");
        return 0;
    }
    switch (fd->type) {
    case TFS_SDK_BOOL:
        if (v->type != TFS_SDK_BOOL)
            return add(reasons, rec, f, "expected a boolean, got %s", tfs_type_name(v->type));
        return 0;
    case TFS_SDK_INT64:
        return check_int(rec, f, reasons);
    case TFS_SDK_FLOAT64:
        return check_float(rec, f, reasons);
    case TFS_SDK_DECIMAL:
        return check_decimal(rec, f, reasons);
    case TFS_SDK_TEXT:
        return check_text(rec, f, reasons);
    case TFS_SDK_DATE:
        return check_date(rec, f, reasons);
    case TFS_SDK_TIMESTAMP:
        return check_timestamp(rec, f, reasons);
    case TFS_SDK_JSON:
        return check_json(rec, f, reasons);
    case TFS_SDK_GEOMETRY:
        return check_geometry(rec, f, reasons);
    case TFS_SDK_BYTES:
        if (v->type != TFS_SDK_BYTES && v->type != TFS_SDK_TEXT)
            return add(reasons, rec, f, "expected bytes, got %s", tfs_type_name(v->type));
        v->type = TFS_SDK_BYTES;
        return 0;
    case TFS_SDK_NULL:
        break;
    }
    return 0;
}

int tfs_validate_record(tfs_record *rec, json_t *reasons)
{
    int problems = 0;
    for (size_t f = 0; f < rec->n; f++) {
        int r = check_field(rec, f, reasons);
        if (r < 0)
            return -1;
        problems += r;
    }
    return problems;
}
