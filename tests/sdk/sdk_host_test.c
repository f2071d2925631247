/* tests/sdk/sdk_host_test.c — the host functions of the SDK table (sdk_host.c) as a plugin
 * calls them: batches, cursors, record setters and getters, their range checks, and the
 * defined results of reading a float as an integer. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "plugin_host.h"
#include "sdk_host.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"x", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 0, 0, 0},
};
static const tfs_sdk_entity entity = {"thing", fields, 3};

static tfs_sdk_host host;
static tfs_arena *arena;
static tfs_batch batch;

static void setup(void)
{
    tfs_sdk_host_fill(&host, 2026);
    arena = tfs_arena_new();
    cr_assert_not_null(arena);
    tfs_batch_init(&batch, arena, &entity);
}

static void teardown(void)
{
    tfs_arena_free(arena);
}

TestSuite(sdk_host, .init = setup, .fini = teardown);

Test(sdk_host, table_is_complete)
{
    cr_assert_eq(host.struct_size, sizeof host);
    cr_assert_eq(host.sdk_major, TFS_SDK_VERSION_MAJOR);
    cr_assert_eq(host.sdk_minor, TFS_SDK_VERSION_MINOR);
    cr_assert_eq(host.roll_year, 2026);
    /* Every member after roll_year is a function pointer: none may be left NULL. */
    const char *p = (const char *)&host.log;
    const char *end = (const char *)&host + sizeof host;
    for (size_t i = 0; p + sizeof(void (*)(void)) <= end; p += sizeof(void (*)(void)), i++) {
        void (*fn)(void);
        memcpy(&fn, p, sizeof fn);
        cr_assert_not_null(fn, "host function %zu after roll_year is NULL", i);
    }
    cr_assert(TFS_SDK_HOST_HAS(&host, batch_add_delete));
}

Test(sdk_host, batches_grow_and_copy_cursors)
{
    for (int i = 0; i < 600; i++) {
        tfs_sdk_record *r = host.batch_add(&batch);
        cr_assert_not_null(r);
        cr_assert_eq(host.rec_set_int(r, 0, i), 0);
    }
    tfs_sdk_record *d = host.batch_add_delete(&batch);
    cr_assert_not_null(d);
    cr_assert_eq(batch.n, 601);
    cr_assert(batch.recs[600]->deleted);
    cr_assert_not(batch.recs[599]->deleted);
    cr_assert_eq(host.rec_get_int(batch.recs[599], 0), 599, "records survive the growth");
    char cursor[] = "v1|abc";
    cr_assert_eq(host.batch_set_cursor(&batch, cursor, 6), 0);
    cursor[0] = 'X';
    cr_assert(batch.cursor_set);
    cr_assert_eq(memcmp(batch.cursor, "v1|abc", 6), 0, "the cursor is copied");
    cr_assert_eq(host.batch_set_cursor(&batch, NULL, 3), -1, "a NULL cursor with a length");
    host.batch_set_done(&batch);
    cr_assert(batch.done);
}

Test(sdk_host, setters_check_the_field_index)
{
    tfs_sdk_record *r = host.batch_add(&batch);
    cr_assert_eq(host.rec_n_fields(r), 3);
    cr_assert_eq(host.rec_set_null(r, 3), -1);
    cr_assert_eq(host.rec_set_bool(r, 3, 1), -1);
    cr_assert_eq(host.rec_set_int(r, 3, 1), -1);
    cr_assert_eq(host.rec_set_float(r, 3, 1), -1);
    cr_assert_eq(host.rec_set_text(r, 3, TFS_SDK_TEXT, "a", 1), -1);
    cr_assert_eq(host.rec_set_text(r, 2, TFS_SDK_INT64, "a", 1), -1, "not a text type");
    cr_assert_eq(host.rec_set_text(r, 2, TFS_SDK_TEXT, NULL, 0), -1);
    cr_assert_eq(host.rec_type(r, 3), TFS_SDK_NULL);
    cr_assert_eq(host.rec_get_int(r, 3), 0);
    cr_assert_null(host.rec_get_text(r, 3, NULL));
}

Test(sdk_host, text_is_copied_and_read_back)
{
    tfs_sdk_record *r = host.batch_add(&batch);
    char name[] = "Main St";
    cr_assert_eq(host.rec_set_text(r, 2, TFS_SDK_TEXT, name, (size_t)-1), 0);
    name[0] = 'X';
    size_t len = 0;
    cr_assert_str_eq(host.rec_get_text(r, 2, &len), "Main St");
    cr_assert_eq(len, 7);
    cr_assert_eq(host.rec_type(r, 2), TFS_SDK_TEXT);
    cr_assert_null(host.rec_get_text(r, 0, &len), "an int is not text");
}

Test(sdk_host, float_read_as_int_is_defined)
{
    tfs_sdk_record *r = host.batch_add(&batch);
    static const struct {
        double in;
        int64_t out;
    } cases[] = {
        {3.9, 3},
        {-3.9, -3},
        {0.0, 0},
        {9223372036854774784.0, INT64_C(9223372036854774784)}, /* the largest below 2^63 */
        {9223372036854775808.0, INT64_MAX},                    /* 2^63 */
        {1e300, INT64_MAX},
        {-9223372036854775808.0, INT64_MIN}, /* -2^63 is in range */
        {-1e300, INT64_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(host.rec_set_float(r, 1, cases[i].in), 0);
        cr_assert_eq(host.rec_get_int(r, 1), cases[i].out, "%g reads as %" PRId64 ", not %" PRId64,
                     cases[i].in, cases[i].out, host.rec_get_int(r, 1));
    }
    host.rec_set_float(r, 1, NAN);
    cr_assert_eq(host.rec_get_int(r, 1), 0, "NaN reads as 0");
    host.rec_set_float(r, 1, INFINITY);
    cr_assert_eq(host.rec_get_int(r, 1), INT64_MAX);
    host.rec_set_float(r, 1, -INFINITY);
    cr_assert_eq(host.rec_get_int(r, 1), INT64_MIN);
    host.rec_set_int(r, 0, INT64_MIN);
    cr_assert_eq(host.rec_get_float(r, 0), -9223372036854775808.0);
}

Test(sdk_host, results_and_errors)
{
    tfs_results res;
    cr_assert_eq(tfs_results_init(&res, 2), 0);
    host.result_set(&res, 1, TFS_SDK_EPERMANENT, "bad row %d", 7);
    host.result_set(&res, 2, TFS_SDK_EPERMANENT, "out of range"); /* ignored */
    cr_assert_eq(res.status[0], TFS_SDK_OK);
    cr_assert_eq(res.status[1], TFS_SDK_EPERMANENT);
    cr_assert_str_eq(res.message[1], "bad row 7");
    tfs_results_free(&res);
    tfs_sdk_error e = {0};
    host.error_set(&e, "could not %s", "read");
    cr_assert(e.set);
    cr_assert_str_eq(e.message, "could not read");
    host.error_set(NULL, "ignored");
}
