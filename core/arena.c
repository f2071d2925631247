/* core/arena.c — chunked bump allocator; see arena.h. */
#include "arena.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"

#define ARENA_CHUNK (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
} chunk;

struct tfs_arena {
    chunk *head;  /* chunk being filled */
    chunk *spare; /* chunks kept from before the last reset */
    size_t used;
    size_t chunks_new; /* chunks obtained from the allocator, for tests */
    atomic_size_t held; /* bytes of the chunks it holds, read from any thread */
};

tfs_arena *tfs_arena_new(void)
{
    return tfs_calloc(1, sizeof(tfs_arena));
}

static void free_chunk(tfs_arena *a, chunk *c)
{
    atomic_fetch_sub_explicit(&a->held, sizeof(chunk) + c->size, memory_order_relaxed);
    tfs_free(c);
}

static void free_chunks(tfs_arena *a, chunk *c)
{
    while (c) {
        chunk *next = c->next;
        free_chunk(a, c);
        c = next;
    }
}

void tfs_arena_free(tfs_arena *a)
{
    if (!a)
        return;
    free_chunks(a, a->head);
    free_chunks(a, a->spare);
    tfs_free(a);
}

void tfs_arena_reset(tfs_arena *a)
{
    /* Move the filled chunks to the spare list; oversized ones are returned to libc so
     * one huge record does not pin its memory for the rest of the run. */
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        if (c->size > ARENA_CHUNK) {
            free_chunk(a, c);
        } else {
            c->used = 0;
            c->next = a->spare;
            a->spare = c;
        }
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

void tfs_arena_trim(tfs_arena *a)
{
    if (!a)
        return;
    free_chunks(a, a->head);
    free_chunks(a, a->spare);
    a->head = a->spare = NULL;
    a->used = 0;
}

void *tfs_arena_alloc(tfs_arena *a, size_t size)
{
    const size_t align = alignof(max_align_t);
    /* Rounding up must not wrap: SIZE_MAX - 3 would become 0 and be served 16 bytes. */
    if (size > SIZE_MAX - (align - 1))
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;
    chunk *c = a->head;
    if (!c || c->size - c->used < size) {
        if (size <= ARENA_CHUNK && a->spare) {
            c = a->spare;
            a->spare = c->next;
        } else {
            size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
            if (cap > SIZE_MAX - sizeof(chunk))
                return NULL;
            c = tfs_malloc(sizeof(chunk) + cap);
            if (!c)
                return NULL;
            c->size = cap;
            a->chunks_new++;
            atomic_fetch_add_explicit(&a->held, sizeof(chunk) + cap, memory_order_relaxed);
        }
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->used += size;
    return p;
}

void *tfs_arena_calloc(tfs_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = tfs_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *tfs_arena_strndup(tfs_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX) /* len + 1 would be 0 */
        return NULL;
    char *p = tfs_arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *tfs_arena_strdup(tfs_arena *a, const char *s)
{
    return tfs_arena_strndup(a, s, strlen(s));
}

size_t tfs_arena_used(const tfs_arena *a)
{
    return a->used;
}

size_t tfs_arena_held(const tfs_arena *a)
{
    return a ? atomic_load_explicit(&a->held, memory_order_relaxed) : 0;
}

size_t tfs_arena_chunks_new(const tfs_arena *a)
{
    return a->chunks_new;
}
