/* core/lua_tflib.c — the tf module every script gets, read-only (a view whose writes fail,
 * shared by every script): tf.null (a frozen table standing for a source null, so that a
 * null field stays a field; rawset on it is refused by the sandbox), tf.array (the marker that keeps an
 * empty JSON array an array), and the helpers an analyst's mapping needs: null-safe string
 * and number handling, dates, unit conversions and lookups in the CSV tables of the
 * transform directory. Helpers take nil and tf.null alike and pass nulls through.
 */
#include "lua_internal.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

/* ---- tf.null ------------------------------------------------------------------------- */

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

/* ---- tf itself: a read-only view of the module ---------------------------------------- */

static int tf_newindex(lua_State *L)
{
    return luaL_error(L, "tf is read-only: it is shared by every script (keep your own "
                         "helpers in a local table or a module)");
}

/* pairs(tf): the module's own keys, without handing out the table. Upvalue 1: it. */
static int tf_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    return 0;
}

static int tf_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, tf_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

/* ---- the helpers ---------------------------------------------------------------------- */

static int tf_isnull(lua_State *L)
{
    lua_pushboolean(L, tfs_lua_is_nullish(tfs_lua_rt(L), L, 1));
    return 1;
}

static int tf_coalesce(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        if (!tfs_lua_is_nullish(rt, L, i)) {
            lua_pushvalue(L, i);
            return 1;
        }
    }
    return 0;
}

static int tf_array(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
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
    tfs_lua *rt = tfs_lua_rt(L);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && tfs_lua_is_marked_array(rt, L, 1));
    return 1;
}

static int tf_str(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    if (tfs_lua_is_nullish(rt, L, 1)) {
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

/* Narrows [*a, *b) of s past ASCII white space at both ends. */
static void trim_span(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && ascii_space((unsigned char)s[*a]))
        ++*a;
    while (*b > *a && ascii_space((unsigned char)s[*b - 1]))
        --*b;
}

/* For the string helpers: nil and tf.null pass through (null in, null out), numbers become
 * strings. Returns NULL when the argument passes through. */
static const char *str_arg(lua_State *L, const char *fn, size_t *len)
{
    tfs_lua *rt = tfs_lua_rt(L);
    if (tfs_lua_is_nullish(rt, L, 1)) {
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
    trim_span(s, &a, &b);
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
    tfs_lua *rt = tfs_lua_rt(L);
    if (tfs_lua_is_nullish(rt, L, idx))
        return false;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        return true;
    }
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        size_t a = 0, b = len;
        trim_span(s, &a, &b);
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

#define SQFT_PER_ACRE 43560

static int tf_sqft_to_acres(lua_State *L)
{
    if (!num_arg(L, 1, "tf.sqft_to_acres"))
        return 0;
    lua_pushnumber(L, lua_tonumber(L, -1) / (lua_Number)SQFT_PER_ACRE);
    return 1;
}

/* *out = a * b, or false when the product does not fit in a lua_Integer. */
static bool checked_mul(lua_Integer a, lua_Integer b, lua_Integer *out)
{
    if (a != 0 && b != 0) {
        if (a > 0 ? (b > 0 ? a > LUA_MAXINTEGER / b : b < LUA_MININTEGER / a)
                  : (b > 0 ? a < LUA_MININTEGER / b : a < LUA_MAXINTEGER / b))
            return false;
    }
    *out = a * b;
    return true;
}

static int tf_acres_to_sqft(lua_State *L)
{
    if (!num_arg(L, 1, "tf.acres_to_sqft"))
        return 0;
    if (lua_isinteger(L, -1)) {
        /* Checked: a signed overflow in C is undefined behaviour, not Lua's wrap-around. */
        lua_Integer acres = lua_tointeger(L, -1), sqft;
        if (!checked_mul(acres, SQFT_PER_ACRE, &sqft))
            return luaL_error(L, "tf.acres_to_sqft: %I acres is out of range: the square "
                                 "feet do not fit in a 64-bit integer",
                              acres);
        lua_pushinteger(L, sqft);
    } else {
        lua_pushnumber(L, lua_tonumber(L, -1) * (lua_Number)SQFT_PER_ACRE);
    }
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
    tfs_lua *rt = tfs_lua_rt(L);
    if (tfs_lua_is_nullish(rt, L, 1))
        return 0;
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t a = 0, b = len;
    trim_span(s, &a, &b);
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

static int tf_lookup(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    lua_settop(L, 3);
    if (tfs_lua_is_nullish(rt, L, 2)) {
        lua_pushvalue(L, 3);
        return 1;
    }
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_argerror(L, 2, "string or number expected");
    tfs_lua_push_lookup(rt, L, name, nlen); /* 4 */
    lua_pushvalue(L, 2);
    if (t == LUA_TNUMBER)
        lua_tostring(L, -1);
    if (lua_rawget(L, 4) == LUA_TNIL)
        lua_pushvalue(L, 3);
    return 1;
}

static int tf_address_suffix(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    size_t len;
    const char *s = str_arg(L, "tf.address_suffix", &len);
    if (!s)
        return 1;
    size_t a = 0, b = len;
    trim_span(s, &a, &b);
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
    tfs_lua_push_lookup(rt, L, "street_suffix", strlen("street_suffix"));
    lua_pushvalue(L, norm);
    if (lua_rawget(L, -2) == LUA_TNIL)
        lua_settop(L, norm);
    return 1;
}

static int tf_contains(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    if (tfs_lua_is_nullish(rt, L, 1)) {
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

void tfs_lua_open_tf(tfs_lua *rt, lua_State *L)
{
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
    tfs_lua_push_null(rt, L);
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, rt->roll_year);
    lua_setfield(L, -2, "roll_year");

    /* What scripts get: an empty table reading through to the module, which writes,
     * rawset (the sandbox's refuses it) and setmetatable cannot change. */
    int real = lua_gettop(L);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tf_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, tf_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "tf");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    rt->tf_ptr = lua_topointer(L, -1);
    lua_remove(L, real);
}
