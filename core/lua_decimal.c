/* core/lua_decimal.c — exact decimals across the Lua boundary. Records hold decimals as
 * text; scripts get them as Lua numbers (they add and compare them), which for a value with
 * a fractional part is a double: "1.005" becomes 1.00499999999999989..., and
 * "12345678901234567.891" a double no text of 17 digits gets back. Coming back, a float
 * becomes decimal text again, and that text must be the source's when the script copied
 * the value unchanged, and the shortest text that reads back as the float otherwise
 * (0.1 + 0.2 gives "0.30000000000000004"), never %.17g's "1.0049999999999999".
 *
 * How a copied decimal is recognised: each call remembers the text of every source decimal
 * that entered Lua as a float, next to its double; a float coming back that is exactly one
 * of those doubles is given that text. Why this and not a decimal userdata: a userdata
 * would keep the text for sure, but every script's `rec.x * 2`, `rec.x > 0`, math.floor and
 * string.format would need metamethods and would still break on tonumber(), math.type()
 * and rawequal; numbers keep the scripts as they are. The cost of the choice: a computed
 * float that happens to be exactly a source decimal's double gets that decimal's text,
 * which is a decimal the double stands for just as well. When two source decimals of
 * different value share a double (digits past the 17th), which one a script copied cannot
 * be known, and the shortest text is used.
 */
#include "lua_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "decimal.h"

/* Sign, digits, an optional point and digits: what a record's DECIMAL text is. */
static bool plain_decimal(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    return i == len && digits > 0;
}

/* Whether two plain decimals have the same value ("0.2500" and ".25", "-0" and "0"). */
static bool same_value(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *s[2] = {a, b};
    size_t len[2] = {alen, blen};
    bool neg[2];
    const char *ip[2], *fp[2];
    size_t il[2], fl[2];
    for (int k = 0; k < 2; k++) {
        const char *p = s[k], *end = s[k] + len[k];
        neg[k] = p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+'))
            p++;
        while (p < end && *p == '0')
            p++;
        ip[k] = p;
        while (p < end && *p != '.')
            p++;
        il[k] = (size_t)(p - ip[k]);
        fp[k] = p < end ? p + 1 : end;
        const char *fe = end;
        while (fe > fp[k] && fe[-1] == '0')
            fe--;
        fl[k] = (size_t)(fe - fp[k]);
    }
    bool zero = il[0] == 0 && fl[0] == 0;
    return (zero || neg[0] == neg[1]) && il[0] == il[1] && memcmp(ip[0], ip[1], il[0]) == 0 &&
           fl[0] == fl[1] && memcmp(fp[0], fp[1], fl[0]) == 0;
}

int tfs_lua_decimals_begin(tfs_lua *rt, size_t n_fields)
{
    rt->n_decs = 0;
    if (n_fields <= rt->cap_decs)
        return 0;
    tfs_lua_srcdec *d = tfs_realloc(rt->decs, n_fields * sizeof *d);
    if (!d)
        return TFS_ENOMEM;
    rt->decs = d;
    rt->cap_decs = n_fields;
    return 0;
}

/* Remembers the text of a source decimal that entered Lua as the float d. */
static void note(tfs_lua *rt, double d, const char *s, size_t len)
{
    if (!plain_decimal(s, len))
        return; /* "1e5" or "0x10": no text a target's numeric would take as it is */
    for (size_t i = 0; i < rt->n_decs; i++) {
        tfs_lua_srcdec *e = &rt->decs[i];
        if (e->d == d) {
            if (!same_value(e->text, e->len, s, len))
                e->ambiguous = true;
            return;
        }
    }
    if (rt->n_decs < rt->cap_decs)
        rt->decs[rt->n_decs++] = (tfs_lua_srcdec){.d = d, .text = s, .len = len};
}

void tfs_lua_push_decimal(tfs_lua *rt, lua_State *L, const char *s, size_t len)
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
    /* lua_stringtonumber reads up to a NUL: text with one inside ("1\0abc") is no number,
     * not the number before the NUL. */
    if (memchr(s, '\0', len) || lua_stringtonumber(L, s) == 0) {
        lua_pushlstring(L, s, len); /* not a number: let the script see the text */
        return;
    }
    if (!lua_isinteger(L, -1))
        note(rt, (double)lua_tonumber(L, -1), s, len);
}

/* Rewrites a float's shortest text in exponent form, [-]d[.ddd]e<exp> as %g writes it (a
 * non-zero first digit, no trailing zeros), without the exponent: "1.5e-07" as
 * "0.00000015", "1e+20" as "100000000000000000000", the form a numeric column and the
 * validator read. Returns the length, or -1 when it does not fit in size. */
static int unexponent(const char *in, char *buf, size_t size)
{
    char digits[24];
    size_t nd = 0;
    const char *p = in;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < sizeof digits)
            digits[nd++] = *p;
    if (*p != 'e' || nd == 0)
        return -1;
    long point = 1 + strtol(p + 1, NULL, 10); /* digits before the point */
    size_t need = (neg ? 1 : 0) + (point <= 0            ? 2 + (size_t)-point + nd
                                   : (size_t)point >= nd ? (size_t)point
                                                         : nd + 1);
    if (need + 1 > size)
        return -1;
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (point <= 0) {
        *o++ = '0';
        *o++ = '.';
        memset(o, '0', (size_t)-point);
        o += -point;
        memcpy(o, digits, nd);
        o += nd;
    } else if ((size_t)point >= nd) {
        memcpy(o, digits, nd);
        memset(o + nd, '0', (size_t)point - nd);
        o += point;
    } else {
        memcpy(o, digits, (size_t)point);
        o += point;
        *o++ = '.';
        memcpy(o, digits + point, nd - (size_t)point);
        o += nd - (size_t)point;
    }
    *o = '\0';
    return (int)(o - buf);
}

int tfs_lua_float_text(tfs_lua *rt, double d, bool plain, char *buf, size_t size,
                       const char **text, size_t *len)
{
    for (size_t i = 0; i < rt->n_decs; i++) {
        const tfs_lua_srcdec *e = &rt->decs[i];
        if (e->d == d && !e->ambiguous) {
            *text = e->text;
            *len = e->len;
            return 0;
        }
    }
    char shortest[40];
    if (d == 0)
        d = 0; /* -0.0 is 0 */
    int n = tfs_decimal_from_double(d, shortest, sizeof shortest);
    if (n < 0)
        return n;
    if (plain && strchr(shortest, 'e'))
        n = unexponent(shortest, buf, size);
    else if ((size_t)n < size)
        memcpy(buf, shortest, (size_t)n + 1);
    else
        n = -1;
    if (n < 0)
        return TFS_ELIMIT;
    *text = buf;
    *len = (size_t)n;
    return 0;
}
