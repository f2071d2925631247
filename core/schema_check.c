/* core/schema_check.c — a config's pairs checked against the schemas its lazy systems
 * describe, offline; see schema_check.h. The first problem found is the answer, as the
 * config's own checks do, so the message can name one path and one fix. */
#include "schema_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

/* "a, b, c" of the entities a system describes. */
static void entity_list(const tfs_instance *inst, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < tfs_instance_n_entities(inst); i++) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", i ? ", " : "",
                 tfs_instance_entity_get(inst, i)->name);
    }
}

/* "a, b, c" of an entity's fields. */
static void field_list(const tfs_sdk_entity *e, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < e->n_fields; i++) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", i ? ", " : "", e->fields[i].name);
    }
}

static int no_entity(const char *path, const char *role, const tfs_instance *inst,
                     const char *name, tfs_error *err)
{
    char list[1024];
    entity_list(inst, list, sizeof list);
    tfs_error_set(err, TFS_EINVAL, "%s: %s system \"%s\" has no entity \"%s\"", path, role,
                  tfs_instance_system(inst), name);
    tfs_error_hint(err, "system \"%s\" describes: %s", tfs_instance_system(inst), list);
    return TFS_EINVAL;
}

static int no_field(const char *path, const tfs_instance *inst, const tfs_sdk_entity *e,
                    const char *name, tfs_error *err)
{
    char list[2048];
    field_list(e, list, sizeof list);
    tfs_error_set(err, TFS_EINVAL, "%s: entity \"%s\" of system \"%s\" has no field \"%s\"",
                  path, e->name, tfs_instance_system(inst), name);
    tfs_error_hint(err, "%s has: %s", e->name, list);
    return TFS_EINVAL;
}

static const tfs_sdk_entity *entity_of(const tfs_instance *inst, const char *name)
{
    int i = tfs_instance_entity(inst, name);
    return i < 0 ? NULL : tfs_instance_entity_get(inst, (size_t)i);
}

/* The pair's mappings: source entities in the source system, target entities (and the
 * deactivate field) in the target system. */
static int check_mappings(const tfs_config_pair *pair, size_t pi, const tfs_instance *src,
                          const tfs_instance *tgt, tfs_error *err)
{
    char path[320];
    for (size_t j = 0; j < pair->n_entities; j++) {
        const tfs_config_entity *m = &pair->entities[j];
        snprintf(path, sizeof path, "pairs[%zu].entities[%zu].source", pi, j);
        if (src && !entity_of(src, m->source))
            return no_entity(path, "source", src, m->source, err);
        for (size_t k = 0; tgt && k < m->n_targets; k++) {
            snprintf(path, sizeof path, "pairs[%zu].entities[%zu].targets[%zu]", pi, j, k);
            const tfs_sdk_entity *e = entity_of(tgt, m->targets[k]);
            if (!e)
                return no_entity(path, "target", tgt, m->targets[k], err);
            snprintf(path, sizeof path, "pairs[%zu].deactivate_field", pi);
            if (pair->delete_action == TFS_DELETE_DEACTIVATE &&
                tfs_entity_field_index(e, pair->deactivate_field) < 0)
                return no_field(path, tgt, e, pair->deactivate_field, err);
        }
    }
    return 0;
}

/* Whether some entity of the pair's mappings (its sources, or its targets) has the field. */
static int pair_has_field(const tfs_config_pair *pair, const tfs_instance *inst, int targets,
                          const char *field, const tfs_sdk_entity **first)
{
    *first = NULL;
    for (size_t j = 0; j < pair->n_entities; j++) {
        const tfs_config_entity *m = &pair->entities[j];
        size_t n = targets ? m->n_targets : 1;
        for (size_t k = 0; k < n; k++) {
            const tfs_sdk_entity *e = entity_of(inst, targets ? m->targets[k] : m->source);
            if (!e)
                continue;
            if (!*first)
                *first = e;
            if (tfs_entity_field_index(e, field) >= 0)
                return 1;
        }
    }
    return 0;
}

/* The conflicts object: per-field policies and the newest_wins fields. */
static int check_conflicts(const tfs_config_pair *pair, size_t pi, const tfs_instance *src,
                           const tfs_instance *tgt, tfs_error *err)
{
    char path[512];
    const tfs_config_conflicts *c = &pair->conflict;
    for (size_t k = 0; tgt && k < c->n_rules; k++) {
        const tfs_config_conflict_rule *r = &c->rules[k];
        const tfs_sdk_entity *e = entity_of(tgt, r->entity);
        snprintf(path, sizeof path, "pairs[%zu].conflicts.%s.%s%s%s", pi,
                 r->field ? "fields" : "entities", r->entity, r->field ? "." : "",
                 r->field ? r->field : "");
        if (!e)
            return no_entity(path, "target", tgt, r->entity, err);
        if (r->field && tfs_entity_field_index(e, r->field) < 0)
            return no_field(path, tgt, e, r->field, err);
    }
    const tfs_sdk_entity *e;
    snprintf(path, sizeof path, "pairs[%zu].conflicts.newest_fields.source", pi);
    if (src && c->newest_source && !pair_has_field(pair, src, 0, c->newest_source, &e) && e)
        return no_field(path, src, e, c->newest_source, err);
    snprintf(path, sizeof path, "pairs[%zu].conflicts.newest_fields.target", pi);
    if (tgt && c->newest_target && !pair_has_field(pair, tgt, 1, c->newest_target, &e) && e)
        return no_field(path, tgt, e, c->newest_target, err);
    return 0;
}

/* The validation rules' fields, bounds and sums, at rules.<entity>[n]. */
static int check_rules(const tfs_config_pair *pair, size_t pi, const tfs_instance *tgt,
                       tfs_error *err)
{
    char path[512];
    const tfs_config_rules *rules = &pair->validation;
    for (size_t i = 0; tgt && i < rules->n; i++) {
        const tfs_config_rule *r = &rules->items[i];
        size_t index = 0;
        for (size_t o = 0; o < i; o++)
            index += strcmp(rules->items[o].entity, r->entity) == 0;
        int at = snprintf(path, sizeof path, "pairs[%zu].rules.%s[%zu]", pi, r->entity, index);
        size_t rest = sizeof path - (size_t)at;
        const tfs_sdk_entity *e = entity_of(tgt, r->entity);
        if (!e)
            return no_entity(path, "target", tgt, r->entity, err);
        const char *bad = NULL, *key = NULL;
        if (tfs_entity_field_index(e, r->field) < 0)
            bad = r->field, key = "field";
        const tfs_config_bound *bs[] = {&r->min, &r->max};
        const char *bk[] = {"min", "max"};
        for (int k = 0; k < 2 && !bad; k++)
            if (bs[k]->field && strcmp(bs[k]->field, "roll_year") != 0 &&
                tfs_entity_field_index(e, bs[k]->field) < 0)
                bad = bs[k]->field, key = bk[k];
        for (size_t k = 0; k < r->n_sum_of && !bad; k++)
            if (tfs_entity_field_index(e, r->sum_of[k]) < 0)
                bad = r->sum_of[k], key = "sum_of";
        if (bad) {
            snprintf(path + at, rest, ".%s", key);
            return no_field(path, tgt, e, bad, err);
        }
    }
    return 0;
}

static int add_name(const char ***list, size_t *n, const char *name)
{
    const char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l)
        return TFS_ENOMEM;
    l[(*n)++] = name;
    *list = l;
    return 0;
}

int tfs_schema_check(const tfs_config *cfg, const tfs_plugin_host *plugins,
                     tfs_schema_check_report *report, tfs_error *err)
{
    int rc = 0;
    memset(report, 0, sizeof *report);
    tfs_instance **insts = calloc(cfg->n_systems + 1, sizeof *insts);
    if (!insts)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < cfg->n_systems && !rc; i++) {
        const tfs_config_system *s = &cfg->systems[i];
        const tfs_plugin *p = tfs_plugin_host_get(plugins, s->plugin);
        if (!p)
            continue;
        if (!tfs_plugin_is_lazy(p))
            rc = add_name(&report->unchecked, &report->n_unchecked, s->name);
        else if (!(rc = tfs_instance_open(p, s->name, s->settings, cfg->dir, &insts[i], err)))
            report->n_checked++;
        if (rc == TFS_ENOMEM && !err->message[0])
            tfs_error_set(err, rc, "out of memory");
    }
    for (size_t pi = 0; pi < cfg->n_pairs && !rc; pi++) {
        const tfs_config_pair *pair = &cfg->pairs[pi];
        const tfs_instance *src = NULL, *tgt = NULL;
        for (size_t i = 0; i < cfg->n_systems; i++) {
            if (strcmp(cfg->systems[i].name, pair->source) == 0)
                src = insts[i];
            if (strcmp(cfg->systems[i].name, pair->target) == 0)
                tgt = insts[i];
        }
        if (!src && !tgt)
            continue;
        report->n_pairs++;
        if ((rc = check_mappings(pair, pi, src, tgt, err)) ||
            (rc = check_conflicts(pair, pi, src, tgt, err)) ||
            (rc = check_rules(pair, pi, tgt, err)))
            break;
    }
    for (size_t i = 0; i < cfg->n_systems; i++)
        tfs_instance_close(insts[i]);
    free(insts);
    return rc;
}

void tfs_schema_check_report_free(tfs_schema_check_report *report)
{
    if (!report)
        return;
    free(report->unchecked);
    memset(report, 0, sizeof *report);
}
