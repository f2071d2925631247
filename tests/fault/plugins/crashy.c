/* tests/fault/plugins/crashy.c — a plugin that kills the daemon: the SDK's template (an
 * in-memory item table, source and target) under the name "crashy", with one more setting,
 * crash_after: a full read of a batch holding an item with a larger id calls abort(), as a
 * plugin with a bug on one record would crash the daemon. -1 (the default) never crashes.
 * The fault suite's poison case uses it; it is never installed.
 */
#define tfs_sdk_entry template_entry
#include "../../../sdk/template/template.c"
#undef tfs_sdk_entry

typedef struct crashy {
    void *inner; /* the template's instance */
    long long crash_after;
} crashy;

static tfs_sdk_config_key crashy_keys[N_CONFIG_KEYS + 1];
static tfs_sdk_plugin crashy_descriptor;

static int crashy_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    crashy *c = calloc(1, sizeof *c);
    if (!c) {
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_EPERMANENT;
    }
    c->crash_after = strtoll(config[N_CONFIG_KEYS], NULL, 10);
    int rc = tpl_open(config, &c->inner, err);
    if (rc) {
        free(c);
        return rc;
    }
    *instance = c;
    return 0;
}

static void crashy_close(void *instance)
{
    crashy *c = instance;
    if (!c)
        return;
    tpl_close(c->inner);
    free(c);
}

static int crashy_describe(void *instance, const tfs_sdk_entity **e, size_t *n,
                           tfs_sdk_error *err)
{
    return tpl_describe(((crashy *)instance)->inner, e, n, err);
}

static int crashy_read(void *instance, size_t entity, tfs_sdk_read_mode mode,
                       const void *cursor, size_t cursor_len, size_t max_records,
                       tfs_sdk_batch *out, tfs_sdk_error *err)
{
    crashy *c = instance;
    int64_t after = 0; /* ids start at 1 */
    if (cursor_len > 0)
        parse_int64(cursor, cursor_len, &after);
    if (c->crash_after >= 0 && after + (int64_t)max_records > c->crash_after) {
        host->log(host, TFS_SDK_LOG_ERROR, "crashing on the batch after item %lld",
                  (long long)after);
        abort();
    }
    return tpl_read(c->inner, entity, mode, cursor, cursor_len, max_records, out, err);
}

static int crashy_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                        size_t n, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    return tpl_fetch(((crashy *)instance)->inner, entity, keys, n, out, err);
}

static int crashy_write(void *instance, const tfs_sdk_write_op *ops, size_t n,
                        tfs_sdk_results *res, tfs_sdk_error *err)
{
    return tpl_write(((crashy *)instance)->inner, ops, n, res, err);
}

static int crashy_health(void *instance, tfs_sdk_error *err)
{
    return tpl_health(((crashy *)instance)->inner, err);
}

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h);
TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    const tfs_sdk_plugin *t = template_entry(h);
    memcpy(crashy_keys, t->config_keys, N_CONFIG_KEYS * sizeof *crashy_keys);
    crashy_keys[N_CONFIG_KEYS] = (tfs_sdk_config_key){
        "crash_after", TFS_SDK_CONFIG_INT, "-1",
        "abort() when a full read reaches an item id past this (-1: never)"};
    crashy_descriptor = *t;
    crashy_descriptor.name = "crashy";
    crashy_descriptor.description = "a test plugin that crashes the daemon on one batch";
    crashy_descriptor.config_keys = crashy_keys;
    crashy_descriptor.n_config_keys = N_CONFIG_KEYS + 1;
    crashy_descriptor.cb_open = crashy_open;
    crashy_descriptor.cb_close = crashy_close;
    crashy_descriptor.cb_describe = crashy_describe;
    crashy_descriptor.cb_read = crashy_read;
    crashy_descriptor.cb_fetch = crashy_fetch;
    crashy_descriptor.cb_write = crashy_write;
    crashy_descriptor.cb_health = crashy_health;
    return &crashy_descriptor;
}
