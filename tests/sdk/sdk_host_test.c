/* tests/sdk/sdk_host_test.c — the host functions of the SDK table (sdk_host.c) as a plugin
 * calls them: batches, cursors, record setters and getters, their range checks, the
 * defined results of reading a float as an integer, and the 1.3 additions: config_system
 * and config_dir (only for the config array of the cb_check or cb_open under way, each
 * thread its own) and op_source (an op out of range is its own source). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

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

/* ---- 1.3: config_system, config_dir, op_source ---- */

Test(sdk_host, config_functions_answer_only_the_pointer_of_the_call)
{
    const char *config[] = {"a", "b"}, *other[] = {"a", "b"};
    cr_assert(TFS_SDK_HOST_HAS(&host, config_system));
    cr_assert(TFS_SDK_HOST_HAS(&host, config_dir));
    cr_expect_null(host.config_system(config), "no call under way");
    tfs_sdk_host_config_enter(config, "cama", "/etc/tfsync");
    cr_expect_str_eq(host.config_system(config), "cama");
    cr_expect_str_eq(host.config_dir(config), "/etc/tfsync");
    cr_expect_null(host.config_system(other), "an equal array at another address");
    cr_expect_null(host.config_dir(other));
    cr_expect_null(host.config_system(NULL));
    tfs_sdk_host_config_leave();
    cr_expect_null(host.config_system(config), "after the call");
    cr_expect_null(host.config_dir(config), "after the call");
}

static tfs_plugin *probe;

/* The probe's one record, read as name -> text. */
static const char *probe_field(const tfs_batch *b, const char *name)
{
    int f = tfs_entity_field_index(b->entity, name);
    cr_assert_geq(f, 0);
    return b->recs[0]->values[f].u.s;
}

typedef struct probe_open_arg {
    const char *system, *dir, *name;
    int wait;
    tfs_instance *inst;
    int rc;
    tfs_error err;
} probe_open_arg;

static void *probe_open_thread(void *arg)
{
    probe_open_arg *a = arg;
    json_t *s = json_pack("{sssb}", "name", a->name, "wait", a->wait);
    a->rc = tfs_instance_open(probe, a->system, s, a->dir, &a->inst, &a->err);
    json_decref(s);
    return NULL;
}

static void probe_expect(probe_open_arg *a)
{
    cr_assert_eq(a->rc, 0, "%s", a->err.message);
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(a->inst, 0));
    tfs_error err = {0};
    cr_assert_eq(tfs_instance_read(a->inst, 0, TFS_SDK_READ_FULL, NULL, 0, 1, &b, &err), 0,
                 "%s", err.message);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(probe_field(&b, "name"), a->name);
    cr_expect_str_eq(probe_field(&b, "check_system"), a->system, "cb_check of %s", a->name);
    cr_expect_str_eq(probe_field(&b, "check_dir"), a->dir);
    cr_expect_str_eq(probe_field(&b, "open_system"), a->system, "cb_open of %s", a->name);
    cr_expect_str_eq(probe_field(&b, "open_dir"), a->dir);
    cr_expect_str_eq(probe_field(&b, "other"), "-", "another pointer reads NULL");
    cr_expect_str_eq(probe_field(&b, "after"), "-", "the open's array after the call");
    tfs_instance_close(a->inst);
}

/* Through the plugin host: cb_check and cb_open see their system and folder, nothing else,
 * and two threads opening at once each see their own. */
Test(sdk_host, config_functions_through_the_plugin_host, .timeout = 30)
{
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(TFS_CONFIG_PROBE_SO, 2026, &probe, &err), 0, "%s", err.message);
    probe_open_arg one = {.system = "gis", .dir = "/srv/county", .name = "one"};
    probe_open_thread(&one);
    probe_expect(&one);

    probe_open_arg a = {.system = "crm", .dir = "/srv/a", .name = "a", .wait = 1};
    probe_open_arg b = {.system = "erp", .dir = "/srv/b", .name = "b", .wait = 1};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, probe_open_thread, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, probe_open_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    probe_expect(&a);
    probe_expect(&b);
    tfs_plugin_free(probe, true);
}

Test(sdk_host, op_source_answers_each_op_and_itself_out_of_range)
{
    cr_assert(TFS_SDK_HOST_HAS(&host, op_source));
    tfs_results r;
    cr_assert_eq(tfs_results_init(&r, 5), 0);
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(host.op_source(&r, i), i, "tfs_results_init: each op its own source");
    /* Two source records: ops 0-2 of the first, 3-4 of the second. */
    size_t src[] = {0, 0, 0, 1, 1};
    memcpy(r.source, src, sizeof src);
    for (size_t i = 0; i < 5; i++)
        cr_expect_eq(host.op_source(&r, i), src[i]);
    cr_expect_eq(host.op_source(&r, 5), 5, "out of range: the op itself");
    cr_expect_eq(host.op_source(&r, SIZE_MAX), SIZE_MAX);
    cr_expect_eq(host.op_source(NULL, 3), 3);
    tfs_results_free(&r);
}
