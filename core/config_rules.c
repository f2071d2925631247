/* core/config_rules.c — a pair's validation rules ("rules": {target entity: [rule, ...]}),
 * parsed into typed rules when the config loads, so that a bad pattern, bound or lookup
 * table is refused at start-up with its JSON path instead of failing records at the first
 * run; see config_private.h. core/rules.c checks records against them.
 *
 * A rule: {"name", "field", "required", "min", "max", "pattern", "lookup", "sum_of",
 * "tolerance"}; min and max are a number or "<field or roll_year> [+|- number]". Field
 * names are checked against the target's schema when a run starts (the schema is the
 * plugin's, unknown here).
 */
#include "config_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void tfs_config_rules_free(tfs_config_rules *rules)
{
    for (size_t i = 0; rules && i < rules->n; i++) {
        tfs_config_rule *r = &rules->items[i];
        free(r->entity);
        free(r->field);
        free(r->name);
        free(r->min.field);
        free(r->min.text);
        free(r->max.field);
        free(r->max.text);
        if (r->pattern)
            regfree(&r->re);
        free(r->pattern);
        free(r->lookup);
        for (size_t k = 0; k < r->n_sum_of; k++)
            free(r->sum_of[k]);
        free(r->sum_of);
    }
    if (rules) {
        free(rules->items);
        rules->items = NULL;
        rules->n = 0;
    }
}

/* An identifier: a letter or '_', then letters, digits and '_'. Returns its length. */
static size_t ident_len(const char *s)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    return n;
}

/* A bound: a JSON number, or "name", "name + 1", "name - 2.5". */
static int parse_bound(const json_t *v, const tfs_config_path *p, tfs_config_bound *b,
                       tfs_error *err)
{
    char text[128];
    if (json_is_number(v)) {
        b->value = json_number_value(v);
        snprintf(text, sizeof text, "%.15g", b->value);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s == ' ')
            s++;
        size_t n = ident_len(s);
        if (n == 0 || n > 100)
            goto bad;
        if (!(b->field = strndup(s, n)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        const char *q = s + n;
        while (*q == ' ')
            q++;
        if (*q == '+' || *q == '-') {
            char *end;
            double off = strtod(q + 1, &end);
            if (end == q + 1)
                goto bad;
            while (*end == ' ')
                end++;
            if (*end)
                goto bad;
            b->value = *q == '-' ? -off : off;
        } else if (*q) {
            goto bad;
        }
        snprintf(text, sizeof text, "%s", json_string_value(v));
    } else {
        return tfs_config_fail(err, p, "must be a number or a field expression, not %s",
                               tfs_config_kind(v));
    }
    if (!(b->text = strdup(text)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    b->set = 1;
    return 0;
bad:
    tfs_config_fail(err, p, "\"%s\" is not a bound", json_string_value(v));
    tfs_error_hint(err, "write a number (0), a field of the same record (\"valapr3\"), or "
                        "one plus or minus a number (\"taxyr + 1\", \"roll_year - 1\")");
    return TFS_EINVAL;
}

/* A POSIX extended regular expression, compiled; the escapes other dialects have and
 * POSIX does not (\d would silently match the letter d) are refused with the fix. */
static int parse_pattern(const char *pat, const tfs_config_path *p, tfs_config_rule *r,
                         tfs_error *err)
{
    static const char *const escapes[][2] = {
        {"\\d", "[0-9]"}, {"\\D", "[^0-9]"}, {"\\w", "[[:alnum:]_]"},
        {"\\s", "[[:space:]]"}, {"\\S", "[^[:space:]]"}};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        if (strstr(pat, escapes[i][0])) {
            tfs_config_fail(err, p, "\"%s\" uses %s, which POSIX regular expressions do not "
                            "have", pat, escapes[i][0]);
            tfs_error_hint(err, "write %s instead of %s", escapes[i][1], escapes[i][0]);
            return TFS_EINVAL;
        }
    }
    int rc = regcomp(&r->re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[160];
        regerror(rc, &r->re, why, sizeof why);
        regfree(&r->re);
        tfs_config_fail(err, p, "\"%s\" is not a valid POSIX extended regular expression: %s",
                        pat, why);
        tfs_error_hint(err, "e.g. \"^[0-9]{5}(-?[0-9]{4})?$\" for a ZIP code");
        return TFS_EINVAL;
    }
    if (!(r->pattern = strdup(pat))) {
        regfree(&r->re);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_lookup(const tfs_config *cfg, const char *name, const tfs_config_path *p,
                        tfs_config_rule *r, tfs_error *err)
{
    size_t n = strlen(name);
    int plain = n > 0 && n <= 128;
    for (size_t i = 0; plain && i < n; i++)
        plain = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-';
    if (!plain)
        return tfs_config_fail(err, p, "\"%s\" is not a lookup table name (letters, digits, "
                               "'_' and '-')", name);
    char rel[200];
    snprintf(rel, sizeof rel, "lookups/%s.csv", name);
    char *full = tfs_config_resolve(cfg->transform_dir, rel);
    if (!full)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    struct stat st;
    int missing = stat(full, &st) != 0 || !S_ISREG(st.st_mode);
    free(full);
    if (missing) {
        tfs_config_fail(err, p, "no lookup table \"%s\" in the transform directory \"%s\"",
                        rel, cfg->transform_dir);
        tfs_error_hint(err, "add %s (a header line, then code,value lines) or fix the name",
                       rel);
        return TFS_EINVAL;
    }
    return (r->lookup = strdup(name)) ? 0 : tfs_error_set(err, TFS_ENOMEM, "out of memory");
}

static int parse_sum(const json_t *v, const tfs_config_path *p, tfs_config_rule *r,
                     tfs_error *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return tfs_config_fail(err, p, "must be a non-empty array of field names, e.g. "
                               "[\"valapr1\", \"valapr2\"]");
    if (!(r->sum_of = calloc(json_array_size(v), sizeof *r->sum_of)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *f;
    json_array_foreach(v, i, f) {
        tfs_config_path fp = tfs_config_path_index(p, i);
        if (!json_is_string(f) || !ident_len(json_string_value(f)))
            return tfs_config_fail(err, &fp, "must be a field name");
        if (!(r->sum_of[r->n_sum_of++] = strdup(json_string_value(f))))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return 0;
}

static int is_target(const tfs_config_pair *pair, const char *entity)
{
    for (size_t i = 0; i < pair->n_entities; i++)
        for (size_t k = 0; k < pair->entities[i].n_targets; k++)
            if (strcmp(pair->entities[i].targets[k], entity) == 0)
                return 1;
    return 0;
}

static int parse_rule(const tfs_config *cfg, const json_t *o, const tfs_config_path *rp,
                      const char *entity, size_t index, tfs_config_rule *r, tfs_error *err)
{
    static const char *const allowed[] = {"name", "field", "required", "min", "max",
                                          "pattern", "lookup", "sum_of", "tolerance", NULL};
    int rc;
    if (!json_is_object(o))
        return tfs_config_fail(err, rp, "must be an object like {\"field\": \"taxyr\", "
                               "\"required\": true}, not %s", tfs_config_kind(o));
    if (!(r->entity = strdup(entity)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    if ((rc = tfs_config_check_keys(o, rp, allowed, err)) ||
        (rc = tfs_config_get_string(o, rp, "field", 1, NULL, &r->field, err)) ||
        (rc = tfs_config_get_string(o, rp, "name", 0, NULL, &r->name, err)))
        return rc;
    if (!r->name) {
        char place[160];
        snprintf(place, sizeof place, "%s[%zu]", entity, index);
        if (!(r->name = strdup(place)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    const json_t *v;
    tfs_config_path kp;
    if ((v = json_object_get(o, "required"))) {
        kp = tfs_config_path_key(rp, "required");
        if (!json_is_boolean(v))
            return tfs_config_fail(err, &kp, "must be true or false");
        r->required = json_is_true(v);
    }
    const char *bounds[] = {"min", "max"};
    tfs_config_bound *dst[] = {&r->min, &r->max};
    for (int k = 0; k < 2; k++) {
        kp = tfs_config_path_key(rp, bounds[k]);
        if ((v = json_object_get(o, bounds[k])) && (rc = parse_bound(v, &kp, dst[k], err)))
            return rc;
    }
    if ((v = json_object_get(o, "pattern"))) {
        kp = tfs_config_path_key(rp, "pattern");
        if (!json_is_string(v))
            return tfs_config_fail(err, &kp, "must be a string");
        if ((rc = parse_pattern(json_string_value(v), &kp, r, err)))
            return rc;
    }
    if ((v = json_object_get(o, "lookup"))) {
        kp = tfs_config_path_key(rp, "lookup");
        if (!json_is_string(v))
            return tfs_config_fail(err, &kp, "must be the name of a table in lookups/");
        if ((rc = parse_lookup(cfg, json_string_value(v), &kp, r, err)))
            return rc;
    }
    if ((v = json_object_get(o, "sum_of"))) {
        kp = tfs_config_path_key(rp, "sum_of");
        if ((rc = parse_sum(v, &kp, r, err)))
            return rc;
    }
    if (json_object_get(o, "tolerance") && !r->sum_of) {
        kp = tfs_config_path_key(rp, "tolerance");
        return tfs_config_fail(err, &kp, "goes with sum_of");
    }
    if ((rc = tfs_config_get_number(o, rp, "tolerance", 0, 0, 1e15, &r->tolerance, err)))
        return rc;
    if (!r->required && !r->min.set && !r->max.set && !r->pattern && !r->lookup &&
        !r->sum_of) {
        tfs_config_fail(err, rp, "checks nothing");
        tfs_error_hint(err, "give it one of required, min, max, pattern, lookup, sum_of");
        return TFS_EINVAL;
    }
    return 0;
}

int tfs_config_parse_rules(const tfs_config *cfg, const tfs_config_path *pp,
                           tfs_config_pair *pair, tfs_error *err)
{
    const json_t *rules = pair->rules;
    if (!rules)
        return 0;
    tfs_config_path rp = tfs_config_path_key(pp, "rules");
    size_t total = 0;
    const char *entity;
    json_t *list;
    json_object_foreach((json_t *)rules, entity, list) total += json_array_size(list);
    if (!(pair->validation.items = calloc(total ? total : 1, sizeof *pair->validation.items)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    json_object_foreach((json_t *)rules, entity, list) {
        tfs_config_path ep = tfs_config_path_key(&rp, entity);
        if (!is_target(pair, entity)) {
            tfs_config_fail(err, &ep, "\"%s\" is not a target entity of the pair's mappings",
                            entity);
            tfs_error_hint(err, "key rules by a target entity listed under entities[].targets");
            return TFS_EINVAL;
        }
        if (!json_is_array(list))
            return tfs_config_fail(err, &ep, "must be an array of rules, not %s",
                                   tfs_config_kind(list));
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o) {
            tfs_config_path ip = tfs_config_path_index(&ep, i);
            tfs_config_rule *r = &pair->validation.items[pair->validation.n++];
            int rc = parse_rule(cfg, o, &ip, entity, i, r, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}
