/* core/lua_json.c — a source record's JSON text straight into Lua values: objects become
 * tables, arrays tables with the array marker (so an empty array stays an array), null
 * tf.null, integers Lua integers. It reads the text itself rather than through a jansson
 * tree, so that no memory but the Lua state's is involved: jansson reports a failed
 * allocation while reading a string as an invalid token, which would have turned running
 * out of memory into "invalid JSON" in the source; here a failed allocation is a Lua memory
 * error like any other, and malformed text is the only cause of the errors this file
 * returns. What it accepts is what jansson's decoder accepts (RFC 8259, UTF-8, any value at
 * the top, no \u0000, integers that fit in 64 bits, finite reals).
 */
#include "lua_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

typedef struct jreader {
    tfs_lua *rt;
    lua_State *L;
    const char *start, *p, *end;
    char *why; /* the error, for the caller */
    size_t why_size;
} jreader;

static bool bad(jreader *r, const char *what)
{
    snprintf(r->why, r->why_size, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return false;
}

static void skip_ws(jreader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* The length of the valid UTF-8 sequence at p (no overlong forms, surrogates or code points
 * past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* A \u escape at r->p (just past the backslash and the u), with its low surrogate. */
static bool read_uescape(jreader *r, luaL_Buffer *b)
{
    if (r->end - r->p < 4)
        return bad(r, "invalid \\u escape");
    int hi = hex4(r->p);
    if (hi < 0)
        return bad(r, "invalid \\u escape");
    r->p += 4;
    unsigned cp = (unsigned)hi;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return bad(r, "invalid Unicode \\u escape (a lone low surrogate)");
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        int lo = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' ? hex4(r->p + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return bad(r, "invalid Unicode \\u escape (a high surrogate without its pair)");
        r->p += 6;
        cp = 0x10000 + (((unsigned)hi - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
    }
    if (cp == 0)
        return bad(r, "\\u0000 is not allowed");
    add_utf8(b, cp);
    return true;
}

/* A string at r->p (on its opening quote), pushed. */
static bool read_string(jreader *r)
{
    luaL_Buffer b;
    luaL_buffinit(r->L, &b);
    r->p++;
    for (;;) {
        const char *run = r->p;
        while (r->p < r->end && *r->p != '"' && *r->p != '\\' &&
               (unsigned char)*r->p >= 0x20) {
            size_t n = utf8_seq((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (n == 0)
                return bad(r, "invalid UTF-8");
            r->p += n;
        }
        luaL_addlstring(&b, run, (size_t)(r->p - run));
        if (r->p == r->end)
            return bad(r, "unterminated string");
        char c = *r->p++;
        if (c == '"')
            break;
        if (c != '\\')
            return bad(r, "control character in a string");
        if (r->p == r->end)
            return bad(r, "unterminated string");
        c = *r->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            luaL_addchar(&b, c);
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u':
            if (!read_uescape(r, &b))
                return false;
            break;
        default:
            return bad(r, "invalid escape");
        }
    }
    luaL_pushresult(&b);
    return true;
}

static bool digits(jreader *r)
{
    const char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s;
}

/* A number at r->p, pushed: an integer without a fraction or an exponent. */
static bool read_number(jreader *r)
{
    const char *s = r->p;
    bool integer = true;
    if (*r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0')
        r->p++;
    else if (!digits(r))
        return bad(r, "invalid number");
    if (r->p < r->end && *r->p == '.') {
        integer = false;
        r->p++;
        if (!digits(r))
            return bad(r, "invalid number");
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        integer = false;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!digits(r))
            return bad(r, "invalid number");
    }
    /* The text is checked: Lua's own reader gives what jansson's strtoll/strtod would. It
     * reads a C string: a copy on the stack, not a Lua string made and dropped for each
     * number (a GeoJSON shape is mostly numbers). */
    size_t n = (size_t)(r->p - s);
    char small[64];
    if (n < sizeof small) {
        memcpy(small, s, n);
        small[n] = '\0';
        if (lua_stringtonumber(r->L, small) == 0)
            return bad(r, "invalid number");
    } else {
        lua_pushlstring(r->L, s, n);
        if (lua_stringtonumber(r->L, lua_tostring(r->L, -1)) == 0)
            return bad(r, "invalid number");
        lua_remove(r->L, -2);
    }
    if (integer && !lua_isinteger(r->L, -1))
        return bad(r, "too big integer");
    if (!integer && !isfinite(lua_tonumber(r->L, -1)))
        return bad(r, "real number overflow");
    return true;
}

static bool read_value(jreader *r, int depth);

/* An object or an array at r->p (on its bracket), pushed. */
static bool read_container(jreader *r, int depth)
{
    lua_State *L = r->L;
    bool object = *r->p++ == '{';
    char close = object ? '}' : ']';
    lua_newtable(L);
    lua_Integer n = 0;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
    } else {
        for (;;) {
            skip_ws(r);
            if (object) {
                if (r->p == r->end || *r->p != '"')
                    return bad(r, "string or '}' expected");
                if (!read_string(r))
                    return false;
                skip_ws(r);
                if (r->p == r->end || *r->p != ':')
                    return bad(r, "':' expected");
                r->p++;
            }
            if (!read_value(r, depth + 1))
                return false;
            if (object)
                lua_rawset(L, -3);
            else
                lua_rawseti(L, -2, ++n);
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (r->p < r->end && *r->p == close) {
                r->p++;
                break;
            }
            return bad(r, object ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    if (!object) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->rt->array_mt_ref);
        lua_setmetatable(L, -2);
    }
    return true;
}

static bool read_value(jreader *r, int depth)
{
    if (depth > TFS_LUA_MAX_JSON_DEPTH) {
        snprintf(r->why, r->why_size, "JSON nested deeper than %d levels",
                 TFS_LUA_MAX_JSON_DEPTH);
        return false;
    }
    tfs_lua_checkstack(r->rt, r->L, 4);
    skip_ws(r);
    if (r->p == r->end)
        return bad(r, "a value expected");
    size_t left = (size_t)(r->end - r->p);
    switch (*r->p) {
    case '{':
    case '[':
        return read_container(r, depth);
    case '"':
        return read_string(r);
    case 't':
        if (left < 4 || memcmp(r->p, "true", 4) != 0)
            return bad(r, "invalid token");
        r->p += 4;
        lua_pushboolean(r->L, 1);
        return true;
    case 'f':
        if (left < 5 || memcmp(r->p, "false", 5) != 0)
            return bad(r, "invalid token");
        r->p += 5;
        lua_pushboolean(r->L, 0);
        return true;
    case 'n':
        if (left < 4 || memcmp(r->p, "null", 4) != 0)
            return bad(r, "invalid token");
        r->p += 4;
        tfs_lua_push_null(r->rt, r->L);
        return true;
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return read_number(r);
        return bad(r, "invalid token");
    }
}

int tfs_lua_push_json(tfs_lua *rt, lua_State *L, const char *s, size_t len, char *why,
                      size_t why_size)
{
    int top = lua_gettop(L);
    jreader r = {.rt = rt, .L = L, .start = s, .p = s, .end = s + len, .why = why,
                 .why_size = why_size};
    bool ok = read_value(&r, 0);
    if (ok) {
        skip_ws(&r);
        if (r.p != r.end)
            ok = bad(&r, "end of text expected");
    }
    if (!ok) {
        lua_settop(L, top);
        return TFS_EINVAL;
    }
    return 0;
}
