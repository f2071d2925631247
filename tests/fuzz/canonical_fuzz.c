/* tests/fuzz/canonical_fuzz.c — the canonical encoding (core/canonical.c) and the record's
 * JSON forms (core/record.c) from records built of the input's lines (fuzz_common.h).
 *
 * There is no decoder of the canonical encoding, so the harness checks what one would
 * need: each value's encoding is self-delimiting (a reader that knows only the tags finds
 * where it ends, so two different records never share an encoding: no silent collision),
 * the record's encoding is the entity name and its values' in order, values a system calls
 * equal encode the same (trailing fractional zeros of a decimal, an integer as a decimal,
 * trailing blanks of text, trailing fractional zeros of a timestamp), a copy hashes the
 * same, and a record through tfs_record_to_json and back encodes the same, as the JSON
 * text tfs_record_json_append writes is the same JSON.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "canonical.h"
#include "fuzz_common.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 14, 2},
    {"name", TFS_SDK_TEXT, 0, 40, 0, 0},
    {"day", TFS_SDK_DATE, 0, 0, 0, 0},
    {"at", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
    {"doc", TFS_SDK_JSON, 0, 0, 0, 0},
    {"blob", TFS_SDK_BYTES, 0, 0, 0, 0},
    {"ratio", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"flag", TFS_SDK_BOOL, 0, 0, 0, 0},
    {"shape", TFS_SDK_GEOMETRY, 0, 0, 0, 0},
    {"seen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"thing", fields, sizeof fields / sizeof fields[0]};

static tfs_arena *arena;
static tfs_buf a = TFS_BUF_INIT, b = TFS_BUF_INIT;

/* Where the encoding of one value that starts s[0..n) ends, read by its tags only: 0 when
 * it is not an encoding. A payload without a length runs to the first ';', so it must not
 * hold one; "?<len>:" before a payload gives its length. */
static size_t value_end(const char *s, size_t n)
{
    size_t i = 1, len = 0;
    if (n < 2)
        return 0;
    switch (s[0]) {
    case 'N':
        return s[1] == ';' ? 2 : 0;
    case 'b':
        return n >= 3 && (s[1] == '0' || s[1] == '1') && s[2] == ';' ? 3 : 0;
    case 't':
    case 'j':
    case 'x':
        break; /* a length */
    case '?':
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == 1 || i >= n || s[i] != ':')
            return 0;
        i++;
        /* fall through: a payload, with or without its length */
    case 'n':
    case 'D':
    case 'T':
        if (i < n && s[i] == '?') {
            i++;
            break;
        }
        for (; i < n; i++)
            if (s[i] == ';')
                return i + 1;
        return 0;
    default:
        return 0;
    }
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        len = len * 10 + (size_t)(s[i++] - '0');
    if (i == d || i >= n || s[i] != ':' || len > n - i - 1)
        return 0;
    i += 1 + len;
    return i < n && s[i] == ';' ? i + 1 : 0;
}

static const char *enc(tfs_buf *buf, const tfs_value *v, const tfs_sdk_field *f)
{
    tfs_buf_reset(buf);
    FUZZ_CHECK(tfs_canonical_value(buf, v, f) == 0, "out of memory");
    return tfs_buf_str(buf);
}

static void check_same(const tfs_value *x, const tfs_value *y, const tfs_sdk_field *f,
                       const char *why)
{
    enc(&a, x, f);
    enc(&b, y, f);
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
               "%s: field %s encodes as \"%s\" and \"%s\"", why, f->name, a.data, b.data);
}

static bool plain_decimal(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    return i == n && digits > 0;
}

/* s[0..n) with ins put in at offset at, into t (room for n + 8); its length. */
static size_t splice(char *t, const char *s, size_t n, size_t at, const char *ins)
{
    size_t k = strlen(ins);
    memcpy(t, s, at);
    memcpy(t + at, ins, k);
    memcpy(t + at + k, s + at, n - at);
    t[n + k] = '\0';
    return n + k;
}

/* Equal values in other forms encode the same. */
static void check_equivalents(const tfs_record *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *v = &r->values[i];
        const tfs_sdk_field *f = &fields[i];
        if (!tfs_type_is_text(v->type) || v->len > 200)
            continue;
        char t[256];
        tfs_value w = *v;
        w.u.s = t;
        if (f->type == TFS_SDK_DECIMAL && plain_decimal(v->u.s, v->len)) {
            bool point = memchr(v->u.s, '.', v->len) != NULL;
            w.len = (uint32_t)splice(t, v->u.s, v->len, v->len, point ? "000" : ".000");
            check_same(v, &w, f, "trailing fractional zeros");
            size_t sign = v->u.s[0] == '-' || v->u.s[0] == '+';
            w.len = (uint32_t)splice(t, v->u.s, v->len, sign, "00");
            check_same(v, &w, f, "leading zeros");
            char *end;
            errno = 0;
            long long n = strtoll(v->u.s, &end, 10);
            if (!point && end == v->u.s + v->len && errno == 0) {
                tfs_value iv = {.type = TFS_SDK_INT64, .u.i = n};
                check_same(v, &iv, f, "an integer as a decimal");
            }
        } else if (f->type == TFS_SDK_TEXT && v->type == TFS_SDK_TEXT) {
            w.len = (uint32_t)splice(t, v->u.s, v->len, v->len, "   ");
            check_same(v, &w, f, "trailing blanks of text");
        } else if (f->type == TFS_SDK_TIMESTAMP && memchr(v->u.s, '.', v->len)) {
            const char *dot = memchr(v->u.s, '.', v->len);
            size_t e = (size_t)(dot - v->u.s) + 1;
            while (e < v->len && v->u.s[e] >= '0' && v->u.s[e] <= '9')
                e++;
            w.len = (uint32_t)splice(t, v->u.s, v->len, e, "00");
            check_same(v, &w, f, "trailing fractional zeros of a timestamp");
        }
    }
}

static bool json_ok(const tfs_value *v)
{
    json_t *j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
    json_decref(j);
    return j != NULL;
}

/* Whether the record is one the host keeps: values of their fields' types (or null),
 * JSON that parses, finite floats, UTF-8 text without NUL. */
static bool well_formed(const tfs_record *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *v = &r->values[i];
        if (v->type == TFS_SDK_NULL)
            continue;
        if (v->type != fields[i].type)
            return false;
        if (v->type == TFS_SDK_FLOAT64 && !isfinite(v->u.f))
            return false;
        if (tfs_type_is_json(v->type) && !json_ok(v))
            return false;
        /* What the validator lets through to a target: no NUL (it refuses those), UTF-8
         * (which a PostgreSQL target needs). */
        if (tfs_type_is_text(v->type) && v->type != TFS_SDK_BYTES &&
            (!fuzz_utf8_valid(v->u.s, v->len) || memchr(v->u.s, '\0', v->len)))
            return false;
    }
    return true;
}

static void check_json_round_trip(const tfs_record *r)
{
    json_t *j = tfs_record_to_json(r);
    FUZZ_CHECK(j, "tfs_record_to_json failed on a well-formed record");
    /* The text form the sync map keeps is the same JSON. */
    tfs_buf_reset(&a);
    FUZZ_CHECK(tfs_record_json_append(&a, r) == 0, "out of memory");
    json_error_t je;
    json_t *k = json_loadb(a.data, a.len, 0, &je);
    FUZZ_CHECK(k, "tfs_record_json_append wrote JSON that does not parse (%s): %s", je.text,
               a.data);
    FUZZ_CHECK(fuzz_json_same(j, k), "tfs_record_json_append and tfs_record_to_json differ: %s",
               a.data);
    json_decref(k);
    tfs_record *back = NULL;
    tfs_error err = {0};
    FUZZ_CHECK(tfs_record_from_json_checked(arena, &entity, j, &back, &err) == 0, "%s",
               err.message);
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *x = &r->values[i], *y = &back->values[i];
        if (tfs_type_is_json(fields[i].type) && x->type != TFS_SDK_NULL) {
            /* JSON comes back as jansson writes it: the same JSON, not the same text. */
            json_t *p = json_loadb(x->u.s, x->len, JSON_DECODE_ANY, NULL);
            /* A JSON null and a null field are one thing in the record's JSON form. */
            json_t *q = y->type == TFS_SDK_NULL
                            ? json_null()
                            : json_loadb(y->u.s, y->len, JSON_DECODE_ANY, NULL);
            FUZZ_CHECK(p && q && fuzz_json_same(p, q), "field %s changed through JSON",
                       fields[i].name);
            json_decref(p);
            json_decref(q);
            continue;
        }
        check_same(x, y, &fields[i], "through tfs_record_to_json and back");
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena && !(arena = tfs_arena_new()))
        abort();
    if (size > 4096)
        return 0;
    tfs_record *r = fuzz_record_from_lines(arena, &entity, data, size);
    FUZZ_CHECK(r, "out of memory");

    /* Each value's encoding ends where its tags say. */
    for (size_t i = 0; i < r->n; i++) {
        enc(&a, &r->values[i], &fields[i]);
        tfs_buf_putc(&a, ';'); /* what may follow: another value */
        tfs_buf_puts(&a, "N;");
        size_t end = value_end(a.data, a.len);
        FUZZ_CHECK(end == a.len - 3, "field %s: the encoding \"%.*s\" is not self-delimiting "
                   "(read as %zu bytes)", fields[i].name, (int)(a.len - 3), a.data, end);
    }
    /* The record: the entity's name, then its values but the bookkeeping ones, in order. */
    tfs_buf_reset(&b);
    FUZZ_CHECK(tfs_canonical_record(&b, r) == 0, "out of memory");
    size_t at = strlen(entity.name) + 1;
    FUZZ_CHECK(b.len > at && memcmp(b.data, "thing{", at) == 0, "prefix of %s", b.data);
    for (size_t i = 0; i < r->n; i++) {
        if (fields[i].flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        size_t end = value_end(b.data + at, b.len - at);
        FUZZ_CHECK(end > 0, "field %s unreadable in %s", fields[i].name, b.data);
        enc(&a, &r->values[i], &fields[i]);
        FUZZ_CHECK(a.len == end && memcmp(a.data, b.data + at, end) == 0,
                   "field %s: record and value encodings differ", fields[i].name);
        at += end;
    }
    FUZZ_CHECK(at + 1 == b.len && b.data[at] == '}', "record encoding ends badly: %s", b.data);

    /* The same hash for a copy; a hash of the encoding as given. */
    tfs_record *c = tfs_record_copy(arena, r);
    FUZZ_CHECK(c, "out of memory");
    const tfs_record *one[] = {r}, *other[] = {c};
    uint64_t h1 = 0, h2 = 0;
    tfs_error err = {0};
    FUZZ_CHECK(tfs_canonical_hash(&a, one, 1, &h1, &err) == 0, "%s", err.message);
    FUZZ_CHECK(tfs_canonical_hash(&a, other, 1, &h2, &err) == 0, "%s", err.message);
    FUZZ_CHECK(h1 == h2, "a copy hashes differently");
    FUZZ_CHECK(tfs_hash_records(&a, one, 1) == h1, "the two hash functions differ");

    check_equivalents(r);
    if (well_formed(r))
        check_json_round_trip(r);
    tfs_arena_reset(arena);
    return 0;
}
