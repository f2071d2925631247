/* core/schema_check.c — a config's pairs checked against the schemas its systems
 * describe; see schema_check.h. Every problem is reported (each with one path and one
 * fix), so one run of --check lists all that is wrong. */
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

static void report(const tfs_schema_sink *sink, tfs_error *err)
{
    sink->finding(sink->ctx, err);
    tfs_error_clear(err);
}

static void no_entity(const char *path, const char *role, const tfs_instance *inst,
                      const char *name, const tfs_schema_sink *sink)
{
    char list[1024];
    tfs_error err = {0};
    entity_list(inst, list, sizeof list);
    tfs_error_set(&err, TFS_EINVAL, "%s: %s system \"%s\" has no entity \"%s\"", path, role,
                  tfs_instance_system(inst), name);
    tfs_error_hint(&err, "system \"%s\" describes: %s", tfs_instance_system(inst), list);
    report(sink, &err);
}

/* An entity the system describes but does not read (a source) or write (a target): PACS
 * describes what GIS sends back to it, and reading that from PACS fails at the run. */
static void wrong_role(const char *path, const char *role, const tfs_instance *inst,
                       const char *name, unsigned want, const tfs_schema_sink *sink)
{
    char list[1024];
    tfs_error err = {0};
    list[0] = '\0';
    for (size_t i = 0; i < tfs_instance_n_entities(inst); i++) {
        if (!(tfs_instance_entity_roles(inst, i) & want))
            continue;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                 tfs_instance_entity_get(inst, i)->name);
    }
    const char *verb = want == TFS_SDK_CAP_SOURCE ? "read" : "write";
    tfs_error_set(&err, TFS_EINVAL, "%s: %s system \"%s\" does not %s entity \"%s\"", path,
                  role, tfs_instance_system(inst), verb, name);
    tfs_error_hint(&err, "system \"%s\" can %s: %s", tfs_instance_system(inst), verb,
                   list[0] ? list : "nothing");
    report(sink, &err);
}

static void no_field(const char *path, const tfs_instance *inst, const tfs_sdk_entity *e,
                     const char *name, const tfs_schema_sink *sink)
{
    char list[2048];
    tfs_error err = {0};
    field_list(e, list, sizeof list);
    tfs_error_set(&err, TFS_EINVAL, "%s: entity \"%s\" of system \"%s\" has no field \"%s\"",
                  path, e->name, tfs_instance_system(inst), name);
    tfs_error_hint(&err, "%s has: %s", e->name, list);
    report(sink, &err);
}

static const tfs_sdk_entity *entity_of(const tfs_instance *inst, const char *name)
{
    int i = tfs_instance_entity(inst, name);
    return i < 0 ? NULL : tfs_instance_entity_get(inst, (size_t)i);
}

/* The pair's mappings: source entities read by the source system, target entities (and
 * the deactivate field) written by the target system. */
static void check_mappings(const tfs_config_pair *pair, size_t pi, const tfs_instance *src,
                           const tfs_instance *tgt, const tfs_schema_sink *sink)
{
    char path[320];
    for (size_t j = 0; j < pair->n_entities; j++) {
        const tfs_config_entity *m = &pair->entities[j];
        snprintf(path, sizeof path, "pairs[%zu].entities[%zu].source", pi, j);
        int si = src ? tfs_instance_entity(src, m->source) : 0;
        if (src && si < 0)
            no_entity(path, "source", src, m->source, sink);
        else if (src && !(tfs_instance_entity_roles(src, (size_t)si) & TFS_SDK_CAP_SOURCE))
            wrong_role(path, "source", src, m->source, TFS_SDK_CAP_SOURCE, sink);
        for (size_t k = 0; tgt && k < m->n_targets; k++) {
            snprintf(path, sizeof path, "pairs[%zu].entities[%zu].targets[%zu]", pi, j, k);
            int ti = tfs_instance_entity(tgt, m->targets[k]);
            if (ti < 0) {
                no_entity(path, "target", tgt, m->targets[k], sink);
                continue;
            }
            if (!(tfs_instance_entity_roles(tgt, (size_t)ti) & TFS_SDK_CAP_TARGET))
                wrong_role(path, "target", tgt, m->targets[k], TFS_SDK_CAP_TARGET, sink);
            const tfs_sdk_entity *e = tfs_instance_entity_get(tgt, (size_t)ti);
            snprintf(path, sizeof path, "pairs[%zu].deactivate_field", pi);
            if (pair->delete_action == TFS_DELETE_DEACTIVATE &&
                tfs_entity_field_index(e, pair->deactivate_field) < 0)
                no_field(path, tgt, e, pair->deactivate_field, sink);
        }
    }
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
static void check_conflicts(const tfs_config_pair *pair, size_t pi, const tfs_instance *src,
                            const tfs_instance *tgt, const tfs_schema_sink *sink)
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
            no_entity(path, "target", tgt, r->entity, sink);
        else if (r->field && tfs_entity_field_index(e, r->field) < 0)
            no_field(path, tgt, e, r->field, sink);
    }
    const tfs_sdk_entity *e;
    snprintf(path, sizeof path, "pairs[%zu].conflicts.newest_fields.source", pi);
    if (src && c->newest_source && !pair_has_field(pair, src, 0, c->newest_source, &e) && e)
        no_field(path, src, e, c->newest_source, sink);
    snprintf(path, sizeof path, "pairs[%zu].conflicts.newest_fields.target", pi);
    if (tgt && c->newest_target && !pair_has_field(pair, tgt, 1, c->newest_target, &e) && e)
        no_field(path, tgt, e, c->newest_target, sink);
}

/* The validation rules' fields, bounds and sums, at rules.<entity>[n]. */
static void check_rules(const tfs_config_pair *pair, size_t pi, const tfs_instance *tgt,
                        const tfs_schema_sink *sink)
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
        if (!e) {
            no_entity(path, "target", tgt, r->entity, sink);
            continue;
        }
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
            no_field(path, tgt, e, bad, sink);
        }
    }
}

void tfs_schema_check_pair(const tfs_config *cfg, size_t pi, const tfs_instance *src,
                           const tfs_instance *tgt, const tfs_schema_sink *sink)
{
    const tfs_config_pair *pair = &cfg->pairs[pi];
    check_mappings(pair, pi, src, tgt, sink);
    check_conflicts(pair, pi, src, tgt, sink);
    check_rules(pair, pi, tgt, sink);
}
