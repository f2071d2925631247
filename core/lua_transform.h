/* core/lua_transform.h — the sandboxed Lua 5.4 runtime that maps source records to target
 * records with the analyst's scripts in the transform directory.
 *
 * One tfs_lua per worker thread (a lua_State is not thread-safe). Scripts are loaded as
 * text only, on first use, and reloaded when their file changes, without a restart.
 *
 * Script contract: a script defines a global function map(rec) that gets the source record
 * as a table and returns a table keyed by target entity name, each value a record table or
 * a list of record tables, e.g. `return { pardat = {...}, asmt = {...} }`; nil or {} means
 * no target record. Source nulls arrive as tf.null (so a null field stays a field); in the
 * output nil and tf.null both mean null. Decimals arrive as Lua numbers (integers when they
 * have no fractional part); one the script copies unchanged to a decimal or text field
 * leaves with its source text. JSON values arrive as tables; arrays keep an array marker so
 * an empty array stays an array.
 *
 * A script may also define validate(rec, out): called after map() with the source record
 * and what map() returned, under the same sandbox and instruction budget, it returns the
 * list of problems it finds (a table of strings; nil or {} for none). The problems come
 * back with the output; the record is then refused with them (stage "validate").
 */
#ifndef TFS_LUA_TRANSFORM_H
#define TFS_LUA_TRANSFORM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "error.h"
#include "record.h"
#include "tfs_limits.h" /* tfs_lua_limits */

typedef struct tfs_lua tfs_lua;

typedef struct tfs_lua_output {
    tfs_record **recs; /* in the arena passed to tfs_lua_map, positional against targets */
    size_t n;
    const char **problems; /* what validate(rec, out) returned, in the arena; NULL: none */
    size_t n_problems;
} tfs_lua_output;

/* At most this many problems of one validate() call are kept (the count says how many). */
#define TFS_LUA_MAX_PROBLEMS 100

/* Creates a runtime over the transform directory (scripts, lookups/). limits may be NULL
 * for the defaults. Returns 0 or TFS_ENOMEM/TFS_EINVAL. */
int tfs_lua_new(const char *transform_dir, const tfs_lua_limits *limits, int roll_year,
                tfs_lua **out, tfs_error *err);
/* Frees the runtime; accepts NULL. */
void tfs_lua_free(tfs_lua *L);
/* A full garbage collection: what a run's records left behind is given back before the
 * runtime waits for the next run. */
void tfs_lua_collect(tfs_lua *L);
/* The bytes the runtime's state holds now (its capped allocator's count); 0 for NULL.
 * Call it on the thread that uses the runtime. */
size_t tfs_lua_memory(const tfs_lua *L);

/* Loads (or reloads, when changed on disk) a script by its file name relative to the
 * transform directory, and checks that it defines map(). Errors carry the file and line. */
int tfs_lua_load(tfs_lua *L, const char *script, tfs_error *err);

/* Loads the script from text (len bytes) instead of its file, as a fresh runtime does
 * to try an analyst's unsaved edit: the same sandbox and limits, errors with the script's
 * name and line, require() and lookups from the transform directory; the file is never
 * read or written, and this runtime keeps the text for the name (it does not reload it).
 * Returns what tfs_lua_load returns. */
int tfs_lua_load_text(tfs_lua *L, const char *script, const char *text, size_t len,
                      tfs_error *err);

/* Maps one source record with the script. targets are the entities the script may produce;
 * output records are allocated in arena and typed loosely from Lua (integer -> INT64,
 * float -> FLOAT64, string -> TEXT, boolean -> BOOL, table -> JSON, nil/tf.null -> NULL)
 * for the validator to coerce to the declared types; a finite float into a DECIMAL or TEXT
 * field is text of that type instead: the source decimal's own text when the float is one
 * unchanged, else the float's shortest round-trip text (for DECIMAL without an exponent).
 * key is the source record's key, put into error messages. An unknown entity or field name,
 * a script error, the instruction budget or the memory cap fail the call with TFS_EINVAL or
 * TFS_ELIMIT (so do the wall clock, lua.record_ms, and the stop flag), running out of
 * memory with TFS_ENOMEM, and a message like
 * `pacs_to_cama.lua:42: attempt to index a nil value (field 'x') (record 10042|2026)`. */
int tfs_lua_map(tfs_lua *L, const char *script, const tfs_record *src, const char *key,
                const tfs_sdk_entity *const *targets, size_t n_targets, tfs_arena *arena,
                tfs_lua_output *out, tfs_error *err);

/* What the script alone costs, for bench/lua_map.c: map() run n times under the same
 * sandbox and budgets as tfs_lua_map, on the source table tfs_lua_map builds (built once
 * here, not refilled), its result dropped without conversion. 0, or what tfs_lua_map
 * returns for a failed call. */
int tfs_lua_map_script_only(tfs_lua *L, const char *script, const tfs_record *src, long n,
                            tfs_error *err);

/* The flag the daemon sets to stop (NULL: none): a call running when it is set ends at the
 * next budget check (within a thousand instructions or a few thousand matcher steps) with
 * TFS_ELIMIT and a message saying so; tfs_lua_stopped then says it was the stop, so the
 * caller abandons the batch instead of dead-lettering the record. */
void tfs_lua_set_stop(tfs_lua *L, const atomic_int *stop);
/* Whether the last failed call ended because the stop flag was set. */
bool tfs_lua_stopped(const tfs_lua *L);

/* The roll year the runtime was made with (tf.roll_year). */
int tfs_lua_roll_year(const tfs_lua *L);

/* The version of a script as loaded (loading it when needed): 12 hex digits of a hash of
 * its text and of the modules it required, so a dead letter says which edit of the
 * mapping refused it. 0, or the script's load error. */
int tfs_lua_script_version(tfs_lua *L, const char *script, char out[13], tfs_error *err);

/* Whether code (len bytes) is listed in lookups/<table>.csv of the transform directory,
 * read as tf.lookup reads it (once, then again when the file changes): 1 yes, 0 no, or
 * TFS_EINVAL/TFS_EIO (the table cannot be read or parsed, with file and line), TFS_ENOMEM.
 * L is a tfs_lua (void * so it is a tfs_rules_lookup_fn). */
int tfs_lua_lookup_has(void *L, const char *table, const char *code, size_t len,
                       tfs_error *err);

#endif
