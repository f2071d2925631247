/* core/lua_transform.c — the sandboxed Lua 5.4 transformer: one lua_State per runtime, a
 * capped allocator, an instruction budget per call, text-only loading, an environment of
 * its own per script (reloaded when the file changes), the `tf` helper module, and the
 * conversion of records to Lua tables and of the tables a script returns back to records.
 *
 * Hot path (tfs_lua_map, once per source record): no malloc of our own; the source table
 * is reused per script, field names are interned once per entity and reached by index,
 * and output values are written straight into records in the caller's arena. The Lua
 * side is guarded three ways, since the instruction hook never fires inside a C function
 * (string.rep, pattern matching): the hook bounds Lua code, the allocator bounds memory,
 * and output strings are bounded by limits.max_string.
 */
#include "lua_transform.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "buf.h"
#include "log.h"

#define TFS_LUA_MAGIC 0x7466734cu /* "tfsL" */

#define DEFAULT_MEMORY ((size_t)64 << 20)
#define DEFAULT_INSTRUCTIONS UINT64_C(10000000)
#define DEFAULT_MAX_STRING ((size_t)1 << 20)
#define MAX_SOURCE_FILE ((size_t)16 << 20) /* scripts, modules, lookup tables */
#define MAX_JSON_DEPTH 64
#define RECHECK_NS INT64_C(1000000000) /* a script's files are stat'ed at most once a second */
#define MAX_ENT_CACHE 32
#define MAX_OUTPUT_RECORDS 100000 /* target records from one source record */
#define LOG_COMPONENT "lua"

/* What identifies a version of a file on disk. */
typedef struct file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_stamp;

/* A module a script required: a change of it reloads the script. */
typedef struct dep {
    struct dep *next;
    char *path;
    file_stamp st;
} dep;

typedef struct script {
    struct script *next;
    char *name; /* relative to the transform directory, as given */
    char *path;
    file_stamp st;    /* of the version loaded (or that failed to load) */
    bool have_st;     /* st is meaningful */
    int64_t checked;  /* monotonic ns of the last stat, 0 = never */
    int env_ref;      /* the script's globals */
    int map_ref;      /* its map() */
    int loaded_ref;   /* require()'s cache for this script */
    dep *deps;
    /* The last load error, returned by every call until the file changes. */
    int load_code;
    char *load_msg, *load_detail;
    /* The source-record table, reused from call to call. */
    int rec_ref;
    const tfs_sdk_entity *rec_entity;
    bool rec_dirty; /* the script added a key to it: build a fresh one */
} script;

/* Per entity: a table holding the field names at 1..n (interned once) and name -> index,
 * and the addresses of those interned strings, so that a key of a table the script
 * returns is matched to its field by address (short strings are interned in Lua 5.4, so
 * the script's "parid" is the very same string). */
typedef struct ent_info {
    const tfs_sdk_entity *e;
    const tfs_sdk_field *fields;
    size_t n;
    int ref;
    const char **names; /* malloc'd; the strings live in the info table */
} ent_info;

typedef struct lookup {
    struct lookup *next;
    char *name;
    char *path;
    file_stamp st;
    int ref; /* the code -> value table, LUA_NOREF when it must be (re)read */
} lookup;

enum { PHASE_IDLE, PHASE_LUA, PHASE_CONVERT };

struct tfs_lua {
    unsigned magic;
    lua_State *L;
    char *dir;
    tfs_lua_limits limits;
    int roll_year;

    /* allocator */
    size_t mem_used;
    bool mem_hit;
    char mem_where[192]; /* "script.lua:12" of the first refused allocation of a call */

    /* instruction budget of the current call */
    uint64_t budget_left;
    int hook_count;
    bool budget_hit;

    /* registry references and identities */
    int null_ref, array_mt_ref, template_ref;
    const void *null_ptr, *array_mt_ptr;

    script *scripts;
    lookup *lookups;
    ent_info ents[MAX_ENT_CACHE];
    size_t n_ents;

    /* the current call */
    int phase;
    script *cur;
    const tfs_record *src;
    const tfs_sdk_entity *const *targets;
    size_t n_targets;
    tfs_arena *arena;
    tfs_lua_output *out;
    const char *load_buf;
    size_t load_len;
    json_t *pending_json; /* freed after the protected call, whatever happened */

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

static void ents_flush(tfs_lua *rt);

static tfs_lua *rt_of(lua_State *L)
{
    return *(tfs_lua **)lua_getextraspace(L);
}

/* ---- small utilities ------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stamp_of(const struct stat *st, file_stamp *fs)
{
    memset(fs, 0, sizeof *fs);
    fs->dev = st->st_dev;
    fs->ino = st->st_ino;
    fs->size = st->st_size;
    fs->mtime = st->st_mtim;
}

static bool stamp_eq(const file_stamp *a, const file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* True when the file's current stamp differs from st (or it cannot be stat'ed). */
static bool file_changed(const char *path, const file_stamp *st)
{
    struct stat sb;
    file_stamp now;
    if (stat(path, &sb) != 0)
        return true;
    stamp_of(&sb, &now);
    return !stamp_eq(&now, st);
}

static char *path_join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *p = malloc(la + lb + lc + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb);
    if (lc)
        memcpy(p + la + 1 + lb, c, lc);
    p[la + 1 + lb + lc] = '\0';
    return p;
}

/* [A-Za-z0-9_-]+: a module or lookup table name, so that it can never leave its folder. */
static bool plain_name(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A script name: relative, no "..", no empty or hidden path components. */
static bool script_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 255 || s[0] == '/')
        return false;
    const char *p = s;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || p[0] == '.')
            return false;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x21 || c == '\\')
                return false;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

/* Reads a whole file into malloc'd memory (C side, outside Lua). */
static int read_file_malloc(const char *path, char **data, size_t *len, file_stamp *st,
                            tfs_error *err, const char *what)
{
    int rc = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        rc = tfs_error_set(err, TFS_EIO, "could not open %s \"%s\": %s", what, path,
                           strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = tfs_error_set(err, TFS_EIO, "could not read %s \"%s\": not a regular file", what,
                           path);
        goto out;
    }
    if ((size_t)sb.st_size > MAX_SOURCE_FILE) {
        rc = tfs_error_set(err, TFS_ELIMIT, "could not read %s \"%s\": larger than %zu bytes",
                           what, path, MAX_SOURCE_FILE);
        goto out;
    }
    stamp_of(&sb, st);
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not read %s \"%s\": out of memory", what,
                           path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = tfs_error_set(err, TFS_EIO, "could not read %s \"%s\": %s", what, path,
                               strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Reads a whole file into a Lua userdata left on the stack (so a Lua error can never leak
 * it). No Lua call happens while the descriptor is open. Returns 0 or an errno value. */
static int read_file_lua(lua_State *L, const char *path, const char **data, size_t *len,
                         file_stamp *st)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return errno;
    if (!S_ISREG(sb.st_mode))
        return EISDIR;
    if ((size_t)sb.st_size > MAX_SOURCE_FILE)
        return EFBIG;
    size_t size = (size_t)sb.st_size;
    char *buf = lua_newuserdatauv(L, size + 1, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        lua_pop(L, 1);
        return e;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    stamp_of(&sb, st);
    *data = buf;
    *len = got;
    return 0;
}

/* ---- the capped allocator, the budget hook, warnings ----------------------------- */

/* Where the script was when the allocator refused: a memory error is raised without the
 * message handler, so this is the only moment its line is known. Walking the call stack
 * from inside the allocator is safe in Lua up to 5.4.4, which allocates a new stack before
 * touching the old one; later releases turn stack pointers into offsets around that
 * allocation, so there the position is left out. */
static void note_mem_where(tfs_lua *rt)
{
#if LUA_VERSION_RELEASE_NUM <= 50404
    if (rt->phase != PHASE_LUA || rt->mem_where[0] || !rt->L)
        return;
    lua_Debug ar;
    for (int level = 0; lua_getstack(rt->L, level, &ar); level++) {
        if (lua_getinfo(rt->L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(rt->mem_where, sizeof rt->mem_where, "%s:%d", ar.short_src,
                     ar.currentline);
            return;
        }
    }
#else
    (void)rt;
#endif
}

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    tfs_lua *rt = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        rt->mem_used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > rt->limits.memory_bytes - rt->mem_used) {
        rt->mem_hit = true;
        note_mem_where(rt);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    rt->mem_used = rt->mem_used - old + nsize;
    return p;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    tfs_lua *rt = rt_of(L);
    if (!rt->budget_hit) {
        rt->budget_left -= (uint64_t)rt->hook_count;
        if (rt->budget_left > 0) {
            rt->hook_count = rt->budget_left > INT_MAX ? INT_MAX : (int)rt->budget_left;
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
            return;
        }
        rt->budget_hit = true;
        /* From now on every instruction fails, so a pcall in the script cannot swallow
         * the error and go on. */
        rt->hook_count = 1;
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    }
    lua_getinfo(L, "Sl", ar);
    if (ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: instruction budget exceeded (%I instructions)",
                        ar->short_src, ar->currentline, (lua_Integer)rt->limits.instructions);
    else
        lua_pushfstring(L, "instruction budget exceeded (%I instructions)",
                        (lua_Integer)rt->limits.instructions);
    lua_error(L);
}

static void arm_budget(tfs_lua *rt)
{
    rt->budget_hit = false;
    rt->mem_hit = false;
    rt->mem_where[0] = '\0';
    rt->budget_left = rt->limits.instructions;
    rt->hook_count = rt->budget_left > INT_MAX ? INT_MAX : (int)rt->budget_left;
    lua_sethook(rt->L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
}

static void disarm_budget(tfs_lua *rt)
{
    lua_sethook(rt->L, NULL, 0, 0);
}

static void warn_fn(void *ud, const char *msg, int tocont)
{
    tfs_lua *rt = ud;
    if (rt->warn_len == 0 && !tocont && msg[0] == '@')
        return; /* control message ("@on", "@off"): warnings are always logged */
    size_t n = strlen(msg);
    if (n > sizeof rt->warn - 1 - rt->warn_len)
        n = sizeof rt->warn - 1 - rt->warn_len;
    memcpy(rt->warn + rt->warn_len, msg, n);
    rt->warn_len += n;
    rt->warn[rt->warn_len] = '\0';
    if (!tocont) {
        tfs_logf(TFS_LOG_WARN, LOG_COMPONENT, "%s%s%s", rt->cur ? rt->cur->name : "",
                 rt->cur ? ": " : "", rt->warn);
        rt->warn_len = 0;
    }
}

static int panic_fn(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    tfs_logf(TFS_LOG_ERROR, LOG_COMPONENT, "unprotected lua error: %s", msg ? msg : "?");
    return 0; /* lua aborts */
}

/* ---- the message handler --------------------------------------------------------- */

/* True when msg starts with "<source>:<line>: " (a chunk name may hold blanks, as in
 * [string "..."]). */
static bool has_position(const char *msg)
{
    const char *p = msg;
    while (*p && *p != ':' && *p != '\n' && p - msg < 256)
        p++;
    if (p == msg || *p != ':' || msg[0] == ' ')
        return false;
    p++;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    return p[0] == ':' && p[1] == ' ';
}

/* Adds the position of the innermost Lua function to a message without one, keeps the
 * traceback for the error's detail, and turns off the budget hook: an error that reaches
 * this handler is on its way out of the call, and a __tostring must not run here. */
static int msg_handler(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    disarm_budget(rt);
    if (rt->phase == PHASE_CONVERT)
        return 1;
    const char *msg;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
        msg = lua_tostring(L, 1);
    else if (lua_isnil(L, 1))
        msg = "error(nil) called";
    else
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    const char *final = msg;
    if (!has_position(msg)) {
        lua_Debug ar;
        for (int level = 1; lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
                final = lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
                break;
            }
        }
    }
    tfs_buf_reset(&rt->trace);
    luaL_traceback(L, L, NULL, 1);
    const char *tb = lua_tostring(L, -1);
    if (tb)
        tfs_buf_puts(&rt->trace, tb);
    lua_pop(L, 1);
    lua_pushstring(L, final);
    return 1;
}

/* ---- tf.null, tf.array and the sandbox helpers ------------------------------------ */

static bool is_null(const tfs_lua *rt, lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_topointer(L, idx) == rt->null_ptr;
}

static bool is_nullish(const tfs_lua *rt, lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) || is_null(rt, L, idx);
}

static bool is_marked_array(const tfs_lua *rt, lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    bool yes = lua_topointer(L, -1) == rt->array_mt_ptr;
    lua_pop(L, 1);
    return yes;
}

static void push_null(const tfs_lua *rt, lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->null_ref);
}

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

static int null_index(lua_State *L)
{
    return luaL_error(L, "attempt to index tf.null (a null value) with key '%s'",
                      luaL_tolstring(L, 2, NULL));
}

static int null_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to assign to a field of tf.null (a null value)");
}

static int null_len(lua_State *L)
{
    return luaL_error(L, "attempt to get the length of tf.null (a null value)");
}

/* setmetatable without __gc: a finalizer would run outside any budget. */
static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in transforms");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") == 0) {
        int k = lua_gc(L, LUA_GCCOUNT);
        int b = lua_gc(L, LUA_GCCOUNTB);
        lua_pushnumber(L, (lua_Number)k + (lua_Number)b / 1024);
        return 1;
    }
    if (strcmp(opt, "collect") == 0) {
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushinteger(L, 0);
        return 1;
    }
    if (strcmp(opt, "step") == 0) {
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, 0));
        return 1;
    }
    if (strcmp(opt, "isrunning") == 0) {
        lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING));
        return 1;
    }
    return luaL_error(L, "collectgarbage(\"%s\") is not allowed in a transform", opt);
}

/* print(...): one log line, tagged with the script. Upvalue 1: the script name. */
static int sb_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    tfs_logf(TFS_LOG_INFO, LOG_COMPONENT, "%s: %s", lua_tostring(L, lua_upvalueindex(1)),
             lua_tostring(L, -1));
    return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only, string chunks only, and the
 * calling script's environment unless one is given. Upvalue 1: that environment. */
static int sb_load(lua_State *L)
{
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING) {
        luaL_pushfail(L);
        lua_pushliteral(L, "load: only string chunks are allowed in a transform");
        return 2;
    }
    const char *chunk = lua_tolstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    (void)luaL_optstring(L, 3, "t"); /* whatever is asked, only text is loaded */
    int status = luaL_loadbufferx(L, chunk, len, name, "t");
    if (status != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4))
        lua_pushvalue(L, 4);
    else
        lua_pushvalue(L, lua_upvalueindex(1));
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static void push_env(tfs_lua *rt, lua_State *L, script *s);

/* require(name): loads <name>.lua from the transform directory, as text, into an
 * environment of its own; the result is cached per script. Upvalue 1: the script (light
 * userdata), upvalue 2: its cache table, upvalue 3: the environment's tf. */
static int sb_require(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    script *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    if (strcmp(name, "tf") == 0) {
        lua_pushvalue(L, lua_upvalueindex(3));
        return 1;
    }
    if (!plain_name(name, nlen))
        return luaL_error(L, "module '%s' not allowed: require loads only <name>.lua from "
                             "the transform directory (letters, digits, '_' and '-')",
                          name);
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA)
            return luaL_error(L, "module '%s' requires itself (a require cycle)", name);
        return 1;
    }
    lua_pop(L, 1);

    const char *path = lua_pushfstring(L, "%s/%s.lua", rt->dir, name); /* 2 */
    const char *data;
    size_t len;
    file_stamp st;
    int e = read_file_lua(L, path, &data, &len, &st); /* 3: the buffer */
    if (e != 0)
        return luaL_error(L, "module '%s' not found: could not read \"%s.lua\" in the "
                             "transform directory: %s",
                          name, name, strerror(e));
    /* Record the dependency first, so that fixing a broken module reloads the script
     * (once per path: a script may retry a broken module on every record). */
    dep *d;
    for (d = s->deps; d; d = d->next)
        if (strcmp(d->path, path) == 0)
            break;
    if (!d) {
        d = calloc(1, sizeof *d);
        char *dpath = d ? strdup(path) : NULL;
        if (!dpath) {
            free(d);
            return luaL_error(L, "out of memory");
        }
        d->path = dpath;
        d->next = s->deps;
        s->deps = d;
    }
    d->st = st;

    const char *chunkname = lua_pushfstring(L, "@%s.lua", name); /* 4 */
    if (luaL_loadbufferx(L, data, len, chunkname, "t") != LUA_OK) /* 5 */
        return lua_error(L);
    push_env(rt, L, s);
    lua_setupvalue(L, -2, 1);
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, s); /* "loading" */
    lua_rawset(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, lua_upvalueindex(2));
    return 1;
}

/* A fresh environment for a script or module: copies of the sandbox's globals (library
 * tables copied too, so that one script changing string.x does not change another's),
 * and its own print, load and require. */
static void push_env(tfs_lua *rt, lua_State *L, script *s)
{
    luaL_checkstack(L, 8, NULL);
    lua_createtable(L, 0, 48);
    int env = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->template_ref);
    int tpl = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tpl)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            int lib = lua_gettop(L);
            lua_createtable(L, 0, 32);
            lua_pushnil(L);
            while (lua_next(L, lib)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, -4);
            }
            lua_remove(L, lib);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pop(L, 1);

    lua_pushstring(L, s->name);
    lua_pushcclosure(L, sb_print, 1);
    lua_setfield(L, env, "print");
    lua_pushvalue(L, env);
    lua_pushcclosure(L, sb_load, 1);
    lua_setfield(L, env, "load");
    lua_pushlightuserdata(L, s);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->loaded_ref);
    lua_getfield(L, env, "tf");
    lua_pushcclosure(L, sb_require, 3);
    lua_setfield(L, env, "require");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
}

/* ---- the tf module ---------------------------------------------------------------- */

static int tf_isnull(lua_State *L)
{
    lua_pushboolean(L, is_nullish(rt_of(L), L, 1));
    return 1;
}

static int tf_coalesce(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (!is_nullish(rt, L, i)) {
            lua_pushvalue(L, i);
            return 1;
        }
    }
    return 0;
}

static int tf_array(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (lua_getmetatable(L, 1)) {
            if (lua_topointer(L, -1) != rt->array_mt_ptr)
                return luaL_argerror(L, 1, "the table already has a metatable");
            lua_pop(L, 1);
        }
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->array_mt_ref);
    lua_setmetatable(L, 1);
    return 1;
}

static int tf_isarray(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && is_marked_array(rt_of(L), L, 1));
    return 1;
}

static int tf_str(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    if (is_nullish(rt, L, 1)) {
        lua_pushliteral(L, "");
        return 1;
    }
    switch (lua_type(L, 1)) {
    case LUA_TSTRING:
        lua_settop(L, 1);
        return 1;
    case LUA_TNUMBER:
    case LUA_TBOOLEAN:
        luaL_tolstring(L, 1, NULL);
        return 1;
    default:
        return luaL_argerror(L, 1, lua_pushfstring(L, "cannot make a string of a %s",
                                                   luaL_typename(L, 1)));
    }
}

static bool ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* For the string helpers: nil and tf.null pass through (null in, null out), numbers become
 * strings. Returns NULL when the argument passes through. */
static const char *str_arg(lua_State *L, const char *fn, size_t *len)
{
    tfs_lua *rt = rt_of(L);
    if (is_nullish(rt, L, 1)) {
        lua_settop(L, 1);
        return NULL;
    }
    int t = lua_type(L, 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad argument #1 to '%s' (string expected, got %s)", fn,
                   luaL_typename(L, 1));
    return lua_tolstring(L, 1, len);
}

static int tf_trim(lua_State *L)
{
    size_t len;
    const char *s = str_arg(L, "tf.trim", &len);
    if (!s)
        return 1;
    size_t a = 0, b = len;
    while (a < b && ascii_space((unsigned char)s[a]))
        a++;
    while (b > a && ascii_space((unsigned char)s[b - 1]))
        b--;
    if (a == 0 && b == len)
        lua_settop(L, 1);
    else
        lua_pushlstring(L, s + a, b - a);
    return 1;
}

static int tf_upper(lua_State *L)
{
    size_t len;
    const char *s = str_arg(L, "tf.upper", &len);
    if (!s)
        return 1;
    size_t i = 0;
    while (i < len && !(s[i] >= 'a' && s[i] <= 'z'))
        i++;
    if (i == len) {
        lua_settop(L, 1);
        return 1;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len);
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        p[k] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    luaL_pushresultsize(&b, len);
    return 1;
}

/* A number from a number or numeric string; nil/tf.null give the default. */
static bool num_arg(lua_State *L, int idx, const char *fn)
{
    tfs_lua *rt = rt_of(L);
    if (is_nullish(rt, L, idx))
        return false;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        return true;
    }
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        size_t a = 0, b = len;
        while (a < b && ascii_space((unsigned char)s[a]))
            a++;
        while (b > a && ascii_space((unsigned char)s[b - 1]))
            b--;
        if (b > a) {
            lua_pushlstring(L, s + a, b - a);
            if (lua_stringtonumber(L, lua_tostring(L, -1)) != 0) {
                lua_remove(L, -2);
                return true;
            }
            lua_pop(L, 1);
        }
        luaL_error(L, "%s: \"%s\" is not a number", fn, s);
    }
    luaL_error(L, "bad argument #%d to '%s' (number expected, got %s)", idx, fn,
               luaL_typename(L, idx));
    return false;
}

static int tf_num(lua_State *L)
{
    if (num_arg(L, 1, "tf.num"))
        return 1;
    if (lua_isnoneornil(L, 2))
        lua_pushinteger(L, 0);
    else
        lua_pushvalue(L, 2);
    return 1;
}

static int tf_sqft_to_acres(lua_State *L)
{
    if (!num_arg(L, 1, "tf.sqft_to_acres"))
        return 0;
    lua_pushnumber(L, lua_tonumber(L, -1) / 43560.0);
    return 1;
}

static int tf_acres_to_sqft(lua_State *L)
{
    if (!num_arg(L, 1, "tf.acres_to_sqft"))
        return 0;
    if (lua_isinteger(L, -1))
        lua_pushinteger(L, lua_tointeger(L, -1) * 43560);
    else
        lua_pushnumber(L, lua_tonumber(L, -1) * 43560.0);
    return 1;
}

/* Reads 1..maxd digits; returns the count (0 = none). */
static int read_digits(const char *s, size_t len, size_t *pos, int maxd, int *val)
{
    int n = 0, v = 0;
    while (*pos < len && n < maxd && s[*pos] >= '0' && s[*pos] <= '9') {
        v = v * 10 + (s[*pos] - '0');
        (*pos)++;
        n++;
    }
    *val = v;
    return n;
}

static int tf_date(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    if (is_nullish(rt, L, 1))
        return 0;
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t a = 0, b = len;
    while (a < b && ascii_space((unsigned char)s[a]))
        a++;
    while (b > a && ascii_space((unsigned char)s[b - 1]))
        b--;
    if (a == b)
        return 0;
    const char *d = s + a;
    size_t n = b - a, pos = 0;
    int y = 0, m = 0, day = 0;
    bool ok = false;
    if (n >= 8 && read_digits(d, n, &pos, 4, &y) == 4 && pos < n && d[pos] == '-') {
        pos++;
        if (read_digits(d, n, &pos, 2, &m) > 0 && pos < n && d[pos] == '-') {
            pos++;
            /* a timestamp's date part is a date too */
            ok = read_digits(d, n, &pos, 2, &day) > 0 &&
                 (pos == n || d[pos] == 'T' || d[pos] == ' ');
        }
    } else {
        pos = 0;
        if (read_digits(d, n, &pos, 2, &m) > 0 && pos < n && d[pos] == '/') {
            pos++;
            if (read_digits(d, n, &pos, 2, &day) > 0 && pos < n && d[pos] == '/') {
                pos++;
                ok = read_digits(d, n, &pos, 4, &y) == 4 && pos == n;
            }
        }
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (ok) {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        ok = y >= 1 && m >= 1 && m <= 12 && day >= 1 &&
             day <= mdays[m - 1] + (m == 2 && leap ? 1 : 0);
    }
    if (!ok)
        return luaL_error(L, "tf.date: invalid date \"%s\" (expected YYYY-MM-DD or "
                             "MM/DD/YYYY)",
                          n > 40 ? "(too long)" : lua_pushlstring(L, d, n));
    char out[11];
    snprintf(out, sizeof out, "%04d-%02d-%02d", y, m, day);
    lua_pushlstring(L, out, 10);
    return 1;
}

/* Appends one CSV field (RFC 4180, surrounding blanks of unquoted fields dropped) to
 * rt->scratch. Returns false on a malformed field. */
static bool csv_field(tfs_lua *rt, const char *d, size_t len, size_t *pos)
{
    size_t p = *pos;
    tfs_buf_reset(&rt->scratch);
    while (p < len && (d[p] == ' ' || d[p] == '\t'))
        p++;
    if (p < len && d[p] == '"') {
        p++;
        for (;;) {
            if (p >= len)
                return false;
            if (d[p] == '"') {
                if (p + 1 < len && d[p + 1] == '"') {
                    tfs_buf_putc(&rt->scratch, '"');
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            tfs_buf_putc(&rt->scratch, d[p++]);
        }
        while (p < len && (d[p] == ' ' || d[p] == '\t'))
            p++;
        if (p < len && d[p] != ',' && d[p] != '\n' && d[p] != '\r')
            return false;
    } else {
        size_t start = p;
        while (p < len && d[p] != ',' && d[p] != '\n' && d[p] != '\r')
            p++;
        size_t end = p;
        while (end > start && (d[end - 1] == ' ' || d[end - 1] == '\t'))
            end--;
        tfs_buf_append(&rt->scratch, d + start, end - start);
    }
    *pos = p;
    return true;
}

/* Parses a lookup CSV (a header line, then code,value lines; blank lines and lines
 * starting with '#' skipped) into a new table left on the stack. */
static void parse_lookup(tfs_lua *rt, lua_State *L, const char *fname, const char *d,
                         size_t len)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    size_t p = 0;
    int line = 0;
    bool header = true;
    if (len >= 3 && memcmp(d, "\xEF\xBB\xBF", 3) == 0)
        p = 3;
    while (p < len) {
        line++;
        size_t ls = p;
        while (ls < len && (d[ls] == ' ' || d[ls] == '\t'))
            ls++;
        if (ls == len || d[ls] == '\n' || d[ls] == '\r' || d[ls] == '#') {
            while (p < len && d[p] != '\n')
                p++;
            p++;
            continue;
        }
        int nf = 0;
        for (;;) {
            if (!csv_field(rt, d, len, &p))
                luaL_error(L, "%s:%d: malformed CSV field", fname, line);
            if (rt->scratch.oom)
                luaL_error(L, "out of memory");
            nf++;
            if (nf <= 2)
                lua_pushlstring(L, tfs_buf_str(&rt->scratch), rt->scratch.len);
            if (p < len && d[p] == ',') {
                p++;
                continue;
            }
            break;
        }
        for (size_t k = ls; k < p; k++)
            if (d[k] == '\n')
                line++; /* newlines inside quoted fields */
        if (p < len && d[p] == '\r')
            p++;
        if (p < len && d[p] == '\n')
            p++;
        if (nf != 2)
            luaL_error(L, "%s:%d: expected 2 columns (code,value), found %d", fname, line,
                       nf);
        if (header) {
            header = false;
            lua_pop(L, 2);
            continue;
        }
        lua_pushvalue(L, -2);
        if (lua_rawget(L, t) != LUA_TNIL)
            luaL_error(L, "%s:%d: duplicate code \"%s\"", fname, line, lua_tostring(L, -3));
        lua_pop(L, 1);
        lua_rawset(L, t);
    }
}

/* Pushes the code -> value table of lookups/<name>.csv, reading it on first use. */
static void push_lookup(tfs_lua *rt, lua_State *L, const char *name, size_t nlen)
{
    lookup *lk;
    for (lk = rt->lookups; lk; lk = lk->next) {
        if (strcmp(lk->name, name) == 0)
            break;
    }
    if (lk && lk->ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lk->ref);
        return;
    }
    if (!plain_name(name, nlen))
        luaL_error(L, "tf.lookup: invalid table name \"%s\" (letters, digits, '_' and '-')",
                   name);
    int top = lua_gettop(L);
    const char *path = lua_pushfstring(L, "%s/lookups/%s.csv", rt->dir, name);
    const char *fname = lua_pushfstring(L, "lookups/%s.csv", name);
    const char *data;
    size_t len;
    file_stamp st;
    int e = read_file_lua(L, path, &data, &len, &st);
    if (e != 0)
        luaL_error(L, "tf.lookup: could not read \"%s\": %s", fname, strerror(e));
    parse_lookup(rt, L, fname, data, len);
    lua_pushvalue(L, -1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lk) {
        lk = calloc(1, sizeof *lk);
        if (lk) {
            lk->name = strdup(name);
            lk->path = strdup(path);
        }
        if (!lk || !lk->name || !lk->path) {
            if (lk) {
                free(lk->name);
                free(lk->path);
                free(lk);
            }
            luaL_unref(L, LUA_REGISTRYINDEX, ref);
            luaL_error(L, "out of memory");
        }
        lk->next = rt->lookups;
        rt->lookups = lk;
    }
    lk->ref = ref;
    lk->st = st;
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

static int tf_lookup(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    lua_settop(L, 3);
    if (is_nullish(rt, L, 2)) {
        lua_pushvalue(L, 3);
        return 1;
    }
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_argerror(L, 2, "string or number expected");
    push_lookup(rt, L, name, nlen); /* 4 */
    lua_pushvalue(L, 2);
    if (t == LUA_TNUMBER)
        lua_tostring(L, -1);
    if (lua_rawget(L, 4) == LUA_TNIL)
        lua_pushvalue(L, 3);
    return 1;
}

static int tf_address_suffix(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    size_t len;
    const char *s = str_arg(L, "tf.address_suffix", &len);
    if (!s)
        return 1;
    size_t a = 0, b = len;
    while (a < b && ascii_space((unsigned char)s[a]))
        a++;
    while (b > a && ascii_space((unsigned char)s[b - 1]))
        b--;
    while (b > a && s[b - 1] == '.')
        b--;
    while (b > a && ascii_space((unsigned char)s[b - 1]))
        b--;
    luaL_Buffer buf;
    char *p = luaL_buffinitsize(L, &buf, b - a);
    for (size_t i = a; i < b; i++) {
        char c = s[i];
        p[i - a] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    luaL_pushresultsize(&buf, b - a);
    int norm = lua_gettop(L);
    push_lookup(rt, L, "street_suffix", strlen("street_suffix"));
    lua_pushvalue(L, norm);
    if (lua_rawget(L, -2) == LUA_TNIL)
        lua_settop(L, norm);
    return 1;
}

static int tf_contains(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    if (is_nullish(rt, L, 1)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        bool eq = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (eq) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

static const luaL_Reg tf_funcs[] = {
    {"isnull", tf_isnull},
    {"coalesce", tf_coalesce},
    {"array", tf_array},
    {"isarray", tf_isarray},
    {"str", tf_str},
    {"trim", tf_trim},
    {"upper", tf_upper},
    {"num", tf_num},
    {"sqft_to_acres", tf_sqft_to_acres},
    {"acres_to_sqft", tf_acres_to_sqft},
    {"date", tf_date},
    {"lookup", tf_lookup},
    {"address_suffix", tf_address_suffix},
    {"contains", tf_contains},
    {NULL, NULL},
};

/* ---- state set-up ------------------------------------------------------------------ */

static const char *const base_allowed[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawlen", "rawset", "select", "tonumber", "tostring", "type", "xpcall",
    "warn", "_VERSION", NULL,
};

static void copy_lib(lua_State *L, int tpl, const char *name, const char *const *drop)
{
    lua_getglobal(L, name);
    int lib = lua_gettop(L);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, lib)) {
        bool skip = false;
        for (const char *const *d = drop; d && *d; d++)
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), *d) == 0)
                skip = true;
        if (skip) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_setfield(L, tpl, name);
    lua_pop(L, 1);
}

static int init_state(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);

    /* Gone from the state's own globals too, even though no script ever sees them. */
    static const char *const gone[] = {"dofile", "loadfile", "load", "print",
                                       "collectgarbage", NULL};
    for (const char *const *g = gone; *g; g++) {
        lua_pushnil(L);
        lua_setglobal(L, *g);
    }
    /* string.dump is reachable through any string's metatable: drop it at the source,
     * and hide that metatable. */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    /* tf.null: a frozen table whose type name in messages is "tf.null". */
    lua_newtable(L);
    lua_createtable(L, 0, 6);
    lua_pushliteral(L, "tf.null");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "tf.null");
    lua_setfield(L, -2, "__metatable");
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, null_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, null_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, null_len);
    lua_setfield(L, -2, "__len");
    lua_setmetatable(L, -2);
    rt->null_ptr = lua_topointer(L, -1);
    rt->null_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* The array marker's metatable. */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "tf.array");
    lua_setfield(L, -2, "__metatable");
    rt->array_mt_ptr = lua_topointer(L, -1);
    rt->array_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    luaL_newlib(L, tf_funcs);
    push_null(rt, L);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, rt->roll_year);
    lua_setfield(L, -2, "roll_year");
    int tf = lua_gettop(L);

    /* The template every script environment is copied from. */
    lua_newtable(L);
    int tpl = lua_gettop(L);
    for (const char *const *n = base_allowed; *n; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, tpl, *n);
    }
    lua_pushcfunction(L, sb_setmetatable);
    lua_setfield(L, tpl, "setmetatable");
    lua_pushcfunction(L, sb_collectgarbage);
    lua_setfield(L, tpl, "collectgarbage");
    static const char *const no_random[] = {"random", "randomseed", NULL};
    copy_lib(L, tpl, "string", NULL);
    copy_lib(L, tpl, "table", NULL);
    copy_lib(L, tpl, "math", no_random);
    copy_lib(L, tpl, "utf8", NULL);
    lua_pushvalue(L, tf);
    lua_setfield(L, tpl, "tf");
    rt->template_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return 0;
}

/* ---- runtime lifecycle -------------------------------------------------------------- */

static void free_deps(dep *d)
{
    while (d) {
        dep *next = d->next;
        free(d->path);
        free(d);
        d = next;
    }
}

static void script_clear_error(script *s)
{
    free(s->load_msg);
    free(s->load_detail);
    s->load_msg = s->load_detail = NULL;
    s->load_code = 0;
}

int tfs_lua_new(const char *transform_dir, const tfs_lua_limits *limits, int roll_year,
                tfs_lua **out, tfs_error *err)
{
    int rc = 0;
    tfs_lua *rt = NULL;
    struct stat sb;
    *out = NULL;
    if (!transform_dir || !*transform_dir)
        return tfs_error_set(err, TFS_EINVAL, "could not create lua runtime: no transform "
                                              "directory given");
    if (stat(transform_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        const char *why = "not a directory";
        if (access(transform_dir, F_OK) != 0)
            why = strerror(errno);
        rc = tfs_error_set(err, TFS_EINVAL, "could not use transform directory \"%s\": %s",
                           transform_dir, why);
        tfs_error_hint(err, "set transform_dir to the folder that holds the scripts");
        goto out;
    }
    rt = calloc(1, sizeof *rt);
    if (!rt) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not create lua runtime: out of memory");
        goto out;
    }
    rt->magic = TFS_LUA_MAGIC;
    rt->null_ref = rt->array_mt_ref = rt->template_ref = LUA_NOREF;
    rt->limits.memory_bytes = limits && limits->memory_bytes ? limits->memory_bytes
                                                             : DEFAULT_MEMORY;
    rt->limits.instructions = limits && limits->instructions ? limits->instructions
                                                             : DEFAULT_INSTRUCTIONS;
    rt->limits.max_string = limits && limits->max_string ? limits->max_string
                                                         : DEFAULT_MAX_STRING;
    if (rt->limits.max_string > UINT32_MAX)
        rt->limits.max_string = UINT32_MAX;
    rt->roll_year = roll_year;
    size_t dl = strlen(transform_dir);
    while (dl > 1 && transform_dir[dl - 1] == '/')
        dl--;
    rt->dir = strndup(transform_dir, dl);
    if (!rt->dir) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not create lua runtime: out of memory");
        goto out;
    }
    rt->L = lua_newstate(capped_alloc, rt);
    if (!rt->L) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not create lua state: out of memory");
        goto out;
    }
    *(tfs_lua **)lua_getextraspace(rt->L) = rt;
    lua_atpanic(rt->L, panic_fn);
    lua_setwarnf(rt->L, warn_fn, rt);
    lua_pushcfunction(rt->L, init_state);
    int status = lua_pcall(rt->L, 0, 0, 0);
    if (status != LUA_OK) {
        const char *m = lua_tostring(rt->L, -1);
        rc = tfs_error_set(err, status == LUA_ERRMEM ? TFS_ENOMEM : TFS_EINVAL,
                           "could not create lua state: %s", m ? m : "unknown error");
        if (status == LUA_ERRMEM)
            tfs_error_hint(err, "raise the memory cap (%zu bytes now)",
                           rt->limits.memory_bytes);
        goto out;
    }
    *out = rt;
    rt = NULL;
out:
    tfs_lua_free(rt);
    return rc;
}

void tfs_lua_free(tfs_lua *rt)
{
    if (!rt)
        return;
    if (rt->L) {
        ents_flush(rt);
        lua_close(rt->L);
    }
    script *s = rt->scripts;
    while (s) {
        script *next = s->next;
        free(s->name);
        free(s->path);
        free_deps(s->deps);
        script_clear_error(s);
        free(s);
        s = next;
    }
    lookup *lk = rt->lookups;
    while (lk) {
        lookup *next = lk->next;
        free(lk->name);
        free(lk->path);
        free(lk);
        lk = next;
    }
    tfs_buf_free(&rt->trace);
    tfs_buf_free(&rt->scratch);
    tfs_buf_free(&rt->jbuf);
    free(rt->dir);
    rt->magic = 0;
    free(rt);
}

/* ---- errors of a protected call ----------------------------------------------------- */

/* Builds err from a failed protected call (Lua error on the stack, or a conversion error
 * in rt->conv_*), then leaves the state ready for the next call. */
static int call_failed(tfs_lua *rt, script *s, int status, const char *key, tfs_error *err)
{
    lua_State *L = rt->L;
    disarm_budget(rt);
    int code = TFS_EINVAL;
    bool mem = status == LUA_ERRMEM || rt->mem_hit;
    if (rt->budget_hit || mem)
        code = TFS_ELIMIT;
    const char *msg = NULL;
    char buf[600];
    if (status == LUA_OK) {
        code = rt->conv_code;
        msg = rt->conv_msg;
    } else {
        msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!msg || status == LUA_ERRERR || (mem && !has_position(msg))) {
            snprintf(buf, sizeof buf, "%s: %s", rt->mem_where[0] ? rt->mem_where : s->name,
                     mem ? "not enough memory" : (msg ? msg : "unknown error"));
            msg = buf;
        } else if (!has_position(msg)) {
            /* raised by our own conversion code, outside any Lua function */
            snprintf(buf, sizeof buf, "%s: %s", s->name, msg);
            msg = buf;
        }
    }
    if (key)
        tfs_error_set(err, code, "%s (record %s)", msg, key);
    else
        tfs_error_set(err, code, "%s", msg);
    if (status != LUA_OK && rt->trace.len)
        tfs_error_detail(err, "%s", tfs_buf_str(&rt->trace));
    if (rt->budget_hit)
        tfs_error_hint(err, "the script ran more than %" PRIu64 " Lua instructions for one "
                            "record: look for an endless loop, or raise the instruction "
                            "budget",
                       rt->limits.instructions);
    else if (mem)
        tfs_error_hint(err, "the script's memory reached the cap of %zu bytes: look for "
                            "data kept across records or a huge string, or raise the cap",
                       rt->limits.memory_bytes);
    else if (status == LUA_OK && rt->conv_hint[0])
        tfs_error_hint(err, "%s", rt->conv_hint);
    lua_settop(L, 0);
    if (code == TFS_ELIMIT)
        lua_gc(L, LUA_GCCOLLECT);
    tfs_buf_reset(&rt->trace);
    return code;
}

static int conv_error(tfs_lua *rt, int code, const char *fmt, ...) TFS_PRINTF(3, 4);
static int conv_error(tfs_lua *rt, int code, const char *fmt, ...)
{
    char m[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(rt->conv_msg, sizeof rt->conv_msg, "%s: %s", rt->cur->name, m);
    rt->conv_code = code;
    return code;
}

/* ---- loading scripts ---------------------------------------------------------------- */

static int protected_load(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    script *s = rt->cur;
    lua_newtable(L);
    s->loaded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    push_env(rt, L, s); /* 1 */
    lua_pushfstring(L, "@%s", s->name);
    if (luaL_loadbufferx(L, rt->load_buf, rt->load_len, lua_tostring(L, -1), "t") != LUA_OK)
        return lua_error(L);
    lua_remove(L, -2);
    lua_pushvalue(L, 1);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 0);
    rt->phase = PHASE_CONVERT;
    if (lua_getfield(L, 1, "map") != LUA_TFUNCTION) {
        conv_error(rt, TFS_EINVAL, "script does not define a global function map(rec)");
        snprintf(rt->conv_hint, sizeof rt->conv_hint,
                 "define `function map(rec) ... return { entity = {...} } end` in the script");
        return 0;
    }
    s->map_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void script_unref(tfs_lua *rt, script *s)
{
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->env_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->map_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->loaded_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->rec_ref);
    s->env_ref = s->map_ref = s->loaded_ref = s->rec_ref = LUA_NOREF;
    s->rec_entity = NULL;
}

/* (Re)loads a script from disk. On failure the error is kept in the script and returned
 * by every call until one of its files changes. */
static int script_reload(tfs_lua *rt, script *s)
{
    char *data = NULL;
    size_t len = 0;
    file_stamp st;
    tfs_error e;
    int rc = 0;
    tfs_error_clear(&e);
    script_unref(rt, s);
    script_clear_error(s);
    free_deps(s->deps);
    s->deps = NULL;
    rc = read_file_malloc(s->path, &data, &len, &st, &e, "script");
    if (rc != 0) {
        s->have_st = false;
        goto failed;
    }
    s->st = st;
    s->have_st = true;

    lua_State *L = rt->L;
    rt->cur = s;
    rt->load_buf = data;
    rt->load_len = len;
    rt->conv_code = 0;
    rt->conv_hint[0] = '\0';
    rt->phase = PHASE_LUA;
    lua_settop(L, 0);
    lua_pushcfunction(L, msg_handler);
    lua_pushcfunction(L, protected_load);
    arm_budget(rt);
    int status = lua_pcall(L, 0, 0, 1);
    disarm_budget(rt);
    rt->phase = PHASE_IDLE;
    rt->load_buf = NULL;
    if (status != LUA_OK || rt->conv_code != 0) {
        rc = call_failed(rt, s, status, NULL, &e);
        goto failed;
    }
    lua_settop(L, 0);
    free(data);
    tfs_logf(TFS_LOG_INFO, LOG_COMPONENT, "loaded script \"%s\"", s->name);
    return 0;
failed:
    free(data);
    script_unref(rt, s);
    s->load_code = rc;
    s->load_msg = strdup(e.message);
    s->load_detail = e.detail[0] ? strdup(e.detail) : NULL;
    tfs_logf(TFS_LOG_WARN, LOG_COMPONENT, "could not load script \"%s\": %s", s->name,
             e.message);
    return rc;
}

static bool script_changed(const script *s)
{
    if (!s->have_st || file_changed(s->path, &s->st))
        return true;
    for (const dep *d = s->deps; d; d = d->next)
        if (file_changed(d->path, &d->st))
            return true;
    return false;
}

/* Drops the lookup tables whose CSV changed, so that the next use reads them again. */
static void check_lookups(tfs_lua *rt)
{
    for (lookup *lk = rt->lookups; lk; lk = lk->next) {
        if (lk->ref != LUA_NOREF && file_changed(lk->path, &lk->st)) {
            luaL_unref(rt->L, LUA_REGISTRYINDEX, lk->ref);
            lk->ref = LUA_NOREF;
            tfs_logf(TFS_LOG_INFO, LOG_COMPONENT, "lookup table \"%s\" changed, re-reading it",
                     lk->name);
        }
    }
}

/* Finds or creates the script entry, reloading it when force is set or when its files
 * have not been checked for a second and changed. */
static int script_get(tfs_lua *rt, const char *name, bool force, script **out,
                      tfs_error *err)
{
    script *s;
    *out = NULL;
    for (s = rt->scripts; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            break;
    if (!s) {
        if (!script_name_ok(name))
            return tfs_error_set(err, TFS_EINVAL, "could not load script \"%s\": not a "
                                                  "relative path inside the transform "
                                                  "directory",
                                 name);
        s = calloc(1, sizeof *s);
        if (!s || !(s->name = strdup(name)) || !(s->path = path_join(rt->dir, name, NULL))) {
            if (s) {
                free(s->name);
                free(s);
            }
            return tfs_error_set(err, TFS_ENOMEM, "could not load script \"%s\": out of "
                                                  "memory",
                                 name);
        }
        s->env_ref = s->map_ref = s->loaded_ref = s->rec_ref = LUA_NOREF;
        s->next = rt->scripts;
        rt->scripts = s;
    }
    int64_t now = now_ns();
    if (force || s->checked == 0 || now - s->checked >= RECHECK_NS) {
        s->checked = now;
        check_lookups(rt);
        if (script_changed(s) || (s->map_ref == LUA_NOREF && !s->load_msg))
            script_reload(rt, s);
    }
    if (s->load_msg || s->map_ref == LUA_NOREF) {
        tfs_error_set(err, s->load_code ? s->load_code : TFS_EINVAL, "%s",
                      s->load_msg ? s->load_msg : "script could not be loaded");
        if (s->load_detail)
            tfs_error_detail(err, "%s", s->load_detail);
        tfs_error_hint(err, "the script failed to load; fix it and save it: it is reloaded "
                            "without a restart");
        return s->load_code ? s->load_code : TFS_EINVAL;
    }
    *out = s;
    return 0;
}

int tfs_lua_load(tfs_lua *rt, const char *name, tfs_error *err)
{
    script *s;
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name)
        return tfs_error_set(err, TFS_EINVAL, "could not load script: invalid arguments");
    return script_get(rt, name, true, &s, err);
}

/* ---- records to Lua ------------------------------------------------------------------ */

static void ents_flush(tfs_lua *rt)
{
    for (size_t i = 0; i < rt->n_ents; i++) {
        luaL_unref(rt->L, LUA_REGISTRYINDEX, rt->ents[i].ref);
        free(rt->ents[i].names);
    }
    rt->n_ents = 0;
}

/* Pushes the entity's info table (field names at 1..n, name -> 0-based index) and returns
 * its cache entry, valid until the next call. */
static ent_info *push_ent_info(tfs_lua *rt, lua_State *L, const tfs_sdk_entity *e)
{
    for (size_t i = 0; i < rt->n_ents; i++) {
        ent_info *ei = &rt->ents[i];
        if (ei->e == e && ei->fields == e->fields && ei->n == e->n_fields) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, ei->ref);
            return ei;
        }
    }
    if (rt->n_ents == MAX_ENT_CACHE)
        ents_flush(rt);
    luaL_checkstack(L, 4, NULL);
    int n = e->n_fields > INT_MAX / 2 ? INT_MAX / 2 : (int)e->n_fields;
    lua_createtable(L, n, n);
    int t = lua_gettop(L);
    for (size_t i = 0; i < e->n_fields; i++) {
        lua_pushstring(L, e->fields[i].name);
        lua_pushvalue(L, -1);
        lua_rawseti(L, t, (lua_Integer)i + 1);
        lua_pushinteger(L, (lua_Integer)i);
        lua_rawset(L, t);
    }
    lua_pushvalue(L, t);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* No Lua allocation from here on, so nothing can leak. */
    const char **names = malloc((e->n_fields ? e->n_fields : 1) * sizeof *names);
    if (!names) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        luaL_error(L, "out of memory");
    }
    for (size_t i = 0; i < e->n_fields; i++) {
        lua_rawgeti(L, t, (lua_Integer)i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    ent_info *ei = &rt->ents[rt->n_ents++];
    *ei = (ent_info){.e = e, .fields = e->fields, .n = e->n_fields, .ref = ref,
                     .names = names};
    return ei;
}

/* The index of the field named k, or -1: by address first, by text for names Lua does
 * not intern (longer than 40 bytes) or keys that are no field at all. */
static long field_of(const ent_info *ei, const char *k, size_t klen)
{
    for (size_t i = 0; i < ei->n; i++)
        if (ei->names[i] == k)
            return (long)i;
    for (size_t i = 0; i < ei->n; i++)
        if (strlen(ei->fields[i].name) == klen && memcmp(ei->fields[i].name, k, klen) == 0)
            return (long)i;
    return -1;
}

static void push_json(tfs_lua *rt, lua_State *L, json_t *j, int depth)
{
    if (depth > MAX_JSON_DEPTH)
        luaL_error(L, "JSON nested deeper than %d levels", MAX_JSON_DEPTH);
    luaL_checkstack(L, 4, NULL);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        size_t n = json_object_size(j);
        lua_createtable(L, 0, n > INT_MAX ? INT_MAX : (int)n);
        json_object_foreach(j, k, v) {
            push_json(rt, L, v, depth + 1);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json(rt, L, json_array_get(j, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, rt->array_mt_ref);
        lua_setmetatable(L, -2);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        push_null(rt, L);
        break;
    }
}

/* A DECIMAL's text as a Lua number: an integer when it has no fractional part and fits. */
static void push_decimal(lua_State *L, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    uint64_t acc = 0;
    bool ok = p < end && *p >= '0' && *p <= '9';
    while (ok && p < end && *p >= '0' && *p <= '9') {
        unsigned dgt = (unsigned)(*p - '0');
        if (acc > (UINT64_MAX - dgt) / 10) {
            ok = false;
            break;
        }
        acc = acc * 10 + dgt;
        p++;
    }
    if (ok && p < end && *p == '.') {
        p++;
        while (p < end && *p == '0')
            p++;
    }
    if (ok && p == end && acc <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
        lua_pushinteger(L, neg ? (lua_Integer)(0 - acc) : (lua_Integer)acc);
        return;
    }
    if (lua_stringtonumber(L, s) == 0)
        lua_pushlstring(L, s, len); /* not a number: let the script see the text */
}

/* Builds (or refills) the script's source table from the record and leaves it on the
 * stack. Returns 0 or a conversion error. */
static int newindex_mark(lua_State *L)
{
    script *s = lua_touserdata(L, lua_upvalueindex(1));
    s->rec_dirty = true;
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int push_source(tfs_lua *rt, lua_State *L, script *s, const tfs_record *src)
{
    const tfs_sdk_entity *e = src->entity;
    push_ent_info(rt, L, e);
    int info = lua_gettop(L);
    if (s->rec_ref != LUA_NOREF && s->rec_entity == e && !s->rec_dirty) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->rec_ref);
    } else {
        luaL_unref(L, LUA_REGISTRYINDEX, s->rec_ref);
        s->rec_ref = LUA_NOREF;
        s->rec_entity = NULL;
        lua_createtable(L, 0, src->n > INT_MAX ? INT_MAX : (int)src->n);
        lua_createtable(L, 0, 2);
        lua_pushlightuserdata(L, s);
        lua_pushcclosure(L, newindex_mark, 1);
        lua_setfield(L, -2, "__newindex");
        lua_pushliteral(L, "record");
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        s->rec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        s->rec_entity = e;
        s->rec_dirty = false;
    }
    int rec = lua_gettop(L);
    push_null(rt, L);
    int null = lua_gettop(L);
    for (size_t i = 0; i < src->n; i++) {
        const tfs_value *v = &src->values[i];
        lua_rawgeti(L, info, (lua_Integer)i + 1);
        switch (v->type) {
        case TFS_SDK_NULL:
            lua_pushvalue(L, null);
            break;
        case TFS_SDK_BOOL:
            lua_pushboolean(L, v->u.b);
            break;
        case TFS_SDK_INT64:
            lua_pushinteger(L, (lua_Integer)v->u.i);
            break;
        case TFS_SDK_FLOAT64:
            lua_pushnumber(L, v->u.f);
            break;
        case TFS_SDK_DECIMAL:
            push_decimal(L, v->u.s, v->len);
            break;
        case TFS_SDK_JSON:
            if (v->len == 2 && v->u.s[0] == '[' && v->u.s[1] == ']') {
                lua_newtable(L);
                lua_rawgeti(L, LUA_REGISTRYINDEX, rt->array_mt_ref);
                lua_setmetatable(L, -2);
            } else {
                json_error_t je;
                rt->pending_json = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, &je);
                if (!rt->pending_json)
                    return conv_error(rt, TFS_EINVAL, "source field \"%s\" holds invalid "
                                                      "JSON: %s",
                                      e->fields[i].name, je.text);
                push_json(rt, L, rt->pending_json, 0);
                json_decref(rt->pending_json);
                rt->pending_json = NULL;
            }
            break;
        default:
            lua_pushlstring(L, v->u.s, v->len);
            break;
        }
        lua_rawset(L, rec);
    }
    lua_settop(L, rec);
    lua_remove(L, info);
    return 0;
}

/* ---- Lua to records ------------------------------------------------------------------ */

typedef struct jctx {
    tfs_lua *rt;
    lua_State *L;
    size_t budget; /* bytes of JSON text still allowed, roughly */
    char why[200];
} jctx;

static bool is_sequence(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0)
        return false;
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return false;
        }
        count++;
    }
    return count == n;
}

static json_t *to_json(jctx *c, int idx, int depth)
{
    lua_State *L = c->L;
    json_t *j = NULL;
    if (depth > MAX_JSON_DEPTH) {
        snprintf(c->why, sizeof c->why, "tables nested deeper than %d levels (a cycle?)",
                 MAX_JSON_DEPTH);
        return NULL;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(c->why, sizeof c->why, "out of Lua stack");
        return NULL;
    }
    if (c->budget < 8) {
        snprintf(c->why, sizeof c->why, "JSON text longer than %zu bytes",
                 c->rt->limits.max_string);
        return NULL;
    }
    c->budget -= 8;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            snprintf(c->why, sizeof c->why, "NaN and infinity have no JSON form");
            return NULL;
        }
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len > c->budget) {
            snprintf(c->why, sizeof c->why, "JSON text longer than %zu bytes",
                     c->rt->limits.max_string);
            return NULL;
        }
        c->budget -= len;
        j = json_stringn(s, len);
        if (!j)
            snprintf(c->why, sizeof c->why, "a string is not valid UTF-8");
        return j;
    }
    case LUA_TTABLE:
        break;
    default:
        snprintf(c->why, sizeof c->why, "a %s value has no JSON form", luaL_typename(L, idx));
        return NULL;
    }
    if (is_null(c->rt, L, idx))
        return json_null();
    if (is_marked_array(c->rt, L, idx) || is_sequence(L, idx)) {
        j = json_array();
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; j && i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_t *v = to_json(c, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (!v || json_array_append_new(j, v) != 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    }
    j = json_object();
    lua_pushnil(L);
    while (j && lua_next(L, idx)) {
        char kb[32];
        const char *k;
        size_t klen;
        if (lua_type(L, -2) == LUA_TSTRING) {
            k = lua_tolstring(L, -2, &klen);
        } else if (lua_isinteger(L, -2)) {
            klen = (size_t)snprintf(kb, sizeof kb, "%" PRId64, (int64_t)lua_tointeger(L, -2));
            k = kb;
        } else {
            snprintf(c->why, sizeof c->why, "a table key of type %s has no JSON form",
                     luaL_typename(L, -2));
            lua_pop(L, 2);
            json_decref(j);
            return NULL;
        }
        if (klen > c->budget) {
            snprintf(c->why, sizeof c->why, "JSON text longer than %zu bytes",
                     c->rt->limits.max_string);
            lua_pop(L, 2);
            json_decref(j);
            return NULL;
        }
        c->budget -= klen;
        json_t *v = to_json(c, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!v || json_object_setn_new(j, k, klen, v) != 0) {
            if (v == NULL && !c->why[0])
                snprintf(c->why, sizeof c->why, "out of memory");
            else if (v && !c->why[0])
                snprintf(c->why, sizeof c->why, "a key is not valid UTF-8");
            lua_pop(L, 1);
            json_decref(j);
            return NULL;
        }
    }
    if (!j && !c->why[0])
        snprintf(c->why, sizeof c->why, "out of memory");
    return j;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    tfs_lua *rt = data;
    if (rt->jbuf.len + size > rt->limits.max_string)
        return -1;
    return tfs_buf_append(&rt->jbuf, buffer, size);
}

static int store_field(tfs_lua *rt, lua_State *L, tfs_record *rec, size_t fi, int vidx,
                       const char *ename)
{
    tfs_value *v = &rec->values[fi];
    const char *fname = rec->entity->fields[fi].name;
    switch (lua_type(L, vidx)) {
    case LUA_TNIL:
        *v = (tfs_value){.type = TFS_SDK_NULL};
        return 0;
    case LUA_TBOOLEAN:
        *v = (tfs_value){.type = TFS_SDK_BOOL, .u.b = lua_toboolean(L, vidx)};
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, vidx))
            *v = (tfs_value){.type = TFS_SDK_INT64, .u.i = (int64_t)lua_tointeger(L, vidx)};
        else
            *v = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = (double)lua_tonumber(L, vidx)};
        return 0;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, vidx, &len);
        if (len > rt->limits.max_string)
            return conv_error(rt, TFS_ELIMIT, "field \"%s\" of \"%s\": string of %zu bytes "
                                              "is longer than the limit of %zu",
                              fname, ename, len, rt->limits.max_string);
        if (tfs_record_set_text(rec, fi, TFS_SDK_TEXT, s, len) != 0)
            return conv_error(rt, TFS_ENOMEM, "field \"%s\" of \"%s\": out of memory", fname,
                              ename);
        return 0;
    }
    case LUA_TTABLE: {
        if (is_null(rt, L, vidx)) {
            *v = (tfs_value){.type = TFS_SDK_NULL};
            return 0;
        }
        jctx c = {.rt = rt, .L = L, .budget = rt->limits.max_string};
        json_t *j = to_json(&c, vidx, 0);
        if (!j)
            return conv_error(rt, strstr(c.why, "longer than") ? TFS_ELIMIT : TFS_EINVAL,
                              "field \"%s\" of \"%s\": could not encode the table as JSON: "
                              "%s",
                              fname, ename, c.why);
        tfs_buf_reset(&rt->jbuf);
        int dr = json_dump_callback(j, dump_cb, rt, JSON_COMPACT | JSON_SORT_KEYS |
                                                        JSON_ENCODE_ANY);
        json_decref(j);
        if (dr != 0 || rt->jbuf.oom)
            return conv_error(rt, rt->jbuf.oom ? TFS_ENOMEM : TFS_ELIMIT,
                              "field \"%s\" of \"%s\": JSON text longer than %zu bytes",
                              fname, ename, rt->limits.max_string);
        if (tfs_record_set_text(rec, fi, TFS_SDK_JSON, tfs_buf_str(&rt->jbuf), rt->jbuf.len))
            return conv_error(rt, TFS_ENOMEM, "field \"%s\" of \"%s\": out of memory", fname,
                              ename);
        return 0;
    }
    default:
        return conv_error(rt, TFS_EINVAL, "field \"%s\" of \"%s\": cannot store a %s value",
                          fname, ename, luaL_typename(L, vidx));
    }
}

static void hint_fields(tfs_lua *rt, const tfs_sdk_entity *e)
{
    size_t len = (size_t)snprintf(rt->conv_hint, sizeof rt->conv_hint, "\"%s\" has the "
                                  "fields: ", e->name);
    for (size_t i = 0; i < e->n_fields && len < sizeof rt->conv_hint; i++)
        len += (size_t)snprintf(rt->conv_hint + len, sizeof rt->conv_hint - len, "%s%s",
                                i ? ", " : "", e->fields[i].name);
}

/* Converts the record table at ridx to a new record of the entity of ei. */
static int convert_record(tfs_lua *rt, lua_State *L, int ridx, const ent_info *ei,
                          tfs_record **out)
{
    const tfs_sdk_entity *e = ei->e;
    tfs_record *rec = tfs_record_new(rt->arena, e);
    if (!rec)
        return conv_error(rt, TFS_ENOMEM, "out of memory building a \"%s\" record", e->name);
    lua_pushnil(L);
    while (lua_next(L, ridx)) {
        size_t klen;
        if (lua_type(L, -2) != LUA_TSTRING)
            return conv_error(rt, TFS_EINVAL, "map() returned a \"%s\" record with a %s "
                                              "key; field names are strings",
                              e->name, luaL_typename(L, -2));
        const char *k = lua_tolstring(L, -2, &klen);
        long fi = field_of(ei, k, klen);
        if (fi < 0) {
            int rc = conv_error(rt, TFS_EINVAL, "map() returned unknown field \"%s\" for "
                                                "entity \"%s\"",
                                k, e->name);
            hint_fields(rt, e);
            return rc;
        }
        int rc = store_field(rt, L, rec, (size_t)fi, lua_gettop(L), e->name);
        if (rc != 0)
            return rc;
        lua_pop(L, 1);
    }
    *out = rec;
    return 0;
}

/* How many records an entity's value holds: -1 when it is not a record or a list. */
static long count_records(tfs_lua *rt, lua_State *L, int vidx)
{
    if (lua_type(L, vidx) != LUA_TTABLE)
        return -1;
    if (is_null(rt, L, vidx))
        return 0;
    int t = lua_rawgeti(L, vidx, 1);
    lua_pop(L, 1);
    if (t == LUA_TTABLE)
        return (long)lua_rawlen(L, vidx);
    if (is_marked_array(rt, L, vidx) && lua_rawlen(L, vidx) == 0)
        return 0;
    lua_pushnil(L);
    if (!lua_next(L, vidx))
        return 0;
    lua_pop(L, 2);
    return 1;
}

static int convert_output(tfs_lua *rt, lua_State *L, int res)
{
    tfs_lua_output *out = rt->out;
    if (lua_isnil(L, res) || is_null(rt, L, res))
        return 0;
    if (lua_type(L, res) != LUA_TTABLE)
        return conv_error(rt, TFS_EINVAL, "map() must return a table keyed by target entity "
                                          "(or nil), not a %s",
                          luaL_typename(L, res));
    size_t total = 0;
    lua_pushnil(L);
    while (lua_next(L, res)) {
        size_t klen = 0;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
        size_t j = 0;
        while (k && j < rt->n_targets &&
               !(strlen(rt->targets[j]->name) == klen && memcmp(rt->targets[j]->name, k,
                                                                klen) == 0))
            j++;
        if (!k || j == rt->n_targets) {
            int rc = conv_error(rt, TFS_EINVAL, "map() returned unknown entity \"%s\"",
                                k ? k : luaL_typename(L, -2));
            if (rt->n_targets) {
                size_t len = (size_t)snprintf(rt->conv_hint, sizeof rt->conv_hint,
                                              "this mapping produces: ");
                for (size_t i = 0; i < rt->n_targets && len < sizeof rt->conv_hint; i++)
                    len += (size_t)snprintf(rt->conv_hint + len, sizeof rt->conv_hint - len,
                                            "%s%s", i ? ", " : "", rt->targets[i]->name);
            } else {
                snprintf(rt->conv_hint, sizeof rt->conv_hint,
                         "this mapping produces no target entities");
            }
            return rc;
        }
        long n = count_records(rt, L, lua_gettop(L));
        if (n < 0)
            return conv_error(rt, TFS_EINVAL, "map() returned a %s for \"%s\"; expected a "
                                              "record table or a list of them",
                              luaL_typename(L, -1), k);
        total += (size_t)n;
        lua_pop(L, 1);
    }
    if (total == 0)
        return 0;
    if (total > MAX_OUTPUT_RECORDS)
        return conv_error(rt, TFS_ELIMIT, "map() returned %zu records; at most %d are allowed "
                                          "for one source record",
                          total, MAX_OUTPUT_RECORDS);
    out->recs = tfs_arena_alloc(rt->arena, total * sizeof *out->recs);
    if (!out->recs)
        return conv_error(rt, TFS_ENOMEM, "out of memory");
    for (size_t j = 0; j < rt->n_targets; j++) {
        const tfs_sdk_entity *e = rt->targets[j];
        lua_pushstring(L, e->name);
        if (lua_rawget(L, res) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        int v = lua_gettop(L);
        long n = count_records(rt, L, v);
        if (n > 0) {
            const ent_info *ei = push_ent_info(rt, L, e);
            int t = lua_rawgeti(L, v, 1);
            lua_pop(L, 1);
            if (t == LUA_TTABLE) {
                for (long i = 1; i <= n; i++) {
                    if (lua_rawgeti(L, v, i) != LUA_TTABLE || is_null(rt, L, -1))
                        return conv_error(rt, TFS_EINVAL, "map() returned a list for \"%s\" "
                                                          "whose element %ld is a %s, not a "
                                                          "record table",
                                          e->name, i, luaL_typename(L, -1));
                    int rc = convert_record(rt, L, lua_gettop(L), ei, &out->recs[out->n]);
                    if (rc != 0)
                        return rc;
                    out->n++;
                    lua_pop(L, 1);
                }
            } else {
                int rc = convert_record(rt, L, v, ei, &out->recs[out->n]);
                if (rc != 0)
                    return rc;
                out->n++;
            }
        }
        lua_settop(L, v - 1);
    }
    return 0;
}

static int protected_map(lua_State *L)
{
    tfs_lua *rt = rt_of(L);
    script *s = rt->cur;
    rt->phase = PHASE_CONVERT;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->map_ref);
    if (push_source(rt, L, s, rt->src) != 0)
        return 0;
    rt->phase = PHASE_LUA;
    lua_call(L, 1, 1);
    rt->phase = PHASE_CONVERT;
    convert_output(rt, L, lua_gettop(L));
    return 0;
}

int tfs_lua_map(tfs_lua *rt, const char *name, const tfs_record *src, const char *key,
                const tfs_sdk_entity *const *targets, size_t n_targets, tfs_arena *arena,
                tfs_lua_output *out, tfs_error *err)
{
    script *s;
    if (out) {
        out->recs = NULL;
        out->n = 0;
    }
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name || !src || !arena || !out ||
        (n_targets && !targets))
        return tfs_error_set(err, TFS_EINVAL, "could not map record: invalid arguments");
    int rc = script_get(rt, name, false, &s, err);
    if (rc != 0) {
        if (key && err) {
            size_t l = strlen(err->message);
            snprintf(err->message + l, sizeof err->message - l, " (record %s)", key);
        }
        return rc;
    }
    lua_State *L = rt->L;
    rt->cur = s;
    rt->src = src;
    rt->targets = targets;
    rt->n_targets = n_targets;
    rt->arena = arena;
    rt->out = out;
    rt->conv_code = 0;
    rt->conv_hint[0] = '\0';
    rt->phase = PHASE_LUA;
    lua_settop(L, 0);
    lua_pushcfunction(L, msg_handler);
    lua_pushcfunction(L, protected_map);
    arm_budget(rt);
    int status = lua_pcall(L, 0, 0, 1);
    disarm_budget(rt);
    rt->phase = PHASE_IDLE;
    if (rt->pending_json) {
        json_decref(rt->pending_json);
        rt->pending_json = NULL;
    }
    if (status != LUA_OK || rt->conv_code != 0) {
        out->recs = NULL;
        out->n = 0;
        return call_failed(rt, s, status, key, err);
    }
    lua_settop(L, 0);
    return 0;
}
