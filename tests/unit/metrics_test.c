/* tests/unit/metrics_test.c — the metrics registry's exposition: counters add up per
 * series, histogram buckets are cumulative and end in +Inf equal to _count, label values
 * are escaped as the text format asks, an unknown method is "other", no route is
 * "unmatched", and series past the bound are dropped and counted instead of growing the
 * registry.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(void)
{
    tfs_buf b = TFS_BUF_INIT;
    cr_assert_eq(tfs_metrics_render(&b), 0);
    char *s = strdup(tfs_buf_str(&b));
    tfs_buf_free(&b);
    return s;
}

static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

Test(metrics, counters_histograms_and_escaping)
{
    tfs_metrics_reset();
    tfs_metrics_batch b = {.read = 10, .written = 7, .unchanged = 2, .failed = 1,
                           .seconds = 0.03, .lua_seconds = 0.01};
    tfs_metrics_batch_committed("a\"b\\c\nd", "property", &b);
    tfs_metrics_batch_committed("a\"b\\c\nd", "property", &b);
    tfs_metrics_http_request("/sync/status/{run_id}", "GET", 200, 0.002);
    tfs_metrics_http_request(NULL, "BREW", 404, 0.0001);
    tfs_metrics_run_ended("p", "full", "succeeded", 2.0);
    char *s = render();
    cr_assert_eq(sample(s, "tfsync_records_read_total{pair=\"a\\\"b\\\\c\\nd\",entity="
                           "\"property\"}"),
                 20, "%s", s);
    cr_assert_eq(sample(s, "tfsync_records_processed_total{pair=\"a\\\"b\\\\c\\nd\",entity="
                           "\"property\",outcome=\"written\"}"),
                 14);
    cr_assert_eq(sample(s, "tfsync_batch_duration_seconds_bucket{pair=\"a\\\"b\\\\c\\nd\","
                           "entity=\"property\",le=\"0.025\"}"),
                 0);
    cr_assert_eq(sample(s, "tfsync_batch_duration_seconds_bucket{pair=\"a\\\"b\\\\c\\nd\","
                           "entity=\"property\",le=\"0.05\"}"),
                 2);
    cr_assert_eq(sample(s, "tfsync_batch_duration_seconds_bucket{pair=\"a\\\"b\\\\c\\nd\","
                           "entity=\"property\",le=\"+Inf\"}"),
                 2);
    cr_assert_eq(sample(s, "tfsync_http_requests_total{route=\"unmatched\",method=\"other\","
                           "status=\"404\"}"),
                 1, "%s", s);
    cr_assert_eq(sample(s, "tfsync_run_duration_seconds_bucket{pair=\"p\",mode=\"full\","
                           "state=\"succeeded\",le=\"1\"}"),
                 0);
    cr_assert_eq(sample(s, "tfsync_run_duration_seconds_bucket{pair=\"p\",mode=\"full\","
                           "state=\"succeeded\",le=\"5\"}"),
                 1);
    cr_assert_eq(sample(s, "tfsync_run_duration_seconds_sum{pair=\"p\",mode=\"full\","
                           "state=\"succeeded\"}"),
                 2);
    free(s);
}

Test(metrics, series_past_the_bound_are_dropped_and_counted)
{
    tfs_metrics_reset();
    tfs_metrics_batch b = {.read = 1};
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "e%d", i);
        tfs_metrics_batch_committed("p", name, &b);
    }
    char *s = render();
    cr_assert_eq(sample(s, "tfsync_records_read_total{pair=\"p\",entity=\"e255\"}"), 1);
    cr_assert_eq(sample(s, "tfsync_records_read_total{pair=\"p\",entity=\"e256\"}"), -1);
    cr_assert_eq(sample(s, "tfsync_metrics_series_dropped_total"), 44, "%s",
                 strstr(s, "dropped"));
    free(s);
    tfs_metrics_reset();
}

Test(metrics, lua_slots_are_given_back)
{
    tfs_metrics_reset();
    int a = tfs_metrics_lua_slot(), b = tfs_metrics_lua_slot();
    cr_assert(a >= 0 && b >= 0 && a != b);
    tfs_metrics_lua_memory(a, 1000);
    tfs_metrics_lua_memory(b, 24);
    char *s = render();
    cr_assert_eq(sample(s, "tfsync_lua_memory_bytes"), 1024);
    free(s);
    tfs_metrics_lua_slot_release(a);
    s = render();
    cr_assert_eq(sample(s, "tfsync_lua_memory_bytes"), 24, "a freed runtime's figure goes");
    free(s);
    /* A reload after another rebuilds the pipelines: the slots are reused, never run out. */
    for (int i = 0; i < 1000; i++) {
        int c = tfs_metrics_lua_slot();
        cr_assert_geq(c, 0);
        tfs_metrics_lua_slot_release(c);
    }
    tfs_metrics_lua_slot_release(b);
}
