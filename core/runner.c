/* core/runner.c — queue and worker threads; see runner.h. */
#include "runner.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"

typedef struct job {
    struct job *next;
    int64_t run_id;
    char *pair;
    char *mode;
} job;

struct tfs_runner {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *head, *tail;
    atomic_int stop;
    pthread_t *threads;
    unsigned n_threads;
};

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->pair);
    free(j->mode);
    free(j);
}

static void *worker_main(void *arg)
{
    tfs_runner *r = arg;
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
        pthread_mutex_unlock(&r->lock);

        tfs_error err = {0};
        /* The pipeline (connections, Lua state) is made on first use and rebuilt if it
         * could not be made, e.g. while the state store was down. */
        if (!p && tfs_pipeline_new(r->cfg, r->plugins, &p, &err) != 0) {
            tfs_log_error("runner", "run %" PRId64 " could not start: %s", j->run_id,
                          err.message);
            tfs_store *s = NULL;
            tfs_error e2 = {0};
            if (tfs_store_open(r->cfg->state_conninfo, &s, &e2) == 0)
                tfs_store_run_set_state(s, j->run_id, "failed", err.message, NULL, &e2);
            tfs_store_close(s);
            job_free(j);
            continue;
        }
        tfs_pipeline_execute(p, j->run_id, j->pair, j->mode, &r->stop, &err);
        job_free(j);
    }
    tfs_pipeline_free(p);
    return NULL;
}

int tfs_runner_start(const tfs_config *cfg, const tfs_plugin_host *plugins, tfs_runner **out,
                     tfs_error *err)
{
    *out = NULL;
    tfs_runner *r = calloc(1, sizeof *r);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->plugins = plugins;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->threads = calloc(cfg->workers, sizeof *r->threads);
    if (!r->threads) {
        tfs_runner_stop(r);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        if (pthread_create(&r->threads[i], NULL, worker_main, r) != 0) {
            tfs_runner_stop(r);
            return tfs_error_set(err, TFS_EIO, "could not start worker thread %u", i);
        }
        r->n_threads++;
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
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < r->n_threads; i++)
        pthread_join(r->threads[i], NULL);
    while (r->head) {
        job *j = r->head;
        r->head = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r->threads);
    free(r);
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
        tfs_store_run_set_state(s, *run_id, "failed", "out of memory queueing the run", NULL,
                                NULL);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    tfs_log_info("runner", "run %" PRId64 ": %s sync of %s queued by %s", *run_id, mode, pair,
                 actor);
    return 0;
}

int tfs_runner_resume(tfs_runner *r, tfs_store *s, tfs_error *err)
{
    json_t *runs;
    int rc = tfs_store_unfinished_runs(s, &runs, err);
    if (rc)
        return rc;
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) {
        int64_t id = json_integer_value(json_object_get(run, "run_id"));
        const char *pair = json_string_value(json_object_get(run, "pair"));
        const char *mode = json_string_value(json_object_get(run, "mode"));
        if (!pair || !mode)
            continue;
        tfs_log_info("runner", "run %" PRId64 " of %s was left unfinished; resuming it", id,
                     pair);
        if (enqueue(r, id, pair, mode) != 0) {
            rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
            break;
        }
    }
    json_decref(runs);
    return rc;
}
