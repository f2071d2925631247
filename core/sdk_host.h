/* core/sdk_host.h — the host side of the SDK: the table of host functions every plugin is
 * handed (sdk/tfsync_plugin.h, tfs_sdk_host).
 *
 * For the plugin host's own use (plugin_host.c fills one table per loaded plugin); the
 * functions themselves are static in sdk_host.c, reached by plugins only through the table.
 */
#ifndef TFS_SDK_HOST_H
#define TFS_SDK_HOST_H

#include "../sdk/tfsync_plugin.h"

/* Fills h with this host's SDK version, struct_size, the roll year and every host
 * function. h must be the host member of a struct tfs_plugin (plugin_private.h): the log
 * function finds the plugin's name from it for the [plugin:<name>] prefix. */
void tfs_sdk_host_fill(tfs_sdk_host *h, int roll_year);

/* Around a cb_check or cb_open call on this thread: what config_system and config_dir
 * answer for that config array (SDK 1.3). The strings are borrowed until leave. */
void tfs_sdk_host_config_enter(const char *const *config, const char *system,
                               const char *config_dir);
void tfs_sdk_host_config_leave(void);

#endif
