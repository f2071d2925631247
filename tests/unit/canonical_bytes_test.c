/* tests/unit/canonical_bytes_test.c — the fast canonical encoding, record keys and JSON
 * text write the same bytes as the code they replaced (canonical_c1_ref.c, frozen).
 *
 * Sync maps store hashes of the "c1" encoding and the last-written record as JSON text: a
 * byte of difference would make every stored record look changed on the next run. So
 * random records of every declared type, holding values of every type (well-formed, mixed
 * up, with the ';' '?' '.' blanks and escapes the encoding treats apart, the integer and
 * float extremes), are encoded by both and compared byte for byte, in fresh buffers and in
 * reused ones (the fast path's room checks at every buffer size).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "canonical_c1_ref.c"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static size_t pick(size_t n) { return (size_t)(next() % n); }

static const char alphabet[] = "0123456789000...--+eE;;??  :Tt\"\\\t\nab|Z\x01\xc3\x91";

static const char *random_text(tfs_arena *a, tfs_sdk_type t, size_t *len)
{
    static const char *const shaped[] = {
        "12.50", "-0.00", "+7", "0012.3400", "1e3", ".5", "5.", "NaN", "", "2026-01-01",
        "2026-01-01 10:00:00.120000", "2026-01-01T10:00:00.", "?3:abc", "1;n2", "x;",
        "  padded  ", "9999999999999999999999.99999", "-0", "0.125", "\"q\\\"", "a|b\\c",
    };
    char *s;
    if (pick(3) == 1) { /* a plain decimal: sign, digits, point, digits, each maybe */
        static const char *const signs[] = {"", "", "-", "+"};
        char tmp[64];
        size_t n = (size_t)snprintf(tmp, sizeof tmp, "%s", signs[pick(4)]);
        for (size_t i = pick(5); i > 0; i--)
            tmp[n++] = (char)('0' + pick(10) * pick(2));
        if (pick(2))
            tmp[n++] = '.';
        for (size_t i = pick(8); i > 0; i--)
            tmp[n++] = (char)('0' + pick(10) * pick(2));
        *len = n;
        return tfs_arena_strndup(a, tmp, n);
    }
    if (pick(3) == 0) {
        const char *src = shaped[pick(sizeof shaped / sizeof shaped[0])];
        *len = strlen(src);
        s = tfs_arena_strndup(a, src, *len);
    } else {
        *len = pick(24);
        s = tfs_arena_alloc(a, *len + 1);
        for (size_t i = 0; i < *len; i++)
            s[i] = alphabet[pick(sizeof alphabet - 1)];
        if (t == TFS_SDK_BYTES && *len)
            s[pick(*len)] = '\0'; /* bytes may hold a NUL */
        s[*len] = '\0';
    }
    return s;
}

static tfs_value random_value(tfs_arena *a)
{
    static const int64_t ints[] = {0, 1, -1, 42, 2026, INT64_MAX, INT64_MIN, 1000000007,
                                   -999999999999, 10, 100};
    static const double floats[] = {0.0, -0.0, 0.1, 1.005, 12.5, -2.5, 1e300, 1e-7, 3.0,
                                    123456789012.25, 9.2e18, NAN, INFINITY, -INFINITY};
    tfs_value v = {0};
    v.type = (tfs_sdk_type)pick(TFS_SDK_GEOMETRY + 1);
    switch (v.type) {
    case TFS_SDK_NULL: break;
    case TFS_SDK_BOOL: v.u.b = (int)pick(2); break;
    case TFS_SDK_INT64:
        v.u.i = pick(2) ? ints[pick(sizeof ints / sizeof ints[0])] : (int64_t)next();
        break;
    case TFS_SDK_FLOAT64:
        v.u.f = pick(2) ? floats[pick(sizeof floats / sizeof floats[0])]
                        : (double)(int64_t)next() / (double)(1 + pick(1000));
        break;
    default: {
        size_t len;
        v.u.s = random_text(a, v.type, &len);
        v.len = (uint32_t)len;
        break;
    }
    }
    return v;
}

static void expect_same(const tfs_buf *got, const tfs_buf *want, const char *what)
{
    cr_assert_eq(got->len, want->len, "%s: %zu bytes, the reference %zu:\n%s\n%s", what,
                 got->len, want->len, tfs_buf_str(got), tfs_buf_str(want));
    cr_assert(memcmp(got->data, want->data, got->len) == 0, "%s differs:\n%s\n%s", what,
              tfs_buf_str(got), tfs_buf_str(want));
}

Test(canonical_bytes, fast_paths_write_the_reference_bytes)
{
    tfs_arena *a = tfs_arena_new();
    tfs_buf reused = TFS_BUF_INIT, ref = TFS_BUF_INIT;
    tfs_sdk_field fields[12];
    char names[12][8];
    for (int round = 0; round < 20000; round++) {
        tfs_arena_reset(a);
        size_t nf = 1 + pick(12);
        for (size_t i = 0; i < nf; i++) {
            snprintf(names[i], sizeof names[i], pick(8) ? "f%zu" : "q\"%zu", i);
            fields[i] = (tfs_sdk_field){names[i], (tfs_sdk_type)pick(TFS_SDK_GEOMETRY + 1),
                                        (unsigned)(pick(3) == 0 ? TFS_SDK_FIELD_KEY : 0) |
                                            (pick(6) == 0 ? TFS_SDK_FIELD_BOOKKEEPING : 0),
                                        0, (int)pick(20), (int)pick(10) - 3};
        }
        tfs_sdk_entity e = {"ent", fields, nf};
        tfs_record *r = tfs_record_new(a, &e);
        cr_assert_not_null(r);
        for (size_t i = 0; i < nf; i++)
            r->values[i] = random_value(a);

        /* the encoding, into a fresh buffer and into one reused from round to round */
        tfs_buf fresh = TFS_BUF_INIT;
        tfs_buf_reset(&ref);
        tfs_buf_reset(&reused);
        cr_assert_eq(ref_canonical_record(&ref, r), 0);
        cr_assert_eq(tfs_canonical_record(&fresh, r), 0);
        cr_assert_eq(tfs_canonical_record(&reused, r), 0);
        expect_same(&fresh, &ref, "canonical record");
        expect_same(&reused, &ref, "canonical record (reused buffer)");
        /* each value alone, also without a field (conflict.c's form) */
        for (size_t i = 0; i < nf; i++) {
            const tfs_sdk_field *f = i % 3 ? &fields[i] : NULL;
            tfs_buf_reset(&ref);
            tfs_buf_reset(&reused);
            ref_canonical_value(&ref, &r->values[i], f);
            tfs_canonical_value(&reused, &r->values[i], f);
            expect_same(&reused, &ref, "canonical value");
        }
        /* the hash and its hex */
        const tfs_record *one = r;
        uint64_t h1, h2;
        cr_assert_eq(ref_canonical_hash(&ref, &one, 1, &h1, NULL), 0);
        cr_assert_eq(tfs_canonical_hash(&reused, &one, 1, &h2, NULL), 0);
        cr_assert_eq(h1, h2);
        char x1[17], x2[17];
        uint64_t any = next();
        ref_hash_hex(any, x1);
        tfs_hash_hex(any, x2);
        cr_assert_str_eq(x2, x1);
        /* the record's key and its JSON text (the sync map's last-written record) */
        cr_assert_str_eq(tfs_record_key(a, r), ref_record_key(a, r));
        tfs_buf_reset(&ref);
        tfs_buf_reset(&reused);
        tfs_buf_free(&fresh);
        cr_assert_eq(ref_record_json_append(&ref, r), 0);
        cr_assert_eq(tfs_record_json_append(&reused, r), 0);
        cr_assert_eq(tfs_record_json_append(&fresh, r), 0);
        expect_same(&reused, &ref, "record JSON");
        expect_same(&fresh, &ref, "record JSON (fresh buffer)");
        tfs_buf_free(&fresh);
    }
    tfs_buf_free(&reused);
    tfs_buf_free(&ref);
    tfs_arena_free(a);
}
