/* core/config_pair.c — the config's pairs: their systems, entity mappings, delete action,
 * schedule, waits and guards; see config_private.h. */
#include "config_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tfs_limits.h"

static int parse_entity(const json_t *e, const tfs_config_path *ep, const tfs_config *cfg,
                        tfs_config_entity *ent, tfs_error *err)
{
    static const char *const allowed[] = {"source", "targets", "script", NULL};
    int rc;
    if (!json_is_object(e))
        return tfs_config_fail(err, ep, "must be an object, not %s", tfs_config_kind(e));
    if ((rc = tfs_config_check_keys(e, ep, allowed, err)) ||
        (rc = tfs_config_get_string(e, ep, "source", 1, NULL, &ent->source, err)) ||
        (rc = tfs_config_get_string(e, ep, "script", 1, NULL, &ent->script, err)))
        return rc;
    tfs_config_path tp = tfs_config_path_key(ep, "targets");
    const json_t *targets = json_object_get(e, "targets");
    if (!targets || !json_is_array(targets) || json_array_size(targets) == 0)
        return tfs_config_fail(err, &tp, "must be a non-empty array of target entity names");
    ent->targets = calloc(json_array_size(targets), sizeof *ent->targets);
    if (!ent->targets)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) {
        if (!json_is_string(t)) {
            tfs_config_path ip = tfs_config_path_index(&tp, i);
            return tfs_config_fail(err, &ip, "must be a string, not %s", tfs_config_kind(t));
        }
        if (!(ent->targets[ent->n_targets++] = strdup(json_string_value(t))))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    /* The script must exist now: a typo found at the first run is found too late. */
    tfs_config_path sp = tfs_config_path_key(ep, "script");
    if (strstr(ent->script, "..") || ent->script[0] == '/')
        return tfs_config_fail(
            err, &sp, "\"%s\" must be a file name inside the transform directory", ent->script);
    char *full = tfs_config_resolve(cfg->transform_dir, ent->script);
    if (!full)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    struct stat st;
    int missing = stat(full, &st) != 0 || !S_ISREG(st.st_mode);
    free(full);
    if (missing) {
        tfs_config_fail(err, &sp, "no such file \"%s\" in the transform directory \"%s\"",
                        ent->script, cfg->transform_dir);
        tfs_error_hint(err, "put the script in transform_dir or fix its name");
        return TFS_EINVAL;
    }
    return 0;
}

static int parse_pair_extras(const json_t *p, const tfs_config_path *ip, tfs_config_pair *pair,
                             tfs_error *err)
{
    static const char *const schedule_keys[] = {"incremental_every", NULL};
    char *action = NULL;
    int rc;
    long long max_wait;
    if ((rc = tfs_config_get_duration(p, ip, "max_wait", 0, 1, TFS_DURATION_MS_MAX, &max_wait,
                                      err)))
        goto out;
    pair->max_wait_ms = max_wait;
    if ((rc = tfs_config_get_number(p, ip, "max_failed_ratio", TFS_MAX_FAILED_RATIO_DEFAULT, 0,
                                    1, &pair->max_failed_ratio, err)) ||
        (rc = tfs_config_get_number(p, ip, "max_delete_ratio", TFS_MAX_DELETE_RATIO_DEFAULT, 0,
                                    1, &pair->max_delete_ratio, err)))
        goto out;
    const char *objects[] = {"conflicts", "rules"};
    json_t **dst[] = {&pair->conflicts, &pair->rules};
    for (int k = 0; k < 2; k++) {
        const json_t *o;
        if ((rc = tfs_config_get_object(p, ip, objects[k], 0, &o, err)))
            goto out;
        *dst[k] = o ? json_deep_copy(o) : NULL;
        if (o && !*dst[k]) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = tfs_config_get_string(p, ip, "delete_action", 0, "delete", &action, err)) ||
        (rc = tfs_config_get_string(p, ip, "deactivate_field", 0, "deactivat",
                                    &pair->deactivate_field, err)))
        goto out;
    if (strcmp(action, "delete") == 0) {
        pair->delete_action = TFS_DELETE_ROWS;
    } else if (strcmp(action, "deactivate") == 0) {
        pair->delete_action = TFS_DELETE_DEACTIVATE;
    } else {
        tfs_config_path ap = tfs_config_path_key(ip, "delete_action");
        rc = tfs_config_fail(err, &ap, "unknown action \"%s\"", action);
        tfs_error_hint(err, "use \"delete\" (remove the target rows) or \"deactivate\" (keep "
                       "them with their deactivate_field set)");
        goto out;
    }
    const json_t *sched;
    if ((rc = tfs_config_get_object(p, ip, "schedule", 0, &sched, err)) || !sched)
        goto out;
    tfs_config_path sp = tfs_config_path_key(ip, "schedule");
    char *every = NULL;
    if ((rc = tfs_config_check_keys(sched, &sp, schedule_keys, err)) ||
        (rc = tfs_config_get_string(sched, &sp, "incremental_every", 1, NULL, &every, err)))
        goto out;
    pair->incremental_every_ms = tfs_config_duration_ms(every);
    if (pair->incremental_every_ms < 100) {
        tfs_config_path ep = tfs_config_path_key(&sp, "incremental_every");
        rc = tfs_config_fail(err, &ep, "\"%s\" is not a duration of at least 100ms", every);
        tfs_error_hint(err, "write a number and a unit: \"500ms\", \"30s\", \"5m\", \"1h\"");
        free(every);
    } else {
        pair->incremental_every = every;
    }
out:
    free(action);
    return rc;
}

int tfs_config_parse_pairs(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"name", "source", "target", "batch_size", "entities",
                                          "delete_action", "deactivate_field", "schedule",
                                          "max_wait", "max_failed_ratio", "max_delete_ratio",
                                          "conflicts", "rules", NULL};
    tfs_config_path top = {""};
    tfs_config_path pp = tfs_config_path_key(&top, "pairs");
    const json_t *pairs = json_object_get(root, "pairs");
    if (!pairs)
        return tfs_config_fail(err, &pp, "missing (an array of pairs is required)");
    if (!json_is_array(pairs))
        return tfs_config_fail(err, &pp, "must be an array, not %s", tfs_config_kind(pairs));
    cfg->pairs = calloc(json_array_size(pairs) + 1, sizeof *cfg->pairs);
    if (!cfg->pairs)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *p;
    json_array_foreach(pairs, i, p) {
        tfs_config_path ip = tfs_config_path_index(&pp, i);
        int rc;
        if (!json_is_object(p))
            return tfs_config_fail(err, &ip, "must be an object, not %s", tfs_config_kind(p));
        tfs_config_pair *pair = &cfg->pairs[cfg->n_pairs++];
        long long batch;
        if ((rc = tfs_config_check_keys(p, &ip, allowed, err)) ||
            (rc = tfs_config_get_string(p, &ip, "name", 1, NULL, &pair->name, err)) ||
            (rc = tfs_config_get_string(p, &ip, "source", 1, NULL, &pair->source, err)) ||
            (rc = tfs_config_get_string(p, &ip, "target", 1, NULL, &pair->target, err)) ||
            (rc = tfs_config_get_int(p, &ip, "batch_size", 1000, 1, 100000, &batch, err)))
            return rc;
        pair->batch_size = (size_t)batch;
        if ((rc = parse_pair_extras(p, &ip, pair, err)))
            return rc;
        tfs_config_path np = tfs_config_path_key(&ip, "name");
        if (!tfs_config_is_name(pair->name))
            return tfs_config_fail(err, &np, "\"%s\" may only hold a-z, 0-9, '-' and '_'",
                                   pair->name);
        for (size_t j = 0; j + 1 < cfg->n_pairs; j++)
            if (strcmp(cfg->pairs[j].name, pair->name) == 0)
                return tfs_config_fail(err, &np,
                                       "a pair named \"%s\" is already defined at pairs[%zu]",
                                       pair->name, j);
        const char *roles[] = {"source", "target"};
        const char *names[] = {pair->source, pair->target};
        for (int r = 0; r < 2; r++) {
            if (!tfs_config_system_get(cfg, names[r])) {
                tfs_config_path rp = tfs_config_path_key(&ip, roles[r]);
                tfs_config_fail(err, &rp, "unknown system \"%s\"", names[r]);
                tfs_error_hint(err, "define it under \"systems\" or fix the name");
                return TFS_EINVAL;
            }
        }
        tfs_config_path ep = tfs_config_path_key(&ip, "entities");
        const json_t *ents = json_object_get(p, "entities");
        if (!ents || !json_is_array(ents) || json_array_size(ents) == 0)
            return tfs_config_fail(err, &ep, "must be a non-empty array of entity mappings");
        pair->entities = calloc(json_array_size(ents), sizeof *pair->entities);
        if (!pair->entities)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        size_t j;
        json_t *e;
        json_array_foreach(ents, j, e) {
            tfs_config_path jp = tfs_config_path_index(&ep, j);
            pair->n_entities++;
            if ((rc = parse_entity(e, &jp, cfg, &pair->entities[j], err)))
                return rc;
        }
        if ((rc = tfs_config_parse_rules(cfg, &ip, pair, err)))
            return rc;
        if ((rc = tfs_config_parse_conflicts(&ip, pair, err)))
            return rc;
    }
    return 0;
}

