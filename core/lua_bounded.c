/* core/lua_bounded.c — the library functions whose C loops the count hook cannot stop,
 * bounded by the sizes involved before they start: string.rep (its result against the
 * memory cap, and nothing to repeat costs nothing, so rep('', 1 << 62) returns at once),
 * and table.concat, sort, move, insert and remove at a position, string.upper, lower,
 * reverse and utf8.len charged to the call's budget by the elements or bytes they will
 * touch (appending and removing the last element cost nothing more), so a loop
 * calling them on a large input ends at the budget instead of after hours. Pattern
 * matching has its own counter (lua_match.c).
 */
#include "lua_internal.h"

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#define BYTES_PER_STEP 64 /* a step of copying or scanning bytes */

/* ---- string.rep ------------------------------------------------------------------- */

static int b_rep(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t max = (size_t)INT32_MAX; /* what one Lua string may hold here */
    size_t unit = l + lsep;
    if (unit < l || unit > max / (uint64_t)n)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
    size_t used = rt->mem_used < rt->limits.memory_bytes ? rt->mem_used
                                                         : rt->limits.memory_bytes;
    if (total > rt->limits.memory_bytes - used)
        return tfs_lua_raise_cap(rt, L);
    tfs_lua_charge(rt, L, total / BYTES_PER_STEP, "string.rep");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    memcpy(p, s, l);
    size_t done = l;
    if (n > 1) {
        memcpy(p + done, sep, lsep);
        memcpy(p + done + lsep, s, l);
        done += unit;
    }
    /* [l, done) holds whole "sep s" units: copy it onto itself, doubling */
    while (done < total) {
        size_t chunk = done - l < total - done ? done - l : total - done;
        memcpy(p + done, p + l, chunk);
        done += chunk;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* ---- charged wrappers ---------------------------------------------------------------- */

enum { COST_CONCAT, COST_SORT, COST_MOVE, COST_INSERT, COST_REMOVE, COST_BYTES };

static uint64_t table_len(lua_State *L, int idx)
{
    lua_Integer n = luaL_len(L, idx);
    return n > 0 ? (uint64_t)n : 0;
}

static uint64_t span(lua_Integer from, lua_Integer to)
{
    if (from > to)
        return 0;
    return (uint64_t)to - (uint64_t)from + 1;
}

/* What the call at hand will touch, in steps; 0 when its arguments are not what the
 * function takes (it then refuses them itself). */
static uint64_t cost_of(lua_State *L, int kind)
{
    switch (kind) {
    case COST_CONCAT: {
        if (lua_type(L, 1) != LUA_TTABLE)
            return 0;
        lua_Integer i = luaL_optinteger(L, 3, 1);
        lua_Integer j = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
        return span(i, j);
    }
    case COST_SORT: {
        if (lua_type(L, 1) != LUA_TTABLE)
            return 0;
        uint64_t n = table_len(L, 1), lg = 1;
        while (lg < 64 && (UINT64_C(1) << lg) < n)
            lg++;
        return n > UINT64_MAX / lg ? UINT64_MAX : n * lg;
    }
    case COST_MOVE: {
        if (!lua_isinteger(L, 2) || !lua_isinteger(L, 3))
            return 0;
        return span(lua_tointeger(L, 2), lua_tointeger(L, 3));
    }
    case COST_INSERT: /* the elements from pos on are shifted; appending costs nothing */
        if (lua_type(L, 1) != LUA_TTABLE || lua_gettop(L) != 3 || !lua_isinteger(L, 2))
            return 0;
        return span(lua_tointeger(L, 2), (lua_Integer)table_len(L, 1));
    case COST_REMOVE: /* likewise; removing the last costs nothing */
        if (lua_type(L, 1) != LUA_TTABLE || !lua_isinteger(L, 2))
            return 0;
        return span(lua_tointeger(L, 2), (lua_Integer)table_len(L, 1));
    default: {
        size_t len = 0;
        if (lua_type(L, 1) == LUA_TSTRING)
            lua_tolstring(L, 1, &len);
        return len / BYTES_PER_STEP;
    }
    }
}

/* Upvalues: the library function, its cost kind, its name. */
static int charged(lua_State *L)
{
    int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
    uint64_t cost = cost_of(L, kind);
    if (cost)
        tfs_lua_charge(tfs_lua_rt(L), L, cost, lua_tostring(L, lua_upvalueindex(3)));
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static void wrap(lua_State *L, int lib, const char *libname, const char *name, int kind)
{
    lua_getfield(L, lib, name);
    lua_pushinteger(L, kind);
    lua_pushfstring(L, "%s.%s", libname, name);
    lua_pushcclosure(L, charged, 3);
    lua_setfield(L, lib, name);
}

void tfs_lua_open_bounded(lua_State *L, int strlib, int tablib, int utf8lib)
{
    lua_pushcfunction(L, b_rep);
    lua_setfield(L, strlib, "rep");
    wrap(L, strlib, "string", "upper", COST_BYTES);
    wrap(L, strlib, "string", "lower", COST_BYTES);
    wrap(L, strlib, "string", "reverse", COST_BYTES);
    wrap(L, tablib, "table", "concat", COST_CONCAT);
    wrap(L, tablib, "table", "sort", COST_SORT);
    wrap(L, tablib, "table", "move", COST_MOVE);
    wrap(L, tablib, "table", "insert", COST_INSERT);
    wrap(L, tablib, "table", "remove", COST_REMOVE);
    wrap(L, utf8lib, "utf8", "len", COST_BYTES);
}
