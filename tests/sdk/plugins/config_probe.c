/* tests/sdk/plugins/config_probe.c — a plugin that reports what the 1.3 host functions
 * config_system and config_dir answered it: during cb_check and cb_open for the config array
 * of the call, for another pointer, and after the call (asked again from cb_describe with
 * the pointer cb_open was given). Its one record (cb_read) holds the answers as text, "-"
 * for NULL. With the setting "wait" true, cb_open waits until two opens are inside it at
 * once, so that two threads' opens overlap.
 */
#include "tfsync_plugin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const tfs_sdk_host *host;

enum { F_ID, F_CHECK_SYS, F_CHECK_DIR, F_OPEN_SYS, F_OPEN_DIR, F_OTHER, F_AFTER, F_NAME, N_F };
#define T TFS_SDK_TEXT, 0, 0, 0, 0
static const tfs_sdk_field fields[N_F] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"check_system", T}, {"check_dir", T}, {"open_system", T}, {"open_dir", T},
    {"other", T}, {"after", T}, {"name", T},
};
static const tfs_sdk_entity entities[] = {{"config_probe", fields, N_F}};
static const tfs_sdk_config_key keys[] = {
    {"name", TFS_SDK_CONFIG_STRING, "", "echoed in the record"},
    {"wait", TFS_SDK_CONFIG_BOOL, "false", "wait in cb_open for a second open"},
};

typedef struct answers {
    char v[N_F][256];
} answers;

/* What cb_check saw, by the thread that ran it (the host runs cb_check then cb_open on the
 * same thread). */
static _Thread_local answers checked;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int inside;

typedef struct probe {
    answers a;
    const char *const *config; /* the pointer cb_open got, asked about after the call */
} probe;

static void put(char *out, const char *s)
{
    snprintf(out, 256, "%s", s ? s : "-");
}

static int probe_check(const char *const *config, tfs_sdk_error *err)
{
    (void)err;
    const char *other[] = {"x", "y"};
    put(checked.v[F_CHECK_SYS], host->config_system(config));
    put(checked.v[F_CHECK_DIR], host->config_dir(config));
    put(checked.v[F_OTHER], host->config_system(other));
    return 0;
}

static int probe_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    (void)err;
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return TFS_SDK_ETRANSIENT;
    if (strcmp(config[1], "true") == 0) {
        pthread_mutex_lock(&lock);
        inside++;
        pthread_cond_broadcast(&cond);
        while (inside < 2)
            pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
    }
    p->a = checked;
    put(p->a.v[F_OPEN_SYS], host->config_system(config));
    put(p->a.v[F_OPEN_DIR], host->config_dir(config));
    put(p->a.v[F_NAME], config[0]);
    p->config = config;
    *instance = p;
    return 0;
}

static void probe_close(void *instance)
{
    free(instance);
}

static int probe_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                          tfs_sdk_error *err)
{
    (void)err;
    probe *p = instance;
    /* The open call has returned: its config array is no longer answered for. */
    put(p->a.v[F_AFTER], host->config_system(p->config));
    *out = entities;
    *n = 1;
    return 0;
}

static int probe_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                      size_t cursor_len, size_t max, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    (void)entity, (void)mode, (void)cursor, (void)cursor_len, (void)max, (void)err;
    probe *p = instance;
    tfs_sdk_record *r = host->batch_add(out);
    if (!r)
        return TFS_SDK_ETRANSIENT;
    host->rec_set_int(r, F_ID, 1);
    for (int f = F_CHECK_SYS; f < N_F; f++)
        host->rec_set_text(r, (size_t)f, TFS_SDK_TEXT, p->a.v[f], (size_t)-1);
    host->batch_set_done(out);
    return 0;
}

static const tfs_sdk_plugin desc = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "config_probe",
    .version = "1.0.0",
    .description = "reports what config_system and config_dir answered",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_LAZY_OPEN,
    .config_keys = keys,
    .n_config_keys = 2,
    .cb_open = probe_open,
    .cb_close = probe_close,
    .cb_describe = probe_describe,
    .cb_read = probe_read,
    .cb_check = probe_check,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    if (!TFS_SDK_HOST_HAS(h, config_dir))
        return NULL;
    host = h;
    return &desc;
}
