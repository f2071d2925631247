/* tests/integration/decimal_test.c — decimals land in CAMA exactly as PostgreSQL rounds
 * them: a full sync of the 10,000-parcel county with a mapping that gives pardat.acres
 * (numeric(12,4)) values with more digits than its scale, and every row compared with
 * round(x::numeric, 4) computed by PostgreSQL from the same x.
 *
 * The mapping picks one of the cases below by prop_id: decimal text (half-way cases, 30+
 * digits, exponents, carries, a sign on zero), text made of the parcel's digits, Lua
 * floats (which reach a decimal field as their shortest round-trip text, the same text
 * PostgreSQL's float8 output gives) and integers. One case does not fit numeric(12,4): those
 * parcels are dead letters naming the value, and are not written. It also writes prop_id
 * into zoning, so the check can tell which case a row took. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfs_test.h"

/* Each case as a Lua expression of p (the prop_id) and the same value as SQL text; sql NULL
 * marks the case that must be refused. */
static const struct {
    const char *lua, *sql;
} cases[] = {
    {"'0.00005'", "'0.00005'"},
    {"'0.00015'", "'0.00015'"},
    {"'-0.00005'", "'-0.00005'"},
    {"'1.00005'", "'1.00005'"},
    {"'9999.99995'", "'9999.99995'"},
    {"'-99999999.99994'", "'-99999999.99994'"},
    {"'12345678.12344999999999999999999999'", "'12345678.12344999999999999999999999'"},
    {"'12345678.12345000000000000000000001'", "'12345678.12345000000000000000000001'"},
    {"'0.000049999999999999999999'", "'0.000049999999999999999999'"},
    {"'1.5e-4'", "'1.5e-4'"},
    {"'-2.5E-4'", "'-2.5E-4'"},
    {"'-0'", "'-0'"},
    {"'-0.00004'", "'-0.00004'"},
    {"'1.23456789e3'", "'1.23456789e3'"},
    {"'00042.00005'", "'00042.00005'"},
    {"string.format('%d.%04d5', p % 10000, p % 10000)",
     "format('%s.%s5', p % 10000, lpad((p % 10000)::text, 4, '0'))"},
    {"string.format('-%d.%04d5', p % 1000, p % 7919)",
     "format('-%s.%s5', p % 1000, lpad((p % 7919)::text, 4, '0'))"},
    {"p / 7", "p::float8 / 7"},
    {"-p / 9", "-p::float8 / 9"},
    {"p * 0.00011", "p::float8 * 0.00011::float8"},
    {"p / 1e5 + 0.00005", "p::float8 / 1e5::float8 + 0.00005::float8"},
    {"1.00105", "1.00105::float8"},
    {"0.1 + 0.2", "0.1::float8 + 0.2::float8"},
    {"p % 1000", "p % 1000"},
    {"'123456789.5'", NULL},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))
#define REFUSED (N_CASES - 1)

static char *transform_dir(void)
{
    char *dir = strdup("/tmp/tfs-decimal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -R '%s/transforms/.' '%s/'", TFS_SOURCE_DIR, dir);
    cr_assert_eq(system(cmd), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/pacs_to_cama.lua", dir);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs("\nlocal shipped_map = map\nlocal cases = {\n", f);
    for (int i = 0; i < N_CASES; i++)
        fprintf(f, "  function(p) return %s end,\n", cases[i].lua);
    fprintf(f, "}\n"
               "function map(rec)\n"
               "  local out = shipped_map(rec)\n"
               "  local p = rec.prop_id\n"
               "  out.pardat.acres = cases[p %% %d + 1](p)\n"
               "  out.pardat.zoning = tostring(p)\n"
               "  return out\n"
               "end\n",
            N_CASES);
    fclose(f);
    return dir;
}

static json_int_t scalar_int(const char *db, const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    json_int_t x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

static json_t *full_sync(const tfs_test_daemon *d)
{
    json_int_t id = tfs_test_start_full(d, "pacs-to-cama");
    json_t *run = tfs_test_wait_run(d, id, 300);
    /* The refused case is a dead letter: a run with one ends partial. */
    json_t *c = json_object_get(json_object_get(run, "counts"), "property");
    const char *want = json_integer_value(json_object_get(c, "failed")) > 0 ? "partial"
                                                                            : "succeeded";
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), want,
                     "run ended %s: %s", json_string_value(json_object_get(run, "state")),
                     json_string_value(json_object_get(run, "error")));
    return run;
}

static json_int_t count_of(json_t *run, const char *what)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(run, "counts"), "property"), what));
}

Test(decimal, acres_land_as_postgresql_rounds_them, .timeout = 600)
{
    char *dir = transform_dir();
    char *pacs, *cama, *state;
    tfs_test_clone_dbs(TFS_TEST_TMPL_PACS10K, NULL, &pacs, &cama, &state);
    /* Negative values are rounding cases too; CAMA's own rule that acres are not negative
     * is not what this test is about. */
    tfs_test_pg_exec(cama, "ALTER TABLE pardat DROP CONSTRAINT pardat_acres_check");
    json_t *cfg = tfs_test_config_new(pacs, cama, state);
    json_object_set_new(cfg, "transform_dir", json_string(dir));
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);
    json_decref(cfg);

    /* The properties the sync reads (2026 values at their highest supplement, not
     * retired), and those of them that take the case numeric(12,4) cannot hold. */
    static const char exposed_sql[] =
        "SELECT count(*) FROM (SELECT DISTINCT ON (prop_id) prop_id, prop_inactive_dt"
        " FROM property_val WHERE prop_val_yr = 2026 ORDER BY prop_id, sup_num DESC) v"
        " WHERE prop_inactive_dt IS NULL";
    char sql[16384];
    json_int_t exposed = scalar_int(pacs, exposed_sql);
    snprintf(sql, sizeof sql, "%s AND prop_id %% %d = %d", exposed_sql, N_CASES, REFUSED);
    json_int_t refused = scalar_int(pacs, sql);
    cr_assert_gt(exposed, 9000);
    cr_assert_gt(refused, 0);

    json_t *run = full_sync(d);
    cr_assert_eq(count_of(run, "read"), exposed);
    cr_assert_eq(count_of(run, "validate_failed"), refused);
    cr_assert_eq(count_of(run, "written"), exposed - refused);
    json_decref(run);

    /* Every row against PostgreSQL's own rounding of the same value. */
    size_t len = (size_t)snprintf(sql, sizeof sql,
                                  "CREATE TEMP TABLE want AS SELECT p, acres, CASE p %% %d",
                                  N_CASES);
    for (int i = 0; i < N_CASES; i++)
        if (cases[i].sql)
            len += (size_t)snprintf(sql + len, sizeof sql - len,
                                    " WHEN %d THEN round((%s)::text::numeric, 4)", i,
                                    cases[i].sql);
    snprintf(sql + len, sizeof sql - len,
             " END AS expected FROM (SELECT zoning::int AS p, acres FROM pardat) d;"
             " SELECT count(*) FROM want");
    PGconn *c = tfs_test_pg_connect(cama);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    cr_assert_eq(strtoll(PQgetvalue(r, 0, 0), NULL, 10), exposed - refused);
    PQclear(r);
    r = PQexec(c, "SELECT count(*) FROM want"
                  " WHERE acres::text <> expected::text OR acres IS NULL");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    long wrong = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (wrong) {
        snprintf(sql, sizeof sql,
                 "SELECT string_agg(format('prop_id %%s (case %%s): %%s, PostgreSQL rounds to %%s',"
                 " p, p %% %d, acres, expected), E'\\n') FROM (SELECT * FROM want WHERE"
                 " acres::text <> expected::text OR acres IS NULL ORDER BY p %% %d LIMIT 8) x",
                 N_CASES, N_CASES);
        r = PQexec(c, sql);
        cr_assert_fail("%ld rows differ from PostgreSQL's rounding, e.g.\n%s", wrong,
                       PQgetvalue(r, 0, 0));
    }
    /* Every case that fits was taken by some row, and the half-way cases really were
     * half-way: the results are the rounded-up ones. */
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT p %% %d) FROM want", N_CASES);
    r = PQexec(c, sql);
    cr_assert_eq(strtol(PQgetvalue(r, 0, 0), NULL, 10), N_CASES - 1);
    PQclear(r);
    static const char *const spot[][2] = {
        {"0", "0.0001"},          {"1", "0.0002"},          {"2", "-0.0001"},
        {"3", "1.0001"},          {"4", "10000.0000"},      {"5", "-99999999.9999"},
        {"6", "12345678.1234"},   {"7", "12345678.1235"},   {"8", "0.0000"},
        {"9", "0.0002"},          {"10", "-0.0003"},        {"11", "0.0000"},
        {"12", "0.0000"},         {"13", "1234.5679"},      {"14", "42.0001"},
        {"21", "1.0011"},         {"22", "0.3000"},
    };
    for (size_t i = 0; i < sizeof spot / sizeof spot[0]; i++) {
        snprintf(sql, sizeof sql, "SELECT string_agg(DISTINCT acres::text, ',') FROM want"
                                  " WHERE p %% %d = %s", N_CASES, spot[i][0]);
        r = PQexec(c, sql);
        cr_expect_str_eq(PQgetvalue(r, 0, 0), spot[i][1], "case %s", spot[i][0]);
        PQclear(r);
    }
    PQfinish(c);

    /* The refused case is a dead letter that names the value and the column's type. */
    tfs_test_response resp = tfs_test_http(d, "GET", "/dead-letters?pair=pacs-to-cama&limit=1",
                                           "read-key", NULL);
    cr_assert_eq(resp.status, 200);
    cr_assert(strstr(resp.body, "pardat.acres: \\\"123456789.5\\\" is out of range for "
                                "numeric(12,4)"),
              "%s", resp.body);
    tfs_test_response_free(&resp);

    /* What was hashed is what CAMA holds: a second full sync writes nothing. */
    run = full_sync(d);
    cr_assert_eq(count_of(run, "written"), 0, "the second sync wrote %lld records",
                 (long long)count_of(run, "written"));
    cr_assert_eq(count_of(run, "unchanged"), exposed - refused);
    json_decref(run);

    tfs_test_daemon_stop_clean(d);
    tfs_test_drop_dbs(&pacs, &cama, &state);
    snprintf(sql, sizeof sql, "rm -rf '%s'", dir);
    cr_assert_eq(system(sql), 0);
    free(dir);
}
