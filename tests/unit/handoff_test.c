/* tests/unit/handoff_test.c — the reader → writer → committer hand-off with fake stages
 * (no PostgreSQL): commit order, the bound on batches in flight, a writer failure dropping
 * queued batches, the shared-key rule of incremental runs, the stop flag. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "handoff.h"

#define N_SLOTS 4
#define MAX_BATCHES 64

typedef struct fake_slot {
    int seq;    /* the batch it holds */
    int in_use; /* read into and not released yet */
    uint64_t keys[4];
    size_t n_keys;
} fake_slot;

typedef struct fake {
    pthread_mutex_t lock;
    int n_batches;       /* the last read says last at this many (0: never) */
    int next_seq;
    int reads, writes, commits, releases;
    int written[MAX_BATCHES], committed[MAX_BATCHES]; /* seq in the order done */
    int in_flight, max_in_flight;
    int reused_in_flight; /* a slot was read into while still in flight */
    int fail_write_at, fail_commit_at, fail_read_at; /* seq that fails (-1: none) */
    int stop_at;                                      /* seq whose read sets *stop */
    atomic_int *stop;
    long write_us, commit_us; /* how long each write and commit take */
    /* keys of batch seq: up to 4 per batch, 0 ends */
    uint64_t keys[MAX_BATCHES][4];
    int use_keys;
    double write_start[MAX_BATCHES], commit_end[MAX_BATCHES];
} fake;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int f_read(void *ctx, void *slot, int *last, tfs_error *err)
{
    fake *f = ctx;
    fake_slot *s = slot;
    pthread_mutex_lock(&f->lock);
    if (s->in_use)
        f->reused_in_flight = 1;
    s->in_use = 1;
    s->seq = f->next_seq++;
    f->reads++;
    if (++f->in_flight > f->max_in_flight)
        f->max_in_flight = f->in_flight;
    *last = f->n_batches && s->seq == f->n_batches - 1;
    s->n_keys = 0;
    for (int k = 0; k < 4 && f->keys[s->seq][k]; k++)
        s->keys[s->n_keys++] = f->keys[s->seq][k];
    if (s->seq == f->stop_at)
        atomic_store(f->stop, 1);
    int fail = s->seq == f->fail_read_at;
    pthread_mutex_unlock(&f->lock);
    return fail ? tfs_error_set(err, TFS_EPERMANENT, "read %d failed", s->seq) : 0;
}

static int f_keys(void *ctx, void *slot, uint64_t **keys, size_t *n)
{
    (void)ctx;
    fake_slot *s = slot;
    *keys = s->keys;
    *n = s->n_keys;
    return 0;
}

static int f_write(void *ctx, void *slot, tfs_error *err)
{
    fake *f = ctx;
    fake_slot *s = slot;
    pthread_mutex_lock(&f->lock);
    f->write_start[s->seq] = now_ms();
    f->written[f->writes++] = s->seq;
    pthread_mutex_unlock(&f->lock);
    sleep_us(f->write_us);
    if (s->seq == f->fail_write_at)
        return tfs_error_set(err, TFS_EPERMANENT, "could not write batch %d: refused", s->seq);
    return 0;
}

static int f_commit(void *ctx, void *slot, tfs_error *err)
{
    fake *f = ctx;
    fake_slot *s = slot;
    sleep_us(f->commit_us);
    if (s->seq == f->fail_commit_at)
        return tfs_error_set(err, TFS_ETRANSIENT, "could not commit batch %d", s->seq);
    pthread_mutex_lock(&f->lock);
    f->committed[f->commits++] = s->seq;
    f->commit_end[s->seq] = now_ms();
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static void f_release(void *ctx, void *slot)
{
    fake *f = ctx;
    fake_slot *s = slot;
    pthread_mutex_lock(&f->lock);
    s->in_use = 0;
    f->in_flight--;
    f->releases++;
    pthread_mutex_unlock(&f->lock);
}

static fake_slot slot_mem[N_SLOTS];
static void *slots[N_SLOTS];
static atomic_int stop_flag;

static void fake_init(fake *f, int n_batches)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->n_batches = n_batches;
    f->fail_write_at = f->fail_commit_at = f->fail_read_at = f->stop_at = -1;
    f->stop = &stop_flag;
    atomic_store(&stop_flag, 0);
    memset(slot_mem, 0, sizeof slot_mem);
    for (int i = 0; i < N_SLOTS; i++)
        slots[i] = &slot_mem[i];
}

static int run(fake *f, tfs_error *err)
{
    tfs_handoff_stages st = {.ctx = f, .read_batch = f_read, .write_batch = f_write,
                             .commit_batch = f_commit, .release_slot = f_release,
                             .batch_keys = f->use_keys ? f_keys : NULL};
    return tfs_handoff_run(&st, slots, N_SLOTS, &stop_flag, err);
}

Test(handoff, commits_in_read_order, .timeout = 20)
{
    fake f;
    fake_init(&f, 40);
    /* Writes fast, commits slow: the queues fill, and order still holds. */
    f.write_us = 200;
    f.commit_us = 1000;
    tfs_error err = {0};
    cr_assert_eq(run(&f, &err), 0, "%s", err.message);
    cr_assert_eq(f.commits, 40);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(f.written[i], i, "write %d was batch %d", i, f.written[i]);
        cr_assert_eq(f.committed[i], i, "commit %d was batch %d", i, f.committed[i]);
    }
    cr_assert_eq(f.releases, f.reads, "every slot read into is released");
}

Test(handoff, at_most_the_bound_in_flight, .timeout = 20)
{
    fake f;
    fake_init(&f, 30);
    f.commit_us = 2000; /* the committing side is the bottleneck */
    tfs_error err = {0};
    cr_assert_eq(run(&f, &err), 0, "%s", err.message);
    cr_assert_not(f.reused_in_flight, "a slot was read into before it was released");
    cr_assert_leq(f.max_in_flight, N_SLOTS, "%d batches in flight, bound %d",
                  f.max_in_flight, N_SLOTS);
    /* And it does overlap: with a slow commit every slot fills. */
    cr_assert_eq(f.max_in_flight, N_SLOTS, "only %d in flight", f.max_in_flight);
    cr_assert_eq(f.in_flight, 0);
}

Test(handoff, writer_failure_drops_queued_batches, .timeout = 20)
{
    fake f;
    fake_init(&f, 0); /* an endless source: only the failure ends the run */
    f.fail_write_at = 5;
    f.write_us = 3000; /* slow writes: the reading side queues batches behind batch 5 */
    tfs_error err = {0};
    int rc = run(&f, &err);
    cr_assert_eq(rc, TFS_EPERMANENT, "rc %d", rc);
    cr_assert_str_eq(err.message, "could not write batch 5: refused");
    cr_assert_eq(f.commits, 5, "batches before the failure commit (%d did)", f.commits);
    for (int i = 0; i < f.commits; i++)
        cr_assert_eq(f.committed[i], i);
    /* Batches read after 5 were queued but never written. */
    cr_assert_gt(f.reads, 6, "the test needs batches queued behind the failure");
    cr_assert_eq(f.writes, 6, "written after the failure: %d writes", f.writes);
    cr_assert_eq(f.releases, f.reads, "dropped batches are released");
    cr_assert_leq(f.reads, 6 + N_SLOTS, "the reading side stops after the failure");
}

Test(handoff, committer_failure_reaches_the_caller, .timeout = 20)
{
    fake f;
    fake_init(&f, 0);
    f.fail_commit_at = 3;
    f.commit_us = 1000;
    tfs_error err = {0};
    int rc = run(&f, &err);
    cr_assert_eq(rc, TFS_ETRANSIENT, "rc %d", rc);
    cr_assert_str_eq(err.message, "could not commit batch 3");
    cr_assert_eq(f.commits, 3);
    /* Batch 3 and what the writer had taken on before the failure showed: nothing more. */
    cr_assert_leq(f.writes, 3 + N_SLOTS, "%d writes", f.writes);
    cr_assert_eq(f.releases, f.reads);
}

Test(handoff, read_failure_reaches_the_caller, .timeout = 20)
{
    fake f;
    fake_init(&f, 0);
    f.fail_read_at = 4;
    tfs_error err = {0};
    cr_assert_eq(run(&f, &err), TFS_EPERMANENT);
    cr_assert_str_eq(err.message, "read 4 failed");
    cr_assert_eq(f.commits, 4, "what was read before is committed");
    cr_assert_eq(f.releases, f.reads);
}

Test(handoff, shared_key_waits_for_the_commit, .timeout = 20)
{
    fake f;
    fake_init(&f, 3);
    f.use_keys = 1;
    f.commit_us = 50000; /* 50 ms commits: overlap or waiting shows in the times */
    f.keys[0][0] = 11, f.keys[0][1] = 12;
    f.keys[1][0] = 12, f.keys[1][1] = 13; /* shares 12 with batch 0 */
    f.keys[2][0] = 99;                     /* shares nothing */
    tfs_error err = {0};
    cr_assert_eq(run(&f, &err), 0, "%s", err.message);
    cr_assert_eq(f.commits, 3);
    cr_assert_geq(f.write_start[1], f.commit_end[0],
                  "batch 1 shares a key with batch 0 and was compared %.1f ms before that "
                  "commit ended", f.commit_end[0] - f.write_start[1]);
    cr_assert_lt(f.write_start[2], f.commit_end[1],
                 "batch 2 shares no key and must overlap batch 1's commit");
}

Test(handoff, without_keys_batches_overlap_the_commit, .timeout = 20)
{
    fake f;
    fake_init(&f, 2);
    f.commit_us = 50000;
    f.keys[0][0] = 7;
    f.keys[1][0] = 7; /* the same key, but no batch_keys: a full read never repeats one */
    tfs_error err = {0};
    cr_assert_eq(run(&f, &err), 0, "%s", err.message);
    cr_assert_lt(f.write_start[1], f.commit_end[0]);
}

Test(handoff, stop_flag_ends_reading, .timeout = 20)
{
    fake f;
    fake_init(&f, 0); /* endless: only the stop ends it */
    f.stop_at = 3;
    tfs_error err = {0};
    int rc = run(&f, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d (%s)", rc, err.message);
    cr_assert_eq(f.reads, 4, "no read after the stop: %d reads", f.reads);
    cr_assert_eq(f.commits, 4, "batches read before the stop are committed");
    cr_assert_eq(f.releases, f.reads);
}

Test(handoff, refuses_a_bad_bound)
{
    fake f;
    fake_init(&f, 1);
    tfs_handoff_stages st = {.ctx = &f, .read_batch = f_read, .write_batch = f_write,
                             .commit_batch = f_commit, .release_slot = f_release};
    tfs_error err = {0};
    cr_assert_eq(tfs_handoff_run(&st, slots, 0, NULL, &err), TFS_EINVAL);
    cr_assert_eq(f.reads, 0);
}
