/* core/plugin_host.h — loading adapter plugins and calling them.
 *
 * Plugins are loaded from the configured plugin directory only, with
 * dlopen(RTLD_NOW | RTLD_LOCAL), and never unloaded while the daemon runs. A plugin that
 * cannot be used (no tfs_sdk_entry, another SDK major, a newer minor, a bad struct_size, a
 * malformed descriptor, a duplicate name) is refused with a message naming the file and the
 * reason, remembered for GET /plugins, and the daemon goes on without it.
 */
#ifndef TFS_PLUGIN_HOST_H
#define TFS_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../sdk/tfsync_plugin.h"
#include "error.h"
#include "record.h"

/* The definition of the SDK's opaque error. */
struct tfs_sdk_error {
    bool set;
    char message[512];
};

/* The definition of the SDK's opaque per-operation write results. */
struct tfs_sdk_results {
    size_t n;
    tfs_sdk_status *status; /* n entries, TFS_SDK_OK unless set */
    char **message;         /* n entries, NULL or malloc'd; freed by tfs_results_free */
};
typedef struct tfs_sdk_results tfs_results;

typedef struct tfs_plugin {
    char *path;
    char *name;
    tfs_sdk_plugin desc; /* a zeroed copy of at most struct_size bytes of the descriptor */
    tfs_sdk_host host;   /* this plugin's own host table (its log prefix) */
    void *dl;
} tfs_plugin;

/* Loads one plugin file. On success *out is owned (tfs_plugin_free). Errors name the file
 * and the reason: `could not load plugin "x.so": undefined symbol tfs_sdk_entry`. */
int tfs_plugin_load(const char *path, int roll_year, tfs_plugin **out, tfs_error *err);
/* Frees a plugin; dlcloses it only when unload is true (tests), never in the daemon. */
void tfs_plugin_free(tfs_plugin *p, bool unload);

typedef struct tfs_plugin_refusal {
    char *file;
    char *reason;
} tfs_plugin_refusal;

typedef struct tfs_plugin_host {
    tfs_plugin **plugins;
    size_t n;
    tfs_plugin_refusal *refused;
    size_t n_refused;
} tfs_plugin_host;

/* Loads every *.so of dir (in name order). Refused files are logged and listed in
 * host->refused; only an unreadable directory fails. */
int tfs_plugin_host_load_dir(const char *dir, int roll_year, tfs_plugin_host **out,
                             tfs_error *err);
void tfs_plugin_host_free(tfs_plugin_host *h);
/* A loaded plugin by name (borrowed) or NULL. */
const tfs_plugin *tfs_plugin_host_get(const tfs_plugin_host *h, const char *name);

/* Checks settings (a JSON object) against the plugin's declared keys: an unknown key, a
 * wrong type or a missing required key is refused with its JSON path (prefix, e.g.
 * "systems.pacs.settings"). On success *values is a malloc'd array of n_config_keys
 * malloc'd strings in declaration order (tfs_plugin_values_free). */
int tfs_plugin_check_settings(const tfs_plugin *p, const json_t *settings, const char *prefix,
                              char ***values, tfs_error *err);
void tfs_plugin_values_free(const tfs_plugin *p, char **values);

/* An open instance: one per worker, never used from two threads at once. */
typedef struct tfs_instance {
    const tfs_plugin *plugin;
    void *handle;
    const tfs_sdk_entity *entities; /* the plugin's, valid until close */
    size_t n_entities;
    char *system; /* the system's name in the config, for messages */
} tfs_instance;

/* Opens an instance with checked settings and reads its described schema. */
int tfs_instance_open(const tfs_plugin *p, const char *system, const json_t *settings,
                      tfs_instance **out, tfs_error *err);
void tfs_instance_close(tfs_instance *inst);
/* An entity by name: its index, or -1. */
int tfs_instance_entity(const tfs_instance *inst, const char *name);

/* The calls, with the plugin's status mapped to TFS_ETRANSIENT/TFS_EPERMANENT and its
 * message in err prefixed with the system's name. */
int tfs_instance_read(tfs_instance *inst, size_t entity, tfs_sdk_read_mode mode,
                      const void *cursor, size_t cursor_len, size_t max, tfs_batch *out,
                      tfs_error *err);
int tfs_instance_fetch(tfs_instance *inst, size_t entity, const tfs_record *const *keys,
                       size_t n, tfs_batch *out, tfs_error *err);
int tfs_instance_write(tfs_instance *inst, const tfs_sdk_write_op *ops, size_t n,
                       tfs_results *results, tfs_error *err);
int tfs_instance_health(tfs_instance *inst, tfs_error *err);

/* Per-operation results for n operations; 0 or TFS_ENOMEM. */
int tfs_results_init(tfs_results *r, size_t n);
void tfs_results_free(tfs_results *r);

#endif
