/* core/lua_transform.c — the public face of the sandboxed Lua 5.4 transformer (see
 * lua_transform.h): creating and freeing a runtime, loading a script, and mapping one
 * source record through a script's map() into target records. The work is done by the
 * other lua_*.c files through lua_internal.h: the sandbox (allocator, budget, protected
 * calls), the tf module, script and lookup files, and value conversion.
 *
 * Hot path (tfs_lua_map, once per source record): no malloc of our own; the source table
 * is reused per script, field names are interned once per entity and reached by index,
 * and output values are written straight into records in the caller's arena. The Lua
 * side is guarded three ways, since the instruction hook never fires inside a C function
 * (string.rep, pattern matching): the hook bounds Lua code, the allocator bounds memory,
 * and output strings are bounded by limits.max_string.
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

/* Under lua_pcall: the source table, map(rec), then the conversion of what it returned. */
static int protected_map(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_script *s = rt->cur;
    rt->phase = TFS_LUA_CONVERT;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->map_ref);
    if (tfs_lua_push_source(rt, L, s, rt->src) != 0)
        return 0;
    rt->phase = TFS_LUA_IN_LUA;
    lua_call(L, 1, 1);
    rt->phase = TFS_LUA_CONVERT;
    tfs_lua_convert_output(rt, L, lua_gettop(L));
    return 0;
}

int tfs_lua_map(tfs_lua *rt, const char *name, const tfs_record *src, const char *key,
                const tfs_sdk_entity *const *targets, size_t n_targets, tfs_arena *arena,
                tfs_lua_output *out, tfs_error *err)
{
    tfs_lua_script *s;
    if (out) {
        out->recs = NULL;
        out->n = 0;
    }
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
        out->recs = NULL;
        out->n = 0;
        return tfs_lua_call_failed(rt, s, status, key, err);
    }
    lua_settop(rt->L, 0);
    return 0;
}
