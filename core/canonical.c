/* core/canonical.c — canonical encoding and content hashes; see canonical.h. */
#include "canonical.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decimal.h"

static inline int put_s(tfs_buf *out, const char *s)
{
    return tfs_buf_append_fast(out, s, strlen(s));
}

/* A tag, a length and ':' ("t12:"), as "%c%zu:" wrote them. */
static int put_tag_len(tfs_buf *out, char tag, size_t len)
{
    char tmp[2 + TFS_DECIMAL_INT64_SIZE];
    tmp[0] = tag;
    size_t n = 1;
    if (len > (size_t)INT64_MAX) { /* never: no value is that long */
        n += (size_t)snprintf(tmp + 1, sizeof tmp - 1, "%zu", len);
    } else {
        n += tfs_decimal_from_int64((int64_t)len, tmp + 1);
    }
    tmp[n++] = ':';
    return tfs_buf_append_fast(out, tmp, n);
}

/* A payload that has no length before it runs to the next ';', so one that holds a ';' (or
 * starts with the '?' that marks a length) gets "?<len>:" first: a text that is not a
 * decimal, date or timestamp must not be read as several values ("1;n2" then "3" is not
 * "1" then "2;n3"). Well-formed values never need it, so their encodings are as before. */
static bool needs_length(const char *s, size_t len)
{
    return (len > 0 && s[0] == '?') || memchr(s, ';', len) != NULL;
}

static int put_free(tfs_buf *out, const char *s, size_t len)
{
    if (needs_length(s, len))
        put_tag_len(out, '?', len);
    return tfs_buf_append_fast(out, s, len);
}

/* Normalises a plain decimal text: no sign for zero, no '+', no leading zeros, no trailing
 * fractional zeros, no trailing point. Text that is not a plain decimal is kept as is. */
static int put_decimal(tfs_buf *out, const char *s, size_t len)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    size_t int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t int_end = i, frac_start = i, frac_end = i;
    if (i < len && s[i] == '.') {
        frac_start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_end = i;
    }
    if (i != len || (int_end == int_start && frac_end == frac_start))
        return put_free(out, s, len); /* NaN, exponent form: keep */
    while (int_start < int_end && s[int_start] == '0')
        int_start++;
    while (frac_end > frac_start && s[frac_end - 1] == '0')
        frac_end--;
    if (int_start == int_end && frac_end == frac_start)
        return tfs_buf_putc_fast(out, '0');
    if (neg)
        tfs_buf_putc_fast(out, '-');
    if (int_start == int_end)
        tfs_buf_putc_fast(out, '0');
    else
        tfs_buf_append_fast(out, s + int_start, int_end - int_start);
    if (frac_end > frac_start) {
        tfs_buf_putc_fast(out, '.');
        tfs_buf_append_fast(out, s + frac_start, frac_end - frac_start);
    }
    return out->oom ? -1 : 0;
}

/* A number of a field that is not a decimal (or of no field): integral values as
 * integers, others with 17 significant digits. */
static int put_double(tfs_buf *out, double d)
{
    char tmp[64];
    if (!isfinite(d))
        return put_s(out, isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
    if (d == trunc(d) && fabs(d) < 9.2e18)
        tfs_decimal_from_int64((int64_t)d, tmp);
    else
        snprintf(tmp, sizeof tmp, "%.17g", d);
    return put_decimal(out, tmp, strlen(tmp));
}

/* A value of a decimal field as the target will hold it: rounded to the field's scale on
 * its digits (decimal.h), the same routine the validator uses, then normalised. Text that
 * is not a decimal is kept as is (the validator refuses it); the precision is the
 * validator's to check. */
/* Whether s is plain decimal text ([+-]digits[.digits], a digit at least) with at most
 * scale digits after the point: rounding it to scale only adds zeros, which put_decimal
 * takes off again, so it can be put as it is. Most values are (the validator rounded
 * them), and rounding is most of the cost of hashing a decimal. */
static bool within_scale(const char *s, size_t len, int scale)
{
    size_t i = 0, digits = 0;
    if (scale < 0)
        return false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i - f > (size_t)scale)
            return false;
        digits += i - f;
    }
    return i == len && digits > 0;
}

static int put_rounded(tfs_buf *out, const char *s, size_t len, int scale)
{
    char small[128];
    if (within_scale(s, len, scale))
        return put_decimal(out, s, len);
    int n = tfs_decimal_round(s, len, 0, scale, small, sizeof small, NULL);
    if (n < 0)
        return put_decimal(out, s, len);
    if ((size_t)n < sizeof small)
        return put_decimal(out, small, (size_t)n);
    char *big = tfs_malloc((size_t)n + 1);
    if (!big) {
        out->oom = true;
        return -1;
    }
    tfs_decimal_round(s, len, 0, scale, big, (size_t)n + 1, NULL);
    int rc = put_decimal(out, big, (size_t)n);
    tfs_free(big);
    return rc;
}

/* A number of a decimal field: an integer or a float as text first (a float as its
 * shortest round-trip text), then rounded. */
static int put_number_as_decimal(tfs_buf *out, const tfs_value *v, int scale)
{
    char tmp[64];
    int n;
    if (v->type == TFS_SDK_INT64) {
        n = (int)tfs_decimal_from_int64(v->u.i, tmp);
    } else {
        n = tfs_decimal_from_double(v->u.f, tmp, sizeof tmp);
        if (n < 0) /* NaN, infinity */
            return put_double(out, v->u.f);
    }
    return put_rounded(out, tmp, (size_t)n, scale);
}

/* Timestamps: trailing fractional zeros and a bare trailing '.' are not significant. */
static int put_timestamp(tfs_buf *out, const char *s, size_t len)
{
    const char *dot = memchr(s, '.', len);
    if (!dot)
        return put_free(out, s, len);
    size_t frac_start = (size_t)(dot - s) + 1, end = frac_start;
    while (end < len && s[end] >= '0' && s[end] <= '9')
        end++;
    size_t keep = end;
    while (keep > frac_start && s[keep - 1] == '0')
        keep--;
    size_t head = keep > frac_start ? keep : frac_start - 1;
    /* The text written is s[0..head) then s[end..len): it decides the length's need. */
    bool first_q = head ? s[0] == '?' : (end < len && s[end] == '?');
    if (first_q || memchr(s, ';', head) || memchr(s + end, ';', len - end))
        put_tag_len(out, '?', head + (len - end));
    tfs_buf_append_fast(out, s, head);
    return tfs_buf_append_fast(out, s + end, len - end);
}

int tfs_canonical_value(tfs_buf *out, const tfs_value *v, const tfs_sdk_field *field)
{
    char tmp[64];
    tfs_sdk_type want = field ? field->type : v->type;
    if (v->type == TFS_SDK_NULL)
        return tfs_buf_append_fast(out, "N;", 2);
    switch (want) {
    case TFS_SDK_BOOL:
        if (v->type == TFS_SDK_BOOL)
            return tfs_buf_append_fast(out, v->u.b ? "b1;" : "b0;", 3);
        break;
    case TFS_SDK_INT64:
    case TFS_SDK_FLOAT64:
    case TFS_SDK_DECIMAL:
        /* Numbers compare by value, whatever their representation. */
        tfs_buf_putc_fast(out, 'n');
        if (want == TFS_SDK_DECIMAL && field &&
            (v->type == TFS_SDK_INT64 || v->type == TFS_SDK_FLOAT64)) {
            put_number_as_decimal(out, v, field->scale);
        } else if (want == TFS_SDK_DECIMAL && field &&
                   (v->type == TFS_SDK_DECIMAL || v->type == TFS_SDK_TEXT)) {
            put_rounded(out, v->u.s, v->len, field->scale);
        } else if (v->type == TFS_SDK_INT64) {
            tfs_buf_append_fast(out, tmp, tfs_decimal_from_int64(v->u.i, tmp));
        } else if (v->type == TFS_SDK_FLOAT64) {
            put_double(out, v->u.f);
        } else if (v->type == TFS_SDK_DECIMAL || v->type == TFS_SDK_TEXT) {
            put_decimal(out, v->u.s, v->len);
        } else {
            break;
        }
        tfs_buf_putc_fast(out, ';');
        return out->oom ? -1 : 0;
    case TFS_SDK_TEXT: {
        if (!tfs_type_is_text(v->type))
            break;
        size_t len = v->len;
        while (len > 0 && v->u.s[len - 1] == ' ')
            len--;
        put_tag_len(out, 't', len);
        tfs_buf_append_fast(out, v->u.s, len);
        return tfs_buf_putc_fast(out, ';');
    }
    case TFS_SDK_DATE:
        if (!tfs_type_is_text(v->type))
            break;
        tfs_buf_putc_fast(out, 'D');
        put_free(out, v->u.s, v->len < 10 ? v->len : 10);
        return tfs_buf_putc_fast(out, ';');
    case TFS_SDK_TIMESTAMP:
        if (!tfs_type_is_text(v->type))
            break;
        tfs_buf_putc_fast(out, 'T');
        put_timestamp(out, v->u.s, v->len);
        return tfs_buf_putc_fast(out, ';');
    case TFS_SDK_JSON:
    case TFS_SDK_GEOMETRY: /* the same encoding: a GeoJSON text */
        if (!tfs_type_is_text(v->type))
            break;
        put_tag_len(out, 'j', (unsigned)v->len);
        tfs_buf_append_fast(out, v->u.s, v->len);
        return tfs_buf_putc_fast(out, ';');
    case TFS_SDK_BYTES: /* byte for byte, trailing spaces kept (SDK 1.3) */
        if (!tfs_type_is_text(v->type))
            break;
        put_tag_len(out, 'x', (unsigned)v->len);
        tfs_buf_append_fast(out, v->u.s, v->len);
        return tfs_buf_putc_fast(out, ';');
    case TFS_SDK_NULL:
        break;
    }
    /* A value of another type than declared: encode it by its own type, tagged, so it
     * never collides with a well-typed value. */
    snprintf(tmp, sizeof tmp, "?%d:", (int)v->type);
    tfs_buf_puts(out, tmp);
    if (tfs_type_is_text(v->type))
        put_free(out, v->u.s, v->len);
    else if (v->type == TFS_SDK_INT64)
        tfs_buf_printf(out, "%" PRId64, v->u.i);
    else if (v->type == TFS_SDK_FLOAT64)
        tfs_buf_printf(out, "%.17g", v->u.f);
    else if (v->type == TFS_SDK_BOOL)
        tfs_buf_putc(out, v->u.b ? '1' : '0');
    return tfs_buf_putc(out, ';');
}

int tfs_canonical_record(tfs_buf *out, const tfs_record *rec)
{
    put_s(out, rec->entity->name);
    tfs_buf_putc_fast(out, '{');
    for (size_t i = 0; i < rec->n; i++) {
        const tfs_sdk_field *f = &rec->entity->fields[i];
        if (f->flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        tfs_canonical_value(out, &rec->values[i], f);
    }
    tfs_buf_putc_fast(out, '}');
    return out->oom ? -1 : 0;
}

uint64_t tfs_hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

int tfs_canonical_hash(tfs_buf *scratch, const tfs_record *const *recs, size_t n,
                       uint64_t *hash, tfs_error *err)
{
    *hash = 0;
    tfs_buf_reset(scratch);
    int rc = tfs_buf_puts(scratch, TFS_CANONICAL_VERSION);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tfs_canonical_record(scratch, recs[i]);
    if (rc < 0 || scratch->oom)
        return tfs_error_set(err, TFS_ENOMEM, "could not hash %s records: out of memory",
                             n ? recs[0]->entity->name : "no");
    *hash = tfs_hash_bytes(TFS_HASH_SEED, scratch->data, scratch->len);
    return 0;
}

uint64_t tfs_hash_records(tfs_buf *scratch, const tfs_record *const *recs, size_t n)
{
    uint64_t h;
    return tfs_canonical_hash(scratch, recs, n, &h, NULL) == 0 ? h : 0;
}

void tfs_hash_hex(uint64_t h, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 15];
    out[16] = '\0';
}
