/* core/handoff.c — the reader → writer → committer hand-off; see handoff.h.
 *
 * One mutex and one condition variable guard two FIFO queues (to write, to commit), the
 * free slots, the batch being committed and the first failure. The reading side waits for
 * a free slot, so memory is bounded by the slots; each side takes the head of its queue,
 * so order is kept without sequence numbers.
 */
#include "handoff.h"

#include <pthread.h>
#include <stdlib.h>

/* A slot and the sorted key hashes its batch holds (reading changes only). */
typedef struct entry {
    void *slot;
    uint64_t *keys;
    size_t n_keys;
    int hashed; /* keys are known (else the batch waits for every earlier commit) */
} entry;

typedef struct handoff {
    const tfs_handoff_stages *st;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    entry entries[TFS_HANDOFF_MAX_SLOTS];
    size_t n_slots;
    entry *to_write[TFS_HANDOFF_MAX_SLOTS];
    size_t w_head, w_n;
    entry *to_commit[TFS_HANDOFF_MAX_SLOTS];
    size_t c_head, c_n;
    entry *committing; /* the batch the committing side holds */
    entry *free_slots[TFS_HANDOFF_MAX_SLOTS];
    size_t n_free;
    int reader_done, writer_done;
    int rc; /* the first failure of the writing or committing side */
    tfs_error err;
} handoff;

static void release(handoff *h, entry *e)
{
    h->st->release_slot(h->st->ctx, e->slot);
    pthread_mutex_lock(&h->lock);
    e->keys = NULL;
    e->n_keys = 0;
    e->hashed = 0;
    h->free_slots[h->n_free++] = e;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void fail(handoff *h, int rc, const tfs_error *err)
{
    pthread_mutex_lock(&h->lock);
    if (!h->rc) {
        h->rc = rc;
        h->err = *err;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int has_key(const entry *e, uint64_t k)
{
    return e && e->keys && bsearch(&k, e->keys, e->n_keys, sizeof k, cmp_u64) != NULL;
}

/* Whether e must wait before its compare: it shares a key (or a hash: then it waits,
 * harmlessly) with a batch not committed yet, or its keys are unknown and anything is
 * still to commit. Called with the lock held. */
static int must_wait(const handoff *h, const entry *e)
{
    if (!h->c_n && !h->committing)
        return 0;
    if (!e->hashed)
        return 1;
    for (size_t i = 0; i < e->n_keys; i++) {
        if (has_key(h->committing, e->keys[i]))
            return 1;
        for (size_t q = 0; q < h->c_n; q++)
            if (has_key(h->to_commit[(h->c_head + q) % h->n_slots], e->keys[i]))
                return 1;
    }
    return 0;
}

/* The writing side: each batch in read order, compared and written, then handed to the
 * committing side. */
static void *writer_main(void *arg)
{
    handoff *h = arg;
    const tfs_handoff_stages *st = h->st;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        while (h->w_n == 0 && !h->reader_done)
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->w_n == 0) {
            h->writer_done = 1;
            pthread_cond_broadcast(&h->cond);
            pthread_mutex_unlock(&h->lock);
            break;
        }
        entry *e = h->to_write[h->w_head];
        h->w_head = (h->w_head + 1) % h->n_slots;
        h->w_n--;
        if (st->batch_keys) {
            /* A key may come again in a later batch when reading changes: compared before
             * the earlier batch commits, it would be compared with the old hash. */
            pthread_mutex_unlock(&h->lock);
            e->hashed = st->batch_keys(st->ctx, e->slot, &e->keys, &e->n_keys) == 0;
            if (e->hashed)
                qsort(e->keys, e->n_keys, sizeof *e->keys, cmp_u64);
            pthread_mutex_lock(&h->lock);
            while (must_wait(h, e) && !h->rc)
                pthread_cond_wait(&h->cond, &h->lock);
        }
        int failed = h->rc != 0;
        pthread_mutex_unlock(&h->lock);

        tfs_error err = {0};
        /* After a failure queued batches are dropped: what was not committed is read
         * again when the run resumes. */
        int rc = failed ? 0 : st->write_batch(st->ctx, e->slot, &err);
        if (failed || rc) {
            if (rc)
                fail(h, rc, &err);
            release(h, e);
            continue;
        }
        pthread_mutex_lock(&h->lock);
        h->to_commit[(h->c_head + h->c_n) % h->n_slots] = e;
        h->c_n++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

/* The committing side: each written batch's transaction, in order. */
static void *committer_main(void *arg)
{
    handoff *h = arg;
    const tfs_handoff_stages *st = h->st;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        while (h->c_n == 0 && !h->writer_done)
            pthread_cond_wait(&h->cond, &h->lock);
        if (h->c_n == 0) {
            pthread_mutex_unlock(&h->lock);
            break;
        }
        entry *e = h->to_commit[h->c_head];
        h->c_head = (h->c_head + 1) % h->n_slots;
        h->c_n--;
        h->committing = e;
        int failed = h->rc != 0;
        pthread_mutex_unlock(&h->lock);

        tfs_error err = {0};
        int rc = failed ? 0 : st->commit_batch(st->ctx, e->slot, &err);
        if (rc)
            fail(h, rc, &err);
        /* Released before it stops counting as pending: a batch waiting on its keys is
         * compared only once this one's commit is done. */
        pthread_mutex_lock(&h->lock);
        h->committing = NULL;
        pthread_mutex_unlock(&h->lock);
        release(h, e);
    }
    return NULL;
}

static void reader_finish(handoff *h)
{
    pthread_mutex_lock(&h->lock);
    h->reader_done = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* The reading side, on the caller's thread: reads into free slots and queues them. */
static int read_loop(handoff *h, const atomic_int *stop, tfs_error *err)
{
    const tfs_handoff_stages *st = h->st;
    for (;;) {
        if (stop && atomic_load(stop))
            return tfs_error_set(err, TFS_ELIMIT, "stopped between batches");
        pthread_mutex_lock(&h->lock);
        while (h->n_free == 0 && !h->rc)
            pthread_cond_wait(&h->cond, &h->lock);
        entry *e = h->rc ? NULL : h->free_slots[--h->n_free];
        pthread_mutex_unlock(&h->lock);
        if (!e)
            return 0; /* a later side failed: its error is the run's */
        int last = 0;
        int rc = st->read_batch(st->ctx, e->slot, &last, err);
        if (rc) {
            release(h, e);
            return rc;
        }
        pthread_mutex_lock(&h->lock);
        h->to_write[(h->w_head + h->w_n) % h->n_slots] = e;
        h->w_n++;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        if (last)
            return 0;
    }
}

int tfs_handoff_run(const tfs_handoff_stages *st, void *const *slots, size_t n_slots,
                    const atomic_int *stop, tfs_error *err)
{
    if (n_slots == 0 || n_slots > TFS_HANDOFF_MAX_SLOTS)
        return tfs_error_set(err, TFS_EINVAL, "a hand-off needs 1 to %d slots, not %zu",
                             TFS_HANDOFF_MAX_SLOTS, n_slots);
    handoff h = {.st = st, .n_slots = n_slots};
    for (size_t i = 0; i < n_slots; i++) {
        h.entries[i].slot = slots[i];
        h.free_slots[h.n_free++] = &h.entries[i];
    }
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    int rc = 0;
    pthread_t writer, committer;
    if (pthread_create(&writer, NULL, writer_main, &h) != 0) {
        rc = tfs_error_set(err, TFS_EIO, "could not start the writer thread");
        goto out;
    }
    if (pthread_create(&committer, NULL, committer_main, &h) != 0) {
        reader_finish(&h);
        pthread_join(writer, NULL);
        rc = tfs_error_set(err, TFS_EIO, "could not start the committer thread");
        goto out;
    }
    rc = read_loop(&h, stop, err);
    reader_finish(&h);
    pthread_join(writer, NULL);
    pthread_join(committer, NULL);
    if (h.rc && (rc == 0 || rc == TFS_ELIMIT)) {
        rc = h.rc;
        if (err)
            *err = h.err;
    }
out:
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
    return rc;
}
