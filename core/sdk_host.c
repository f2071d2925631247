/* core/sdk_host.c — the host functions a plugin calls, in the order of tfs_sdk_host in
 * sdk/tfsync_plugin.h, so the two read side by side: logging, errors, batches, record
 * building, record reading, write results, and the 1.1 additions.
 *
 * Everything a plugin hands in is checked here (field indexes, NULL text, lengths), since a
 * plugin's mistake must not become the host's undefined behaviour. Records and cursors are
 * allocated from the batch's arena, never malloc'd one by one.
 */
#include "sdk_host.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin_host.h"
#include "plugin_private.h"
#include "record.h"

/* ---- logging and errors (1.0) --------------------------------------------------------- */

static void host_log(const tfs_sdk_host *host, tfs_sdk_log_level level, const char *fmt, ...)
    TFS_PRINTF(3, 4);
static void host_log(const tfs_sdk_host *host, tfs_sdk_log_level level, const char *fmt, ...)
{
    /* Every table lives inside its plugin (tfs_sdk_host_fill's contract). */
    const tfs_plugin *p = (const tfs_plugin *)((const char *)host - offsetof(tfs_plugin, host));
    char comp[96];
    snprintf(comp, sizeof comp, "plugin:%s", p->name ? p->name : "?");
    if ((unsigned)level > TFS_SDK_LOG_ERROR)
        level = TFS_SDK_LOG_ERROR;
    va_list ap;
    va_start(ap, fmt);
    tfs_logv((tfs_log_level)level, comp, fmt, ap);
    va_end(ap);
}

static void host_error_set(tfs_sdk_error *err, const char *fmt, ...) TFS_PRINTF(2, 3);
static void host_error_set(tfs_sdk_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt ? fmt : "", ap);
    va_end(ap);
    err->set = true;
}

/* ---- batches (1.0) -------------------------------------------------------------------- */

/* A new all-null record of the batch's entity, owned by the batch. The record array grows
 * by doubling inside the arena (the old array stays there until the batch is freed). */
static tfs_sdk_record *host_batch_add(tfs_sdk_batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        tfs_record **recs = tfs_arena_alloc(b->arena, cap * sizeof *recs);
        if (!recs) {
            b->oom = true;
            return NULL;
        }
        if (b->n)
            memcpy(recs, b->recs, b->n * sizeof *recs);
        b->recs = recs;
        b->cap = cap;
    }
    tfs_record *r = tfs_record_new(b->arena, b->entity);
    if (!r) {
        b->oom = true;
        return NULL;
    }
    b->recs[b->n++] = r;
    return r;
}

/* The cursor is copied into the arena: the plugin's buffer is its own. */
static int host_batch_set_cursor(tfs_sdk_batch *b, const void *cursor, size_t len)
{
    if (len && !cursor)
        return -1;
    unsigned char *c = tfs_arena_alloc(b->arena, len ? len : 1);
    if (!c)
        return -1;
    if (len)
        memcpy(c, cursor, len);
    b->cursor = c;
    b->cursor_len = len;
    b->cursor_set = true;
    return 0;
}

static void host_batch_set_done(tfs_sdk_batch *b)
{
    b->done = true;
}

/* ---- record building (1.0): 0, or -1 for a field out of range or out of memory ---------- */

static int host_set_null(tfs_sdk_record *r, size_t f)
{
    if (f >= r->n)
        return -1;
    r->values[f] = (tfs_value){.type = TFS_SDK_NULL};
    return 0;
}

static int host_set_bool(tfs_sdk_record *r, size_t f, int v)
{
    if (f >= r->n)
        return -1;
    r->values[f] = (tfs_value){.type = TFS_SDK_BOOL, .u.b = v != 0};
    return 0;
}

static int host_set_int(tfs_sdk_record *r, size_t f, int64_t v)
{
    if (f >= r->n)
        return -1;
    r->values[f] = (tfs_value){.type = TFS_SDK_INT64, .u.i = v};
    return 0;
}

static int host_set_float(tfs_sdk_record *r, size_t f, double v)
{
    if (f >= r->n)
        return -1;
    r->values[f] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = v};
    return 0;
}

/* len (size_t)-1: NUL-terminated. The type must be one of the text types. */
static int host_set_text(tfs_sdk_record *r, size_t f, tfs_sdk_type type, const char *s,
                         size_t len)
{
    if (!s)
        return -1;
    if (len == (size_t)-1)
        len = strlen(s);
    /* A geometry must be one as the SDK states it; the plugin's record then fails rather
     * than carrying something no target can read. */
    char why[160];
    if (type == TFS_SDK_GEOMETRY && tfs_geometry_check(s, len, NULL, why, sizeof why) != 0)
        return -1;
    return tfs_record_set_text(r, f, type, s, len);
}

/* ---- record reading (1.0): a field out of range reads as null, 0 or NULL --------------- */

static size_t host_n_fields(const tfs_sdk_record *r)
{
    return r->n;
}

static tfs_sdk_type host_type(const tfs_sdk_record *r, size_t f)
{
    return f < r->n ? r->values[f].type : TFS_SDK_NULL;
}

static int host_get_bool(const tfs_sdk_record *r, size_t f)
{
    return f < r->n && r->values[f].type == TFS_SDK_BOOL ? r->values[f].u.b : 0;
}

/* A FLOAT64 value is truncated toward zero. Casting a double outside int64's range (or NaN)
 * is undefined behaviour in C, so the result is defined here instead: NaN reads as 0, a
 * value at or past either end as INT64_MIN or INT64_MAX. 2^63 is exact in a double, and
 * every double below it converts. */
static int64_t host_get_int(const tfs_sdk_record *r, size_t f)
{
    if (f >= r->n)
        return 0;
    const tfs_value *v = &r->values[f];
    int64_t x;
    if (tfs_value_to_int64(v, &x, NULL) == 0)
        return x;
    /* What no int64 holds: a NaN or another type reads as 0, a float past either end as
     * that end. */
    if (v->type != TFS_SDK_FLOAT64 || isnan(v->u.f))
        return 0;
    return v->u.f > 0 ? INT64_MAX : INT64_MIN;
}

static double host_get_float(const tfs_sdk_record *r, size_t f)
{
    if (f >= r->n)
        return 0;
    if (r->values[f].type == TFS_SDK_FLOAT64)
        return r->values[f].u.f;
    if (r->values[f].type == TFS_SDK_INT64)
        return (double)r->values[f].u.i;
    return 0;
}

/* Borrowed text of the text types (until the record's arena is freed), NULL otherwise. */
static const char *host_get_text(const tfs_sdk_record *r, size_t f, size_t *len)
{
    if (f >= r->n || !tfs_type_is_text(r->values[f].type))
        return NULL;
    if (len)
        *len = r->values[f].len;
    return r->values[f].u.s;
}

/* ---- write results (1.0) -------------------------------------------------------------- */

static void host_result_set(tfs_sdk_results *r, size_t op, tfs_sdk_status status,
                            const char *fmt, ...) TFS_PRINTF(4, 5);
static void host_result_set(tfs_sdk_results *r, size_t op, tfs_sdk_status status,
                            const char *fmt, ...)
{
    if (!r || op >= r->n)
        return;
    r->status[op] = status;
    if (!fmt)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(r->message[op]);
    r->message[op] = strdup(msg); /* NULL when out of memory: the status still tells */
}

/* ---- 1.1 ------------------------------------------------------------------------------ */

static tfs_sdk_record *host_batch_add_delete(tfs_sdk_batch *b)
{
    tfs_record *r = host_batch_add(b);
    if (r)
        r->deleted = true;
    return r;
}

/* ---- 1.3 ------------------------------------------------------------------------------ */

/* The config array of the cb_check or cb_open running on this thread: a thread's own, so
 * instances opened by two workers at once each see their own, and only that pointer is
 * answered for (a stale or foreign one reads NULL). */
static _Thread_local struct {
    const char *const *config;
    const char *system, *dir;
} open_call;

void tfs_sdk_host_config_enter(const char *const *config, const char *system,
                               const char *config_dir)
{
    open_call.config = config;
    open_call.system = system;
    open_call.dir = config_dir;
}

void tfs_sdk_host_config_leave(void)
{
    open_call.config = NULL;
    open_call.system = open_call.dir = NULL;
}

static const char *host_config_system(const char *const *config)
{
    return config && config == open_call.config ? open_call.system : NULL;
}

static const char *host_config_dir(const char *const *config)
{
    return config && config == open_call.config ? open_call.dir : NULL;
}

/* An op out of range is its own source: the answer never points past the call's ops. */
static size_t host_op_source(const tfs_sdk_results *r, size_t op)
{
    if (!r || op >= r->n || !r->source)
        return op;
    return r->source[op];
}

/* The reason lives in the record's arena, as its text does. */
static int host_rec_fail(tfs_sdk_record *r, const char *fmt, ...) TFS_PRINTF(2, 3);
static int host_rec_fail(tfs_sdk_record *r, const char *fmt, ...)
{
    if (!r)
        return -1;
    char msg[512] = "could not read the record";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    const char *s = tfs_arena_strdup(r->arena, msg);
    if (!s)
        return -1;
    r->fail_reason = s;
    return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

void tfs_sdk_host_fill(tfs_sdk_host *h, int roll_year)
{
    memset(h, 0, sizeof *h);
    h->struct_size = sizeof *h;
    h->sdk_major = TFS_SDK_VERSION_MAJOR;
    h->sdk_minor = TFS_SDK_VERSION_MINOR;
    h->roll_year = roll_year;
    h->log = host_log;
    h->error_set = host_error_set;
    h->batch_add = host_batch_add;
    h->batch_set_cursor = host_batch_set_cursor;
    h->batch_set_done = host_batch_set_done;
    h->rec_set_null = host_set_null;
    h->rec_set_bool = host_set_bool;
    h->rec_set_int = host_set_int;
    h->rec_set_float = host_set_float;
    h->rec_set_text = host_set_text;
    h->rec_n_fields = host_n_fields;
    h->rec_type = host_type;
    h->rec_get_bool = host_get_bool;
    h->rec_get_int = host_get_int;
    h->rec_get_float = host_get_float;
    h->rec_get_text = host_get_text;
    h->result_set = host_result_set;
    /* 1.1 */
    h->batch_add_delete = host_batch_add_delete;
    /* 1.3 */
    h->config_system = host_config_system;
    h->config_dir = host_config_dir;
    h->op_source = host_op_source;
    h->rec_fail = host_rec_fail;
}
