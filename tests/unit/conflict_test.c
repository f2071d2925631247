/* tests/unit/conflict_test.c — deciding a conflict: each policy on one record, the
 * three-way merge keeping both sides' different-field edits, the fallback for a field both
 * changed, fields owned by a side, no base, a target that deleted its record, values equal
 * by representation only, bookkeeping fields, and times for newest_wins. */
#include <criterion/criterion.h>
#include <string.h>

#include "conflict.h"

static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 10, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"adrstr", TFS_SDK_TEXT, 0, 30, 0, 0},
    {"zoning", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 10, 4},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
static const tfs_sdk_entity pardat = {"pardat", pardat_fields, 6};
enum { F_ADRSTR = 2, F_ZONING = 3, F_ACRES = 4, F_WEN = 5 };

static tfs_arena *arena;
static tfs_buf scratch = TFS_BUF_INIT;
static void setup(void) { arena = tfs_arena_new(); }
static void teardown(void)
{
    tfs_arena_free(arena);
    tfs_buf_free(&scratch);
}
TestSuite(conflict, .init = setup, .fini = teardown);

static tfs_record *parcel(const char *adrstr, const char *zoning, const char *acres,
                          const char *wen)
{
    tfs_record *r = tfs_record_new(arena, &pardat);
    cr_assert(r);
    const char *vals[] = {"R100", NULL, adrstr, zoning, acres, wen};
    tfs_sdk_type types[] = {TFS_SDK_TEXT, 0, TFS_SDK_TEXT, TFS_SDK_TEXT, TFS_SDK_DECIMAL,
                            TFS_SDK_TIMESTAMP};
    for (size_t f = 0; f < 6; f++)
        if (f != 1 && vals[f])
            cr_assert_eq(tfs_record_set_text(r, f, types[f], vals[f], strlen(vals[f])), 0);
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    return r;
}

static const char *text(const tfs_record *r, size_t f)
{
    return r->values[f].type == TFS_SDK_NULL ? NULL : r->values[f].u.s;
}

static void decide(const tfs_config_conflicts *c, const tfs_conflict_sides *s,
                   const tfs_record **res, tfs_conflict_outcome *o, json_t *disputes)
{
    cr_assert_eq(tfs_conflict_decide(c, s, arena, &scratch, res, o, disputes), 0);
}

Test(conflict, differs_by_canonical_value_not_representation)
{
    tfs_record *a = parcel("MAIN ST", "R1", "1.5", "2026-01-01 00:00:00");
    tfs_record *b = parcel("MAIN ST   ", "R1", "1.5000", "2026-05-05 10:00:00");
    cr_assert_eq(tfs_conflict_differs(a, b, &scratch), 0, "padding, scale and wen are equal");
    tfs_record *c = parcel("MAIN ST", "R2", "1.5", NULL);
    cr_assert_eq(tfs_conflict_differs(a, c, &scratch), 1);
    cr_assert_eq(tfs_conflict_differs(a, NULL, &scratch), 1);
    cr_assert_eq(tfs_conflict_differs(NULL, NULL, &scratch), 0);
}

Test(conflict, source_wins_lists_the_overwritten_target_value)
{
    tfs_config_conflicts c = {.detect = 1};
    tfs_conflict_sides s = {parcel("ELM ST", "R1", "1", NULL), parcel("MAIN ST", "C2", "1", NULL),
                            parcel("MAIN ST", "R1", "1", NULL), NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    json_t *d = json_array();
    decide(&c, &s, &res, &o, d);
    cr_assert_eq(o, TFS_CONFLICT_SOURCE);
    cr_assert_eq(res, s.source);
    cr_assert_eq(json_array_size(d), 2, "adrstr and zoning differ");
    json_t *z = json_array_get(d, 1);
    cr_assert_str_eq(json_string_value(json_object_get(z, "field")), "zoning");
    cr_assert_str_eq(json_string_value(json_object_get(z, "target")), "C2");
    cr_assert_str_eq(json_string_value(json_object_get(z, "source")), "R1");
    cr_assert_str_eq(json_string_value(json_object_get(z, "base")), "R1");
    cr_assert_str_eq(json_string_value(json_object_get(z, "decision")), "source");
    cr_assert_str_eq(json_string_value(json_object_get(z, "key")), "R100|2026");
    json_decref(d);
}

Test(conflict, target_wins_and_manual)
{
    tfs_conflict_sides s = {parcel("ELM ST", "R1", "1", NULL), parcel("MAIN ST", "C2", "1", NULL),
                            parcel("MAIN ST", "R1", "1", NULL), NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_TARGET_WINS};
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_TARGET);
    cr_assert_eq(res, s.target);
    c.policy = TFS_POLICY_MANUAL;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_PARK);
    cr_assert_null(res);
    /* the target deleted its record: target_wins keeps it deleted */
    s.target = NULL;
    c.policy = TFS_POLICY_TARGET_WINS;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_TARGET);
    cr_assert_null(res);
}

Test(conflict, merge_keeps_both_sides_different_field_edits)
{
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_MERGE};
    tfs_conflict_sides s = {parcel("ELM ST", "R1", "1", NULL), parcel("MAIN ST", "C2", "1", NULL),
                            parcel("MAIN ST", "R1", "1", NULL), NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    json_t *d = json_array();
    decide(&c, &s, &res, &o, d);
    cr_assert_eq(o, TFS_CONFLICT_MERGED);
    cr_assert_str_eq(text(res, F_ADRSTR), "ELM ST", "the source's edit");
    cr_assert_str_eq(text(res, F_ZONING), "C2", "the target's edit");
    cr_assert_eq(json_array_size(d), 0, "different fields: nothing in dispute");
    json_decref(d);
}

Test(conflict, merge_same_field_falls_back)
{
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_MERGE,
                              .fallback = TFS_POLICY_TARGET_WINS};
    tfs_conflict_sides s = {parcel("ELM ST", "R3", "1", NULL), parcel("MAIN ST", "C2", "1", NULL),
                            parcel("MAIN ST", "R1", "1", NULL), NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    json_t *d = json_array();
    decide(&c, &s, &res, &o, d);
    cr_assert_eq(o, TFS_CONFLICT_MERGED);
    cr_assert_str_eq(text(res, F_ADRSTR), "ELM ST");
    cr_assert_str_eq(text(res, F_ZONING), "C2");
    cr_assert_eq(json_array_size(d), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(d, 0), "decision")),
                     "target");
    json_decref(d);
    c.fallback = TFS_POLICY_MANUAL;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_PARK);
    /* both changed a field to the same value: no dispute */
    s.target = parcel("MAIN ST", "R3", "1", NULL);
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_SOURCE);
    cr_assert_str_eq(text(res, F_ZONING), "R3");
}

Test(conflict, merge_field_owned_by_the_target)
{
    tfs_config_conflict_rule rules[] = {{"pardat", "zoning", TFS_POLICY_TARGET_WINS, 0}};
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_MERGE, .rules = rules,
                              .n_rules = 1};
    /* the target unchanged since the last write, which kept its zoning C2 over the
     * source's R1: a later source edit of another field keeps C2 */
    tfs_conflict_sides s = {parcel("OAK ST", "R1", "1", NULL), parcel("ELM ST", "C2", "1", NULL),
                            parcel("ELM ST", "C2", "1", NULL), NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_str_eq(text(res, F_ADRSTR), "OAK ST");
    cr_assert_str_eq(text(res, F_ZONING), "C2");
    cr_assert_eq(o, TFS_CONFLICT_MERGED);
}

Test(conflict, no_base_every_difference_is_both_sides)
{
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_MERGE};
    tfs_conflict_sides s = {parcel("ELM ST", "R1", "2", NULL), parcel("ELM ST", "C2", "2.00", NULL),
                            NULL, NULL, NULL};
    const tfs_record *res;
    tfs_conflict_outcome o;
    json_t *d = json_array();
    decide(&c, &s, &res, &o, d);
    cr_assert_eq(o, TFS_CONFLICT_SOURCE, "the fallback, source_wins");
    cr_assert_eq(json_array_size(d), 1, "only zoning: acres are equal");
    cr_assert(json_is_null(json_object_get(json_array_get(d, 0), "base")));
    json_decref(d);
}

Test(conflict, entity_rule_overrides_the_pair)
{
    tfs_config_conflict_rule rules[] = {
        {"pardat", NULL, TFS_POLICY_MANUAL, TFS_POLICY_SOURCE_WINS}};
    tfs_config_conflicts c = {.detect = 1, .rules = rules, .n_rules = 1};
    cr_assert_eq(tfs_conflict_entity_policy(&c, "pardat", NULL), TFS_POLICY_MANUAL);
    cr_assert_eq(tfs_conflict_entity_policy(&c, "asmt", NULL), TFS_POLICY_SOURCE_WINS);
}

Test(conflict, newest_wins_by_time)
{
    tfs_config_conflicts c = {.detect = 1, .policy = TFS_POLICY_NEWEST_WINS};
    tfs_conflict_sides s = {parcel("ELM ST", "R1", "1", NULL), parcel("MAIN ST", "C2", "1", NULL),
                            parcel("MAIN ST", "R1", "1", NULL), "2026-03-01",
                            "2026-02-28 23:00:00-02"};
    const tfs_record *res;
    tfs_conflict_outcome o;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_TARGET, "01:00 UTC on March 1st is after midnight");
    s.target_time = "2026-02-28 23:00:00+00";
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_SOURCE);
    s.target_time = NULL;
    decide(&c, &s, &res, &o, NULL);
    cr_assert_eq(o, TFS_CONFLICT_SOURCE, "an unknown time keeps the source");
}

Test(conflict, parse_time)
{
    int64_t us;
    cr_assert_eq(tfs_conflict_parse_time("1970-01-01", &us), 0);
    cr_assert_eq(us, 0);
    cr_assert_eq(tfs_conflict_parse_time("1970-01-02 00:00:01.5+01:00", &us), 0);
    cr_assert_eq(us, (int64_t)(86400 + 1 - 3600) * 1000000 + 500000);
    cr_assert_eq(tfs_conflict_parse_time("2026-12-01T10:00:00Z", &us), 0);
    cr_assert_eq(tfs_conflict_parse_time("yesterday", &us), -1);
    cr_assert_eq(tfs_conflict_parse_time("2026-13-01", &us), -1);
    cr_assert_eq(tfs_conflict_parse_time(NULL, &us), -1);
}
