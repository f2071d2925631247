/* core/status_cache.c — the status answers kept in memory; see status_cache.h.
 *
 * Two locks, never held together by a reader: c->lock guards the model (what the store
 * said, the sampled health and schedule) and is held while answers are built; c->pub_lock
 * guards only the pointer to the published answers, held by a reader for as long as it
 * takes a reference and by a builder for as long as it swaps the pointer. */
#include "status_cache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_views.h"
#include "tfs_limits.h"

/* ---- built answers -------------------------------------------------------------------- */

struct tfs_status_body {
    atomic_int refs;
    size_t len;
    char etag[24];
    char bytes[];
};

tfs_status_body *tfs_status_body_new(const json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    tfs_status_body *b = malloc(sizeof *b + len + 1);
    if (b) {
        atomic_init(&b->refs, 1);
        b->len = len;
        memcpy(b->bytes, text, len + 1);
        /* FNV-1a over the bytes: equal bytes, equal tag; a change, another one. */
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
        snprintf(b->etag, sizeof b->etag, "\"%016" PRIx64 "\"", h);
    }
    free(text);
    return b;
}

const char *tfs_status_body_bytes(const tfs_status_body *b, size_t *len)
{
    *len = b->len;
    return b->bytes;
}

const char *tfs_status_body_etag(const tfs_status_body *b)
{
    return b->etag;
}

tfs_status_body *tfs_status_body_ref(tfs_status_body *b)
{
    if (b)
        atomic_fetch_add(&b->refs, 1);
    return b;
}

void tfs_status_body_release(void *p)
{
    tfs_status_body *b = p;
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* ---- the model -------------------------------------------------------------------------- */

/* At most this many runs are held; the oldest touched that is no pair's last run goes. */
#define MAX_RUNS 128
/* Runs a listener could not read back, read by the refresher at its next tick. */
#define MAX_PENDING 64
#define TICK_MS 100

typedef struct run_entry {
    int64_t id;
    char pair[128];
    json_t *run;       /* the store's view of it (store_views.h) */
    uint64_t pushed;   /* gen of the last read by a listener; 0: only refreshed */
    uint64_t used;     /* gen of the last read of it (which goes first) */
    int dirty;         /* its answer must be built again */
    tfs_status_body *body;
} run_entry;

typedef struct pair_state {
    char name[128];
    json_t *cursors;   /* {entity: {kind: ...}} */
    uint64_t pushed;
    int64_t last_run;  /* 0: none */
    uint64_t last_pushed;
} pair_state;

/* What readers see, swapped whole. */
typedef struct published {
    tfs_config *cfg; /* a reference: the config the answers were built for */
    tfs_status_body *status; /* NULL until the store first answered */
    size_t n;
    struct pub_run {
        int64_t id;
        tfs_status_body *body;
    } runs[MAX_RUNS];
} published;

struct tfs_status_cache {
    tfs_config_slot *slot;
    tfs_health *health;
    tfs_runner *runner;

    pthread_mutex_t lock; /* the model and the builds */
    uint64_t gen;
    int loaded;           /* the store answered a refresh once */
    char as_of[40];       /* when it last did, ISO */
    run_entry runs[MAX_RUNS];
    size_t n_runs;
    pair_state *pairs;
    size_t n_pairs, cap_pairs;
    json_t *volatile_parts; /* {"systems": {name: health}, "lag": {pair: {entity: lag}},
                             * "next": {pair: ms}} as last sampled */
    char *volatile_sig;     /* the same without the figures that age by themselves */
    int64_t pending[MAX_PENDING];
    size_t n_pending;
    int pending_all; /* a listener's read was lost: refresh everything now */

    pthread_mutex_t pub_lock;
    published *pub;

    pthread_t thread;
    int started;
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    int poked, stop;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_now(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static run_entry *find_run(tfs_status_cache *c, int64_t id)
{
    for (size_t i = 0; i < c->n_runs; i++)
        if (c->runs[i].id == id)
            return &c->runs[i];
    return NULL;
}

static pair_state *find_pair(tfs_status_cache *c, const char *name, int add)
{
    for (size_t i = 0; i < c->n_pairs; i++)
        if (strcmp(c->pairs[i].name, name) == 0)
            return &c->pairs[i];
    if (!add)
        return NULL;
    if (c->n_pairs == c->cap_pairs) {
        size_t cap = c->cap_pairs ? c->cap_pairs * 2 : 8;
        pair_state *p = realloc(c->pairs, cap * sizeof *p);
        if (!p)
            return NULL;
        c->pairs = p;
        c->cap_pairs = cap;
    }
    pair_state *p = &c->pairs[c->n_pairs++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static int is_last_run(tfs_status_cache *c, int64_t id)
{
    for (size_t i = 0; i < c->n_pairs; i++)
        if (c->pairs[i].last_run == id)
            return 1;
    return 0;
}

static void drop_run(tfs_status_cache *c, size_t i)
{
    json_decref(c->runs[i].run);
    tfs_status_body_release(c->runs[i].body);
    c->runs[i] = c->runs[--c->n_runs];
}

/* The entry of run id, made (the least recently read one given up when full). */
static run_entry *take_run(tfs_status_cache *c, int64_t id)
{
    run_entry *e = find_run(c, id);
    if (e)
        return e;
    if (c->n_runs == MAX_RUNS) {
        size_t victim = MAX_RUNS;
        for (size_t i = 0; i < c->n_runs; i++)
            if (!is_last_run(c, c->runs[i].id) &&
                (victim == MAX_RUNS || c->runs[i].used < c->runs[victim].used))
                victim = i;
        if (victim == MAX_RUNS)
            return NULL;
        drop_run(c, victim);
    }
    e = &c->runs[c->n_runs++];
    memset(e, 0, sizeof *e);
    e->id = id;
    return e;
}

/* Sets an entry's run (taking the reference), marking its answer to build when it
 * changed. */
static void set_run(run_entry *e, json_t *run, uint64_t gen)
{
    e->used = gen;
    const char *pair = json_string_value(json_object_get(run, "pair"));
    snprintf(e->pair, sizeof e->pair, "%s", pair ? pair : "");
    if (e->run && json_equal(e->run, run)) {
        json_decref(run);
        return;
    }
    json_decref(e->run);
    e->run = run;
    e->dirty = 1;
}

/* A pair's cursors changed: its runs' progress may have. */
static void set_cursors(tfs_status_cache *c, pair_state *p, json_t *cursors)
{
    if (p->cursors && json_equal(p->cursors, cursors)) {
        json_decref(cursors);
        return;
    }
    json_decref(p->cursors);
    p->cursors = cursors;
    for (size_t i = 0; i < c->n_runs; i++)
        if (strcmp(c->runs[i].pair, p->name) == 0)
            c->runs[i].dirty = 1;
}

/* ---- the answers -------------------------------------------------------------------- */

json_t *tfs_status_run_json(const tfs_config *cfg, const json_t *run, const json_t *cursors,
                            const char *as_of)
{
    json_t *out = json_deep_copy(run);
    if (!out)
        return NULL;
    /* Progress: records read so far per entity and which mappings are done. */
    const tfs_config_pair *p =
        tfs_config_pair_get(cfg, json_string_value(json_object_get(run, "pair")));
    json_int_t id = json_integer_value(json_object_get(run, "run_id"));
    if (p) {
        json_t *progress = json_array();
        const char *state = json_string_value(json_object_get(run, "state"));
        for (size_t i = 0; i < p->n_entities; i++) {
            const char *ent = p->entities[i].source;
            json_t *full = json_object_get(json_object_get(cursors, ent), "full");
            int mine = full && json_integer_value(json_object_get(full, "run_id")) == id;
            json_t *cnt = json_object_get(json_object_get(run, "counts"), ent);
            int done = (mine && json_is_true(json_object_get(full, "done"))) ||
                       (state && strcmp(state, "succeeded") == 0);
            /* A full run's estimate of the entity (SDK 1.3), null when none. */
            json_t *est = json_object_get(json_object_get(run, "estimated_totals"), ent);
            json_array_append_new(
                progress,
                json_pack("{sssIsbsO}", "entity", ent, "records_read",
                          cnt ? json_integer_value(json_object_get(cnt, "read")) : 0, "done",
                          done, "estimated_total", json_is_integer(est) ? est : json_null()));
        }
        json_object_set_new(out, "progress", progress);
    }
    if (as_of)
        json_object_set_new(out, "as_of", json_string(as_of));
    return out;
}

/* Per entity of a pair: its change checkpoint and how many changes wait behind it, as the
 * source's prober last counted them (with their age), when the plugin can tell. */
static json_t *pair_entities(const tfs_config_pair *p, const json_t *cursors, const json_t *lag)
{
    json_t *out = json_object();
    for (size_t e = 0; e < p->n_entities; e++) {
        const char *ent = p->entities[e].source;
        json_t *ch = json_object_get(json_object_get(cursors, ent), "changes");
        json_t *checkpoint = ch ? json_pack("{sOsO}", "run_id", json_object_get(ch, "run_id"),
                                            "updated_at", json_object_get(ch, "updated_at"))
                                : json_null();
        json_t *l = ch ? json_object_get(lag, ent) : NULL;
        json_object_set_new(out, ent, json_pack("{sosO}", "checkpoint", checkpoint, "lag",
                                                l ? l : json_null()));
    }
    return out;
}

static json_t *status_json(tfs_status_cache *c, const tfs_config *cfg)
{
    json_t *pairs = json_object();
    json_t *systems = json_object_get(c->volatile_parts, "systems");
    json_t *lags = json_object_get(c->volatile_parts, "lag");
    json_t *next = json_object_get(c->volatile_parts, "next");
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const tfs_config_pair *p = &cfg->pairs[i];
        pair_state *ps = find_pair(c, p->name, 0);
        run_entry *e = ps && ps->last_run ? find_run(c, ps->last_run) : NULL;
        json_t *lr = e ? e->run : NULL;
        json_t *cursors = ps && ps->cursors ? json_incref(ps->cursors) : json_object();
        json_t *entities = pair_entities(p, cursors, json_object_get(lags, p->name));
        json_t *o = json_pack("{sssssOsoso}", "source", p->source, "target", p->target,
                              "last_run", lr ? lr : json_null(), "cursors", cursors,
                              "entities", entities);
        if (p->incremental_every_ms) {
            json_object_set_new(o, "schedule", json_pack("{ss}", "incremental_every",
                                                         p->incremental_every));
            int64_t at = json_integer_value(json_object_get(next, p->name));
            char iso[40] = "";
            if (at > 0) {
                time_t secs = (time_t)(at / 1000);
                struct tm tm;
                gmtime_r(&secs, &tm);
                strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
                snprintf(iso + strlen(iso), sizeof iso - strlen(iso), ".%03dZ",
                         (int)(at % 1000));
            }
            json_object_set_new(o, "next_run_at", iso[0] ? json_string(iso) : json_null());
        } else {
            json_object_set_new(o, "schedule", json_null());
            json_object_set_new(o, "next_run_at", json_null());
        }
        const char *lst = lr ? json_string_value(json_object_get(lr, "state")) : NULL;
        json_object_set_new(o, "running",
                            json_boolean(lst && (strcmp(lst, "running") == 0 ||
                                                 strcmp(lst, "queued") == 0 ||
                                                 strcmp(lst, "waiting") == 0)));
        json_t *sys = json_object();
        json_t *hs = json_object_get(systems, p->source), *ht = json_object_get(systems, p->target);
        if (hs)
            json_object_set(sys, p->source, hs);
        if (ht && strcmp(p->source, p->target) != 0)
            json_object_set(sys, p->target, ht);
        json_object_set_new(o, "systems", sys);
        json_object_set_new(pairs, p->name, o);
    }
    return json_pack("{soss}", "pairs", pairs, "as_of", c->as_of);
}

static void published_free(published *p)
{
    if (!p)
        return;
    tfs_status_body_release(p->status);
    for (size_t i = 0; i < p->n; i++)
        tfs_status_body_release(p->runs[i].body);
    tfs_config_free(p->cfg);
    free(p);
}

static int by_id(const void *a, const void *b)
{
    int64_t x = ((const struct pub_run *)a)->id, y = ((const struct pub_run *)b)->id;
    return x < y ? -1 : x > y;
}

/* Builds what changed for cfg (under c->lock) and publishes it. A build that runs out of
 * memory keeps the answers published before. */
static void build(tfs_status_cache *c, tfs_config *cfg)
{
    published *old_pub;
    pthread_mutex_lock(&c->pub_lock);
    old_pub = c->pub;
    pthread_mutex_unlock(&c->pub_lock);
    int cfg_changed = !old_pub || old_pub->cfg != cfg;
    published *np = calloc(1, sizeof *np);
    if (!np)
        return;
    np->cfg = tfs_config_retain(cfg);
    if (c->loaded) {
        json_t *st = status_json(c, cfg);
        np->status = st ? tfs_status_body_new(st) : NULL;
        json_decref(st);
        if (!np->status) {
            published_free(np);
            return;
        }
    }
    for (size_t i = 0; i < c->n_runs; i++) {
        run_entry *e = &c->runs[i];
        if (e->dirty || cfg_changed || !e->body) {
            pair_state *ps = find_pair(c, e->pair, 0);
            json_t *j = tfs_status_run_json(cfg, e->run, ps ? ps->cursors : NULL, c->as_of);
            tfs_status_body *b = j ? tfs_status_body_new(j) : NULL;
            json_decref(j);
            if (!b)
                continue; /* out of memory: not published; the store is asked */
            tfs_status_body_release(e->body);
            e->body = b;
            e->dirty = 0;
        }
        np->runs[np->n].id = e->id;
        np->runs[np->n++].body = tfs_status_body_ref(e->body);
    }
    qsort(np->runs, np->n, sizeof np->runs[0], by_id);
    pthread_mutex_lock(&c->pub_lock);
    old_pub = c->pub;
    c->pub = np;
    pthread_mutex_unlock(&c->pub_lock);
    published_free(old_pub); /* readers hold references to the bodies they serve */
}

/* ---- what the store says ------------------------------------------------------------ */

static void poke(tfs_status_cache *c)
{
    pthread_mutex_lock(&c->wake_lock);
    c->poked = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->wake_lock);
}

/* The store's run listener: the run just committed is read back on the committing thread
 * and connection, and the answers built before that thread goes on, so the next GET
 * shows it. */
static void on_run_changed(void *ctx, tfs_store *s, int64_t run_id)
{
    tfs_status_cache *c = ctx;
    json_t *o = NULL;
    tfs_error err = {0};
    int rc = tfs_store_idle(s) ? tfs_store_views_run_and_cursors(s, run_id, &o, &err) : -1;
    pthread_mutex_lock(&c->lock);
    if (rc != 0) {
        /* Not readable here (inside the caller's transaction, or the store just failed):
         * the refresher reads it at its next tick. */
        if (c->n_pending < MAX_PENDING)
            c->pending[c->n_pending++] = run_id;
        else
            c->pending_all = 1;
        pthread_mutex_unlock(&c->lock);
        json_decref(o);
        poke(c);
        return;
    }
    uint64_t gen = ++c->gen;
    json_t *run = json_incref(json_object_get(o, "run"));
    const char *pair = json_string_value(json_object_get(run, "pair"));
    pair_state *ps = pair ? find_pair(c, pair, 1) : NULL;
    if (ps) {
        ps->pushed = gen;
        set_cursors(c, ps, json_incref(json_object_get(o, "cursors")));
        if (run_id >= ps->last_run) {
            ps->last_run = run_id;
            ps->last_pushed = gen;
        }
    }
    run_entry *e = take_run(c, run_id);
    if (e) {
        e->pushed = gen;
        set_run(e, run, gen);
    } else {
        json_decref(run);
    }
    tfs_config *cfg = tfs_config_slot_get(c->slot);
    build(c, cfg);
    tfs_config_free(cfg);
    pthread_mutex_unlock(&c->lock);
    json_decref(o);
}

/* Everything again from the store on the refresher's connection: the last run of every
 * pair, every cursor, and the runs held. What a listener read after this began is newer
 * and kept. 0, or the store's error. */
static int refresh(tfs_status_cache *c, tfs_store **s, tfs_config *cfg)
{
    const char *conninfo = cfg->state_conninfo;
    tfs_error err = {0};
    int64_t ids[MAX_RUNS + MAX_PENDING];
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    uint64_t start = c->gen;
    for (size_t i = 0; i < c->n_runs; i++)
        ids[n++] = c->runs[i].id;
    for (size_t i = 0; i < c->n_pending; i++)
        ids[n++] = c->pending[i];
    size_t n_pending = c->n_pending;
    c->n_pending = 0;
    c->pending_all = 0;
    pthread_mutex_unlock(&c->lock);

    json_t *last = NULL, *cursors = NULL, *runs = NULL;
    int rc = 0;
    if (!*s)
        rc = tfs_store_open(conninfo, s, &err);
    if (rc == 0)
        rc = tfs_store_views_last_runs(*s, &last, &err);
    if (rc == 0)
        rc = tfs_store_views_all_cursors(*s, &cursors, &err);
    if (rc == 0)
        rc = tfs_store_views_runs(*s, ids, n, &runs, &err);
    if (rc) {
        json_decref(last);
        json_decref(cursors);
        json_decref(runs);
        tfs_store_close(*s); /* a fresh connection at the next try */
        *s = NULL;
        pthread_mutex_lock(&c->lock);
        /* The runs not read yet stay pending. */
        for (size_t i = n - n_pending; i < n && c->n_pending < MAX_PENDING; i++)
            c->pending[c->n_pending++] = ids[i];
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    uint64_t gen = ++c->gen;
    /* The last runs: a pair's, unless a listener set it since. */
    for (size_t i = 0; i < c->n_pairs; i++) {
        pair_state *ps = &c->pairs[i];
        json_t *lr = json_object_get(last, ps->name);
        if (ps->last_pushed <= start)
            ps->last_run = lr ? json_integer_value(json_object_get(lr, "run_id")) : 0;
        if (ps->pushed <= start) {
            json_t *pc = json_object_get(cursors, ps->name);
            set_cursors(c, ps, pc ? json_incref(pc) : json_object());
        }
    }
    const char *name;
    json_t *v;
    json_object_foreach(cursors, name, v) {
        pair_state *ps = find_pair(c, name, 0);
        if (!ps && (ps = find_pair(c, name, 1)))
            set_cursors(c, ps, json_incref(v));
    }
    json_object_foreach(last, name, v) {
        pair_state *ps = find_pair(c, name, 0);
        if (!ps && (ps = find_pair(c, name, 1)))
            ps->last_run = json_integer_value(json_object_get(v, "run_id"));
        char key[32];
        snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(v, "run_id")));
        if (!json_object_get(runs, key))
            json_object_set(runs, key, v);
    }
    /* The runs: each as read, unless a listener read it since; those gone are dropped. */
    for (size_t i = 0; i < c->n_runs;) {
        run_entry *e = &c->runs[i];
        char key[32];
        snprintf(key, sizeof key, "%" PRId64, e->id);
        json_t *r = json_object_get(runs, key);
        if (e->pushed > start) {
            i++;
        } else if (!r) {
            drop_run(c, i);
        } else {
            set_run(e, json_incref(r), e->used); /* a refresh is not a use */
            i++;
        }
    }
    json_object_foreach(runs, name, v) {
        int64_t id = json_integer_value(json_object_get(v, "run_id"));
        run_entry *e = find_run(c, id);
        if (e)
            continue;
        if ((e = take_run(c, id)))
            set_run(e, json_incref(v), gen);
    }
    c->loaded = 1;
    iso_now(c->as_of);
    /* Every answer carries the new as_of, published with what was read. */
    for (size_t i = 0; i < c->n_runs; i++)
        c->runs[i].dirty = 1;
    build(c, cfg);
    pthread_mutex_unlock(&c->lock);
    json_decref(last);
    json_decref(cursors);
    json_decref(runs);
    return 0;
}

/* What the answers show of health and the schedule, sampled. */
static json_t *sample_volatile(tfs_status_cache *c, const tfs_config *cfg, char **sig)
{
    json_t *systems = json_object(), *lag = json_object(), *next = json_object();
    /* The same without the figures that age by themselves: their change alone is none
     * (they move on at the next refresh). */
    json_t *calm = json_object(), *calm_lag = json_object();
    for (size_t i = 0; i < cfg->n_systems; i++) {
        json_t *h = tfs_health_json(c->health, cfg->systems[i].name);
        if (!h)
            continue;
        json_t *k = json_deep_copy(h);
        json_object_del(k, "age_ms");
        json_object_del(k, "circuit_since_ms");
        json_object_del(k, "next_probe_in_ms");
        json_object_del(k, "checked_at"); /* a check that found the same is no change */
        json_object_set_new(calm, cfg->systems[i].name, k);
        json_object_set_new(systems, cfg->systems[i].name, h);
    }
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const tfs_config_pair *p = &cfg->pairs[i];
        json_t *pl = json_object(), *calm_pl = json_object();
        for (size_t e = 0; e < p->n_entities; e++) {
            json_t *l = tfs_health_lag(c->health, p->name, p->entities[e].source);
            if (!l)
                continue;
            json_t *k = json_deep_copy(l);
            json_object_del(k, "age_ms");
            json_object_set_new(calm_pl, p->entities[e].source, k);
            json_object_set_new(pl, p->entities[e].source, l);
        }
        json_object_set_new(lag, p->name, pl);
        json_object_set_new(calm_lag, p->name, calm_pl);
        if (p->incremental_every_ms)
            json_object_set_new(next, p->name,
                                json_integer(tfs_runner_next_run_ms(c->runner, p->name)));
    }
    json_t *calm_all = json_pack("{sososO}", "systems", calm, "lag", calm_lag, "next", next);
    *sig = calm_all ? json_dumps(calm_all, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(calm_all);
    return json_pack("{sososo}", "systems", systems, "lag", lag, "next", next);
}

static void *refresher_main(void *arg)
{
    tfs_status_cache *c = arg;
    tfs_store *s = NULL;
    int64_t next_full = 0;
    tfs_config *built_for = NULL;
    for (;;) {
        pthread_mutex_lock(&c->wake_lock);
        if (!c->stop && !c->poked) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += TICK_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&c->wake, &c->wake_lock, &until);
        }
        int stop = c->stop, poked = c->poked;
        c->poked = 0;
        pthread_mutex_unlock(&c->wake_lock);
        if (stop)
            break;
        tfs_config *cfg = tfs_config_slot_get(c->slot);
        int64_t now = mono_ms();
        int changed = 0;
        pthread_mutex_lock(&c->lock);
        int want = c->n_pending || c->pending_all || !c->loaded;
        pthread_mutex_unlock(&c->lock);
        if (now >= next_full || (poked && want) || cfg != built_for) {
            refresh(c, &s, cfg);
            next_full = mono_ms() + cfg->status_refresh_ms;
        }
        char *sig = NULL;
        json_t *vol = sample_volatile(c, cfg, &sig);
        pthread_mutex_lock(&c->lock);
        if (vol && sig && (!c->volatile_sig || strcmp(sig, c->volatile_sig) != 0)) {
            json_decref(c->volatile_parts);
            c->volatile_parts = vol;
            vol = NULL;
            free(c->volatile_sig);
            c->volatile_sig = sig;
            sig = NULL;
            changed = 1;
        }
        if (changed || cfg != built_for) {
            build(c, cfg);
            tfs_config_free(built_for);
            built_for = tfs_config_retain(cfg);
        }
        pthread_mutex_unlock(&c->lock);
        json_decref(vol);
        free(sig);
        tfs_config_free(cfg);
    }
    tfs_config_free(built_for);
    tfs_store_close(s);
    return NULL;
}

/* ---- the cache ---------------------------------------------------------------------- */

int tfs_status_cache_start(tfs_config_slot *slot, tfs_health *health, tfs_runner *runner,
                           tfs_status_cache **out, tfs_error *err)
{
    *out = NULL;
    tfs_status_cache *c = calloc(1, sizeof *c);
    if (!c)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    c->slot = slot;
    c->health = health;
    c->runner = runner;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->pub_lock, NULL);
    pthread_mutex_init(&c->wake_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &ca);
    pthread_condattr_destroy(&ca);
    /* Listening first, then the first read: a run changed in between is read by both, and
     * the listener's newer read is kept. */
    tfs_store_set_run_listener(on_run_changed, c);
    tfs_config *cfg = tfs_config_slot_get(slot);
    tfs_store *s = NULL;
    if (refresh(c, &s, cfg) != 0)
        tfs_log_warn("api", "the status cache could not read the state store yet; "
                            "it tries again every api.status_refresh");
    tfs_store_close(s);
    char *sig = NULL;
    c->volatile_parts = sample_volatile(c, cfg, &sig);
    c->volatile_sig = sig;
    pthread_mutex_lock(&c->lock);
    build(c, cfg);
    pthread_mutex_unlock(&c->lock);
    tfs_config_free(cfg);
    if (pthread_create(&c->thread, NULL, refresher_main, c) != 0) {
        tfs_status_cache_stop(c);
        return tfs_error_set(err, TFS_EIO, "could not start the status cache's thread");
    }
    c->started = 1;
    *out = c;
    return 0;
}

void tfs_status_cache_stop(tfs_status_cache *c)
{
    if (!c)
        return;
    tfs_store_set_run_listener(NULL, NULL);
    if (c->started) {
        pthread_mutex_lock(&c->wake_lock);
        c->stop = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->wake_lock);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < c->n_runs; i++) {
        json_decref(c->runs[i].run);
        tfs_status_body_release(c->runs[i].body);
    }
    for (size_t i = 0; i < c->n_pairs; i++)
        json_decref(c->pairs[i].cursors);
    free(c->pairs);
    json_decref(c->volatile_parts);
    free(c->volatile_sig);
    published_free(c->pub);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->wake_lock);
    pthread_mutex_destroy(&c->pub_lock);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* The answers were built for another config than the slot's (a reload): build them now. */
static void follow(tfs_status_cache *c)
{
    tfs_config *cur = tfs_config_slot_get(c->slot);
    pthread_mutex_lock(&c->lock);
    pthread_mutex_lock(&c->pub_lock);
    int stale = !c->pub || c->pub->cfg != cur;
    pthread_mutex_unlock(&c->pub_lock);
    if (stale)
        build(c, cur);
    pthread_mutex_unlock(&c->lock);
    tfs_config_free(cur);
}

tfs_status_body *tfs_status_cache_status(tfs_status_cache *c, const tfs_config *cfg)
{
    tfs_status_body *b = NULL;
    pthread_mutex_lock(&c->pub_lock);
    int same = c->pub && c->pub->cfg == cfg;
    if (same && c->pub)
        b = tfs_status_body_ref(c->pub->status);
    pthread_mutex_unlock(&c->pub_lock);
    if (same)
        return b;
    follow(c);
    pthread_mutex_lock(&c->pub_lock);
    b = c->pub ? tfs_status_body_ref(c->pub->status) : NULL;
    pthread_mutex_unlock(&c->pub_lock);
    return b;
}

tfs_status_body *tfs_status_cache_run(tfs_status_cache *c, const tfs_config *cfg,
                                      int64_t run_id)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        tfs_status_body *b = NULL;
        pthread_mutex_lock(&c->pub_lock);
        published *p = c->pub;
        int same = p && p->cfg == cfg;
        if (p && (same || attempt)) {
            struct pub_run key = {.id = run_id};
            struct pub_run *r = bsearch(&key, p->runs, p->n, sizeof p->runs[0], by_id);
            b = r ? tfs_status_body_ref(r->body) : NULL;
        }
        pthread_mutex_unlock(&c->pub_lock);
        if (same || attempt)
            return b;
        tfs_status_body_release(b);
        follow(c);
    }
    return NULL;
}
