/* bench/lua_map.c — what the Lua sandbox costs per record: the shipped PACS -> CAMA mapping
 * (transforms/pacs_to_cama.lua, with its situs address, lookups and exemptions) run N times
 * on one property through tfs_lua_map, as the stage runs it, and the time per record. Run
 * it before and after a change to the sandbox (its hook, its budgets, its matcher):
 *
 *   build/bench_lua_map transforms 200000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"

static tfs_arena *arena;

static const tfs_sdk_field property_fields[] = {
    {"prop_id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"prop_val_yr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"sup_num", TFS_SDK_INT64, 0, 0, 0, 0},
    {"prop_type_cd", TFS_SDK_TEXT, 0, 5, 0, 0},
    {"geo_id", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"simple_geo_id", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"state_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"zoning", TFS_SDK_TEXT, 0, 20, 0, 0},
    {"land_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"land_non_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"imprv_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"imprv_non_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"ag_use_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"market", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"appraised_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"assessed_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"legal_desc", TFS_SDK_TEXT, 0, 255, 0, 0},
    {"legal_acreage", TFS_SDK_DECIMAL, 0, 0, 14, 4},
    {"hood_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"property_use_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"prop_inactive_dt", TFS_SDK_DATE, 0, 0, 0, 0},
    {"situs_num", TFS_SDK_TEXT, 0, 15, 0, 0},
    {"situs_street_prefx", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_street", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"situs_street_sufix", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_unit", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_city", TFS_SDK_TEXT, 0, 30, 0, 0},
    {"situs_state", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"situs_zip", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"exemptions", TFS_SDK_JSON, 0, 0, 0, 0},
};
static const tfs_sdk_entity property_entity = {"property", property_fields, 30};

static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"seq", TFS_SDK_INT64, 0, 0, 0, 0},
    {"cur", TFS_SDK_TEXT, 0, 1, 0, 0},
    {"class", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"luc", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"nbhd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 14, 4},
    {"adrno", TFS_SDK_INT64, 0, 0, 0, 0},
    {"adradd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"adrdir", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"adrstr", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"adrsuf", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"unitno", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"cityname", TFS_SDK_TEXT, 0, 30, 0, 0},
    {"statecode", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"postalcode", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"zoning", TFS_SDK_TEXT, 0, 20, 0, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
    {"who", TFS_SDK_TEXT, TFS_SDK_FIELD_BOOKKEEPING, 50, 0, 0},
};
static const tfs_sdk_entity pardat_entity = {"pardat", pardat_fields, 21};

static const tfs_sdk_field asmt_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"seq", TFS_SDK_INT64, 0, 0, 0, 0},
    {"cur", TFS_SDK_TEXT, 0, 1, 0, 0},
    {"valclass", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"valapr1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
    {"who", TFS_SDK_TEXT, TFS_SDK_FIELD_BOOKKEEPING, 50, 0, 0},
};
static const tfs_sdk_entity asmt_entity = {"asmt", asmt_fields, 14};
static const tfs_sdk_entity *const cama_targets[] = {&pardat_entity, &asmt_entity};

static void prop_set(tfs_record *r, const char *field, tfs_sdk_type type, const char *text)
{
    int f = tfs_entity_field_index(r->entity, field);
    if (f < 0 || tfs_record_set_text(r, (size_t)f, type, text, strlen(text)) != 0) {
        fprintf(stderr, "bench_lua_map: could not set %s\n", field);
        exit(1);
    }
}

static tfs_record *property(tfs_arena *a)
{
    tfs_record *r = tfs_record_new(a, &property_entity);
    if (!r)
        exit(1);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 1002};
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    r->values[2] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 0};
    prop_set(r, "prop_type_cd", TFS_SDK_TEXT, "R");
    prop_set(r, "geo_id", TFS_SDK_TEXT, "12-345 678-90");
    prop_set(r, "simple_geo_id", TFS_SDK_TEXT, "1234567890");
    prop_set(r, "state_cd", TFS_SDK_TEXT, "A1");
    prop_set(r, "zoning", TFS_SDK_TEXT, "R-1");
    prop_set(r, "land_hstd_val", TFS_SDK_DECIMAL, "10000");
    prop_set(r, "land_non_hstd_val", TFS_SDK_DECIMAL, "5000");
    prop_set(r, "imprv_hstd_val", TFS_SDK_DECIMAL, "100000");
    prop_set(r, "imprv_non_hstd_val", TFS_SDK_DECIMAL, "0");
    prop_set(r, "ag_use_val", TFS_SDK_DECIMAL, "250");
    prop_set(r, "market", TFS_SDK_DECIMAL, "115000");
    prop_set(r, "appraised_val", TFS_SDK_DECIMAL, "115250");
    prop_set(r, "assessed_val", TFS_SDK_DECIMAL, "90000");
    prop_set(r, "legal_desc", TFS_SDK_TEXT, "LOT 1 BLK 2 OAK HILLS");
    prop_set(r, "legal_acreage", TFS_SDK_DECIMAL, "0.2500");
    prop_set(r, "hood_cd", TFS_SDK_TEXT, "N100");
    prop_set(r, "property_use_cd", TFS_SDK_TEXT, "101");
    prop_set(r, "situs_num", TFS_SDK_TEXT, "123A");
    prop_set(r, "situs_street_prefx", TFS_SDK_TEXT, "n");
    prop_set(r, "situs_street", TFS_SDK_TEXT, "  Main  ");
    prop_set(r, "situs_street_sufix", TFS_SDK_TEXT, "Street");
    prop_set(r, "situs_unit", TFS_SDK_TEXT, "4B");
    prop_set(r, "situs_city", TFS_SDK_TEXT, "Springfield");
    prop_set(r, "situs_state", TFS_SDK_TEXT, "tx");
    prop_set(r, "situs_zip", TFS_SDK_TEXT, "78701-1234");
    prop_set(r, "exemptions", TFS_SDK_JSON, "[\"HS\",\"OV65\"]");
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <transform dir> <records>\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    if (tfs_lua_new(argv[1], NULL, 2026, &rt, &err) != 0) {
        fprintf(stderr, "bench_lua_map: %s\n", err.message);
        return 1;
    }
    tfs_arena *src_arena = tfs_arena_new();
    arena = tfs_arena_new();
    tfs_record *src = property(src_arena);
    struct timespec t0, t1;
    for (long i = -1000; i < n; i++) { /* a thousand to warm up */
        if (i == 0)
            clock_gettime(CLOCK_MONOTONIC, &t0);
        tfs_lua_output out;
        tfs_arena_reset(arena);
        if (tfs_lua_map(rt, "pacs_to_cama.lua", src, "1002|2026", cama_targets, 2, arena, &out,
                        &err) != 0 || out.n != 2) {
            fprintf(stderr, "bench_lua_map: %s\n", err.message);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3);
    printf("pacs_to_cama.lua: %ld records, %.2f us/record\n", n, us / (double)n);
    tfs_lua_free(rt);
    tfs_arena_free(arena);
    tfs_arena_free(src_arena);
    return 0;
}
