/* core/handoff.h — the bounded hand-off of a run's batches between three threads: the
 * reading side (the caller's thread) reads and maps a batch, a writer thread compares and
 * writes it, a committer thread commits its state store transaction, all three at once on
 * different batches.
 *
 * What it guarantees, whatever the stages do: batches are written and committed in read
 * order, one at a time on each side; at most n_slots batches are in flight (read and not
 * yet released); after a failure of any stage no further batch is written or committed
 * (queued ones are dropped, released unwritten) and the first failure is the caller's;
 * a stop request is honoured between reads. With batch_keys, a batch that shares a key with
 * one not yet committed is compared only once that one is committed, so it sees what the
 * earlier one wrote to the sync map; other batches overlap. The stages know nothing of
 * threads: each is called on one side only.
 */
#ifndef TFS_HANDOFF_H
#define TFS_HANDOFF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TFS_HANDOFF_MAX_SLOTS 8

/* The stages, each called with ctx and one of the caller's slots (a batch holder). */
typedef struct tfs_handoff_stages {
    void *ctx;
    /* Reading side: fills slot with the next batch and sets *last on the last one (which
     * is still handed on). A slot whose read failed is released, never handed on. */
    int (*read_batch)(void *ctx, void *slot, int *last, tfs_error *err);
    /* Writing side, optional: the hashes of the slot's keys, in any order (sorted in place
     * here), borrowed until the slot is released; -1 when they cannot be made (the batch
     * then waits until everything before it is committed). NULL when batches never share
     * a key (a full read). */
    int (*batch_keys)(void *ctx, void *slot, uint64_t **keys, size_t *n);
    /* Writing side: compare the batch with the sync map and write it to the target. */
    int (*write_batch)(void *ctx, void *slot, tfs_error *err);
    /* Committing side: the batch's state store transaction. */
    int (*commit_batch)(void *ctx, void *slot, tfs_error *err);
    /* Any side: the slot is done with (committed, dropped or its read failed) and may be
     * read into again once this returns. */
    void (*release_slot)(void *ctx, void *slot);
} tfs_handoff_stages;

/* Runs batches through the stages until a read sets last, a stage fails or *stop is set.
 * slots: n_slots (1 to TFS_HANDOFF_MAX_SLOTS) batch holders, borrowed. Returns 0;
 * TFS_ELIMIT when stopped between reads (batches already read are still written and
 * committed); or the first failure of a stage, with its err. Every slot read into is
 * released before it returns. */
int tfs_handoff_run(const tfs_handoff_stages *st, void *const *slots, size_t n_slots,
                    const atomic_int *stop, tfs_error *err);

#endif
