/* core/config_check.h — tfsyncd --check [--connect]: everything that can be known about a
 * config before the daemon runs it, reported as one line per problem.
 *
 * Offline (nothing connects): each system's plugin is loaded and its settings pass the
 * plugin's declared keys and its own cb_check (every system is checked, not only up to the
 * first bad one); an instance of each system whose plugin opens and describes without
 * connecting (TFS_SDK_CAP_LAZY_OPEN) is opened and every pair is checked against the
 * schemas (schema_check.h); every mapping's script is loaded in the sandbox (a script that
 * does not compile is refused with its file and line) and the fields its text sets on each
 * target entity's records (script_scan.h) must be fields of that entity. A system whose
 * plugin is not lazy is listed as not checked offline.
 *
 * With connect: every system is opened through the plugin host (lazy or not), its health
 * call must answer, each source entity a pair reads must give a first record (an empty
 * entity is fine) and each target entity a pair writes must answer a fetch by a key no
 * record has (when the target fetches); nothing is written. The state store must connect
 * and be at a migration this daemon knows; no migration is applied.
 */
#ifndef TFS_CONFIG_CHECK_H
#define TFS_CONFIG_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "error.h"
#include "plugin_host.h"

/* Runs the checks and writes to out one line per problem, "path: what is wrong; how to
 * fix", lines for what was not checked, and a summary line. Returns the number of problems
 * (0: the config is valid). */
size_t tfs_config_check(const char *config_path, const tfs_config *cfg,
                        const tfs_plugin_host *plugins, bool connect, FILE *out);

/* The same line for one problem (err's message, then its hint), for a config that did not
 * even load; returns 1, the number of problems. */
size_t tfs_config_check_print(FILE *out, const tfs_error *err);

#endif
