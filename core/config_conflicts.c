/* core/config_conflicts.c — a pair's "conflicts" object: the policy for target records
 * edited since they were last written, per pair, per target entity and per field, the
 * timestamp fields newest_wins compares and what to do with drift; see config.h.
 *
 * {"policy": "merge", "fallback": "source_wins",
 *  "entities": {"asmt": {"policy": "source_wins"}},
 *  "fields": {"pardat": {"zoning": "target_wins"}},
 *  "newest_fields": {"source": "prop_inactive_dt", "target": "wen"},
 *  "drift": "report", "detect": true}
 */
#include "config_private.h"

#include <stdlib.h>
#include <string.h>

static const char *const policy_names[] = {"source_wins", "target_wins", "newest_wins",
                                           "merge", "manual"};

const char *tfs_conflict_policy_name(tfs_conflict_policy p)
{
    return (unsigned)p < sizeof policy_names / sizeof *policy_names ? policy_names[p] : "?";
}

int tfs_conflict_policy_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof policy_names / sizeof *policy_names; i++)
        if (strcmp(name, policy_names[i]) == 0)
            return (int)i;
    return -1;
}

/* v at p as a policy; merge only where allow_merge (a field has no fields to merge). */
static int get_policy(const json_t *v, const tfs_config_path *p, int allow_merge,
                      tfs_conflict_policy *out, tfs_error *err)
{
    if (!json_is_string(v))
        return tfs_config_fail(err, p, "must be a policy name (a string), not %s",
                               tfs_config_kind(v));
    int pol = tfs_conflict_policy_from_name(json_string_value(v));
    if (pol < 0 || (!allow_merge && pol == TFS_POLICY_MERGE)) {
        tfs_config_fail(err, p, "unknown policy \"%s\"", json_string_value(v));
        tfs_error_hint(err, allow_merge ? "use source_wins, target_wins, newest_wins, merge or "
                                          "manual"
                                        : "use source_wins, target_wins, newest_wins or manual "
                                          "(merge is for a whole record)");
        return TFS_EINVAL;
    }
    *out = (tfs_conflict_policy)pol;
    return 0;
}

static int is_target_entity(const tfs_config_pair *pair, const char *name)
{
    for (size_t i = 0; i < pair->n_entities; i++)
        for (size_t k = 0; k < pair->entities[i].n_targets; k++)
            if (strcmp(pair->entities[i].targets[k], name) == 0)
                return 1;
    return 0;
}

static int check_entity(const tfs_config_pair *pair, const tfs_config_path *p, const char *name,
                        tfs_error *err)
{
    if (is_target_entity(pair, name))
        return 0;
    tfs_config_fail(err, p, "\"%s\" is not a target entity of pair \"%s\"", name, pair->name);
    tfs_error_hint(err, "name one of the entities listed in the pair's entities[].targets");
    return TFS_EINVAL;
}

static tfs_config_conflict_rule *add_rule(tfs_config_conflicts *c, size_t cap)
{
    if (!c->rules && !(c->rules = calloc(cap ? cap : 1, sizeof *c->rules)))
        return NULL;
    return &c->rules[c->n_rules++];
}

/* "entities": {name: {"policy", "fallback"}} and "fields": {entity: {field: policy}}. */
static int parse_rules(const json_t *o, const tfs_config_path *cp, const tfs_config_pair *pair,
                       tfs_config_conflicts *c, tfs_error *err)
{
    static const char *const entity_keys[] = {"policy", "fallback", NULL};
    const json_t *ents, *fields;
    int rc;
    if ((rc = tfs_config_get_object(o, cp, "entities", 0, &ents, err)) ||
        (rc = tfs_config_get_object(o, cp, "fields", 0, &fields, err)))
        return rc;
    size_t cap = ents ? json_object_size(ents) : 0;
    const char *name;
    const json_t *v, *f;
    json_object_foreach((json_t *)fields, name, v) {
        if (json_is_object(v))
            cap += json_object_size(v);
    }
    tfs_config_path ep = tfs_config_path_key(cp, "entities");
    json_object_foreach((json_t *)ents, name, v) {
        tfs_config_path np = tfs_config_path_key(&ep, name);
        if ((rc = check_entity(pair, &np, name, err)))
            return rc;
        if (!json_is_object(v))
            return tfs_config_fail(err, &np, "must be an object like {\"policy\": \"merge\"}, "
                                   "not %s", tfs_config_kind(v));
        if ((rc = tfs_config_check_keys(v, &np, entity_keys, err)))
            return rc;
        tfs_config_conflict_rule *r = add_rule(c, cap);
        if (!r)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        *r = (tfs_config_conflict_rule){name, NULL, c->policy, c->fallback};
        tfs_config_path pp = tfs_config_path_key(&np, "policy");
        tfs_config_path fp = tfs_config_path_key(&np, "fallback");
        if ((f = json_object_get(v, "policy")) && (rc = get_policy(f, &pp, 1, &r->policy, err)))
            return rc;
        if ((f = json_object_get(v, "fallback")) &&
            (rc = get_policy(f, &fp, 0, &r->fallback, err)))
            return rc;
    }
    tfs_config_path fsp = tfs_config_path_key(cp, "fields");
    json_object_foreach((json_t *)fields, name, v) {
        tfs_config_path np = tfs_config_path_key(&fsp, name);
        if ((rc = check_entity(pair, &np, name, err)))
            return rc;
        if (!json_is_object(v))
            return tfs_config_fail(err, &np, "must be an object like {\"zoning\": "
                                   "\"target_wins\"}, not %s", tfs_config_kind(v));
        const char *field;
        json_object_foreach((json_t *)v, field, f) {
            tfs_config_path fp = tfs_config_path_key(&np, field);
            tfs_config_conflict_rule *r = add_rule(c, cap);
            if (!r)
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            *r = (tfs_config_conflict_rule){name, field, TFS_POLICY_SOURCE_WINS,
                                            TFS_POLICY_SOURCE_WINS};
            if ((rc = get_policy(f, &fp, 0, &r->policy, err)))
                return rc;
        }
    }
    return 0;
}

int tfs_config_parse_conflicts(const tfs_config_path *ip, tfs_config_pair *pair, tfs_error *err)
{
    static const char *const allowed[] = {"policy",        "fallback", "entities", "fields",
                                          "newest_fields", "drift",    "detect",   NULL};
    static const char *const newest_keys[] = {"source", "target", NULL};
    tfs_config_conflicts *c = &pair->conflict;
    *c = (tfs_config_conflicts){.detect = 1};
    const json_t *o = pair->conflicts, *v;
    if (!o)
        return 0;
    tfs_config_path cp = tfs_config_path_key(ip, "conflicts");
    int rc;
    if ((rc = tfs_config_check_keys(o, &cp, allowed, err)))
        return rc;
    tfs_config_path pp = tfs_config_path_key(&cp, "policy");
    tfs_config_path fp = tfs_config_path_key(&cp, "fallback");
    if ((v = json_object_get(o, "policy")) && (rc = get_policy(v, &pp, 1, &c->policy, err)))
        return rc;
    if ((v = json_object_get(o, "fallback")) && (rc = get_policy(v, &fp, 0, &c->fallback, err)))
        return rc;
    if ((v = json_object_get(o, "detect"))) {
        tfs_config_path dp = tfs_config_path_key(&cp, "detect");
        if (!json_is_boolean(v))
            return tfs_config_fail(err, &dp, "must be true or false, not %s",
                                   tfs_config_kind(v));
        c->detect = json_is_true(v);
    }
    if ((v = json_object_get(o, "drift"))) {
        static const char *const drift[] = {"report", "repair", "ignore"};
        tfs_config_path dp = tfs_config_path_key(&cp, "drift");
        int d = -1;
        for (int k = 0; k < 3 && json_is_string(v); k++)
            if (strcmp(json_string_value(v), drift[k]) == 0)
                d = k;
        if (d < 0) {
            tfs_config_fail(err, &dp, "unknown drift action %s%s%s",
                            json_is_string(v) ? "\"" : "",
                            json_is_string(v) ? json_string_value(v) : tfs_config_kind(v),
                            json_is_string(v) ? "\"" : "");
            tfs_error_hint(err, "use \"report\" (count and list it), \"repair\" (write the "
                                "record again) or \"ignore\" (do not fetch to look)");
            return TFS_EINVAL;
        }
        c->drift = (tfs_drift_action)d;
    }
    const json_t *newest;
    if ((rc = tfs_config_get_object(o, &cp, "newest_fields", 0, &newest, err)))
        return rc;
    if (newest) {
        tfs_config_path np = tfs_config_path_key(&cp, "newest_fields");
        if ((rc = tfs_config_check_keys(newest, &np, newest_keys, err)))
            return rc;
        const char **dst[] = {&c->newest_source, &c->newest_target};
        for (int k = 0; k < 2; k++) {
            tfs_config_path kp = tfs_config_path_key(&np, newest_keys[k]);
            v = json_object_get(newest, newest_keys[k]);
            if (!json_is_string(v))
                return tfs_config_fail(err, &kp, "must be a field name (a string), not %s",
                                       v ? tfs_config_kind(v) : "missing");
            *dst[k] = json_string_value(v);
        }
    }
    if ((rc = parse_rules(o, &cp, pair, c, err)))
        return rc;
    int newest_used = c->policy == TFS_POLICY_NEWEST_WINS || c->fallback == TFS_POLICY_NEWEST_WINS;
    for (size_t i = 0; i < c->n_rules; i++)
        newest_used |= c->rules[i].policy == TFS_POLICY_NEWEST_WINS ||
                       c->rules[i].fallback == TFS_POLICY_NEWEST_WINS;
    if (newest_used && !c->newest_source) {
        tfs_config_fail(err, &cp, "newest_wins needs newest_fields");
        tfs_error_hint(err, "add \"newest_fields\": {\"source\": FIELD, \"target\": FIELD}, the "
                            "timestamp or date fields that say when each side last changed");
        return TFS_EINVAL;
    }
    return 0;
}
