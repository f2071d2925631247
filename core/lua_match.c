/* core/lua_match.c — Lua's pattern matching (string.find, match, gmatch, gsub) with a step
 * counter, so that a backtracking pattern ends at the instruction budget instead of
 * holding a worker for hours. Lua's own matcher runs in C and never returns to the VM
 * while it backtracks, so the count hook cannot stop it; this one charges every step
 * (each pattern item tried at a position, each character a quantifier or %b scans, each
 * start position) to the call's budget through tfs_lua_charge, which raises a Lua error
 * naming the budget. The semantics are Lua 5.4's, documented in the reference manual
 * (section 6.4.1), and the unit tests compare the results with the stock functions'.
 * There is no look at the pattern's text beyond parsing it: every pattern is bounded.
 */
#define _GNU_SOURCE /* memmem: linear (two-way) in glibc, where a naive search is not */
#include "lua_internal.h"

#include <ctype.h>
#include <string.h>

#include <lauxlib.h>

#define MAX_CAPTURES 32   /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200     /* nested matcher calls, as Lua's MAXCCALLS */
#define CHARGE_EVERY 4096 /* steps counted locally before they are charged */
#define CAP_OPEN (-1)     /* a capture whose ')' is not reached yet */
#define CAP_POS (-2)      /* a position capture, () */

typedef struct pm_state {
    const char *src, *src_end; /* the subject */
    const char *pat, *pat_end;
    lua_State *L;
    tfs_lua *rt;
    const char *what; /* "string.find" ... for the budget's message */
    int depth;        /* matcher calls still allowed */
    int level;        /* captures opened */
    unsigned steps;   /* not yet charged */
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POS */
    } cap[MAX_CAPTURES];
} pm_state;

static void pm_step(pm_state *m)
{
    if (++m->steps >= CHARGE_EVERY) {
        tfs_lua_charge(m->rt, m->L, m->steps, m->what);
        m->steps = 0;
    }
}

static void pm_flush(pm_state *m)
{
    if (m->steps) {
        unsigned n = m->steps;
        m->steps = 0;
        tfs_lua_charge(m->rt, m->L, n, m->what);
    }
}

/* ---- pattern items ------------------------------------------------------------------ */

/* Whether c belongs to the class letter cl (%a, %d, ...; upper case: the complement);
 * any other letter stands for itself. */
static bool in_class(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break; /* deprecated, still in Lua 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* The end of the single-character item at p (past its class, before any quantifier). */
static const char *item_end(pm_state *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        /* the first character of a set is itself even when it is ']' */
        do {
            if (p >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < m->pat_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

/* Whether c is in the set [ ... ] from open ('[') to close (its ']'). */
static bool in_set(int c, const char *open, const char *close)
{
    bool want = true;
    const char *p = open + 1;
    if (*p == '^') {
        want = false;
        p++;
    }
    for (; p < close; p++) {
        if (*p == '%' && p + 1 < close) {
            p++;
            if (in_class(c, (unsigned char)*p))
                return want;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* Whether the subject character at s matches the item p..ep. */
static bool item_matches(pm_state *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case '%': return in_class(c, (unsigned char)p[1]);
    case '[': return in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ---- the matcher -------------------------------------------------------------------- */

static const char *do_match(pm_state *m, const char *s, const char *p);

static int capture_index(pm_state *m, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->cap[i].len == CAP_OPEN)
        return luaL_error(m->L, "invalid capture index %%%d", i + 1);
    return i;
}

static const char *open_capture(pm_state *m, const char *s, const char *p, ptrdiff_t kind)
{
    if (m->level >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->level].at = s;
    m->cap[m->level].len = kind;
    m->level++;
    const char *r = do_match(m, s, p);
    if (!r)
        m->level--;
    return r;
}

static const char *close_capture(pm_state *m, const char *s, const char *p)
{
    int i = m->level - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = do_match(m, s, p);
    if (!r)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* %bxy at s: the end of a balanced run from x to its y, or NULL. */
static const char *balanced(pm_state *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < m->src_end) {
        pm_step(m);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* item* (greedy): the longest run, then shorter ones until the rest matches. */
static const char *greedy(pm_state *m, const char *s, const char *p, const char *ep)
{
    size_t n = 0;
    while (item_matches(m, s + n, p, ep)) {
        pm_step(m);
        n++;
    }
    for (;;) {
        pm_step(m);
        const char *r = do_match(m, s + n, ep + 1);
        if (r)
            return r;
        if (n == 0)
            return NULL;
        n--;
    }
}

/* item- (lazy): the shortest run that lets the rest match. */
static const char *lazy(pm_state *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        pm_step(m);
        const char *r = do_match(m, s, ep + 1);
        if (r)
            return r;
        if (!item_matches(m, s, p, ep))
            return NULL;
        s++;
    }
}

/* The end of the match of pattern p at subject position s, or NULL. */
static const char *do_match(pm_state *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    while (s && p < m->pat_end) {
        pm_step(m);
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POS)
                            : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            if (s != m->src_end)
                s = NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end) {
            char e = p[1];
            if (e == 'b') {
                s = balanced(m, s, p + 2);
                p += 4;
                continue;
            }
            if (e == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = item_end(m, p);
                int before = s == m->src ? 0 : (unsigned char)s[-1];
                int here = s < m->src_end ? (unsigned char)*s : 0;
                if (!in_set(before, p, ep - 1) && in_set(here, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                break;
            }
            if (e >= '0' && e <= '9') {
                int i = capture_index(m, (unsigned char)e);
                size_t len = (size_t)m->cap[i].len;
                if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[i].at, s, len) == 0) {
                    s += len;
                    p += 2;
                    continue;
                }
                s = NULL;
                break;
            }
        }
        /* a single-character item, maybe quantified */
        const char *ep = item_end(m, p);
        bool ok = item_matches(m, s, p, ep);
        char q = ep < m->pat_end ? *ep : '\0';
        if (!ok) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = greedy(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* ---- captures ----------------------------------------------------------------------- */

static void pm_init(pm_state *m, lua_State *L, const char *s, size_t ls, const char *p,
                    size_t lp, const char *what)
{
    m->L = L;
    m->rt = tfs_lua_rt(L);
    m->src = s;
    m->src_end = s + ls;
    m->pat = p;
    m->pat_end = p + lp;
    m->what = what;
    m->steps = 0;
}

static void pm_reset(pm_state *m)
{
    m->level = 0;
    m->depth = MAX_DEPTH;
}

/* Pushes capture i (the whole match s..e when there are none and i is 0); returns its
 * length, or CAP_POS when it pushed a position. */
static ptrdiff_t push_capture(pm_state *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return e - s;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POS)
        lua_pushinteger(m->L, (m->cap[i].at - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
    return len;
}

/* Pushes every capture (or the whole match when s is given and there are none). */
static int push_captures(pm_state *m, const char *s, const char *e)
{
    int n = m->level == 0 && s ? 1 : m->level;
    tfs_lua_checkstack(m->rt, m->L, n + 1);
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* ---- string.find, string.match -------------------------------------------------------- */

/* A relative start position to 1..len+1 (or past it). */
static size_t start_at(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i])
            return true;
    return false;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    const char *what = find ? "string.find" : "string.match";
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* plain text: memmem is linear; charged by the bytes it scanned */
        const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
        size_t scanned = at ? (size_t)(at - (s + init)) + lp : ls - init;
        tfs_lua_charge(tfs_lua_rt(L), L, scanned / 64, what);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (at - s) + (lua_Integer)lp);
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    pm_state m;
    const char *from = s + init;
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    pm_init(&m, L, s, ls, p, lp, what);
    do {
        pm_reset(&m);
        const char *e = do_match(&m, from, p);
        if (e) {
            pm_flush(&m);
            if (find) {
                lua_pushinteger(L, (from - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, from, e);
        }
    } while (from++ < m.src_end && !anchor);
    pm_flush(&m);
    luaL_pushfail(L);
    return 1;
}

static int pm_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int pm_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* ---- string.gmatch ------------------------------------------------------------------- */

typedef struct gm_state {
    const char *at;   /* where the next search starts */
    const char *last; /* end of the last match, so an empty match there is skipped */
    pm_state m;
} gm_state;

/* Upvalues: the subject, the pattern, the gm_state userdata. */
static int gmatch_next(lua_State *L)
{
    gm_state *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L;
    for (const char *from = g->at; from <= g->m.src_end; from++) {
        pm_reset(&g->m);
        const char *e = do_match(&g->m, from, g->m.pat);
        if (e && e != g->last) {
            pm_flush(&g->m);
            g->at = g->last = e;
            return push_captures(&g->m, from, e);
        }
    }
    pm_flush(&g->m);
    return 0;
}

static int pm_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);
    gm_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    if (init > ls)
        init = ls + 1;
    pm_init(&g->m, L, s, ls, p, lp, "string.gmatch");
    g->at = s + init;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---- string.gsub --------------------------------------------------------------------- */

/* A replacement string with %0-%9 and %%. */
static void add_template(pm_state *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *t = lua_tolstring(L, 3, &l);
    const char *end = t + l;
    while (t < end) {
        const char *pc = memchr(t, '%', (size_t)(end - t));
        if (!pc) {
            luaL_addlstring(b, t, (size_t)(end - t));
            break;
        }
        luaL_addlstring(b, t, (size_t)(pc - t));
        char d = pc + 1 < end ? pc[1] : '\0';
        if (d == '%') {
            luaL_addchar(b, '%');
        } else if (d == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (d >= '1' && d <= '9') {
            ptrdiff_t len = push_capture(m, d - '1', s, e);
            if (len == CAP_POS) {
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
            }
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        t = pc + 2;
    }
}

/* Adds the replacement of the match s..e; returns whether it changed anything. */
static bool add_replacement(pm_state *m, luaL_Buffer *b, const char *s, const char *e, int how)
{
    lua_State *L = m->L;
    if (how == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (how == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

static int pm_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int how = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, how == LUA_TNUMBER || how == LUA_TSTRING || how == LUA_TFUNCTION ||
                            how == LUA_TTABLE,
                     3, "string/function/table");
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    pm_state m;
    pm_init(&m, L, src, ls, p, lp, "string.gsub");
    lua_Integer n = 0;
    bool changed = false;
    while (n < max_n) {
        pm_reset(&m);
        const char *e = do_match(&m, src, p);
        if (e && e != last) {
            n++;
            pm_flush(&m); /* a replacement function runs under the budget on its own */
            changed = add_replacement(&m, &b, src, e, how) || changed;
            src = last = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    pm_flush(&m);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void tfs_lua_open_match(lua_State *L, int strlib)
{
    static const luaL_Reg fns[] = {
        {"find", pm_find}, {"match", pm_match}, {"gmatch", pm_gmatch}, {"gsub", pm_gsub},
        {NULL, NULL},
    };
    lua_pushvalue(L, strlib);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
