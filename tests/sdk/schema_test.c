/* tests/sdk/schema_test.c — the plugin host refuses a described schema it cannot use (no
 * entities, NULL or empty or duplicate names, no fields, an unknown type, no key field)
 * when an instance is opened: a permanent error naming the plugin, the entity and the field
 * index, instead of a crash later. One test plugin per defect (plugins/schema.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "plugin_host.h"

static tfs_plugin *load(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", TFS_SCHEMA_PLUGIN_DIR, name);
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path, 2026, &p, &err), 0, "%s", err.message);
    return p;
}

/* Opens an instance of the plugin and expects a refusal whose message holds every part. */
static void expect_refused(const char *name, const char *where, const char *why)
{
    tfs_plugin *p = load(name);
    tfs_instance *inst = NULL;
    tfs_error err = {0};
    json_t *settings = json_object();
    int rc = tfs_instance_open(p, "src", settings, NULL, &inst, &err);
    json_decref(settings);
    cr_assert_eq(rc, TFS_EPERMANENT, "%s: open should fail permanently (rc %d)", name, rc);
    cr_assert_null(inst);
    char plugin[128];
    snprintf(plugin, sizeof plugin, "plugin \"%s\"", name);
    cr_assert(strstr(err.message, plugin), "names the plugin: %s", err.message);
    cr_assert(strstr(err.message, "system \"src\""), "names the system: %s", err.message);
    if (where)
        cr_assert(strstr(err.message, where), "\"%s\" says \"%s\"", err.message, where);
    cr_assert(strstr(err.message, why), "\"%s\" says \"%s\"", err.message, why);
    tfs_plugin_free(p, true);
}

Test(schema, good_schema_opens)
{
    tfs_plugin *p = load("schema_good");
    tfs_instance *inst = NULL;
    tfs_error err = {0};
    json_t *settings = json_object();
    cr_assert_eq(tfs_instance_open(p, "src", settings, NULL, &inst, &err), 0, "%s", err.message);
    json_decref(settings);
    cr_assert_eq(tfs_instance_n_entities(inst), 2);
    cr_assert_eq(tfs_instance_entity(inst, "value"), 1);
    tfs_instance_close(inst);
    tfs_plugin_free(p, true);
}

Test(schema, no_entities)
{
    expect_refused("schema_no_entities", NULL, "invalid schema: no entities");
}

Test(schema, entities_announced_without_array)
{
    expect_refused("schema_null_entities", NULL, "2 entities announced but no array");
}

Test(schema, entity_without_name)
{
    expect_refused("schema_null_entity_name", "entity 1 has no name", "has no name");
    expect_refused("schema_empty_entity_name", "entity 1 \"\" has no name", "has no name");
}

Test(schema, duplicate_entity)
{
    expect_refused("schema_dup_entity", "entity 1 \"parcel\"", "has the name of entity 0");
}

Test(schema, entity_without_fields)
{
    expect_refused("schema_no_fields", "entity 1 \"value\"", "has no fields");
    expect_refused("schema_null_fields", "entity 1 \"value\"",
                   "announces 3 fields but gives no array");
}

Test(schema, field_without_name)
{
    expect_refused("schema_null_field_name", "entity 1 \"value\", field 2 has no name",
                   "has no name");
    expect_refused("schema_empty_field_name", "entity 1 \"value\", field 2 \"\"", "has no name");
}

Test(schema, duplicate_field)
{
    expect_refused("schema_dup_field", "entity 1 \"value\", field 2 \"year\"",
                   "has the name of field 1");
}

Test(schema, unknown_field_type)
{
    expect_refused("schema_bad_type", "entity 1 \"value\", field 2 \"value\"",
                   "has an unknown type 42");
    expect_refused("schema_null_type", "entity 1 \"value\", field 2 \"value\"",
                   "has an unknown type 0");
}

Test(schema, negative_length)
{
    expect_refused("schema_negative_length", "entity 1 \"value\", field 2 \"value\"",
                   "negative max_length");
}

Test(schema, entity_without_key)
{
    expect_refused("schema_no_key", "entity 1 \"value\" has no key field", "no key field");
}
