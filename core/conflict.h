/* core/conflict.h — deciding a conflict: a target record edited since it was last written
 * (by an appraiser in CAMA, say) that the source changed too. Pure code: records in, the
 * record to write and the fields in dispute out; stage.c fetches and stores.
 *
 * Three versions of one target record meet: source (what the mapping produced now),
 * target (what the target holds now; NULL when it has no such record) and base (what the
 * sync map says was last written; NULL when nothing was). Fields are compared by their
 * canonical encoding, so "12.50" and "12.5" or char padding never make a dispute, and
 * key and bookkeeping fields (CAMA wen, who) are never in dispute.
 */
#ifndef TFS_CONFLICT_H
#define TFS_CONFLICT_H

#include <stdint.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "record.h"

typedef enum tfs_conflict_outcome {
    TFS_CONFLICT_SOURCE = 0, /* write the source's record */
    TFS_CONFLICT_TARGET,     /* keep the target's (written back unchanged, or left absent) */
    TFS_CONFLICT_MERGED,     /* write a record merged field by field */
    TFS_CONFLICT_PARK,       /* write nothing: an operator decides (manual) */
} tfs_conflict_outcome;

typedef struct tfs_conflict_sides {
    const tfs_record *source; /* required */
    const tfs_record *target; /* NULL: the target has no such record */
    const tfs_record *base;   /* NULL: never written (or not this record) */
    /* newest_wins: the source's and the target's timestamp or date text, NULL: unknown */
    const char *source_time, *target_time;
} tfs_conflict_sides;

/* "source", "target", "merged", "parked". */
const char *tfs_conflict_outcome_name(tfs_conflict_outcome o);

/* The policy (and merge's fallback) of a target entity under the pair's config. */
tfs_conflict_policy tfs_conflict_entity_policy(const tfs_config_conflicts *c, const char *entity,
                                               tfs_conflict_policy *fallback);

/* 1 when the two records (either may be NULL) differ in a non-bookkeeping field's canonical
 * value, 0 when equal, -1 when out of memory. scratch is working memory. */
int tfs_conflict_differs(const tfs_record *a, const tfs_record *b, tfs_buf *scratch);

/* Decides one target record by the pair's policy for its entity. *result is what to write
 * (s->source itself, a copy of the target, or a merged record in arena a), NULL with
 * TFS_CONFLICT_TARGET when the target has no record and keeps none. Every field in dispute
 * is appended to disputes (when not NULL) as {"entity", "key", "field", "source", "target",
 * "base", "decision"}. always_merge: decide the merge even when the target did not change,
 * so that fields the target owns stay the target's. Returns 0, or TFS_ENOMEM. */
int tfs_conflict_decide(const tfs_config_conflicts *c, const tfs_conflict_sides *s,
                        tfs_arena *a, tfs_buf *scratch, const tfs_record **result,
                        tfs_conflict_outcome *outcome, json_t *disputes);

/* A timestamp ("YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|+HH[:MM]]") or a date as microseconds
 * since 1970 UTC into *us; -1 when it is neither. */
int tfs_conflict_parse_time(const char *s, int64_t *us);

#endif
