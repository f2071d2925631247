/* tests/unit/canonical_test.c — typed records and canonical hashing: the same value hashes
 * the same whatever its representation; a different value never does. Also the arena
 * records live in (reuse after reset, sizes that would wrap) and reading a float as an
 * integer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "canonical.h"
#include "record.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"yr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 14, 2},
    {"name", TFS_SDK_TEXT, 0, 20, 0, 0},
    {"seen", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"thing", fields, 6};

static tfs_arena *arena;
static void setup(void) { arena = tfs_arena_new(); }
static void teardown(void) { tfs_arena_free(arena); }
TestSuite(canonical, .init = setup, .fini = teardown);

static tfs_record *make(int64_t id, tfs_value amount, const char *name, const char *seen)
{
    tfs_record *r = tfs_record_new(arena, &entity);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = id};
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    r->values[2] = amount;
    if (amount.type == TFS_SDK_DECIMAL)
        tfs_record_set_text(r, 2, TFS_SDK_DECIMAL, amount.u.s, strlen(amount.u.s));
    if (name)
        tfs_record_set_text(r, 3, TFS_SDK_TEXT, name, strlen(name));
    if (seen)
        tfs_record_set_text(r, 4, TFS_SDK_TIMESTAMP, seen, strlen(seen));
    return r;
}

static uint64_t hash(const tfs_record *r)
{
    tfs_buf b = TFS_BUF_INIT;
    uint64_t h = tfs_hash_records(&b, &r, 1);
    tfs_buf_free(&b);
    return h;
}

#define DEC(text) ((tfs_value){.type = TFS_SDK_DECIMAL, .u.s = (text)})
#define INT(x) ((tfs_value){.type = TFS_SDK_INT64, .u.i = (x)})
#define FLT(x) ((tfs_value){.type = TFS_SDK_FLOAT64, .u.f = (x)})

Test(canonical, numbers_hash_by_value)
{
    uint64_t h = hash(make(1, DEC("12.50"), "A", NULL));
    cr_assert_eq(hash(make(1, DEC("12.5"), "A", NULL)), h);
    cr_assert_eq(hash(make(1, DEC("012.500"), "A", NULL)), h);
    cr_assert_eq(hash(make(1, FLT(12.5), "A", NULL)), h);
    cr_assert_neq(hash(make(1, DEC("12.51"), "A", NULL)), h);
    uint64_t z = hash(make(1, DEC("0"), "A", NULL));
    cr_assert_eq(hash(make(1, DEC("-0.00"), "A", NULL)), z);
    cr_assert_eq(hash(make(1, INT(0), "A", NULL)), z);
    cr_assert_eq(hash(make(1, INT(12), "A", NULL)), hash(make(1, DEC("12.0"), "A", NULL)));
}

Test(canonical, text_padding_and_timestamp_precision)
{
    uint64_t h = hash(make(1, INT(1), "MAIN", "2026-01-02 03:04:05"));
    cr_assert_eq(hash(make(1, INT(1), "MAIN   ", "2026-01-02 03:04:05.000")), h);
    cr_assert_eq(hash(make(1, INT(1), "MAIN", "2026-01-02 03:04:05.")), h);
    cr_assert_neq(hash(make(1, INT(1), "MAIN", "2026-01-02 03:04:05.1")), h);
    cr_assert_neq(hash(make(1, INT(1), " MAIN", "2026-01-02 03:04:05")), h);
    cr_assert_neq(hash(make(1, INT(1), "main", "2026-01-02 03:04:05")), h);
}

Test(canonical, null_differs_from_empty_and_zero)
{
    uint64_t null_name = hash(make(1, INT(1), NULL, NULL));
    cr_assert_neq(hash(make(1, INT(1), "", NULL)), null_name);
    tfs_record *r = make(1, INT(1), NULL, NULL);
    r->values[2] = (tfs_value){.type = TFS_SDK_NULL};
    cr_assert_neq(hash(r), hash(make(1, INT(0), NULL, NULL)));
}

Test(canonical, bookkeeping_fields_left_out)
{
    tfs_record *a = make(7, INT(1), "X", NULL), *b = make(7, INT(1), "X", NULL);
    tfs_record_set_text(a, 5, TFS_SDK_TIMESTAMP, "2026-01-01 00:00:00", 19);
    tfs_record_set_text(b, 5, TFS_SDK_TIMESTAMP, "2026-06-30 12:00:00", 19);
    cr_assert_eq(hash(a), hash(b));
}

Test(canonical, field_boundaries_do_not_collide)
{
    /* "ab" + "c" must not equal "a" + "bc" */
    static const tfs_sdk_field f2[] = {{"a", TFS_SDK_TEXT, 0, 0, 0, 0},
                                       {"b", TFS_SDK_TEXT, 0, 0, 0, 0}};
    static const tfs_sdk_entity e2 = {"two", f2, 2};
    tfs_record *x = tfs_record_new(arena, &e2), *y = tfs_record_new(arena, &e2);
    tfs_record_set_text(x, 0, TFS_SDK_TEXT, "ab", 2);
    tfs_record_set_text(x, 1, TFS_SDK_TEXT, "c", 1);
    tfs_record_set_text(y, 0, TFS_SDK_TEXT, "a", 1);
    tfs_record_set_text(y, 1, TFS_SDK_TEXT, "bc", 2);
    cr_assert_neq(hash(x), hash(y));
}

/* Found by tests/fuzz/canonical_fuzz.c: a payload without a length ran to the next ';', so
 * a decimal, date or timestamp text holding one was read as two values. */
Test(canonical, semicolons_in_unlengthed_payloads_do_not_collide)
{
    static const tfs_sdk_field fd[] = {{"a", TFS_SDK_DECIMAL, 0, 0, 14, 2},
                                       {"b", TFS_SDK_DECIMAL, 0, 0, 14, 2}};
    static const tfs_sdk_entity ed = {"dd", fd, 2};
    tfs_record *x = tfs_record_new(arena, &ed), *y = tfs_record_new(arena, &ed);
    tfs_record_set_text(x, 0, TFS_SDK_DECIMAL, "1;n2", 4);
    tfs_record_set_text(x, 1, TFS_SDK_DECIMAL, "3", 1);
    tfs_record_set_text(y, 0, TFS_SDK_DECIMAL, "1", 1);
    tfs_record_set_text(y, 1, TFS_SDK_DECIMAL, "2;n3", 4);
    cr_assert_neq(hash(x), hash(y), "\"1;n2\",\"3\" and \"1\",\"2;n3\" share a hash");

    static const tfs_sdk_field ft[] = {{"a", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
                                       {"b", TFS_SDK_DATE, 0, 0, 0, 0}};
    static const tfs_sdk_entity et = {"td", ft, 2};
    x = tfs_record_new(arena, &et);
    y = tfs_record_new(arena, &et);
    tfs_record_set_text(x, 0, TFS_SDK_TIMESTAMP, "x;Dy", 4);
    tfs_record_set_text(y, 0, TFS_SDK_TIMESTAMP, "x", 1);
    tfs_record_set_text(y, 1, TFS_SDK_DATE, "y", 1);
    /* x's date is null: "Tx;Dy;" + "N;" against "Tx;" + "Dy;" + ... must differ too. */
    cr_assert_neq(hash(x), hash(y));

    /* Well-formed values keep the encoding they had (no stored hash changes). */
    tfs_buf b = TFS_BUF_INIT;
    tfs_value v = {.type = TFS_SDK_TIMESTAMP, .len = 23, .u.s = "2026-11-21 08:00:00.500"};
    tfs_canonical_value(&b, &v, &ft[0]);
    cr_assert_str_eq(tfs_buf_str(&b), "T2026-11-21 08:00:00.5;");
    tfs_buf_reset(&b);
    v = (tfs_value){.type = TFS_SDK_DECIMAL, .len = 4, .u.s = "1;n2"};
    tfs_canonical_value(&b, &v, &fd[0]);
    cr_assert_str_eq(tfs_buf_str(&b), "n?4:1;n2;");
    tfs_buf_free(&b);
}

Test(canonical, record_key_escapes_separator)
{
    static const tfs_sdk_field f2[] = {{"a", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY, 0, 0, 0},
                                       {"b", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0}};
    static const tfs_sdk_entity e2 = {"k", f2, 2};
    tfs_record *x = tfs_record_new(arena, &e2);
    tfs_record_set_text(x, 0, TFS_SDK_TEXT, "a|b", 3);
    x->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    cr_assert_str_eq(tfs_record_key(arena, x), "a\\|b|2026");
    cr_assert_str_eq(tfs_record_key(arena, make(10042, INT(1), NULL, NULL)), "10042|2026");
}

Test(canonical, record_to_json_keeps_nulls_and_decimals)
{
    tfs_record *r = make(3, DEC("10.10"), NULL, NULL);
    json_t *j = tfs_record_to_json(r);
    cr_assert(json_is_null(json_object_get(j, "name")), "a null field stays a field");
    cr_assert_str_eq(json_string_value(json_object_get(j, "amount")), "10.10");
    cr_assert_eq(json_integer_value(json_object_get(j, "id")), 3);
    json_decref(j);
}

Test(canonical, arena_reuses_memory_after_reset)
{
    /* The first round takes its chunks from the allocator; after a reset the same
     * allocations are served from the kept chunks, at the very same addresses, and no new
     * chunk is obtained. */
    enum { N = 10000 };
    static void *first[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(first[i] = tfs_arena_alloc(arena, 100));
    size_t chunks = tfs_arena_chunks_new(arena);
    cr_assert_gt(chunks, 10, "a million bytes take several 64 KiB chunks");
    for (int round = 1; round < 3; round++) {
        tfs_arena_reset(arena);
        cr_assert_eq(tfs_arena_used(arena), 0);
        for (int i = 0; i < N; i++) {
            void *p = tfs_arena_alloc(arena, 100);
            cr_assert_eq(p, first[i], "round %d, allocation %d: not the memory of round 0",
                         round, i);
        }
        cr_assert_eq(tfs_arena_chunks_new(arena), chunks,
                     "round %d obtained %zu new chunks", round,
                     tfs_arena_chunks_new(arena) - chunks);
    }
    /* An oversized allocation gets its own chunk, which a reset gives back rather than
     * keeping; the ordinary chunks are still reused. */
    char *big = tfs_arena_alloc(arena, 1 << 20);
    cr_assert_not_null(big);
    memset(big, 1, 1 << 20);
    cr_assert_eq(tfs_arena_chunks_new(arena), chunks + 1);
    tfs_arena_reset(arena);
    cr_assert_eq(tfs_arena_alloc(arena, 100), first[0]);
    cr_assert_not_null(tfs_arena_alloc(arena, 1 << 20));
    cr_assert_eq(tfs_arena_chunks_new(arena), chunks + 2, "the big chunk was not kept");
}

Test(canonical, arena_counts_what_it_holds_and_trim_gives_it_all_back)
{
    cr_assert_eq(tfs_arena_held(arena), 0);
    for (int i = 0; i < 10000; i++)
        cr_assert_not_null(tfs_arena_alloc(arena, 100));
    size_t held = tfs_arena_held(arena);
    cr_assert_geq(held, 10000 * 100, "held %zu", held);
    /* A reset keeps the chunks (held stays), an oversized one excepted. */
    cr_assert_not_null(tfs_arena_alloc(arena, 1 << 20));
    cr_assert_geq(tfs_arena_held(arena), held + (1 << 20));
    tfs_arena_reset(arena);
    cr_assert_eq(tfs_arena_held(arena), held);
    /* A trim gives everything back, and the arena is still usable. */
    tfs_arena_trim(arena);
    cr_assert_eq(tfs_arena_held(arena), 0);
    cr_assert_eq(tfs_arena_used(arena), 0);
    size_t chunks = tfs_arena_chunks_new(arena);
    char *p = tfs_arena_strdup(arena, "after the trim");
    cr_assert_str_eq(p, "after the trim");
    cr_assert_eq(tfs_arena_chunks_new(arena), chunks + 1, "a new chunk after the trim");
    cr_assert_gt(tfs_arena_held(arena), 0);
}

Test(canonical, arena_refuses_sizes_that_would_wrap)
{
    /* Rounding SIZE_MAX - 3 up to the alignment wraps to 0; it must fail, not be served a
     * few bytes that the caller then overruns. */
    cr_assert_null(tfs_arena_alloc(arena, SIZE_MAX - 3));
    cr_assert_null(tfs_arena_alloc(arena, SIZE_MAX));
    cr_assert_null(tfs_arena_alloc(arena, SIZE_MAX - sizeof(max_align_t)));
    cr_assert_null(tfs_arena_calloc(arena, SIZE_MAX / 2, 4));
    cr_assert_null(tfs_arena_strndup(arena, "x", SIZE_MAX));
    cr_assert_eq(tfs_arena_used(arena), 0);
    cr_assert_not_null(tfs_arena_alloc(arena, 1), "the arena still works");
}

Test(canonical, float_to_integer_is_range_checked)
{
    static const tfs_sdk_field f1[] = {{"x", TFS_SDK_FLOAT64, 0, 0, 0, 0}};
    static const tfs_sdk_entity e1 = {"f", f1, 1};
    tfs_record *r = tfs_record_new(arena, &e1);
    static const double bad[] = {1e300, -1e300, 9223372036854775808.0, -9.3e18, NAN,
                                 INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r->values[0] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = bad[i]};
        int64_t x = 42;
        tfs_error err = {0};
        cr_expect_eq(tfs_value_to_int64(&r->values[0], &x, &err), TFS_EINVAL, "%g", bad[i]);
        cr_expect_eq(x, 0);
        cr_expect(strstr(err.message, "could not read") && strstr(err.message, "as an integer"),
                  "%s", err.message);
    }
    /* What the SDK's rec_get_int makes of these is tested in tests/sdk/sdk_host_test.c. */
    static const struct {
        double d;
        int64_t want;
    } good[] = {{-9223372036854775808.0, INT64_MIN},
                {9223372036854774784.0, INT64_C(9223372036854774784)},
                {-2.75, -2}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        r->values[0] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = good[i].d};
        int64_t x = 42;
        cr_expect_eq(tfs_value_to_int64(&r->values[0], &x, NULL), 0, "%g", good[i].d);
        cr_expect_eq(x, good[i].want, "%g", good[i].d);
    }
}

Test(canonical, decimals_hash_as_the_target_holds_them)
{
    /* amount is numeric(14,2): what is hashed is the value rounded as PostgreSQL rounds it. */
    uint64_t h = hash(make(1, DEC("0.13"), "A", NULL));
    cr_assert_eq(hash(make(1, DEC("0.125"), "A", NULL)), h, "0.125 is stored as 0.13");
    cr_assert_eq(hash(make(1, FLT(0.125), "A", NULL)), h);
    cr_assert_eq(hash(make(1, DEC("1.25e-1"), "A", NULL)), h);
    cr_assert_neq(hash(make(1, DEC("0.12"), "A", NULL)), h);
    uint64_t one = hash(make(1, DEC("1.01"), "A", NULL));
    cr_assert_eq(hash(make(1, FLT(1.005), "A", NULL)), one, "1.005 as a double rounds as 1.005");
    cr_assert_eq(hash(make(1, DEC("1.005"), "A", NULL)), one);
    /* Past 15 significant digits nothing is lost: these differ in the 20th digit. */
    cr_assert_neq(hash(make(1, DEC("123456789012345678.01"), "A", NULL)),
                  hash(make(1, DEC("123456789012345678.02"), "A", NULL)));
    cr_assert_eq(hash(make(1, DEC("123456789012345678.014"), "A", NULL)),
                 hash(make(1, DEC("123456789012345678.01"), "A", NULL)));
    cr_assert_eq(hash(make(1, DEC("-0.004"), "A", NULL)), hash(make(1, DEC("0"), "A", NULL)));
}

Test(canonical, hash_fails_rather_than_hash_a_truncated_encoding)
{
    /* The encoding of this record outgrows the buffer's first 256 bytes; when growing it
     * fails, the result is an error, never the hash of the first part. */
    char name[1001];
    memset(name, 'x', 1000);
    name[1000] = '\0';
    static const tfs_sdk_field f1[] = {{"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
                                       {"name", TFS_SDK_TEXT, 0, 0, 0, 0}};
    static const tfs_sdk_entity e1 = {"long", f1, 2};
    tfs_record *r = tfs_record_new(arena, &e1);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1};
    tfs_record_set_text(r, 1, TFS_SDK_TEXT, name, 1000);
    const tfs_record *rs[] = {r};
    tfs_buf b = TFS_BUF_INIT;
    uint64_t good;
    cr_assert_eq(tfs_canonical_hash(&b, rs, 1, &good, NULL), 0);
    tfs_buf_free(&b);

    tfs_alloc_fail_at(2, false); /* the first allocation succeeds, growing it fails */
    uint64_t h = 1;
    tfs_error err = {0};
    int rc = tfs_canonical_hash(&b, rs, 1, &h, &err);
    unsigned long injected = tfs_alloc_injected();
    tfs_alloc_fail_at(0, false);
    cr_assert_eq(injected, 1);
    cr_assert_eq(rc, TFS_ENOMEM, "hashed %zu bytes of a %s encoding", b.len,
                 b.oom ? "truncated" : "whole");
    cr_assert_eq(h, 0);
    cr_assert(strstr(err.message, "out of memory"), "%s", err.message);
    tfs_buf_free(&b);

    tfs_alloc_fail_at(2, false);
    cr_assert_eq(tfs_hash_records(&b, rs, 1), 0, "the old entry point gives 0, not a hash");
    cr_assert(b.oom);
    tfs_alloc_fail_at(0, false);
    tfs_buf_reset(&b);
    cr_assert_eq(tfs_hash_records(&b, rs, 1), good, "and the right hash once memory is there");
    tfs_buf_free(&b);
}

Test(canonical, json_text_equals_the_jansson_form)
{
    tfs_record *r = make(9, DEC("1.50"), "tab\there \"quoted\" back\\slash \x01 ÑANDÚ", NULL);
    r->values[4] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 0.1};
    tfs_buf b = TFS_BUF_INIT;
    cr_assert_eq(tfs_record_json_append(&b, r), 0);
    json_error_t je;
    json_t *parsed = json_loads(tfs_buf_str(&b), 0, &je);
    cr_assert_not_null(parsed, "not JSON: %s (%s)", tfs_buf_str(&b), je.text);
    json_t *want = tfs_record_to_json(r);
    cr_assert(json_equal(parsed, want), "%s", tfs_buf_str(&b));
    json_decref(parsed);
    json_decref(want);
    tfs_buf_free(&b);
}
