/* core/lua_internal.h — what the files of the Lua runtime share, and nothing else sees: the
 * runtime struct, the script and lookup-table entries, and the functions one part of the
 * runtime calls in another (prefix tfs_lua_, like Lua's own lstate.h and friends).
 *
 * The runtime is split by concern: lua_transform.c (the public façade: create, free, load,
 * map), lua_sandbox.c (the capped allocator, the instruction budget, script environments,
 * require, errors of protected calls), lua_tflib.c (the tf helper module), lua_script.c
 * (script files, reload on change, lookup tables), lua_convert.c (records to Lua and Lua
 * to records) and lua_decimal.c (decimals as exact text both ways). Only lua_transform.h
 * is public.
 */
#ifndef TFS_LUA_INTERNAL_H
#define TFS_LUA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <lua.h>

#include "buf.h"
#include "lua_transform.h"

#define TFS_LUA_MAGIC 0x7466734cu /* "tfsL" */
#define TFS_LUA_MAX_ENT_CACHE 32
#define TFS_LUA_MAX_JSON_DEPTH 64 /* levels of JSON and of tables turned into JSON */
#define TFS_LUA_LOG "lua" /* log component */

/* What identifies a version of a file on disk. */
typedef struct tfs_lua_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} tfs_lua_stamp;

/* A module a script required: a change of it reloads the script. */
typedef struct tfs_lua_dep {
    struct tfs_lua_dep *next;
    char *path;
    tfs_lua_stamp st;
    uint64_t hash; /* of the text loaded, for the script's version */
} tfs_lua_dep;

typedef struct tfs_lua_script {
    struct tfs_lua_script *next;
    char *name; /* relative to the transform directory, as given */
    char *path;
    tfs_lua_stamp st; /* of the version loaded (or that failed to load) */
    bool have_st;     /* st is meaningful */
    int64_t checked;  /* monotonic ns of the last stat, 0 = never */
    int env_ref;      /* the script's globals */
    int map_ref;      /* its map() */
    int validate_ref; /* its validate(rec, out), or LUA_NOREF: it has none */
    uint64_t text_hash; /* of the script's text as loaded, for its version */
    int loaded_ref;   /* require()'s cache for this script */
    tfs_lua_dep *deps;
    /* The last load error, returned by every call until the file changes. */
    int load_code;
    char *load_msg, *load_detail;
    /* The source-record table, reused from call to call. */
    int rec_ref;
    const tfs_sdk_entity *rec_entity;
    bool rec_dirty; /* the script added a key to it: build a fresh one */
    bool pinned;    /* loaded from text given by a caller (an unsaved edit): never
                     * reloaded from its file */
} tfs_lua_script;

/* Per entity: a table holding the field names at 1..n (interned once) and name -> index,
 * and the addresses of those interned strings, so that a key of a table the script
 * returns is matched to its field by address (short strings are interned in Lua 5.4, so
 * the script's "parid" is the very same string). */
typedef struct tfs_lua_ent {
    const tfs_sdk_entity *e;
    const tfs_sdk_field *fields;
    size_t n;
    int ref;
    const char **names; /* tfs_malloc'd; the strings live in the info table */
} tfs_lua_ent;

typedef struct tfs_lua_lookup {
    struct tfs_lua_lookup *next;
    char *name;
    char *path;
    tfs_lua_stamp st;
    int ref; /* the code -> value table, LUA_NOREF when it must be (re)read */
} tfs_lua_lookup;

/* A source decimal of the current call that entered Lua as a float (lua_decimal.c). */
typedef struct tfs_lua_srcdec {
    double d;
    const char *text; /* borrowed from the source record, for the call */
    size_t len;
    bool ambiguous; /* another source decimal of a different value has this double */
} tfs_lua_srcdec;

/* Which budget ended a call. */
enum { TFS_LUA_HIT_NONE, TFS_LUA_HIT_INSTRUCTIONS, TFS_LUA_HIT_WALL, TFS_LUA_HIT_STOP };

/* What the state is doing, for the allocator and the message handler. */
enum { TFS_LUA_IDLE, TFS_LUA_IN_LUA, TFS_LUA_CONVERT };

struct tfs_lua {
    unsigned magic;
    lua_State *L;
    char *dir;
    tfs_lua_limits limits;
    int roll_year;

    /* allocator */
    size_t mem_used;
    bool mem_hit;    /* the cap refused an allocation in this call */
    bool oom_raised; /* our C code raised "not enough memory" in this call */
    char mem_where[192]; /* "script.lua:12" of the first refused allocation of a call */

    /* budgets of the current call: instructions (and the steps C functions charge), the
     * wall clock, the daemon's stop */
    uint64_t budget_left;
    int hook_count;
    bool budget_hit; /* any of them: from then on every instruction fails */
    int hit;         /* TFS_LUA_HIT_*: which one */
    int64_t deadline_ns; /* monotonic */
    uint64_t since_clock; /* steps charged by C since the clock was last read */
    const atomic_int *stop; /* set when the daemon stops; may be NULL */

    /* registry references and identities */
    int null_ref, array_mt_ref, template_ref;
    const void *tf_ptr; /* the read-only tf table every script shares */
    void (*open_tf)(tfs_lua *rt, lua_State *L); /* the tf module's opener, for set-up */
    const void *null_ptr, *array_mt_ptr;

    tfs_lua_script *scripts;
    tfs_lua_lookup *lookups;
    tfs_lua_ent ents[TFS_LUA_MAX_ENT_CACHE];
    size_t n_ents;

    /* the current call */
    int phase;
    tfs_lua_script *cur;
    const tfs_record *src;
    const tfs_sdk_entity *const *targets;
    size_t n_targets;
    tfs_arena *arena;
    tfs_lua_output *out;
    const char *load_buf;
    size_t load_len;
    /* the lookup asked by tfs_lua_lookup_has */
    const char *lk_table, *lk_code;
    size_t lk_code_len;
    int lk_found;
    tfs_lua_srcdec *decs; /* tfs_malloc'd, grown to the widest source entity */
    size_t n_decs, cap_decs;

    /* an error found by C code during a call (not a Lua error) */
    int conv_code;
    char conv_msg[512];
    char conv_hint[256];

    tfs_buf trace;   /* traceback of the last Lua error */
    tfs_buf scratch; /* CSV unescaping, address normalisation */
    tfs_buf jbuf;    /* JSON text of an output table */
    char warn[512];
    size_t warn_len;
};

/* The runtime a state belongs to (kept in the state's extra space). */
static inline tfs_lua *tfs_lua_rt(lua_State *L)
{
    return *(tfs_lua **)lua_getextraspace(L);
}

/* ---- tf.null and the array marker ---------------------------------------------------- */

static inline bool tfs_lua_is_null(const tfs_lua *rt, lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_topointer(L, idx) == rt->null_ptr;
}

static inline bool tfs_lua_is_nullish(const tfs_lua *rt, lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) || tfs_lua_is_null(rt, L, idx);
}

static inline bool tfs_lua_is_marked_array(const tfs_lua *rt, lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    bool yes = lua_topointer(L, -1) == rt->array_mt_ptr;
    lua_pop(L, 1);
    return yes;
}

static inline void tfs_lua_push_null(const tfs_lua *rt, lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->null_ref);
}

/* ---- lua_sandbox.c ------------------------------------------------------------------- */

/* Creates rt->L with the capped allocator and the sandbox's globals, the tf module (which
 * open_tf leaves on the stack: lua_tflib.c's, handed in so that the sandbox depends on no
 * other part of the runtime) and the template every script environment is copied from.
 * Returns 0 or TFS_ENOMEM/TFS_EINVAL. */
int tfs_lua_open_state(tfs_lua *rt, void (*open_tf)(tfs_lua *rt, lua_State *L),
                       tfs_error *err);
/* Pushes a fresh environment for script s (or one of its modules), whose require is a
 * closure of require_fn over s (light userdata), its module cache and tf (lua_script.c's
 * loader of modules). Raises on errors. */
void tfs_lua_push_env(tfs_lua *rt, lua_State *L, tfs_lua_script *s, lua_CFunction require_fn);
/* Runs f under lua_pcall with the message handler and the instruction budget, on an empty
 * stack; the phase is TFS_LUA_IN_LUA until f changes it. Returns the lua_pcall status. */
int tfs_lua_pcall(tfs_lua *rt, lua_CFunction f);
/* Builds err from a failed protected call of script s (Lua error on the stack, or the
 * conversion error in rt->conv_*), then leaves the state ready for the next call. key may
 * be NULL. Returns the TFS_E code. */
int tfs_lua_call_failed(tfs_lua *rt, tfs_lua_script *s, int status, const char *key,
                        tfs_error *err);
/* Raises Lua's "not enough memory" from C code that could not allocate, and marks the call
 * as out of memory (TFS_ENOMEM, not the script's fault). */
int tfs_lua_raise_oom(tfs_lua *rt, lua_State *L);
/* luaL_checkstack, but a stack that cannot grow (depths here are bounded) is out of
 * memory, not a script's "stack overflow". */
void tfs_lua_checkstack(tfs_lua *rt, lua_State *L, int n);
/* Charges steps of work done in C (what) to the call's budget, and every so often reads
 * the clock and the stop flag; raises a Lua error naming the budget when one is spent. */
void tfs_lua_charge(tfs_lua *rt, lua_State *L, uint64_t steps, const char *what);
/* Raises the memory cap's error for an allocation C code knows would not fit (before
 * trying it), with the script's position. */
int tfs_lua_raise_cap(tfs_lua *rt, lua_State *L);
/* Records an error found by C code during a call, prefixed with the script's name; the
 * protected function then returns normally. Returns code. */
int tfs_lua_conv_error(tfs_lua *rt, int code, const char *fmt, ...) TFS_PRINTF(3, 4);

/* ---- lua_match.c, lua_bounded.c ------------------------------------------------------ */

/* Puts the budgeted find, match, gmatch and gsub into the string library at index strlib. */
void tfs_lua_open_match(lua_State *L, int strlib);
/* Puts the bounded string.rep and the charged table, string and utf8 functions into the
 * libraries at those indices. */
void tfs_lua_open_bounded(lua_State *L, int strlib, int tablib, int utf8lib);

/* ---- lua_tflib.c --------------------------------------------------------------------- */

/* Creates tf.null and the array marker (their references go into rt) and leaves the tf
 * module table on the stack. Runs during state set-up, under lua_pcall. */
void tfs_lua_open_tf(tfs_lua *rt, lua_State *L);

/* ---- lua_script.c -------------------------------------------------------------------- */

/* [A-Za-z0-9_-]+: a module or lookup table name, so that it can never leave its folder. */
bool tfs_lua_plain_name(const char *s, size_t len);
/* Reads a whole file into a Lua userdata left on the stack (so a Lua error can never leak
 * it); *data points into it. Returns 0 (one value pushed) or an errno value (none). */
int tfs_lua_read_file(lua_State *L, const char *path, const char **data, size_t *len,
                      tfs_lua_stamp *st);
/* Records that s required the module at path (in this version, whose text has hash), so
 * that a change of it reloads s and changes its version. Returns 0 or TFS_ENOMEM. */
int tfs_lua_script_add_dep(tfs_lua_script *s, const char *path, const tfs_lua_stamp *st,
                           uint64_t hash);
/* Finds or creates the entry of script name, (re)loading it when force is set or when its
 * files have not been checked for a second and changed. *out is borrowed from rt. */
int tfs_lua_script_get(tfs_lua *rt, const char *name, bool force, tfs_lua_script **out,
                       tfs_error *err);
/* Pushes the code -> value table of lookups/<name>.csv, reading it on first use. Raises
 * on errors. */
void tfs_lua_push_lookup(tfs_lua *rt, lua_State *L, const char *name, size_t nlen);
/* Frees every script and lookup entry (their Lua references go with the state). */
void tfs_lua_scripts_free(tfs_lua *rt);
/* Loads the script name from text (len bytes, copied) instead of its file and pins it
 * there: errors name the script and its line as for the file, require() still finds the
 * transform directory's modules. */
int tfs_lua_script_set_text(tfs_lua *rt, const char *name, const char *text, size_t len,
                            tfs_error *err);

/* ---- lua_convert.c ------------------------------------------------------------------- */

/* Pushes the source table of script s filled from src (reused from call to call). Returns
 * 0, or a conversion error (then nothing is pushed). Raises on Lua errors. */
int tfs_lua_push_source(tfs_lua *rt, lua_State *L, tfs_lua_script *s, const tfs_record *src);
/* Converts map()'s result at index res into rt->out, records in rt->arena. Returns 0 or a
 * conversion error. Raises on Lua errors. */
int tfs_lua_convert_output(tfs_lua *rt, lua_State *L, int res);
/* Drops the entity cache (its registry references and name arrays). */
void tfs_lua_ents_flush(tfs_lua *rt);

/* ---- lua_json.c ---------------------------------------------------------------------- */

/* Pushes the JSON text s as Lua values (arrays marked, null as tf.null). Returns 0, or
 * TFS_EINVAL with the reason in why for malformed text (nothing pushed). Raises Lua's memory
 * error when out of memory. */
int tfs_lua_push_json(tfs_lua *rt, lua_State *L, const char *s, size_t len, char *why,
                      size_t why_size);

/* ---- lua_decimal.c ------------------------------------------------------------------- */

/* Starts a call's source decimals: forgets the last call's and makes room for n_fields.
 * Returns 0 or TFS_ENOMEM. */
int tfs_lua_decimals_begin(tfs_lua *rt, size_t n_fields);
/* Pushes a source DECIMAL's text as a Lua number (an integer when it has no fractional
 * part and fits) and, when it becomes a float, remembers its text for the call. */
void tfs_lua_push_decimal(tfs_lua *rt, lua_State *L, const char *s, size_t len);
/* The text of a float going to a record: the text of the source decimal it is, unchanged,
 * else its shortest round-trip text; without an exponent when plain is set. *text is buf
 * or borrowed from the source record (for the call). Returns 0, TFS_EINVAL for a NaN or an
 * infinity, or TFS_ELIMIT when buf (at least 32 bytes) is too small. */
int tfs_lua_float_text(tfs_lua *rt, double d, bool plain, char *buf, size_t size,
                       const char **text, size_t *len);

#endif
