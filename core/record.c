/* core/record.c — typed records and batches; the SDK host functions over them are in
 * sdk_host.c. */
#include "record.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decimal.h"
#include "buf.h"

static const char *const type_names[] = {
    [TFS_SDK_NULL] = "null",      [TFS_SDK_BOOL] = "bool",
    [TFS_SDK_INT64] = "int64",    [TFS_SDK_FLOAT64] = "float64",
    [TFS_SDK_DECIMAL] = "decimal", [TFS_SDK_TEXT] = "text",
    [TFS_SDK_DATE] = "date",      [TFS_SDK_TIMESTAMP] = "timestamp",
    [TFS_SDK_JSON] = "json",      [TFS_SDK_BYTES] = "bytes",
    [TFS_SDK_GEOMETRY] = "geometry",
};

static const char *const geometry_types[] = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
};

int tfs_geometry_check(const char *text, size_t len, int *srid, char *why, size_t why_len)
{
    unsigned long failed = tfs_alloc_failures();
    json_error_t jerr;
    json_t *g = json_loadb(text, len, 0, &jerr);
    if (!g) {
        if (tfs_alloc_failures() != failed)
            return -2;
        snprintf(why, why_len, "geometry is not JSON: %s", jerr.text);
        return -1;
    }
    int rc = -1;
    const char *type = json_string_value(json_object_get(g, "type"));
    const char *crs = json_string_value(
        json_object_get(json_object_get(json_object_get(g, "crs"), "properties"), "name"));
    int known = 0;
    for (size_t i = 0; type && i < sizeof geometry_types / sizeof *geometry_types; i++)
        known |= strcmp(type, geometry_types[i]) == 0;
    char *end = NULL;
    /* Digits only: strtol alone would also take "EPSG: 4326" and "EPSG:+4326". */
    long id = crs && strncmp(crs, "EPSG:", 5) == 0 && crs[5] >= '0' && crs[5] <= '9'
                  ? strtol(crs + 5, &end, 10)
                  : 0;
    if (!json_is_object(g))
        snprintf(why, why_len, "geometry is not a GeoJSON object");
    else if (!type || (!known && strcmp(type, "GeometryCollection") != 0))
        snprintf(why, why_len, "geometry has no GeoJSON geometry \"type\" (Point ... "
                 "MultiPolygon, GeometryCollection)");
    else if (known && !json_is_array(json_object_get(g, "coordinates")))
        snprintf(why, why_len, "%s geometry has no \"coordinates\" array", type);
    else if (!known && !json_is_array(json_object_get(g, "geometries")))
        snprintf(why, why_len, "GeometryCollection has no \"geometries\" array");
    else if (!end || *end || id <= 0 || id > 999999)
        snprintf(why, why_len, "geometry names no SRID: it needs \"crs\": {\"type\": "
                 "\"name\", \"properties\": {\"name\": \"EPSG:<srid>\"}}");
    else {
        if (srid)
            *srid = (int)id;
        rc = 0;
    }
    json_decref(g);
    return rc;
}

const char *tfs_type_name(tfs_sdk_type t)
{
    if ((unsigned)t < sizeof type_names / sizeof type_names[0])
        return type_names[t];
    return "unknown";
}

int tfs_type_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(type_names[i], name) == 0)
            return (int)i;
    return -1;
}

tfs_record *tfs_record_new(tfs_arena *a, const tfs_sdk_entity *entity)
{
    tfs_record *r = tfs_arena_alloc(a, sizeof *r);
    if (!r)
        return NULL;
    r->entity = entity;
    r->arena = a;
    r->deleted = false;
    r->fail_reason = NULL;
    r->n = entity->n_fields;
    r->values = tfs_arena_calloc(a, r->n ? r->n : 1, sizeof(tfs_value));
    return r->values ? r : NULL;
}

int tfs_entity_field_index(const tfs_sdk_entity *entity, const char *name)
{
    for (size_t i = 0; i < entity->n_fields; i++)
        if (strcmp(entity->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

tfs_record *tfs_record_copy(tfs_arena *a, const tfs_record *rec)
{
    tfs_record *r = tfs_record_new(a, rec->entity);
    if (!r)
        return NULL;
    for (size_t i = 0; i < rec->n; i++) {
        r->values[i] = rec->values[i];
        if (tfs_type_is_text(rec->values[i].type)) {
            r->values[i].u.s = tfs_arena_strndup(a, rec->values[i].u.s, rec->values[i].len);
            if (!r->values[i].u.s)
                return NULL;
        }
    }
    return r;
}

int tfs_record_set_text(tfs_record *rec, size_t field, tfs_sdk_type type, const char *s,
                        size_t len)
{
    if (field >= rec->n || !tfs_type_is_text(type) || !s || len > UINT32_MAX)
        return -1;
    char *copy = tfs_arena_strndup(rec->arena, s, len);
    if (!copy)
        return -1;
    rec->values[field] = (tfs_value){.type = type, .len = (uint32_t)len, .u.s = copy};
    return 0;
}

void tfs_batch_init(tfs_batch *b, tfs_arena *a, const tfs_sdk_entity *entity)
{
    memset(b, 0, sizeof *b);
    b->arena = a;
    b->entity = entity;
}

/* The text of one key value; small values are formatted into tmp. */
static const char *key_text(const tfs_value *v, char tmp[64], size_t *len)
{
    switch (v->type) {
    case TFS_SDK_INT64: *len = tfs_decimal_from_int64(v->u.i, tmp); return tmp;
    case TFS_SDK_FLOAT64: *len = (size_t)snprintf(tmp, 64, "%.17g", v->u.f); return tmp;
    case TFS_SDK_BOOL: *len = 1; return v->u.b ? "t" : "f";
    case TFS_SDK_NULL: *len = 2; return "\\N";
    default: *len = v->len; return v->u.s;
    }
}

char *tfs_record_key(tfs_arena *a, const tfs_record *rec)
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

/* ---- BYTES as base64 (RFC 4648, padded): how JSON shows raw bytes (SDK 1.3) ---------- */

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

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int tfs_base64_decode(const char *s, size_t n, char *out, size_t *out_len, char *why,
                      size_t why_len)
{
    size_t o = 0;
    if (n % 4) {
        snprintf(why, why_len, "not base64: its length %zu is not a multiple of 4", n);
        return -1;
    }
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            /* '=' only as the last one or two characters of the text. */
            if (c == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            if ((v[k] = b64_value(c)) < 0) {
                if (c >= 0x20 && c < 0x7f)
                    snprintf(why, why_len, "not base64: '%c' at offset %zu", c, i + (size_t)k);
                else
                    snprintf(why, why_len, "not base64: byte 0x%02x at offset %zu", c,
                             i + (size_t)k);
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[o++] = (char)(x >> 16);
        if (pad < 2)
            out[o++] = (char)(x >> 8 & 0xff);
        if (pad < 1)
            out[o++] = (char)(x & 0xff);
    }
    *out_len = o;
    return 0;
}

/* base64 text of len bytes, malloc'd (NUL-terminated, *n its length), or NULL. */
static char *b64_new(const char *s, size_t len, size_t *n)
{
    char *out = malloc(len / 3 * 4 + 5);
    if (out) {
        *n = b64_encode((const unsigned char *)s, len, out);
        out[*n] = '\0';
    }
    return out;
}

json_t *tfs_record_to_json(const tfs_record *rec)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < rec->n; i++) {
        const tfs_value *v = &rec->values[i];
        json_t *j = NULL;
        switch (v->type) {
        case TFS_SDK_NULL: j = json_null(); break;
        case TFS_SDK_BOOL: j = json_boolean(v->u.b); break;
        case TFS_SDK_INT64: j = json_integer(v->u.i); break;
        case TFS_SDK_FLOAT64: j = json_real(v->u.f); break;
        case TFS_SDK_JSON:
        case TFS_SDK_GEOMETRY: {
            /* Text that does not parse becomes a string; text that did not parse for lack
             * of memory is a failure (jansson reports both as syntax errors). */
            unsigned long failed = tfs_alloc_failures();
            j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
            if (!j && tfs_alloc_failures() == failed)
                j = json_stringn(v->u.s, v->len);
            break;
        }
        case TFS_SDK_BYTES: {
            size_t n;
            char *text = b64_new(v->u.s, v->len, &n);
            j = text ? json_stringn(text, n) : NULL;
            free(text);
            break;
        }
        default: j = json_stringn(v->u.s, v->len); break;
        }
        if (!j || json_object_set_new(o, rec->entity->fields[i].name, j) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

int tfs_record_from_json_checked(tfs_arena *a, const tfs_sdk_entity *entity, const json_t *obj,
                                 tfs_record **out, tfs_error *err)
{
    *out = NULL;
    tfs_record *r = tfs_record_new(a, entity);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < entity->n_fields; i++) {
        const tfs_sdk_field *f = &entity->fields[i];
        const json_t *v = json_object_get(obj, f->name);
        if (!v || json_is_null(v))
            continue;
        int rc = 0;
        if (f->type == TFS_SDK_BYTES && json_is_string(v)) {
            /* A BYTES field's JSON is its base64 text, as tfs_record_to_json writes it. */
            size_t n = json_string_length(v), len;
            char why[96];
            char *bytes = tfs_arena_alloc(a, n / 4 * 3 + 1);
            if (!bytes)
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            if (tfs_base64_decode(json_string_value(v), n, bytes, &len, why, sizeof why) != 0) {
                tfs_error_set(err, TFS_EINVAL, "field \"%s\" (bytes): %s", f->name, why);
                tfs_error_hint(err, "a bytes value is written in JSON as base64 text "
                               "(RFC 4648, with its = padding)");
                return TFS_EINVAL;
            }
            bytes[len] = '\0';
            r->values[i] = (tfs_value){.type = TFS_SDK_BYTES, .len = (uint32_t)len, .u.s = bytes};
        } else if (tfs_type_is_json(f->type) || json_is_object(v) || json_is_array(v)) {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            tfs_sdk_type t = f->type == TFS_SDK_GEOMETRY ? TFS_SDK_GEOMETRY : TFS_SDK_JSON;
            rc = text ? tfs_record_set_text(r, i, t, text, strlen(text)) : -1;
            free(text);
        } else if (json_is_string(v)) {
            tfs_sdk_type t = tfs_type_is_text(f->type) ? f->type : TFS_SDK_TEXT;
            rc = tfs_record_set_text(r, i, t, json_string_value(v), json_string_length(v));
        } else if (json_is_integer(v)) {
            r->values[i] = (tfs_value){.type = TFS_SDK_INT64, .u.i = json_integer_value(v)};
        } else if (json_is_real(v)) {
            r->values[i] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = json_real_value(v)};
        } else if (json_is_boolean(v)) {
            r->values[i] = (tfs_value){.type = TFS_SDK_BOOL, .u.b = json_is_true(v)};
        }
        if (rc < 0)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    *out = r;
    return 0;
}

tfs_record *tfs_record_from_json(tfs_arena *a, const tfs_sdk_entity *entity, const json_t *obj)
{
    tfs_record *r;
    tfs_error err = {0};
    return tfs_record_from_json_checked(a, entity, obj, &r, &err) == 0 ? r : NULL;
}

int tfs_json_string_append(tfs_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    tfs_buf_putc_fast(out, '"');
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        tfs_buf_append_fast(out, s + start, i - start);
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
        tfs_buf_append_fast(out, esc, n);
        start = i + 1;
    }
    tfs_buf_append_fast(out, s + start, len - start);
    return tfs_buf_putc_fast(out, '"');
}

int tfs_value_json_append(tfs_buf *out, const tfs_value *v)
{
    char tmp[64];
    switch (v->type) {
    case TFS_SDK_NULL: tfs_buf_append_fast(out, "null", 4); break;
    case TFS_SDK_BOOL: tfs_buf_append_fast(out, v->u.b ? "true" : "false", v->u.b ? 4 : 5); break;
    case TFS_SDK_INT64: tfs_buf_append_fast(out, tmp, tfs_decimal_from_int64(v->u.i, tmp)); break;
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
            tfs_json_string_append(out, v->u.s, v->len);
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
    default: tfs_json_string_append(out, v->u.s, v->len); break;
    }
    return out->oom ? -1 : 0;
}

int tfs_record_json_append(tfs_buf *out, const tfs_record *rec)
{
    tfs_buf_putc_fast(out, '{');
    for (size_t i = 0; i < rec->n; i++) {
        const char *name = rec->entity->fields[i].name;
        if (i)
            tfs_buf_putc_fast(out, ',');
        tfs_json_string_append(out, name, strlen(name));
        tfs_buf_putc_fast(out, ':');
        tfs_value_json_append(out, &rec->values[i]);
    }
    tfs_buf_putc_fast(out, '}');
    return out->oom ? -1 : 0;
}

int tfs_value_to_int64(const tfs_value *v, int64_t *out, tfs_error *err)
{
    *out = 0;
    if (v->type == TFS_SDK_INT64) {
        *out = v->u.i;
        return 0;
    }
    if (v->type != TFS_SDK_FLOAT64)
        return tfs_error_set(err, TFS_EINVAL, "could not read a %s as an integer",
                             tfs_type_name(v->type));
    /* Casting a double outside int64's range (or a NaN) is undefined behaviour, so the
     * range is checked first, against bounds a double holds exactly: -2^63 <= d < 2^63. */
    double d = v->u.f;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return tfs_error_set(err, TFS_EINVAL, "could not read %g as an integer: %s", d,
                             isnan(d) ? "not a number" : "out of the range of a 64-bit integer");
    *out = (int64_t)d;
    return 0;
}
