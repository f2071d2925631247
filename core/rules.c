/* core/rules.c — checking mapped records against a pair's validation rules; see rules.h.
 *
 * Numbers are compared as doubles: the values rules bound (money of 14 digits, years,
 * areas) are exact in a double, and a rule is a check, not arithmetic that is written. */
#include "rules.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_reason(json_t *reasons, const tfs_config_rule *r, const char *fmt, ...)
    TFS_PRINTF(3, 4);

/* "<entity>.<field>: <what> (rule "<name>")" */
static int add_reason(json_t *reasons, const tfs_config_rule *r, const char *fmt, ...)
{
    char what[400], msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s.%s: %s (rule \"%s\")", r->entity, r->field, what, r->name);
    json_t *s = json_string(msg);
    if (!s || json_array_append_new(reasons, s) != 0)
        return TFS_ENOMEM;
    return 1;
}

/* The value's text as a pattern or lookup sees it: text types as they are, numbers
 * printed; NULL for null. */
static const char *value_text(const tfs_value *v, char *buf, size_t size, size_t *len)
{
    switch (v->type) {
    case TFS_SDK_NULL:
        return NULL;
    case TFS_SDK_BOOL:
        snprintf(buf, size, "%s", v->u.b ? "true" : "false");
        break;
    case TFS_SDK_INT64:
        snprintf(buf, size, "%" PRId64, v->u.i);
        break;
    case TFS_SDK_FLOAT64:
        snprintf(buf, size, "%.17g", v->u.f);
        break;
    default:
        *len = v->u.s ? v->len : 0;
        return v->u.s ? v->u.s : "";
    }
    *len = strlen(buf);
    return buf;
}

/* The value as a reason shows it: text quoted (and cut), numbers as they are. */
static void value_show(const tfs_value *v, char *out, size_t size)
{
    char tmp[64];
    size_t len;
    const char *t = value_text(v, tmp, sizeof tmp, &len);
    if (!t)
        snprintf(out, size, "null");
    else if (v->type == TFS_SDK_TEXT || v->type == TFS_SDK_DATE ||
             v->type == TFS_SDK_TIMESTAMP || tfs_type_is_json(v->type))
        snprintf(out, size, "\"%.*s%s\"", (int)(len > 60 ? 60 : len), t, len > 60 ? "..." : "");
    else
        snprintf(out, size, "%.*s", (int)(len > 60 ? 60 : len), t);
}

/* Whole numbers of up to 15 digits ("40000", "-12"), the usual money of a mapping,
 * without strtod, which dominates a rule's cost; 1, or 0 for any other text. */
static int small_integer(const char *s, size_t len, double *out)
{
    size_t i = s[0] == '-';
    if (len <= i || len - i > 15)
        return 0;
    int64_t x = 0;
    for (size_t k = i; k < len; k++) {
        if (s[k] < '0' || s[k] > '9')
            return 0;
        x = x * 10 + (s[k] - '0');
    }
    *out = (double)(i ? -x : x);
    return 1;
}

/* The value as a number: 1, 0 when it is null, -1 when it is not a number. */
static int value_number(const tfs_value *v, double *out)
{
    char *end;
    switch (v->type) {
    case TFS_SDK_NULL:
        return 0;
    case TFS_SDK_INT64:
        *out = (double)v->u.i;
        return 1;
    case TFS_SDK_FLOAT64:
        *out = v->u.f;
        return 1;
    case TFS_SDK_DECIMAL:
    case TFS_SDK_TEXT:
        if (!v->u.s || !v->len)
            return -1;
        if (small_integer(v->u.s, v->len, out))
            return 1;
        *out = strtod(v->u.s, &end);
        return end == v->u.s + v->len && isfinite(*out) ? 1 : -1;
    default:
        return -1;
    }
}

static const tfs_value *field_value(const tfs_record *rec, const char *name)
{
    int f = tfs_entity_field_index(rec->entity, name);
    return f < 0 || (size_t)f >= rec->n ? NULL : &rec->values[f];
}

/* The bound's number: 1, 0 when it is a null field (the rule does not apply). */
static int bound_value(const tfs_config_bound *b, const tfs_record *rec,
                       const tfs_rules_env *env, double *out)
{
    if (!b->field) {
        *out = b->value;
        return 1;
    }
    double base;
    if (strcmp(b->field, "roll_year") == 0) {
        base = env ? env->roll_year : 0;
    } else {
        const tfs_value *v = field_value(rec, b->field);
        if (!v || value_number(v, &base) != 1)
            return 0;
    }
    *out = base + b->value;
    return 1;
}

/* The value as reasons show it is made only for a reason: most records break no rule. */
#define SHOWN(v) (value_show((v), shown, sizeof shown), shown)

static int check_bounds(const tfs_config_rule *r, const tfs_record *rec,
                        const tfs_rules_env *env, const tfs_value *v, json_t *reasons)
{
    double x;
    char shown[80];
    int n = value_number(v, &x);
    if (n == 0)
        return 0;
    if (n < 0)
        return add_reason(reasons, r, "%s is not a number", SHOWN(v));
    int found = 0;
    const tfs_config_bound *bs[] = {&r->min, &r->max};
    for (int k = 0; k < 2; k++) {
        double b;
        if (!bs[k]->set || bound_value(bs[k], rec, env, &b) != 1)
            continue;
        if (k == 0 ? x >= b : x <= b)
            continue;
        int rc = bs[k]->field
                     ? add_reason(reasons, r, "%s is %s %s = %.15g", SHOWN(v),
                                  k == 0 ? "below" : "above", bs[k]->text, b)
                     : add_reason(reasons, r, "%s is %s the %s %s", SHOWN(v),
                                  k == 0 ? "below" : "above", k == 0 ? "minimum" : "maximum",
                                  bs[k]->text);
        if (rc < 0)
            return rc;
        found++;
    }
    return found;
}

static int check_sum(const tfs_config_rule *r, const tfs_record *rec, const tfs_value *v,
                     json_t *reasons)
{
    double x, sum = 0;
    char shown[80];
    int n = value_number(v, &x);
    if (n == 0)
        return 0;
    if (n < 0)
        return add_reason(reasons, r, "%s is not a number", SHOWN(v));
    for (size_t k = 0; k < r->n_sum_of; k++) {
        const tfs_value *t = field_value(rec, r->sum_of[k]);
        double y = 0;
        if (t && value_number(t, &y) < 0)
            return add_reason(reasons, r, "%s cannot be summed: %s is not a number", SHOWN(v),
                              r->sum_of[k]);
        sum += y; /* a null term counts as 0, as the mappings count it */
    }
    if (fabs(x - sum) <= r->tolerance + 1e-9 * fabs(sum))
        return 0;
    char terms[200] = "";
    for (size_t k = 0; k < r->n_sum_of; k++) {
        size_t used = strlen(terms);
        snprintf(terms + used, sizeof terms - used, "%s%s", k ? " + " : "", r->sum_of[k]);
    }
    value_show(v, shown, sizeof shown);
    if (r->tolerance > 0)
        return add_reason(reasons, r, "%s is not %s = %.15g (within %.15g)", shown, terms, sum,
                          r->tolerance);
    return add_reason(reasons, r, "%s is not %s = %.15g", shown, terms, sum);
}

static int check_text(const tfs_config_rule *r, const tfs_value *v, const tfs_rules_env *env,
                      json_t *reasons)
{
    char buf[64], shown[80];
    size_t len;
    const char *t = value_text(v, buf, sizeof buf, &len);
    if (!t)
        return 0;
    int found = 0, rc;
    if (r->pattern) {
        /* regexec wants a NUL-terminated string: record text is one (record.h). */
        if (regexec(&r->re, t, 0, NULL, 0) != 0) {
            if ((rc = add_reason(reasons, r, "%s does not match %s", SHOWN(v), r->pattern)) <
                0)
                return rc;
            found++;
        }
    }
    if (r->lookup) {
        tfs_error e = {0};
        int listed = env && env->lookup ? env->lookup(env->lookup_ctx, r->lookup, t, len, &e)
                                        : tfs_error_set(&e, TFS_EINVAL, "no lookup tables");
        if (listed == TFS_ENOMEM)
            return TFS_ENOMEM;
        if (listed < 0)
            rc = add_reason(reasons, r, "%s could not be looked up in lookups/%s.csv: %s",
                            SHOWN(v), r->lookup, e.message);
        else if (listed == 0)
            rc = add_reason(reasons, r, "%s is not a code of lookups/%s.csv", SHOWN(v),
                            r->lookup);
        else
            rc = 0;
        if (rc < 0)
            return rc;
        found += rc;
    }
    return found;
}

int tfs_rules_check(const tfs_config_rules *rules, const tfs_record *rec,
                    const tfs_rules_env *env, json_t *reasons)
{
    int found = 0;
    for (size_t i = 0; rules && i < rules->n; i++) {
        const tfs_config_rule *r = &rules->items[i];
        if (strcmp(r->entity, rec->entity->name) != 0)
            continue;
        const tfs_value *v = field_value(rec, r->field);
        if (!v)
            continue; /* tfs_rules_verify refuses such a rule before any record */
        int rc = 0;
        if (v->type == TFS_SDK_NULL) {
            if (r->required)
                rc = add_reason(reasons, r, "null, but a value is required");
        } else {
            int n;
            if ((r->min.set || r->max.set) && (n = check_bounds(r, rec, env, v, reasons)) != 0)
                rc = n < 0 ? n : rc + n;
            if (rc >= 0 && r->sum_of && (n = check_sum(r, rec, v, reasons)) != 0)
                rc = n < 0 ? n : rc + n;
            if (rc >= 0 && (r->pattern || r->lookup) &&
                (n = check_text(r, v, env, reasons)) != 0)
                rc = n < 0 ? n : rc + n;
        }
        if (rc < 0)
            return TFS_ENOMEM;
        found += rc;
    }
    return found;
}

int tfs_rules_check_all(const tfs_config_rules *rules, tfs_record *const *recs,
                        const unsigned char *typed, size_t n, const char *script,
                        const char *const *problems, size_t n_problems,
                        const tfs_rules_env *env, json_t *reasons)
{
    int found = 0;
    for (size_t j = 0; rules && rules->n && j < n; j++) {
        if (typed && !typed[j])
            continue; /* the schema's reasons say why; rules would only repeat them */
        int k = tfs_rules_check(rules, recs[j], env, reasons);
        if (k < 0)
            return TFS_ENOMEM;
        found += k;
    }
    for (size_t k = 0; k < n_problems; k++) {
        char msg[640];
        snprintf(msg, sizeof msg, "%s validate(): %s", script ? script : "script",
                 problems[k]);
        json_t *s = json_string(msg);
        if (!s || json_array_append_new(reasons, s) != 0)
            return TFS_ENOMEM;
        found++;
    }
    return found;
}

static int has_field(const tfs_sdk_entity *e, const char *name)
{
    return tfs_entity_field_index(e, name) >= 0;
}

/* "parid, taxyr, ..." of the entity, for the hint. */
static void field_list(const tfs_sdk_entity *e, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < e->n_fields; i++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", i ? ", " : "", e->fields[i].name);
    }
}

int tfs_rules_verify(const tfs_config_rules *rules, const tfs_sdk_entity *const *targets,
                     size_t n_targets, const char *pair, tfs_error *err)
{
    for (size_t i = 0; rules && i < rules->n; i++) {
        const tfs_config_rule *r = &rules->items[i];
        const tfs_sdk_entity *e = NULL;
        for (size_t t = 0; t < n_targets && !e; t++)
            if (strcmp(targets[t]->name, r->entity) == 0)
                e = targets[t];
        if (!e)
            continue; /* another mapping's entity */
        const char *bad = !has_field(e, r->field) ? r->field : NULL;
        const tfs_config_bound *bs[] = {&r->min, &r->max};
        for (int k = 0; k < 2 && !bad; k++)
            if (bs[k]->field && strcmp(bs[k]->field, "roll_year") != 0 &&
                !has_field(e, bs[k]->field))
                bad = bs[k]->field;
        for (size_t k = 0; k < r->n_sum_of && !bad; k++)
            if (!has_field(e, r->sum_of[k]))
                bad = r->sum_of[k];
        if (bad) {
            char list[512];
            field_list(e, list, sizeof list);
            tfs_error_set(err, TFS_EINVAL, "pair \"%s\": rule \"%s\" names field \"%s\", which "
                          "the target entity %s does not have", pair, r->name, bad, e->name);
            tfs_error_hint(err, "fix the pair's rules.%s in the config; %s has %s", e->name,
                           e->name, list);
            return TFS_EINVAL;
        }
    }
    return 0;
}
