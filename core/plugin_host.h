/* core/plugin_host.h — loading adapter plugins and calling them.
 *
 * Plugins are loaded from the configured plugin directory only, with
 * dlopen(RTLD_NOW | RTLD_LOCAL), and never unloaded while the daemon runs. A plugin_dir
 * that others than the daemon's user and root can write (or a folder above it) is refused
 * whole. A plugin that cannot be used (a file others can write or someone else owns, not an
 * ELF shared object of this host, truncated, no tfs_sdk_entry, another SDK major, a newer minor, a bad struct_size, a
 * malformed descriptor, a duplicate name) is refused with a message naming the file and the
 * reason, remembered for GET /plugins, and the daemon goes on without it.
 */
#ifndef TFS_PLUGIN_HOST_H
#define TFS_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    size_t *source;         /* n entries: the source record of each op (op_source, SDK 1.3);
                             * tfs_results_init sets source[i] = i */
};
typedef struct tfs_sdk_results tfs_results;

/* A loaded plugin and an open instance of it: opaque outside the plugin host, so that
 * every call into a plugin goes through the functions below (one status mapping, one
 * place that logs and checks what a plugin hands back). */
typedef struct tfs_plugin tfs_plugin;
typedef struct tfs_instance tfs_instance;

/* What the core may know of a loaded plugin (borrowed from it; valid while it is loaded). */
typedef struct tfs_plugin_info {
    const char *name, *version, *description;
    unsigned sdk_major, sdk_minor;
    uint32_t capabilities; /* TFS_SDK_CAP_* */
    const tfs_sdk_config_key *config_keys;
    size_t n_config_keys;
} tfs_plugin_info;

/* Loads one plugin file. On success *out is owned (tfs_plugin_free). Errors name the file
 * and the reason: `could not load plugin "x.so": undefined symbol tfs_sdk_entry`. */
int tfs_plugin_load(const char *path, int roll_year, tfs_plugin **out, tfs_error *err);
/* Frees a plugin; dlcloses it only when unload is true (tests), never in the daemon. */
void tfs_plugin_free(tfs_plugin *p, bool unload);
/* The plugin's name, version, SDK version, capabilities and declared settings. */
tfs_plugin_info tfs_plugin_get_info(const tfs_plugin *p);

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
 * host->refused; only an unreadable directory, or one others can write (TFS_EINVAL, the
 * message says what to chmod or chown), fails. */
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

/* Checks a system's settings without connecting: the declared keys and types
 * (tfs_plugin_check_settings), then the plugin's own cb_check (SDK 1.3), which sees the
 * system's name and config_dir (the config file's folder) through the host. */
int tfs_plugin_check(const tfs_plugin *p, const char *system, const json_t *settings,
                     const char *config_dir, tfs_error *err);
/* Whether opening and describing an instance never connects (TFS_SDK_CAP_LAZY_OPEN), so
 * --check may open one offline to read its schema. */
bool tfs_plugin_is_lazy(const tfs_plugin *p);

/* Opens an instance: checks its settings (tfs_plugin_check), opens it, reads and checks
 * its described schema and asks its write limits. config_dir is the config file's folder
 * (what the plugin's config_dir host function answers). */
int tfs_instance_open(const tfs_plugin *p, const char *system, const json_t *settings,
                      const char *config_dir, tfs_instance **out, tfs_error *err);
void tfs_instance_close(tfs_instance *inst);
/* An entity by name: its index, or -1. */
int tfs_instance_entity(const tfs_instance *inst, const char *name);
/* What the system does with described entity `entity` (SDK 1.4 cb_entity_roles, masked
 * with the plugin's capabilities; a plugin without it: its capabilities):
 * TFS_SDK_CAP_SOURCE when it reads it, TFS_SDK_CAP_TARGET when it writes it; 0 for an
 * index out of range. Never connects. */
unsigned tfs_instance_entity_roles(const tfs_instance *inst, size_t entity);
/* The described schema: how many entities, and one of them (borrowed until close). */
size_t tfs_instance_n_entities(const tfs_instance *inst);
const tfs_sdk_entity *tfs_instance_entity_get(const tfs_instance *inst, size_t entity);
/* The system's name in the config, and the plugin's capabilities (TFS_SDK_CAP_*). */
const char *tfs_instance_system(const tfs_instance *inst);
uint32_t tfs_instance_capabilities(const tfs_instance *inst);
/* Whether the plugin fetches records by key (cb_fetch, and not TFS_SDK_CAP_NO_FETCH of
 * SDK 1.2): a replay reads dead letters again from a source that can, and conflict
 * detection reads a target's current records from a target that can. */
int tfs_instance_can_fetch(const tfs_instance *inst);

/* The calls, with the plugin's status mapped to TFS_ETRANSIENT/TFS_EPERMANENT and its
 * message in err prefixed with the system's name. */
int tfs_instance_read(tfs_instance *inst, size_t entity, tfs_sdk_read_mode mode,
                      const void *cursor, size_t cursor_len, size_t max, tfs_batch *out,
                      tfs_error *err);
int tfs_instance_fetch(tfs_instance *inst, size_t entity, const tfs_record *const *keys,
                       size_t n, tfs_batch *out, tfs_error *err);
/* TFS_SDK_OP_INSERT operations reach only a plugin that takes them (SDK 1.5,
 * tfs_instance_takes_inserts); to any other they are handed as TFS_SDK_OP_UPSERT. */
int tfs_instance_write(tfs_instance *inst, const tfs_sdk_write_op *ops, size_t n,
                       tfs_results *results, tfs_error *err);
/* Whether the plugin takes TFS_SDK_OP_INSERT (TFS_SDK_CAP_INSERT, SDK 1.5): the writing
 * stage then hands the upserts of keys it never wrote to the target as inserts. */
int tfs_instance_takes_inserts(const tfs_instance *inst);
int tfs_instance_health(tfs_instance *inst, tfs_error *err);

/* SDK 1.3. The most operations and bytes one write takes (0: no limit), as the plugin's
 * cb_write_limits said at open. */
void tfs_instance_write_limits(const tfs_instance *inst, size_t *max_ops, size_t *max_bytes);
/* An entity's estimated record count; TFS_ENOTFOUND when the plugin cannot tell. */
int tfs_instance_estimate(tfs_instance *inst, size_t entity, int64_t *count, tfs_error *err);
/* Tells the plugin a run it served has ended (after the state store committed it); does
 * nothing for a plugin without cb_run_end. */
int tfs_instance_run_end(tfs_instance *inst, const tfs_sdk_run_end *run, tfs_error *err);

/* Change capture (TFS_SDK_CAP_CHANGES, SDK 1.1). Cursors are bytes the plugin owns the
 * meaning of. changes_start puts the change cursor of "now" into out (out->cursor_set stays
 * false when the plugin has no change data); changes_lag answers TFS_ENOTFOUND when the
 * plugin cannot tell; changes_trim does nothing for a plugin without change data. */
int tfs_instance_changes_start(tfs_instance *inst, size_t entity, tfs_batch *out,
                               tfs_error *err);
int tfs_instance_changes_lag(tfs_instance *inst, size_t entity, const void *cursor,
                             size_t cursor_len, int64_t *pending, int64_t *oldest_age_ms,
                             tfs_error *err);
int tfs_instance_changes_trim(tfs_instance *inst, const void *const *cursors,
                              const size_t *lens, size_t n, tfs_error *err);

/* Per-operation results for n operations; 0 or TFS_ENOMEM. */
int tfs_results_init(tfs_results *r, size_t n);
void tfs_results_free(tfs_results *r);

#endif
