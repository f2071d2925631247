/* tests/fuzz/csv_fuzz.c — the ERP adapter's payment files (plugins/erp: libcsv, a UTF-8
 * BOM, CRLF, quotes, rows to records), read through erp.so as the daemon loads and calls it.
 *
 * The input is one file in the inbox. Invariants: the file read in pages of a few records,
 * each from the cursor the page before gave, yields what one read of it all yields (the
 * cursor loses and repeats nothing); every record is either a dead letter keyed
 * "<file>:<line>" with a reason, or a payment whose required fields are set, with the
 * declared types, text in UTF-8 without NUL (what a PostgreSQL target takes), dates
 * YYYY-MM-DD; no more records than the file has lines; no crash, no leak.
 */
#include <limits.h>
#include <sys/stat.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "canonical.h"
#include "fuzz_common.h"
#include "plugin_host.h"

static tfs_plugin *plugin;
static char inbox[PATH_MAX];
static json_t *settings;
static const char *dir;
static tfs_arena *arena;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tfs_error err = {0};
    dir = fuzz_scratch_dir("csv");
    snprintf(inbox, sizeof inbox, "%s/inbox", dir);
    char archive[PATH_MAX];
    snprintf(archive, sizeof archive, "%s/archive", dir);
    mkdir(inbox, 0700);
    mkdir(archive, 0700);
    if (tfs_plugin_load(TFS_FUZZ_PLUGIN_DIR "/erp.so", 2026, &plugin, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
    settings = json_pack("{ssss}", "inbox", inbox, "archive", archive);
    arena = tfs_arena_new();
    return 0;
}

typedef struct seen {
    tfs_buf enc; /* every record's canonical encoding and dead-letter reason, in order */
    size_t n;
} seen;

static void check_record(const tfs_record *r, long lines)
{
    const tfs_sdk_entity *e = r->entity;
    if (r->fail_reason) {
        const tfs_value *k = &r->values[0];
        FUZZ_CHECK(k->type == TFS_SDK_TEXT && k->len > 6 && memcmp(k->u.s, "a.csv:", 6) == 0,
                   "a dead letter not keyed <file>:<line>");
        long line = strtol(k->u.s + 6, NULL, 10);
        FUZZ_CHECK(line >= 1 && line <= lines, "dead letter at line %ld of %ld", line, lines);
        FUZZ_CHECK(r->fail_reason[0], "a dead letter without a reason");
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *v = &r->values[i];
        const tfs_sdk_field *f = &e->fields[i];
        if (v->type == TFS_SDK_NULL) {
            FUZZ_CHECK(!(f->flags & TFS_SDK_FIELD_REQUIRED), "required %s is null", f->name);
            continue;
        }
        FUZZ_CHECK(v->type == f->type, "%s is a %s, declared %s", f->name,
                   tfs_type_name(v->type), tfs_type_name(f->type));
        if (!tfs_type_is_text(v->type))
            continue;
        FUZZ_CHECK(!memchr(v->u.s, '\0', v->len), "%s holds a NUL", f->name);
        FUZZ_CHECK(fuzz_utf8_valid(v->u.s, v->len), "%s is not UTF-8", f->name);
        if (v->type == TFS_SDK_DATE)
            FUZZ_CHECK(v->len == 10 && v->u.s[4] == '-' && v->u.s[7] == '-', "%s: date %s",
                       f->name, v->u.s);
    }
}

/* Reads the inbox from the start in pages of page records (0: all at once). */
static void read_all(size_t page, seen *out, long lines)
{
    tfs_error err = {0};
    tfs_instance *inst = NULL;
    FUZZ_CHECK(tfs_instance_open(plugin, "erp", settings, dir, &inst, &err) == 0, "%s",
               err.message);
    int ent = tfs_instance_entity(inst, "payment");
    FUZZ_CHECK(ent >= 0, "no payment entity");
    char cursor[1024];
    size_t cursor_len = 0;
    for (int calls = 0;; calls++) {
        FUZZ_CHECK(calls < 10000, "the reads do not end");
        tfs_batch b;
        tfs_batch_init(&b, arena, tfs_instance_entity_get(inst, (size_t)ent));
        int rc = tfs_instance_read(inst, (size_t)ent, TFS_SDK_READ_FULL, cursor, cursor_len,
                                   page, &b, &err);
        if (rc != 0) {
            /* A file the adapter refuses whole (no header, a missing column): the same
             * answer whatever the page. */
            tfs_buf_printf(&out->enc, "error;");
            break;
        }
        FUZZ_CHECK(page == 0 || b.n <= page, "%zu records in a page of %zu", b.n, page);
        for (size_t i = 0; i < b.n; i++) {
            check_record(b.recs[i], lines);
            tfs_canonical_record(&out->enc, b.recs[i]);
            tfs_buf_printf(&out->enc, "%s\n", b.recs[i]->fail_reason ? b.recs[i]->fail_reason
                                                                     : "");
            out->n++;
        }
        if (b.done)
            break;
        FUZZ_CHECK(b.cursor_set && b.cursor_len < sizeof cursor, "a page without a cursor");
        FUZZ_CHECK(b.n > 0 || page == 0, "an empty page that is not the last");
        memcpy(cursor, b.cursor, b.cursor_len);
        cursor_len = b.cursor_len;
        tfs_arena_reset(arena);
    }
    tfs_arena_reset(arena);
    tfs_instance_close(inst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    FUZZ_CHECK(fuzz_write_file(inbox, "a.csv", data, size) == 0, "write");
    long lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || (data[i] == '\r' && (i + 1 == size || data[i + 1] != '\n'));
    seen whole = {TFS_BUF_INIT, 0}, paged = {TFS_BUF_INIT, 0};
    read_all(0, &whole, lines);
    FUZZ_CHECK((long)whole.n <= lines + 1, "%zu records from %ld lines", whole.n, lines);
    read_all(1 + size % 4, &paged, lines);
    FUZZ_CHECK(whole.enc.len == paged.enc.len &&
                   memcmp(tfs_buf_str(&whole.enc), tfs_buf_str(&paged.enc), whole.enc.len) == 0,
               "read in pages of %zu the file gives other records:\n%s\n---\n%s", 1 + size % 4,
               tfs_buf_str(&whole.enc), tfs_buf_str(&paged.enc));
    tfs_buf_free(&whole.enc);
    tfs_buf_free(&paged.enc);
    return 0;
}
