/* core/arena.h — a bump allocator for per-batch and per-request data.
 *
 * Records of a batch, their text and the transform outputs all live in one arena that is
 * reset when the batch is done, so the hot path makes no per-record malloc/free. Memory is
 * kept across resets (up to the largest batch seen), so a steady run stops allocating.
 * Chunks come from tfs_malloc (alloc.h), so tests can make them fail.
 */
#ifndef TFS_ARENA_H
#define TFS_ARENA_H

#include <stddef.h>

typedef struct tfs_arena tfs_arena;

/* Returns a new arena (owned; free with tfs_arena_free) or NULL. */
tfs_arena *tfs_arena_new(void);
/* Frees the arena and everything allocated from it; accepts NULL. */
void tfs_arena_free(tfs_arena *a);
/* Forgets every allocation but keeps the memory for reuse. */
void tfs_arena_reset(tfs_arena *a);
/* Forgets every allocation and gives all the memory back (the arena stays usable): for an
 * arena that sits idle a while, like a worker's between runs, so what the largest batch of
 * one run needed is not held by every worker that ever ran one. */
void tfs_arena_trim(tfs_arena *a);
/* Returns size bytes aligned for any type, or NULL when out of memory or when size is
 * too large for any allocation. */
void *tfs_arena_alloc(tfs_arena *a, size_t size);
/* Same, zero-filled. */
void *tfs_arena_calloc(tfs_arena *a, size_t n, size_t size);
/* Copies len bytes and adds a NUL. */
char *tfs_arena_strndup(tfs_arena *a, const char *s, size_t len);
char *tfs_arena_strdup(tfs_arena *a, const char *s);
/* Bytes handed out since the last reset. */
size_t tfs_arena_used(const tfs_arena *a);
/* Bytes the arena holds from the allocator now (in use or kept for reuse). Safe to call
 * from any thread, e.g. for a memory figure of a batch another thread fills. */
size_t tfs_arena_held(const tfs_arena *a);
/* How many chunks the arena has obtained from the allocator since it was made: a steady
 * run's batches reuse kept chunks and leave this unchanged. For tests and diagnostics. */
size_t tfs_arena_chunks_new(const tfs_arena *a);

#endif
