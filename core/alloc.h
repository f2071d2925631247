/* core/alloc.h — the core's allocation functions, with a fault-injection mode for tests.
 *
 * Modules whose out-of-memory paths are tested (arena, buffers, records, canonical encoding,
 * validator, Lua value conversion) allocate through these instead of malloc, the way
 * SQLite routes every allocation through sqlite3_malloc so that its tests can make the Nth
 * one fail. In the daemon injection is off and each call is the libc one.
 */
#ifndef TFS_ALLOC_H
#define TFS_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* malloc, calloc, realloc, strdup and free; NULL on failure (or an injected one). */
void *tfs_malloc(size_t n);
void *tfs_calloc(size_t n, size_t size);
void *tfs_realloc(void *p, size_t n);
char *tfs_strdup(const char *s);
void tfs_free(void *p);

/* True when the allocation about to be made must fail: counts the allocation. For
 * allocators the core does not own (Lua's lua_Alloc, jansson's) to take part. */
bool tfs_alloc_fault(void);

/* How many allocations through these functions have failed on this thread (real failures
 * and injected ones, tfs_alloc_fault included). Note it before calling a library that
 * allocates through them and compare after: jansson, for one, reports an allocation that
 * failed during json_loadb as a syntax error, and only this tells the two apart. */
unsigned long tfs_alloc_failures(void);

/* Routes jansson's allocations through tfs_malloc and tfs_free, so that they take part in
 * fault injection and in tfs_alloc_failures. Call once at start-up, before other threads
 * run. Both end in malloc and free, so memory jansson allocated before is freed right. */
void tfs_alloc_init(void);

/* Test only. From now on the nth allocation (1 = the next one) fails, and, when sticky,
 * every one after it too; n = 0 turns injection off. Counting is process-wide. */
void tfs_alloc_fail_at(unsigned long n, bool sticky);
/* Test only: how many allocations failed by injection since the last tfs_alloc_fail_at. */
unsigned long tfs_alloc_injected(void);

#endif
