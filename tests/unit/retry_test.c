/* tests/unit/retry_test.c — the retry policy: full jitter within the capped exponential. */
#include <criterion/criterion.h>

#include "retry.h"

Test(retry, waits_stay_within_the_capped_exponential)
{
    tfs_retry_policy p = {.base_ms = 100, .max_backoff_ms = 30000};
    uint64_t rng = 12345;
    for (unsigned attempt = 1; attempt <= 200; attempt++) {
        int64_t cap = attempt > 20 ? 30000 : 100LL << (attempt - 1);
        if (cap > 30000)
            cap = 30000;
        for (int i = 0; i < 200; i++) {
            int64_t ms = tfs_retry_backoff_ms(&p, attempt, &rng);
            cr_assert(ms >= 0 && ms <= cap, "attempt %u waited %lld ms, cap %lld", attempt,
                      (long long)ms, (long long)cap);
        }
    }
}

Test(retry, jitter_is_full_from_zero_to_the_cap)
{
    /* Full jitter: short waits happen too, not only waits near the cap (the "equal jitter"
     * of cap/2 + random(cap/2) never goes below half). */
    tfs_retry_policy p = {.base_ms = 1000, .max_backoff_ms = 1000};
    uint64_t rng = 99;
    int low = 0, high = 0;
    for (int i = 0; i < 10000; i++) {
        int64_t ms = tfs_retry_backoff_ms(&p, 5, &rng);
        low += ms < 250;
        high += ms > 750;
    }
    cr_assert(low > 1500 && low < 3500, "%d of 10000 waits under a quarter of the cap", low);
    cr_assert(high > 1500 && high < 3500, "%d of 10000 waits over three quarters", high);
}

Test(retry, the_cap_grows_until_the_maximum)
{
    tfs_retry_policy p = {.base_ms = 10, .max_backoff_ms = 5000};
    uint64_t rng = 7;
    int64_t max_seen[16] = {0};
    for (unsigned a = 1; a < 16; a++)
        for (int i = 0; i < 2000; i++) {
            int64_t ms = tfs_retry_backoff_ms(&p, a, &rng);
            if (ms > max_seen[a])
                max_seen[a] = ms;
        }
    cr_assert_leq(max_seen[1], 10);
    cr_assert_gt(max_seen[5], 80, "attempt 5's cap is 160 ms; saw at most %lld",
                 (long long)max_seen[5]);
    cr_assert_gt(max_seen[15], 4000, "the cap reaches the maximum; saw at most %lld",
                 (long long)max_seen[15]);
}

Test(retry, sleep_ends_early_on_stop)
{
    atomic_int stop = 1;
    cr_assert_eq(tfs_retry_sleep(60000, &stop), -1, "a set stop flag ends the sleep at once");
    atomic_store(&stop, 0);
    cr_assert_eq(tfs_retry_sleep(1, &stop), 0);
}
