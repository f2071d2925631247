/* core/runner.c — queue and worker threads; see runner.h. */
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lease.h"
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
    long long max_wait_ms;    /* its pair's, from the config it last ran with; 0: none */
    tfs_lease lease;          /* kept while parked (renewed with the workers'); epoch 0: none */
    char reason[600];
} job;

struct tfs_runner {
    tfs_config_slot *slot;
    tfs_config *cfg; /* the start-up config (a reference): workers, store, node, leases */
    const tfs_plugin_host *plugins;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *head, *tail;
    job *parked; /* runs waiting for their systems or the store, under lock */
    atomic_int stop;
    pthread_t *threads;
    unsigned n_threads;
    /* Per worker, under lock where not atomic: halt (stop between batches: the daemon
     * stops or its run is cancelled) and cancel (its run is cancelled). */
    atomic_int *halt, *cancel;
    tfs_health *health;
    tfs_retry_policy retry;
    /* Threads (workers and the scheduler) not yet returned, under lock; the last one
     * out signals gone, which a bounded stop waits on. */
    unsigned alive;
    pthread_cond_t gone;
    /* The scheduler: the config it schedules by (a reference; changed by the scheduler
     * thread only) and one due time per pair of it (0: no schedule), under lock. */
    tfs_config *sched_cfg;
    int64_t *next_due_ms;
    pthread_t scheduler;
    int has_scheduler;
    /* Leases: this node's id, the run each worker executes and the lease it holds (under
     * lock; run 0: idle), and the thread that renews them and looks for runs to take. */
    char node[TFS_NODE_ID_MAX + 64];
    int64_t *active;
    tfs_lease *held;
    unsigned n_idle;
    pthread_t leaser;
    int has_leaser;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void thread_gone(tfs_runner *r)
{
    pthread_mutex_lock(&r->lock);
    r->alive--;
    pthread_cond_broadcast(&r->gone);
    pthread_mutex_unlock(&r->lock);
}

/* Schedules by cfg (taken over) from now on: a pair whose schedule is unchanged keeps its
 * due time, a new or changed schedule starts counting now, a pair gone is dropped. On
 * out of memory the old schedule stays and the next tick tries again. */
static void sched_adopt(tfs_runner *r, tfs_config *cfg)
{
    int64_t *due = calloc(cfg->n_pairs + 1, sizeof *due);
    if (!due) {
        tfs_config_free(cfg);
        return;
    }
    int64_t now = wall_ms();
    pthread_mutex_lock(&r->lock);
    const tfs_config *old = r->sched_cfg;
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const tfs_config_pair *p = &cfg->pairs[i];
        if (!p->incremental_every_ms)
            continue;
        due[i] = now + p->incremental_every_ms;
        for (size_t j = 0; old && j < old->n_pairs; j++)
            if (strcmp(old->pairs[j].name, p->name) == 0 &&
                old->pairs[j].incremental_every_ms == p->incremental_every_ms &&
                r->next_due_ms[j])
                due[i] = r->next_due_ms[j];
    }
    tfs_config *old_cfg = r->sched_cfg;
    int64_t *old_due = r->next_due_ms;
    r->sched_cfg = cfg;
    r->next_due_ms = due;
    pthread_mutex_unlock(&r->lock);
    tfs_config_free(old_cfg);
    free(old_due);
}

static void job_free(job *j);
static void push_queue(tfs_runner *r, job *j);

/* Whether the systems a parked run needs (its source and target, and the state store) let
 * it through now: none open, and each half-open one gives it its one trial. */
static int systems_allow(tfs_runner *r, const job *j, const tfs_config *cfg)
{
    const tfs_config_pair *p = tfs_config_pair_get(cfg, j->pair);
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
static int tend_parked(tfs_runner *r, job *j, const tfs_config *cfg, tfs_store **s)
{
    int64_t now = tfs_health_now_ms();
    tfs_error err = {0};
    if (!j->final_state && j->max_wait_ms && now - j->waiting_since_ms > j->max_wait_ms) {
        char why[600];
        snprintf(why, sizeof why, "waited longer than the pair's max_wait (%lld ms): %s",
                 j->max_wait_ms, j->reason);
        snprintf(j->reason, sizeof j->reason, "%s", why);
        j->final_state = "failed";
    }
    if (j->final_state || !j->recorded) {
        if (!*s && tfs_store_open(cfg->state_conninfo, s, &err) != 0)
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
            if (j->lease.epoch && tfs_lease_release(*s, &j->lease, &err) != 0)
                tfs_log_warn("runner", "run %" PRId64 ": %s (the lease expires by itself)",
                             j->run_id, err.message);
            job_free(j);
            return 1;
        }
        j->recorded = 1;
        tfs_log_warn("runner", "run %" PRId64 ": waiting: %s", j->run_id, j->reason);
    }
    if (now < j->not_before_ms || !systems_allow(r, j, cfg))
        return 0;
    tfs_log_info("runner", "run %" PRId64 ": its systems answer; queued again", j->run_id);
    push_queue(r, j);
    return 1;
}

static void tend_all_parked(tfs_runner *r, const tfs_config *cfg, tfs_store **s)
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
        if (!tend_parked(r, j, cfg, s)) {
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
        tfs_config *now_cfg = tfs_config_slot_get(r->slot);
        if (now_cfg != r->sched_cfg)
            sched_adopt(r, now_cfg); /* a reload: takes the reference */
        else
            tfs_config_free(now_cfg);
        const tfs_config *cfg = r->sched_cfg;
        tend_all_parked(r, cfg, &s);
        for (size_t i = 0; i < cfg->n_pairs && !atomic_load(&r->stop); i++) {
            const tfs_config_pair *p = &cfg->pairs[i];
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
            if (!s && tfs_store_open(cfg->state_conninfo, &s, &err) != 0) {
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
    thread_gone(r);
    return NULL;
}

int64_t tfs_runner_next_run_ms(tfs_runner *r, const char *pair)
{
    int64_t due = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; r->sched_cfg && i < r->sched_cfg->n_pairs; i++)
        if (strcmp(r->sched_cfg->pairs[i].name, pair) == 0)
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

/* Whether run_id is queued or executing here; under lock. */
static int is_local(const tfs_runner *r, int64_t run_id)
{
    for (const job *j = r->head; j; j = j->next)
        if (j->run_id == run_id)
            return 1;
    for (const job *j = r->parked; j; j = j->next)
        if (j->run_id == run_id)
            return 1;
    for (unsigned i = 0; i < r->cfg->workers; i++)
        if (r->active[i] == run_id)
            return 1;
    return 0;
}

static int enqueue(tfs_runner *r, int64_t run_id, const char *pair, const char *mode);

/* Queues runs any node may take (queued with no live lease, or left by a node that
 * died), as many as there are idle workers with nothing queued; a worker takes the lease
 * before it executes one. */
static int poll_runs(tfs_runner *r, tfs_store *s, unsigned idle, tfs_error *err)
{
    if (idle == 0)
        return 0;
    tfs_lease_candidate c[64];
    size_t n;
    int rc = tfs_lease_candidates(s, c, idle < 64 ? idle : 64, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pthread_mutex_lock(&r->lock);
        int here = is_local(r, c[i].run_id);
        pthread_mutex_unlock(&r->lock);
        if (!here && enqueue(r, c[i].run_id, c[i].pair, c[i].mode) != 0)
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return rc;
}

/* Renews the leases the workers hold every lease.heartbeat and polls for runs to take
 * every lease.poll, on a connection of its own. */
static void *leaser_main(void *arg)
{
    tfs_runner *r = arg;
    tfs_store *s = NULL;
    int64_t next_beat = 0, next_poll = wall_ms() + r->cfg->lease_poll_ms;
    unsigned n = r->cfg->workers;
    tfs_lease *mine = calloc(n + 1, sizeof *mine);
    while (mine && !atomic_load(&r->stop)) {
        struct timespec tick = {0, 50 * 1000000L};
        nanosleep(&tick, NULL);
        int64_t now = wall_ms();
        if (now < next_beat && now < next_poll)
            continue;
        tfs_error err = {0};
        if (!s && tfs_store_open(r->cfg->state_conninfo, &s, &err) != 0) {
            tfs_log_warn("lease", "could not renew leases: %s", err.message);
            continue;
        }
        if (tfs_store_ensure(s, &err) != 0) {
            tfs_log_warn("lease", "could not renew leases: %s", err.message);
            continue;
        }
        if (now >= next_beat) {
            next_beat = now + r->cfg->lease_heartbeat_ms;
            pthread_mutex_lock(&r->lock);
            memcpy(mine, r->held, n * sizeof *mine);
            /* The parked runs keep their leases: a run waiting here is not another node's. */
            size_t n_parked = 0;
            for (const job *j = r->parked; j; j = j->next)
                n_parked += j->lease.epoch != 0;
            tfs_lease *parked = n_parked ? calloc(n_parked, sizeof *parked) : NULL;
            size_t k = 0;
            for (const job *j = r->parked; parked && j; j = j->next)
                if (j->lease.epoch)
                    parked[k++] = j->lease;
            pthread_mutex_unlock(&r->lock);
            for (unsigned i = 0; i < n; i++)
                if (mine[i].epoch && tfs_lease_renew(s, &mine[i], r->cfg->lease_ttl_ms, &err))
                    tfs_log_warn("lease", "%s", err.message);
            for (size_t i = 0; i < k; i++)
                if (tfs_lease_renew(s, &parked[i], r->cfg->lease_ttl_ms, &err))
                    tfs_log_warn("lease", "%s", err.message);
            free(parked);
        }
        if (now >= next_poll) {
            next_poll = now + r->cfg->lease_poll_ms;
            pthread_mutex_lock(&r->lock);
            unsigned idle = r->head ? 0 : r->n_idle;
            pthread_mutex_unlock(&r->lock);
            if (poll_runs(r, s, idle, &err) != 0)
                tfs_log_warn("lease", "could not look for runs to take: %s", err.message);
        }
    }
    free(mine);
    tfs_store_close(s);
    thread_gone(r);
    return NULL;
}

/* Takes the job's lease on the worker's pipeline; 0 when this node may execute it. */
static int take(tfs_runner *r, unsigned w, tfs_pipeline *p, const job *j)
{
    tfs_error err = {0};
    tfs_lease l;
    tfs_store *s = tfs_pipeline_store(p);
    int rc = s ? 0 : tfs_error_set(&err, TFS_ETRANSIENT, "the state store does not answer");
    if (rc == 0)
        rc = tfs_lease_claim(s, j->run_id, r->node, r->cfg->lease_ttl_ms,
                             r->cfg->resume_max_deaths, &l, &err);
    if (rc == TFS_ECONFLICT) {
        tfs_log_debug("runner", "%s; not executing it here", err.message);
        return rc;
    }
    if (rc == TFS_ELIMIT) {
        tfs_log_error("runner", "run %" PRId64 " failed: %s", j->run_id, err.message);
        return rc;
    }
    if (rc) {
        tfs_log_warn("runner", "could not take run %" PRId64 ": %s; it is tried again later",
                     j->run_id, err.message);
        return rc;
    }
    tfs_log_info("runner", "run %" PRId64 ": node \"%s\" holds its lease (epoch %" PRId64 ")",
                 j->run_id, r->node, l.epoch);
    pthread_mutex_lock(&r->lock);
    r->held[w] = l;
    pthread_mutex_unlock(&r->lock);
    tfs_pipeline_set_lease(p, &l);
    return 0;
}

/* The worker's lease ends with the run (or the stop): released, so no death is counted. */
static void give_back(tfs_runner *r, unsigned w, tfs_pipeline *p)
{
    pthread_mutex_lock(&r->lock);
    tfs_lease l = r->held[w];
    memset(&r->held[w], 0, sizeof r->held[w]);
    r->active[w] = 0;
    pthread_mutex_unlock(&r->lock);
    if (!p)
        return; /* no pipeline: no lease was taken */
    tfs_pipeline_set_lease(p, NULL);
    tfs_error err = {0};
    tfs_store *s = l.epoch ? tfs_pipeline_store(p) : NULL;
    if (l.epoch && !s)
        tfs_error_set(&err, TFS_ETRANSIENT, "could not release its lease: the state store does "
                      "not answer");
    if (l.epoch && (!s || tfs_lease_release(s, &l, &err) != 0))
        tfs_log_warn("runner", "run %" PRId64 ": %s (the lease expires by itself)", l.run_id,
                     err.message);
}

/* Parks a run its worker could not take further, with the lease the worker held (under
 * the lock). */
static void park(tfs_runner *r, unsigned w, job *j, const char *reason, int cancelled)
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
    if (w < r->cfg->workers) {
        j->lease = r->held[w];
        memset(&r->held[w], 0, sizeof r->held[w]);
        r->active[w] = 0;
    }
    j->next = r->parked;
    r->parked = j;
}

typedef struct worker_arg {
    tfs_runner *r;
    unsigned w;
} worker_arg;

static void *worker_main(void *arg)
{
    tfs_runner *r = ((worker_arg *)arg)->r;
    unsigned w = ((worker_arg *)arg)->w;
    free(arg);
    tfs_pipeline *p = NULL;
    tfs_config *pcfg = NULL; /* the config p was built with: a reference */
    for (;;) {
        tfs_log_context_clear(); /* the last run's is done */
        pthread_mutex_lock(&r->lock);
        r->n_idle++;
        while (!r->head && !atomic_load(&r->stop))
            pthread_cond_wait(&r->wake, &r->lock);
        r->n_idle--;
        if (atomic_load(&r->stop)) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        job *j = r->head;
        r->head = j->next;
        if (!r->head)
            r->tail = NULL;
        r->active[w] = j->run_id;
        j->next = NULL;
        atomic_store(&r->cancel[w], 0);
        atomic_store(&r->halt[w], atomic_load(&r->stop));
        pthread_mutex_unlock(&r->lock);
        /* Every line this thread writes for the run carries it (JSON logs). */
        tfs_log_context_set(j->run_id, j->pair, NULL);

        tfs_error err = {0};
        /* A run takes the config current when it starts and keeps it to its end; after a
         * reload the pipeline is rebuilt with the new one for the next run. */
        tfs_config *cfg = tfs_config_slot_get(r->slot);
        if (p && pcfg != cfg) {
            tfs_pipeline_free(p);
            p = NULL;
            tfs_config_free(pcfg);
            pcfg = NULL;
        }
        /* The pipeline (connections, Lua state) is made on first use and rebuilt if it
         * could not be made, e.g. while the state store was down. */
        if (!p && tfs_pipeline_new(cfg, r->plugins, r->health, &p, &err) != 0) {
            tfs_log_error("runner", "run %" PRId64 " could not start: %s", j->run_id,
                          err.message);
            tfs_config_free(cfg);
            /* Recorded failed by the runner's thread, again and again until the store
             * answers. */
            pthread_mutex_lock(&r->lock);
            park(r, w, j, err.message, 0);
            j->final_state = "failed";
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        if (!pcfg)
            pcfg = cfg;
        else
            tfs_config_free(cfg);
        const tfs_config_pair *pc = tfs_config_pair_get(pcfg, j->pair);
        j->max_wait_ms = pc ? pc->max_wait_ms : 0;
        int rc = 0, ended = 0;
        if (j->lease.epoch) {
            /* A parked run goes on under the lease it kept (a lease lost meanwhile is
             * found by the pipeline's checks). */
            pthread_mutex_lock(&r->lock);
            r->held[w] = j->lease;
            pthread_mutex_unlock(&r->lock);
            tfs_pipeline_set_lease(p, &j->lease);
            memset(&j->lease, 0, sizeof j->lease);
        } else {
            rc = take(r, w, p, j);
        }
        if (rc == 0)
            rc = tfs_pipeline_execute(p, j->run_id, j->pair, j->mode, &r->halt[w],
                                      &r->cancel[w], &ended, &err);
        else
            rc = 0; /* not this node's: nothing to park */
        /* The run's memory goes back now: each worker keeps its pipeline, and what one run's
         * batches grew to would otherwise stay held by every worker that ever ran one. */
        tfs_pipeline_trim(p);
        if (rc == TFS_ETRANSIENT && !atomic_load(&r->stop)) {
            tfs_pipeline_set_lease(p, NULL);
            pthread_mutex_lock(&r->lock);
            park(r, w, j, err.message, atomic_load(&r->cancel[w]));
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        give_back(r, w, p);
        job_free(j);
    }
    tfs_pipeline_free(p);
    tfs_config_free(pcfg);
    thread_gone(r);
    return NULL;
}

int tfs_runner_start(tfs_config_slot *slot, const tfs_plugin_host *plugins, tfs_health *health,
                     tfs_runner **out, tfs_error *err)
{
    *out = NULL;
    tfs_runner *r = calloc(1, sizeof *r);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    r->slot = slot;
    r->plugins = plugins;
    r->health = health;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->gone, NULL);
    tfs_config *cfg = tfs_config_slot_get(slot);
    /* The start-up config's own reference: what a reload cannot change (workers, the
     * store, the node and its leases) is read from it. */
    r->cfg = tfs_config_slot_get(slot);
    unsigned workers = cfg->workers;
    sched_adopt(r, cfg);
    r->threads = calloc(workers, sizeof *r->threads);
    r->active = calloc(workers, sizeof *r->active);
    r->held = calloc(workers, sizeof *r->held);
    r->halt = calloc(workers, sizeof *r->halt);
    r->cancel = calloc(workers, sizeof *r->cancel);
    r->retry = (tfs_retry_policy){TFS_RETRY_BASE_MS_DEFAULT,
                                  r->cfg->retry_max_backoff_ms ? r->cfg->retry_max_backoff_ms
                                                               : TFS_RETRY_MAX_BACKOFF_MS_DEFAULT};
    tfs_lease_node_id(r->cfg->node_id, r->node, sizeof r->node);
    if (!r->threads || !r->next_due_ms || !r->active || !r->held || !r->halt || !r->cancel) {
        tfs_runner_stop(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    /* Counted before it starts: a thread may be gone before pthread_create returns. The
     * last two are the scheduler (there even with no schedule: a reload may add one) and
     * the lease thread. */
    for (unsigned i = 0; i <= workers + 1; i++) {
        pthread_mutex_lock(&r->lock);
        r->alive++;
        pthread_mutex_unlock(&r->lock);
        int rc;
        if (i < workers) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa)
                *wa = (worker_arg){r, i};
            rc = wa ? pthread_create(&r->threads[i], NULL, worker_main, wa) : ENOMEM;
            if (rc)
                free(wa);
        } else if (i == workers) {
            rc = pthread_create(&r->scheduler, NULL, scheduler_main, r);
        } else {
            rc = pthread_create(&r->leaser, NULL, leaser_main, r);
        }
        if (rc != 0) {
            thread_gone(r);
            tfs_runner_stop(r);
            return tfs_error_set(err, TFS_EIO, "could not start %s thread",
                                 i < workers    ? "a worker"
                                 : i == workers ? "the scheduler"
                                                : "the lease");
        }
        if (i < workers)
            r->n_threads++;
        else if (i == workers)
            r->has_scheduler = 1;
        else
            r->has_leaser = 1;
    }
    tfs_log_info("runner", "node \"%s\": leases of %lld ms renewed every %lld ms", r->node,
                 r->cfg->lease_ttl_ms, r->cfg->lease_heartbeat_ms);
    *out = r;
    return 0;
}

int tfs_runner_stop_within(tfs_runner *r, long long grace_ms)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, 1);
    for (unsigned i = 0; r->halt && i < r->n_threads; i++)
        atomic_store(&r->halt[i], 1);
    pthread_cond_broadcast(&r->wake);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (grace_ms >= 0) {
        deadline.tv_sec += grace_ms / 1000;
        deadline.tv_nsec += (grace_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    while (r->alive > 0) {
        if (grace_ms < 0)
            pthread_cond_wait(&r->gone, &r->lock);
        else if (pthread_cond_timedwait(&r->gone, &r->lock, &deadline) == ETIMEDOUT)
            break;
    }
    unsigned left = r->alive;
    pthread_mutex_unlock(&r->lock);
    if (left) {
        tfs_log_warn("runner", "%u threads still in a batch after %lld ms; abandoning them "
                     "(their transactions roll back, the runs resume at the next start-up)",
                     left, grace_ms);
        return TFS_ELIMIT;
    }
    for (unsigned i = 0; i < r->n_threads; i++)
        pthread_join(r->threads[i], NULL);
    if (r->has_scheduler)
        pthread_join(r->scheduler, NULL);
    if (r->has_leaser)
        pthread_join(r->leaser, NULL);
    while (r->head) {
        job *j = r->head;
        r->head = j->next;
        job_free(j);
    }
    /* Parked runs stay waiting (or queued) in the store and resume at the next start-up,
     * or on another node: their leases are released, so no death is counted. */
    tfs_store *s = NULL;
    tfs_error err = {0};
    while (r->parked) {
        job *j = r->parked;
        r->parked = j->next;
        if (j->lease.epoch && (s || tfs_store_open(r->cfg->state_conninfo, &s, &err) == 0))
            tfs_lease_release(s, &j->lease, &err);
        job_free(j);
    }
    tfs_store_close(s);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->gone);
    free(r->threads);
    free(r->next_due_ms);
    free(r->active);
    free(r->held);
    free(r->halt);
    free(r->cancel);
    tfs_config_free(r->sched_cfg);
    tfs_config_free(r->cfg);
    free(r);
    return 0;
}

void tfs_runner_stop(tfs_runner *r)
{
    tfs_runner_stop_within(r, -1);
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
        park(r, (unsigned)-1, j, "cancelled", 1);
        found = 1;
        break;
    }
    for (job *j = r->parked; !found && j; j = j->next)
        if (j->run_id == run_id) {
            j->final_state = "cancelled";
            found = 1;
        }
    for (unsigned i = 0; !found && i < r->n_threads; i++)
        if (r->active[i] == run_id) {
            atomic_store(&r->cancel[i], 1);
            atomic_store(&r->halt[i], 1);
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
    push_queue(r, j);
    return 0;
}

int tfs_runner_requeue(tfs_runner *r, int64_t run_id, const char *pair, const char *mode)
{
    pthread_mutex_lock(&r->lock);
    int here = is_local(r, run_id);
    pthread_mutex_unlock(&r->lock);
    return here ? 0 : enqueue(r, run_id, pair, mode);
}

int tfs_runner_submit(tfs_runner *r, tfs_store *s, const char *pair, const char *mode,
                      const char *actor, int64_t *run_id, tfs_error *err)
{
    return tfs_runner_submit_job(r, s, pair, mode, actor, NULL, run_id, err);
}

int tfs_runner_submit_job(tfs_runner *r, tfs_store *s, const char *pair, const char *mode,
                          const char *actor, const json_t *params, int64_t *run_id,
                          tfs_error *err)
{
    tfs_config *cfg = tfs_config_slot_get(r->slot);
    if (!tfs_config_pair_get(cfg, pair)) {
        tfs_error_set(err, TFS_ENOTFOUND, "unknown pair \"%s\"", pair);
        char list[256] = "";
        for (size_t i = 0; i < cfg->n_pairs; i++) {
            strncat(list, cfg->pairs[i].name, sizeof list - strlen(list) - 1);
            if (i + 1 < cfg->n_pairs)
                strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        tfs_error_hint(err, "the configured pairs are: %s", list[0] ? list : "(none)");
        tfs_config_free(cfg);
        return TFS_ENOTFOUND;
    }
    tfs_config_free(cfg);
    char *text = params ? json_dumps(params, JSON_COMPACT) : NULL;
    if (params && !text)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    int rc = tfs_store_run_create(s, pair, mode, actor, text, run_id, err);
    free(text);
    if (rc)
        return rc;
    if (enqueue(r, *run_id, pair, mode) != 0) {
        tfs_store_run_set_state(s, *run_id, "failed", "out of memory queueing the run", NULL, 0,
                                NULL);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    tfs_log_info("runner", "run %" PRId64 ": %s %s of %s queued by %s", *run_id, mode,
                 params ? "job" : "sync", pair, actor);
    return 0;
}

int tfs_runner_resume(tfs_runner *r, tfs_store *s, tfs_error *err)
{
    /* Under a configured node id, leases still held by this id are a previous life's:
     * that daemon died holding them. */
    int rc;
    if (r->cfg->node_id && (rc = tfs_lease_expire_node(s, r->node, err)))
        return rc;
    return poll_runs(r, s, r->cfg->workers, err);
}

const char *tfs_runner_node(const tfs_runner *r)
{
    return r->node;
}
