/* core/retry.h — the one retry policy of the daemon: exponential backoff with full jitter.
 *
 * Every state-store, source and target call of a run that fails transiently waits before
 * trying again: a random time between 0 and min(max_backoff, base << attempt), the "full
 * jitter" of AWS's backoff study, so that many workers hitting one restarted server do not
 * come back in step. The wait is slept in slices so that a stop request is honoured within
 * one slice. Pure and thread-safe: the random state is the caller's.
 */
#ifndef TFS_RETRY_H
#define TFS_RETRY_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct tfs_retry_policy {
    int64_t base_ms;        /* the cap of the first wait */
    int64_t max_backoff_ms; /* no wait is longer (retry.max_backoff) */
} tfs_retry_policy;

/* A seed for tfs_retry_backoff_ms's random state, different per thread and per call. */
uint64_t tfs_retry_seed(void);

/* The wait before retry number attempt (1-based): uniform in [0, min(max, base << (attempt
 * - 1))]. Advances *rng. */
int64_t tfs_retry_backoff_ms(const tfs_retry_policy *p, unsigned attempt, uint64_t *rng);

/* Sleeps ms in slices of at most 100 ms; returns 0, or -1 as soon as *stop is set (stop may
 * be NULL). */
int tfs_retry_sleep(int64_t ms, const atomic_int *stop);

#endif
