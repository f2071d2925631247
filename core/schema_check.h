/* core/schema_check.h — a config's pairs checked against the schemas its systems describe,
 * for tfsyncd --check (config_check.c opens the instances).
 *
 * What a pair names is checked against what the systems describe: each mapping's source
 * entity described and read by the source system (SDK 1.4 entity roles); its target
 * entities described and written by the target system, the deactivate field, the
 * conflicts' field policies and newest fields, and the validation rules' fields in the
 * target system. Each refusal names the config's JSON path and what exists there.
 */
#ifndef TFS_SCHEMA_CHECK_H
#define TFS_SCHEMA_CHECK_H

#include <stddef.h>

#include "config.h"
#include "error.h"
#include "plugin_host.h"

/* Where findings go: called once per problem with its message (path first) and hint; err is
 * borrowed for the call. */
typedef struct tfs_schema_sink {
    void (*finding)(void *ctx, const tfs_error *err);
    void *ctx;
} tfs_schema_sink;

/* Checks pair pi of cfg against the instances of its source and target (either may be NULL:
 * that side is not checked), reporting every problem to sink. */
void tfs_schema_check_pair(const tfs_config *cfg, size_t pi, const tfs_instance *src,
                           const tfs_instance *tgt, const tfs_schema_sink *sink);

#endif
