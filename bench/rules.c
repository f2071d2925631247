/* bench/rules.c — what a pair's validation rules cost per source record: the rules of a
 * file (transforms/pacs_to_cama.rules.json) checked N times on a pardat and an asmt record
 * that pass them all, as the stages check each record the PACS mapping produces.
 *
 *   build/bench_rules transforms/pacs_to_cama.rules.json transforms 1000000
 *
 * Lookups are answered by a stub here (the daemon asks its Lua runtime, a table lookup). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "rules.h"

static const tfs_sdk_field asmt_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"seq", TFS_SDK_INT64, 0, 0, 0, 0},
    {"cur", TFS_SDK_TEXT, 0, 1, 0, 0},
    {"valclass", TFS_SDK_TEXT, 0, 4, 0, 0},
    {"valapr1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
};
static const tfs_sdk_entity asmt = {"asmt", asmt_fields, 12};
static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"class", TFS_SDK_TEXT, 0, 4, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 12, 4},
    {"statecode", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"postalcode", TFS_SDK_TEXT, 0, 10, 0, 0},
};
static const tfs_sdk_entity pardat = {"pardat", pardat_fields, 6};

static int stub_lookup(void *ctx, const char *table, const char *code, size_t len,
                       tfs_error *err)
{
    (void)ctx, (void)table, (void)err;
    return len == 1 && strchr("RVACIO", code[0]) != NULL;
}

static void set(tfs_record *r, size_t f, tfs_sdk_type t, const char *s)
{
    tfs_record_set_text(r, f, t, s, strlen(s));
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s RULES.json TRANSFORM_DIR N\n", argv[0]);
        return 64;
    }
    json_error_t je;
    json_t *rules = json_load_file(argv[1], 0, &je);
    if (!rules) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], je.line, je.text);
        return 1;
    }
    json_t *c = json_pack("{s{ss}sssssis{s{ss}s{ss}}s[{sssssss[{sss[ss]ss}]so}]}", "state",
                          "conninfo", "-", "plugin_dir", ".", "transform_dir", argv[2],
                          "roll_year", 2026, "systems", "pacs", "plugin", "pacs", "cama",
                          "plugin", "cama", "pairs", "name", "p", "source", "pacs", "target",
                          "cama", "entities", "source", "property", "targets", "pardat",
                          "asmt", "script", "pacs_to_cama.lua", "rules", rules);
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    if (!c || tfs_config_parse(c, ".", &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    tfs_arena *a = tfs_arena_new();
    tfs_record *r = tfs_record_new(a, &asmt), *p = tfs_record_new(a, &pardat);
    set(r, 0, TFS_SDK_TEXT, "R100001");
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    const char *v[] = {"40000", "60000", "100000", "40000", "60000", "90000"};
    for (size_t i = 0; i < 6; i++)
        set(r, 5 + i, TFS_SDK_DECIMAL, v[i]);
    set(p, 0, TFS_SDK_TEXT, "R100001");
    p->values[1] = r->values[1];
    set(p, 2, TFS_SDK_TEXT, "R");
    set(p, 3, TFS_SDK_DECIMAL, "1.2500");
    set(p, 4, TFS_SDK_TEXT, "TX");
    set(p, 5, TFS_SDK_TEXT, "78701-1234");
    tfs_rules_env env = {2026, stub_lookup, NULL};
    json_t *reasons = json_array();
    long n = atol(argv[3]), bad = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        bad += tfs_rules_check(&cfg->pairs[0].validation, p, &env, reasons);
        bad += tfs_rules_check(&cfg->pairs[0].validation, r, &env, reasons);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%zu rules, %ld source records (pardat + asmt), %ld violations: %.2f s, %.2f us "
           "per source record\n",
           cfg->pairs[0].validation.n, n, bad, s, n ? s / (double)n * 1e6 : 0.0);
    json_decref(reasons);
    tfs_arena_free(a);
    tfs_config_free(cfg);
    json_decref(c);
    return bad != 0;
}
