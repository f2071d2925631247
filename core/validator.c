/* core/validator.c — type coercion and schema checks of target records; see validator.h. */
#include "validator.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return json_array_append_new(reasons, json_string(full)) == 0 ? 1 : -1;
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* A plain decimal number: digits before and after the point counted. */
static int parse_decimal(const char *s, size_t len, int *int_digits, int *frac_digits)
{
    size_t i = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    size_t a = i;
    while (i < len && isdigit((unsigned char)s[i]))
        i++;
    *int_digits = (int)(i - a);
    *frac_digits = 0;
    if (i < len && s[i] == '.') {
        size_t b = ++i;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
        *frac_digits = (int)(i - b);
    }
    return i == len && (*int_digits + *frac_digits) > 0;
}

static int valid_date(const char *s, size_t len)
{
    int y, m, d;
    char tail;
    if (len != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return 0;
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

/* Significant integer digits of a decimal text, leading zeros left out. */
static int int_digits_of(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    while (*s == '0' && s[1] >= '0' && s[1] <= '9')
        s++;
    int n = 0;
    while (isdigit((unsigned char)*s++))
        n++;
    return n;
}

static int check_decimal(tfs_record *rec, size_t f, json_t *reasons)
{
    const tfs_sdk_field *fd = &rec->entity->fields[f];
    tfs_value *v = &rec->values[f];
    char tmp[64];
    if (v->type == TFS_SDK_INT64) {
        snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
        if (set_text(rec, f, TFS_SDK_DECIMAL, tmp) < 0)
            return -1;
    } else if (v->type == TFS_SDK_FLOAT64) {
        if (!isfinite(v->u.f))
            return add(reasons, rec, f, "expected a decimal, got %g", v->u.f);
        snprintf(tmp, sizeof tmp, "%.*f", fd->scale > 0 ? fd->scale : 0, v->u.f);
        if (set_text(rec, f, TFS_SDK_DECIMAL, tmp) < 0)
            return -1;
    } else if (v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DECIMAL) {
        int id, fdig;
        if (!parse_decimal(v->u.s, v->len, &id, &fdig))
            return add(reasons, rec, f, "expected a decimal number, got \"%.40s\"", v->u.s);
        if (fd->scale >= 0 && fdig > fd->scale) {
            /* Round to the declared scale as the target would, so hashes agree. */
            snprintf(tmp, sizeof tmp, "%.*f", fd->scale, strtod(v->u.s, NULL));
            if (set_text(rec, f, TFS_SDK_DECIMAL, tmp) < 0)
                return -1;
        } else {
            v->type = TFS_SDK_DECIMAL;
        }
    } else {
        return add(reasons, rec, f, "expected a decimal, got %s", tfs_type_name(v->type));
    }
    if (fd->precision > 0) {
        int id = int_digits_of(rec->values[f].u.s);
        if (id > fd->precision - fd->scale)
            return add(reasons, rec, f, "%s is out of range (at most %d digits before the point)",
                       rec->values[f].u.s, fd->precision - fd->scale);
    }
    return 0;
}

static int check_field(tfs_record *rec, size_t f, json_t *reasons)
{
    const tfs_sdk_field *fd = &rec->entity->fields[f];
    tfs_value *v = &rec->values[f];
    char tmp[64];
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
        if (v->type == TFS_SDK_INT64)
            return 0;
        if (v->type == TFS_SDK_FLOAT64 && v->u.f == trunc(v->u.f) && fabs(v->u.f) < 9.0e18) {
            *v = (tfs_value){.type = TFS_SDK_INT64, .u.i = (int64_t)v->u.f};
            return 0;
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
        if (v->type == TFS_SDK_FLOAT64)
            return add(reasons, rec, f, "expected an integer, got %g", v->u.f);
        return add(reasons, rec, f, "expected an integer, got %s", tfs_type_name(v->type));
    case TFS_SDK_FLOAT64:
        if (v->type == TFS_SDK_FLOAT64)
            return 0;
        if (v->type == TFS_SDK_INT64) {
            *v = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = (double)v->u.i};
            return 0;
        }
        return add(reasons, rec, f, "expected a number, got %s", tfs_type_name(v->type));
    case TFS_SDK_DECIMAL:
        return check_decimal(rec, f, reasons);
    case TFS_SDK_TEXT:
        if (v->type == TFS_SDK_INT64) {
            snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
            if (set_text(rec, f, TFS_SDK_TEXT, tmp) < 0)
                return -1;
        } else if (v->type == TFS_SDK_FLOAT64) {
            snprintf(tmp, sizeof tmp, "%.15g", v->u.f);
            if (set_text(rec, f, TFS_SDK_TEXT, tmp) < 0)
                return -1;
        } else if (tfs_type_is_text(v->type) && v->type != TFS_SDK_JSON) {
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
    case TFS_SDK_DATE:
        if ((v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DATE) && valid_date(v->u.s, v->len)) {
            v->type = TFS_SDK_DATE;
            return 0;
        }
        if (tfs_type_is_text(v->type))
            return add(reasons, rec, f, "expected a date YYYY-MM-DD, got \"%.40s\"", v->u.s);
        return add(reasons, rec, f, "expected a date, got %s", tfs_type_name(v->type));
    case TFS_SDK_TIMESTAMP:
        if ((v->type == TFS_SDK_TEXT || v->type == TFS_SDK_TIMESTAMP) && v->len >= 10 &&
            valid_date(v->u.s, 10) && (v->len == 10 || v->u.s[10] == ' ' || v->u.s[10] == 'T')) {
            v->type = TFS_SDK_TIMESTAMP;
            return 0;
        }
        return add(reasons, rec, f, "expected a timestamp YYYY-MM-DD HH:MM:SS");
    case TFS_SDK_JSON:
        if (v->type == TFS_SDK_JSON)
            return 0;
        if (v->type == TFS_SDK_TEXT) {
            json_t *j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
            if (!j)
                return add(reasons, rec, f, "expected JSON, got text that does not parse");
            json_decref(j);
            v->type = TFS_SDK_JSON;
            return 0;
        }
        return add(reasons, rec, f, "expected JSON, got %s", tfs_type_name(v->type));
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
