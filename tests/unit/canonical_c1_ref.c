/* tests/unit/canonical_c1_ref.c — the canonical encoding "c1" and the record text helpers as
 * they were before their fast paths (snprintf and tfs_buf for every piece), kept frozen so
 * that canonical_bytes_test.c can prove the fast code writes the very same bytes: stored
 * sync maps hold hashes of these bytes, and one changed byte would make every record look
 * changed. Included by that test, every function static and renamed ref_*; never built alone.
 */
#include "canonical.h"

#include <jansson.h>

#include "buf.h"
#include "record.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decimal.h"

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
        tfs_buf_printf(out, "?%zu:", len);
    return tfs_buf_append(out, s, len);
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
        return tfs_buf_putc(out, '0');
    if (neg)
        tfs_buf_putc(out, '-');
    if (int_start == int_end)
        tfs_buf_putc(out, '0');
    else
        tfs_buf_append(out, s + int_start, int_end - int_start);
    if (frac_end > frac_start) {
        tfs_buf_putc(out, '.');
        tfs_buf_append(out, s + frac_start, frac_end - frac_start);
    }
    return out->oom ? -1 : 0;
}

/* A number of a field that is not a decimal (or of no field): integral values as
 * integers, others with 17 significant digits. */
static int put_double(tfs_buf *out, double d)
{
    char tmp[64];
    if (!isfinite(d))
        return tfs_buf_puts(out, isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
    if (d == trunc(d) && fabs(d) < 9.2e18)
        snprintf(tmp, sizeof tmp, "%" PRId64, (int64_t)d);
    else
        snprintf(tmp, sizeof tmp, "%.17g", d);
    return put_decimal(out, tmp, strlen(tmp));
}

/* A value of a decimal field as the target will hold it: rounded to the field's scale on
 * its digits (decimal.h), the same routine the validator uses, then normalised. Text that
 * is not a decimal is kept as is (the validator refuses it); the precision is the
 * validator's to check. */
static int put_rounded(tfs_buf *out, const char *s, size_t len, int scale)
{
    char small[128];
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
        n = snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
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
        tfs_buf_printf(out, "?%zu:", head + (len - end));
    tfs_buf_append(out, s, head);
    return tfs_buf_append(out, s + end, len - end);
}

static int ref_canonical_value(tfs_buf *out, const tfs_value *v, const tfs_sdk_field *field)
{
    char tmp[64];
    tfs_sdk_type want = field ? field->type : v->type;
    if (v->type == TFS_SDK_NULL)
        return tfs_buf_append(out, "N;", 2);
    switch (want) {
    case TFS_SDK_BOOL:
        if (v->type == TFS_SDK_BOOL)
            return tfs_buf_puts(out, v->u.b ? "b1;" : "b0;");
        break;
    case TFS_SDK_INT64:
    case TFS_SDK_FLOAT64:
    case TFS_SDK_DECIMAL:
        /* Numbers compare by value, whatever their representation. */
        tfs_buf_putc(out, 'n');
        if (want == TFS_SDK_DECIMAL && field &&
            (v->type == TFS_SDK_INT64 || v->type == TFS_SDK_FLOAT64)) {
            put_number_as_decimal(out, v, field->scale);
        } else if (want == TFS_SDK_DECIMAL && field &&
                   (v->type == TFS_SDK_DECIMAL || v->type == TFS_SDK_TEXT)) {
            put_rounded(out, v->u.s, v->len, field->scale);
        } else if (v->type == TFS_SDK_INT64) {
            snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i);
            tfs_buf_puts(out, tmp);
        } else if (v->type == TFS_SDK_FLOAT64) {
            put_double(out, v->u.f);
        } else if (v->type == TFS_SDK_DECIMAL || v->type == TFS_SDK_TEXT) {
            put_decimal(out, v->u.s, v->len);
        } else {
            break;
        }
        tfs_buf_putc(out, ';');
        return out->oom ? -1 : 0;
    case TFS_SDK_TEXT: {
        if (!tfs_type_is_text(v->type))
            break;
        size_t len = v->len;
        while (len > 0 && v->u.s[len - 1] == ' ')
            len--;
        snprintf(tmp, sizeof tmp, "t%zu:", len);
        tfs_buf_puts(out, tmp);
        tfs_buf_append(out, v->u.s, len);
        return tfs_buf_putc(out, ';');
    }
    case TFS_SDK_DATE:
        if (!tfs_type_is_text(v->type))
            break;
        tfs_buf_putc(out, 'D');
        put_free(out, v->u.s, v->len < 10 ? v->len : 10);
        return tfs_buf_putc(out, ';');
    case TFS_SDK_TIMESTAMP:
        if (!tfs_type_is_text(v->type))
            break;
        tfs_buf_putc(out, 'T');
        put_timestamp(out, v->u.s, v->len);
        return tfs_buf_putc(out, ';');
    case TFS_SDK_JSON:
    case TFS_SDK_GEOMETRY: /* the same encoding: a GeoJSON text */
        if (!tfs_type_is_text(v->type))
            break;
        snprintf(tmp, sizeof tmp, "j%u:", (unsigned)v->len);
        tfs_buf_puts(out, tmp);
        tfs_buf_append(out, v->u.s, v->len);
        return tfs_buf_putc(out, ';');
    case TFS_SDK_BYTES: /* byte for byte, trailing spaces kept (SDK 1.3) */
        if (!tfs_type_is_text(v->type))
            break;
        snprintf(tmp, sizeof tmp, "x%u:", (unsigned)v->len);
        tfs_buf_puts(out, tmp);
        tfs_buf_append(out, v->u.s, v->len);
        return tfs_buf_putc(out, ';');
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

static int ref_canonical_record(tfs_buf *out, const tfs_record *rec)
{
    tfs_buf_puts(out, rec->entity->name);
    tfs_buf_putc(out, '{');
    for (size_t i = 0; i < rec->n; i++) {
        const tfs_sdk_field *f = &rec->entity->fields[i];
        if (f->flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        ref_canonical_value(out, &rec->values[i], f);
    }
    tfs_buf_putc(out, '}');
    return out->oom ? -1 : 0;
}

static uint64_t ref_hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static int ref_canonical_hash(tfs_buf *scratch, const tfs_record *const *recs, size_t n,
                       uint64_t *hash, tfs_error *err)
{
    *hash = 0;
    tfs_buf_reset(scratch);
    int rc = tfs_buf_puts(scratch, TFS_CANONICAL_VERSION);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ref_canonical_record(scratch, recs[i]);
    if (rc < 0 || scratch->oom)
        return tfs_error_set(err, TFS_ENOMEM, "could not hash %s records: out of memory",
                             n ? recs[0]->entity->name : "no");
    *hash = ref_hash_bytes(TFS_HASH_SEED, scratch->data, scratch->len);
    return 0;
}


static void ref_hash_hex(uint64_t h, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, h);
}

/* ---- core/record.c: record keys and JSON text, as they were ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes (a multiple of 3, or the last group) into out, 4 characters per 3 bytes;
 * returns the characters written. */
static size_t b64_encode(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    return o;
}


static const char *key_text(const tfs_value *v, char tmp[64], size_t *len)
{
    switch (v->type) {
    case TFS_SDK_INT64: *len = (size_t)snprintf(tmp, 64, "%" PRId64, v->u.i); return tmp;
    case TFS_SDK_FLOAT64: *len = (size_t)snprintf(tmp, 64, "%.17g", v->u.f); return tmp;
    case TFS_SDK_BOOL: *len = 1; return v->u.b ? "t" : "f";
    case TFS_SDK_NULL: *len = 2; return "\\N";
    default: *len = v->len; return v->u.s;
    }
}

static char *ref_record_key(tfs_arena *a, const tfs_record *rec)
{
    /* Two passes, measuring then writing, so the key goes straight into the arena: this
     * runs for every record of every batch. */
    char tmp[64];
    size_t need = 1;
    for (size_t i = 0; i < rec->n; i++) {
        if (!(rec->entity->fields[i].flags & TFS_SDK_FIELD_KEY))
            continue;
        size_t len;
        const char *t = key_text(&rec->values[i], tmp, &len);
        need += len + 1;
        if (rec->values[i].type != TFS_SDK_NULL)
            for (size_t j = 0; j < len; j++)
                need += t[j] == '|' || t[j] == '\\';
    }
    char *out = tfs_arena_alloc(a, need), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < rec->n; i++) {
        if (!(rec->entity->fields[i].flags & TFS_SDK_FIELD_KEY))
            continue;
        if (o != out)
            *o++ = '|';
        size_t len;
        const tfs_value *v = &rec->values[i];
        const char *t = key_text(v, tmp, &len);
        for (size_t j = 0; j < len; j++) {
            if (v->type != TFS_SDK_NULL && (t[j] == '|' || t[j] == '\\'))
                *o++ = '\\';
            *o++ = t[j];
        }
    }
    *o = '\0';
    return out;
}

static int ref_json_string_append(tfs_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    tfs_buf_putc(out, '"');
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        tfs_buf_append(out, s + start, i - start);
        char esc[7] = {'\\', (char)c, 0};
        size_t n = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\n': esc[1] = 'n'; break;
        case '\t': esc[1] = 't'; break;
        case '\r': esc[1] = 'r'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            n = 6;
        }
        tfs_buf_append(out, esc, n);
        start = i + 1;
    }
    tfs_buf_append(out, s + start, len - start);
    return tfs_buf_putc(out, '"');
}

static int ref_value_json_append(tfs_buf *out, const tfs_value *v)
{
    char tmp[64];
    switch (v->type) {
    case TFS_SDK_NULL: tfs_buf_append(out, "null", 4); break;
    case TFS_SDK_BOOL: tfs_buf_puts(out, v->u.b ? "true" : "false"); break;
    case TFS_SDK_INT64:
        tfs_buf_append(out, tmp, (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, v->u.i));
        break;
    case TFS_SDK_FLOAT64:
        if (isfinite(v->u.f))
            tfs_buf_append(out, tmp, (size_t)snprintf(tmp, sizeof tmp, "%.17g", v->u.f));
        else
            tfs_buf_append(out, "null", 4); /* JSON has no NaN or infinity */
        break;
    case TFS_SDK_JSON:
    case TFS_SDK_GEOMETRY: {
        /* Embedded as JSON when it parses, as a string otherwise, like tfs_record_to_json. */
        unsigned long failed = tfs_alloc_failures();
        json_t *j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
        if (j) {
            json_decref(j);
            tfs_buf_append(out, v->u.s, v->len);
        } else if (tfs_alloc_failures() != failed) {
            out->oom = true; /* not "text that does not parse" */
        } else {
            ref_json_string_append(out, v->u.s, v->len);
        }
        break;
    }
    case TFS_SDK_BYTES: {
        /* base64 needs no escaping: encoded straight into the buffer, a chunk at a time. */
        char chunk[1024];
        tfs_buf_putc(out, '"');
        for (size_t at = 0; at < v->len; at += 768) {
            size_t n = v->len - at < 768 ? v->len - at : 768;
            tfs_buf_append(out, chunk,
                           b64_encode((const unsigned char *)v->u.s + at, n, chunk));
        }
        tfs_buf_putc(out, '"');
        break;
    }
    default: ref_json_string_append(out, v->u.s, v->len); break;
    }
    return out->oom ? -1 : 0;
}

static int ref_record_json_append(tfs_buf *out, const tfs_record *rec)
{
    tfs_buf_putc(out, '{');
    for (size_t i = 0; i < rec->n; i++) {
        const char *name = rec->entity->fields[i].name;
        if (i)
            tfs_buf_putc(out, ',');
        ref_json_string_append(out, name, strlen(name));
        tfs_buf_putc(out, ':');
        ref_value_json_append(out, &rec->values[i]);
    }
    tfs_buf_putc(out, '}');
    return out->oom ? -1 : 0;
}
