/* tests/unit/audit_diff_test.c — what an audit entry says changed: only fields that differ,
 * before and after each, grouped by target entity; inserts, deletions, deactivations,
 * nulls, one-to-many mappings and records a mapping stops producing. */
#include <criterion/criterion.h>
#include <string.h>

#include "audit_diff.h"

static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 10, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"class", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 8, 2},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity pardat = {"pardat", pardat_fields, 6};

static const tfs_sdk_field sales_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 10, 0, 0},
    {"saleno", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"price", TFS_SDK_DECIMAL, 0, 0, 12, 2},
};
static const tfs_sdk_entity sales = {"sales", sales_fields, 3};

static tfs_arena *arena;
static tfs_buf scratch = TFS_BUF_INIT;
static void setup(void) { arena = tfs_arena_new(); }
static void teardown(void)
{
    tfs_arena_free(arena);
    tfs_buf_free(&scratch);
}
TestSuite(audit_diff, .init = setup, .fini = teardown);

static void set_text(tfs_record *r, size_t f, tfs_sdk_type type, const char *s)
{
    if (s)
        cr_assert_eq(tfs_record_set_text(r, f, type, s, strlen(s)), 0);
    else
        r->values[f] = (tfs_value){.type = TFS_SDK_NULL};
}

/* A pardat record; NULL text leaves a field null. */
static tfs_record *parcel(const char *parid, const char *cls, const char *acres,
                          const char *deactivat, const char *wen)
{
    tfs_record *r = tfs_record_new(arena, &pardat);
    cr_assert(r);
    set_text(r, 0, TFS_SDK_TEXT, parid);
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    set_text(r, 2, TFS_SDK_TEXT, cls);
    set_text(r, 3, TFS_SDK_DECIMAL, acres);
    set_text(r, 4, TFS_SDK_DATE, deactivat);
    set_text(r, 5, TFS_SDK_TIMESTAMP, wen);
    return r;
}

static tfs_record *sale(int64_t no, const char *price)
{
    tfs_record *r = tfs_record_new(arena, &sales);
    cr_assert(r);
    set_text(r, 0, TFS_SDK_TEXT, "P1");
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = no};
    set_text(r, 2, TFS_SDK_DECIMAL, price);
    return r;
}

/* Asserts that the changes of s are the JSON `want` (compared as JSON, not as text). */
static void expect(const tfs_audit_subject *s, const char *want)
{
    const char *got = tfs_audit_diff_changes(s, &scratch, arena);
    cr_assert(got, "no changes (out of memory?)");
    json_error_t je;
    json_t *g = json_loads(got, 0, &je), *w = json_loads(want, 0, &je);
    cr_assert(g, "not JSON: %s", got);
    cr_assert(w, "bad expectation: %s", je.text);
    cr_assert(json_equal(g, w), "changes\n  got  %s\n  want %s", got, want);
    json_decref(g);
    json_decref(w);
}

#define OLD_P1 "{\"pardat\":[{\"parid\":\"P1\",\"taxyr\":2026,\"class\":\"R\",\"acres\":\"1.50\"," \
               "\"deactivat\":null,\"wen\":\"2026-01-01 00:00:00\"}]}"

Test(audit_diff, update_lists_only_fields_that_differ)
{
    /* acres is the same, wen (bookkeeping) differs and is left out. */
    const tfs_record *now[] = {parcel("P1", "C", "1.50", NULL, "2026-05-05 10:00:00")};
    tfs_audit_subject s = {.recs = now, .n = 1, .old = OLD_P1};
    expect(&s, "{\"pardat\":{\"class\":{\"before\":\"R\",\"after\":\"C\"}}}");
}

Test(audit_diff, update_to_and_from_null)
{
    const tfs_record *now[] = {parcel("P1", NULL, "1.50", "2026-03-01", NULL)};
    tfs_audit_subject s = {.recs = now, .n = 1, .old = OLD_P1};
    expect(&s, "{\"pardat\":{\"class\":{\"before\":\"R\",\"after\":null},"
               "\"deactivat\":{\"before\":null,\"after\":\"2026-03-01\"}}}");
}

Test(audit_diff, unchanged_entity_is_left_out_and_entities_are_grouped)
{
    /* pardat unchanged, both sales records of a one-to-many mapping: one changed, one new. */
    const char *old = "{\"pardat\":[{\"parid\":\"P1\",\"taxyr\":2026,\"class\":\"R\","
                      "\"acres\":\"1.50\"}],\"sales\":[{\"parid\":\"P1\",\"saleno\":1,"
                      "\"price\":\"100.00\"}]}";
    const tfs_record *now[] = {parcel("P1", "R", "1.50", NULL, NULL), sale(1, "120.00"),
                               sale(2, "90.00")};
    tfs_audit_subject s = {.recs = now, .n = 3, .old = old};
    expect(&s, "{\"sales P1|1\":{\"price\":{\"before\":\"100.00\",\"after\":\"120.00\"}},"
               "\"sales P1|2\":{\"parid\":{\"before\":null,\"after\":\"P1\"},"
               "\"saleno\":{\"before\":null,\"after\":2},"
               "\"price\":{\"before\":null,\"after\":\"90.00\"}}}");
}

Test(audit_diff, insert_has_every_non_null_field)
{
    const tfs_record *now[] = {parcel("P2", "R", NULL, NULL, "2026-05-05 10:00:00"),
                               sale(7, "5.00")};
    tfs_audit_subject s = {.recs = now, .n = 2};
    expect(&s, "{\"pardat\":{\"parid\":{\"before\":null,\"after\":\"P2\"},"
               "\"taxyr\":{\"before\":null,\"after\":2026},"
               "\"class\":{\"before\":null,\"after\":\"R\"}},"
               "\"sales\":{\"parid\":{\"before\":null,\"after\":\"P1\"},"
               "\"saleno\":{\"before\":null,\"after\":7},"
               "\"price\":{\"before\":null,\"after\":\"5.00\"}}}");
}

Test(audit_diff, insert_of_one_to_many_names_each_record)
{
    const tfs_record *now[] = {sale(1, "1.00"), sale(2, NULL)};
    tfs_audit_subject s = {.recs = now, .n = 2};
    expect(&s, "{\"sales P1|1\":{\"parid\":{\"before\":null,\"after\":\"P1\"},"
               "\"saleno\":{\"before\":null,\"after\":1},"
               "\"price\":{\"before\":null,\"after\":\"1.00\"}},"
               "\"sales P1|2\":{\"parid\":{\"before\":null,\"after\":\"P1\"},"
               "\"saleno\":{\"before\":null,\"after\":2}}}");
}

Test(audit_diff, delete_takes_every_field_to_null)
{
    /* A deletion acts on the last written records, rebuilt from the sync map. */
    const tfs_record *now[] = {parcel("P1", "R", "1.50", NULL, NULL)};
    tfs_audit_subject s = {.recs = now, .n = 1, .old = OLD_P1, .deleted = 1, .removing = 1};
    expect(&s, "{\"pardat\":{\"parid\":{\"before\":\"P1\",\"after\":null},"
               "\"taxyr\":{\"before\":2026,\"after\":null},"
               "\"class\":{\"before\":\"R\",\"after\":null},"
               "\"acres\":{\"before\":\"1.50\",\"after\":null}}}");
}

Test(audit_diff, deactivation_shows_the_deactivate_field)
{
    const tfs_record *now[] = {parcel("P1", "R", "1.50", "2026-06-30", NULL)};
    tfs_audit_subject s = {.recs = now, .n = 1, .old = OLD_P1, .deleted = 1};
    expect(&s, "{\"pardat\":{\"deactivat\":{\"before\":null,\"after\":\"2026-06-30\"}}}");
}

Test(audit_diff, record_no_longer_produced_goes_to_null)
{
    const char *old = "{\"sales\":[{\"parid\":\"P1\",\"saleno\":1,\"price\":\"100.00\"},"
                      "{\"parid\":\"P1\",\"saleno\":2,\"price\":\"7.00\"}]}";
    const tfs_record *now[] = {sale(1, "100.00")};
    const tfs_record *gone[] = {sale(2, "7.00")};
    tfs_audit_subject s = {.recs = now, .n = 1, .orphans = gone, .n_orphans = 1, .old = old};
    expect(&s, "{\"sales P1|2\":{\"parid\":{\"before\":\"P1\",\"after\":null},"
               "\"saleno\":{\"before\":2,\"after\":null},"
               "\"price\":{\"before\":\"7.00\",\"after\":null}}}");
}

Test(audit_diff, name_is_the_entity_unless_several)
{
    const tfs_record *one[] = {parcel("P1", NULL, NULL, NULL, NULL), sale(1, NULL)};
    cr_assert_str_eq(tfs_audit_diff_name(one, 2, one[1], arena), "sales");
    const tfs_record *two[] = {sale(1, NULL), sale(3, NULL)};
    cr_assert_str_eq(tfs_audit_diff_name(two, 2, two[1], arena), "sales P1|3");
}
