/* core/conflict.c — deciding a conflict; see conflict.h.
 *
 * A field changed on a side when its canonical value differs from the base's; without a
 * base every field where source and target differ counts as changed on both. Merge keeps
 * each side's own changes, gives a field both changed to the fallback policy, and a field
 * the pair assigns to a side (the "fields" rules: CAMA owns zoning) to that side.
 */
#include "conflict.h"

#include <stdlib.h>
#include <string.h>

#include "canonical.h"

static const char *const outcome_names[] = {"source", "target", "merged", "parked"};

const char *tfs_conflict_outcome_name(tfs_conflict_outcome o)
{
    return (unsigned)o < 4 ? outcome_names[o] : "?";
}

tfs_conflict_policy tfs_conflict_entity_policy(const tfs_config_conflicts *c, const char *entity,
                                               tfs_conflict_policy *fallback)
{
    for (size_t i = 0; i < c->n_rules; i++)
        if (!c->rules[i].field && strcmp(c->rules[i].entity, entity) == 0) {
            if (fallback)
                *fallback = c->rules[i].fallback;
            return c->rules[i].policy;
        }
    if (fallback)
        *fallback = c->fallback;
    return c->policy;
}

/* The rule of one field, or -1 when it has none. */
static int field_policy(const tfs_config_conflicts *c, const char *entity, const char *field)
{
    for (size_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].field && strcmp(c->rules[i].entity, entity) == 0 &&
            strcmp(c->rules[i].field, field) == 0)
            return (int)c->rules[i].policy;
    return -1;
}

static int is_data(const tfs_sdk_field *f)
{
    return !(f->flags & (TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_BOOKKEEPING));
}

/* 1 when field i of a and b (either may be NULL: all null) differ canonically. */
static int value_differs(const tfs_record *a, const tfs_record *b, size_t i, tfs_buf *scratch)
{
    static const tfs_value null_value = {TFS_SDK_NULL, 0, {0}};
    const tfs_record *any = a ? a : b;
    const tfs_sdk_field *f = &any->entity->fields[i];
    const tfs_value *va = a ? &a->values[i] : &null_value;
    const tfs_value *vb = b ? &b->values[i] : &null_value;
    tfs_buf_reset(scratch);
    if (tfs_canonical_value(scratch, va, f) != 0)
        return -1;
    size_t la = scratch->len;
    if (tfs_canonical_value(scratch, vb, f) != 0)
        return -1;
    size_t lb = scratch->len - la;
    return la != lb || memcmp(scratch->data, scratch->data + la, la) != 0;
}

int tfs_conflict_differs(const tfs_record *a, const tfs_record *b, tfs_buf *scratch)
{
    if (!a && !b)
        return 0;
    if (!a || !b)
        return 1;
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        if (a->entity->fields[i].flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        int d = value_differs(a, b, i, scratch);
        if (d)
            return d;
    }
    return 0;
}

/* ---- time --------------------------------------------------------------------------- */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int tfs_conflict_parse_time(const char *s, int64_t *us)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (!s || strlen(s) < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    const char *p = s + 10;
    int64_t frac = 0;
    if (*p == ' ' || *p == 'T') {
        if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) ||
            p[6] != ':' || digits(p + 7, 2, &se))
            return -1;
        p += 9;
        if (*p == '.') {
            int64_t scale = 100000;
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                frac += scale * (*p - '0');
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0, sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh))
            return -1;
        p += 3;
        if (*p == ':')
            p++;
        if (*p && digits(p, 2, &om) == 0)
            p += 2;
        off = sign * (int64_t)(oh * 3600 + om * 60);
    }
    if (*p)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *us = secs * 1000000 + frac;
    return 0;
}

/* newest_wins: the source unless the target's time is known and later (a tie, or a time
 * missing on either side, keeps today's behaviour, the source). */
static int target_is_newer(const tfs_conflict_sides *s)
{
    int64_t ts, tt;
    if (tfs_conflict_parse_time(s->source_time, &ts) != 0 ||
        tfs_conflict_parse_time(s->target_time, &tt) != 0)
        return 0;
    return tt > ts;
}

/* ---- disputes ----------------------------------------------------------------------- */

static json_t *value_json(const tfs_record *r, size_t i, tfs_buf *scratch)
{
    if (!r)
        return json_null();
    tfs_buf_reset(scratch);
    if (tfs_value_json_append(scratch, &r->values[i]) != 0)
        return NULL;
    return json_loadb(scratch->data, scratch->len, JSON_DECODE_ANY, NULL);
}

static int add_dispute(json_t *disputes, const tfs_conflict_sides *s, size_t i,
                       const char *decision, tfs_arena *a, tfs_buf *scratch)
{
    if (!disputes)
        return 0;
    const tfs_record *src = s->source;
    const char *key = tfs_record_key(a, src);
    json_t *sv = value_json(src, i, scratch), *tv = value_json(s->target, i, scratch),
           *bv = value_json(s->base, i, scratch);
    json_t *d = key && sv && tv && bv
                    ? json_pack("{sssssssOsOsOss}", "entity", src->entity->name, "key", key,
                                "field", src->entity->fields[i].name, "source", sv, "target",
                                tv, "base", bv, "decision", decision)
                    : NULL;
    json_decref(sv);
    json_decref(tv);
    json_decref(bv);
    return d && json_array_append_new(disputes, d) == 0 ? 0 : TFS_ENOMEM;
}

/* Every data field where source and target differ, as decided by a whole-record policy. */
static int list_disputes(const tfs_conflict_sides *s, const char *decision, tfs_arena *a,
                         tfs_buf *scratch, json_t *disputes)
{
    const tfs_record *src = s->source;
    for (size_t i = 0; disputes && i < src->n; i++) {
        if (!is_data(&src->entity->fields[i]))
            continue;
        int d = value_differs(src, s->target, i, scratch);
        if (d < 0 || (d && add_dispute(disputes, s, i, decision, a, scratch)))
            return TFS_ENOMEM;
    }
    return 0;
}

/* A side for a field both sides changed: 0 source, 1 target, 2 park. */
static int pick(tfs_conflict_policy p, const tfs_conflict_sides *s)
{
    switch (p) {
    case TFS_POLICY_TARGET_WINS:
        return 1;
    case TFS_POLICY_NEWEST_WINS:
        return target_is_newer(s);
    case TFS_POLICY_MANUAL:
        return 2;
    default:
        return 0;
    }
}

static int merge(const tfs_config_conflicts *c, tfs_conflict_policy fallback,
                 const tfs_conflict_sides *s, tfs_arena *a, tfs_buf *scratch,
                 const tfs_record **result, tfs_conflict_outcome *outcome, json_t *disputes)
{
    static const char *const side_names[] = {"source", "target", "parked"};
    const tfs_record *src = s->source, *tgt = s->target;
    tfs_record *out = tfs_record_copy(a, src);
    if (!out)
        return TFS_ENOMEM;
    int parked = 0, any_target = 0;
    for (size_t i = 0; i < src->n; i++) {
        const tfs_sdk_field *f = &src->entity->fields[i];
        if (!is_data(f))
            continue;
        int st = value_differs(src, tgt, i, scratch);
        if (st < 0)
            return TFS_ENOMEM;
        if (!st)
            continue; /* both hold the same: nothing to decide */
        int sc = s->base ? value_differs(src, s->base, i, scratch) : 1;
        int tc = s->base ? value_differs(tgt, s->base, i, scratch) : 1;
        if (sc < 0 || tc < 0)
            return TFS_ENOMEM;
        int owner = field_policy(c, src->entity->name, f->name);
        int side; /* 0 source, 1 target, 2 park */
        int disputed;
        if (owner >= 0) {
            /* The field belongs to a side: in dispute only when the source brings a change
             * the target does not hold. */
            side = pick((tfs_conflict_policy)owner, s);
            disputed = sc;
        } else if (sc && tc) {
            side = pick(fallback, s);
            disputed = 1;
        } else {
            side = tc ? 1 : 0; /* one side changed: its change is kept */
            disputed = 0;
        }
        if (side == 1) {
            out->values[i] = tgt->values[i];
            any_target = 1;
        }
        parked |= side == 2;
        if (disputed && add_dispute(disputes, s, i, side_names[side], a, scratch))
            return TFS_ENOMEM;
    }
    if (parked) {
        *result = NULL;
        *outcome = TFS_CONFLICT_PARK;
        return 0;
    }
    *result = out;
    *outcome = any_target ? TFS_CONFLICT_MERGED : TFS_CONFLICT_SOURCE;
    return 0;
}

int tfs_conflict_decide(const tfs_config_conflicts *c, const tfs_conflict_sides *s,
                        tfs_arena *a, tfs_buf *scratch, const tfs_record **result,
                        tfs_conflict_outcome *outcome, json_t *disputes)
{
    tfs_conflict_policy fallback;
    tfs_conflict_policy p = tfs_conflict_entity_policy(c, s->source->entity->name, &fallback);
    if (p == TFS_POLICY_MERGE && s->target)
        return merge(c, fallback, s, a, scratch, result, outcome, disputes);
    if (p == TFS_POLICY_MERGE)
        p = fallback; /* the target deleted its record: nothing to merge with */
    int side = pick(p, s);
    static const char *const decisions[] = {"source", "target", "parked"};
    int rc = list_disputes(s, decisions[side], a, scratch, disputes);
    if (rc)
        return rc;
    if (side == 2) {
        *result = NULL;
        *outcome = TFS_CONFLICT_PARK;
    } else if (side == 1) {
        *result = s->target; /* NULL: the target deleted it, and it stays deleted */
        *outcome = TFS_CONFLICT_TARGET;
    } else {
        *result = s->source;
        *outcome = TFS_CONFLICT_SOURCE;
    }
    return 0;
}
