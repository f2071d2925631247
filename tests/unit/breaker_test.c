/* tests/unit/breaker_test.c — the circuit breaker's states, on the caller's clock. */
#include <criterion/criterion.h>

#include "breaker.h"

static const tfs_breaker_settings SET = {.failures = 3, .first_probe_ms = 100,
                                         .max_probe_interval_ms = 1000};

Test(breaker, opens_after_the_configured_failures_in_a_row)
{
    tfs_breaker *b = tfs_breaker_new("system test", &SET, 0);
    cr_assert(tfs_breaker_allow(b, 0));
    tfs_breaker_failure(b, "connection refused", 1);
    tfs_breaker_failure(b, "connection refused", 2);
    cr_assert_eq(tfs_breaker_get(b).state, TFS_BREAKER_CLOSED, "two failures keep it closed");
    tfs_breaker_success(b, 3);
    tfs_breaker_failure(b, "x", 4);
    tfs_breaker_failure(b, "x", 5);
    cr_assert_eq(tfs_breaker_get(b).state, TFS_BREAKER_CLOSED, "a success resets the count");
    tfs_breaker_failure(b, "server closed the connection", 6);
    tfs_breaker_snapshot s = tfs_breaker_get(b);
    cr_assert_eq(s.state, TFS_BREAKER_OPEN);
    cr_assert_eq(s.failures, 3);
    cr_assert_str_eq(s.last_error, "server closed the connection");
    cr_assert_eq(s.since_ms, 6);
    cr_assert_eq(s.next_probe_ms, 106);
    cr_assert_not(tfs_breaker_allow(b, 7), "an open breaker lets no run through");
    tfs_breaker_free(b);
}

Test(breaker, probes_back_off_up_to_the_maximum)
{
    tfs_breaker *b = tfs_breaker_new("system test", &SET, 0);
    for (int i = 0; i < 3; i++)
        tfs_breaker_failure(b, "down", 0);
    cr_assert_not(tfs_breaker_probe_due(b, 99));
    cr_assert(tfs_breaker_probe_due(b, 100));
    int64_t now = 100, expect[] = {200, 400, 800, 1000, 1000};
    for (int i = 0; i < 5; i++) {
        tfs_breaker_probed(b, false, "still down", now);
        tfs_breaker_snapshot s = tfs_breaker_get(b);
        cr_assert_eq(s.next_probe_ms - now, expect[i], "probe %d: interval %lld, want %lld",
                     i, (long long)(s.next_probe_ms - now), (long long)expect[i]);
        cr_assert_str_eq(s.last_error, "still down");
        now = s.next_probe_ms;
    }
    tfs_breaker_free(b);
}

Test(breaker, half_open_lets_one_run_through)
{
    tfs_breaker *b = tfs_breaker_new("system test", &SET, 0);
    for (int i = 0; i < 3; i++)
        tfs_breaker_failure(b, "down", 0);
    tfs_breaker_probed(b, true, NULL, 150);
    cr_assert_eq(tfs_breaker_get(b).state, TFS_BREAKER_HALF_OPEN);
    cr_assert(tfs_breaker_allow(b, 151), "the first caller is the trial");
    cr_assert_not(tfs_breaker_allow(b, 152), "and only one");
    tfs_breaker_success(b, 160);
    cr_assert_eq(tfs_breaker_get(b).state, TFS_BREAKER_CLOSED);
    cr_assert(tfs_breaker_allow(b, 161));
    cr_assert(tfs_breaker_allow(b, 161));
    tfs_breaker_free(b);
}

Test(breaker, a_failed_trial_opens_it_again_at_once)
{
    tfs_breaker *b = tfs_breaker_new("system test", &SET, 0);
    for (int i = 0; i < 3; i++)
        tfs_breaker_failure(b, "down", 0);
    tfs_breaker_probed(b, true, NULL, 100);
    cr_assert(tfs_breaker_allow(b, 101));
    tfs_breaker_failure(b, "down again", 102);
    tfs_breaker_snapshot s = tfs_breaker_get(b);
    cr_assert_eq(s.state, TFS_BREAKER_OPEN, "one failure of the trial reopens it");
    cr_assert_eq(s.next_probe_ms, 202, "and probing starts again from the first interval");
    tfs_breaker_free(b);
}
