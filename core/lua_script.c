/* core/lua_script.c — the files behind a runtime: scripts loaded as text into their own
 * environment and reloaded when they or a module they required change on disk (checked at
 * most once a second), require (a module <name>.lua of the transform directory, loaded
 * into an environment of its own and cached per script), and the lookup tables
 * (lookups/<name>.csv, code,value) read on first use and re-read when their file changes.
 * A script that fails to load keeps its error, returned by every call, until one of its
 * files changes; the file names that reach the disk are checked so that nothing outside
 * the transform directory is ever read.
 */
#include "lua_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "alloc.h"
#include "canonical.h"
#include "log.h"

#define MAX_SOURCE_FILE ((size_t)16 << 20) /* scripts, modules, lookup tables */
#define RECHECK_NS INT64_C(1000000000) /* a script's files are stat'ed at most once a second */

/* ---- files ---------------------------------------------------------------------- */

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

static void stamp_of(const struct stat *st, tfs_lua_stamp *fs)
{
    memset(fs, 0, sizeof *fs);
    fs->dev = st->st_dev;
    fs->ino = st->st_ino;
    fs->size = st->st_size;
    fs->mtime = st->st_mtim;
}

static bool stamp_eq(const tfs_lua_stamp *a, const tfs_lua_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* True when the file's current stamp differs from st (or it cannot be stat'ed). */
static bool file_changed(const char *path, const tfs_lua_stamp *st)
{
    struct stat sb;
    tfs_lua_stamp now;
    if (stat(path, &sb) != 0)
        return true;
    stamp_of(&sb, &now);
    return !stamp_eq(&now, st);
}

static char *path_join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *p = tfs_malloc(la + lb + lc + 2);
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

bool tfs_lua_plain_name(const char *s, size_t len)
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

/* Reads a whole file into tfs_malloc'd memory (C side, outside Lua). */
static int read_file_malloc(const char *path, char **data, size_t *len, tfs_lua_stamp *st,
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
    buf = tfs_malloc((size_t)sb.st_size + 1);
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
    tfs_free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* No Lua call happens while the descriptor is open. */
int tfs_lua_read_file(lua_State *L, const char *path, const char **data, size_t *len,
                         tfs_lua_stamp *st)
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

/* ---- lookup tables ----------------------------------------------------------------- */

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
                tfs_lua_raise_oom(rt, L);
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

void tfs_lua_push_lookup(tfs_lua *rt, lua_State *L, const char *name, size_t nlen)
{
    tfs_lua_lookup *lk;
    for (lk = rt->lookups; lk; lk = lk->next) {
        if (strcmp(lk->name, name) == 0)
            break;
    }
    if (lk && lk->ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lk->ref);
        return;
    }
    if (!tfs_lua_plain_name(name, nlen))
        luaL_error(L, "tf.lookup: invalid table name \"%s\" (letters, digits, '_' and '-')",
                   name);
    int top = lua_gettop(L);
    const char *path = lua_pushfstring(L, "%s/lookups/%s.csv", rt->dir, name);
    const char *fname = lua_pushfstring(L, "lookups/%s.csv", name);
    const char *data;
    size_t len;
    tfs_lua_stamp st;
    int e = tfs_lua_read_file(L, path, &data, &len, &st);
    if (e != 0)
        luaL_error(L, "tf.lookup: could not read \"%s\": %s", fname, strerror(e));
    parse_lookup(rt, L, fname, data, len);
    lua_pushvalue(L, -1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lk) {
        lk = tfs_calloc(1, sizeof *lk);
        if (lk) {
            lk->name = tfs_strdup(name);
            lk->path = tfs_strdup(path);
        }
        if (!lk || !lk->name || !lk->path) {
            if (lk) {
                tfs_free(lk->name);
                tfs_free(lk->path);
                tfs_free(lk);
            }
            luaL_unref(L, LUA_REGISTRYINDEX, ref);
            tfs_lua_raise_oom(rt, L);
        }
        lk->next = rt->lookups;
        rt->lookups = lk;
    }
    lk->ref = ref;
    lk->st = st;
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

/* Drops the lookup tables whose CSV changed, so that the next use reads them again. */
static void check_lookups(tfs_lua *rt)
{
    for (tfs_lua_lookup *lk = rt->lookups; lk; lk = lk->next) {
        if (lk->ref != LUA_NOREF && file_changed(lk->path, &lk->st)) {
            luaL_unref(rt->L, LUA_REGISTRYINDEX, lk->ref);
            lk->ref = LUA_NOREF;
            tfs_logf(TFS_LOG_INFO, TFS_LUA_LOG, "lookup table \"%s\" changed, re-reading it",
                     lk->name);
        }
    }
}

/* ---- scripts ----------------------------------------------------------------------- */

static void free_deps(tfs_lua_dep *d)
{
    while (d) {
        tfs_lua_dep *next = d->next;
        tfs_free(d->path);
        tfs_free(d);
        d = next;
    }
}

static void script_clear_error(tfs_lua_script *s)
{
    tfs_free(s->load_msg);
    tfs_free(s->load_detail);
    s->load_msg = s->load_detail = NULL;
    s->load_code = 0;
}

int tfs_lua_script_add_dep(tfs_lua_script *s, const char *path, const tfs_lua_stamp *st,
                           uint64_t hash)
{
    tfs_lua_dep *d;
    for (d = s->deps; d; d = d->next)
        if (strcmp(d->path, path) == 0)
            break;
    if (!d) {
        d = tfs_calloc(1, sizeof *d);
        char *dpath = d ? tfs_strdup(path) : NULL;
        if (!dpath) {
            tfs_free(d);
            return TFS_ENOMEM;
        }
        d->path = dpath;
        d->next = s->deps;
        s->deps = d;
    }
    d->st = *st;
    d->hash = hash;
    return 0;
}

/* require(name): loads <name>.lua from the transform directory, as text, into an
 * environment of its own; the result is cached per script. Upvalue 1: the script (light
 * userdata), upvalue 2: its cache table, upvalue 3: the environment's tf. */
static int script_require(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_script *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    if (strcmp(name, "tf") == 0) {
        lua_pushvalue(L, lua_upvalueindex(3));
        return 1;
    }
    if (!tfs_lua_plain_name(name, nlen))
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
    tfs_lua_stamp st;
    int e = tfs_lua_read_file(L, path, &data, &len, &st); /* 3: the buffer */
    if (e != 0)
        return luaL_error(L, "module '%s' not found: could not read \"%s.lua\" in the "
                             "transform directory: %s",
                          name, name, strerror(e));
    /* Record the dependency first, so that fixing a broken module reloads the script
     * (once per path: a script may retry a broken module on every record). */
    if (tfs_lua_script_add_dep(s, path, &st, tfs_hash_bytes(TFS_HASH_SEED, data, len)) != 0)
        return tfs_lua_raise_oom(rt, L);

    const char *chunkname = lua_pushfstring(L, "@%s.lua", name); /* 4 */
    if (luaL_loadbufferx(L, data, len, chunkname, "t") != LUA_OK) /* 5 */
        return lua_error(L);
    tfs_lua_push_env(rt, L, s, script_require);
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

static int protected_load(lua_State *L)
{
    tfs_lua *rt = tfs_lua_rt(L);
    tfs_lua_script *s = rt->cur;
    lua_newtable(L);
    s->loaded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    tfs_lua_push_env(rt, L, s, script_require); /* 1 */
    lua_pushfstring(L, "@%s", s->name);
    if (luaL_loadbufferx(L, rt->load_buf, rt->load_len, lua_tostring(L, -1), "t") != LUA_OK)
        return lua_error(L);
    lua_remove(L, -2);
    lua_pushvalue(L, 1);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 0);
    rt->phase = TFS_LUA_CONVERT;
    if (lua_getfield(L, 1, "map") != LUA_TFUNCTION) {
        tfs_lua_conv_error(rt, TFS_EINVAL, "script does not define a global function map(rec)");
        snprintf(rt->conv_hint, sizeof rt->conv_hint,
                 "define `function map(rec) ... return { entity = {...} } end` in the script");
        return 0;
    }
    s->map_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* validate(rec, out) is optional; anything else by that name is a mistake. */
    int vt = lua_getfield(L, 1, "validate");
    if (vt != LUA_TFUNCTION && vt != LUA_TNIL) {
        tfs_lua_conv_error(rt, TFS_EINVAL, "validate is %s, not a function",
                           lua_typename(L, vt));
        snprintf(rt->conv_hint, sizeof rt->conv_hint,
                 "define `function validate(rec, out) return { \"problem\", ... } end`, or "
                 "leave validate undefined");
        return 0;
    }
    if (vt == LUA_TFUNCTION)
        s->validate_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    s->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void script_unref(tfs_lua *rt, tfs_lua_script *s)
{
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->env_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->map_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->validate_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->loaded_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, s->rec_ref);
    s->env_ref = s->map_ref = s->validate_ref = s->loaded_ref = s->rec_ref = LUA_NOREF;
    s->rec_entity = NULL;
}

/* (Re)loads a script from disk. On failure the error is kept in the script and returned
 * by every call until one of its files changes; except running out of memory, which is
 * not the script's fault: then nothing is kept, the error goes to err, and the next call
 * loads the script again. */
static int script_reload(tfs_lua *rt, tfs_lua_script *s, const char *text, size_t text_len,
                         tfs_error *err)
{
    char *data = NULL;
    size_t len = 0;
    tfs_lua_stamp st;
    tfs_error e;
    int rc = 0;
    tfs_error_clear(&e);
    script_unref(rt, s);
    script_clear_error(s);
    free_deps(s->deps);
    s->deps = NULL;
    if (text) { /* the caller's text: a copy, freed as a file's would be */
        if (!(data = tfs_malloc(text_len ? text_len : 1))) {
            rc = tfs_error_set(&e, TFS_ENOMEM, "could not load script \"%s\": out of memory",
                               s->name);
            goto failed;
        }
        memcpy(data, text, text_len);
        len = text_len;
    } else {
        rc = read_file_malloc(s->path, &data, &len, &st, &e, "script");
        if (rc != 0) {
            s->have_st = false;
            goto failed;
        }
        s->st = st;
        s->have_st = true;
    }
    s->text_hash = tfs_hash_bytes(TFS_HASH_SEED, data, len);

    rt->cur = s;
    rt->load_buf = data;
    rt->load_len = len;
    int status = tfs_lua_pcall(rt, protected_load);
    rt->load_buf = NULL;
    if (status != LUA_OK || rt->conv_code != 0) {
        rc = tfs_lua_call_failed(rt, s, status, NULL, &e);
        goto failed;
    }
    lua_settop(rt->L, 0);
    tfs_free(data);
    tfs_logf(TFS_LOG_INFO, TFS_LUA_LOG, "loaded script \"%s\"", s->name);
    return 0;
failed:
    tfs_free(data);
    script_unref(rt, s);
    tfs_logf(TFS_LOG_WARN, TFS_LUA_LOG, "could not load script \"%s\": %s", s->name,
             e.message);
    if (rc != TFS_ENOMEM) {
        s->load_code = rc;
        s->load_msg = tfs_strdup(e.message);
        s->load_detail = e.detail[0] ? tfs_strdup(e.detail) : NULL;
        if (s->load_msg && (s->load_detail || !e.detail[0]))
            return rc;
        script_clear_error(s); /* could not keep it: as if out of memory */
    }
    s->checked = 0;
    if (err)
        *err = e;
    return rc;
}

static bool script_changed(const tfs_lua_script *s)
{
    if (!s->have_st || file_changed(s->path, &s->st))
        return true;
    for (const tfs_lua_dep *d = s->deps; d; d = d->next)
        if (file_changed(d->path, &d->st))
            return true;
    return false;
}

/* The runtime's entry for a script name, made (not loaded) on first use. */
static int script_entry(tfs_lua *rt, const char *name, tfs_lua_script **out, tfs_error *err)
{
    tfs_lua_script *s;
    for (s = rt->scripts; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            break;
    if (!s) {
        if (!script_name_ok(name))
            return tfs_error_set(err, TFS_EINVAL, "could not load script \"%s\": not a "
                                                  "relative path inside the transform "
                                                  "directory",
                                 name);
        s = tfs_calloc(1, sizeof *s);
        if (!s || !(s->name = tfs_strdup(name)) ||
            !(s->path = path_join(rt->dir, name, NULL))) {
            if (s) {
                tfs_free(s->name);
                tfs_free(s);
            }
            return tfs_error_set(err, TFS_ENOMEM, "could not load script \"%s\": out of "
                                                  "memory",
                                 name);
        }
        s->env_ref = s->map_ref = s->validate_ref = s->loaded_ref = s->rec_ref = LUA_NOREF;
        s->next = rt->scripts;
        rt->scripts = s;
    }
    *out = s;
    return 0;
}

int tfs_lua_script_set_text(tfs_lua *rt, const char *name, const char *text, size_t len,
                            tfs_error *err)
{
    tfs_lua_script *s;
    int rc = script_entry(rt, name, &s, err);
    if (rc)
        return rc;
    s->pinned = true;
    s->checked = now_ns();
    rc = script_reload(rt, s, text, len, err);
    if (rc == TFS_ENOMEM && !s->load_msg)
        return rc;
    return 0; /* a load error is kept in the script: tfs_lua_script_get answers it */
}

int tfs_lua_script_get(tfs_lua *rt, const char *name, bool force, tfs_lua_script **out,
                       tfs_error *err)
{
    tfs_lua_script *s;
    *out = NULL;
    int rc0 = script_entry(rt, name, &s, err);
    if (rc0)
        return rc0;
    int64_t now = now_ns();
    if (force || s->checked == 0 || now - s->checked >= RECHECK_NS) {
        s->checked = now;
        check_lookups(rt);
        if (!s->pinned && (script_changed(s) || (s->map_ref == LUA_NOREF && !s->load_msg))) {
            int rc = script_reload(rt, s, NULL, 0, err);
            if (rc != 0 && !s->load_msg)
                return rc; /* not kept: the next call tries again */
        }
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

void tfs_lua_scripts_free(tfs_lua *rt)
{
    tfs_lua_script *s = rt->scripts;
    while (s) {
        tfs_lua_script *next = s->next;
        tfs_free(s->name);
        tfs_free(s->path);
        free_deps(s->deps);
        script_clear_error(s);
        tfs_free(s);
        s = next;
    }
    rt->scripts = NULL;
    tfs_lua_lookup *lk = rt->lookups;
    while (lk) {
        tfs_lua_lookup *next = lk->next;
        tfs_free(lk->name);
        tfs_free(lk->path);
        tfs_free(lk);
        lk = next;
    }
    rt->lookups = NULL;
}
