/* core/log.c — one log function, one line per call (a single write, so concurrent threads
 * never interleave inside a line). In JSON every string is escaped here, bytes that are not
 * UTF-8 become U+FFFD and a long message is cut at a character boundary, so a line always
 * parses and never splits. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
/* What the closing fields of a JSON line may take: the message gets what they leave. */
#define LOG_TAIL_MAX 2048

static tfs_log_level min_level = TFS_LOG_INFO;
static atomic_bool json_lines;

typedef struct log_context {
    int64_t run_id;
    char pair[128];
    char entity[128];
    char key[256];
    bool has_key;
} log_context;

static _Thread_local log_context ctx;

void tfs_log_set_level(tfs_log_level level)
{
    min_level = level;
}

void tfs_log_set_json(bool json)
{
    atomic_store(&json_lines, json);
}

bool tfs_log_json(void)
{
    return atomic_load(&json_lines);
}

void tfs_log_init_from_env(void)
{
    const char *v = getenv("TFS_LOG");
    if (!v)
        return;
    if (strcmp(v, "debug") == 0)
        min_level = TFS_LOG_DEBUG;
    else if (strcmp(v, "info") == 0)
        min_level = TFS_LOG_INFO;
    else if (strcmp(v, "warn") == 0)
        min_level = TFS_LOG_WARN;
    else if (strcmp(v, "error") == 0)
        min_level = TFS_LOG_ERROR;
}

void tfs_log_context_set(int64_t run_id, const char *pair, const char *entity)
{
    ctx.run_id = run_id;
    snprintf(ctx.pair, sizeof ctx.pair, "%s", pair ? pair : "");
    snprintf(ctx.entity, sizeof ctx.entity, "%s", entity ? entity : "");
}

void tfs_log_context_key(const char *key)
{
    ctx.has_key = key != NULL;
    snprintf(ctx.key, sizeof ctx.key, "%s", key ? key : "");
}

void tfs_log_context_clear(void)
{
    memset(&ctx, 0, sizeof ctx);
}

/* The length of the UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

typedef struct line {
    char *b;
    size_t len, cap;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        n = l->cap - l->len;
    memcpy(l->b + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* s as a JSON string (quotes included) in at most budget bytes: cut at a character
 * boundary with "..." when longer. */
static void put_jstr(line *l, const char *s, size_t budget)
{
    size_t limit = l->len + budget;
    if (limit > l->cap)
        limit = l->cap;
    if (limit < l->len + 5) {
        limit = l->len + 2; /* room for "" only */
        if (limit > l->cap)
            return;
        puts_(l, "\"\"");
        return;
    }
    put(l, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t stop = limit - 4; /* the closing quote and "..." */
    while (n > 0) {
        char esc[8];
        size_t elen, take;
        size_t seq = utf8_seq(p, n);
        if (seq == 0) {
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
            take = 1;
        } else if (seq > 1) {
            memcpy(esc, p, seq);
            elen = take = seq;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            elen = 2;
            take = 1;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            esc[0] = '\\';
            esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
            elen = 2;
            take = 1;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            elen = 6;
            take = 1;
        } else {
            esc[0] = (char)*p;
            elen = take = 1;
        }
        if (l->len + elen > stop) {
            puts_(l, "...");
            break;
        }
        put(l, esc, elen);
        p += take;
        n -= take;
    }
    put(l, "\"", 1);
}

static void put_field_name(line *l, const char *name)
{
    put(l, ",", 1);
    put_jstr(l, name, 64);
    put(l, ":", 1);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void stamp(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
}

static void write_json(tfs_log_level level, const char *component, const char *message,
                       const tfs_log_field *fields, unsigned n_fields)
{
    char buf[LOG_LINE_MAX], t[40];
    line l = {buf, 0, sizeof buf - 1}; /* one byte kept for the newline */
    stamp(t, sizeof t);
    puts_(&l, "{\"time\":\"");
    puts_(&l, t);
    puts_(&l, "\",\"level\":\"");
    puts_(&l, level_names[level & 3]);
    puts_(&l, "\",\"module\":");
    put_jstr(&l, component ? component : "core", 128);
    puts_(&l, ",\"message\":");
    put_jstr(&l, message, l.cap - l.len - LOG_TAIL_MAX);
    if (ctx.run_id > 0) {
        char n[32];
        snprintf(n, sizeof n, ",\"run\":%lld", (long long)ctx.run_id);
        puts_(&l, n);
    }
    if (ctx.pair[0]) {
        put_field_name(&l, "pair");
        put_jstr(&l, ctx.pair, 200);
    }
    if (ctx.entity[0]) {
        put_field_name(&l, "entity");
        put_jstr(&l, ctx.entity, 200);
    }
    if (ctx.has_key) {
        put_field_name(&l, "key");
        put_jstr(&l, ctx.key, 600);
    }
    for (unsigned i = 0; i < n_fields && l.cap - l.len > 96; i++) {
        put_field_name(&l, fields[i].name);
        if (fields[i].s) {
            put_jstr(&l, fields[i].s, 300);
        } else {
            char n[40];
            double v = fields[i].n;
            if (v == (double)(long long)v)
                snprintf(n, sizeof n, "%lld", (long long)v);
            else
                snprintf(n, sizeof n, "%.3f", v);
            puts_(&l, n);
        }
    }
    puts_(&l, "}");
    buf[l.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, l.len);
    (void)w;
}

static void write_text(tfs_log_level level, const char *component, const char *message)
{
    char buf[2048], t[40];
    stamp(t, sizeof t);
    int n = snprintf(buf, sizeof buf, "%s %-5s [%s] %s", t, level_names[level & 3],
                     component ? component : "core", message);
    if (n < 0)
        return;
    size_t len = strlen(buf);
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len >= sizeof buf - 1)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

static void emit(tfs_log_level level, const char *component, const tfs_log_field *fields,
                 unsigned n_fields, const char *fmt, va_list ap)
{
    char message[LOG_LINE_MAX - LOG_TAIL_MAX];
    if (level < min_level)
        return;
    vsnprintf(message, sizeof message, fmt, ap);
    if (atomic_load(&json_lines))
        write_json(level, component, message, fields, n_fields);
    else
        write_text(level, component, message);
}

void tfs_logv(tfs_log_level level, const char *component, const char *fmt, va_list ap)
{
    emit(level, component, NULL, 0, fmt, ap);
}

void tfs_logf(tfs_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, component, NULL, 0, fmt, ap);
    va_end(ap);
}

void tfs_log_fields(tfs_log_level level, const char *component, const tfs_log_field *fields,
                    unsigned n_fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, component, fields, n_fields, fmt, ap);
    va_end(ap);
}
