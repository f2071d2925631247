/* core/rules.h — validation rules beyond the target's schema: a pair's declarative rules
 * (required, min and max against a number, another field or the roll year, POSIX
 * patterns, codes of a lookup table, a field equal to the sum of others within a
 * tolerance), checked on mapped records after the schema validator. Pure code: a record
 * in, reasons out; the lookup tables are asked through a callback (the Lua runtime's, so
 * rules and tf.lookup read the same tables the same way).
 *
 * The rules are parsed with the config (config.h, tfs_config_rules; core/config_rules.c).
 */
#ifndef TFS_RULES_H
#define TFS_RULES_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "record.h"

/* Whether code (len bytes) is listed in lookups/<table>.csv: 1 yes, 0 no, or a negative
 * TFS_E code with err set (the table cannot be read). */
typedef int (*tfs_rules_lookup_fn)(void *ctx, const char *table, const char *code, size_t len,
                                   tfs_error *err);

/* What a check needs beyond the record. */
typedef struct tfs_rules_env {
    int roll_year;             /* the bound "roll_year" */
    tfs_rules_lookup_fn lookup; /* NULL: lookup rules fail with a reason saying so */
    void *lookup_ctx;
} tfs_rules_env;

/* Checks that the rules of the mapping's target entities name fields those entities have,
 * so that a typo fails the run once instead of every record: 0, or TFS_EINVAL naming the
 * pair's rule and the fields that exist. */
int tfs_rules_verify(const tfs_config_rules *rules, const tfs_sdk_entity *const *targets,
                     size_t n_targets, const char *pair, tfs_error *err);

/* Checks rec (typed as its entity declares, i.e. after tfs_validate_record) against the
 * rules of its entity, appending to reasons (an array) one string per violation, each
 * naming entity.field, the value and the rule: `asmt.valasm3: 150000 is above valapr3 =
 * 120000 (rule "assessed not above appraised")`. Null values pass every rule but
 * required; a rule whose bound is a null field is not applied. Returns the number of
 * violations (0: the record passes), or TFS_ENOMEM. */
int tfs_rules_check(const tfs_config_rules *rules, const tfs_record *rec,
                    const tfs_rules_env *env, json_t *reasons);

/* Everything a run checks after the schema, in its order, for the n target records one
 * source record mapped to: the rules on each record the schema accepted (typed[i] set:
 * tfs_validate_record found nothing), then the problems the script's validate() returned
 * (tfs_lua_output.problems), each a reason "<script> validate(): <problem>". The one call
 * for whoever checks a mapping as a run would (the stages, a transform's test). Returns the
 * reasons added, or TFS_ENOMEM. */
int tfs_rules_check_all(const tfs_config_rules *rules, tfs_record *const *recs,
                        const unsigned char *typed, size_t n, const char *script,
                        const char *const *problems, size_t n_problems,
                        const tfs_rules_env *env, json_t *reasons);

#endif
