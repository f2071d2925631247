/* core/health.c — the probers and the cached health of systems and the state store; see
 * health.h. */
#include "health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_batch.h"
#include "tfs_limits.h"

/* The cached lag of one pair entity. */
typedef struct lag_entry {
    const char *pair, *entity; /* the config's */
    int known;
    int64_t pending, oldest_age_ms, at_ms;
} lag_entry;

/* One prober: a system (cs set) or the state store. */
typedef struct prober {
    struct tfs_health *h;
    const tfs_config_system *cs; /* NULL: the state store */
    tfs_breaker *br;
    pthread_t thread;
    int started;
    atomic_int finished;
    atomic_int poked; /* refresh now, not at the next interval */
    /* the cache, under h->lock */
    int checked, ok;
    char error[512];
    int64_t checked_ms;  /* monotonic, of the last finished check */
    time_t checked_wall; /* the same, for the answer */
    int64_t check_since; /* a check runs since then (0: none) */
    int64_t next_lag_ms; /* monotonic: the lags are counted again from then */
    lag_entry *lags;
    size_t n_lags;
} prober;

struct tfs_health {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    pthread_mutex_t lock;
    pthread_cond_t checked; /* a first check finished */
    atomic_int stop;
    prober *probers; /* n_systems systems, then the state store */
    size_t n;
};

int64_t tfs_health_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The lag of each entity this system is the source of, with the prober's instance and
 * store connection. Counting it reads the source's change log, which grows with what is
 * pending: the next count waits TFS_HEALTH_LAG_COST_FACTOR times as long as this one took
 * (at least the refresh interval), so the prober never takes more than a small share of a
 * source that a run is reading at the same time. */
static void refresh_lags(prober *pr, tfs_instance *inst, tfs_store **store)
{
    int64_t started = tfs_health_now_ms();
    if (started < pr->next_lag_ms)
        return;
    for (size_t i = 0; i < pr->n_lags && !atomic_load(&pr->h->stop); i++) {
        lag_entry *le = &pr->lags[i];
        tfs_error err = {0};
        if (!*store && tfs_store_open(pr->h->cfg->state_conninfo, store, &err) != 0)
            return;
        unsigned char *cursor = NULL;
        size_t len = 0;
        int64_t run;
        int done;
        if (tfs_store_batch_cursor_get(*store, le->pair, le->entity, "changes", &run, &done,
                                       &cursor, &len, &err) != 0) {
            tfs_store_close(*store); /* reconnect at the next refresh */
            *store = NULL;
            return;
        }
        int idx = tfs_instance_entity(inst, le->entity);
        int64_t pending = 0, age = 0;
        int known = cursor && idx >= 0 &&
                    tfs_instance_changes_lag(inst, (size_t)idx, cursor, len, &pending, &age,
                                             &err) == 0;
        free(cursor);
        pthread_mutex_lock(&pr->h->lock);
        le->known = known;
        le->pending = pending;
        le->oldest_age_ms = age;
        le->at_ms = tfs_health_now_ms();
        pthread_mutex_unlock(&pr->h->lock);
    }
    int64_t took = tfs_health_now_ms() - started;
    pr->next_lag_ms = started + (took * TFS_HEALTH_LAG_COST_FACTOR > TFS_HEALTH_REFRESH_MS_DEFAULT
                                     ? took * TFS_HEALTH_LAG_COST_FACTOR
                                     : TFS_HEALTH_REFRESH_MS_DEFAULT);
}

/* One check: a system's health callback through the plugin host, or a trivial query. */
static int check(prober *pr, tfs_instance **inst, tfs_store **store, tfs_error *err)
{
    if (!pr->cs) {
        int rc = 0;
        if (!*store)
            rc = tfs_store_open(pr->h->cfg->state_conninfo, store, err);
        if (rc == 0 && (rc = tfs_store_ping(*store, err)) != 0) {
            tfs_store_close(*store);
            *store = NULL;
        }
        return rc;
    }
    const tfs_plugin *pl = tfs_plugin_host_get(pr->h->plugins, pr->cs->plugin);
    if (!pl)
        return tfs_error_set(err, TFS_EPERMANENT, "plugin \"%s\" is not loaded", pr->cs->plugin);
    int rc = 0;
    if (!*inst)
        rc = tfs_instance_open(pl, pr->cs->name, pr->cs->settings, pr->h->cfg->dir, inst,
                               err);
    if (rc == 0)
        rc = tfs_instance_health(*inst, err);
    if (rc && *inst) {
        tfs_instance_close(*inst); /* a fresh connection at the next check */
        *inst = NULL;
    }
    return rc;
}

static void *prober_main(void *arg)
{
    prober *pr = arg;
    tfs_health *h = pr->h;
    tfs_instance *inst = NULL;
    tfs_store *store = NULL, *lag_store = NULL;
    int64_t next_refresh = 0;
    while (!atomic_load(&h->stop)) {
        int64_t now = tfs_health_now_ms();
        tfs_breaker_snapshot snap = tfs_breaker_get(pr->br);
        int probing = snap.state == TFS_BREAKER_OPEN;
        if (atomic_exchange(&pr->poked, 0))
            next_refresh = pr->next_lag_ms = 0;
        if ((probing && tfs_breaker_probe_due(pr->br, now)) || (!probing && now >= next_refresh)) {
            pthread_mutex_lock(&h->lock);
            pr->check_since = now;
            pthread_mutex_unlock(&h->lock);
            tfs_error err = {0};
            int rc = check(pr, &inst, &store, &err);
            int64_t done = tfs_health_now_ms();
            if (probing)
                tfs_breaker_probed(pr->br, rc == 0, rc ? err.message : NULL, done);
            else if (rc == TFS_ETRANSIENT)
                tfs_breaker_failure(pr->br, err.message, done);
            else if (rc == 0 && snap.state == TFS_BREAKER_HALF_OPEN)
                /* No run took the trial (none waits for it), or it is still on its way: a
                 * check that answers again closes the breaker. */
                tfs_breaker_success(pr->br, done);
            pthread_mutex_lock(&h->lock);
            pr->check_since = 0;
            pr->checked = 1;
            pr->ok = rc == 0;
            snprintf(pr->error, sizeof pr->error, "%s", rc ? err.message : "");
            pr->checked_ms = done;
            pr->checked_wall = time(NULL);
            pthread_cond_broadcast(&h->checked);
            pthread_mutex_unlock(&h->lock);
            if (rc == 0 && inst)
                refresh_lags(pr, inst, &lag_store);
            next_refresh = done + TFS_HEALTH_REFRESH_MS_DEFAULT;
        }
        pause_ms(50);
    }
    tfs_instance_close(inst);
    tfs_store_close(store);
    tfs_store_close(lag_store);
    atomic_store(&pr->finished, 1);
    return NULL;
}

int tfs_health_start(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_health **out,
                     tfs_error *err)
{
    *out = NULL;
    tfs_health *h = calloc(1, sizeof *h);
    if (!h || !(h->probers = calloc(cfg->n_systems + 1, sizeof *h->probers))) {
        free(h);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    h->cfg = cfg;
    h->plugins = plugins;
    h->n = cfg->n_systems + 1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->checked, NULL);
    tfs_breaker_settings bs = {
        .failures = cfg->breaker_failures ? cfg->breaker_failures : TFS_BREAKER_FAILURES_DEFAULT,
        .first_probe_ms = TFS_BREAKER_FIRST_PROBE_MS_DEFAULT,
        .max_probe_interval_ms = cfg->breaker_max_probe_interval_ms
                                     ? cfg->breaker_max_probe_interval_ms
                                     : TFS_BREAKER_MAX_PROBE_INTERVAL_MS_DEFAULT};
    int rc = 0;
    int64_t now = tfs_health_now_ms();
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        prober *pr = &h->probers[i];
        pr->h = h;
        pr->cs = i < cfg->n_systems ? &cfg->systems[i] : NULL;
        char name[160];
        snprintf(name, sizeof name, pr->cs ? "system %s" : "state store",
                 pr->cs ? pr->cs->name : "");
        if (!(pr->br = tfs_breaker_new(name, &bs, now))) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
        if (!pr->cs)
            continue;
        size_t n = 0;
        for (size_t p = 0; p < cfg->n_pairs; p++)
            if (strcmp(cfg->pairs[p].source, pr->cs->name) == 0)
                n += cfg->pairs[p].n_entities;
        if (!(pr->lags = calloc(n + 1, sizeof *pr->lags))) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
        for (size_t p = 0; p < cfg->n_pairs; p++)
            for (size_t e = 0; strcmp(cfg->pairs[p].source, pr->cs->name) == 0 &&
                               e < cfg->pairs[p].n_entities;
                 e++)
                pr->lags[pr->n_lags++] =
                    (lag_entry){.pair = cfg->pairs[p].name, .entity = cfg->pairs[p].entities[e].source};
    }
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        if (pthread_create(&h->probers[i].thread, NULL, prober_main, &h->probers[i]) != 0)
            rc = tfs_error_set(err, TFS_EIO, "could not start a prober thread");
        else
            h->probers[i].started = 1;
    }
    if (rc) {
        tfs_health_stop(h);
        return rc;
    }
    /* The first checks, for a second at most. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        size_t n_checked = 0;
        for (size_t i = 0; i < h->n; i++)
            n_checked += h->probers[i].checked;
        if (n_checked == h->n || pthread_cond_timedwait(&h->checked, &h->lock, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&h->lock);
    *out = h;
    return 0;
}

void tfs_health_stop(tfs_health *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    /* A prober inside a call that never returns (a server that accepts and never answers,
     * without a connect timeout) cannot be joined: it is left behind, and so is h. */
    int64_t deadline = tfs_health_now_ms() + 2000;
    int stuck = 0;
    for (size_t i = 0; i < h->n; i++) {
        prober *pr = &h->probers[i];
        if (!pr->started)
            continue;
        while (!atomic_load(&pr->finished) && tfs_health_now_ms() < deadline)
            pause_ms(20);
        if (atomic_load(&pr->finished)) {
            pthread_join(pr->thread, NULL);
        } else {
            tfs_log_warn("health", "a prober of %s has not returned from its check; left behind",
                         pr->cs ? pr->cs->name : "the state store");
            pthread_detach(pr->thread);
            stuck = 1;
        }
    }
    if (stuck)
        return;
    for (size_t i = 0; i < h->n; i++) {
        tfs_breaker_free(h->probers[i].br);
        free(h->probers[i].lags);
    }
    free(h->probers);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->checked);
    free(h);
}

static prober *find(tfs_health *h, const char *system)
{
    if (!system)
        return &h->probers[h->n - 1];
    for (size_t i = 0; i + 1 < h->n; i++)
        if (strcmp(h->probers[i].cs->name, system) == 0)
            return &h->probers[i];
    return NULL;
}

tfs_breaker *tfs_health_breaker(tfs_health *h, const char *system)
{
    prober *pr = h && system ? find(h, system) : NULL;
    return pr ? pr->br : NULL;
}

tfs_breaker *tfs_health_store_breaker(tfs_health *h)
{
    return h ? h->probers[h->n - 1].br : NULL;
}

void tfs_health_poke(tfs_health *h, const char *system)
{
    prober *pr = h && system ? find(h, system) : NULL;
    if (pr)
        atomic_store(&pr->poked, 1);
}

json_t *tfs_health_json(tfs_health *h, const char *system)
{
    prober *pr = find(h, system);
    if (!pr)
        return NULL;
    int64_t now = tfs_health_now_ms();
    tfs_breaker_snapshot snap = tfs_breaker_get(pr->br);
    pthread_mutex_lock(&h->lock);
    int checked = pr->checked, ok = pr->ok;
    char error[512];
    snprintf(error, sizeof error, "%s", pr->error);
    int64_t checked_ms = pr->checked_ms, since = pr->check_since;
    time_t wall = pr->checked_wall;
    pthread_mutex_unlock(&h->lock);
    const char *status = "ok";
    if (since && now - since > TFS_HEALTH_STUCK_MS_DEFAULT) {
        status = "down";
        snprintf(error, sizeof error, "its health check has not answered for %lld ms",
                 (long long)(now - since));
    } else if (snap.state == TFS_BREAKER_OPEN || (checked && !ok)) {
        status = "down";
    } else if (!checked || snap.state == TFS_BREAKER_HALF_OPEN || snap.failures > 0) {
        status = "degraded";
    }
    if (!error[0] && snap.last_error[0])
        snprintf(error, sizeof error, "%s", snap.last_error);
    char at[32] = "";
    if (checked) {
        struct tm tm;
        gmtime_r(&wall, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    json_t *o = json_pack("{sssssIsI}", "status", status, "circuit",
                          tfs_breaker_state_name(snap.state), "failures",
                          (json_int_t)snap.failures, "circuit_since_ms",
                          (json_int_t)(now - snap.since_ms));
    json_object_set_new(o, "error", error[0] ? json_string(error) : json_null());
    json_object_set_new(o, "checked_at", checked ? json_string(at) : json_null());
    json_object_set_new(o, "age_ms", checked ? json_integer(now - checked_ms) : json_null());
    json_object_set_new(o, "next_probe_in_ms",
                        snap.state == TFS_BREAKER_OPEN
                            ? json_integer(snap.next_probe_ms > now ? snap.next_probe_ms - now : 0)
                            : json_null());
    if (pr->cs)
        json_object_set_new(o, "plugin", json_string(pr->cs->plugin));
    return o;
}

json_t *tfs_health_lag(tfs_health *h, const char *pair, const char *entity)
{
    const tfs_config_pair *p = tfs_config_pair_get(h->cfg, pair);
    prober *pr = p ? find(h, p->source) : NULL;
    json_t *out = NULL;
    if (!pr)
        return NULL;
    int64_t now = tfs_health_now_ms();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < pr->n_lags; i++) {
        lag_entry *le = &pr->lags[i];
        if (le->known && strcmp(le->pair, pair) == 0 && strcmp(le->entity, entity) == 0)
            out = json_pack("{sIsIsI}", "pending", (json_int_t)le->pending, "oldest_age_ms",
                            (json_int_t)le->oldest_age_ms, "age_ms",
                            (json_int_t)(now - le->at_ms));
    }
    pthread_mutex_unlock(&h->lock);
    return out;
}
