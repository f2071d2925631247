/* core/log.h — the one log function of the daemon. Lines go to stderr as
 * "<time> <level> [<component>] message"; libraries (libmicrohttpd, libpq notices, Lua
 * warnings) and plugins are routed through it with their own component name. */
#ifndef TFS_LOG_H
#define TFS_LOG_H

#include <stdarg.h>

#include "error.h"

typedef enum tfs_log_level {
    TFS_LOG_DEBUG = 0,
    TFS_LOG_INFO,
    TFS_LOG_WARN,
    TFS_LOG_ERROR,
} tfs_log_level;

/* Lines below this level are dropped (default INFO; TFS_LOG=debug|info|warn|error). */
void tfs_log_set_level(tfs_log_level level);
void tfs_log_init_from_env(void);
void tfs_logf(tfs_log_level level, const char *component, const char *fmt, ...)
    TFS_PRINTF(3, 4);
void tfs_logv(tfs_log_level level, const char *component, const char *fmt, va_list ap);

#define tfs_log_debug(comp, ...) do { tfs_logf(TFS_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define tfs_log_info(comp, ...) do { tfs_logf(TFS_LOG_INFO, comp, __VA_ARGS__); } while (0)
#define tfs_log_warn(comp, ...) do { tfs_logf(TFS_LOG_WARN, comp, __VA_ARGS__); } while (0)
#define tfs_log_error(comp, ...) do { tfs_logf(TFS_LOG_ERROR, comp, __VA_ARGS__); } while (0)

#endif
