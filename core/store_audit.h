/* core/store_audit.h — the audit trail's hash chain in the state store: the head of a
 * pair's chain locked and moved in the transaction that writes entries, and the walk that
 * verifies it (GET /audit/verify, tfsync audit verify).
 *
 * Each entry carries seq (its place in its pair's chain), prev_hash (the hash of the entry
 * before it) and hash (SHA-256 of its canonical text, audit_chain.h). The head of a pair,
 * a row of tfsync.audit_heads, holds the last seq and hash: every transaction that writes
 * entries of a pair locks it first, so the chain stays one chain whichever workers or API
 * threads write. Each batch commit also records on its run the head it ended at. Entries
 * written before the chain existed (migration 7) have no seq: verify counts them as
 * unchained and checks none of them.
 */
#ifndef TFS_STORE_AUDIT_H
#define TFS_STORE_AUDIT_H

#include <stdint.h>

#include <jansson.h>

#include "audit_chain.h"
#include "error.h"
#include "store.h"

/* A pair's chain head as locked in the current transaction. */
typedef struct tfs_audit_head {
    const char *pair; /* borrowed */
    int64_t seq;      /* the last entry's seq; 0 before the first */
    unsigned char hash[TFS_AUDIT_HASH_LEN]; /* the last entry's hash; zeros before the first */
    int64_t now_us;   /* the transaction's now(), the `at` of the entries it writes */
    int64_t since;    /* entries up to this id predate the chain */
} tfs_audit_head;

/* In a transaction, before anything else it locks: creates the pair's head if it has none
 * and locks it (FOR UPDATE, until the transaction ends); fills *h. */
int tfs_store_audit_lock(tfs_store *s, const char *pair, tfs_audit_head *h, tfs_error *err);

/* In the same transaction, after its entries: chains the entries of the pair written in it
 * by SQL (those with no seq yet) after h, saves h as the pair's head and, when run_id > 0,
 * as the head that run ended at. Entries the caller chained itself (h moved) come first. */
int tfs_store_audit_finish(tfs_store *s, tfs_audit_head *h, int64_t run_id, tfs_error *err);

/* Walks the chain of pair (NULL: of every pair) and answers
 *   {"ok": bool, "pairs": [{"pair", "ok", "entries", "unchained", "head": {"seq", "hash"},
 *     "mismatch": {"what", "id", "seq", "run_id", "entity", "source_key", "op", "detail"}}]}
 * where mismatch (absent when ok) is the first entry that does not match: what is "hash"
 * (its text is not what its hash covers: changed after it was written), "link" (its
 * prev_hash or seq does not follow the entry before it: one deleted or moved), "head" (the
 * chain ends before its head: the newest entries deleted), "run" (a run's recorded head is
 * not in the chain) or "unchained" (an entry written after the chain began without a
 * place in it). *out owned. */
int tfs_store_audit_verify(tfs_store *s, const char *pair, json_t **out, tfs_error *err);

#endif
