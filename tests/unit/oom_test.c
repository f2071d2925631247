/* tests/unit/oom_test.c — every allocation of record building, canonical hashing and
 * validation made to fail in turn, SQLite style.
 *
 * For each operation: for n = 1, 2, ... the nth allocation fails (once, then in a second
 * pass it and every later one: "sticky"), and the operation must either succeed with the
 * right result or fail with TFS_ENOMEM and a message saying what could not be done; never
 * crash, never leak (checked by LeakSanitizer in the sanitizer build), and the same
 * operation without injection afterwards gives the right result. The loop ends at the first
 * n that no allocation reached: every allocation point was tried. jansson allocates through
 * tfs_malloc here too, so the reasons a validation builds take part.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "canonical.h"
#include "decimal.h"
#include "record.h"
#include "sdk_host.h"
#include "validator.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define TFS_LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define TFS_LEAK_CHECK() 0
#endif

static void setup(void)
{
    tfs_alloc_init(); /* jansson through tfs_malloc too */
}

static void teardown(void)
{
    tfs_alloc_fail_at(0, false);
}

TestSuite(oom, .init = setup, .fini = teardown);

/* In the sanitizer build, fails the test when anything allocated so far is unreachable
 * (Criterion does not count a failure in a fini). */
static void assert_no_leaks(void)
{
    cr_assert_eq(TFS_LEAK_CHECK(), 0, "LeakSanitizer found leaks (see above)");
}

/* A CAMA-like parcel: keys, decimals (one unbounded, for values longer than the rounding
 * routine's stack buffer), text (one longer than a buffer's first 256 bytes), a date, a
 * timestamp, JSON and a bookkeeping field. */
enum { F_PARID, F_TAXYR, F_ACRES, F_PRICE, F_CLASS, F_ADRNO, F_DEACTIVAT, F_SEEN, F_EXTRA,
       F_NOTES, F_WEN, N_FIELDS };
static const tfs_sdk_field fields[N_FIELDS] = {
    [F_PARID] = {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    [F_TAXYR] = {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    [F_ACRES] = {"acres", TFS_SDK_DECIMAL, 0, 0, 12, 4},
    [F_PRICE] = {"price", TFS_SDK_DECIMAL, 0, 0, 0, 2},
    [F_CLASS] = {"class", TFS_SDK_TEXT, 0, 4, 0, 0},
    [F_ADRNO] = {"adrno", TFS_SDK_INT64, 0, 0, 0, 0},
    [F_DEACTIVAT] = {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    [F_SEEN] = {"seen", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
    [F_EXTRA] = {"extra", TFS_SDK_JSON, 0, 0, 0, 0},
    [F_NOTES] = {"notes", TFS_SDK_TEXT, 0, 0, 0, 0},
    [F_WEN] = {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"pardat", fields, N_FIELDS};

static char long_price[260]; /* 250 digits, then ".125" */
static char notes[700];

static void make_texts(void)
{
    memset(long_price, '7', 250);
    strcpy(long_price + 250, ".125");
    for (int i = 0; i < 699; i++)
        notes[i] = (char)('a' + i % 26);
    notes[699] = '\0';
}

static int enomem(tfs_error *err, const char *what)
{
    return tfs_error_set(err, TFS_ENOMEM, "could not %s: out of memory", what);
}

/* The parcel as a mapping would produce it: loosely typed, before validation. NULL when
 * out of memory. */
static tfs_record *raw_parcel(tfs_arena *a, int i)
{
    tfs_record *r = tfs_record_new(a, &entity);
    if (!r)
        return NULL;
    char parid[32];
    snprintf(parid, sizeof parid, "R%06d", i);
    int rc = tfs_record_set_text(r, F_PARID, TFS_SDK_TEXT, parid, strlen(parid));
    r->values[F_TAXYR] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 2026.0};
    r->values[F_ACRES] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 1.00105};
    rc |= tfs_record_set_text(r, F_PRICE, TFS_SDK_TEXT, long_price, strlen(long_price));
    r->values[F_CLASS] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 12};
    r->values[F_ADRNO] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 42.0};
    rc |= tfs_record_set_text(r, F_DEACTIVAT, TFS_SDK_TEXT, "2026-02-28", 10);
    rc |= tfs_record_set_text(r, F_SEEN, TFS_SDK_TEXT, "2026-02-28 10:11:12.500", 23);
    rc |= tfs_record_set_text(r, F_EXTRA, TFS_SDK_TEXT, "{\"zone\":[\"R1\",2]}", 17);
    rc |= tfs_record_set_text(r, F_NOTES, TFS_SDK_TEXT, notes, strlen(notes));
    rc |= tfs_record_set_text(r, F_WEN, TFS_SDK_TEXT, "2026-01-01 00:00:00", 19);
    return rc ? NULL : r;
}

/* ---- the loop ------------------------------------------------------------------------ */

typedef struct op {
    const char *name;
    void *(*prepare)(void);             /* outside injection: the operation's input */
    int (*run)(void *st, tfs_error *err); /* under injection */
    void (*check)(void *st);            /* the result of a successful run is right */
    void (*cleanup)(void *st);          /* frees what run and prepare made */
} op;

static void run_clean(const op *o)
{
    void *st = o->prepare();
    tfs_error err = {0};
    int rc = o->run(st, &err);
    cr_assert_eq(rc, 0, "%s without injection: %s", o->name, err.message);
    o->check(st);
    o->cleanup(st);
}

/* Returns how many allocation points were tried. */
static unsigned long oom_loop(const op *o, bool sticky)
{
    for (unsigned long n = 1;; n++) {
        void *st = o->prepare();
        tfs_error err = {0};
        tfs_alloc_fail_at(n, sticky);
        int rc = o->run(st, &err);
        unsigned long injected = tfs_alloc_injected();
        tfs_alloc_fail_at(0, false);
        if (injected == 0) {
            cr_assert_eq(rc, 0, "%s: failed with no allocation failing: %s", o->name,
                         err.message);
            o->check(st);
            o->cleanup(st);
            cr_log_info("%s%s: %lu allocation points tried", o->name,
                        sticky ? " (sticky)" : "", n - 1);
            return n - 1;
        }
        if (rc == 0) {
            o->check(st); /* it coped with the failure: the result must still be right */
        } else {
            cr_assert_eq(rc, TFS_ENOMEM, "%s, allocation %lu failing: code %d (%s)", o->name,
                         n, rc, err.message);
            cr_assert(strstr(err.message, "out of memory"), "%s, allocation %lu: \"%s\"",
                      o->name, n, err.message);
        }
        o->cleanup(st);
        run_clean(o); /* and the same again, with memory, is right */
        cr_assert_lt(n, 100000, "%s: the loop does not end", o->name);
    }
}

static void loop_both(const op *o)
{
    run_clean(o);
    unsigned long once = oom_loop(o, false);
    unsigned long sticky = oom_loop(o, true);
    cr_assert_gt(once, 0, "%s allocated nothing: the test tests nothing", o->name);
    cr_assert_eq(sticky, once);
}

/* ---- record building ------------------------------------------------------------------ */

typedef struct build_st {
    tfs_arena *a, *b;
    tfs_batch batch;
    char *key;
    tfs_buf json;
} build_st;

static char *expected_json;

static void *build_prepare(void)
{
    return calloc(1, sizeof(build_st));
}

/* A source batch of 600 parcels through the SDK's host functions (the records array and
 * the arena grow), one copied to another arena, its key, and its JSON both ways. */
static int build_run(void *p, tfs_error *err)
{
    build_st *st = p;
    tfs_sdk_host host = {0};
    tfs_sdk_host_fill(&host, 2026);
    if (!(st->a = tfs_arena_new()) || !(st->b = tfs_arena_new()))
        return enomem(err, "create an arena");
    tfs_batch_init(&st->batch, st->a, &entity);
    for (int i = 0; i < 600; i++) {
        tfs_sdk_record *r = host.batch_add(&st->batch);
        if (!r)
            return enomem(err, "add a record to a batch");
        char parid[32];
        snprintf(parid, sizeof parid, "R%06d", i);
        if (host.rec_set_text(r, F_PARID, TFS_SDK_TEXT, parid, (size_t)-1) < 0 ||
            host.rec_set_int(r, F_TAXYR, 2026) < 0 ||
            host.rec_set_text(r, F_ACRES, TFS_SDK_DECIMAL, "1.0011", (size_t)-1) < 0 ||
            host.rec_set_text(r, F_NOTES, TFS_SDK_TEXT, notes, (size_t)-1) < 0)
            return enomem(err, "set a field");
    }
    if (host.batch_set_cursor(&st->batch, "cursor", 6) < 0)
        return enomem(err, "set a batch cursor");
    tfs_record *r = raw_parcel(st->a, 7);
    if (!r)
        return enomem(err, "build a record");
    r->values[F_EXTRA].type = TFS_SDK_JSON; /* embedded parsed in the record's JSON */
    tfs_record *c = tfs_record_copy(st->b, r);
    if (!c)
        return enomem(err, "copy a record");
    if (!(st->key = tfs_record_key(st->b, c)))
        return enomem(err, "make a record key");
    json_t *j = tfs_record_to_json(c);
    if (!j)
        return enomem(err, "make a record's JSON");
    tfs_record *back = tfs_record_from_json(st->b, &entity, j);
    json_decref(j);
    if (!back)
        return enomem(err, "read a record from JSON");
    if (tfs_record_json_append(&st->json, back) < 0)
        return enomem(err, "write a record's JSON");
    return 0;
}

static void build_check(void *p)
{
    build_st *st = p;
    cr_assert_eq(st->batch.n, 600);
    cr_assert(!st->batch.oom);
    cr_assert_str_eq(st->batch.recs[599]->values[F_PARID].u.s, "R000599");
    cr_assert_str_eq(st->batch.recs[599]->values[F_NOTES].u.s, notes);
    cr_assert_eq(memcmp(st->batch.cursor, "cursor", 6), 0);
    cr_assert_str_eq(st->key, "R000007|2026");
    cr_assert(!st->json.oom);
    if (expected_json) {
        const char *got = tfs_buf_str(&st->json);
        size_t i = 0;
        while (got[i] && got[i] == expected_json[i])
            i++;
        cr_assert(got[i] == expected_json[i], "the record's JSON differs at byte %zu: \"%.60s\", "
                  "not \"%.60s\"", i, got + i, expected_json + i);
    }
}

static void build_cleanup(void *p)
{
    build_st *st = p;
    tfs_arena_free(st->a);
    tfs_arena_free(st->b);
    tfs_buf_free(&st->json);
    free(st);
}

Test(oom, record_building)
{
    make_texts();
    static const op o = {"record building", build_prepare, build_run, build_check,
                         build_cleanup};
    build_st *st = build_prepare();
    cr_assert_eq(build_run(st, NULL), 0);
    expected_json = strdup(tfs_buf_str(&st->json));
    cr_assert(strstr(expected_json, "\"extra\":{\"zone\":[\"R1\",2]}"), "%s", expected_json);
    cr_assert(strstr(expected_json, "\"acres\":1.00105"), "%s", expected_json);
    build_cleanup(st);
    loop_both(&o);
    free(expected_json);
    assert_no_leaks();
}

/* ---- canonical encoding and hash ------------------------------------------------------ */

typedef struct hash_st {
    tfs_arena *a;
    const tfs_record *recs[3];
    tfs_buf scratch;
    uint64_t hash;
} hash_st;

static uint64_t expected_hash;

static void *hash_prepare(void)
{
    hash_st *st = calloc(1, sizeof *st);
    st->a = tfs_arena_new();
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(st->recs[i] = raw_parcel(st->a, i));
    return st;
}

static int hash_run(void *p, tfs_error *err)
{
    hash_st *st = p;
    return tfs_canonical_hash(&st->scratch, st->recs, 3, &st->hash, err);
}

static void hash_check(void *p)
{
    hash_st *st = p;
    cr_assert(!st->scratch.oom);
    cr_assert_eq(st->hash, expected_hash, "%016llx, not %016llx", (unsigned long long)st->hash,
                 (unsigned long long)expected_hash);
}

static void hash_cleanup(void *p)
{
    hash_st *st = p;
    tfs_buf_free(&st->scratch);
    tfs_arena_free(st->a);
    free(st);
}

Test(oom, canonical_hash)
{
    make_texts();
    static const op o = {"canonical hash", hash_prepare, hash_run, hash_check, hash_cleanup};
    hash_st *st = hash_prepare();
    cr_assert_eq(hash_run(st, NULL), 0);
    expected_hash = st->hash;
    /* The long price is rounded (…777.13) and encoded whole. */
    cr_assert(strstr(tfs_buf_str(&st->scratch), "7777.13;"), "%s", tfs_buf_str(&st->scratch));
    hash_cleanup(st);
    loop_both(&o);
    assert_no_leaks();
}

/* ---- validation ----------------------------------------------------------------------- */

typedef struct val_st {
    tfs_arena *a;
    tfs_record *r;
    json_t *reasons;
    int problems;
} val_st;

static void *val_prepare(void)
{
    return calloc(1, sizeof(val_st));
}

/* Builds the parcel in an arena whose first chunk it then fills, so that the text the
 * validator writes needs a new chunk, and validates it: coercions (float to integer and
 * decimal, integer to text, text to date, timestamp and JSON), a long decimal rounded, and
 * two problems whose reasons go into a JSON array. */
static int val_run(void *p, tfs_error *err)
{
    val_st *st = p;
    if (!(st->a = tfs_arena_new()))
        return enomem(err, "create an arena");
    if (!(st->r = raw_parcel(st->a, 3)) ||
        tfs_record_set_text(st->r, F_CLASS, TFS_SDK_TEXT, "TOOLONG", 7) < 0 ||
        tfs_record_set_text(st->r, F_ADRNO, TFS_SDK_TEXT, "12B", 3) < 0)
        return enomem(err, "build a record");
    /* The rest of the arena's first chunk taken, so that the validator's first copy needs
     * a chunk from the allocator. */
    size_t left = 64 * 1024 - tfs_arena_used(st->a);
    if (left && !tfs_arena_alloc(st->a, left))
        return enomem(err, "fill an arena");
    if (!(st->reasons = json_array()))
        return enomem(err, "make a reasons array");
    st->problems = tfs_validate_record(st->r, st->reasons);
    if (st->problems < 0)
        return enomem(err, "validate a record");
    return 0;
}

static void val_check(void *p)
{
    val_st *st = p;
    tfs_record *r = st->r;
    char *all = json_dumps(st->reasons, 0);
    cr_assert_eq(st->problems, 2, "%d problems: %s", st->problems, all);
    free(all);
    cr_assert_eq(json_array_size(st->reasons), 2);
    cr_assert_str_eq(json_string_value(json_array_get(st->reasons, 0)),
                     "pardat.class: 7 characters, at most 4");
    cr_assert_str_eq(json_string_value(json_array_get(st->reasons, 1)),
                     "pardat.adrno: expected an integer, got \"12B\"");
    cr_assert_eq(r->values[F_TAXYR].type, TFS_SDK_INT64);
    cr_assert_eq(r->values[F_TAXYR].u.i, 2026);
    cr_assert_eq(r->values[F_ACRES].type, TFS_SDK_DECIMAL);
    cr_assert_str_eq(r->values[F_ACRES].u.s, "1.0011");
    char want[260];
    memset(want, '7', 250);
    strcpy(want + 250, ".13");
    cr_assert_str_eq(r->values[F_PRICE].u.s, want);
    cr_assert_eq(r->values[F_DEACTIVAT].type, TFS_SDK_DATE);
    cr_assert_eq(r->values[F_SEEN].type, TFS_SDK_TIMESTAMP);
    cr_assert_eq(r->values[F_EXTRA].type, TFS_SDK_JSON);
    cr_assert_eq(r->values[F_WEN].type, TFS_SDK_NULL);
}

static void val_cleanup(void *p)
{
    val_st *st = p;
    json_decref(st->reasons);
    tfs_arena_free(st->a);
    free(st);
}

Test(oom, validation)
{
    make_texts();
    static const op o = {"validation", val_prepare, val_run, val_check, val_cleanup};
    loop_both(&o);
    assert_no_leaks();
}

/* ---- buffers -------------------------------------------------------------------------- */

Test(oom, buffer_takes_nothing_after_a_failed_append)
{
    /* Once an append failed, a later one that would fit must fail too: the buffer holds a
     * prefix of what was written, never text with a hole in it. */
    char big[1000];
    memset(big, 'b', sizeof big);
    tfs_buf b = TFS_BUF_INIT;
    tfs_alloc_fail_at(2, false);
    cr_assert_eq(tfs_buf_append(&b, big, 300), 0);  /* allocation 1 */
    cr_assert_eq(tfs_buf_append(&b, big, 1000), -1); /* allocation 2 fails */
    cr_assert_eq(tfs_buf_putc(&b, 'x'), -1, "fits in the 512 bytes, but the buffer failed");
    cr_assert_eq(tfs_buf_printf(&b, "%d", 7), -1);
    unsigned long injected = tfs_alloc_injected();
    tfs_alloc_fail_at(0, false);
    cr_assert_eq(injected, 1);
    cr_assert(b.oom);
    cr_assert_eq(b.len, 300);
    tfs_buf_reset(&b);
    cr_assert(!b.oom, "a reset clears the failure");
    cr_assert_eq(tfs_buf_puts(&b, "ok"), 0);
    cr_assert_str_eq(tfs_buf_str(&b), "ok");
    tfs_buf_free(&b);
    assert_no_leaks();
}
