/* core/log.h — the one log function of the daemon. Lines go to stderr, one write each, as
 * text "<time> <level> [<component>] message" (the default) or, with log.format "json", as
 * one JSON object a line: {"time", "level", "module", "message"} plus "run", "pair",
 * "entity" and "key" from the calling thread's log context when it has them, and the
 * fields a caller adds (the access log's). Libraries (libmicrohttpd, libpq notices, Lua
 * warnings) and plugins are routed through it with their own component name. */
#ifndef TFS_LOG_H
#define TFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

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
/* JSON lines from now on (log.format "json"), or text (false, the default). */
void tfs_log_set_json(bool json);
bool tfs_log_json(void);
void tfs_logf(tfs_log_level level, const char *component, const char *fmt, ...)
    TFS_PRINTF(3, 4);
void tfs_logv(tfs_log_level level, const char *component, const char *fmt, va_list ap);

/* A field a line carries beside its message in JSON (a text line has only the message):
 * text when s is not NULL, else the number n. Names are the caller's static strings. */
typedef struct tfs_log_field {
    const char *name;
    const char *s;
    double n;
} tfs_log_field;
void tfs_log_fields(tfs_log_level level, const char *component, const tfs_log_field *fields,
                    unsigned n_fields, const char *fmt, ...) TFS_PRINTF(5, 6);

/* The calling thread's log context: what run (0: none), pair and entity (NULL: none) it
 * works for; every line the thread writes in JSON carries them. Copied; a run's threads
 * set it when they start on its work, and clear it when they are done. */
void tfs_log_context_set(int64_t run_id, const char *pair, const char *entity);
/* The record key the thread's lines are about from now on (copied; NULL: none). */
void tfs_log_context_key(const char *key);
void tfs_log_context_clear(void);

#define tfs_log_debug(comp, ...) do { tfs_logf(TFS_LOG_DEBUG, comp, __VA_ARGS__); } while (0)
#define tfs_log_info(comp, ...) do { tfs_logf(TFS_LOG_INFO, comp, __VA_ARGS__); } while (0)
#define tfs_log_warn(comp, ...) do { tfs_logf(TFS_LOG_WARN, comp, __VA_ARGS__); } while (0)
#define tfs_log_error(comp, ...) do { tfs_logf(TFS_LOG_ERROR, comp, __VA_ARGS__); } while (0)

#endif
