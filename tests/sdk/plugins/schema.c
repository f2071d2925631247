/* tests/sdk/plugins/schema.c — one small source plugin built several ways (by -D flags),
 * each describing a schema with one defect the plugin host must refuse when an instance is
 * opened: SCHEMA_NO_ENTITIES, SCHEMA_NULL_ENTITIES, SCHEMA_NULL_ENTITY_NAME,
 * SCHEMA_EMPTY_ENTITY_NAME, SCHEMA_DUP_ENTITY, SCHEMA_NO_FIELDS, SCHEMA_NULL_FIELDS,
 * SCHEMA_NULL_FIELD_NAME, SCHEMA_EMPTY_FIELD_NAME, SCHEMA_DUP_FIELD, SCHEMA_BAD_TYPE,
 * SCHEMA_NULL_TYPE, SCHEMA_NEGATIVE_LENGTH, SCHEMA_NO_KEY; none of them: a good schema.
 * The defect is always in the second entity (index 1) where it can be, field 2, so the
 * test can tell the message names the right place. */
#include "tfsync_plugin.h"

#include <stdlib.h>

#define KEY TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED

static const tfs_sdk_field first[] = {
    {"id", TFS_SDK_INT64, KEY, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 20, 0, 0},
};

static tfs_sdk_field second[] = {
    {"id", TFS_SDK_INT64, KEY, 0, 0, 0},
    {"year", TFS_SDK_INT64, KEY, 0, 0, 0},
    {"value", TFS_SDK_DECIMAL, 0, 0, 12, 2},
};

static tfs_sdk_entity entities[] = {
    {"parcel", first, 2},
    {"value", second, 3},
};

static int s_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    (void)config;
    (void)err;
    *instance = malloc(1);
    return *instance ? TFS_SDK_OK : TFS_SDK_ETRANSIENT;
}

static void s_close(void *instance)
{
    free(instance);
}

static int s_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                      tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n = 2;
#if defined(SCHEMA_NO_ENTITIES)
    *out = NULL;
    *n = 0;
#elif defined(SCHEMA_NULL_ENTITIES)
    *out = NULL;
#elif defined(SCHEMA_NULL_ENTITY_NAME)
    entities[1].name = NULL;
#elif defined(SCHEMA_EMPTY_ENTITY_NAME)
    entities[1].name = "";
#elif defined(SCHEMA_DUP_ENTITY)
    entities[1].name = "parcel";
#elif defined(SCHEMA_NO_FIELDS)
    entities[1].n_fields = 0;
#elif defined(SCHEMA_NULL_FIELDS)
    entities[1].fields = NULL;
#elif defined(SCHEMA_NULL_FIELD_NAME)
    second[2].name = NULL;
#elif defined(SCHEMA_EMPTY_FIELD_NAME)
    second[2].name = "";
#elif defined(SCHEMA_DUP_FIELD)
    second[2].name = "year";
#elif defined(SCHEMA_BAD_TYPE)
    second[2].type = (tfs_sdk_type)42;
#elif defined(SCHEMA_NULL_TYPE)
    second[2].type = TFS_SDK_NULL;
#elif defined(SCHEMA_NEGATIVE_LENGTH)
    second[2].max_length = -1;
#elif defined(SCHEMA_NO_KEY)
    second[0].flags = 0;
    second[1].flags = TFS_SDK_FIELD_REQUIRED;
#endif
    return TFS_SDK_OK;
}

static int s_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                  size_t cursor_len, size_t max, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    (void)instance, (void)entity, (void)mode, (void)cursor, (void)cursor_len, (void)max;
    (void)out, (void)err;
    return TFS_SDK_OK;
}

static const tfs_sdk_plugin desc = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .description = "schema test plugin",
    .capabilities = TFS_SDK_CAP_SOURCE,
    .cb_open = s_open,
    .cb_close = s_close,
    .cb_describe = s_describe,
    .cb_read = s_read,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *host)
{
    (void)host;
    return &desc;
}
