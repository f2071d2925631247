/* core/alloc.c — allocation with fault injection for tests; see alloc.h. */
#include "alloc.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fail_at;   /* 0: off; else the count at which allocations fail */
static atomic_ulong counter;   /* allocations since tfs_alloc_fail_at */
static atomic_ulong injected;  /* failures injected since tfs_alloc_fail_at */
static atomic_bool sticky_mode;
static _Thread_local unsigned long failures; /* see tfs_alloc_failures */

/* p, counting a failure when it is NULL. */
static void *counted(void *p)
{
    if (!p)
        failures++;
    return p;
}

unsigned long tfs_alloc_failures(void)
{
    return failures;
}

bool tfs_alloc_fault(void)
{
    unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at == 0)
        return false;
    unsigned long n = atomic_fetch_add(&counter, 1) + 1;
    if (n == at || (n > at && atomic_load(&sticky_mode))) {
        atomic_fetch_add(&injected, 1);
        failures++;
        return true;
    }
    return false;
}

void tfs_alloc_fail_at(unsigned long n, bool sticky)
{
    atomic_store(&fail_at, 0);
    atomic_store(&counter, 0);
    atomic_store(&injected, 0);
    atomic_store(&sticky_mode, sticky);
    atomic_store(&fail_at, n);
}

unsigned long tfs_alloc_injected(void)
{
    return atomic_load(&injected);
}

void *tfs_malloc(size_t n)
{
    return tfs_alloc_fault() ? NULL : counted(malloc(n));
}

void *tfs_calloc(size_t n, size_t size)
{
    return tfs_alloc_fault() ? NULL : counted(calloc(n, size));
}

void *tfs_realloc(void *p, size_t n)
{
    if (tfs_alloc_fault())
        return NULL;
    void *q = realloc(p, n);
    return n ? counted(q) : q; /* realloc(p, 0) may give NULL without failing */
}

char *tfs_strdup(const char *s)
{
    return tfs_alloc_fault() ? NULL : counted(strdup(s));
}

void tfs_free(void *p)
{
    free(p);
}

void tfs_alloc_init(void)
{
    json_set_alloc_funcs(tfs_malloc, tfs_free);
}
