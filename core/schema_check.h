/* core/schema_check.h — a config's pairs checked against its systems' described schemas,
 * offline, for tfsyncd --check.
 *
 * Only systems whose plugin opens and describes without connecting
 * (TFS_SDK_CAP_LAZY_OPEN) are opened; the others are listed as not checked, never
 * connected to, and systems whose plugin is not loaded are skipped (the caller says so). What a pair names is checked against what the systems describe: each
 * mapping's source entity in the source system; its target entities, the deactivate field,
 * the conflicts' field policies and newest fields, and the validation rules' fields in the
 * target system. A refusal names the config's JSON path and what exists there.
 */
#ifndef TFS_SCHEMA_CHECK_H
#define TFS_SCHEMA_CHECK_H

#include <stddef.h>

#include "config.h"
#include "error.h"
#include "plugin_host.h"

/* What a check did, for the summary --check prints. Names are borrowed from the config. */
typedef struct tfs_schema_check_report {
    size_t n_checked;          /* systems opened offline and their schemas read */
    const char **unchecked;    /* systems whose plugin is not lazy (malloc'd array) */
    size_t n_unchecked;
    size_t n_pairs;            /* pairs checked against at least one schema */
} tfs_schema_check_report;

/* Opens an instance of every lazy system of cfg (tfs_instance_open: its settings, the
 * plugin's cb_check, cb_open, cb_describe; none connects) and checks every pair against
 * the schemas read. 0, or TFS_EINVAL with err naming the JSON path
 * ("pairs[0].entities[0].targets[1]: ...") and a hint listing what exists, or the open's
 * own error. The report is filled either way; free it with tfs_schema_check_report_free. */
int tfs_schema_check(const tfs_config *cfg, const tfs_plugin_host *plugins,
                     tfs_schema_check_report *report, tfs_error *err);
void tfs_schema_check_report_free(tfs_schema_check_report *report);

#endif
