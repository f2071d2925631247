/* core/audit_chain.h — the audit trail's hash chain: the exact text an entry's SHA-256
 * covers, and the hash.
 *
 * An entry's hash is the SHA-256 of a canonical text built from its stored columns, which
 * the writer (the batch commit, in C, before the rows go out) and the verifier (reading
 * the rows back) build alike; `changes` and `detail` are `json` columns, kept byte for byte
 * as written (never `jsonb`, whose key order is PostgreSQL's). Version 1 of the text:
 *
 *     "tfsync audit v1\n"
 *     the previous entry's hash, 32 bytes (32 zero bytes before a pair's first entry)
 *     then each of seq, pair, run_id, entity, source_key, op, actor, at, changes, detail as
 *     "<byte length>:<bytes>\n", or "-\n" for NULL
 *
 * where seq is the entry's place in its pair's chain (1, 2, ...), run_id and seq are
 * decimal, and at is the entry's time in microseconds since 1970-01-01 UTC, decimal. The
 * lengths make the text unambiguous whatever bytes a field holds. Pure code.
 */
#ifndef TFS_AUDIT_CHAIN_H
#define TFS_AUDIT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#define TFS_AUDIT_HASH_LEN 32

/* One entry's columns, borrowed. detail may be NULL; the others may not. */
typedef struct tfs_audit_entry {
    int64_t seq;
    const char *pair;
    int64_t run_id;
    const char *entity, *source_key, *op, *actor;
    int64_t at_us;
    const char *changes, *detail;
} tfs_audit_entry;

/* A SHA-256 context and a scratch buffer, reused across the entries of a batch. */
typedef struct tfs_audit_hasher tfs_audit_hasher;

/* *out owned (tfs_audit_hasher_free). 0 or TFS_ENOMEM / TFS_EIO. */
int tfs_audit_hasher_new(tfs_audit_hasher **out);
void tfs_audit_hasher_free(tfs_audit_hasher *h);
/* out = SHA-256 of e's canonical text after prev. 0, or TFS_ENOMEM / TFS_EIO. */
int tfs_audit_hash(tfs_audit_hasher *h, const tfs_audit_entry *e,
                   const unsigned char prev[TFS_AUDIT_HASH_LEN],
                   unsigned char out[TFS_AUDIT_HASH_LEN]);

/* 64 lowercase hex digits and a NUL into hex. */
void tfs_audit_hex(const unsigned char hash[TFS_AUDIT_HASH_LEN], char hex[65]);
/* 64 hex digits (an optional "\x" before them, as PostgreSQL prints bytea) into hash;
 * 0, or -1 when text is not that. */
int tfs_audit_unhex(const char *text, unsigned char hash[TFS_AUDIT_HASH_LEN]);

#endif
