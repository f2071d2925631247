/* core/breaker.c — the circuit breaker's state machine; see breaker.h. */
#include "breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

struct tfs_breaker {
    pthread_mutex_t lock;
    char name[128];
    tfs_breaker_settings set;
    tfs_breaker_snapshot snap;
    int64_t interval_ms; /* the current probe interval while open */
    bool trial_out;      /* half-open: the one caller let through has not reported */
};

const char *tfs_breaker_state_name(tfs_breaker_state s)
{
    switch (s) {
    case TFS_BREAKER_CLOSED:
        return "closed";
    case TFS_BREAKER_OPEN:
        return "open";
    case TFS_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "?";
}

tfs_breaker *tfs_breaker_new(const char *name, const tfs_breaker_settings *s, int64_t now_ms)
{
    tfs_breaker *b = tfs_calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->set = *s;
    if (b->set.failures == 0)
        b->set.failures = 1;
    if (b->set.first_probe_ms <= 0)
        b->set.first_probe_ms = 1;
    if (b->set.max_probe_interval_ms < b->set.first_probe_ms)
        b->set.max_probe_interval_ms = b->set.first_probe_ms;
    b->snap.state = TFS_BREAKER_CLOSED;
    b->snap.since_ms = now_ms;
    return b;
}

void tfs_breaker_free(tfs_breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    tfs_free(b);
}

/* Under the lock. One log line per change of state, which is what an operator follows. */
static void enter(tfs_breaker *b, tfs_breaker_state s, int64_t now_ms)
{
    if (b->snap.state == s)
        return;
    tfs_log_level level = s == TFS_BREAKER_OPEN ? TFS_LOG_WARN : TFS_LOG_INFO;
    tfs_logf(level, "breaker", "%s: %s -> %s%s%s", b->name,
             tfs_breaker_state_name(b->snap.state), tfs_breaker_state_name(s),
             s == TFS_BREAKER_OPEN && b->snap.last_error[0] ? ": " : "",
             s == TFS_BREAKER_OPEN ? b->snap.last_error : "");
    b->snap.state = s;
    b->snap.since_ms = now_ms;
    b->trial_out = false;
    if (s == TFS_BREAKER_OPEN) {
        b->interval_ms = b->set.first_probe_ms;
        b->snap.next_probe_ms = now_ms + b->interval_ms;
    } else {
        b->snap.next_probe_ms = 0;
    }
}

bool tfs_breaker_allow(tfs_breaker *b, int64_t now_ms)
{
    (void)now_ms;
    pthread_mutex_lock(&b->lock);
    bool ok = b->snap.state == TFS_BREAKER_CLOSED;
    if (b->snap.state == TFS_BREAKER_HALF_OPEN && !b->trial_out) {
        b->trial_out = true;
        ok = true;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void tfs_breaker_success(tfs_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    b->snap.failures = 0;
    b->snap.last_error[0] = '\0';
    enter(b, TFS_BREAKER_CLOSED, now_ms);
    pthread_mutex_unlock(&b->lock);
}

void tfs_breaker_failure(tfs_breaker *b, const char *error, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    b->snap.failures++;
    snprintf(b->snap.last_error, sizeof b->snap.last_error, "%s", error ? error : "");
    if (b->snap.state == TFS_BREAKER_HALF_OPEN || b->snap.failures >= b->set.failures)
        enter(b, TFS_BREAKER_OPEN, now_ms);
    pthread_mutex_unlock(&b->lock);
}

bool tfs_breaker_probe_due(tfs_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    bool due = b->snap.state == TFS_BREAKER_OPEN && now_ms >= b->snap.next_probe_ms;
    pthread_mutex_unlock(&b->lock);
    return due;
}

void tfs_breaker_probed(tfs_breaker *b, bool answered, const char *error, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    if (b->snap.state == TFS_BREAKER_OPEN) {
        if (answered) {
            enter(b, TFS_BREAKER_HALF_OPEN, now_ms);
        } else {
            if (error)
                snprintf(b->snap.last_error, sizeof b->snap.last_error, "%s", error);
            int64_t max = b->set.max_probe_interval_ms;
            b->interval_ms = b->interval_ms > max / 2 ? max : b->interval_ms * 2;
            b->snap.next_probe_ms = now_ms + b->interval_ms;
        }
    }
    pthread_mutex_unlock(&b->lock);
}

tfs_breaker_snapshot tfs_breaker_get(tfs_breaker *b)
{
    pthread_mutex_lock(&b->lock);
    tfs_breaker_snapshot s = b->snap;
    pthread_mutex_unlock(&b->lock);
    return s;
}
