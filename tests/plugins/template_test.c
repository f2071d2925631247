/* tests/plugins/template_test.c — the SDK's template plugin (sdk/template) works through the
 * real plugin host: it loads, opens with checked settings, reads a whole entity in keyset
 * batches, writes upserts and deletes with one result per operation (a bad row fails
 * alone), fetches by key, and an unknown setting is refused with its path; its cb_check
 * names a bad setting's path, a relative seed_file starts at the config's folder, and its
 * open is lazy (SDK 1.3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "plugin_host.h"
#include "record.h"

#define TEMPLATE_SO TFS_TEMPLATE_PLUGIN_DIR "/template.so"
#define ROLL_YEAR 2026

/* The template's fields, by position. */
enum { F_ID, F_NAME, F_PRICE, F_UPDATED };

static tfs_plugin *plugin;
static tfs_instance *inst;
static tfs_arena *arena;
static size_t item; /* the entity index of "item" */

static void load(void)
{
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(TEMPLATE_SO, ROLL_YEAR, &plugin, &err), 0, "%s",
                 err.message);
    cr_assert_not_null(arena = tfs_arena_new());
}

/* Loads the template and opens an instance with settings (a JSON text). */
static void open_with(const char *settings_json)
{
    tfs_error err = {0};
    json_t *settings = json_loads(settings_json, 0, NULL);
    cr_assert_not_null(settings);
    int rc = tfs_instance_open(plugin, "tpl", settings, NULL, &inst, &err);
    json_decref(settings);
    cr_assert_eq(rc, 0, "%s", err.message);
    int e = tfs_instance_entity(inst, "item");
    cr_assert_geq(e, 0, "the template describes an entity \"item\"");
    item = (size_t)e;
}

static void setup(void)
{
    load();
    open_with("{\"rows\": 25}");
}

static void teardown(void)
{
    tfs_instance_close(inst);
    inst = NULL;
    tfs_plugin_free(plugin, true);
    plugin = NULL;
    tfs_arena_free(arena);
    arena = NULL;
}

TestSuite(template, .init = setup, .fini = teardown);

/* A record of the item entity in the test's arena. */
static tfs_record *item_record(int64_t id, const char *name, const char *price,
                               const char *updated)
{
    tfs_record *r = tfs_record_new(arena, tfs_instance_entity_get(inst, item));
    cr_assert_not_null(r);
    r->values[F_ID] = (tfs_value){.type = TFS_SDK_INT64, .u.i = id};
    if (name)
        cr_assert_eq(tfs_record_set_text(r, F_NAME, TFS_SDK_TEXT, name, strlen(name)), 0);
    if (price)
        cr_assert_eq(tfs_record_set_text(r, F_PRICE, TFS_SDK_DECIMAL, price, strlen(price)), 0);
    if (updated)
        cr_assert_eq(tfs_record_set_text(r, F_UPDATED, TFS_SDK_DATE, updated, strlen(updated)),
                     0);
    return r;
}

static const char *text_of(const tfs_record *r, size_t f)
{
    cr_assert(tfs_type_is_text(r->values[f].type), "field %zu is text-typed", f);
    return r->values[f].u.s;
}

/* Fetches the given ids into a fresh batch. */
static void fetch_ids(const int64_t *ids, size_t n, tfs_batch *out)
{
    const tfs_record *keys[8];
    cr_assert_leq(n, 8);
    for (size_t i = 0; i < n; i++)
        keys[i] = item_record(ids[i], NULL, NULL, NULL);
    tfs_error err = {0};
    tfs_batch_init(out, arena, tfs_instance_entity_get(inst, item));
    cr_assert_eq(tfs_instance_fetch(inst, item, keys, n, out, &err), 0, "%s", err.message);
}

static const tfs_record *find_id(const tfs_batch *b, int64_t id)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->recs[i]->values[F_ID].type == TFS_SDK_INT64 && b->recs[i]->values[F_ID].u.i == id)
            return b->recs[i];
    return NULL;
}

Test(template, descriptor)
{
    tfs_plugin_info info = tfs_plugin_get_info(plugin);
    cr_assert_str_eq(info.name, "template");
    cr_assert_eq(info.sdk_major, TFS_SDK_VERSION_MAJOR);
    cr_assert_eq(info.capabilities,
                 TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_LAZY_OPEN);
    cr_assert_eq(info.n_config_keys, 4);
    cr_assert_str_eq(info.config_keys[0].name, "rows");
    cr_assert_str_eq(info.config_keys[1].name, "name_prefix");
    const tfs_sdk_entity *e = tfs_instance_entity_get(inst, item);
    cr_assert_eq(e->n_fields, 4);
    cr_assert_str_eq(e->fields[F_ID].name, "id");
    cr_assert(e->fields[F_ID].flags & TFS_SDK_FIELD_KEY);
    cr_assert_eq(e->fields[F_NAME].max_length, 40);
    cr_assert_eq(e->fields[F_PRICE].type, TFS_SDK_DECIMAL);
    cr_assert_eq(e->fields[F_PRICE].scale, 2);
    cr_assert_eq(e->fields[F_UPDATED].type, TFS_SDK_DATE);
}

Test(template, reads_everything_in_keyset_batches)
{
    unsigned char *cursor = NULL;
    size_t cursor_len = 0, batches = 0, records = 0;
    int64_t expect_id = 1;
    for (;;) {
        tfs_error err = {0};
        tfs_batch b;
        tfs_arena_reset(arena); /* as the pipeline does: one arena per batch */
        tfs_batch_init(&b, arena, tfs_instance_entity_get(inst, item));
        cr_assert_eq(tfs_instance_read(inst, item, TFS_SDK_READ_FULL, cursor, cursor_len, 10,
                                       &b, &err),
                     0, "%s", err.message);
        batches++;
        cr_assert_leq(b.n, 10, "a batch holds at most max records");
        cr_assert(b.cursor_set, "batch %zu sets the cursor", batches);
        for (size_t i = 0; i < b.n; i++, expect_id++) {
            const tfs_record *r = b.recs[i];
            cr_assert_eq(r->n, 4);
            cr_assert_eq(r->values[F_ID].type, TFS_SDK_INT64);
            cr_assert_eq(r->values[F_ID].u.i, expect_id, "keys come in order, once each");
            cr_assert_eq(r->values[F_NAME].type, TFS_SDK_TEXT);
            cr_assert_eq(r->values[F_PRICE].type, TFS_SDK_DECIMAL);
            cr_assert_eq(r->values[F_UPDATED].type, TFS_SDK_DATE);
        }
        records += b.n;
        if (b.n > 0 && batches == 1) {
            cr_assert_str_eq(text_of(b.recs[0], F_NAME), "item-1");
            cr_assert_str_eq(text_of(b.recs[0], F_PRICE), "1.25");
            cr_assert_str_eq(text_of(b.recs[0], F_UPDATED), "2026-01-02",
                             "dates come from the roll year");
        }
        if (b.done || b.n == 0)
            break;
        cr_assert_lt(batches, 10, "the read ends");
        /* The cursor lives in the arena, which the next batch resets: keep a copy. */
        free(cursor);
        cursor = malloc(b.cursor_len ? b.cursor_len : 1);
        cr_assert_not_null(cursor);
        memcpy(cursor, b.cursor, b.cursor_len);
        cursor_len = b.cursor_len;
    }
    free(cursor);
    cr_assert_eq(batches, 3, "25 records in batches of 10: 3 batches, got %zu", batches);
    cr_assert_eq(records, 25);
}

Test(template, done_on_the_batch_that_ends_exactly)
{
    /* 20 rows in batches of 10: the second batch is marked done, no empty third read. */
    tfs_instance_close(inst);
    open_with("{\"rows\": 20, \"name_prefix\": \"thing\"}");
    tfs_error err = {0};
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(inst, item));
    cr_assert_eq(tfs_instance_read(inst, item, TFS_SDK_READ_FULL, "10", 2, 10, &b, &err), 0,
                 "%s", err.message);
    cr_assert_eq(b.n, 10);
    cr_assert_eq(b.recs[0]->values[F_ID].u.i, 11, "the read starts after the cursor");
    cr_assert_str_eq(text_of(b.recs[0], F_NAME), "thing-11");
    cr_assert(b.done);
}

Test(template, changes_are_refused_permanently)
{
    tfs_error err = {0};
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(inst, item));
    cr_assert_eq(tfs_instance_read(inst, item, TFS_SDK_READ_CHANGES, NULL, 0, 10, &b, &err),
                 TFS_EPERMANENT);
    cr_assert(strstr(err.message, "tpl could not read"), "%s", err.message);
    cr_assert(strstr(err.message, "change"), "%s", err.message);
}

Test(template, garbage_cursor_is_refused)
{
    tfs_error err = {0};
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(inst, item));
    cr_assert_eq(tfs_instance_read(inst, item, TFS_SDK_READ_FULL, "x\x01", 2, 10, &b, &err),
                 TFS_EPERMANENT);
    cr_assert(strstr(err.message, "cursor"), "%s", err.message);
}

Test(template, writes_one_result_per_operation)
{
    tfs_sdk_write_op ops[] = {
        {item, TFS_SDK_OP_UPSERT, item_record(1000, "new item", "9.99", "2026-05-01")},
        {item, TFS_SDK_OP_UPSERT, item_record(1001, "bad item", "-1.00", NULL)},
        {item, TFS_SDK_OP_UPSERT, item_record(5, "renamed", NULL, NULL)},
    };
    size_t n = sizeof ops / sizeof ops[0];
    tfs_results res;
    tfs_error err = {0};
    cr_assert_eq(tfs_results_init(&res, n), 0);
    cr_assert_eq(tfs_instance_write(inst, ops, n, &res, &err), 0,
                 "a refused row does not fail the batch: %s", err.message);
    cr_assert_eq(res.status[0], TFS_SDK_OK, "%s", res.message[0] ? res.message[0] : "");
    cr_assert_eq(res.status[1], TFS_SDK_EPERMANENT, "a negative price is refused");
    cr_assert_not_null(res.message[1]);
    cr_assert(strstr(res.message[1], "negative"), "%s", res.message[1]);
    cr_assert(strstr(res.message[1], "1001"), "the message names the item: %s",
              res.message[1]);
    cr_assert_eq(res.status[2], TFS_SDK_OK, "%s", res.message[2] ? res.message[2] : "");
    tfs_results_free(&res);

    int64_t ids[] = {1000, 1001, 5, 424242};
    tfs_batch b;
    fetch_ids(ids, 4, &b);
    cr_assert_eq(b.n, 2, "1000 and 5 exist; 1001 was refused, 424242 never existed");
    const tfs_record *r = find_id(&b, 1000);
    cr_assert_not_null(r);
    cr_assert_str_eq(text_of(r, F_NAME), "new item");
    cr_assert_str_eq(text_of(r, F_PRICE), "9.99");
    cr_assert_str_eq(text_of(r, F_UPDATED), "2026-05-01");
    r = find_id(&b, 5);
    cr_assert_not_null(r);
    cr_assert_str_eq(text_of(r, F_NAME), "renamed");
    cr_assert_eq(r->values[F_PRICE].type, TFS_SDK_NULL, "an upsert replaces the whole record");
    cr_assert_null(find_id(&b, 1001));
}

Test(template, upserts_are_idempotent_and_deletes_too)
{
    tfs_sdk_write_op up = {item, TFS_SDK_OP_UPSERT, item_record(1000, "x", "0.5", NULL)};
    tfs_sdk_write_op del = {item, TFS_SDK_OP_DELETE, item_record(1000, NULL, NULL, NULL)};
    tfs_error err = {0};
    for (int i = 0; i < 2; i++) {
        tfs_results res;
        cr_assert_eq(tfs_results_init(&res, 1), 0);
        cr_assert_eq(tfs_instance_write(inst, &up, 1, &res, &err), 0, "%s", err.message);
        cr_assert_eq(res.status[0], TFS_SDK_OK);
        tfs_results_free(&res);
    }
    int64_t id = 1000;
    tfs_batch b;
    fetch_ids(&id, 1, &b);
    cr_assert_eq(b.n, 1, "two upserts of one key leave one record");
    cr_assert_str_eq(text_of(b.recs[0], F_PRICE), "0.50");

    for (int i = 0; i < 2; i++) {
        tfs_results res;
        cr_assert_eq(tfs_results_init(&res, 1), 0);
        cr_assert_eq(tfs_instance_write(inst, &del, 1, &res, &err), 0, "%s", err.message);
        cr_assert_eq(res.status[0], TFS_SDK_OK, "deleting what is gone is a success");
        tfs_results_free(&res);
    }
    fetch_ids(&id, 1, &b);
    cr_assert_eq(b.n, 0, "the deleted record is gone");

    /* The full read no longer sees it, and still sees the 25 generated items. */
    tfs_batch all;
    tfs_batch_init(&all, arena, tfs_instance_entity_get(inst, item));
    cr_assert_eq(tfs_instance_read(inst, item, TFS_SDK_READ_FULL, NULL, 0, 100, &all, &err), 0,
                 "%s", err.message);
    cr_assert_eq(all.n, 25);
    cr_assert(all.done);
}

Test(template, health_is_ok)
{
    tfs_error err = {0};
    cr_assert_eq(tfs_instance_health(inst, &err), 0, "%s", err.message);
}

Test(template, unknown_setting_is_refused_with_its_path)
{
    tfs_error err = {0};
    tfs_instance *other = NULL;
    json_t *s = json_pack("{sisi}", "rows", 25, "colour", 3);
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, NULL, &other, &err), TFS_EINVAL);
    json_decref(s);
    cr_assert_null(other);
    cr_assert(strstr(err.message, "systems.tpl.settings.colour: unknown setting"), "%s",
              err.message);
    cr_assert(strstr(err.hint, "rows, name_prefix, log_batches"), "the hint lists the keys: %s",
              err.hint);
}

Test(template, wrong_type_and_bad_value_are_refused)
{
    tfs_error err = {0};
    tfs_instance *other = NULL;
    json_t *s = json_pack("{ss}", "rows", "ten");
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, NULL, &other, &err), TFS_EINVAL);
    json_decref(s);
    cr_assert(strstr(err.message, "systems.tpl.settings.rows: must be an integer"), "%s",
              err.message);

    /* The right type but a value the plugin cannot use: refused by its cb_check, which
     * names the setting's path (config_system), before anything is opened. */
    s = json_pack("{si}", "rows", -1);
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, NULL, &other, &err), TFS_EINVAL);
    cr_assert_null(other);
    cr_assert(strstr(err.message, "systems.tpl.settings.rows: -1 is out of range"), "%s",
              err.message);
    /* The same check offline, as tfsyncd --check makes it, under another system's name. */
    cr_assert_eq(tfs_plugin_check(plugin, "inventory", s, NULL, &err), TFS_EINVAL);
    cr_assert(strstr(err.message, "systems.inventory.settings.rows: -1"), "%s", err.message);
    json_decref(s);
}

/* A folder holding seed.csv, as a config's folder would. */
static void seed_dir(char *dir, size_t cap, const char *lines)
{
    snprintf(dir, cap, "/tmp/tfs-tpl-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/seed.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(lines, f);
    fclose(f);
}

static void seed_dir_remove(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/seed.csv", dir);
    unlink(path);
    rmdir(dir);
}

/* A relative seed_file starts at the config's folder (config_dir), not the daemon's
 * working directory. */
Test(template, relative_seed_file_is_read_from_the_config_dir)
{
    char dir[64];
    seed_dir(dir, sizeof dir, "7,seven,7.70\n9,nine,\n");
    tfs_error err = {0};
    tfs_instance *other = NULL;
    json_t *s = json_pack("{ss}", "seed_file", "seed.csv");
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, dir, &other, &err), 0, "%s", err.message);
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(other, item));
    cr_assert_eq(tfs_instance_read(other, item, TFS_SDK_READ_FULL, NULL, 0, 10, &b, &err), 0,
                 "%s", err.message);
    cr_assert_eq(b.n, 2);
    cr_expect_eq(b.recs[0]->values[F_ID].u.i, 7);
    cr_expect_str_eq(text_of(b.recs[0], F_NAME), "seven");
    cr_expect_str_eq(text_of(b.recs[0], F_PRICE), "7.70");
    cr_expect_eq(b.recs[1]->values[F_PRICE].type, TFS_SDK_NULL);
    tfs_instance_close(other);
    /* Without the folder, the same relative name is looked for elsewhere and refused with
     * its path; a missing file is refused by cb_check, naming the setting. */
    json_object_set_new(s, "seed_file", json_string("absent.csv"));
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, dir, &other, &err), TFS_EINVAL);
    cr_assert(strstr(err.message, "systems.tpl.settings.seed_file: could not read"), "%s",
              err.message);
    cr_assert(strstr(err.message, dir), "the message names the resolved path: %s",
              err.message);
    json_decref(s);
    seed_dir_remove(dir);
}

/* Lazy open: cb_open and cb_describe do not touch the "system" (the seed file); the first
 * read does. The file removed after the open is an outage of that read, not of the open. */
Test(template, open_is_lazy)
{
    char dir[64];
    seed_dir(dir, sizeof dir, "1,one,1.00\n");
    tfs_error err = {0};
    tfs_instance *other = NULL;
    json_t *s = json_pack("{ss}", "seed_file", "seed.csv");
    cr_assert_eq(tfs_instance_open(plugin, "tpl", s, dir, &other, &err), 0, "%s", err.message);
    seed_dir_remove(dir);
    cr_assert_eq(tfs_instance_n_entities(other), 1, "described without reading the file");
    tfs_batch b;
    tfs_batch_init(&b, arena, tfs_instance_entity_get(other, item));
    cr_assert_eq(tfs_instance_read(other, item, TFS_SDK_READ_FULL, NULL, 0, 10, &b, &err),
                 TFS_ETRANSIENT, "%s", err.message);
    cr_assert(strstr(err.message, "seed.csv"), "%s", err.message);
    cr_assert_eq(tfs_instance_health(other, &err), TFS_ETRANSIENT);
    tfs_instance_close(other);
    json_decref(s);
}
