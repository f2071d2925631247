/* core/log.c — one log function, one line per call (a single write, so concurrent threads
 * never interleave inside a line). */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static tfs_log_level min_level = TFS_LOG_INFO;

void tfs_log_set_level(tfs_log_level level)
{
    min_level = level;
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

void tfs_logv(tfs_log_level level, const char *component, const char *fmt, va_list ap)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level & 3],
                     component ? component : "core");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n')
        len--;
    if (len >= sizeof line - 1)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void tfs_logf(tfs_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tfs_logv(level, component, fmt, ap);
    va_end(ap);
}
