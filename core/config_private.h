/* core/config_private.h — what the config module's files share (config.c, config_json.c,
 * config_pair.c): the JSON path of every check, so that an error names where in the file
 * it is, and the typed readers that say what a value should be. Not for other modules. */
#ifndef TFS_CONFIG_PRIVATE_H
#define TFS_CONFIG_PRIVATE_H

#include <jansson.h>

#include "config.h"
#include "error.h"

/* Where in the document a check is: a JSON path built as we descend. */
typedef struct tfs_config_path {
    char text[256];
} tfs_config_path;

tfs_config_path tfs_config_path_key(const tfs_config_path *p, const char *key);
tfs_config_path tfs_config_path_index(const tfs_config_path *p, size_t i);
/* Sets err (TFS_EINVAL) to "<path>: <message>" and returns TFS_EINVAL. */
int tfs_config_fail(tfs_error *err, const tfs_config_path *p, const char *fmt, ...)
    TFS_PRINTF(3, 4);
/* "an object", "a string", ... for messages. */
const char *tfs_config_kind(const json_t *v);
/* Refuses keys of obj that are not in allowed (NULL-terminated), listing those allowed. */
int tfs_config_check_keys(const json_t *obj, const tfs_config_path *p,
                          const char *const *allowed, tfs_error *err);
int tfs_config_get_object(const json_t *parent, const tfs_config_path *p, const char *key,
                          int required, const json_t **out, tfs_error *err);
/* *out malloc'd: the value, def (copied) when absent, or NULL. */
int tfs_config_get_string(const json_t *parent, const tfs_config_path *p, const char *key,
                          int required, const char *def, char **out, tfs_error *err);
int tfs_config_get_int(const json_t *parent, const tfs_config_path *p, const char *key,
                       long long def, long long min, long long max, long long *out,
                       tfs_error *err);
/* A number from min to max (an integer or a real) into *out, def when absent. */
int tfs_config_get_number(const json_t *parent, const tfs_config_path *p, const char *key,
                          double def, double min, double max, double *out, tfs_error *err);
/* "30s", "500ms", "5m", "1h" -> milliseconds, or -1. */
long long tfs_config_duration_ms(const char *s);
/* A duration setting ("30s") into *ms: def when absent (or obj NULL), refused outside
 * [min, max]. */
int tfs_config_get_duration(const json_t *obj, const tfs_config_path *p, const char *key,
                            long long def, long long min, long long max, long long *ms,
                            tfs_error *err);
/* A path relative to the config's folder made absolute; malloc'd, NULL when out of memory. */
char *tfs_config_resolve(const char *dir, const char *p);
/* a-z, 0-9, '-', '_', not empty. */
int tfs_config_is_name(const char *s);

/* The "pairs" array into cfg->pairs; systems and transform_dir must be known. */
int tfs_config_parse_pairs(const json_t *root, tfs_config *cfg, tfs_error *err);

/* The pair's "rules" object (pair->rules, as written) into pair->validation, with the
 * JSON path of every problem; lookup tables must exist in cfg->transform_dir. */
int tfs_config_parse_rules(const tfs_config *cfg, const tfs_config_path *pp,
                           tfs_config_pair *pair, tfs_error *err);
/* Frees what tfs_config_parse_rules made; accepts an empty set. */
void tfs_config_rules_free(tfs_config_rules *rules);
/* The pair's "conflicts" object (pair->conflicts, may be NULL) into pair->conflict; the
 * pair's entity mappings must be parsed. ip is the pair's path. */
int tfs_config_parse_conflicts(const tfs_config_path *ip, tfs_config_pair *pair,
                               tfs_error *err);

#endif
