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

/* plugin_file.c: the checks made before dlopen (which runs a file's constructors and maps
 * it). plugin_dir, resolved, and every folder above it: owned by the daemon's user or root
 * and writable by nobody else (a sticky folder above is allowed). 0, or TFS_EINVAL with a
 * message naming the folder and what to chmod or chown (TFS_EIO if it cannot be read). */
int tfs_plugin_dir_check(const char *dir, tfs_error *err);
/* One file: a regular file owned by the daemon's user or root, writable by nobody else (and
 * the folder a symbolic link leads to checked like plugin_dir), an ELF shared object of the
 * host's class, byte order and machine whose headers and segments fit in its size. NULL,
 * or the reason (static or written into why). */
const char *tfs_plugin_file_check(const char *path, char *why, size_t len);

#endif
