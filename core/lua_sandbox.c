/* core/lua_sandbox.c — what keeps a script in its box: the capped allocator, the
 * instruction budget per call, the state's set-up with only the libraries a mapping needs
 * (no io, os, debug, package, bytecode or __gc), a fresh environment per script with its
 * own print, load and require (the loader of lua_script.c, which reads <name>.lua from the
 * transform directory only), and the protected call every script runs under, with its
 * message handler and the translation of what went wrong into a tfs_error. The budgets
 * of a call: instructions (counted by the hook, plus the steps the C loops of lua_match.c
 * and lua_bounded.c charge, since the hook never fires inside a C function), the wall
 * clock (lua.record_ms) and the daemon's stop flag, all looked at once per tick; the
 * hook stays on until the call returns, through error handlers and __close.
 */
#include "lua_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "alloc.h"
#include "log.h"

/* ---- the capped allocator, the budget hook, warnings ----------------------------- */

/* Where the script was when the allocator refused: a memory error is raised without the
 * message handler, so this is the only moment its line is known. Walking the call stack
 * from inside the allocator is safe in Lua up to 5.4.4, which allocates a new stack before
 * touching the old one; later releases turn stack pointers into offsets around that
 * allocation, so there the position is left out. */
static void note_mem_where(tfs_lua *rt)
{
#if LUA_VERSION_RELEASE_NUM <= 50404
    if (rt->phase != TFS_LUA_IN_LUA || rt->mem_where[0] || !rt->L)
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
    /* Only growth can be made to fail: Lua counts on a shrink succeeding in places (the GC
     * shrinking the string table), and a shrink is no allocation to a test either. */
    void *p = nsize > old && tfs_alloc_fault() ? NULL : realloc(ptr, nsize);
    if (!p) {
        note_mem_where(rt);
        return NULL;
    }
    rt->mem_used = rt->mem_used - old + nsize;
    return p;
}

/* How many instructions run between two looks at the budgets: the hook's cost is paid
 * once per tick (a call and a read of the coarse clock), and the wall clock and the stop
 * are noticed within a tick. */
#define TICK 1000
/* Steps C functions charge between two reads of the clock. */
#define CLOCK_EVERY 65536

static int64_t mono_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Which budget is spent now (rt->hit once one was), without raising. */
static int spent(tfs_lua *rt, bool read_clock)
{
    if (rt->hit)
        return rt->hit;
    if (rt->stop && atomic_load_explicit(rt->stop, memory_order_relaxed))
        return TFS_LUA_HIT_STOP;
    if (rt->budget_left == 0)
        return TFS_LUA_HIT_INSTRUCTIONS;
    if (read_clock && mono_ns() >= rt->deadline_ns)
        return TFS_LUA_HIT_WALL;
    return TFS_LUA_HIT_NONE;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Marks budget `hit` spent: from now on every instruction fails, so that a pcall in the
 * script cannot swallow the error and go on, and neither can an error handler, a __close
 * or a metamethod. */
static void mark_spent(tfs_lua *rt, lua_State *L, int hit)
{
    rt->hit = hit;
    rt->budget_hit = true;
    rt->budget_left = 0;
    rt->hook_count = 1;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
}

/* Pushes "<where> <what the budget is>" for budget hit; where is "" or "src:line: ". */
static void push_spent_message(tfs_lua *rt, lua_State *L, const char *where, int hit,
                               const char *in)
{
    const char *sep = in ? " in " : "", *fn = in ? in : "";
    if (hit == TFS_LUA_HIT_STOP)
        lua_pushfstring(L, "%sstopped: the daemon is stopping or the run was cancelled%s%s", where, sep, fn);
    else if (hit == TFS_LUA_HIT_WALL)
        lua_pushfstring(L, "%swall-clock budget exceeded (%d ms per record, lua.record_ms)%s%s",
                        where, (int)rt->limits.record_ms, sep, fn);
    else
        lua_pushfstring(L, "%sinstruction budget exceeded (%I instructions, lua.instructions)"
                           "%s%s",
                        where, (lua_Integer)rt->limits.instructions, sep, fn);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    tfs_lua *rt = tfs_lua_rt(L);
    if (!rt->budget_hit) {
        uint64_t n = (uint64_t)rt->hook_count;
        rt->budget_left = rt->budget_left > n ? rt->budget_left - n : 0;
        int hit = spent(rt, true);
        if (hit == TFS_LUA_HIT_NONE) {
            int next = rt->budget_left < TICK ? (int)rt->budget_left : TICK;
            if (next != rt->hook_count) {
                rt->hook_count = next;
                lua_sethook(L, budget_hook, LUA_MASKCOUNT, next);
            }
            return;
        }
        mark_spent(rt, L, hit);
    }
    lua_getinfo(L, "Sl", ar);
    char where[256] = "";
    if (ar->currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar->short_src, ar->currentline);
    push_spent_message(rt, L, where, rt->hit, NULL);
    lua_error(L);
}

void tfs_lua_charge(tfs_lua *rt, lua_State *L, uint64_t steps, const char *what)
{
    if (!rt->budget_hit) {
        rt->budget_left = rt->budget_left > steps ? rt->budget_left - steps : 0;
        rt->since_clock += steps;
        bool clock = rt->since_clock >= CLOCK_EVERY;
        if (clock)
            rt->since_clock = 0;
        int hit = spent(rt, clock);
        if (hit == TFS_LUA_HIT_NONE)
            return;
        mark_spent(rt, L, hit);
    }
    luaL_where(L, 1);
    push_spent_message(rt, L, lua_tostring(L, -1), rt->hit, what);
    lua_error(L);
}

int tfs_lua_raise_cap(tfs_lua *rt, lua_State *L)
{
    rt->mem_hit = true;
    if (!rt->mem_where[0]) {
        lua_Debug ar;
        for (int level = 1; lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
                snprintf(rt->mem_where, sizeof rt->mem_where, "%s:%d", ar.short_src,
                         ar.currentline);
                break;
            }
        }
    }
    lua_pushliteral(L, "not enough memory");
    return lua_error(L);
}

static void arm_budget(tfs_lua *rt)
{
    rt->budget_hit = false;
    rt->hit = TFS_LUA_HIT_NONE;
    rt->mem_hit = false;
    rt->oom_raised = false;
    rt->mem_where[0] = '\0';
    rt->budget_left = rt->limits.instructions;
    rt->since_clock = 0;
    rt->deadline_ns = mono_ns() + (int64_t)rt->limits.record_ms * 1000000;
    rt->hook_count = rt->budget_left < TICK ? (int)rt->budget_left : TICK;
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
        tfs_logf(TFS_LOG_WARN, TFS_LUA_LOG, "%s%s%s", rt->cur ? rt->cur->name : "",
                 rt->cur ? ": " : "", rt->warn);
        rt->warn_len = 0;
    }
}

static int panic_fn(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    tfs_logf(TFS_LOG_ERROR, TFS_LUA_LOG, "unprotected lua error: %s", msg ? msg : "?");
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

/* Adds the position of the innermost Lua function to a message without one and keeps the
 * traceback for the error's detail. It runs no Lua code (no __tostring of the error
 * object) and leaves the budget hook on: the __close handlers still pending run after it,
 * and they are as bounded as the rest of the call. */
static int msg_handler(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    if (rt->phase == TFS_LUA_CONVERT)
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

/* ---- the sandbox's own globals: setmetatable, collectgarbage, print, load, require -- */

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

/* rawset, except on tf and tf.null: they are shared by every script of the state. */
static int sb_rawset(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    const void *t = lua_topointer(L, 1);
    if (t == rt->null_ptr || t == rt->tf_ptr)
        return luaL_error(L, "%s is read-only: it is shared by every script",
                          t == rt->null_ptr ? "tf.null" : "tf");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* xpcall's message handler, wrapped: Lua calls a handler for an error raised by the count
 * hook with hooks off, so once a budget is spent the script's handler is not called (the
 * error goes on as it is); before, it runs under the budget like any other code.
 * Upvalue 1: the script's handler. */
static int xpcall_handler(lua_State *L)
{
    if (tfs_lua_rt(L)->budget_hit)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall(f, msgh, ...), with msgh wrapped (no coroutines here: nothing yields). */
static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    if (lua_pcall(L, n - 2, LUA_MULTRET, 2) != LUA_OK) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - 2;
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
    tfs_logf(TFS_LOG_INFO, TFS_LUA_LOG, "%s: %s", lua_tostring(L, lua_upvalueindex(1)),
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

/* A fresh environment for a script or module: copies of the sandbox's globals (library
 * tables copied too, so that one script changing string.x does not change another's;
 * tf, which has a metatable, is shared as it is: it is read-only), and its own print,
 * load and require. */
void tfs_lua_push_env(tfs_lua *rt, lua_State *L, tfs_lua_script *s,
                      lua_CFunction require_fn)
{
    tfs_lua_checkstack(rt, L, 8);
    lua_createtable(L, 0, 48);
    int env = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->template_ref);
    int tpl = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tpl)) {
        if (lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
            lua_pop(L, 1);
        } else if (lua_type(L, -1) == LUA_TTABLE) {
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
    lua_pushcclosure(L, require_fn, 3);
    lua_setfield(L, env, "require");
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
}

/* ---- state set-up ------------------------------------------------------------------ */

static const char *const base_allowed[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawlen", "select", "tonumber", "tostring", "type",
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
    tfs_lua *rt = tfs_lua_rt(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 0);

    /* The C loops the count hook cannot stop, bounded (the string metatable's __index is
     * this same string table, so ("x"):rep is the bounded one too). */
    lua_getglobal(L, "string");
    lua_getglobal(L, "table");
    lua_getglobal(L, "utf8");
    tfs_lua_open_match(L, 1);
    tfs_lua_open_bounded(L, 1, 2, 3);
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

    rt->open_tf(rt, L);
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
    lua_pushcfunction(L, sb_rawset);
    lua_setfield(L, tpl, "rawset");
    lua_pushcfunction(L, sb_xpcall);
    lua_setfield(L, tpl, "xpcall");
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

int tfs_lua_open_state(tfs_lua *rt, void (*open_tf)(tfs_lua *rt, lua_State *L),
                       tfs_error *err)
{
    rt->open_tf = open_tf;
    rt->L = lua_newstate(capped_alloc, rt);
    if (!rt->L)
        return tfs_error_set(err, TFS_ENOMEM, "could not create lua state: out of memory");
    *(tfs_lua **)lua_getextraspace(rt->L) = rt;
    lua_atpanic(rt->L, panic_fn);
    lua_setwarnf(rt->L, warn_fn, rt);
    lua_pushcfunction(rt->L, init_state);
    int status = lua_pcall(rt->L, 0, 0, 0);
    if (status != LUA_OK) {
        const char *m = lua_type(rt->L, -1) == LUA_TSTRING ? lua_tostring(rt->L, -1) : NULL;
        int rc = tfs_error_set(err, status == LUA_ERRMEM ? TFS_ENOMEM : TFS_EINVAL,
                               "could not create lua state: %s", m ? m : "unknown error");
        if (rt->mem_hit)
            tfs_error_hint(err, "raise the memory cap (%zu bytes now)",
                           rt->limits.memory_bytes);
        return rc;
    }
    return 0;
}

/* ---- protected calls ------------------------------------------------------------- */

/* Drops the "loading" marks a failed call left in the script's require cache, so that the
 * next call loads those modules again instead of calling it a require cycle. Outside any
 * protected call: setting existing keys to nil allocates nothing. */
static void forget_half_loaded(tfs_lua *rt, tfs_lua_script *s)
{
    lua_State *L = rt->L;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, s->loaded_ref) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        bool loading = lua_type(L, -1) == LUA_TLIGHTUSERDATA;
        lua_pop(L, 1);
        if (loading) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, -4);
        }
    }
    lua_pop(L, 1);
}

int tfs_lua_call_failed(tfs_lua *rt, tfs_lua_script *s, int status, const char *key,
                        tfs_error *err)
{
    lua_State *L = rt->L;
    disarm_budget(rt);
    int code = TFS_EINVAL;
    /* A memory error is the cap's when the cap refused an allocation of this call, else the
     * process ran out of memory (or a test said it did): not the script's fault. */
    bool cap = rt->mem_hit;
    bool oom = !cap && (status == LUA_ERRMEM || rt->oom_raised);
    bool mem = cap || oom;
    if (rt->budget_hit || cap)
        code = TFS_ELIMIT;
    else if (oom)
        code = TFS_ENOMEM;
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
    else if (cap)
        tfs_error_hint(err, "the script's memory reached the cap of %zu bytes: look for "
                            "data kept across records or a huge string, or raise the cap",
                       rt->limits.memory_bytes);
    else if (oom)
        tfs_error_hint(err, "the daemon could not allocate memory (the script is within its "
                            "cap): the record can be retried once memory is free");
    else if (status == LUA_OK && rt->conv_hint[0])
        tfs_error_hint(err, "%s", rt->conv_hint);
    lua_settop(L, 0);
    forget_half_loaded(rt, s);
    if (code == TFS_ELIMIT || code == TFS_ENOMEM)
        lua_gc(L, LUA_GCCOLLECT);
    tfs_buf_reset(&rt->trace);
    return code;
}

void tfs_lua_checkstack(tfs_lua *rt, lua_State *L, int n)
{
    if (!lua_checkstack(L, n))
        tfs_lua_raise_oom(rt, L);
}

int tfs_lua_raise_oom(tfs_lua *rt, lua_State *L)
{
    rt->oom_raised = true;
    lua_pushliteral(L, "not enough memory"); /* interned for good by Lua: no allocation */
    return lua_error(L);
}

int tfs_lua_conv_error(tfs_lua *rt, int code, const char *fmt, ...)
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

int tfs_lua_pcall(tfs_lua *rt, lua_CFunction f)
{
    lua_State *L = rt->L;
    rt->conv_code = 0;
    rt->conv_hint[0] = '\0';
    rt->phase = TFS_LUA_IN_LUA;
    lua_settop(L, 0);
    lua_pushcfunction(L, msg_handler);
    lua_pushcfunction(L, f);
    arm_budget(rt);
    int status = lua_pcall(L, 0, 0, 1);
    disarm_budget(rt);
    rt->phase = TFS_LUA_IDLE;
    return status;
}
