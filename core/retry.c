/* core/retry.c — exponential backoff with full jitter; see retry.h. */
#include "retry.h"

#include <stdint.h>
#include <time.h>

uint64_t tfs_retry_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t local;
    /* The address of a local differs per thread, the clock per call. */
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&local;
}

/* xorshift64*: small, fast, good enough to spread waits; never 0 once seeded. */
static uint64_t next_random(uint64_t *s)
{
    if (*s == 0)
        *s = 0x9E3779B97F4A7C15u;
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Du;
}

int64_t tfs_retry_backoff_ms(const tfs_retry_policy *p, unsigned attempt, uint64_t *rng)
{
    int64_t cap = p->base_ms > 0 ? p->base_ms : 1;
    int64_t max = p->max_backoff_ms > 0 ? p->max_backoff_ms : cap;
    /* Doubling stops at the maximum, so no shift overflows however many attempts. */
    for (unsigned i = 1; i < attempt && cap < max; i++)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap > max)
        cap = max;
    return (int64_t)(next_random(rng) % (uint64_t)(cap + 1));
}

int tfs_retry_sleep(int64_t ms, const atomic_int *stop)
{
    while (ms > 0) {
        if (stop && atomic_load(stop))
            return -1;
        int64_t slice = ms > 100 ? 100 : ms;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return stop && atomic_load(stop) ? -1 : 0;
}
