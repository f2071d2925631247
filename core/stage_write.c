/* core/stage_write.c — a batch's write operations cut into the cb_write calls the target's
 * write limits allow (SDK 1.3), each call's op_source numbers, and the calls' results put
 * back in the batch's order; see tfs_stage_write_ops in stage.h.
 *
 * The operations of one source record stay in one call, so that a target without
 * transactions can apply them all or none (op_source tells it which belong together);
 * only a record whose operations alone pass a limit is cut, by the limit.
 */
#include <string.h>

#include "stage_private.h"

/* The bytes an operation counts for against max_bytes: its record as a JSON object, as
 * GET /audit shows it (the SDK's definition). */
static int op_bytes(tfs_buf *scratch, const tfs_sdk_write_op *op, size_t *out)
{
    tfs_buf_reset(scratch);
    if (tfs_record_json_append(scratch, op->record) != 0)
        return -1;
    *out = scratch->len;
    return 0;
}

/* Whether a call of n ops and bytes bytes fits (a limit of 0 is none). */
static int fits(size_t n, size_t bytes, size_t max_ops, size_t max_bytes)
{
    return (!max_ops || n <= max_ops) && (!max_bytes || bytes <= max_bytes);
}

/* The ends (exclusive op indexes) of the calls, in the arena: source records packed whole
 * into calls while they fit; a record that alone passes a limit gets calls of its own, cut
 * by the limits (an op alone past max_bytes is a call by itself: it cannot be cut). */
static int plan_calls(const tfs_sdk_write_op *ops, const size_t *owner, size_t n_ops,
                      size_t max_ops, size_t max_bytes, tfs_buf *scratch, tfs_arena *a,
                      size_t **ends, size_t *n_calls)
{
    size_t *bytes = NULL;
    *ends = tfs_arena_alloc(a, (n_ops ? n_ops : 1) * sizeof **ends);
    if (!*ends)
        return -1;
    if (max_bytes) {
        if (!(bytes = tfs_arena_alloc(a, (n_ops ? n_ops : 1) * sizeof *bytes)))
            return -1;
        for (size_t i = 0; i < n_ops; i++)
            if (op_bytes(scratch, &ops[i], &bytes[i]) != 0)
                return -1;
    }
    size_t n = 0, call_ops = 0, call_bytes = 0;
    for (size_t g = 0; g < n_ops;) {
        /* ops[g..e) are one source record's */
        size_t e = g, g_bytes = 0;
        do
            g_bytes += bytes ? bytes[e] : 0;
        while (++e < n_ops && owner[e] == owner[g]);
        size_t g_ops = e - g;
        if (fits(g_ops, g_bytes, max_ops, max_bytes)) {
            if (call_ops && !fits(call_ops + g_ops, call_bytes + g_bytes, max_ops, max_bytes)) {
                (*ends)[n++] = g;
                call_ops = call_bytes = 0;
            }
            call_ops += g_ops;
            call_bytes += g_bytes;
        } else {
            /* The record alone passes a limit: cut it by the limits, alone. */
            if (call_ops)
                (*ends)[n++] = g;
            call_ops = call_bytes = 0;
            for (size_t i = g; i < e; i++) {
                size_t b = bytes ? bytes[i] : 0;
                if (call_ops && !fits(call_ops + 1, call_bytes + b, max_ops, max_bytes)) {
                    (*ends)[n++] = i;
                    call_ops = call_bytes = 0;
                }
                call_ops++;
                call_bytes += b;
            }
            (*ends)[n++] = e;
            call_ops = call_bytes = 0;
        }
        g = e;
    }
    if (call_ops)
        (*ends)[n++] = n_ops;
    *n_calls = n;
    return 0;
}

int tfs_stage_write_ops(tfs_stage_ctx *b, const tfs_sdk_write_op *ops, const size_t *owner,
                        size_t n_ops, tfs_arena *a, tfs_results *res, tfs_error *err)
{
    if (tfs_results_init(res, n_ops) != 0)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t max_ops, max_bytes, *ends, n_calls;
    tfs_instance_write_limits(b->tgt, &max_ops, &max_bytes);
    tfs_buf local = TFS_BUF_INIT;
    tfs_buf *scratch = b->write_scratch ? b->write_scratch : &local;
    int planned = plan_calls(ops, owner, n_ops, max_ops, max_bytes, scratch, a, &ends,
                             &n_calls);
    tfs_buf_free(&local);
    if (planned != 0) {
        tfs_results_free(res);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory planning the writes");
    }
    int rc = 0;
    for (size_t c = 0, start = 0; c < n_calls && rc == 0; start = ends[c++]) {
        size_t n = ends[c] - start;
        /* A node that lost the run's lease writes nothing more (a write already under way
         * when the lease is taken over is the window docs/decisions.md describes). */
        unsigned attempt = 0;
        do
            rc = tfs_lease_check(b->write_store, b->lease, err);
        while (tfs_stage_retry(b, b->store_breaker, b->write_store, &rc, &attempt,
                               "a lease check", err));
        if (rc)
            break;
        tfs_results call = {0};
        attempt = 0;
        for (;;) {
            if (tfs_results_init(&call, n) != 0) {
                rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
                break;
            }
            /* op_source: the source records of this call, counted from 0 (a call is
             * never empty). */
            call.source[0] = 0;
            for (size_t i = 1; i < n; i++)
                call.source[i] =
                    call.source[i - 1] + (owner[start + i] != owner[start + i - 1]);
            rc = tfs_instance_write(b->tgt, ops + start, n, &call, err);
            if (!tfs_stage_retry(b, b->tgt_breaker, NULL, &rc, &attempt, "a write", err))
                break;
            tfs_results_free(&call);
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            res->status[start + i] = call.status[i];
            res->message[start + i] = call.message[i]; /* taken over */
            call.message[i] = NULL;
            res->source[start + i] = call.source[i];
        }
        tfs_results_free(&call);
    }
    if (rc)
        tfs_results_free(res);
    return rc;
}
