/* core/breaker.h — a circuit breaker per system and for the state store.
 *
 * After `failures` transient failures in a row a breaker opens: runs that need its system
 * wait instead of failing or spinning, and only a prober calls the system, at growing
 * intervals (doubling up to max_probe_interval). When a probe answers the breaker goes
 * half-open and lets one caller through; its success closes the breaker, its failure opens
 * it again. Readers (GET /health, /sync/status) take a snapshot, which never does I/O.
 * Thread-safe; times are the caller's (milliseconds of a monotonic clock), so the state
 * machine is tested without waiting.
 */
#ifndef TFS_BREAKER_H
#define TFS_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum tfs_breaker_state {
    TFS_BREAKER_CLOSED,
    TFS_BREAKER_OPEN,
    TFS_BREAKER_HALF_OPEN,
} tfs_breaker_state;

typedef struct tfs_breaker_settings {
    unsigned failures;            /* transient failures in a row that open it (breaker.failures) */
    int64_t first_probe_ms;       /* the first probe interval */
    int64_t max_probe_interval_ms; /* the longest (breaker.max_probe_interval) */
} tfs_breaker_settings;

typedef struct tfs_breaker tfs_breaker;

/* What a reader may show: a copy taken under the breaker's lock. */
typedef struct tfs_breaker_snapshot {
    tfs_breaker_state state;
    unsigned failures;      /* in a row, since the last success */
    char last_error[512];   /* "" when none */
    int64_t since_ms;       /* when it entered its state */
    int64_t next_probe_ms;  /* when open: the next probe's time */
} tfs_breaker_snapshot;

/* A closed breaker named name (for its log lines, e.g. "system cama"); NULL when out of
 * memory. Owned: tfs_breaker_free (accepts NULL). */
tfs_breaker *tfs_breaker_new(const char *name, const tfs_breaker_settings *s, int64_t now_ms);
void tfs_breaker_free(tfs_breaker *b);

/* Whether a caller may use the system now: closed yes; open no; half-open once (the one
 * trial run), then no until that caller reports. */
bool tfs_breaker_allow(tfs_breaker *b, int64_t now_ms);
/* A call succeeded: closes the breaker and clears the failures. */
void tfs_breaker_success(tfs_breaker *b, int64_t now_ms);
/* A call failed transiently with message error: counts it and opens the breaker at the
 * threshold (or at once when half-open). Permanent failures are not the breaker's concern. */
void tfs_breaker_failure(tfs_breaker *b, const char *error, int64_t now_ms);

/* Whether the prober should probe now (open and its time has come). */
bool tfs_breaker_probe_due(tfs_breaker *b, int64_t now_ms);
/* The prober's result: an answer makes it half-open; no answer schedules the next probe at
 * twice the interval, up to the maximum. */
void tfs_breaker_probed(tfs_breaker *b, bool answered, const char *error, int64_t now_ms);

tfs_breaker_snapshot tfs_breaker_get(tfs_breaker *b);
/* "closed", "open", "half-open". */
const char *tfs_breaker_state_name(tfs_breaker_state s);

#endif
