/* core/runner.c — queue and worker threads; see runner.h. */
#include "runner.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pipeline.h"
#include "retry.h"
#include "tfs_limits.h"

typedef struct job {
    struct job *next;
    int64_t run_id;
    char *pair;
    char *mode;
    /* while parked: waiting for its systems, or for its final state to be recorded */
    int64_t waiting_since_ms; /* monotonic; 0: has not waited */
    int64_t not_before_ms;    /* the earliest time it is queued again */
    unsigned attempts;        /* times it was parked since it last ran to an end */
    int recorded;             /* its waiting state is in the store */
    const char *final_state;  /* "cancelled" or "failed": to record, then drop */
    char reason[600];
} job;

/* A worker thread and the run it executes (run_id 0: none), under the runner's lock. */
typedef struct worker {
    struct tfs_runner *r;
    pthread_t thread;
    atomic_int halt;   /* stop between batches: the daemon stops or the run is cancelled */
    atomic_int cancel; /* the run is cancelled */
    int64_t run_id;
} worker;

struct tfs_runner {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *head, *tail;
    job *parked; /* runs waiting for their systems or the store */
    atomic_int stop;
    worker *workers;
    unsigned n_threads;
    tfs_health *health;
    tfs_retry_policy retry;
    /* The scheduler: one due time per pair (0: no schedule), under lock. */
    int64_t *next_due_ms;
    pthread_t scheduler;
    int has_scheduler;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(job *j);
static void push_queue(tfs_runner *r, job *j);

/* Whether the systems a parked run needs (its source and target, and the state store) let
 * it through now: none open, and each half-open one gives it its one trial. */
static int systems_allow(tfs_runner *r, const job *j)
{
    const tfs_config_pair *p = tfs_config_pair_get(r->cfg, j->pair);
    tfs_breaker *brs[3] = {tfs_health_store_breaker(r->health),
                           p ? tfs_health_breaker(r->health, p->source) : NULL,
                           p ? tfs_health_breaker(r->health, p->target) : NULL};
    for (int i = 0; i < 3; i++)
        if (brs[i] && tfs_breaker_get(brs[i]).state == TFS_BREAKER_OPEN)
            return 0;
    int64_t now = tfs_health_now_ms();
    for (int i = 0; i < 3; i++)
        if (brs[i] && tfs_breaker_get(brs[i]).state == TFS_BREAKER_HALF_OPEN &&
            !tfs_breaker_allow(brs[i], now))
            return 0;
    return 1;
}

/* One parked run: records what is due (its waiting, its end), fails it past its pair's
 * max_wait, queues it again when its systems answer. 1 when it leaves the parked list. */
static int tend_parked(tfs_runner *r, job *j, tfs_store **s)
{
    int64_t now = tfs_health_now_ms();
    const tfs_config_pair *p = tfs_config_pair_get(r->cfg, j->pair);
    tfs_error err = {0};
    if (!j->final_state && p && p->max_wait_ms && now - j->waiting_since_ms > p->max_wait_ms) {
        char why[600];
        snprintf(why, sizeof why, "waited longer than the pair's max_wait (%lld ms): %s",
                 p->max_wait_ms, j->reason);
        snprintf(j->reason, sizeof j->reason, "%s", why);
        j->final_state = "failed";
    }
    if (j->final_state || !j->recorded) {
        if (!*s && tfs_store_open(r->cfg->state_conninfo, s, &err) != 0)
            return 0; /* the next tick tries again */
        const char *state = j->final_state ? j->final_state : "waiting";
        if (tfs_store_run_set_state(*s, j->run_id, state,
                                    strcmp(state, "cancelled") == 0 ? NULL : j->reason, NULL, 0,
                                    &err) != 0) {
            tfs_store_close(*s); /* reconnect at the next tick */
            *s = NULL;
            return 0;
        }
        if (j->final_state) {
            tfs_log_info("runner", "run %" PRId64 ": %s%s%s", j->run_id, j->final_state,
                         strcmp(state, "failed") == 0 ? ": " : "",
                         strcmp(state, "failed") == 0 ? j->reason : "");
            job_free(j);
            return 1;
        }
        j->recorded = 1;
        tfs_log_warn("runner", "run %" PRId64 ": waiting: %s", j->run_id, j->reason);
    }
    if (now < j->not_before_ms || !systems_allow(r, j))
        return 0;
    tfs_log_info("runner", "run %" PRId64 ": its systems answer; queued again", j->run_id);
    push_queue(r, j);
    return 1;
}

static void tend_all_parked(tfs_runner *r, tfs_store **s)
{
    pthread_mutex_lock(&r->lock);
    job *list = r->parked;
    r->parked = NULL;
    pthread_mutex_unlock(&r->lock);
    job *keep = NULL;
    while (list) {
        job *j = list;
        list = j->next;
        j->next = NULL;
        if (!tend_parked(r, j, s)) {
            j->next = keep;
            keep = j;
        }
    }
    pthread_mutex_lock(&r->lock);
    while (keep) {
        job *j = keep;
        keep = j->next;
        j->next = r->parked;
        r->parked = j;
    }
    pthread_mutex_unlock(&r->lock);
}

static void *scheduler_main(void *arg)
{
    tfs_runner *r = arg;
    tfs_store *s = NULL;
    while (!atomic_load(&r->stop)) {
        struct timespec tick = {0, 50 * 1000000L};
        nanosleep(&tick, NULL);
        tend_all_parked(r, &s);
        for (size_t i = 0; i < r->cfg->n_pairs && !atomic_load(&r->stop); i++) {
            const tfs_config_pair *p = &r->cfg->pairs[i];
            pthread_mutex_lock(&r->lock);
            int64_t due = r->next_due_ms[i];
            int64_t now = wall_ms();
            int go = due && now >= due;
            if (go)
                r->next_due_ms[i] = now + p->incremental_every_ms;
            pthread_mutex_unlock(&r->lock);
            if (!go)
                continue;
            tfs_error err = {0};
            if (!s && tfs_store_open(r->cfg->state_conninfo, &s, &err) != 0) {
                tfs_log_warn("scheduler", "could not start %s: %s", p->name, err.message);
                continue;
            }
            int64_t id = 0;
            int rc = tfs_runner_submit(r, s, p->name, "incremental", "scheduler", &id, &err);
            if (rc == TFS_ECONFLICT) {
                tfs_log_debug("scheduler", "%s is running (run %" PRId64 "); next tick", p->name,
                              id);
            } else if (rc) {
                tfs_log_warn("scheduler", "could not start %s: %s", p->name, err.message);
                if (rc == TFS_ETRANSIENT) {
                    tfs_store_close(s); /* reconnect at the next tick */
                    s = NULL;
                }
            }
        }
    }
    tfs_store_close(s);
    return NULL;
}

int64_t tfs_runner_next_run_ms(tfs_runner *r, const char *pair)
{
    int64_t due = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->cfg->n_pairs; i++)
        if (strcmp(r->cfg->pairs[i].name, pair) == 0)
            due = r->next_due_ms[i];
    pthread_mutex_unlock(&r->lock);
    return due;
}

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->pair);
    free(j->mode);
    free(j);
}

/* Parks a run its worker could not take further (under the lock). */
static void park(tfs_runner *r, job *j, const char *reason, int cancelled)
{
    int64_t now = tfs_health_now_ms();
    uint64_t rng = tfs_retry_seed();
    if (!j->waiting_since_ms)
        j->waiting_since_ms = now;
    j->attempts++;
    j->not_before_ms = now + tfs_retry_backoff_ms(&r->retry, j->attempts, &rng);
    j->recorded = 0;
    j->final_state = cancelled ? "cancelled" : NULL;
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    j->next = r->parked;
    r->parked = j;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    tfs_runner *r = w->r;
    tfs_pipeline *p = NULL;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (!r->head && !atomic_load(&r->stop))
            pthread_cond_wait(&r->wake, &r->lock);
        if (atomic_load(&r->stop)) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        job *j = r->head;
        r->head = j->next;
        if (!r->head)
            r->tail = NULL;
        j->next = NULL;
        w->run_id = j->run_id;
        atomic_store(&w->cancel, 0);
        atomic_store(&w->halt, atomic_load(&r->stop));
        pthread_mutex_unlock(&r->lock);

        tfs_error err = {0};
        /* The pipeline (its Lua state; it connects on use) is made on first use. */
        if (!p && tfs_pipeline_new(r->cfg, r->plugins, r->health, &p, &err) != 0) {
            tfs_log_error("runner", "run %" PRId64 " could not start: %s", j->run_id,
                          err.message);
            pthread_mutex_lock(&r->lock);
            w->run_id = 0;
            park(r, j, err.message, 0);
            j->final_state = "failed";
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        int ended;
        int rc = tfs_pipeline_execute(p, j->run_id, j->pair, j->mode, &w->halt, &w->cancel,
                                      &ended, &err);
        pthread_mutex_lock(&r->lock);
        w->run_id = 0;
        if (rc == TFS_ETRANSIENT && !atomic_load(&r->stop)) {
            park(r, j, err.message, atomic_load(&w->cancel));
            j = NULL;
        } else if (rc == 0 && ended == 0) {
            j->attempts = 0;
        }
        pthread_mutex_unlock(&r->lock);
        job_free(j);
    }
    tfs_pipeline_free(p);
    return NULL;
}

int tfs_runner_start(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_health *health,
                     tfs_runner **out, tfs_error *err)
{
    *out = NULL;
    tfs_runner *r = calloc(1, sizeof *r);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->plugins = plugins;
    r->health = health;
    r->retry = (tfs_retry_policy){TFS_RETRY_BASE_MS_DEFAULT,
                                  cfg->retry_max_backoff_ms ? cfg->retry_max_backoff_ms
                                                            : TFS_RETRY_MAX_BACKOFF_MS_DEFAULT};
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->workers = calloc(cfg->workers, sizeof *r->workers);
    r->next_due_ms = calloc(cfg->n_pairs + 1, sizeof *r->next_due_ms);
    if (!r->workers || !r->next_due_ms) {
        tfs_runner_stop(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        r->workers[i].r = r;
        if (pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]) != 0) {
            tfs_runner_stop(r);
            return tfs_error_set(err, TFS_EIO, "could not start worker thread %u", i);
        }
        r->n_threads++;
    }
    for (size_t i = 0; i < cfg->n_pairs; i++)
        if (cfg->pairs[i].incremental_every_ms)
            r->next_due_ms[i] = wall_ms() + cfg->pairs[i].incremental_every_ms;
    /* The scheduler thread also tends the parked runs, so it always runs. */
    {
        if (pthread_create(&r->scheduler, NULL, scheduler_main, r) != 0) {
            tfs_runner_stop(r);
            return tfs_error_set(err, TFS_EIO, "could not start the scheduler thread");
        }
        r->has_scheduler = 1;
    }
    *out = r;
    return 0;
}

void tfs_runner_stop(tfs_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, 1);
    for (unsigned i = 0; i < r->n_threads; i++)
        atomic_store(&r->workers[i].halt, 1);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < r->n_threads; i++)
        pthread_join(r->workers[i].thread, NULL);
    if (r->has_scheduler)
        pthread_join(r->scheduler, NULL);
    while (r->head) {
        job *j = r->head;
        r->head = j->next;
        job_free(j);
    }
    /* Parked runs stay waiting (or queued) in the store and resume at the next start-up. */
    while (r->parked) {
        job *j = r->parked;
        r->parked = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r->workers);
    free(r->next_due_ms);
    free(r);
}

static void push_queue(tfs_runner *r, job *j)
{
    pthread_mutex_lock(&r->lock);
    j->next = NULL;
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

int tfs_runner_cancel(tfs_runner *r, int64_t run_id)
{
    int found = 0;
    pthread_mutex_lock(&r->lock);
    for (job **pp = &r->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        job *j = *pp;
        if (j->run_id != run_id)
            continue;
        *pp = j->next;
        if (r->tail == j)
            r->tail = prev;
        park(r, j, "cancelled", 1);
        found = 1;
        break;
    }
    for (job *j = r->parked; !found && j; j = j->next)
        if (j->run_id == run_id) {
            j->final_state = "cancelled";
            found = 1;
        }
    for (unsigned i = 0; !found && i < r->n_threads; i++)
        if (r->workers[i].run_id == run_id) {
            atomic_store(&r->workers[i].cancel, 1);
            atomic_store(&r->workers[i].halt, 1);
            found = 2;
        }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static int enqueue(tfs_runner *r, int64_t run_id, const char *pair, const char *mode)
{
    job *j = calloc(1, sizeof *j);
    if (!j || !(j->pair = strdup(pair)) || !(j->mode = strdup(mode))) {
        job_free(j);
        return TFS_ENOMEM;
    }
    j->run_id = run_id;
    pthread_mutex_lock(&r->lock);
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int tfs_runner_submit(tfs_runner *r, tfs_store *s, const char *pair, const char *mode,
                      const char *actor, int64_t *run_id, tfs_error *err)
{
    if (!tfs_config_pair_get(r->cfg, pair)) {
        tfs_error_set(err, TFS_ENOTFOUND, "unknown pair \"%s\"", pair);
        char list[256] = "";
        for (size_t i = 0; i < r->cfg->n_pairs; i++) {
            strncat(list, r->cfg->pairs[i].name, sizeof list - strlen(list) - 1);
            if (i + 1 < r->cfg->n_pairs)
                strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        tfs_error_hint(err, "the configured pairs are: %s", list[0] ? list : "(none)");
        return TFS_ENOTFOUND;
    }
    int rc = tfs_store_run_create(s, pair, mode, actor, run_id, err);
    if (rc)
        return rc;
    if (enqueue(r, *run_id, pair, mode) != 0) {
        tfs_store_run_set_state(s, *run_id, "failed", "out of memory queueing the run", NULL, 0,
                                NULL);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    tfs_log_info("runner", "run %" PRId64 ": %s sync of %s queued by %s", *run_id, mode, pair,
                 actor);
    return 0;
}

int tfs_runner_resume(tfs_runner *r, tfs_store *s, tfs_error *err)
{
    tfs_store_run *runs;
    size_t n;
    int rc = tfs_store_unfinished_runs(s, &runs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        tfs_log_info("runner", "run %" PRId64 " of %s was left unfinished; resuming it",
                     runs[i].run_id, runs[i].pair);
        if (enqueue(r, runs[i].run_id, runs[i].pair, runs[i].mode) != 0) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
    }
    free(runs);
    return rc;
}
