/* cli/cli_progress.c — following a run to its end (tfsync sync --wait): GET
 * /sync/status/{id} polled, and on a terminal a progress bar redrawn in place (records done
 * of the run's estimated_total, rate, ETA), else plain lines, one per state change and
 * one every few seconds while the counts move, so a log file is neither flooded nor
 * silent; the end line and the exit code of the final state; --timeout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PLAIN_EVERY_S 5.0 /* the most often a plain line repeats moving counts */
#define BAR_WIDTH 24

typedef struct progress {
    FILE *bar;            /* the terminal the bar is drawn on; NULL: plain lines */
    int plain;            /* print plain lines on stdout */
    int drawn;            /* a bar line is on screen without its newline */
    char last[4096];      /* the last plain line */
    char last_state[64];  /* its state */
    double last_at;       /* when it was printed (monotonic seconds) */
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_final(const char *state)
{
    /* Held is where the wait stops too: the run goes on only when someone confirms. */
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0 || strcmp(state, "partial") == 0 ||
           strcmp(state, "held") == 0;
}

static int run_exit_code(const char *state)
{
    if (strcmp(state, "succeeded") == 0)
        return 0;
    if (strcmp(state, "partial") == 0)
        return EXIT_RUN_PARTIAL;
    if (strcmp(state, "held") == 0)
        return EXIT_RUN_HELD;
    return EXIT_RUN_FAILED;
}

static void print_end(const json_t *run, json_int_t id, const char *state)
{
    if (strcmp(state, "succeeded") == 0) {
        printf("run %lld succeeded in %lld ms\n", (long long)id,
               (long long)cli_int_of(run, "elapsed_ms"));
    } else if (strcmp(state, "partial") == 0) {
        printf("run %lld partial: done, with dead letters or parked conflicts (tfsync "
               "dead-letters --run %lld)\n",
               (long long)id, (long long)id);
    } else if (strcmp(state, "held") == 0) {
        const json_t *h = json_object_get(run, "held");
        printf("run %lld held: %s\n", (long long)id, cli_str_of(h, "reason", "?"));
    } else if (strcmp(state, "cancelled") == 0) {
        printf("run %lld cancelled\n", (long long)id);
    } else {
        printf("run %lld failed: %s\n", (long long)id, cli_str_of(run, "error", "?"));
    }
}

/* Records read so far and the run's estimated total: the sums over its entities' progress;
 * *total is -1 unless every entity has an estimate (an incremental run has none). */
static void done_of(const json_t *run, long long *done, long long *total)
{
    *done = 0;
    *total = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(run, "progress"), i, p) {
        *done += (long long)cli_int_of(p, "records_read");
        const json_t *est = json_object_get(p, "estimated_total");
        if (json_is_integer(est) && *total >= 0)
            *total += (long long)json_integer_value(est);
        else
            *total = -1;
    }
    if (json_array_size(json_object_get(run, "progress")) == 0)
        *total = -1;
}

/* "40/100 40% 12.5 rec/s ETA 0:05" (what is known of it). */
static void format_rate(const json_t *run, long long done, long long total, char *out,
                        size_t size)
{
    double secs = (double)cli_int_of(run, "elapsed_ms") / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    int w;
    if (total > 0)
        w = snprintf(out, size, "%lld/%lld %3d%%", done, total,
                     (int)(done >= total ? 100 : done * 100 / total));
    else
        w = snprintf(out, size, "%lld records", done);
    if (w < 0 || (size_t)w >= size)
        return;
    if (rate > 0)
        w += snprintf(out + w, size - (size_t)w, " %.1f rec/s", rate);
    if (rate > 0 && total > done && (size_t)w < size) {
        long eta = (long)((double)(total - done) / rate + 0.5);
        snprintf(out + w, size - (size_t)w, " ETA %ld:%02ld", eta / 60, eta % 60);
    }
}

/* Every entity's counts on one line: "property: read ... ; other: ...". */
static void format_all_counts(const json_t *counts, char *out, size_t size)
{
    const char *entity;
    json_t *n;
    size_t len = 0;
    out[0] = '\0';
    json_object_foreach((json_t *)counts, entity, n) {
        char one[256];
        cli_format_counts(n, one, sizeof one);
        int w = snprintf(out + len, size - len, "%s%s: %s", len ? "; " : "", entity, one);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
    if (!len)
        snprintf(out, size, "no records yet");
}

static void draw_bar(progress *pg, json_int_t id, const json_t *run, const char *state)
{
    long long done, total;
    done_of(run, &done, &total);
    char rate[128], bar[BAR_WIDTH + 3] = "";
    format_rate(run, done, total, rate, sizeof rate);
    if (total > 0) {
        int fill = (int)((done >= total ? total : done) * BAR_WIDTH / total);
        bar[0] = '[';
        for (int k = 0; k < BAR_WIDTH; k++)
            bar[k + 1] = k < fill ? '#' : '-';
        bar[BAR_WIDTH + 1] = ']';
        bar[BAR_WIDTH + 2] = '\0';
    }
    const json_t *w = json_object_get(run, "waiting");
    char line[512];
    snprintf(line, sizeof line, "run %lld %s%s%s%s %s%s%s", (long long)id, state,
             json_is_object(w) ? " (" : "", json_is_object(w) ? cli_str_of(w, "reason", "?") : "",
             json_is_object(w) ? ")" : "", bar, bar[0] ? " " : "", rate);
    char clean[512];
    cli_redact(line, clean, sizeof clean);
    /* \r and clear-to-end-of-line: a shorter line leaves nothing of the longer one. */
    fprintf(pg->bar, "\r%s\033[K", clean);
    fflush(pg->bar);
    pg->drawn = 1;
}

static void plain_line(progress *pg, json_int_t id, const json_t *run, const char *state,
                       int final)
{
    long long done, total;
    done_of(run, &done, &total);
    char counts[3200], rate[128], line[4096];
    format_all_counts(json_object_get(run, "counts"), counts, sizeof counts);
    format_rate(run, done, total, rate, sizeof rate);
    const json_t *w = json_object_get(run, "waiting");
    if (json_is_object(w))
        snprintf(line, sizeof line, "%s (%s): %s", state, cli_str_of(w, "reason", "?"), counts);
    else if (strcmp(state, "queued") == 0)
        snprintf(line, sizeof line, "%s: %s", state, counts);
    else
        snprintf(line, sizeof line, "%s: %s; %s", state, rate, counts);
    double t = now_s();
    int changed = strcmp(state, pg->last_state) != 0;
    if (!changed && !final && (strcmp(line, pg->last) == 0 || t - pg->last_at < PLAIN_EVERY_S))
        return;
    if (!changed && final && strcmp(line, pg->last) == 0)
        return;
    char clean[4096];
    cli_redact(line, clean, sizeof clean);
    printf("run %lld %s\n", (long long)id, clean);
    fflush(stdout);
    snprintf(pg->last, sizeof pg->last, "%s", line);
    snprintf(pg->last_state, sizeof pg->last_state, "%s", state);
    pg->last_at = t;
}

int cli_wait_run(const cli *c, json_int_t id, double timeout_s)
{
    progress pg = {0};
    /* The bar where a person watches: stdout, else stderr (stdout piped to a file). */
    if (isatty(STDOUT_FILENO) && !c->json) /* --json: stdout is for the JSON alone */
        pg.bar = stdout;
    else if (isatty(STDERR_FILENO))
        pg.bar = stderr;
    pg.plain = !pg.bar && !c->json;
    double deadline = timeout_s > 0 ? now_s() + timeout_s : 0;
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    fflush(stdout);
    char state_seen[64] = "?";
    for (;;) {
        /* An error answer while the state store is down (503) is waited out too. */
        answer s = cli_request(c, "GET", path, NULL, 1);
        const char *state = cli_str_of(s.json, "state", NULL);
        if (state) {
            snprintf(state_seen, sizeof state_seen, "%s", state);
            int done = is_final(state);
            if (pg.bar)
                draw_bar(&pg, id, s.json, state);
            else if (pg.plain)
                plain_line(&pg, id, s.json, state, done);
            if (done) {
                if (pg.drawn)
                    fputc('\n', pg.bar);
                if (c->json)
                    cli_print_json(s.json);
                else
                    print_end(s.json, id, state);
                int code = run_exit_code(state);
                cli_answer_free(&s);
                return code;
            }
        }
        cli_answer_free(&s);
        if (deadline > 0 && now_s() >= deadline) {
            if (pg.drawn)
                fputc('\n', pg.bar);
            fflush(stdout);
            cli_errf("run %lld is still %s after --timeout %g s; it goes on (tfsync status "
                     "%lld, tfsync cancel %lld)",
                     (long long)id, state_seen, timeout_s, (long long)id, (long long)id);
            return EXIT_WAIT_TIMEOUT;
        }
        cli_sleep_ms(POLL_MS);
    }
}
