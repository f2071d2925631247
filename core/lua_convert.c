/* core/lua_convert.c — values across the Lua boundary: a source record becomes a Lua table
 * (nulls as tf.null, decimals as numbers, JSON as tables with arrays marked), and the
 * table map() returns becomes target records, typed loosely for the validator (integer,
 * float, string, boolean, table as JSON text). Field names are interned once per entity
 * and matched by address; the source table is reused from call to call; output values go
 * straight into records in the caller's arena. Errors found here (an unknown entity or
 * field, a value with no record form) are conversion errors, reported without a Lua
 * traceback.
 */
#include "lua_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "alloc.h"

#define MAX_OUTPUT_RECORDS 100000 /* target records from one source record */

/* ---- records to Lua ------------------------------------------------------------------ */

void tfs_lua_ents_flush(tfs_lua *rt)
{
    for (size_t i = 0; i < rt->n_ents; i++) {
        luaL_unref(rt->L, LUA_REGISTRYINDEX, rt->ents[i].ref);
        tfs_free(rt->ents[i].names);
    }
    rt->n_ents = 0;
}

/* Pushes the entity's info table (field names at 1..n, name -> 0-based index) and returns
 * its cache entry, valid until the next call. */
static tfs_lua_ent *push_ent_info(tfs_lua *rt, lua_State *L, const tfs_sdk_entity *e)
{
    for (size_t i = 0; i < rt->n_ents; i++) {
        tfs_lua_ent *ei = &rt->ents[i];
        if (ei->e == e && ei->fields == e->fields && ei->n == e->n_fields) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, ei->ref);
            return ei;
        }
    }
    if (rt->n_ents == TFS_LUA_MAX_ENT_CACHE)
        tfs_lua_ents_flush(rt);
    tfs_lua_checkstack(rt, L, 4);
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
    const char **names = tfs_malloc((e->n_fields ? e->n_fields : 1) * sizeof *names);
    if (!names) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        tfs_lua_raise_oom(rt, L);
    }
    for (size_t i = 0; i < e->n_fields; i++) {
        lua_rawgeti(L, t, (lua_Integer)i + 1);
        names[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    tfs_lua_ent *ei = &rt->ents[rt->n_ents++];
    *ei = (tfs_lua_ent){.e = e, .fields = e->fields, .n = e->n_fields, .ref = ref,
                     .names = names};
    return ei;
}

/* The index of the field named k, or -1: by address first, by text for names Lua does
 * not intern (longer than 40 bytes) or keys that are no field at all. */
static long field_of(const tfs_lua_ent *ei, const char *k, size_t klen)
{
    for (size_t i = 0; i < ei->n; i++)
        if (ei->names[i] == k)
            return (long)i;
    for (size_t i = 0; i < ei->n; i++)
        if (strlen(ei->fields[i].name) == klen && memcmp(ei->fields[i].name, k, klen) == 0)
            return (long)i;
    return -1;
}

/* __newindex of the source table: a key the script adds marks the table for a rebuild. */
static int newindex_mark(lua_State *L)
{
    tfs_lua_script *s = lua_touserdata(L, lua_upvalueindex(1));
    s->rec_dirty = true;
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

int tfs_lua_push_source(tfs_lua *rt, lua_State *L, tfs_lua_script *s, const tfs_record *src)
{
    const tfs_sdk_entity *e = src->entity;
    if (tfs_lua_decimals_begin(rt, src->n) != 0)
        return tfs_lua_conv_error(rt, TFS_ENOMEM, "out of memory reading a \"%s\" record",
                                  e->name);
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
    tfs_lua_push_null(rt, L);
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
            tfs_lua_push_decimal(rt, L, v->u.s, v->len);
            break;
        case TFS_SDK_JSON:
        case TFS_SDK_GEOMETRY:
            if (v->len == 2 && v->u.s[0] == '[' && v->u.s[1] == ']') {
                lua_newtable(L);
                lua_rawgeti(L, LUA_REGISTRYINDEX, rt->array_mt_ref);
                lua_setmetatable(L, -2);
            } else {
                char why[160];
                if (tfs_lua_push_json(rt, L, v->u.s, v->len, why, sizeof why) != 0)
                    return tfs_lua_conv_error(rt, TFS_EINVAL, "source field \"%s\" holds "
                                                              "invalid JSON: %s",
                                              e->fields[i].name, why);
            }
            break;
        case TFS_SDK_BYTES:
            /* A Lua string holds any bytes, NUL included: the script gets them as they are,
             * and a string it returns into a BYTES field is kept byte for byte. */
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
    int code;      /* of the failure: TFS_EINVAL, TFS_ELIMIT or TFS_ENOMEM */
    char why[200];
} jctx;

static json_t *jfail(jctx *c, int code, const char *fmt, ...) TFS_PRINTF(3, 4);
static json_t *jfail(jctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    c->code = code;
    return NULL;
}

static json_t *too_long(jctx *c)
{
    return jfail(c, TFS_ELIMIT, "JSON text longer than %zu bytes", c->rt->limits.max_string);
}

/* jansson refuses a string or a key that is not UTF-8 and fails to allocate alike, with
 * NULL or -1: plain ASCII (the common case) is valid, so then it was memory; otherwise a
 * copy without the check tells the two apart. */
static json_t *text_failed(jctx *c, const char *s, size_t len, const char *what)
{
    size_t i = 0;
    while (i < len && (unsigned char)s[i] < 0x80)
        i++;
    json_t *probe = i < len ? json_stringn_nocheck(s, len) : NULL;
    if (probe) {
        json_decref(probe);
        return jfail(c, TFS_EINVAL, "%s is not valid UTF-8", what);
    }
    return jfail(c, TFS_ENOMEM, "out of memory");
}

static json_t *table_to_json(jctx *c, int idx, int depth);

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

/* The value at idx as a new JSON value, or NULL with c->code and c->why. Allocates only
 * through jansson and raises no Lua error, so a failure leaks nothing. */
static json_t *to_json(jctx *c, int idx, int depth)
{
    lua_State *L = c->L;
    json_t *j = NULL;
    if (depth > TFS_LUA_MAX_JSON_DEPTH)
        return jfail(c, TFS_EINVAL, "tables nested deeper than %d levels (a cycle?)",
                     TFS_LUA_MAX_JSON_DEPTH);
    if (!lua_checkstack(L, 4))
        return jfail(c, TFS_ENOMEM, "out of Lua stack");
    if (c->budget < 8)
        return too_long(c);
    c->budget -= 8;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            j = json_integer((json_int_t)lua_tointeger(L, idx));
        else if (!isfinite(lua_tonumber(L, idx)))
            return jfail(c, TFS_EINVAL, "NaN and infinity have no JSON form");
        else
            j = json_real(lua_tonumber(L, idx));
        return j ? j : jfail(c, TFS_ENOMEM, "out of memory");
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len > c->budget)
            return too_long(c);
        c->budget -= len;
        j = json_stringn(s, len);
        return j ? j : text_failed(c, s, len, "a string");
    }
    case LUA_TTABLE:
        if (tfs_lua_is_null(c->rt, L, idx))
            return json_null();
        return table_to_json(c, idx, depth);
    default:
        return jfail(c, TFS_EINVAL, "a %s value has no JSON form", luaL_typename(L, idx));
    }
}

/* A table as a JSON array (marked, or a sequence) or object. */
static json_t *table_to_json(jctx *c, int idx, int depth)
{
    lua_State *L = c->L;
    json_t *j;
    if (tfs_lua_is_marked_array(c->rt, L, idx) || is_sequence(L, idx)) {
        j = json_array();
        if (!j)
            return jfail(c, TFS_ENOMEM, "out of memory");
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_t *v = to_json(c, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (!v || json_array_append_new(j, v) != 0) {
                json_decref(j);
                return v ? jfail(c, TFS_ENOMEM, "out of memory") : NULL;
            }
        }
        return j;
    }
    j = json_object();
    if (!j)
        return jfail(c, TFS_ENOMEM, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char kb[32];
        const char *k;
        size_t klen;
        if (lua_type(L, -2) == LUA_TSTRING) {
            k = lua_tolstring(L, -2, &klen);
        } else if (lua_isinteger(L, -2)) {
            klen = (size_t)snprintf(kb, sizeof kb, "%" PRId64, (int64_t)lua_tointeger(L, -2));
            k = kb;
        } else {
            jfail(c, TFS_EINVAL, "a table key of type %s has no JSON form",
                  luaL_typename(L, -2));
            lua_pop(L, 2);
            json_decref(j);
            return NULL;
        }
        json_t *v = NULL;
        if (klen > c->budget) {
            too_long(c);
        } else {
            c->budget -= klen;
            v = to_json(c, lua_gettop(L), depth + 1);
            /* setn_new takes v over, also when it fails */
            if (v && json_object_setn_new(j, k, klen, v) != 0) {
                text_failed(c, k, klen, "a key");
                v = NULL;
            }
        }
        lua_pop(L, 1);
        if (!v) {
            lua_pop(L, 1);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* json_dump_callback's sink: rt->jbuf, up to the output string limit. */
typedef struct dump_ctx {
    tfs_lua *rt;
    bool too_long;
} dump_ctx;

static int dump_cb(const char *buffer, size_t size, void *data)
{
    dump_ctx *d = data;
    if (d->rt->jbuf.len + size > d->rt->limits.max_string) {
        d->too_long = true;
        return -1;
    }
    return tfs_buf_append(&d->rt->jbuf, buffer, size);
}

/* A table into a field as JSON text. */
static int store_json(tfs_lua *rt, lua_State *L, tfs_record *rec, size_t fi, int vidx,
                      const char *ename)
{
    const char *fname = rec->entity->fields[fi].name;
    jctx c = {.rt = rt, .L = L, .budget = rt->limits.max_string};
    json_t *j = to_json(&c, vidx, 0);
    if (!j)
        return tfs_lua_conv_error(rt, c.code,
                                  "field \"%s\" of \"%s\": could not encode the table as "
                                  "JSON: %s",
                                  fname, ename, c.why);
    tfs_buf_reset(&rt->jbuf);
    dump_ctx d = {.rt = rt};
    int dr = json_dump_callback(j, dump_cb, &d, JSON_COMPACT | JSON_SORT_KEYS |
                                                    JSON_ENCODE_ANY);
    json_decref(j);
    if (d.too_long)
        return tfs_lua_conv_error(rt, TFS_ELIMIT,
                                  "field \"%s\" of \"%s\": JSON text longer than %zu bytes",
                                  fname, ename, rt->limits.max_string);
    if (dr != 0 || rt->jbuf.oom ||
        tfs_record_set_text(rec, fi, TFS_SDK_JSON, tfs_buf_str(&rt->jbuf), rt->jbuf.len))
        return tfs_lua_conv_error(rt, TFS_ENOMEM, "field \"%s\" of \"%s\": out of memory",
                                  fname, ename);
    return 0;
}

/* A float into a DECIMAL or TEXT field becomes text here, where the source decimals of the
 * call are known (lua_decimal.c), so that a copied decimal keeps its digits; into any other
 * field it stays a float for the validator. So do a NaN and an infinity, which no decimal
 * holds: the validator refuses them with the field's name. */
static int store_float(tfs_lua *rt, tfs_record *rec, size_t fi, double d, const char *ename)
{
    tfs_sdk_type want = rec->entity->fields[fi].type;
    char buf[400]; /* the plain form of a double's shortest text is at most 345 bytes */
    const char *text;
    size_t len;
    if ((want != TFS_SDK_DECIMAL && want != TFS_SDK_TEXT) ||
        tfs_lua_float_text(rt, d, want == TFS_SDK_DECIMAL, buf, sizeof buf, &text, &len) != 0) {
        rec->values[fi] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = d};
        return 0;
    }
    if (tfs_record_set_text(rec, fi, want, text, len) != 0)
        return tfs_lua_conv_error(rt, TFS_ENOMEM, "field \"%s\" of \"%s\": out of memory",
                                  rec->entity->fields[fi].name, ename);
    return 0;
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
            return store_float(rt, rec, fi, (double)lua_tonumber(L, vidx), ename);
        return 0;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, vidx, &len);
        if (len > rt->limits.max_string)
            return tfs_lua_conv_error(rt, TFS_ELIMIT, "field \"%s\" of \"%s\": string of %zu "
                                                      "bytes is longer than the limit of %zu",
                                      fname, ename, len, rt->limits.max_string);
        if (tfs_record_set_text(rec, fi, TFS_SDK_TEXT, s, len) != 0)
            return tfs_lua_conv_error(rt, TFS_ENOMEM, "field \"%s\" of \"%s\": out of memory",
                                      fname, ename);
        return 0;
    }
    case LUA_TTABLE: {
        if (tfs_lua_is_null(rt, L, vidx)) {
            *v = (tfs_value){.type = TFS_SDK_NULL};
            return 0;
        }
        return store_json(rt, L, rec, fi, vidx, ename);
    }
    default:
        return tfs_lua_conv_error(rt, TFS_EINVAL,
                                  "field \"%s\" of \"%s\": cannot store a %s value", fname,
                                  ename, luaL_typename(L, vidx));
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
static int convert_record(tfs_lua *rt, lua_State *L, int ridx, const tfs_lua_ent *ei,
                          tfs_record **out)
{
    const tfs_sdk_entity *e = ei->e;
    tfs_record *rec = tfs_record_new(rt->arena, e);
    if (!rec)
        return tfs_lua_conv_error(rt, TFS_ENOMEM, "out of memory building a \"%s\" record",
                                  e->name);
    lua_pushnil(L);
    while (lua_next(L, ridx)) {
        size_t klen;
        if (lua_type(L, -2) != LUA_TSTRING)
            return tfs_lua_conv_error(rt, TFS_EINVAL, "map() returned a \"%s\" record with a "
                                                      "%s key; field names are strings",
                                      e->name, luaL_typename(L, -2));
        const char *k = lua_tolstring(L, -2, &klen);
        long fi = field_of(ei, k, klen);
        if (fi < 0) {
            int rc = tfs_lua_conv_error(rt, TFS_EINVAL, "map() returned unknown field \"%s\" "
                                                        "for entity \"%s\"",
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
    if (tfs_lua_is_null(rt, L, vidx))
        return 0;
    int t = lua_rawgeti(L, vidx, 1);
    lua_pop(L, 1);
    if (t == LUA_TTABLE)
        return (long)lua_rawlen(L, vidx);
    if (tfs_lua_is_marked_array(rt, L, vidx) && lua_rawlen(L, vidx) == 0)
        return 0;
    lua_pushnil(L);
    if (!lua_next(L, vidx))
        return 0;
    lua_pop(L, 2);
    return 1;
}

int tfs_lua_convert_output(tfs_lua *rt, lua_State *L, int res)
{
    tfs_lua_output *out = rt->out;
    if (lua_isnil(L, res) || tfs_lua_is_null(rt, L, res))
        return 0;
    if (lua_type(L, res) != LUA_TTABLE)
        return tfs_lua_conv_error(rt, TFS_EINVAL, "map() must return a table keyed by target "
                                                  "entity (or nil), not a %s",
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
            int rc = tfs_lua_conv_error(rt, TFS_EINVAL, "map() returned unknown entity \"%s\"",
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
            return tfs_lua_conv_error(rt, TFS_EINVAL, "map() returned a %s for \"%s\"; "
                                                      "expected a record table or a list of "
                                                      "them",
                                      luaL_typename(L, -1), k);
        total += (size_t)n;
        lua_pop(L, 1);
    }
    if (total == 0)
        return 0;
    if (total > MAX_OUTPUT_RECORDS)
        return tfs_lua_conv_error(rt, TFS_ELIMIT, "map() returned %zu records; at most %d are "
                                                  "allowed for one source record",
                                  total, MAX_OUTPUT_RECORDS);
    out->recs = tfs_arena_alloc(rt->arena, total * sizeof *out->recs);
    if (!out->recs)
        return tfs_lua_conv_error(rt, TFS_ENOMEM, "out of memory");
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
            const tfs_lua_ent *ei = push_ent_info(rt, L, e);
            int t = lua_rawgeti(L, v, 1);
            lua_pop(L, 1);
            if (t == LUA_TTABLE) {
                for (long i = 1; i <= n; i++) {
                    if (lua_rawgeti(L, v, i) != LUA_TTABLE || tfs_lua_is_null(rt, L, -1))
                        return tfs_lua_conv_error(rt, TFS_EINVAL,
                                                  "map() returned a list for \"%s\" whose "
                                                  "element %ld is a %s, not a record table",
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
