/* tests/plugins/erp_csv_test.c — the ERP adapter's payment files read through the real
 * plugin host, without a database: a row whose text is not UTF-8 (a file saved as Latin-1)
 * or holds a NUL byte is a dead letter naming the file, the line and the field, and the
 * rows around it are read as before. Found by tests/fuzz/csv_fuzz.c's invariant that every
 * record's text is UTF-8 without NUL (a PostgreSQL target refuses other bytes, failing the
 * whole batch; a NUL cut "B-2\0x" short to the key "B-2").
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "plugin_host.h"
#include "record.h"

#define ERP_SO TFS_PLUGIN_DIR "/erp.so"

static char dir[64], inbox[96], archive[96], file[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tfs-erp-csv-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(inbox, sizeof inbox, "%s/inbox", dir);
    snprintf(archive, sizeof archive, "%s/archive", dir);
    snprintf(file, sizeof file, "%s/a.csv", inbox);
    cr_assert_eq(mkdir(inbox, 0700), 0);
    cr_assert_eq(mkdir(archive, 0700), 0);
}

static void teardown(void)
{
    unlink(file);
    rmdir(inbox);
    rmdir(archive);
    rmdir(dir);
}

TestSuite(erp_csv, .init = setup, .fini = teardown, .timeout = 60);

Test(erp_csv, bytes_that_are_not_utf8_text_make_a_dead_letter)
{
    static const char csv[] =
        "bill_id,prop_id,tax_year,amount_due_cents,amount_paid_cents,payment_status_type_cd,"
        "last_modified\n"
        "B-1,10042,2026,100,100,PAID,2026-11-20\n"
        "B-2,10043,2026,100,0,M\xfcller,2026-11-20\n" /* Latin-1 */
        "B-3\0x,10044,2026,100,0,DUE,2026-11-20\n"   /* a NUL */
        "B-4,10045,2026,100,0,D\xc3\xbc,2026-11-21\n"; /* UTF-8 */
    FILE *f = fopen(file, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(csv, 1, sizeof csv - 1, f), sizeof csv - 1);
    cr_assert_eq(fclose(f), 0);

    tfs_plugin *p = NULL;
    tfs_instance *inst = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(ERP_SO, 2026, &p, &err), 0, "%s", err.message);
    json_t *settings = json_pack("{ssss}", "inbox", inbox, "archive", archive);
    cr_assert_eq(tfs_instance_open(p, "erp", settings, dir, &inst, &err), 0, "%s", err.message);
    json_decref(settings);
    int ent = tfs_instance_entity(inst, "payment");
    cr_assert_geq(ent, 0);
    tfs_arena *a = tfs_arena_new();
    tfs_batch b;
    tfs_batch_init(&b, a, tfs_instance_entity_get(inst, (size_t)ent));
    cr_assert_eq(tfs_instance_read(inst, (size_t)ent, TFS_SDK_READ_FULL, NULL, 0, 0, &b, &err),
                 0, "%s", err.message);
    cr_assert_eq(b.n, 4);
    cr_assert_null(b.recs[0]->fail_reason);
    cr_assert_str_eq(b.recs[0]->values[0].u.s, "B-1");
    cr_assert_not_null(b.recs[1]->fail_reason, "the Latin-1 row is a dead letter");
    cr_assert_str_eq(b.recs[1]->values[0].u.s, "a.csv:3");
    cr_assert(strstr(b.recs[1]->fail_reason, "a.csv line 3: field 6 is not UTF-8 text (byte 2)"),
              "%s", b.recs[1]->fail_reason);
    cr_assert_not_null(b.recs[2]->fail_reason, "the row with a NUL is a dead letter");
    cr_assert(strstr(b.recs[2]->fail_reason, "line 4: field 1 holds a NUL byte"), "%s",
              b.recs[2]->fail_reason);
    cr_assert_null(b.recs[3]->fail_reason, "%s", b.recs[3]->fail_reason);
    cr_assert_str_eq(b.recs[3]->values[5].u.s, "D\xc3\xbc");
    tfs_arena_free(a);
    tfs_instance_close(inst);
    tfs_plugin_free(p, true);
}
