/* core/tfs_limits.h — every default and bound of the daemon's limits in one place, like
 * Lua's luaconf.h: the config loader (config.c) checks and fills in the values with these,
 * and the modules that apply them (http.c; lua_transform.c) fall back to the same defaults
 * when a caller passes 0, so a default is never written twice.
 *
 * Not named limits.h: with core/ on the include path that would shadow the C library's
 * <limits.h> in every file (and system header) that includes it.
 *
 * Defaults are typed as their users hold them (size_t bytes, unsigned counts, uint64_t
 * instructions); the _MIN and _MAX bounds the config accepts are long long, as the config
 * reads integers.
 */
#ifndef TFS_LIMITS_H
#define TFS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* ---- HTTP server (listen.* in the config; tfs_http_config) ---- */

#define TFS_HTTP_PORT_DEFAULT 8080
#define TFS_HTTP_THREADS_DEFAULT 2u /* thread pool size */
#define TFS_HTTP_THREADS_MIN 1LL
#define TFS_HTTP_THREADS_MAX 64LL
#define TFS_HTTP_MAX_BODY_DEFAULT ((size_t)1 << 20) /* a larger request body gets 413 */
#define TFS_HTTP_MAX_BODY_MIN 1024LL
#define TFS_HTTP_MAX_BODY_MAX (64LL << 20)
/* Enough that 1,000 slow clients leave room for everyone else (each costs a descriptor and
 * at most TFS_HTTP_CONNECTION_MEMORY_DEFAULT); the daemon raises its open-file limit to fit. */
#define TFS_HTTP_MAX_CONNECTIONS_DEFAULT 4096u
#define TFS_HTTP_MAX_CONNECTIONS_MIN 16LL
#define TFS_HTTP_MAX_CONNECTIONS_MAX 65536LL
/* Per client address; 0 = no limit. Large, because a county's clients often sit behind one
 * proxy or NAT; the header deadline is what frees slots held by slow clients. */
#define TFS_HTTP_MAX_CONNECTIONS_PER_IP_DEFAULT 1024u
#define TFS_HTTP_MAX_CONNECTIONS_PER_IP_MAX 65536LL
#define TFS_HTTP_CONNECTION_TIMEOUT_S_DEFAULT 30u   /* idle seconds before a close */
#define TFS_HTTP_IDLE_TIMEOUT_MS_MIN 1000LL /* libmicrohttpd counts whole seconds */
#define TFS_HTTP_IDLE_TIMEOUT_MS_MAX 3600000LL
/* From a connection's accept (or a kept-alive request's first line) to the end of its
 * request headers; a client still sending headers then is closed. */
#define TFS_HTTP_HEADER_TIMEOUT_MS_DEFAULT 5000u
#define TFS_HTTP_HEADER_TIMEOUT_MS_MIN 100LL
#define TFS_HTTP_HEADER_TIMEOUT_MS_MAX 300000LL
/* Descriptors kept beyond max_connections for PostgreSQL, plugins, logs and files. */
#define TFS_HTTP_FD_RESERVE 256u
#define TFS_HTTP_CONNECTION_MEMORY_DEFAULT ((size_t)64 << 10) /* per connection */

/* ---- Lua transforms (lua.* in the config; tfs_lua_limits) ---- */

#define TFS_LUA_MEMORY_DEFAULT ((size_t)64 << 20) /* cap of one state's allocator */
#define TFS_LUA_MEMORY_MIN (1LL << 20)
#define TFS_LUA_MEMORY_MAX (1LL << 32)
#define TFS_LUA_INSTRUCTIONS_DEFAULT UINT64_C(10000000) /* budget of one map() call */
#define TFS_LUA_INSTRUCTIONS_MIN 1000LL
#define TFS_LUA_INSTRUCTIONS_MAX (1LL << 40)
#define TFS_LUA_MAX_STRING_DEFAULT ((size_t)1 << 20) /* longest string an output holds */
#define TFS_LUA_MAX_STRING_MIN 64LL
#define TFS_LUA_MAX_STRING_MAX (1LL << 30)
#define TFS_LUA_RECORD_MS_DEFAULT 1000u /* wall clock of one record's calls */
#define TFS_LUA_RECORD_MS_MIN 10LL
#define TFS_LUA_RECORD_MS_MAX 600000LL

/* ---- leases and resumption (lease.*, resume.*, node_id in the config; lease.h) ---- */

#define TFS_LEASE_TTL_MS_DEFAULT 30000LL /* a run's lease lasts this long unless renewed */
#define TFS_LEASE_TTL_MS_MIN 1000LL
#define TFS_LEASE_TTL_MS_MAX 3600000LL
#define TFS_LEASE_HEARTBEAT_MS_DEFAULT 5000LL /* how often a node renews its leases */
#define TFS_LEASE_HEARTBEAT_MS_MIN 100LL      /* and at most a third of the ttl */
#define TFS_LEASE_POLL_MS_DEFAULT 1000LL /* how often an idle node looks for runs to take */
#define TFS_LEASE_POLL_MS_MIN 100LL
#define TFS_LEASE_POLL_MS_MAX 600000LL
#define TFS_RESUME_MAX_DEATHS_DEFAULT 3LL /* deaths at one checkpoint before a run fails */
#define TFS_RESUME_MAX_DEATHS_MIN 1LL
#define TFS_RESUME_MAX_DEATHS_MAX 1000LL
#define TFS_NODE_ID_MAX 127 /* characters of a node id */

/* A runtime's limits (0 in a field: its default). */
typedef struct tfs_lua_limits {
    size_t memory_bytes;   /* cap of the state's allocator */
    uint64_t instructions; /* budget per map() call */
    size_t max_string;     /* longest string an output field may hold */
    unsigned record_ms;    /* wall clock per map() call (map and validate together) */
} tfs_lua_limits;

/* ---- shutdown (shutdown.* in the config) ---- */

/* How long SIGTERM waits for the batches in flight to finish; past it they are abandoned
 * (their transactions roll back) and the runs resume at the next start-up. */
#define TFS_SHUTDOWN_GRACE_MS_DEFAULT 5000LL
#define TFS_SHUTDOWN_GRACE_MS_MIN 100LL
#define TFS_SHUTDOWN_GRACE_MS_MAX 3600000LL
/* ---- healing outages (breaker.*, retry.*, state.connect_timeout in the config) ---- */

#define TFS_BREAKER_FAILURES_DEFAULT 3u /* transient failures in a row that open a breaker */
#define TFS_BREAKER_FAILURES_MIN 1LL
#define TFS_BREAKER_FAILURES_MAX 1000LL
#define TFS_BREAKER_FIRST_PROBE_MS_DEFAULT 250LL /* the first probe after opening */
#define TFS_BREAKER_MAX_PROBE_INTERVAL_MS_DEFAULT 30000LL /* probes back off up to this */
#define TFS_RETRY_BASE_MS_DEFAULT 100LL       /* the cap of a retry's first wait */
#define TFS_RETRY_MAX_BACKOFF_MS_DEFAULT 5000LL /* no wait between retries is longer */
#define TFS_STATE_CONNECT_TIMEOUT_S_DEFAULT 5LL /* libpq connect_timeout of the store */
#define TFS_STATE_CONNECT_TIMEOUT_S_MAX 3600LL
#define TFS_HEALTH_REFRESH_MS_DEFAULT 2000LL /* a closed breaker's system is checked this often */
/* Counting a source's change lag took t: it is counted again after t times this (health.c). */
#define TFS_HEALTH_LAG_COST_FACTOR 20LL
#define TFS_HEALTH_STUCK_MS_DEFAULT 2000LL   /* a check running longer shows its system down */
#define TFS_DURATION_MS_MAX (1LL << 40)

/* Guards (a pair's max_failed_ratio, max_delete_ratio) and how long a request waits for
 * the job it started (jobs.wait) before answering 202. */
#define TFS_MAX_FAILED_RATIO_DEFAULT 0.05
#define TFS_MAX_DELETE_RATIO_DEFAULT 0.10
#define TFS_JOB_WAIT_MS_DEFAULT 5000LL
#define TFS_JOB_WAIT_MS_MAX 600000LL
/* api.status_refresh: how often the status cache reads the whole state store again (what
 * other nodes and SQL changed; this node's own changes show at once). */
#define TFS_STATUS_REFRESH_MS_DEFAULT 1000LL
#define TFS_STATUS_REFRESH_MS_MIN 50LL
#define TFS_STATUS_REFRESH_MS_MAX 3600000LL
/* Dry runs: records of a pair's source POST /sync/validate maps (its "sample"), and
 * records one POST /transforms/{name}/test may carry. */
#define TFS_VALIDATE_SAMPLE_DEFAULT 20
#define TFS_VALIDATE_SAMPLE_MAX 1000
#define TFS_TRANSFORM_TEST_MAX_RECORDS 1000

#endif
