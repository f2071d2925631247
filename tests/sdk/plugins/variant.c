/* tests/sdk/plugins/variant.c — one small plugin built several ways (by -D flags) to make
 * the loader refuse each kind of bad plugin: VARIANT_NO_ENTRY, VARIANT_MAJOR,
 * VARIANT_MINOR, VARIANT_SIZE, VARIANT_NO_NAME, VARIANT_NULL, VARIANT_NO_FETCH_OLD,
 * VARIANT_INSERT_OLD, VARIANT_INSERT_SOURCE; none of
 * them: a good plugin. VARIANT_NO_FETCH is a good target that cannot fetch (SDK 1.2). */
#include "tfsync_plugin.h"

#include <stdlib.h>

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 20, 0, 0},
};
static const tfs_sdk_entity entities[] = {{"thing", fields, 2}};
static const tfs_sdk_config_key keys[] = {
    {"dsn", TFS_SDK_CONFIG_STRING, NULL, "where the things are"},
    {"limit", TFS_SDK_CONFIG_INT, "10", "most things"},
    {"verbose", TFS_SDK_CONFIG_BOOL, "false", "talk more"},
};

static int v_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    (void)config;
    (void)err;
    *instance = malloc(1);
    return TFS_SDK_OK;
}

static void v_close(void *instance)
{
    free(instance);
}

static int v_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                      tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n = 1;
    return TFS_SDK_OK;
}

static int v_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                  size_t cursor_len, size_t max, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    (void)instance, (void)entity, (void)mode, (void)cursor, (void)cursor_len, (void)max;
    (void)out, (void)err;
    return TFS_SDK_OK;
}

#if defined(VARIANT_NO_FETCH) || defined(VARIANT_NO_FETCH_OLD) || defined(VARIANT_INSERT_OLD)
static int v_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                   tfs_sdk_results *results, tfs_sdk_error *err)
{
    (void)instance, (void)ops, (void)n_ops, (void)results, (void)err;
    return TFS_SDK_OK;
}
#endif

static tfs_sdk_plugin desc = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .description = "test plugin",
    .capabilities = TFS_SDK_CAP_SOURCE,
    .config_keys = keys,
    .n_config_keys = 3,
    .cb_open = v_open,
    .cb_close = v_close,
    .cb_describe = v_describe,
    .cb_read = v_read,
};

#ifndef VARIANT_NO_ENTRY
TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *host)
{
    (void)host;
#if defined(VARIANT_MAJOR)
    desc.sdk_major = TFS_SDK_VERSION_MAJOR + 1;
#elif defined(VARIANT_MINOR)
    desc.sdk_minor = TFS_SDK_VERSION_MINOR + 1;
#elif defined(VARIANT_SIZE)
    desc.struct_size = 12;
#elif defined(VARIANT_NO_NAME)
    desc.name = NULL;
#elif defined(VARIANT_NULL)
    return NULL;
#elif defined(VARIANT_NO_FETCH) || defined(VARIANT_NO_FETCH_OLD)
    /* A target without cb_fetch: it says so with TFS_SDK_CAP_NO_FETCH, which 1.2 added. */
    desc.capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_NO_FETCH;
    desc.cb_write = v_write;
#if defined(VARIANT_NO_FETCH_OLD)
    desc.sdk_minor = 1;
    desc.struct_size = offsetof(tfs_sdk_plugin, cb_changes_trim) + sizeof desc.cb_changes_trim;
#endif
#elif defined(VARIANT_INSERT_OLD) || defined(VARIANT_INSERT_SOURCE)
    /* TFS_SDK_CAP_INSERT is 1.5's, and an insert is a write: both are refused. */
    desc.capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_INSERT;
#if defined(VARIANT_INSERT_OLD)
    desc.capabilities |= TFS_SDK_CAP_TARGET | TFS_SDK_CAP_NO_FETCH;
    desc.cb_write = v_write;
    desc.sdk_minor = 4;
#endif
#elif defined(VARIANT_OLD_MINOR)
    /* Built against 1.0: the 1.0 descriptor ends at cb_health. */
    desc.sdk_minor = 0;
    desc.struct_size = offsetof(tfs_sdk_plugin, cb_health) + sizeof desc.cb_health;
    desc.cb_changes_start = (int (*)(void *, size_t, tfs_sdk_batch *, tfs_sdk_error *))1;
#endif
    return &desc;
}
#else
/* Exports something, just not the entry point. */
TFS_SDK_EXPORT int tfs_sdk_entry_misspelled(void);
TFS_SDK_EXPORT int tfs_sdk_entry_misspelled(void)
{
    return (int)sizeof desc;
}
#endif
