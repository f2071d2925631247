/* core/canonical.h — the canonical, versioned encoding of typed values and the content
 * hashes built on it.
 *
 * Two values that a system would call equal encode the same, whatever their
 * representation: a decimal "12.50" and "12.5" and the integer 12 against "12.0", text with
 * or without trailing blanks (char(n) padding), a timestamp with or without trailing
 * fractional zeros. Fields flagged TFS_SDK_FIELD_BOOKKEEPING are left out of record hashes.
 * The encoding starts with TFS_CANONICAL_VERSION so that a change of encoding is a change
 * of every hash, never a silent collision.
 */
#ifndef TFS_CANONICAL_H
#define TFS_CANONICAL_H

#include <stdint.h>

#include "buf.h"
#include "record.h"

#define TFS_CANONICAL_VERSION "c1"

/* Appends the canonical encoding of v, read as the field's declared type, to out: a
 * value of a DECIMAL field is rounded to the field's scale as the validator rounds it.
 * Returns 0, or -1 when out of memory (out->oom set). */
int tfs_canonical_value(tfs_buf *out, const tfs_value *v, const tfs_sdk_field *field);
/* Appends the canonical encoding of every non-bookkeeping field of rec, prefixed with the
 * entity name. Returns 0, or -1 when out of memory (out->oom set). */
int tfs_canonical_record(tfs_buf *out, const tfs_record *rec);

/* 64-bit FNV-1a of bytes, chained through h (start with TFS_HASH_SEED). */
#define TFS_HASH_SEED UINT64_C(0xcbf29ce484222325)
uint64_t tfs_hash_bytes(uint64_t h, const void *data, size_t len);
/* The content hash of records (in order) into *hash, using scratch as working memory.
 * Returns 0, or TFS_ENOMEM (err set, *hash 0) when the encoding could not be built in
 * full: a hash of part of an encoding is never given. */
int tfs_canonical_hash(tfs_buf *scratch, const tfs_record *const *recs, size_t n,
                       uint64_t *hash, tfs_error *err);
/* Deprecated, for callers not yet moved to tfs_canonical_hash: the same hash, or 0 with
 * scratch->oom set when out of memory. A stored hash is 0 only by a 1 in 2^64 chance, so
 * records whose hash failed are written again rather than skipped; check scratch->oom to
 * fail instead. */
uint64_t tfs_hash_records(tfs_buf *scratch, const tfs_record *const *recs, size_t n);
/* Writes a hash as 16 lowercase hex digits and a NUL into out[17]. */
void tfs_hash_hex(uint64_t h, char out[17]);

#endif
