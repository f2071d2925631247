/* core/error.h — the caller-owned error every fallible core function fills in.
 *
 * Functions return 0 on success and a negative TFS_E* code on failure; the details go into
 * a tfs_error passed last: a message ("could not X: cause"), a detail and a hint, the same
 * three the HTTP API puts into problem+json. A NULL tfs_error is allowed everywhere.
 */
#ifndef TFS_ERROR_H
#define TFS_ERROR_H

#include <stdarg.h>

enum {
    TFS_OK = 0,
    TFS_EINVAL = -1,     /* bad input: config, request, record */
    TFS_ENOMEM = -2,     /* allocation failed */
    TFS_EIO = -3,        /* file or system call failed */
    TFS_ENOTFOUND = -4,  /* unknown name or id */
    TFS_ECONFLICT = -5,  /* already exists or already running */
    TFS_ETRANSIENT = -6, /* a system is unreachable for now; retry may succeed */
    TFS_EPERMANENT = -7, /* a system refused for good */
    TFS_ELIMIT = -8,     /* a budget or size limit was hit */
};

typedef struct tfs_error {
    int code;
    char message[512];
    char detail[512];
    char hint[256];
} tfs_error;

#if defined(__GNUC__)
#define TFS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TFS_PRINTF(fmt, args)
#endif

/* Sets code and message (printf-style) and clears detail and hint; returns code so that
 * callers can write `return tfs_error_set(err, TFS_EINVAL, "...")`. */
int tfs_error_set(tfs_error *err, int code, const char *fmt, ...) TFS_PRINTF(3, 4);
int tfs_error_setv(tfs_error *err, int code, const char *fmt, va_list ap);
/* Adds a detail or a hint to an error already set. */
void tfs_error_detail(tfs_error *err, const char *fmt, ...) TFS_PRINTF(2, 3);
void tfs_error_hint(tfs_error *err, const char *fmt, ...) TFS_PRINTF(2, 3);
/* Clears an error. */
void tfs_error_clear(tfs_error *err);
/* Prefixes the message with "context: ", for errors passed up a layer. */
void tfs_error_prefix(tfs_error *err, const char *fmt, ...) TFS_PRINTF(2, 3);
/* A short stable name of a code ("invalid", "not-found", ...). */
const char *tfs_error_code_name(int code);

#endif
