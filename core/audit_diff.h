/* core/audit_diff.h — what an audit entry says changed: the fields that differ between
 * what the sync map last wrote for a source record and what is written now, grouped by
 * target entity, with the value before and after each.
 *
 * Pure code over records and JSON text: no connection, no thread of its own. The pipeline
 * calls it on the committing side for every record whose change reached the target (see
 * "Audit: one entry per applied source record" in docs/decisions.md).
 */
#ifndef TFS_AUDIT_DIFF_H
#define TFS_AUDIT_DIFF_H

#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "record.h"

/* One source record's change as the audit diff sees it. Everything is borrowed. */
typedef struct tfs_audit_subject {
    const tfs_record *const *recs; /* what is written now: the mapping's output or, for a
                                    * deletion, the records it acts on */
    size_t n;
    const tfs_record *const *orphans; /* last written records the mapping no longer
                                       * produces: deleted with the update */
    size_t n_orphans;
    const char *old; /* JSON text {entity: [records]} as last written, NULL: never written */
    int deleted;     /* the source record is gone (a delete or a deactivation) */
    int removing;    /* deleted from the target: every field goes to null */
} tfs_audit_subject;

/* The name of target record t (one of recs) in an audit entry: its entity's name, or
 * "entity key" when recs hold several records of that entity. In the arena; NULL when out
 * of memory. */
const char *tfs_audit_diff_name(const tfs_record *const *recs, size_t n, const tfs_record *t,
                                tfs_arena *a);

/* The entry's changes as JSON text {name: {field: {"before": x, "after": y}}}: only fields
 * whose value differs, bookkeeping fields left out (the target sets them), names from
 * tfs_audit_diff_name, orphans as "entity key" with every non-null field going to null.
 * With no old record (an insert) every non-null field goes from null to its value.
 * scratch is a work buffer the caller keeps between calls. In the arena; NULL when out of
 * memory. */
const char *tfs_audit_diff_changes(const tfs_audit_subject *s, tfs_buf *scratch,
                                   tfs_arena *a);

#endif
