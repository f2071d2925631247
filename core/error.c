/* core/error.c — filling in tfs_error; see error.h. */
#include "error.h"

#include <stdio.h>
#include <string.h>

int tfs_error_setv(tfs_error *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        err->detail[0] = '\0';
        err->hint[0] = '\0';
    }
    return code;
}

int tfs_error_set(tfs_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tfs_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void tfs_error_detail(tfs_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void tfs_error_hint(tfs_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

void tfs_error_clear(tfs_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

void tfs_error_prefix(tfs_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t n = strlen(prefix), m = strlen(old);
    if (n + 2 >= sizeof err->message)
        n = sizeof err->message - 3;
    if (n + 2 + m >= sizeof err->message)
        m = sizeof err->message - n - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
}

const char *tfs_error_code_name(int code)
{
    switch (code) {
    case TFS_OK: return "ok";
    case TFS_EINVAL: return "invalid";
    case TFS_ENOMEM: return "out-of-memory";
    case TFS_EIO: return "io";
    case TFS_ENOTFOUND: return "not-found";
    case TFS_ECONFLICT: return "conflict";
    case TFS_ETRANSIENT: return "transient";
    case TFS_EPERMANENT: return "permanent";
    case TFS_ELIMIT: return "limit";
    default: return "error";
    }
}
