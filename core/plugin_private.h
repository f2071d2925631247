/* core/plugin_private.h — the plugin host's own view of a plugin and an instance.
 *
 * Included by the plugin host's files only (and by the tests of the loader): everywhere
 * else tfs_plugin and tfs_instance are incomplete types, so the core can reach a plugin
 * only through plugin_host.h, and a file that tries otherwise does not compile.
 */
#ifndef TFS_PLUGIN_PRIVATE_H
#define TFS_PLUGIN_PRIVATE_H

#include "plugin_host.h"

struct tfs_plugin {
    char *path;
    char *name;
    tfs_sdk_plugin desc; /* a zeroed copy of at most struct_size bytes of the descriptor */
    tfs_sdk_host host;   /* this plugin's own host table (its log prefix) */
    void *dl;
};

/* One per worker, never used from two threads at once. */
struct tfs_instance {
    const tfs_plugin *plugin;
    void *handle;
    const tfs_sdk_entity *entities; /* the plugin's, valid until close */
    size_t n_entities;
    char *system; /* the system's name in the config, for messages */
    size_t max_ops, max_bytes; /* cb_write_limits (SDK 1.3); 0: no limit */
};

#endif
