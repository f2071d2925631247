/* tests/unit/rules_test.c — a pair's validation rules: parsed with the config (every
 * problem refused with its JSON path), then checked on typed records, every violation
 * kept as a reason naming entity.field, the value and the rule. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "rules.h"

static char dir[64];

static void put(const char *rel, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tfs-rules-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char sub[96];
    snprintf(sub, sizeof sub, "%s/lookups", dir);
    mkdir(sub, 0700);
    put("map.lua", "function map(r) return {} end\n");
    put("lookups/valclass.csv", "code,what\nEX,exempt\nHS,homestead\nR,residential\n");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(rules, .init = setup, .fini = teardown);

/* A config whose pair has the rules given (JSON text of the "rules" object). */
static json_t *config_with(const char *rules)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"state\": {\"conninfo\": \"dbname=tfsync\"}, \"plugin_dir\": \".\","
             " \"transform_dir\": \".\", \"roll_year\": 2026,"
             " \"systems\": {\"pacs\": {\"plugin\": \"pacs\"}, \"cama\": {\"plugin\": \"cama\"}},"
             " \"pairs\": [{\"name\": \"p\", \"source\": \"pacs\", \"target\": \"cama\","
             " \"entities\": [{\"source\": \"property\", \"targets\": [\"pardat\", \"asmt\"],"
             " \"script\": \"map.lua\"}], \"rules\": %s}]}",
             rules);
    json_error_t je;
    json_t *c = json_loads(text, 0, &je);
    cr_assert_not_null(c, "%s: %s", je.text, text);
    return c;
}

static tfs_config *load(const char *rules)
{
    json_t *c = config_with(rules);
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s (%s)", err.message, err.hint);
    json_decref(c);
    return cfg;
}

static void refused(const char *rules, const char *want)
{
    json_t *c = config_with(rules);
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), TFS_EINVAL, "accepted %s", rules);
    cr_assert_null(cfg);
    cr_assert(strstr(err.message, want) || strstr(err.hint, want),
              "\"%s\" (hint \"%s\") should say \"%s\"", err.message, err.hint, want);
    json_decref(c);
}

static const tfs_sdk_field asmt_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"valclass", TFS_SDK_TEXT, 0, 4, 0, 0},
    {"valapr1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"statecode", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"postalcode", TFS_SDK_TEXT, 0, 10, 0, 0},
};
static const tfs_sdk_entity asmt = {"asmt", asmt_fields, 9};
static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
};
static const tfs_sdk_entity pardat = {"pardat", pardat_fields, 2};

/* An asmt record that passes the rules below; tests spoil one field at a time. */
static tfs_record *good_asmt(tfs_arena *a)
{
    tfs_record *r = tfs_record_new(a, &asmt);
    tfs_record_set_text(r, 0, TFS_SDK_TEXT, "R1", 2);
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    tfs_record_set_text(r, 2, TFS_SDK_TEXT, "HS", 2);
    tfs_record_set_text(r, 3, TFS_SDK_DECIMAL, "40000", 5);
    tfs_record_set_text(r, 4, TFS_SDK_DECIMAL, "60000", 5);
    tfs_record_set_text(r, 5, TFS_SDK_DECIMAL, "100000", 6);
    tfs_record_set_text(r, 6, TFS_SDK_DECIMAL, "90000", 5);
    tfs_record_set_text(r, 7, TFS_SDK_TEXT, "TX", 2);
    tfs_record_set_text(r, 8, TFS_SDK_TEXT, "78701-1234", 10);
    return r;
}

static const char *const demo_rules =
    "{\"asmt\": ["
    " {\"name\": \"tax year within the roll year\", \"field\": \"taxyr\", \"required\": true,"
    "  \"min\": \"roll_year - 1\", \"max\": \"roll_year + 1\"},"
    " {\"name\": \"values non-negative\", \"field\": \"valapr1\", \"min\": 0},"
    " {\"name\": \"assessed not above appraised\", \"field\": \"valasm3\","
    "  \"max\": \"valapr3\"},"
    " {\"name\": \"total is land plus building\", \"field\": \"valapr3\","
    "  \"sum_of\": [\"valapr1\", \"valapr2\"], \"tolerance\": 1},"
    " {\"name\": \"state two letters\", \"field\": \"statecode\", \"pattern\": \"^[A-Z]{2}$\"},"
    " {\"name\": \"ZIP\", \"field\": \"postalcode\", \"pattern\": \"^[0-9]{5}(-?[0-9]{4})?$\"},"
    " {\"field\": \"valclass\", \"lookup\": \"valclass\"}]}";

/* The lookup callback: the codes of lookups/valclass.csv, as the Lua runtime would
 * answer; a table named "broken" cannot be read. */
static int fake_lookup(void *ctx, const char *table, const char *code, size_t len,
                       tfs_error *err)
{
    (*(int *)ctx)++;
    if (strcmp(table, "broken") == 0)
        return tfs_error_set(err, TFS_EIO, "lookups/broken.csv:3: duplicate code \"A\"");
    const char *codes[] = {"EX", "HS", "R"};
    for (size_t i = 0; i < 3; i++)
        if (strlen(codes[i]) == len && memcmp(codes[i], code, len) == 0)
            return 1;
    return 0;
}

typedef struct checked {
    int n;
    json_t *reasons;
    char *text;
} checked;

static checked check(const tfs_config *cfg, const tfs_record *rec)
{
    static int calls;
    tfs_rules_env env = {cfg->roll_year, fake_lookup, &calls};
    checked c = {0, json_array(), NULL};
    c.n = tfs_rules_check(&cfg->pairs[0].validation, rec, &env, c.reasons);
    c.text = json_dumps(c.reasons, 0);
    return c;
}

static void checked_free(checked *c)
{
    json_decref(c->reasons);
    free(c->text);
}

Test(rules, a_record_within_every_rule_passes)
{
    tfs_config *cfg = load(demo_rules);
    cr_assert_eq(cfg->pairs[0].validation.n, 7);
    tfs_arena *a = tfs_arena_new();
    checked c = check(cfg, good_asmt(a));
    cr_assert_eq(c.n, 0, "%s", c.text);
    cr_assert_eq(json_array_size(c.reasons), 0);
    checked_free(&c);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}

Test(rules, each_violation_is_a_reason_naming_field_value_and_rule)
{
    tfs_config *cfg = load(demo_rules);
    tfs_arena *a = tfs_arena_new();
    tfs_record *r = good_asmt(a);
    r->values[1].u.i = 2031;                              /* taxyr past roll_year + 1 */
    tfs_record_set_text(r, 3, TFS_SDK_DECIMAL, "-5", 2);  /* valapr1 negative */
    tfs_record_set_text(r, 6, TFS_SDK_DECIMAL, "150000", 6); /* valasm3 above valapr3 */
    tfs_record_set_text(r, 7, TFS_SDK_TEXT, "Texas", 5);
    tfs_record_set_text(r, 8, TFS_SDK_TEXT, "7870", 4);
    tfs_record_set_text(r, 2, TFS_SDK_TEXT, "ZZ", 2);
    checked c = check(cfg, r);
    /* valapr1 = -5 also breaks the sum: 100000 is not -5 + 60000. */
    cr_assert_eq(c.n, 7, "%s", c.text);
    cr_assert_eq(json_array_size(c.reasons), 7, "every reason kept: %s", c.text);
    const char *want[] = {
        "asmt.taxyr: 2031 is above roll_year + 1 = 2027 (rule \"tax year within the roll year\")",
        "asmt.valapr1: -5 is below the minimum 0 (rule \"values non-negative\")",
        "asmt.valasm3: 150000 is above valapr3 = 100000 (rule \"assessed not above appraised\")",
        "asmt.valapr3: 100000 is not valapr1 + valapr2 = 59995 (within 1) (rule \"total is "
        "land plus building\")",
        "asmt.statecode: \"Texas\" does not match ^[A-Z]{2}$ (rule \"state two letters\")",
        "asmt.postalcode: \"7870\" does not match ^[0-9]{5}(-?[0-9]{4})?$ (rule \"ZIP\")",
        "asmt.valclass: \"ZZ\" is not a code of lookups/valclass.csv (rule \"asmt[6]\")",
    };
    for (size_t i = 0; i < 7; i++)
        cr_expect_str_eq(json_string_value(json_array_get(c.reasons, i)), want[i]);
    checked_free(&c);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}

Test(rules, nulls_pass_all_but_required_and_a_null_bound_is_not_applied)
{
    tfs_config *cfg = load(demo_rules);
    tfs_arena *a = tfs_arena_new();
    tfs_record *r = good_asmt(a);
    for (size_t f = 2; f < 9; f++)
        if (f != 6)
            r->values[f] = (tfs_value){.type = TFS_SDK_NULL};
    checked c = check(cfg, r); /* valasm3 is 90000 against a null valapr3: not applied */
    cr_assert_eq(c.n, 0, "%s", c.text);
    checked_free(&c);
    r->values[1] = (tfs_value){.type = TFS_SDK_NULL};
    c = check(cfg, r);
    cr_assert_eq(c.n, 1, "%s", c.text);
    cr_assert_str_eq(json_string_value(json_array_get(c.reasons, 0)),
                     "asmt.taxyr: null, but a value is required (rule \"tax year within the "
                     "roll year\")");
    checked_free(&c);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}

Test(rules, the_sum_holds_within_its_tolerance_and_rules_of_other_entities_are_not_applied)
{
    tfs_config *cfg = load(demo_rules);
    tfs_arena *a = tfs_arena_new();
    tfs_record *r = good_asmt(a);
    tfs_record_set_text(r, 5, TFS_SDK_DECIMAL, "100001", 6); /* off by the tolerance */
    checked c = check(cfg, r);
    cr_assert_eq(c.n, 0, "%s", c.text);
    checked_free(&c);
    tfs_record_set_text(r, 5, TFS_SDK_DECIMAL, "100002", 6);
    c = check(cfg, r);
    cr_assert_eq(c.n, 1, "%s", c.text);
    checked_free(&c);
    tfs_record *p = tfs_record_new(a, &pardat);
    p->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1900};
    c = check(cfg, p);
    cr_assert_eq(c.n, 0, "asmt's rules do not check pardat: %s", c.text);
    checked_free(&c);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}

Test(rules, a_lookup_that_cannot_be_read_is_a_reason_and_a_text_bound_is_not_a_number)
{
    put("lookups/broken.csv", "code,value\n");
    tfs_config *cfg = load("{\"asmt\": [{\"field\": \"valclass\", \"lookup\": \"broken\"},"
                           " {\"field\": \"statecode\", \"min\": 0}]}");
    tfs_arena *a = tfs_arena_new();
    checked c = check(cfg, good_asmt(a));
    cr_assert_eq(c.n, 2, "%s", c.text);
    cr_assert(strstr(c.text, "asmt.valclass: \\\"HS\\\" could not be looked up in "
                             "lookups/broken.csv: lookups/broken.csv:3: duplicate code"),
              "%s", c.text);
    cr_assert(strstr(c.text, "asmt.statecode: \\\"TX\\\" is not a number"), "%s", c.text);
    checked_free(&c);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}

Test(rules, verify_refuses_a_field_the_target_lacks_naming_the_rule)
{
    tfs_config *cfg = load("{\"asmt\": [{\"name\": \"x\", \"field\": \"valasm3\","
                           " \"max\": \"valapr9\"}]}");
    const tfs_sdk_entity *targets[] = {&pardat, &asmt};
    tfs_error err = {0};
    cr_assert_eq(tfs_rules_verify(&cfg->pairs[0].validation, targets, 2, "p", &err),
                 TFS_EINVAL);
    cr_assert(strstr(err.message, "rule \"x\" names field \"valapr9\", which the target "
                                  "entity asmt does not have"),
              "%s", err.message);
    cr_assert(strstr(err.hint, "valapr3"), "the hint lists the fields: %s", err.hint);
    /* A mapping without asmt does not check asmt's rules. */
    cr_assert_eq(tfs_rules_verify(&cfg->pairs[0].validation, targets, 1, "p", &err), 0);
    tfs_config_free(cfg);
}

Test(rules, bad_rules_are_refused_with_their_path)
{
    refused("{\"owndat\": []}", "pairs[0].rules.owndat: \"owndat\" is not a target entity");
    refused("{\"asmt\": {}}", "pairs[0].rules.asmt: must be an array of rules");
    refused("{\"asmt\": [{\"field\": \"x\"}]}", "pairs[0].rules.asmt[0]: checks nothing");
    refused("{\"asmt\": [{\"min\": 0}]}", "pairs[0].rules.asmt[0].field");
    refused("{\"asmt\": [{\"field\": \"x\", \"colour\": 1}]}",
            "pairs[0].rules.asmt[0].colour: unknown key");
    refused("{\"asmt\": [{\"field\": \"x\", \"pattern\": \"^\\\\d{5}$\"}]}",
            "write [0-9] instead of \\d");
    refused("{\"asmt\": [{\"field\": \"x\", \"pattern\": \"([0-9]\"}]}",
            "pairs[0].rules.asmt[0].pattern: \"([0-9]\" is not a valid POSIX extended regular "
            "expression");
    refused("{\"asmt\": [{\"field\": \"x\", \"lookup\": \"nope\"}]}",
            "pairs[0].rules.asmt[0].lookup: no lookup table \"lookups/nope.csv\"");
    refused("{\"asmt\": [{\"field\": \"x\", \"lookup\": \"../etc\"}]}",
            "is not a lookup table name");
    refused("{\"asmt\": [{\"field\": \"x\", \"max\": \"taxyr * 2\"}]}",
            "pairs[0].rules.asmt[0].max: \"taxyr * 2\" is not a bound");
    refused("{\"asmt\": [{\"field\": \"x\", \"max\": true}]}",
            "pairs[0].rules.asmt[0].max: must be a number or a field expression");
    refused("{\"asmt\": [{\"field\": \"x\", \"tolerance\": 1, \"min\": 0}]}",
            "pairs[0].rules.asmt[0].tolerance: goes with sum_of");
    refused("{\"asmt\": [{\"field\": \"x\", \"sum_of\": []}]}",
            "pairs[0].rules.asmt[0].sum_of: must be a non-empty array");
    refused("{\"asmt\": [{\"field\": \"x\", \"required\": 1}]}",
            "pairs[0].rules.asmt[0].required: must be true or false");
    refused("[]", "pairs[0].rules");
}

Test(rules, check_all_skips_what_the_schema_refused_and_adds_the_scripts_problems)
{
    tfs_config *cfg = load(demo_rules);
    tfs_arena *a = tfs_arena_new();
    tfs_record *recs[2] = {good_asmt(a), good_asmt(a)};
    tfs_record_set_text(recs[0], 7, TFS_SDK_TEXT, "tx", 2);
    tfs_record_set_text(recs[1], 7, TFS_SDK_TEXT, "tx", 2);
    const unsigned char typed[2] = {1, 0}; /* the schema refused the second */
    const char *problems[] = {"asmt.valclass: HS without an exemption"};
    static int calls;
    tfs_rules_env env = {cfg->roll_year, fake_lookup, &calls};
    json_t *reasons = json_array();
    int n = tfs_rules_check_all(&cfg->pairs[0].validation, recs, typed, 2, "m.lua", problems,
                                1, &env, reasons);
    char *text = json_dumps(reasons, 0);
    cr_assert_eq(n, 2, "%s", text);
    cr_expect(strstr(json_string_value(json_array_get(reasons, 0)), "asmt.statecode: \"tx\""),
              "%s", text);
    cr_expect_str_eq(json_string_value(json_array_get(reasons, 1)),
                     "m.lua validate(): asmt.valclass: HS without an exemption");
    free(text);
    json_decref(reasons);
    tfs_arena_free(a);
    tfs_config_free(cfg);
}
