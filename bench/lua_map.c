/* bench/lua_map.c — what a transform costs per record, in CPU time: every shipped mapping
 * of transforms/ run on one typical record of its source entity, three ways:
 *
 *   script  the script's map() alone, on a source table built once, its result dropped
 *           (what Vector's published figure, about 2.7 us/event for its Lua transform,
 *           measures);
 *   map     tfs_lua_map as the pipeline calls it: the source record into a table, map(),
 *           its result into target records;
 *   stage   what the transform stage pays per record: the record's key, its source hash,
 *           tfs_lua_map, the schema checks of every target record (validator.c) and the
 *           hash of what would be written (canonical.c), as core/stage.c's transform() does.
 *
 * The entities are the plugins' own, described offline (every shipped adapter opens lazily,
 * so nothing connects): the tables are never copied here. Times are CPU time of the process
 * (CLOCK_PROCESS_CPUTIME_ID), so a busy machine slows them little; each figure is the median
 * of REPS runs of N records. Run it before and after a change to the Lua runtime, the
 * validator or the hashing:
 *
 *   build/bench_lua_map transforms build/plugins 100000 [REPS, default 5] [SCRIPT]
 *
 * SCRIPT times that mapping alone; under valgrind --tool=callgrind, the instructions of
 * two runs of different N, subtracted, give instructions per record, which a shared
 * machine's load does not move.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "canonical.h"
#include "error.h"
#include "lua_transform.h"
#include "plugin_host.h"
#include "record.h"
#include "validator.h"

/* A typical record of each source entity the shipped mappings read, as JSON (fields left
 * out are null). */
typedef struct sample {
    const char *system, *entity, *json;
} sample;

static const sample samples[] = {
    {"pacs", "property",
     "{\"prop_id\": 1002, \"prop_val_yr\": 2026, \"sup_num\": 0, \"prop_type_cd\": \"R\","
     " \"geo_id\": \"12-345 678-90\", \"simple_geo_id\": \"1234567890\", \"state_cd\": \"A1\","
     " \"zoning\": \"R-1\", \"land_hstd_val\": \"10000\", \"land_non_hstd_val\": \"5000\","
     " \"imprv_hstd_val\": \"100000\", \"imprv_non_hstd_val\": \"0\", \"ag_use_val\": \"250\","
     " \"market\": \"115000\", \"appraised_val\": \"115250\", \"assessed_val\": \"90000\","
     " \"legal_desc\": \"LOT 1 BLK 2 OAK HILLS\", \"legal_acreage\": \"0.2500\","
     " \"hood_cd\": \"N100\", \"property_use_cd\": \"101\", \"situs_num\": \"123A\","
     " \"situs_street_prefx\": \"n\", \"situs_street\": \"  Main  \","
     " \"situs_street_sufix\": \"Street\", \"situs_unit\": \"4B\","
     " \"situs_city\": \"Springfield\", \"situs_state\": \"tx\", \"situs_zip\": \"78701-1234\","
     " \"exemptions\": [\"HS\", \"OV65\"]}"},
    {"pacs", "owner",
     "{\"prop_id\": 1002, \"prop_val_yr\": 2026, \"sup_num\": 0, \"geo_id\": \"12-345 678-90\","
     " \"simple_geo_id\": \"1234567890\", \"owner_count\": 2, \"own1_id\": 501,"
     " \"own1_name\": \"SMITH JOHN & MARY\", \"own1_confidential\": false,"
     " \"own1_pct\": \"50.0000000000\", \"own2_id\": 502, \"own2_name\": \"DOE JANE\","
     " \"own2_confidential\": false, \"addr_line1\": \"PO BOX 123\", \"addr_line2\": \"APT 4\","
     " \"addr_city\": \"Austin\", \"addr_state\": \" tx \", \"addr_zip\": \"78701\","
     " \"prop_type_cd\": \"R\", \"owner_ids\": [501, 502]}"},
    {"pacs", "sale",
     "{\"chg_of_owner_id\": 70001, \"prop_id\": 1002, \"sl_price\": \"245000\","
     " \"sl_dt\": \"2025-06-30\", \"sl_type_cd\": \"WD\", \"confidential_sale\": false,"
     " \"simple_geo_id\": \"1234567890\", \"geo_id\": \"12-345 678-90\","
     " \"buyer_name\": \"SMITH JOHN & MARY\", \"buyer_confidential\": false}"},
    {"pacs", "account",
     "{\"acct_id\": 501, \"file_as_name\": \"SMITH JOHN & MARY\", \"confidential\": false,"
     " \"addr_line1\": \"PO BOX 123\", \"addr_line2\": \"APT 4\", \"addr_city\": \"Austin\","
     " \"addr_state\": \"TX\", \"addr_zip\": \"78701-1234\"}"},
    {"gis", "taxparcel",
     "{\"PARCELID\": \"1234567890\", \"STATEDAREA\": \"0.25 AC\", \"acres\": \"0.2497\","
     " \"centroid_lat\": \"30.2672150\", \"centroid_lon\": \"-97.7430610\","
     " \"shape\": {\"type\": \"MultiPolygon\", \"crs\": {\"type\": \"name\","
     " \"properties\": {\"name\": \"EPSG:2277\"}}, \"coordinates\": [[[[3114000.5,"
     " 10070000.25], [3114100.5, 10070000.25], [3114100.5, 10070108.75], [3114000.5,"
     " 10070108.75], [3114000.5, 10070000.25]]]]}}"},
    {"erp", "payment",
     "{\"bill_id\": \"B2026-000123\", \"prop_id\": 1002, \"tax_year\": 2026,"
     " \"amount_due_cents\": 254321, \"amount_paid_cents\": 254321,"
     " \"payment_status_type_cd\": \"PD\", \"last_modified\": \"2026-01-15\"}"},
    {"crm", "contact",
     "{\"id\": 501, \"display_name\": \"John Smith\", \"first_name\": \"John\","
     " \"last_name\": \"Smith\", \"email\": \"john.smith@example.org\","
     " \"phone\": \"512-555-0100\", \"do_not_publish\": false,"
     " \"mail_line1\": \"PO Box 123\", \"mail_line2\": \"Apt 4\", \"mail_city\": \"Austin\","
     " \"mail_state\": \"TX\", \"mail_zip5\": \"78701\", \"mail_zip4\": \"1234\","
     " \"updated_at\": \"2026-01-15 10:30:00\"}"},
};

/* The shipped mappings: the pairs of the demo and the adapters' tests. */
typedef struct mapping {
    const char *script, *src_system, *src_entity, *tgt_system;
    const char *targets[3];
} mapping;

static const mapping mappings[] = {
    {"pacs_to_cama.lua", "pacs", "property", "cama", {"pardat", "asmt"}},
    {"pacs_owner_to_cama.lua", "pacs", "owner", "cama", {"owndat"}},
    {"pacs_sale_to_cama.lua", "pacs", "sale", "cama", {"sales"}},
    {"pacs_to_gis.lua", "pacs", "property", "gis", {"parcel_attr"}},
    {"pacs_owner_to_gis.lua", "pacs", "owner", "gis", {"parcel_owner"}},
    {"gis_to_pacs.lua", "gis", "taxparcel", "pacs", {"parcel_gis"}},
    {"pacs_to_erp.lua", "pacs", "owner", "erp", {"roll_owner"}},
    {"pacs_value_to_erp.lua", "pacs", "property", "erp", {"roll_value"}},
    {"erp_to_pacs.lua", "erp", "payment", "pacs", {"bill_status"}},
    {"pacs_to_crm.lua", "pacs", "account", "crm", {"contact"}},
    {"pacs_owner_to_crm.lua", "pacs", "owner", "crm", {"contact_property"}},
    {"crm_to_pacs.lua", "crm", "contact", "pacs", {"account_mail"}},
};

typedef struct system_inst {
    const char *name;
    tfs_plugin *plugin;
    tfs_instance *inst;
} system_inst;

static system_inst systems[] = {{"pacs", NULL, NULL}, {"cama", NULL, NULL},
                                {"gis", NULL, NULL},  {"erp", NULL, NULL},
                                {"crm", NULL, NULL}};
#define N_SYSTEMS (sizeof systems / sizeof systems[0])

static char workdir[64];

static void die(const char *what, const tfs_error *err)
{
    fprintf(stderr, "bench_lua_map: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
    exit(1);
}

/* Settings that open each adapter without a system behind it (they connect lazily). */
static json_t *settings_of(const char *system)
{
    if (strcmp(system, "erp") == 0) {
        char in[96], out[96], ar[96];
        snprintf(in, sizeof in, "%s/inbox", workdir);
        snprintf(out, sizeof out, "%s/outbox", workdir);
        snprintf(ar, sizeof ar, "%s/archive", workdir);
        mkdir(in, 0700);
        mkdir(out, 0700);
        mkdir(ar, 0700);
        return json_pack("{s:s, s:s, s:s}", "inbox", in, "outbox", out, "archive", ar);
    }
    if (strcmp(system, "crm") == 0)
        return json_pack("{s:s, s:s}", "base_url", "http://127.0.0.1:9", "token", "bench");
    return json_pack("{s:s}", "conninfo", "host=/nonexistent dbname=bench");
}

static tfs_instance *system_get(const char *plugin_dir, const char *name)
{
    for (size_t i = 0; i < N_SYSTEMS; i++) {
        system_inst *s = &systems[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (!s->inst) {
            tfs_error err = {0};
            char path[512];
            snprintf(path, sizeof path, "%s/%s.so", plugin_dir, name);
            if (tfs_plugin_load(path, 2026, &s->plugin, &err) != 0)
                die("could not load a plugin", &err);
            json_t *set = settings_of(name);
            int rc = tfs_instance_open(s->plugin, name, set, workdir, &s->inst, &err);
            json_decref(set);
            if (rc != 0)
                die("could not open a plugin offline", &err);
        }
        return s->inst;
    }
    die(name, NULL);
    return NULL;
}

static const tfs_sdk_entity *entity_of(const char *plugin_dir, const char *system,
                                       const char *entity)
{
    tfs_instance *inst = system_get(plugin_dir, system);
    int e = tfs_instance_entity(inst, entity);
    if (e < 0) {
        fprintf(stderr, "bench_lua_map: %s describes no entity \"%s\"\n", system, entity);
        exit(1);
    }
    return tfs_instance_entity_get(inst, (size_t)e);
}

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct bench_ctx {
    tfs_lua *rt;
    const mapping *m;
    const tfs_record *src;
    const tfs_sdk_entity *targets[3];
    size_t n_targets;
    tfs_arena *arena;
    tfs_buf scratch;
} bench_ctx;

/* One record the way core/stage.c's transform() takes it, without the failure paths. */
static void stage_one(bench_ctx *c, const char *key_unused)
{
    (void)key_unused;
    tfs_error err = {0};
    tfs_lua_output out;
    uint64_t src_hash, tgt_hash;
    char *key = tfs_record_key(c->arena, c->src);
    if (!key || tfs_canonical_hash(&c->scratch, &c->src, 1, &src_hash, &err) != 0)
        die("out of memory", NULL);
    if (tfs_lua_map(c->rt, c->m->script, c->src, key, c->targets, c->n_targets, c->arena, &out,
                    &err) != 0)
        die(c->m->script, &err);
    json_t *reasons = json_array();
    for (size_t j = 0; j < out.n; j++)
        if (tfs_validate_record(out.recs[j], reasons) != 0) {
            char *r = json_dumps(reasons, 0);
            fprintf(stderr, "bench_lua_map: %s: the sample fails validation: %s\n",
                    c->m->script, r ? r : "?");
            exit(1);
        }
    json_decref(reasons);
    if (tfs_canonical_hash(&c->scratch, (const tfs_record *const *)out.recs, out.n, &tgt_hash,
                           &err) != 0)
        die("out of memory", NULL);
}

static void map_one(bench_ctx *c, const char *key)
{
    tfs_error err = {0};
    tfs_lua_output out;
    if (tfs_lua_map(c->rt, c->m->script, c->src, key, c->targets, c->n_targets, c->arena, &out,
                    &err) != 0)
        die(c->m->script, &err);
}

/* CPU microseconds per record of n calls of one(), median of reps runs. */
static double time_it(bench_ctx *c, void (*one)(bench_ctx *, const char *), long n, int reps)
{
    double runs[64];
    for (int r = 0; r < reps; r++) {
        for (long i = 0; i < 200; i++) { /* warm up */
            tfs_arena_reset(c->arena);
            one(c, "bench");
        }
        double t0 = cpu_us();
        for (long i = 0; i < n; i++) {
            tfs_arena_reset(c->arena);
            one(c, "bench");
        }
        runs[r] = (cpu_us() - t0) / (double)n;
    }
    return median(runs, reps);
}

static double time_script(bench_ctx *c, long n, int reps)
{
    double runs[64];
    tfs_error err = {0};
    for (int r = 0; r < reps; r++) {
        if (tfs_lua_map_script_only(c->rt, c->m->script, c->src, 200, &err) != 0)
            die(c->m->script, &err);
        double t0 = cpu_us();
        if (tfs_lua_map_script_only(c->rt, c->m->script, c->src, n, &err) != 0)
            die(c->m->script, &err);
        runs[r] = (cpu_us() - t0) / (double)n;
    }
    return median(runs, reps);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s <transform dir> <plugin dir> <records> [reps] [script]\n",
                argv[0]);
        return 2;
    }
    long n = strtol(argv[3], NULL, 10);
    int reps = argc >= 5 ? atoi(argv[4]) : 5;
    const char *only = argc == 6 ? argv[5] : NULL;
    if (n <= 0 || reps <= 0 || reps > 64) {
        fprintf(stderr, "bench_lua_map: records must be positive, reps 1 to 64\n");
        return 2;
    }
    snprintf(workdir, sizeof workdir, "%s/bench-lua-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(workdir))
        die("could not make a working folder", NULL);
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    if (tfs_lua_new(argv[1], NULL, 2026, &rt, &err) != 0)
        die("could not create the Lua runtime", &err);
    tfs_arena *src_arena = tfs_arena_new();
    bench_ctx c = {.rt = rt, .arena = tfs_arena_new(), .scratch = TFS_BUF_INIT};
    if (!src_arena || !c.arena)
        die("out of memory", NULL);
    printf("CPU us/record, medians of %d runs of %ld records (transforms %s)\n", reps, n,
           argv[1]);
    printf("%-24s %8s %8s %8s\n", "mapping", "script", "map", "stage");
    int missing = 0;
    for (size_t i = 0; i < sizeof mappings / sizeof mappings[0]; i++) {
        const mapping *m = &mappings[i];
        const sample *smp = NULL;
        if (only && strcmp(only, m->script) != 0)
            continue;
        for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++)
            if (strcmp(samples[s].system, m->src_system) == 0 &&
                strcmp(samples[s].entity, m->src_entity) == 0)
                smp = &samples[s];
        const tfs_sdk_entity *se = entity_of(argv[2], m->src_system, m->src_entity);
        if (!smp || !smp->json) {
            printf("%-24s (no sample %s.%s record yet; its fields:", m->script, m->src_system,
                   m->src_entity);
            for (size_t f = 0; f < se->n_fields; f++)
                printf(" %s %s", se->fields[f].name, tfs_type_name(se->fields[f].type));
            printf(")\n");
            missing++;
            continue;
        }
        json_error_t je;
        json_t *obj = json_loads(smp->json, 0, &je);
        if (!obj)
            die(je.text, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v)
            if (tfs_entity_field_index(se, k) < 0) {
                fprintf(stderr, "bench_lua_map: %s.%s has no field \"%s\"\n", m->src_system,
                        m->src_entity, k);
                return 1;
            }
        tfs_record *src;
        tfs_arena_reset(src_arena);
        if (tfs_record_from_json_checked(src_arena, se, obj, &src, &err) != 0)
            die("could not build the sample record", &err);
        json_decref(obj);
        c.m = m;
        c.src = src;
        c.n_targets = 0;
        for (size_t t = 0; t < 3 && m->targets[t]; t++)
            c.targets[c.n_targets++] = entity_of(argv[2], m->tgt_system, m->targets[t]);
        double script = time_script(&c, n, reps);
        double map = time_it(&c, map_one, n, reps);
        double stage = time_it(&c, stage_one, n, reps);
        printf("%-24s %8.2f %8.2f %8.2f\n", m->script, script, map, stage);
        fflush(stdout);
    }
    printf("(Vector publishes about 2.7 us/event for its Lua transform, its script alone)\n");
    tfs_buf_free(&c.scratch);
    tfs_arena_free(c.arena);
    tfs_arena_free(src_arena);
    tfs_lua_free(rt);
    for (size_t i = 0; i < N_SYSTEMS; i++) {
        tfs_instance_close(systems[i].inst);
        tfs_plugin_free(systems[i].plugin, false);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_lua_map: could not remove %s\n", workdir);
    return missing ? 3 : 0;
}
