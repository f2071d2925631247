/* core/pipeline_private.h — what the pipeline's files share: the pipeline's parts, the
 * systems it opened, and the steps every kind of run uses (connecting, opening systems,
 * preparing an entity mapping). pipeline.c runs syncs (full, incremental); the jobs of a
 * pair have a file each: pipeline_replay.c (dead letters run again), pipeline_resolve.c
 * (a conflict decided by an operator), pipeline_validate.c (a dry run, nothing written).
 * Not for other modules. */
#ifndef TFS_PIPELINE_PRIVATE_H
#define TFS_PIPELINE_PRIVATE_H

#include <jansson.h>

#include "buf.h"
#include "health.h"
#include "lease.h"
#include "pipeline.h"
#include "retry.h"
#include "stage.h"
#include "store.h"

/* How a run ended, beyond its return code: a state other than succeeded/failed (partial,
 * held), and a job's answer, which the run's end records for the request waiting on it. */
typedef struct tfs_run_outcome {
    const char *state; /* static text; NULL: succeeded, or failed on an error */
    json_t *result;    /* owned; NULL: none */
    /* state "held": why, and {entity: deletions} the confirm must name the total of */
    char *held_reason;    /* owned */
    json_t *held_deletes; /* owned */
} tfs_run_outcome;

/* Batches in flight: one being read, one being written, one being committed and one
 * queued between them. */
#define TFS_PIPELINE_SLOTS 4

/* What a pair's system is opened for: a pair whose source and target are the same system
 * gets one instance for each, since each side runs on its own thread and an instance is
 * never called from two threads. */
enum { TFS_SIDE_SOURCE, TFS_SIDE_TARGET, TFS_N_SIDES };

typedef struct tfs_open_system {
    char *name;
    tfs_instance *inst;
} tfs_open_system;

struct tfs_pipeline {
    const tfs_config *cfg;
    const tfs_plugin_host *plugins;
    tfs_store *store;  /* the worker's, and the writing side's during a hand-off */
    tfs_store *cstore; /* the committing side's own connection */
    tfs_lua *lua;
    tfs_stage_job jobs[TFS_PIPELINE_SLOTS]; /* each with its own arena */
    tfs_buf scratch;             /* the reading side's */
    tfs_buf wscratch;            /* the writing side's */
    tfs_buf cscratch, cscratch2; /* the committing side's */
    tfs_open_system *systems[TFS_N_SIDES]; /* per role, up to n_systems each */
    size_t n_systems[TFS_N_SIDES];
    tfs_health *health;
    tfs_retry_policy retry;
    tfs_lease lease; /* of the run executing; epoch 0: none */
    tfs_run_outcome outcome; /* of the run executing, reset when it starts */
    int metrics_slot;        /* its Lua runtime's memory figure (tfs_metrics_lua_slot) */
};


/* Connects (or reconnects) both state store connections; a failure counts against the
 * store's breaker. */
int tfs_pipeline_store_ready(tfs_pipeline *p, tfs_error *err);
/* The worker's instance of a system in a role (TFS_SIDE_*), opened on first use and kept
 * for later runs. */
int tfs_pipeline_get_system(tfs_pipeline *p, const char *name, int role,
                            tfs_open_system **out, tfs_error *err);
/* Closes an instance (a broken connection must not serve the next run). */
void tfs_pipeline_drop_system(tfs_open_system *s);
/* Fills b's source entity and target entities from its mapping b->em and loads its script;
 * b->targets is malloc'd (free it). */
int tfs_pipeline_prepare_mapping(tfs_pipeline *p, tfs_stage_ctx *b, tfs_error *err);
/* The run's counts of an entity, or NULL. */
tfs_store_counts *tfs_pipeline_counts_of(tfs_store_run *run, const char *entity);

/* The jobs. proto is the run's stage context (its systems, stores, Lua runtime), run the
 * run with its params; each sets p->outcome (its result, and partial where records
 * failed again). A return other than 0 fails the job with err, unless the outcome's result
 * holds a "problem" the request answers. */
int tfs_pipeline_replay(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                        tfs_error *err);
int tfs_pipeline_resolve(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                         tfs_error *err);
int tfs_pipeline_validate(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                          tfs_error *err);

#endif
