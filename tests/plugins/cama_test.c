/* tests/plugins/cama_test.c — the CAMA adapter's inserts (SDK 1.5, TFS_SDK_OP_INSERT)
 * through the real plugin host against a real PostgreSQL: new keys are COPYed straight
 * into pardat and asmt, and an insert of a key that is there after all (a replay after a
 * crash between CAMA's commit and the state store's, a row added by hand, a key twice in
 * one call) is applied as an upsert, never failed and never a second row.
 *
 * Which statement wrote a table is seen by a statement trigger the test adds: it logs the
 * first word of current_query() (COPY, or the INSERT of the upsert) with the table's name.
 * A COPY rolled back to its savepoint takes its log row with it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "plugin_host.h"
#include "record.h"
#include "tfs_test.h"

#define CAMA_SO TFS_PLUGIN_DIR "/cama.so"

/* Field positions (plugins/cama/README.md). */
enum { P_PARID, P_TAXYR, P_SEQ, P_CUR, P_CLASS, P_STATECODE = 15 };
enum { A_PARID, A_TAXYR, A_VALAPR3 = 7 };

static char *db;
static tfs_plugin *plugin;
static tfs_instance *inst;
static tfs_arena *arena;
static size_t pardat, asmt;

static void setup(void)
{
    db = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "camains");
    tfs_test_cama_log_statements(db);
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(CAMA_SO, 2026, &plugin, &err), 0, "%s", err.message);
    char *conninfo = tfs_test_pg_conninfo(db);
    json_t *settings = json_pack("{ss ss}", "conninfo", conninfo, "who", "tester");
    free(conninfo);
    int rc = tfs_instance_open(plugin, "cama", settings, NULL, &inst, &err);
    json_decref(settings);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert(tfs_instance_takes_inserts(inst), "cama declares TFS_SDK_CAP_INSERT");
    pardat = (size_t)tfs_instance_entity(inst, "pardat");
    asmt = (size_t)tfs_instance_entity(inst, "asmt");
    cr_assert_not_null(arena = tfs_arena_new());
}

static void teardown(void)
{
    tfs_instance_close(inst);
    tfs_plugin_free(plugin, true);
    tfs_arena_free(arena);
    tfs_test_db_drop(db);
    free(db);
}

TestSuite(cama_insert, .init = setup, .fini = teardown, .timeout = 60);

static void set_text(tfs_record *r, size_t f, tfs_sdk_type t, const char *s)
{
    cr_assert_eq(tfs_record_set_text(r, f, t, s, strlen(s)), 0);
}

/* A pardat record of 2026, seq and cur left null (the column defaults apply). */
static tfs_record *parcel(const char *parid, const char *cls, const char *state)
{
    tfs_record *r = tfs_record_new(arena, tfs_instance_entity_get(inst, pardat));
    cr_assert_not_null(r);
    set_text(r, P_PARID, TFS_SDK_TEXT, parid);
    r->values[P_TAXYR] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    set_text(r, P_CLASS, TFS_SDK_TEXT, cls);
    set_text(r, P_STATECODE, TFS_SDK_TEXT, state);
    return r;
}

static tfs_record *assessment(const char *parid, const char *total)
{
    tfs_record *r = tfs_record_new(arena, tfs_instance_entity_get(inst, asmt));
    cr_assert_not_null(r);
    set_text(r, A_PARID, TFS_SDK_TEXT, parid);
    r->values[A_TAXYR] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    set_text(r, A_VALAPR3, TFS_SDK_DECIMAL, total);
    return r;
}

/* Writes the ops in one call; every result must be `want` but those of index bad. */
static void write_ops(const tfs_sdk_write_op *ops, size_t n, long bad)
{
    tfs_results res;
    tfs_error err = {0};
    cr_assert_eq(tfs_results_init(&res, n), 0);
    cr_assert_eq(tfs_instance_write(inst, ops, n, &res, &err), 0, "%s", err.message);
    for (size_t i = 0; i < n; i++)
        if ((long)i == bad)
            cr_expect_eq(res.status[i], TFS_SDK_EPERMANENT, "operation %zu fails", i);
        else
            cr_expect_eq(res.status[i], TFS_SDK_OK, "operation %zu: %s", i,
                         res.message[i] ? res.message[i] : "");
    tfs_results_free(&res);
}

static char *scalar(const char *sql)
{
    char *v = tfs_test_pg_scalar(db, sql);
    cr_assert_not_null(v, "no value from %s", sql);
    return v;
}

static void expect_scalar(const char *sql, const char *want)
{
    char *v = scalar(sql);
    cr_expect_str_eq(v, want, "%s", sql);
    free(v);
}

/* The statements that wrote the tables since the log was cleared, in order. */
static void expect_statements(const char *want)
{
    expect_scalar("SELECT coalesce(string_agg(tbl || ':' || cmd, ' ' ORDER BY n), '')"
                  " FROM test_stmt", want);
    tfs_test_pg_exec(db, "TRUNCATE test_stmt");
}

static void three_new_parcels(tfs_sdk_write_op *ops)
{
    static const char *ids[] = {"R1", "R2", "R3"};
    for (int i = 0; i < 3; i++) {
        ops[2 * i] = (tfs_sdk_write_op){pardat, TFS_SDK_OP_INSERT, parcel(ids[i], "R", "TX")};
        ops[2 * i + 1] =
            (tfs_sdk_write_op){asmt, TFS_SDK_OP_INSERT, assessment(ids[i], "100000")};
    }
}

/* New keys go by COPY into the tables, with what the upsert would have written: the column
 * defaults for seq and cur, who, wen the transaction's now(). An upsert of the same records
 * afterwards finds nothing to change (wen stays). */
Test(cama_insert, new_keys_are_copied_into_the_tables)
{
    tfs_sdk_write_op ops[6];
    three_new_parcels(ops);
    write_ops(ops, 6, -1);
    expect_statements("pardat:COPY asmt:COPY");
    expect_scalar("SELECT string_agg(parid || ' ' || taxyr || ' ' || seq || ' ' || cur || ' '"
                  " || class || ' ' || statecode || ' ' || who, ',' ORDER BY parid)"
                  " FROM pardat",
                  "R1 2026 0 Y R TX tester,R2 2026 0 Y R TX tester,R3 2026 0 Y R TX tester");
    expect_scalar("SELECT string_agg(parid || ' ' || valapr3 || ' ' || seq || cur || ' ' || who,"
                  " ',' ORDER BY parid) FROM asmt",
                  "R1 100000 0Y tester,R2 100000 0Y tester,R3 100000 0Y tester");
    expect_scalar("SELECT count(DISTINCT wen) || ' ' || bool_and(wen <= now())"
                  " FROM (SELECT wen FROM pardat UNION ALL SELECT wen FROM asmt) w",
                  "1 true");
    char *wen = scalar("SELECT max(wen)::text FROM pardat");
    for (int i = 0; i < 6; i++)
        ops[i].kind = TFS_SDK_OP_UPSERT;
    write_ops(ops, 6, -1);
    expect_statements("pardat:INSERT asmt:INSERT");
    char *after = scalar("SELECT max(wen)::text FROM pardat");
    cr_expect_str_eq(after, wen, "the upsert of the same records changed nothing");
    free(after);
    free(wen);
}

/* A row someone added by hand (no sync map row, so the host says insert): the COPY of
 * pardat rolls back to its savepoint and the batch's pardat goes the upsert's way; asmt,
 * which had no such row, is still COPYed. One row per key, the hand's row overwritten. */
Test(cama_insert, an_insert_of_a_row_already_there_is_applied_as_an_upsert)
{
    tfs_test_pg_exec(db, "INSERT INTO pardat (parid, taxyr, class, who) VALUES"
                         " ('R2', 2026, 'C', 'hand');"
                         "TRUNCATE test_stmt");
    tfs_sdk_write_op ops[6];
    three_new_parcels(ops);
    write_ops(ops, 6, -1);
    expect_statements("pardat:INSERT asmt:COPY");
    expect_scalar("SELECT string_agg(parid || ' ' || class || ' ' || who, ',' ORDER BY parid)"
                  " FROM pardat",
                  "R1 R tester,R2 R tester,R3 R tester");
    expect_scalar("SELECT count(*) FROM asmt", "3");
}

/* The replay of a batch whose CAMA commit was kept but whose state commit was lost (kill -9
 * between the two): the same inserts again change nothing, wen included. */
Test(cama_insert, a_replayed_batch_of_inserts_changes_nothing)
{
    tfs_sdk_write_op ops[6];
    three_new_parcels(ops);
    write_ops(ops, 6, -1);
    char *before = scalar("SELECT string_agg(p::text, ',' ORDER BY parid) FROM pardat p");
    expect_statements("pardat:COPY asmt:COPY");
    write_ops(ops, 6, -1);
    expect_statements("pardat:INSERT asmt:INSERT");
    char *after = scalar("SELECT string_agg(p::text, ',' ORDER BY parid) FROM pardat p");
    cr_expect_str_eq(after, before);
    free(after);
    free(before);
    expect_scalar("SELECT count(*) FROM asmt", "3");
}

/* A key twice among the inserts of one call: its last operation wins, in one row. */
Test(cama_insert, a_key_twice_in_one_call_keeps_its_last_insert)
{
    tfs_sdk_write_op ops[] = {
        {pardat, TFS_SDK_OP_INSERT, parcel("R1", "A", "TX")},
        {pardat, TFS_SDK_OP_INSERT, parcel("R2", "A", "TX")},
        {pardat, TFS_SDK_OP_INSERT, parcel("R1", "B", "TX")},
    };
    write_ops(ops, 3, -1);
    expect_scalar("SELECT string_agg(parid || class, ',' ORDER BY parid) FROM pardat",
                  "R1B,R2A");
}

/* A row CAMA refuses (its CHECK on statecode) among inserts fails alone; the others are
 * written. */
Test(cama_insert, a_bad_row_among_inserts_fails_alone)
{
    tfs_sdk_write_op ops[] = {
        {pardat, TFS_SDK_OP_INSERT, parcel("R1", "A", "TX")},
        {pardat, TFS_SDK_OP_INSERT, parcel("R2", "A", "tx")},
        {pardat, TFS_SDK_OP_INSERT, parcel("R3", "A", "TX")},
    };
    write_ops(ops, 3, 1);
    expect_scalar("SELECT string_agg(parid, ',' ORDER BY parid) FROM pardat", "R1,R3");
}

/* Inserts beside other operations of the same entity in one call keep the order of the
 * operations: an insert then a delete of a key leaves nothing, an upsert then an insert
 * leaves the insert. */
Test(cama_insert, inserts_beside_other_operations_keep_their_order)
{
    tfs_sdk_write_op ops[] = {
        {pardat, TFS_SDK_OP_INSERT, parcel("R1", "A", "TX")},
        {pardat, TFS_SDK_OP_DELETE, parcel("R1", "A", "TX")},
        {pardat, TFS_SDK_OP_UPSERT, parcel("R2", "A", "TX")},
        {pardat, TFS_SDK_OP_INSERT, parcel("R2", "B", "TX")},
    };
    write_ops(ops, 4, -1);
    expect_scalar("SELECT string_agg(parid || class, ',' ORDER BY parid) FROM pardat", "R2B");
}
