/* core/metrics.c — the metrics registry: fixed tables of series under one mutex, and the
 * Prometheus text exposition of them. Tables are small arrays searched in order: the
 * label sets are bounded by the config (pairs, entities) and by the routes, so a few
 * hundred series at most, and a batch or a request adds to one of them. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 128
#define MAX_ENTITY_SERIES 256
#define MAX_PAIR_SERIES 128
#define MAX_RUN_SERIES 256
#define MAX_HTTP_SERIES 512
#define MAX_LUA_SLOTS 64

static const double batch_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10,  30};
static const double run_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 10800};
static const double http_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,   0.25,   0.5,   1,    2.5,   5};
#define N_BUCKETS 12

typedef struct histogram {
    uint64_t counts[N_BUCKETS]; /* per bucket, not cumulative: summed when rendered */
    uint64_t count;
    double sum;
} histogram;

static void observe(histogram *h, const double *bounds, double v)
{
    int i = 0;
    while (i < N_BUCKETS && v > bounds[i])
        i++;
    if (i < N_BUCKETS)
        h->counts[i]++;
    h->count++;
    h->sum += v;
}

typedef struct entity_series {
    char pair[NAME_MAX_LEN], entity[NAME_MAX_LEN];
    uint64_t read, written, unchanged, skipped, failed, deleted, swept, conflicts;
    double lua_seconds;
    histogram batch;
} entity_series;

typedef struct pair_series {
    char pair[NAME_MAX_LEN];
    int64_t conflicts_open, dead_letters_open;
} pair_series;

typedef struct run_series {
    char pair[NAME_MAX_LEN], mode[16], state[16];
    uint64_t runs;
    histogram duration;
} run_series;

typedef struct http_series {
    const char *route; /* a route table's static template, or "unmatched" */
    const char *method;
    int status;
    uint64_t requests;
    histogram duration;
} http_series;

static struct {
    pthread_mutex_t lock;
    entity_series entities[MAX_ENTITY_SERIES];
    unsigned n_entities;
    pair_series pairs[MAX_PAIR_SERIES];
    unsigned n_pairs;
    run_series runs[MAX_RUN_SERIES];
    unsigned n_runs;
    http_series http[MAX_HTTP_SERIES];
    unsigned n_http;
    uint64_t dropped;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_llong open_connections;
static atomic_bool lua_slot_taken[MAX_LUA_SLOTS];
static atomic_ullong lua_memory[MAX_LUA_SLOTS];
static atomic_ullong batch_memory[MAX_LUA_SLOTS];

static bool fits(const char *s)
{
    return s && strlen(s) < NAME_MAX_LEN;
}

/* Under reg.lock: the series of (pair, entity), made when new; NULL past the bound. */
static entity_series *entity_of(const char *pair, const char *entity)
{
    for (unsigned i = 0; i < reg.n_entities; i++)
        if (strcmp(reg.entities[i].pair, pair) == 0 &&
            strcmp(reg.entities[i].entity, entity) == 0)
            return &reg.entities[i];
    if (reg.n_entities == MAX_ENTITY_SERIES || !fits(pair) || !fits(entity)) {
        reg.dropped++;
        return NULL;
    }
    entity_series *e = &reg.entities[reg.n_entities++];
    memset(e, 0, sizeof *e);
    strcpy(e->pair, pair);
    strcpy(e->entity, entity);
    return e;
}

static uint64_t nonneg(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

void tfs_metrics_batch_committed(const char *pair, const char *entity,
                                 const tfs_metrics_batch *b)
{
    pthread_mutex_lock(&reg.lock);
    entity_series *e = entity_of(pair, entity);
    if (e) {
        e->read += nonneg(b->read);
        e->written += nonneg(b->written);
        e->unchanged += nonneg(b->unchanged);
        e->skipped += nonneg(b->skipped);
        e->failed += nonneg(b->failed);
        e->deleted += nonneg(b->deleted);
        e->swept += nonneg(b->swept);
        e->conflicts += nonneg(b->conflicts);
        e->lua_seconds += b->lua_seconds > 0 ? b->lua_seconds : 0;
        observe(&e->batch, batch_buckets, b->seconds);
    }
    pthread_mutex_unlock(&reg.lock);
}

void tfs_metrics_run_ended(const char *pair, const char *mode, const char *state,
                           double seconds)
{
    pthread_mutex_lock(&reg.lock);
    run_series *r = NULL;
    for (unsigned i = 0; i < reg.n_runs && !r; i++)
        if (strcmp(reg.runs[i].pair, pair) == 0 && strcmp(reg.runs[i].mode, mode) == 0 &&
            strcmp(reg.runs[i].state, state) == 0)
            r = &reg.runs[i];
    if (!r && reg.n_runs < MAX_RUN_SERIES && fits(pair) && strlen(mode) < 16 &&
        strlen(state) < 16) {
        r = &reg.runs[reg.n_runs++];
        memset(r, 0, sizeof *r);
        strcpy(r->pair, pair);
        strcpy(r->mode, mode);
        strcpy(r->state, state);
    }
    if (r) {
        r->runs++;
        observe(&r->duration, run_buckets, seconds);
    } else {
        reg.dropped++;
    }
    pthread_mutex_unlock(&reg.lock);
}

void tfs_metrics_pair_open(const char *pair, int64_t conflicts, int64_t dead_letters)
{
    pthread_mutex_lock(&reg.lock);
    pair_series *p = NULL;
    for (unsigned i = 0; i < reg.n_pairs && !p; i++)
        if (strcmp(reg.pairs[i].pair, pair) == 0)
            p = &reg.pairs[i];
    if (!p && reg.n_pairs < MAX_PAIR_SERIES && fits(pair)) {
        p = &reg.pairs[reg.n_pairs++];
        strcpy(p->pair, pair);
    }
    if (p) {
        p->conflicts_open = conflicts;
        p->dead_letters_open = dead_letters;
    } else {
        reg.dropped++;
    }
    pthread_mutex_unlock(&reg.lock);
}

/* A client's method as one of a fixed set: anything else is "other". */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",    "HEAD",  "POST",    "PUT",
                                        "DELETE", "PATCH", "OPTIONS", NULL};
    for (int i = 0; m && known[i]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

void tfs_metrics_http_request(const char *route, const char *method, int status,
                              double seconds)
{
    const char *rt = route ? route : "unmatched";
    const char *m = method_label(method);
    if (status < 100 || status > 599)
        status = 0;
    pthread_mutex_lock(&reg.lock);
    http_series *h = NULL;
    /* Routes are static strings: their addresses tell them apart, then their text. */
    for (unsigned i = 0; i < reg.n_http && !h; i++)
        if (reg.http[i].status == status && reg.http[i].method == m &&
            (reg.http[i].route == rt || strcmp(reg.http[i].route, rt) == 0))
            h = &reg.http[i];
    if (!h && reg.n_http < MAX_HTTP_SERIES) {
        h = &reg.http[reg.n_http++];
        memset(h, 0, sizeof *h);
        h->route = rt;
        h->method = m;
        h->status = status;
    }
    if (h) {
        h->requests++;
        observe(&h->duration, http_buckets, seconds);
    } else {
        reg.dropped++;
    }
    pthread_mutex_unlock(&reg.lock);
}

void tfs_metrics_connection(int delta)
{
    atomic_fetch_add(&open_connections, delta);
}

int tfs_metrics_lua_slot(void)
{
    for (int i = 0; i < MAX_LUA_SLOTS; i++)
        if (!atomic_exchange(&lua_slot_taken[i], true))
            return i;
    return -1;
}

void tfs_metrics_lua_slot_release(int slot)
{
    if (slot < 0 || slot >= MAX_LUA_SLOTS)
        return;
    atomic_store(&lua_memory[slot], 0);
    atomic_store(&batch_memory[slot], 0);
    atomic_store(&lua_slot_taken[slot], false);
}

void tfs_metrics_lua_memory(int slot, uint64_t bytes)
{
    if (slot >= 0 && slot < MAX_LUA_SLOTS)
        atomic_store(&lua_memory[slot], bytes);
}

void tfs_metrics_batch_memory(int slot, uint64_t bytes)
{
    if (slot >= 0 && slot < MAX_LUA_SLOTS)
        atomic_store(&batch_memory[slot], bytes);
}

void tfs_metrics_reset(void)
{
    pthread_mutex_lock(&reg.lock);
    reg.n_entities = reg.n_pairs = reg.n_runs = reg.n_http = 0;
    reg.dropped = 0;
    pthread_mutex_unlock(&reg.lock);
    for (int i = 0; i < MAX_LUA_SLOTS; i++) {
        atomic_store(&lua_memory[i], 0);
        atomic_store(&batch_memory[i], 0);
    }
}

/* ---- exposition ----------------------------------------------------------------------- */

void tfs_metrics_family(tfs_buf *out, const char *name, const char *type, const char *help)
{
    tfs_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with backslash, quote and newline escaped, as the text format asks. */
static void put_label_value(tfs_buf *out, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\')
            tfs_buf_puts(out, "\\\\");
        else if (*p == '"')
            tfs_buf_puts(out, "\\\"");
        else if (*p == '\n')
            tfs_buf_puts(out, "\\n");
        else
            tfs_buf_putc(out, *p);
    }
}

static void put_value(tfs_buf *out, double v)
{
    if (isnan(v))
        tfs_buf_puts(out, "NaN");
    else if (isinf(v))
        tfs_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 9e15)
        tfs_buf_printf(out, "%lld", (long long)v);
    else
        tfs_buf_printf(out, "%.17g", v);
}

static void put_sample(tfs_buf *out, const char *name, const char *suffix,
                       const char *const *labels, unsigned n_labels, const char *le,
                       double value)
{
    tfs_buf_puts(out, name);
    tfs_buf_puts(out, suffix);
    if (n_labels || le) {
        tfs_buf_putc(out, '{');
        for (unsigned i = 0; i < n_labels; i++) {
            tfs_buf_printf(out, "%s%s=\"", i ? "," : "", labels[2 * i]);
            put_label_value(out, labels[2 * i + 1]);
            tfs_buf_putc(out, '"');
        }
        if (le)
            tfs_buf_printf(out, "%sle=\"%s\"", n_labels ? "," : "", le);
        tfs_buf_putc(out, '}');
    }
    tfs_buf_putc(out, ' ');
    put_value(out, value);
    tfs_buf_putc(out, '\n');
}

void tfs_metrics_sample(tfs_buf *out, const char *name, const char *const *labels,
                        unsigned n_labels, double value)
{
    put_sample(out, name, "", labels, n_labels, NULL, value);
}

static void put_histogram(tfs_buf *out, const char *name, const char *const *labels,
                          unsigned n_labels, const histogram *h, const double *bounds)
{
    uint64_t cum = 0;
    for (int i = 0; i < N_BUCKETS; i++) {
        char le[32];
        cum += h->counts[i];
        snprintf(le, sizeof le, "%g", bounds[i]);
        put_sample(out, name, "_bucket", labels, n_labels, le, (double)cum);
    }
    put_sample(out, name, "_bucket", labels, n_labels, "+Inf", (double)h->count);
    put_sample(out, name, "_sum", labels, n_labels, NULL, h->sum);
    put_sample(out, name, "_count", labels, n_labels, NULL, (double)h->count);
}

static void render_records(tfs_buf *out)
{
    tfs_metrics_family(out, "tfsync_records_read_total", "counter",
                       "Records read from the source, per pair and source entity, in "
                       "committed batches.");
    for (unsigned i = 0; i < reg.n_entities; i++) {
        const entity_series *e = &reg.entities[i];
        const char *l[] = {"pair", e->pair, "entity", e->entity};
        tfs_metrics_sample(out, "tfsync_records_read_total", l, 2, (double)e->read);
    }
    tfs_metrics_family(out, "tfsync_records_processed_total", "counter",
                       "What committed batches did with the records of a pair's entity, by "
                       "outcome (written, unchanged, skipped, failed, deleted, swept, "
                       "conflict).");
    for (unsigned i = 0; i < reg.n_entities; i++) {
        const entity_series *e = &reg.entities[i];
        const struct {
            const char *outcome;
            uint64_t n;
        } o[] = {{"written", e->written}, {"unchanged", e->unchanged},
                 {"skipped", e->skipped}, {"failed", e->failed},
                 {"deleted", e->deleted}, {"swept", e->swept},
                 {"conflict", e->conflicts}};
        for (unsigned k = 0; k < sizeof o / sizeof o[0]; k++) {
            const char *l[] = {"pair", e->pair, "entity", e->entity, "outcome", o[k].outcome};
            tfs_metrics_sample(out, "tfsync_records_processed_total", l, 3, (double)o[k].n);
        }
    }
    tfs_metrics_family(out, "tfsync_batch_duration_seconds", "histogram",
                       "Time of a committed batch from the start of its read to the end of "
                       "its commit.");
    for (unsigned i = 0; i < reg.n_entities; i++) {
        const entity_series *e = &reg.entities[i];
        const char *l[] = {"pair", e->pair, "entity", e->entity};
        put_histogram(out, "tfsync_batch_duration_seconds", l, 2, &e->batch, batch_buckets);
    }
    tfs_metrics_family(out, "tfsync_lua_seconds_total", "counter",
                       "Time spent in the Lua transforms of committed batches.");
    for (unsigned i = 0; i < reg.n_entities; i++) {
        const entity_series *e = &reg.entities[i];
        const char *l[] = {"pair", e->pair, "entity", e->entity};
        tfs_metrics_sample(out, "tfsync_lua_seconds_total", l, 2, e->lua_seconds);
    }
}

static void render_runs(tfs_buf *out)
{
    tfs_metrics_family(out, "tfsync_runs_total", "counter",
                       "Runs and jobs of a pair that ended, by mode and final state.");
    for (unsigned i = 0; i < reg.n_runs; i++) {
        const run_series *r = &reg.runs[i];
        const char *l[] = {"pair", r->pair, "mode", r->mode, "state", r->state};
        tfs_metrics_sample(out, "tfsync_runs_total", l, 3, (double)r->runs);
    }
    tfs_metrics_family(out, "tfsync_run_duration_seconds", "histogram",
                       "Time of a run's execution from its start on a worker to its final "
                       "state.");
    for (unsigned i = 0; i < reg.n_runs; i++) {
        const run_series *r = &reg.runs[i];
        const char *l[] = {"pair", r->pair, "mode", r->mode, "state", r->state};
        put_histogram(out, "tfsync_run_duration_seconds", l, 3, &r->duration, run_buckets);
    }
    tfs_metrics_family(out, "tfsync_conflicts_open", "gauge",
                       "Open conflicts of a pair, as counted at start-up and at its last "
                       "run's end.");
    for (unsigned i = 0; i < reg.n_pairs; i++) {
        const char *l[] = {"pair", reg.pairs[i].pair};
        tfs_metrics_sample(out, "tfsync_conflicts_open", l, 1,
                           (double)reg.pairs[i].conflicts_open);
    }
    tfs_metrics_family(out, "tfsync_dead_letters_open", "gauge",
                       "Open dead letters of a pair, as counted at start-up and at its last "
                       "run's end.");
    for (unsigned i = 0; i < reg.n_pairs; i++) {
        const char *l[] = {"pair", reg.pairs[i].pair};
        tfs_metrics_sample(out, "tfsync_dead_letters_open", l, 1,
                           (double)reg.pairs[i].dead_letters_open);
    }
}

static void render_http(tfs_buf *out)
{
    tfs_metrics_family(out, "tfsync_http_requests_total", "counter",
                       "HTTP requests answered, by route template, method and status.");
    for (unsigned i = 0; i < reg.n_http; i++) {
        const http_series *h = &reg.http[i];
        char st[8];
        snprintf(st, sizeof st, "%d", h->status);
        const char *l[] = {"route", h->route, "method", h->method, "status", st};
        tfs_metrics_sample(out, "tfsync_http_requests_total", l, 3, (double)h->requests);
    }
    tfs_metrics_family(out, "tfsync_http_request_duration_seconds", "histogram",
                       "Time from a request's headers to its answer, by route template, "
                       "method and status.");
    for (unsigned i = 0; i < reg.n_http; i++) {
        const http_series *h = &reg.http[i];
        char st[8];
        snprintf(st, sizeof st, "%d", h->status);
        const char *l[] = {"route", h->route, "method", h->method, "status", st};
        put_histogram(out, "tfsync_http_request_duration_seconds", l, 3, &h->duration,
                      http_buckets);
    }
    tfs_metrics_family(out, "tfsync_http_open_connections", "gauge",
                       "HTTP connections open now.");
    tfs_metrics_sample(out, "tfsync_http_open_connections", NULL, 0,
                       (double)atomic_load(&open_connections));
}

static void render_process(tfs_buf *out)
{
    uint64_t lua = 0, batches = 0;
    for (int i = 0; i < MAX_LUA_SLOTS; i++) {
        lua += atomic_load(&lua_memory[i]);
        batches += atomic_load(&batch_memory[i]);
    }
    tfs_metrics_family(out, "tfsync_lua_memory_bytes", "gauge",
                       "Memory in use by the workers' Lua runtimes, as of their last batch.");
    tfs_metrics_sample(out, "tfsync_lua_memory_bytes", NULL, 0, (double)lua);
    tfs_metrics_family(out, "tfsync_batch_memory_bytes", "gauge",
                       "Memory the workers hold for batches in flight, as of their last "
                       "batch; a worker gives it back when its run ends.");
    tfs_metrics_sample(out, "tfsync_batch_memory_bytes", NULL, 0, (double)batches);
    tfs_metrics_family(out, "tfsync_metrics_series_dropped_total", "counter",
                       "Updates not counted because a series table was full.");
    tfs_metrics_sample(out, "tfsync_metrics_series_dropped_total", NULL, 0,
                       (double)reg.dropped);
    /* The process figures every Prometheus client library exports, by their usual names. */
    unsigned long long vsize = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsize, &rss) != 2)
            vsize = rss = 0;
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    tfs_metrics_family(out, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.");
    tfs_metrics_sample(out, "process_resident_memory_bytes", NULL, 0,
                       (double)rss * (double)(page > 0 ? page : 4096));
    tfs_metrics_family(out, "process_virtual_memory_bytes", "gauge",
                       "Virtual memory size in bytes.");
    tfs_metrics_sample(out, "process_virtual_memory_bytes", NULL, 0,
                       (double)vsize * (double)(page > 0 ? page : 4096));
}

int tfs_metrics_render(tfs_buf *out)
{
    pthread_mutex_lock(&reg.lock);
    render_records(out);
    render_runs(out);
    render_http(out);
    render_process(out);
    pthread_mutex_unlock(&reg.lock);
    return out->oom ? -1 : 0;
}
