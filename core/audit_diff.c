/* core/audit_diff.c — the changes an audit entry records; see audit_diff.h.
 *
 * The insert, by far the most common entry of a first full run, is written as text
 * straight into a buffer; updates and deletions compare field by field through jansson,
 * against the last written record of the same target key.
 */
#include "audit_diff.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tfs_audit_diff_name(const tfs_record *const *recs, size_t n, const tfs_record *t,
                                tfs_arena *a)
{
    size_t same = 0;
    for (size_t j = 0; j < n; j++)
        same += recs[j]->entity == t->entity;
    if (same <= 1)
        return t->entity->name;
    const char *key = tfs_record_key(a, t);
    size_t len = strlen(t->entity->name) + (key ? strlen(key) : 0) + 2;
    char *name = tfs_arena_alloc(a, len);
    if (name)
        snprintf(name, len, "%s %s", t->entity->name, key ? key : "");
    return name;
}

/* An insert: every non-null field goes from null to its value. */
static const char *insert_changes(const tfs_audit_subject *s, tfs_buf *t, tfs_arena *a)
{
    tfs_buf_reset(t);
    tfs_buf_putc(t, '{');
    for (size_t j = 0; j < s->n; j++) {
        const tfs_record *rec = s->recs[j];
        if (j)
            tfs_buf_putc(t, ',');
        const char *name = tfs_audit_diff_name(s->recs, s->n, rec, a);
        if (!name)
            return NULL;
        tfs_json_string_append(t, name, strlen(name));
        tfs_buf_puts(t, ":{");
        int first = 1;
        for (size_t f = 0; f < rec->n; f++) {
            const tfs_sdk_field *fd = &rec->entity->fields[f];
            if ((fd->flags & TFS_SDK_FIELD_BOOKKEEPING) || rec->values[f].type == TFS_SDK_NULL)
                continue;
            if (!first)
                tfs_buf_putc(t, ',');
            first = 0;
            tfs_json_string_append(t, fd->name, strlen(fd->name));
            tfs_buf_puts(t, ":{\"before\":null,\"after\":");
            tfs_value_json_append(t, &rec->values[f]);
            tfs_buf_putc(t, '}');
        }
        tfs_buf_putc(t, '}');
    }
    tfs_buf_putc(t, '}');
    return t->oom ? NULL : tfs_arena_strndup(a, tfs_buf_str(t), t->len);
}

/* The last written record (in old) with the same target key as t, or NULL. */
static json_t *old_of(json_t *old, const tfs_record *t, tfs_arena *a)
{
    const char *tkey = tfs_record_key(a, t);
    size_t k;
    json_t *o;
    json_array_foreach(json_object_get(old, t->entity->name), k, o) {
        tfs_record *ot = tfs_record_from_json(a, t->entity, o);
        const char *okey = ot ? tfs_record_key(a, ot) : NULL;
        if (okey && tkey && strcmp(okey, tkey) == 0)
            return o;
    }
    return NULL;
}

/* Adds to changes the fields of t that differ from its last written record. */
static void record_changes(const tfs_audit_subject *s, const tfs_record *t, json_t *old,
                           json_t *changes, tfs_arena *a)
{
    json_t *before = old_of(old, t, a);
    json_t *after = s->removing ? NULL : tfs_record_to_json(t);
    json_t *fields = json_object();
    for (size_t f = 0; f < t->n; f++) {
        const tfs_sdk_field *fd = &t->entity->fields[f];
        if (fd->flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        json_t *bv = json_object_get(before, fd->name);
        json_t *av = json_object_get(after, fd->name);
        if (!bv)
            bv = json_null();
        if (!av)
            av = json_null();
        if (json_equal(bv, av))
            continue;
        json_object_set_new(fields, fd->name, json_pack("{sOsO}", "before", bv, "after", av));
    }
    json_decref(after);
    const char *name = tfs_audit_diff_name(s->recs, s->n, t, a);
    if (json_object_size(fields) && name)
        json_object_set_new(changes, name, fields);
    else
        json_decref(fields);
}

/* Adds an orphan (a record the mapping no longer produces): every field goes to null. */
static void orphan_changes(const tfs_record *t, json_t *changes, tfs_arena *a)
{
    json_t *fields = json_object(), *was = tfs_record_to_json(t);
    for (size_t f = 0; f < t->n; f++) {
        const tfs_sdk_field *fd = &t->entity->fields[f];
        if ((fd->flags & TFS_SDK_FIELD_BOOKKEEPING) || t->values[f].type == TFS_SDK_NULL)
            continue;
        json_object_set_new(fields, fd->name,
                            json_pack("{sOsn}", "before", json_object_get(was, fd->name),
                                      "after"));
    }
    json_decref(was);
    const char *key = tfs_record_key(a, t);
    char name[256];
    snprintf(name, sizeof name, "%s %s", t->entity->name, key ? key : "");
    json_object_set_new(changes, name, fields);
}

const char *tfs_audit_diff_changes(const tfs_audit_subject *s, tfs_buf *scratch, tfs_arena *a)
{
    if (!s->old && !s->deleted)
        return insert_changes(s, scratch, a);
    json_t *old = s->old ? json_loads(s->old, 0, NULL) : NULL;
    json_t *changes = json_object();
    for (size_t j = 0; j < s->n && changes; j++)
        record_changes(s, s->recs[j], old, changes, a);
    for (size_t j = 0; j < s->n_orphans && changes; j++)
        orphan_changes(s->orphans[j], changes, a);
    char *text = changes ? json_dumps(changes, JSON_COMPACT) : NULL;
    const char *out = text ? tfs_arena_strdup(a, text) : NULL;
    free(text);
    json_decref(changes);
    json_decref(old);
    return out;
}
