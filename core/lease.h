/* core/lease.h — leases with fencing epochs on units of work, so that several daemons can
 * share one state store: a node executes a run only while it holds the run's lease, every
 * batch commit checks the lease's epoch in its own transaction (store_batch.c), and a node
 * that died leaves a lease that expires, after which any node takes the run over.
 *
 * A lease is a row of tfsync.leases keyed by a unit id. A unit is a run today ("run:42");
 * a chunk of a run can be one later ("run:42/chunk:3") without a change of schema. Taking
 * a lease bumps its epoch; whoever holds an older epoch can no longer commit.
 *
 * Taking over a lease that was not released (its holder died) counts a death of the run
 * at its checkpoint (its cursors and committed counts); a run that has died max_deaths
 * times at one checkpoint is failed instead of taken (a poison run: something in that batch
 * kills the daemon). These functions use the caller's connection (one thread's).
 */
#ifndef TFS_LEASE_H
#define TFS_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

typedef struct tfs_lease {
    char unit[64];
    int64_t run_id;
    int64_t epoch; /* 0: no lease (nothing is fenced) */
    char node[128];
} tfs_lease;

/* This daemon's node id: configured (may be NULL) or "hostname:pid". */
void tfs_lease_node_id(const char *configured, char *out, size_t size);

/* Takes the lease of run_id for node for ttl_ms into *out. TFS_ECONFLICT: another node
 * holds a live lease, another node is taking it, or the run is no longer queued or
 * running (or waiting). TFS_ELIMIT: the run died max_deaths times at its checkpoint and was marked
 * failed with that reason (in err) instead. */
int tfs_lease_claim(tfs_store *s, int64_t run_id, const char *node, long long ttl_ms,
                    unsigned max_deaths, tfs_lease *out, tfs_error *err);
/* Extends l to now + ttl_ms while it still holds its unit (TFS_ECONFLICT when not). */
int tfs_lease_renew(tfs_store *s, const tfs_lease *l, long long ttl_ms, tfs_error *err);
/* Releases the lease if l still holds it (a graceful end: no death is counted). */
int tfs_lease_release(tfs_store *s, const tfs_lease *l, tfs_error *err);
/* 0 while l still holds its unit (no one took it since: same epoch, not released, even
 * if expired), TFS_ECONFLICT when it lost it. A no-op for NULL or a lease of epoch 0. */
int tfs_lease_check(tfs_store *s, const tfs_lease *l, tfs_error *err);
/* Ends the leases node holds as if it had died (they expire now). For a daemon starting
 * under a configured node id, whose old leases are its previous life's, and for the
 * leases of a process on this host that no longer exists. */
int tfs_lease_expire_node(tfs_store *s, const char *node, tfs_error *err);

/* A run another node may take: queued with no live lease, or running or waiting with an
 * expired or released one (a waiting run's node keeps its lease while the run waits). */
typedef struct tfs_lease_candidate {
    int64_t run_id;
    char pair[128], mode[16];
} tfs_lease_candidate;
/* Up to max runs any node may take now, oldest first, into out (*n). Leases held by a
 * process of this host (hostname:pid) that no longer exists are expired on the way. */
int tfs_lease_candidates(tfs_store *s, tfs_lease_candidate *out, size_t max, size_t *n,
                         tfs_error *err);

#endif
