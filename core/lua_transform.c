/* core/lua_transform.c — the public face of the sandboxed Lua 5.4 transformer (see
 * lua_transform.h): creating and freeing a runtime, loading a script, and mapping one
 * source record through a script's map() into target records. The work is done by the
 * other lua_*.c files through lua_internal.h: the sandbox (allocator, budget, protected
 * calls), the tf module, script and lookup files, and value conversion.
 *
 * Hot path (tfs_lua_map, once per source record): no malloc of our own; the source table
 * is reused per script, field names are interned once per entity and reached by index,
 * and output values are written straight into records in the caller's arena. The Lua
 * side is guarded four ways: the count hook bounds Lua code (instructions, the wall clock,
 * the stop flag), the C loops it cannot see charge the same budget (lua_match.c,
 * lua_bounded.c), the allocator bounds memory, and output strings are bounded by
 * limits.max_string.
 */
#include "lua_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "alloc.h"
#include "canonical.h"

/* ---- runtime lifecycle -------------------------------------------------------------- */

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
    rt = tfs_calloc(1, sizeof *rt);
    if (!rt) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not create lua runtime: out of memory");
        goto out;
    }
    rt->magic = TFS_LUA_MAGIC;
    rt->null_ref = rt->array_mt_ref = rt->template_ref = LUA_NOREF;
    rt->limits.memory_bytes = limits && limits->memory_bytes ? limits->memory_bytes
                                                             : TFS_LUA_MEMORY_DEFAULT;
    rt->limits.instructions = limits && limits->instructions ? limits->instructions
                                                             : TFS_LUA_INSTRUCTIONS_DEFAULT;
    rt->limits.max_string = limits && limits->max_string ? limits->max_string
                                                         : TFS_LUA_MAX_STRING_DEFAULT;
    rt->limits.record_ms = limits && limits->record_ms ? limits->record_ms
                                                       : TFS_LUA_RECORD_MS_DEFAULT;
    if (rt->limits.max_string > UINT32_MAX)
        rt->limits.max_string = UINT32_MAX;
    rt->roll_year = roll_year;
    size_t dl = strlen(transform_dir);
    while (dl > 1 && transform_dir[dl - 1] == '/')
        dl--;
    rt->dir = tfs_malloc(dl + 1);
    if (!rt->dir) {
        rc = tfs_error_set(err, TFS_ENOMEM, "could not create lua runtime: out of memory");
        goto out;
    }
    memcpy(rt->dir, transform_dir, dl);
    rt->dir[dl] = '\0';
    rc = tfs_lua_open_state(rt, tfs_lua_open_tf, err);
    if (rc != 0)
        goto out;
    *out = rt;
    rt = NULL;
out:
    tfs_lua_free(rt);
    return rc;
}

size_t tfs_lua_memory(const tfs_lua *rt)
{
    return rt ? rt->mem_used : 0;
}

void tfs_lua_collect(tfs_lua *rt)
{
    if (rt && rt->L)
        lua_gc(rt->L, LUA_GCCOLLECT);
}

void tfs_lua_free(tfs_lua *rt)
{
    if (!rt)
        return;
    if (rt->L) {
        tfs_lua_ents_flush(rt);
        lua_close(rt->L);
    }
    tfs_lua_scripts_free(rt);
    tfs_buf_free(&rt->trace);
    tfs_buf_free(&rt->scratch);
    tfs_buf_free(&rt->jbuf);
    tfs_free(rt->decs);
    tfs_free(rt->dir);
    rt->magic = 0;
    tfs_free(rt);
}

int tfs_lua_load(tfs_lua *rt, const char *name, tfs_error *err)
{
    tfs_lua_script *s;
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name)
        return tfs_error_set(err, TFS_EINVAL, "could not load script: invalid arguments");
    return tfs_lua_script_get(rt, name, true, &s, err);
}

int tfs_lua_load_text(tfs_lua *rt, const char *name, const char *text, size_t len,
                      tfs_error *err)
{
    tfs_lua_script *s;
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name || !text)
        return tfs_error_set(err, TFS_EINVAL, "could not load script: invalid arguments");
    int rc = tfs_lua_script_set_text(rt, name, text, len, err);
    return rc ? rc : tfs_lua_script_get(rt, name, false, &s, err);
}

/* ---- mapping a record ----------------------------------------------------------------- */

/* validate()'s answer at index res into rt->out->problems (copied to the arena). */
static void convert_problems(tfs_lua *rt, lua_State *L, int res)
{
    tfs_lua_output *out = rt->out;
    if (lua_isnil(L, res))
        return;
    if (lua_type(L, res) == LUA_TSTRING) { /* one problem */
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, res);
        lua_rawseti(L, -2, 1);
        lua_replace(L, res);
    }
    if (lua_type(L, res) != LUA_TTABLE) {
        tfs_lua_conv_error(rt, TFS_EINVAL, "validate() returned %s, not a list of problems",
                           luaL_typename(L, res));
        snprintf(rt->conv_hint, sizeof rt->conv_hint,
                 "return a table of strings, e.g. { \"asmt.valasm3 is above valapr3\" }, or "
                 "{} when the record is fine");
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, res);
    size_t keep = n > TFS_LUA_MAX_PROBLEMS ? TFS_LUA_MAX_PROBLEMS : (size_t)n;
    if (keep == 0)
        return;
    const char **p = tfs_arena_alloc(rt->arena, keep * sizeof *p);
    if (!p) {
        tfs_lua_raise_oom(rt, L);
        return;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, res, i);
        if (t != LUA_TSTRING) {
            tfs_lua_conv_error(rt, TFS_EINVAL, "validate() returned %s as problem %lld, not a "
                               "string", lua_typename(L, t), (long long)i);
            return;
        }
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len > rt->limits.max_string) {
            tfs_lua_conv_error(rt, TFS_ELIMIT, "validate() returned a problem of %zu bytes, "
                               "more than lua.max_string", len);
            return;
        }
        if ((size_t)i <= keep) {
            if (!(p[i - 1] = tfs_arena_strndup(rt->arena, s, len))) {
                tfs_lua_raise_oom(rt, L);
                return;
            }
        }
        lua_pop(L, 1);
    }
    out->problems = p;
    out->n_problems = keep;
}

/* Under lua_pcall: the source table, map(rec), the conversion of what it returned, then
 * validate(rec, out) when the script has one. */
static int protected_map(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_script *s = rt->cur;
    rt->phase = TFS_LUA_CONVERT;
    if (tfs_lua_push_source(rt, L, s, rt->src) != 0) /* 1 */
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->map_ref);
    lua_pushvalue(L, 1);
    rt->phase = TFS_LUA_IN_LUA;
    lua_call(L, 1, 1); /* 2: what map() returned */
    rt->phase = TFS_LUA_CONVERT;
    tfs_lua_convert_output(rt, L, 2);
    if (rt->conv_code != 0 || s->validate_ref == LUA_NOREF)
        return 0;
    lua_settop(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->validate_ref);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    rt->phase = TFS_LUA_IN_LUA;
    lua_call(L, 2, 1); /* 3 */
    rt->phase = TFS_LUA_CONVERT;
    convert_problems(rt, L, 3);
    return 0;
}

int tfs_lua_map(tfs_lua *rt, const char *name, const tfs_record *src, const char *key,
                const tfs_sdk_entity *const *targets, size_t n_targets, tfs_arena *arena,
                tfs_lua_output *out, tfs_error *err)
{
    tfs_lua_script *s;
    if (out)
        *out = (tfs_lua_output){0};
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name || !src || !arena || !out ||
        (n_targets && !targets))
        return tfs_error_set(err, TFS_EINVAL, "could not map record: invalid arguments");
    int rc = tfs_lua_script_get(rt, name, false, &s, err);
    if (rc != 0) {
        if (key && err) {
            size_t l = strlen(err->message);
            snprintf(err->message + l, sizeof err->message - l, " (record %s)", key);
        }
        return rc;
    }
    rt->cur = s;
    rt->src = src;
    rt->targets = targets;
    rt->n_targets = n_targets;
    rt->arena = arena;
    rt->out = out;
    int status = tfs_lua_pcall(rt, protected_map);
    if (status != LUA_OK || rt->conv_code != 0) {
        *out = (tfs_lua_output){0};
        return tfs_lua_call_failed(rt, s, status, key, err);
    }
    lua_settop(rt->L, 0);
    return 0;
}

/* Under lua_pcall: map() on the script's source table as the last call left it (built
 * when there is none yet), its result dropped. */
static int protected_script_only(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_script *s = rt->cur;
    rt->phase = TFS_LUA_CONVERT;
    if (s->rec_ref != LUA_NOREF && s->rec_entity == rt->src->entity && !s->rec_dirty)
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->rec_ref);
    else if (tfs_lua_push_source(rt, L, s, rt->src) != 0)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->map_ref);
    lua_pushvalue(L, 1);
    rt->phase = TFS_LUA_IN_LUA;
    lua_call(L, 1, 1);
    rt->phase = TFS_LUA_CONVERT;
    return 0;
}

int tfs_lua_map_script_only(tfs_lua *rt, const char *name, const tfs_record *src, long n,
                            tfs_error *err)
{
    tfs_lua_script *s;
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name || !src)
        return tfs_error_set(err, TFS_EINVAL, "could not map record: invalid arguments");
    int rc = tfs_lua_script_get(rt, name, false, &s, err);
    if (rc != 0)
        return rc;
    rt->cur = s;
    rt->src = src;
    rt->targets = NULL;
    rt->n_targets = 0;
    rt->arena = NULL;
    rt->out = NULL; /* nothing is converted */
    for (long i = 0; i < n; i++) {
        int status = tfs_lua_pcall(rt, protected_script_only);
        if (status != LUA_OK || rt->conv_code != 0)
            return tfs_lua_call_failed(rt, s, status, NULL, err);
        lua_settop(rt->L, 0);
    }
    return 0;
}

void tfs_lua_set_stop(tfs_lua *rt, const atomic_int *stop)
{
    if (rt)
        rt->stop = stop;
}

bool tfs_lua_stopped(const tfs_lua *rt)
{
    return rt && rt->hit == TFS_LUA_HIT_STOP;
}

int tfs_lua_roll_year(const tfs_lua *rt)
{
    return rt ? rt->roll_year : 0;
}

int tfs_lua_script_version(tfs_lua *rt, const char *name, char out[13], tfs_error *err)
{
    tfs_lua_script *s;
    out[0] = '\0';
    if (!rt || rt->magic != TFS_LUA_MAGIC || !name)
        return tfs_error_set(err, TFS_EINVAL, "could not version script: invalid arguments");
    int rc = tfs_lua_script_get(rt, name, false, &s, err);
    if (rc)
        return rc;
    /* Modules mixed in whatever order they were required: a sum of their mixed hashes. */
    uint64_t h = s->text_hash, deps = 0;
    for (const tfs_lua_dep *d = s->deps; d; d = d->next)
        deps += d->hash * UINT64_C(0x9e3779b97f4a7c15);
    h = tfs_hash_bytes(h, &deps, sizeof deps);
    snprintf(out, 13, "%012llx", (unsigned long long)(h >> 16));
    return 0;
}

/* Under lua_pcall: is rt->lk_code a code of lookup table rt->lk_table. */
static int protected_lookup(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_push_lookup(rt, L, rt->lk_table, strlen(rt->lk_table));
    lua_pushlstring(L, rt->lk_code, rt->lk_code_len);
    rt->lk_found = lua_rawget(L, -2) != LUA_TNIL;
    return 0;
}

int tfs_lua_lookup_has(void *ctx, const char *table, const char *code, size_t len,
                       tfs_error *err)
{
    tfs_lua *rt = ctx;
    if (!rt || rt->magic != TFS_LUA_MAGIC || !table || !code)
        return tfs_error_set(err, TFS_EINVAL, "could not look up a code: invalid arguments");
    rt->lk_table = table;
    rt->lk_code = code;
    rt->lk_code_len = len;
    rt->lk_found = 0;
    int status = tfs_lua_pcall(rt, protected_lookup);
    int rc = rt->lk_found;
    if (status != LUA_OK) {
        const char *msg = lua_type(rt->L, -1) == LUA_TSTRING ? lua_tostring(rt->L, -1) : NULL;
        /* The cap refusing the table is the table's problem (a reason); the process out of
         * memory is not. */
        rc = rt->mem_hit ? TFS_ELIMIT
             : status == LUA_ERRMEM || rt->oom_raised ? TFS_ENOMEM
                                                       : TFS_EIO;
        tfs_error_set(err, rc, "%s",
                      rc == TFS_ELIMIT   ? "the table does not fit in lua.memory_bytes"
                      : rc == TFS_ENOMEM ? "out of memory reading a lookup table"
                      : msg              ? msg
                                         : "could not read a lookup table");
        tfs_buf_reset(&rt->trace);
    }
    lua_settop(rt->L, 0);
    rt->lk_table = rt->lk_code = NULL;
    return rc;
}
