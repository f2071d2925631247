/* tests/unit/lua_transform_test.c — the sandboxed Lua transformer: what the sandbox refuses
 * (libraries, bytecode, require outside the transform directory), the instruction budget and
 * the memory cap, error messages with script, line and record key, nulls and JSON arrays
 * both ways, unknown targets and fields, reload on change, the tf helpers, and the shipped
 * pacs_to_cama.lua mapping on hand-made PACS records. Every test works in a fresh temporary
 * transform directory. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"

/* ---- fixtures ------------------------------------------------------------------------ */

static char root[PATH_MAX]; /* mkdtemp'd; the transform directory is root/t */
static char tdir[PATH_MAX];
static tfs_arena *arena;

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_tree(sub);
        }
        closedir(d);
    }
    remove(path);
}

static void setup(void)
{
    strcpy(root, "/tmp/tfs_lua_test_XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(tdir, sizeof tdir, "%s/t", root);
    cr_assert_eq(mkdir(tdir, 0700), 0);
    arena = tfs_arena_new();
    cr_assert_not_null(arena);
}

static void teardown(void)
{
    tfs_arena_free(arena);
    if (root[0])
        rm_tree(root);
}

TestSuite(lua, .init = setup, .fini = teardown, .timeout = 60);

static void write_at(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "could not write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void write_script(const char *name, const char *text)
{
    write_at(tdir, name, text);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    cr_assert_not_null(in, "could not read %s", from);
    FILE *out = fopen(to, "wb");
    cr_assert_not_null(out, "could not write %s", to);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    cr_assert_eq(fclose(out), 0);
}

/* The shipped mapping and its lookups, copied into the temporary transform directory. */
static void copy_shipped(void)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(to, sizeof to, "%s/lookups", tdir);
    cr_assert_eq(mkdir(to, 0700), 0);
    static const char *const files[] = {"pacs_to_cama.lua", "lookups/state_cd_class.csv",
                                        "lookups/street_suffix.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, "%s/transforms/%s", TFS_SOURCE_DIR, files[i]);
        snprintf(to, sizeof to, "%s/%s", tdir, files[i]);
        copy_file(from, to);
    }
}

static tfs_lua *new_rt(const tfs_lua_limits *limits)
{
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    int rc = tfs_lua_new(tdir, limits, 2026, &rt, &err);
    cr_assert_eq(rc, 0, "tfs_lua_new: %s", err.message);
    return rt;
}

/* ---- a small source and target entity ------------------------------------------------ */

static const tfs_sdk_field src_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 14, 2},
    {"flag", TFS_SDK_BOOL, 0, 0, 0, 0},
    {"ratio", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"tags", TFS_SDK_JSON, 0, 0, 0, 0},
    {"note", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"day", TFS_SDK_DATE, 0, 0, 0, 0},
};
static const tfs_sdk_entity src_entity = {"src", src_fields, 8};

static const tfs_sdk_field out_fields[] = {
    {"a", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"b", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"c", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"d", TFS_SDK_BOOL, 0, 0, 0, 0},
    {"j", TFS_SDK_JSON, 0, 0, 0, 0},
    {"n", TFS_SDK_TEXT, 0, 0, 0, 0},
};
static const tfs_sdk_entity out_entity = {"out", out_fields, 6};
static const tfs_sdk_entity *const out_targets[] = {&out_entity};

static void set_text(tfs_record *r, size_t f, tfs_sdk_type t, const char *s)
{
    cr_assert_eq(tfs_record_set_text(r, f, t, s, strlen(s)), 0);
}

/* id 7, name "Ann", amount "12.50", flag true, ratio 0.25, tags `tags`, note null, day
 * 2026-01-02. */
static tfs_record *src_rec(const char *tags)
{
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 7};
    set_text(r, 1, TFS_SDK_TEXT, "Ann");
    set_text(r, 2, TFS_SDK_DECIMAL, "12.50");
    r->values[3] = (tfs_value){.type = TFS_SDK_BOOL, .u.b = 1};
    r->values[4] = (tfs_value){.type = TFS_SDK_FLOAT64, .u.f = 0.25};
    if (tags)
        set_text(r, 5, TFS_SDK_JSON, tags);
    set_text(r, 7, TFS_SDK_DATE, "2026-01-02");
    return r;
}

/* Maps src with script into out_entity; returns the code, err filled. */
static int map_out(tfs_lua *rt, const char *script, const tfs_record *src, tfs_lua_output *out,
                   tfs_error *err)
{
    memset(err, 0, sizeof *err);
    return tfs_lua_map(rt, script, src, "7", out_targets, 1, arena, out, err);
}

/* Maps and expects exactly one record; returns it. */
static tfs_record *map_one(tfs_lua *rt, const char *script, const tfs_record *src)
{
    tfs_lua_output out;
    tfs_error err;
    int rc = map_out(rt, script, src, &out, &err);
    cr_assert_eq(rc, 0, "map failed: %s\n%s", err.message, err.detail);
    cr_assert_eq(out.n, 1, "expected one record, got %zu", out.n);
    cr_assert_eq(out.recs[0]->entity, &out_entity);
    return out.recs[0];
}

static const char *text_of(const tfs_record *r, size_t f)
{
    cr_assert(tfs_type_is_text(r->values[f].type), "field %s is %s, not text",
              r->entity->fields[f].name, tfs_type_name(r->values[f].type));
    return r->values[f].u.s;
}

static void expect_text(const tfs_record *r, const char *field, const char *want)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0, "no field %s", field);
    if (!want) {
        cr_expect_eq(r->values[f].type, TFS_SDK_NULL, "%s: expected null, got %s %s", field,
                     tfs_type_name(r->values[f].type),
                     tfs_type_is_text(r->values[f].type) ? r->values[f].u.s : "");
        return;
    }
    cr_assert(tfs_type_is_text(r->values[f].type), "%s: expected \"%s\", got a %s", field,
              want, tfs_type_name(r->values[f].type));
    cr_expect_str_eq(r->values[f].u.s, want, "%s", field);
}

static void expect_int(const tfs_record *r, const char *field, int64_t want)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0, "no field %s", field);
    cr_assert_eq(r->values[f].type, TFS_SDK_INT64, "%s: expected an integer, got %s", field,
                 tfs_type_name(r->values[f].type));
    cr_expect_eq(r->values[f].u.i, want, "%s: expected %lld, got %lld", field, (long long)want,
                 (long long)r->values[f].u.i);
}

static void expect_null(const tfs_record *r, const char *field)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0, "no field %s", field);
    cr_expect_eq(r->values[f].type, TFS_SDK_NULL, "%s: expected null, got %s", field,
                 tfs_type_name(r->values[f].type));
}

/* ---- the sandbox --------------------------------------------------------------------- */

Test(lua, sandbox_has_no_dangerous_libraries)
{
    write_script("s.lua",
                 "function map(rec)\n"
                 "  local t = { type(io), type(os), type(debug), type(package), type(dofile),\n"
                 "    type(loadfile), type(string.dump), type(('').dump), type(math.random),\n"
                 "    type(coroutine), tostring(getmetatable('')) }\n"
                 "  local ok1 = pcall(function() return os.execute('true') end)\n"
                 "  local ok2 = pcall(function() return package.loadlib('x', 'y') end)\n"
                 "  local ok3 = pcall(collectgarbage, 'stop')\n"
                 "  local ok4 = pcall(setmetatable, {}, { __gc = function() end })\n"
                 "  return { out = { a = 1, b = table.concat(t, ','),\n"
                 "    n = tostring(ok1) .. tostring(ok2) .. tostring(ok3) .. tostring(ok4) } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *r = map_one(rt, "s.lua", src_rec("[]"));
    expect_text(r, "b", "nil,nil,nil,nil,nil,nil,nil,nil,nil,nil,false");
    expect_text(r, "n", "falsefalsefalsefalse");
    tfs_lua_free(rt);
}

Test(lua, load_refuses_binary_chunks)
{
    write_script("s.lua",
                 "function map(rec)\n"
                 "  local f, e = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n\\4\\8\\8xV', 'bin', 'b')\n"
                 "  local g = load('return x + 1', 'txt', 't', { x = 41 })\n"
                 "  local h = load('return tf.roll_year')\n"
                 "  return { out = { a = g() , b = tostring(f) .. ': ' .. tostring(e),\n"
                 "                   c = h() } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *r = map_one(rt, "s.lua", src_rec("[]"));
    expect_int(r, "a", 42);
    cr_expect(strstr(text_of(r, 1), "nil: ") == text_of(r, 1), "load returned a function: %s",
              text_of(r, 1));
    cr_expect(strstr(text_of(r, 1), "binary chunk"), "unexpected message: %s", text_of(r, 1));
    /* load's default environment is the script's own (tf visible), roll year from config */
    expect_int(r, "c", 2026);
    tfs_lua_free(rt);
}

Test(lua, require_only_inside_transform_dir)
{
    write_at(root, "outside.lua", "return { secret = 'leaked' }\n");
    write_script("helper.lua", "local M = {}\nfunction M.twice(x) return 2 * x end\nreturn M\n");
    write_script("s.lua",
                 "local helper = require('helper')\n"
                 "function map(rec)\n"
                 "  local ok1, e1 = pcall(require, '../outside')\n"
                 "  local ok2, e2 = pcall(require, '/etc/passwd')\n"
                 "  local ok3, e3 = pcall(require, 'outside')\n"
                 "  local ok4, e4 = pcall(require, 'os')\n"
                 "  return { out = { a = helper.twice(21),\n"
                 "    b = tostring(ok1) .. tostring(ok2) .. tostring(ok3) .. tostring(ok4),\n"
                 "    n = e1 .. '|' .. e3, d = require('tf') == tf } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *r = map_one(rt, "s.lua", src_rec("[]"));
    expect_int(r, "a", 42);
    expect_text(r, "b", "falsefalsefalsefalse");
    cr_expect(strstr(text_of(r, 5), "not allowed"), "%s", text_of(r, 5));
    cr_expect(strstr(text_of(r, 5), "not found"), "%s", text_of(r, 5));
    cr_expect_eq(r->values[3].type, TFS_SDK_BOOL);
    cr_expect(r->values[3].u.b);
    tfs_lua_free(rt);
}

Test(lua, scripts_have_separate_globals)
{
    write_script("one.lua", "counter = 1\nstring.shout = function(s) return s .. '!' end\n"
                            "function map(rec) counter = counter + 1\n"
                            "  return { out = { a = counter, b = ('hi'):upper() } } end\n");
    write_script("two.lua", "function map(rec)\n"
                            "  return { out = { a = 0, b = tostring(counter) .. ',' ..\n"
                            "    tostring(string.shout) } } end\n");
    tfs_lua *rt = new_rt(NULL);
    expect_int(map_one(rt, "one.lua", src_rec("[]")), "a", 2);
    expect_int(map_one(rt, "one.lua", src_rec("[]")), "a", 3);
    expect_text(map_one(rt, "two.lua", src_rec("[]")), "b", "nil,nil");
    tfs_lua_free(rt);
}

/* ---- limits -------------------------------------------------------------------------- */

Test(lua, endless_loop_stopped_by_budget)
{
    write_script("loop.lua", "function map(rec)\n  while true do end\nend\n");
    write_script("sneaky.lua", "function map(rec)\n"
                               "  while true do pcall(function() while true do end end) end\n"
                               "end\n");
    write_script("ok.lua", "function map(rec) return { out = { a = rec.id } } end\n");
    tfs_lua_limits lim = {.instructions = 1000000};
    tfs_lua *rt = new_rt(&lim);
    tfs_lua_output out;
    tfs_error err;
    int rc = map_out(rt, "loop.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "loop.lua:2:"), "%s", err.message);
    cr_expect(strstr(err.message, "instruction budget"), "%s", err.message);
    cr_expect(strstr(err.message, "(record 7)"), "%s", err.message);
    cr_expect_eq(out.n, 0);
    rc = map_out(rt, "sneaky.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "a pcall swallowed the budget error: rc %d %s", rc,
                 err.message);
    /* the state is still usable */
    expect_int(map_one(rt, "ok.lua", src_rec("[]")), "a", 7);
    tfs_lua_free(rt);
}

Test(lua, huge_string_stopped_by_memory_cap)
{
    write_script("rep.lua", "function map(rec)\n"
                            "  local s = string.rep('x', 2^30)\n"
                            "  return { out = { a = #s } }\nend\n");
    /* 2^31 is past Lua's own limit for one string (INT_MAX): refused before allocating */
    write_script("rep31.lua", "function map(rec)\n"
                              "  local s = string.rep('x', 2^31)\n"
                              "  return { out = { a = #s } }\nend\n");
    write_script("concat.lua", "function map(rec)\n"
                               "  local s = ('x'):rep(2^20)\n"
                               "  local t = {}\n"
                               "  for i = 1, 64 do t[i] = s .. i end\n"
                               "  return { out = { a = #table.concat(t) } }\nend\n");
    write_script("grow.lua", "local keep = {}\nfunction map(rec)\n"
                             "  for i = 1, 1e9 do keep[i] = i end\nend\n");
    write_script("ok.lua", "function map(rec) return { out = { a = rec.id } } end\n");
    tfs_lua_limits lim = {.memory_bytes = 8u << 20, .instructions = 1000000000};
    tfs_lua *rt = new_rt(&lim);
    tfs_lua_output out;
    tfs_error err;
    int rc = map_out(rt, "rep.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "not enough memory"), "%s", err.message);
    cr_expect(strstr(err.message, "rep.lua:2:"), "%s", err.message);
    rc = map_out(rt, "rep31.lua", src_rec("[]"), &out, &err);
    cr_assert_neq(rc, 0);
    cr_expect(strstr(err.message, "rep31.lua:2:") &&
                  (strstr(err.message, "too large") || strstr(err.message, "not enough memory")),
              "%s", err.message);
    rc = map_out(rt, "concat.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "not enough memory"), "%s", err.message);
    rc = map_out(rt, "grow.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "not enough memory"), "%s", err.message);
    expect_int(map_one(rt, "ok.lua", src_rec("[]")), "a", 7);
    tfs_lua_free(rt);
}

Test(lua, output_string_longer_than_limit_refused)
{
    write_script("s.lua", "function map(rec) return { out = { a = 1, b = ('x'):rep(200) } }\n"
                          "end\n");
    tfs_lua_limits lim = {.max_string = 100};
    tfs_lua *rt = new_rt(&lim);
    tfs_lua_output out;
    tfs_error err;
    int rc = map_out(rt, "s.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_ELIMIT, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "\"b\""), "%s", err.message);
    tfs_lua_free(rt);
}

/* ---- errors -------------------------------------------------------------------------- */

Test(lua, error_names_script_line_and_record)
{
    write_script("err.lua", "function map(rec)\n"
                            "  local x = nil\n"
                            "  return { out = { a = x.y } }\n"
                            "end\n");
    write_script("bad_date.lua", "function map(rec)\n"
                                 "  return { out = { b = tf.date('2026-02-30') } }\n"
                                 "end\n");
    write_script("raise.lua", "function map(rec)\n\n  error({})\nend\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_lua_output out;
    tfs_error err;
    int rc = map_out(rt, "err.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_expect(strncmp(err.message, "err.lua:3: ", 11) == 0, "%s", err.message);
    cr_expect(strstr(err.message, "attempt to index a nil value"), "%s", err.message);
    cr_expect(strstr(err.message, " (record 7)"), "%s", err.message);
    cr_expect(strstr(err.detail, "stack traceback"), "detail: %s", err.detail);
    rc = map_out(rt, "bad_date.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_expect(strncmp(err.message, "bad_date.lua:2: ", 16) == 0, "%s", err.message);
    cr_expect(strstr(err.message, "2026-02-30"), "%s", err.message);
    rc = map_out(rt, "raise.lua", src_rec("[]"), &out, &err);
    cr_assert_eq(rc, TFS_EINVAL);
    cr_expect(strncmp(err.message, "raise.lua:3: ", 13) == 0, "%s", err.message);
    tfs_lua_free(rt);
}

Test(lua, broken_or_incomplete_scripts_refused_at_load)
{
    write_script("syntax.lua", "function map(rec)\n  return {\nend\n");
    write_script("nomap.lua", "local x = 1\n");
    write_script("toplevel.lua", "local t = nil\nlocal y = t.x\nfunction map(r) end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_load(rt, "syntax.lua", &err), TFS_EINVAL);
    cr_expect(strncmp(err.message, "syntax.lua:3:", 13) == 0, "%s", err.message);
    cr_assert_eq(tfs_lua_load(rt, "nomap.lua", &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "nomap.lua") && strstr(err.message, "map"), "%s",
              err.message);
    cr_assert_eq(tfs_lua_load(rt, "toplevel.lua", &err), TFS_EINVAL);
    cr_expect(strncmp(err.message, "toplevel.lua:2:", 15) == 0, "%s", err.message);
    cr_assert_neq(tfs_lua_load(rt, "missing.lua", &err), 0);
    cr_assert_eq(tfs_lua_load(rt, "../outside.lua", &err), TFS_EINVAL);
    /* a map call on a broken script fails with the load error and the record key */
    tfs_lua_output out;
    cr_assert_eq(map_out(rt, "syntax.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "syntax.lua:3:") && strstr(err.message, "(record 7)"), "%s",
              err.message);
    tfs_lua_free(rt);
}

Test(lua, unknown_target_entity_or_field_refused)
{
    write_script("field.lua", "function map(rec) return { out = { a = 1, colour = 'red' } }\n"
                              "end\n");
    write_script("entity.lua", "function map(rec) return { out = { a = 1 }, parcels = {} }\n"
                               "end\n");
    write_script("notable.lua", "function map(rec) return 'out' end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_lua_output out;
    tfs_error err;
    cr_assert_eq(map_out(rt, "field.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "\"colour\"") && strstr(err.message, "field.lua"), "%s",
              err.message);
    cr_expect(strstr(err.hint, "a, b, c"), "hint: %s", err.hint);
    cr_assert_eq(map_out(rt, "entity.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "\"parcels\"") && strstr(err.message, "entity.lua"), "%s",
              err.message);
    cr_assert_eq(map_out(rt, "notable.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect_eq(out.n, 0);
    tfs_lua_free(rt);
}

/* ---- values -------------------------------------------------------------------------- */

Test(lua, nulls_and_empty_arrays_round_trip)
{
    write_script("s.lua",
                 "function map(rec)\n"
                 "  assert(rec.note ~= nil, 'a null field must be present')\n"
                 "  assert(rec.note == tf.null and tf.isnull(rec.note))\n"
                 "  return { out = { a = rec.id, b = rec.note, n = tostring(rec.note),\n"
                 "                   j = rec.tags, c = tf.null, d = tf.isarray(rec.tags) } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *r = map_one(rt, "s.lua", src_rec("[]"));
    expect_int(r, "a", 7);
    expect_null(r, "b");
    expect_null(r, "c");
    expect_text(r, "n", "null");
    expect_text(r, "j", "[]");
    cr_expect_eq(r->values[4].type, TFS_SDK_JSON);
    cr_assert_eq(r->values[3].type, TFS_SDK_BOOL);
    cr_expect(r->values[3].u.b, "a JSON [] must arrive marked as an array");
    /* nested: empty arrays, objects and nulls keep their JSON form */
    r = map_one(rt, "s.lua", src_rec("{\"x\":[],\"y\":null,\"z\":{},\"w\":[1,\"two\",[]]}"));
    expect_text(r, "j", "{\"w\":[1,\"two\",[]],\"x\":[],\"y\":null,\"z\":{}}");
    cr_assert_eq(r->values[3].type, TFS_SDK_BOOL);
    cr_expect(!r->values[3].u.b, "a JSON object must not arrive marked as an array");
    tfs_lua_free(rt);
}

Test(lua, values_typed_both_ways)
{
    write_script("s.lua",
                 "function map(rec)\n"
                 "  return { out = {\n"
                 "    a = math.type(rec.amount) == 'float' and 1 or 0,\n"
                 "    c = rec.amount + rec.ratio, d = rec.flag,\n"
                 "    b = rec.name .. ' ' .. rec.day,\n"
                 "    j = { list = { 3, 2, 1 }, empty = tf.array(), obj = {}, n = tf.null },\n"
                 "    n = math.type(rec.id) } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *r = map_one(rt, "s.lua", src_rec("[\"HS\"]"));
    expect_int(r, "a", 1);
    cr_assert_eq(r->values[2].type, TFS_SDK_FLOAT64);
    cr_expect_float_eq(r->values[2].u.f, 12.75, 1e-12);
    cr_assert_eq(r->values[3].type, TFS_SDK_BOOL);
    cr_expect(r->values[3].u.b);
    expect_text(r, "b", "Ann 2026-01-02");
    expect_text(r, "j", "{\"empty\":[],\"list\":[3,2,1],\"n\":null,\"obj\":{}}");
    expect_text(r, "n", "integer");
    /* a decimal without a fractional part arrives as an integer */
    tfs_record *s = src_rec("[]");
    set_text(s, 2, TFS_SDK_DECIMAL, "100.00");
    write_script("i.lua", "function map(rec) return { out = { a = rec.amount,\n"
                          "  n = math.type(rec.amount) } } end\n");
    r = map_one(rt, "i.lua", s);
    expect_int(r, "a", 100);
    expect_text(r, "n", "integer");
    tfs_lua_free(rt);
}

Test(lua, unstorable_values_refused)
{
    write_script("fn.lua", "function map(rec) return { out = { a = 1, b = print } } end\n");
    write_script("nan.lua", "function map(rec) return { out = { j = { x = 0/0 } } } end\n");
    write_script("cycle.lua", "function map(rec) local t = {} t.self = t\n"
                              "  return { out = { j = t } } end\n");
    write_script("ok.lua", "function map(rec) return { out = { a = 1 } } end\n");
    write_script("null.lua", "function map(rec) tf.null.x = 1 end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_lua_output out;
    tfs_error err;
    cr_assert_eq(map_out(rt, "fn.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "fn.lua: ") && strstr(err.message, "\"b\"") &&
                  strstr(err.message, "function"),
              "%s", err.message);
    cr_assert_eq(map_out(rt, "nan.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "\"j\"") && strstr(err.message, "NaN"), "%s", err.message);
    cr_assert_eq(map_out(rt, "cycle.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "\"j\"") && strstr(err.message, "deeper"), "%s",
              err.message);
    cr_assert_eq(map_out(rt, "null.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "null.lua:1:") && strstr(err.message, "tf.null"), "%s",
              err.message);
    /* a source field holding broken JSON fails the record, naming the field */
    cr_assert_eq(map_out(rt, "ok.lua", src_rec("[1,"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "\"tags\"") && strstr(err.message, "(record 7)"), "%s",
              err.message);
    cr_assert_eq(map_out(rt, "ok.lua", src_rec("[1]"), &out, &err), 0, "%s", err.message);
    tfs_lua_free(rt);
}

Test(lua, lists_and_empty_results)
{
    write_script("s.lua", "function map(rec)\n"
                          "  if rec.id == 1 then return nil end\n"
                          "  if rec.id == 2 then return { out = {} } end\n"
                          "  return { out = { { a = 1 }, { a = 2 }, { a = 3 } } }\n"
                          "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_lua_output out;
    tfs_error err;
    tfs_record *s = src_rec("[]");
    for (int64_t id = 1; id <= 3; id++) {
        s->values[0].u.i = id;
        cr_assert_eq(map_out(rt, "s.lua", s, &out, &err), 0, "%s", err.message);
        cr_assert_eq(out.n, id == 3 ? 3u : 0u);
    }
    for (size_t i = 0; i < 3; i++)
        expect_int(out.recs[i], "a", (int64_t)i + 1);
    tfs_lua_free(rt);
}

Test(lua, source_table_reused_safely)
{
    /* a script that adds a key to rec must not see it in the next record */
    write_script("s.lua", "function map(rec)\n"
                          "  local seen = rec.extra\n"
                          "  rec.extra = 'x'\n"
                          "  return { out = { a = rec.id, b = tostring(seen) } }\n"
                          "end\n");
    tfs_lua *rt = new_rt(NULL);
    expect_text(map_one(rt, "s.lua", src_rec("[]")), "b", "nil");
    expect_text(map_one(rt, "s.lua", src_rec("[]")), "b", "nil");
    tfs_lua_free(rt);
}

Test(lua, reused_source_table_holds_only_the_current_record)
{
    /* Records that set different fields, one after another through the one table: a field
     * null in this record is tf.null, never the last record's value, also when the script
     * wrote over a field of the table; nor does a field the script set to nil linger. */
    write_script("s.lua", "function map(rec)\n"
                          "  local note, name = rec.note, rec.name\n"
                          "  rec.name = 'written by the script'\n"
                          "  rec.day = nil\n"
                          "  return { out = { a = rec.id, b = tf.isnull(note) and 'null' or note,\n"
                          "                   n = tf.isnull(name) and 'null' or name } }\n"
                          "end\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_record *first = src_rec("[]");
    set_text(first, 6, TFS_SDK_TEXT, "first note");
    tfs_record *r = map_one(rt, "s.lua", first);
    expect_text(r, "b", "first note");
    expect_text(r, "n", "Ann");
    tfs_record *second = src_rec("[]");
    second->values[0].u.i = 8;
    second->values[1] = (tfs_value){.type = TFS_SDK_NULL};
    r = map_one(rt, "s.lua", second);
    expect_int(r, "a", 8);
    expect_text(r, "b", "null");
    expect_text(r, "n", "null");
    tfs_record *third = src_rec("[]");
    set_text(third, 1, TFS_SDK_TEXT, "Bea");
    r = map_one(rt, "s.lua", third);
    expect_text(r, "b", "null");
    expect_text(r, "n", "Bea");
    tfs_lua_free(rt);
}

/* ---- reload -------------------------------------------------------------------------- */

Test(lua, reload_when_script_changes)
{
    write_script("r.lua", "function map(rec) return { out = { a = 1 } } end\n");
    tfs_lua *rt = new_rt(NULL);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 1);
    /* tfs_lua_load checks at once */
    write_script("r.lua", "function map(rec) return { out = { a = 22 } } end\n");
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), 0, "%s", err.message);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 22);
    /* tfs_lua_map checks at most once a second */
    write_script("r.lua", "function map(rec) return { out = { a = 333 } } end\n");
    usleep(1100 * 1000);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 333);
    /* a broken version fails loudly, and fixing it is picked up again */
    write_script("r.lua", "function map(rec) return { out = { a = 4 } \n");
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), TFS_EINVAL);
    cr_expect(strncmp(err.message, "r.lua:", 6) == 0, "%s", err.message);
    write_script("r.lua", "function map(rec) return { out = { a = 5 } } end\n");
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), 0, "%s", err.message);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 5);
    tfs_lua_free(rt);
}

Test(lua, reload_when_required_module_changes)
{
    write_script("m.lua", "return { v = 1 }\n");
    write_script("r.lua", "local m = require('m')\n"
                          "function map(rec) return { out = { a = m.v } } end\n");
    tfs_lua *rt = new_rt(NULL);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 1);
    write_script("m.lua", "return { v = 12 }\n");
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), 0, "%s", err.message);
    expect_int(map_one(rt, "r.lua", src_rec("[]")), "a", 12);
    tfs_lua_free(rt);
}

/* ---- validate(rec, out), versions, lookups for rules ---------------------------------- */

Test(lua, validate_returns_the_problems_with_the_output)
{
    write_script("v.lua", "function map(rec) return { out = { a = rec.id, b = rec.name } } end\n"
                          "function validate(rec, out)\n"
                          "  local p = {}\n"
                          "  if out.out.b ~= 'Bob' then\n"
                          "    p[#p + 1] = 'out.b: ' .. out.out.b .. ' is not Bob'\n"
                          "  end\n"
                          "  if rec.id ~= 8 then p[#p + 1] = 'src.id: ' .. rec.id .. ' is not 8' end\n"
                          "  return p\n"
                          "end\n");
    write_script("ok.lua", "function map(rec) return { out = { a = 1 } } end\n"
                           "function validate(rec, out) return nil end\n");
    write_script("one.lua", "function map(rec) return { out = { a = 1 } } end\n"
                            "function validate(rec, out) return 'just one' end\n");
    write_script("raise.lua", "function map(rec) return { out = { a = 1 } } end\n"
                              "function validate(rec, out)\n  error('cannot tell')\nend\n");
    write_script("badret.lua", "function map(rec) return { out = { a = 1 } } end\n"
                               "function validate(rec, out) return { 'x', {} } end\n");
    write_script("loop.lua", "function map(rec) return { out = { a = 1 } } end\n"
                             "function validate(rec, out) while true do end end\n");
    write_script("notfn.lua", "function map(rec) return {} end\nvalidate = 3\n");
    tfs_lua_limits lim = {.instructions = 100000};
    tfs_lua *rt = new_rt(&lim);
    tfs_lua_output out;
    tfs_error err;
    cr_assert_eq(map_out(rt, "v.lua", src_rec("[]"), &out, &err), 0, "%s", err.message);
    cr_assert_eq(out.n, 1, "the output comes back with the problems");
    cr_assert_eq(out.n_problems, 2);
    cr_expect_str_eq(out.problems[0], "out.b: Ann is not Bob");
    cr_expect_str_eq(out.problems[1], "src.id: 7 is not 8");
    cr_assert_eq(map_out(rt, "ok.lua", src_rec("[]"), &out, &err), 0, "%s", err.message);
    cr_expect_eq(out.n_problems, 0);
    cr_assert_eq(map_out(rt, "one.lua", src_rec("[]"), &out, &err), 0, "%s", err.message);
    cr_assert_eq(out.n_problems, 1);
    cr_expect_str_eq(out.problems[0], "just one");
    /* An error in validate() is the script's, with its line and the record's key. */
    cr_assert_eq(map_out(rt, "raise.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strncmp(err.message, "raise.lua:3: cannot tell", 24) == 0 &&
                  strstr(err.message, "(record 7)"),
              "%s", err.message);
    cr_expect_eq(out.n, 0, "no output of a refused record");
    cr_assert_eq(map_out(rt, "badret.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "validate() returned table as problem 2"), "%s",
              err.message);
    /* The instruction budget holds in validate() too. */
    cr_assert_eq(map_out(rt, "loop.lua", src_rec("[]"), &out, &err), TFS_ELIMIT);
    cr_expect(strstr(err.message, "instruction budget"), "%s", err.message);
    cr_assert_eq(tfs_lua_load(rt, "notfn.lua", &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "validate is number, not a function"), "%s", err.message);
    tfs_lua_free(rt);
}

Test(lua, script_version_follows_the_script_and_its_modules)
{
    write_script("m.lua", "return { v = 1 }\n");
    write_script("r.lua", "local m = require('m')\n"
                          "function map(rec) return { out = { a = m.v } } end\n");
    tfs_lua *rt = new_rt(NULL);
    char v1[13], v2[13], v3[13], again[13];
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_script_version(rt, "r.lua", v1, &err), 0, "%s", err.message);
    cr_assert_eq(strlen(v1), 12);
    cr_assert_eq(tfs_lua_script_version(rt, "r.lua", again, &err), 0);
    cr_assert_str_eq(v1, again, "the same files, the same version");
    write_script("m.lua", "return { v = 2 }\n");
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), 0, "%s", err.message);
    cr_assert_eq(tfs_lua_script_version(rt, "r.lua", v2, &err), 0);
    cr_assert_str_neq(v1, v2, "a module's edit is a new version");
    write_script("r.lua", "local m = require('m')\n"
                          "function map(rec) return { out = { a = m.v + 1 } } end\n");
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), 0, "%s", err.message);
    cr_assert_eq(tfs_lua_script_version(rt, "r.lua", v3, &err), 0);
    cr_assert_str_neq(v2, v3, "a script's edit is a new version");
    write_script("r.lua", "function map(rec) return {\n");
    cr_assert_eq(tfs_lua_load(rt, "r.lua", &err), TFS_EINVAL);
    cr_assert_eq(tfs_lua_script_version(rt, "r.lua", v3, &err), TFS_EINVAL,
                 "a script that does not load has no version");
    tfs_lua_free(rt);
}

Test(lua, lookup_has_reads_the_tables_tf_lookup_reads)
{
    char lk[PATH_MAX];
    snprintf(lk, sizeof lk, "%s/lookups", tdir);
    cr_assert_eq(mkdir(lk, 0700), 0);
    write_at(lk, "codes.csv", "code,value\nHS,homestead\n\"EX\",exempt\n");
    write_at(lk, "dup.csv", "code,value\nA,1\nA,2\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_lookup_has(rt, "codes", "HS", 2, &err), 1, "%s", err.message);
    cr_assert_eq(tfs_lua_lookup_has(rt, "codes", "EX", 2, &err), 1);
    cr_assert_eq(tfs_lua_lookup_has(rt, "codes", "EXX", 2, &err), 1, "len bytes only");
    cr_assert_eq(tfs_lua_lookup_has(rt, "codes", "hs", 2, &err), 0, "codes match exactly");
    cr_assert_eq(tfs_lua_lookup_has(rt, "codes", "value", 5, &err), 0, "not the header");
    cr_assert_eq(tfs_lua_lookup_has(rt, "dup", "A", 1, &err), TFS_EIO);
    cr_expect(strstr(err.message, "lookups/dup.csv:3: duplicate code \"A\""), "%s",
              err.message);
    cr_assert_eq(tfs_lua_lookup_has(rt, "missing", "A", 1, &err), TFS_EIO);
    cr_expect(strstr(err.message, "lookups/missing.csv"), "%s", err.message);
    tfs_lua_free(rt);
}

/* ---- tf helpers ---------------------------------------------------------------------- */

Test(lua, tf_helpers)
{
    char lk[PATH_MAX];
    snprintf(lk, sizeof lk, "%s/lookups", tdir);
    cr_assert_eq(mkdir(lk, 0700), 0);
    write_at(lk, "colour.csv", "\xEF\xBB\xBF" "code,value\n# a comment\n  \nR,red\r\n\"G\",\"gr\"\"een\"\n"
                               "7, seven \n");
    char from[PATH_MAX];
    snprintf(from, sizeof from, "%s/transforms/lookups/street_suffix.csv", TFS_SOURCE_DIR);
    snprintf(lk, sizeof lk, "%s/lookups/street_suffix.csv", tdir);
    copy_file(from, lk);
    write_script("s.lua",
                 "local function check(got, want, what)\n"
                 "  if got ~= want then\n"
                 "    error(what .. ': got ' .. tostring(got) .. ', want ' .. tostring(want))\n"
                 "  end\n"
                 "end\n"
                 "function map(rec)\n"
                 "  check(tf.trim('  a b \\t'), 'a b', 'trim')\n"
                 "  check(tf.trim(tf.null), tf.null, 'trim null')\n"
                 "  check(tf.upper('MixEd 1é'), 'MIXED 1é', 'upper')\n"
                 "  check(tf.str(tf.null), '', 'str null')\n"
                 "  check(tf.str(nil), '', 'str nil')\n"
                 "  check(tf.str(12), '12', 'str int')\n"
                 "  check(tf.coalesce(tf.null, nil, 'x', 'y'), 'x', 'coalesce')\n"
                 "  check(tf.coalesce(tf.null), nil, 'coalesce all null')\n"
                 "  check(tf.num(tf.null), 0, 'num null')\n"
                 "  check(tf.num(' 12.5 '), 12.5, 'num string')\n"
                 "  check(tf.sqft_to_acres(87120), 2.0, 'sqft_to_acres')\n"
                 "  check(tf.acres_to_sqft(2), 87120, 'acres_to_sqft')\n"
                 "  check(tf.acres_to_sqft(tf.null), nil, 'acres_to_sqft null')\n"
                 "  check(tf.date('2026-1-5'), '2026-01-05', 'date iso')\n"
                 "  check(tf.date('12/31/2025'), '2025-12-31', 'date us')\n"
                 "  check(tf.date('2024-02-29 10:00:00'), '2024-02-29', 'date timestamp')\n"
                 "  check(tf.date(tf.null), nil, 'date null')\n"
                 "  check(pcall(tf.date, '2025-02-29'), false, 'date not leap')\n"
                 "  check(pcall(tf.date, '31/12/2025'), false, 'date day first')\n"
                 "  check(tf.lookup('colour', 'R'), 'red', 'lookup')\n"
                 "  check(tf.lookup('colour', 'G'), 'gr\"een', 'lookup quoted')\n"
                 "  check(tf.lookup('colour', 7), 'seven', 'lookup number')\n"
                 "  check(tf.lookup('colour', 'X'), nil, 'lookup missing')\n"
                 "  check(tf.lookup('colour', 'X', 'dflt'), 'dflt', 'lookup default')\n"
                 "  check(tf.lookup('colour', tf.null, 'dflt'), 'dflt', 'lookup null')\n"
                 "  check(pcall(tf.lookup, '../colour', 'R'), false, 'lookup outside')\n"
                 "  check(pcall(tf.lookup, 'nosuch', 'R'), false, 'lookup no table')\n"
                 "  for _, s in ipairs({ 'STREET', 'Street', 'st.', ' St ', 'Str' }) do\n"
                 "    check(tf.address_suffix(s), 'ST', 'suffix ' .. s)\n"
                 "  end\n"
                 "  local want = { AVENUE = 'AVE', ROAD = 'RD', DRIVE = 'DR', LANE = 'LN',\n"
                 "    BOULEVARD = 'BLVD', COURT = 'CT', CIRCLE = 'CIR', PLACE = 'PL',\n"
                 "    PARKWAY = 'PKWY', HIGHWAY = 'HWY', TRAIL = 'TRL', WAY = 'WAY',\n"
                 "    ['Ave.'] = 'AVE', ['blvd'] = 'BLVD', ['Nowhere'] = 'NOWHERE' }\n"
                 "  for k, v in pairs(want) do check(tf.address_suffix(k), v, k) end\n"
                 "  check(tf.address_suffix(tf.null), tf.null, 'suffix null')\n"
                 "  check(tf.contains(tf.array({ 'HS', 'EX' }), 'EX'), true, 'contains')\n"
                 "  check(tf.contains(tf.null, 'EX'), false, 'contains null')\n"
                 "  check(tf.roll_year, 2026, 'roll_year')\n"
                 "  return { out = { a = 1 } }\n"
                 "end\n");
    tfs_lua *rt = new_rt(NULL);
    expect_int(map_one(rt, "s.lua", src_rec("[]")), "a", 1);
    /* a malformed lookup table is reported with its line */
    write_at(tdir, "lookups/dup.csv", "code,value\nA,1\nA,2\n");
    write_script("d.lua", "function map(rec) return { out = { b = tf.lookup('dup', 'A') } }\n"
                          "end\n");
    tfs_lua_output out;
    tfs_error err;
    cr_assert_eq(map_out(rt, "d.lua", src_rec("[]"), &out, &err), TFS_EINVAL);
    cr_expect(strstr(err.message, "lookups/dup.csv:3: duplicate code"), "%s", err.message);
    tfs_lua_free(rt);
}

/* An integer whose square feet do not fit in 64 bits is refused with a message, not
 * multiplied into signed overflow (undefined behaviour, which UBSan stops at). */
Test(lua, acres_to_sqft_overflow_refused)
{
    write_script("s.lua", "function map(rec)\n"
                          "  return { out = { a = tf.acres_to_sqft(rec.id) } }\n"
                          "end\n");
    tfs_lua *rt = new_rt(NULL);
    static const struct {
        int64_t acres;
        bool fits;
    } cases[] = {
        {211739486612827, true},   /* INT64_MAX / 43560 */
        {-211739486612827, true},  /* INT64_MIN / 43560, truncated */
        {211739486612828, false},  /* one more acre: past INT64_MAX */
        {-211739486612828, false}, /* one less: past INT64_MIN */
        {INT64_MAX, false},
        {INT64_MIN, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tfs_record *src = src_rec("[]");
        src->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = cases[i].acres};
        tfs_lua_output out;
        tfs_error err;
        int rc = map_out(rt, "s.lua", src, &out, &err);
        if (cases[i].fits) {
            cr_assert_eq(rc, 0, "%lld acres: %s", (long long)cases[i].acres, err.message);
            expect_int(out.recs[0], "a", cases[i].acres * 43560);
        } else {
            cr_assert_eq(rc, TFS_EINVAL, "%lld acres: rc %d", (long long)cases[i].acres, rc);
            cr_expect(strstr(err.message, "s.lua:2: tf.acres_to_sqft: ") &&
                          strstr(err.message, "acres is out of range"),
                      "%s", err.message);
        }
    }
    tfs_lua_free(rt);
}

/* ---- the shipped PACS -> CAMA mapping ------------------------------------------------ */

static const tfs_sdk_field property_fields[] = {
    {"prop_id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"prop_val_yr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"sup_num", TFS_SDK_INT64, 0, 0, 0, 0},
    {"prop_type_cd", TFS_SDK_TEXT, 0, 5, 0, 0},
    {"geo_id", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"simple_geo_id", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"state_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"zoning", TFS_SDK_TEXT, 0, 20, 0, 0},
    {"land_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"land_non_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"imprv_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"imprv_non_hstd_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"ag_use_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"market", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"appraised_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"assessed_val", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"legal_desc", TFS_SDK_TEXT, 0, 255, 0, 0},
    {"legal_acreage", TFS_SDK_DECIMAL, 0, 0, 14, 4},
    {"hood_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"property_use_cd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"prop_inactive_dt", TFS_SDK_DATE, 0, 0, 0, 0},
    {"situs_num", TFS_SDK_TEXT, 0, 15, 0, 0},
    {"situs_street_prefx", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_street", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"situs_street_sufix", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_unit", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"situs_city", TFS_SDK_TEXT, 0, 30, 0, 0},
    {"situs_state", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"situs_zip", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"exemptions", TFS_SDK_JSON, 0, 0, 0, 0},
};
static const tfs_sdk_entity property_entity = {"property", property_fields, 30};

static const tfs_sdk_field pardat_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"seq", TFS_SDK_INT64, 0, 0, 0, 0},
    {"cur", TFS_SDK_TEXT, 0, 1, 0, 0},
    {"class", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"luc", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"nbhd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"acres", TFS_SDK_DECIMAL, 0, 0, 14, 4},
    {"adrno", TFS_SDK_INT64, 0, 0, 0, 0},
    {"adradd", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"adrdir", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"adrstr", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"adrsuf", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"unitno", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"cityname", TFS_SDK_TEXT, 0, 30, 0, 0},
    {"statecode", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"postalcode", TFS_SDK_TEXT, 0, 10, 0, 0},
    {"zoning", TFS_SDK_TEXT, 0, 20, 0, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
    {"who", TFS_SDK_TEXT, TFS_SDK_FIELD_BOOKKEEPING, 50, 0, 0},
};
static const tfs_sdk_entity pardat_entity = {"pardat", pardat_fields, 21};

static const tfs_sdk_field asmt_fields[] = {
    {"parid", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    {"taxyr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"seq", TFS_SDK_INT64, 0, 0, 0, 0},
    {"cur", TFS_SDK_TEXT, 0, 1, 0, 0},
    {"valclass", TFS_SDK_TEXT, 0, 2, 0, 0},
    {"valapr1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valapr3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm1", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm2", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"valasm3", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    {"deactivat", TFS_SDK_DATE, 0, 0, 0, 0},
    {"wen", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
    {"who", TFS_SDK_TEXT, TFS_SDK_FIELD_BOOKKEEPING, 50, 0, 0},
};
static const tfs_sdk_entity asmt_entity = {"asmt", asmt_fields, 14};
static const tfs_sdk_entity *const cama_targets[] = {&pardat_entity, &asmt_entity};

static void prop_set(tfs_record *r, const char *field, tfs_sdk_type type, const char *text)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0, "no field %s", field);
    if (text)
        set_text(r, (size_t)f, type, text);
    else
        r->values[f] = (tfs_value){.type = TFS_SDK_NULL};
}

/* A property with values and no situs; tests change what they need. */
static tfs_record *property(int64_t prop_id)
{
    tfs_record *r = tfs_record_new(arena, &property_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = prop_id};
    r->values[1] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 2026};
    r->values[2] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 0};
    prop_set(r, "prop_type_cd", TFS_SDK_TEXT, "R");
    prop_set(r, "geo_id", TFS_SDK_TEXT, "12-345 678-90");
    prop_set(r, "simple_geo_id", TFS_SDK_TEXT, "1234567890");
    prop_set(r, "state_cd", TFS_SDK_TEXT, "A1");
    prop_set(r, "zoning", TFS_SDK_TEXT, "R-1");
    prop_set(r, "land_hstd_val", TFS_SDK_DECIMAL, "10000");
    prop_set(r, "land_non_hstd_val", TFS_SDK_DECIMAL, "5000");
    prop_set(r, "imprv_hstd_val", TFS_SDK_DECIMAL, "100000");
    prop_set(r, "imprv_non_hstd_val", TFS_SDK_DECIMAL, "0");
    prop_set(r, "ag_use_val", TFS_SDK_DECIMAL, "250");
    prop_set(r, "market", TFS_SDK_DECIMAL, "115000");
    prop_set(r, "appraised_val", TFS_SDK_DECIMAL, "115250");
    prop_set(r, "assessed_val", TFS_SDK_DECIMAL, "90000");
    prop_set(r, "legal_desc", TFS_SDK_TEXT, "LOT 1 BLK 2 OAK HILLS");
    prop_set(r, "legal_acreage", TFS_SDK_DECIMAL, "0.2500");
    prop_set(r, "hood_cd", TFS_SDK_TEXT, "N100");
    prop_set(r, "property_use_cd", TFS_SDK_TEXT, "101");
    prop_set(r, "exemptions", TFS_SDK_JSON, "[\"HS\",\"OV65\"]");
    return r;
}

static void map_cama(tfs_lua *rt, const tfs_record *src, tfs_record **pardat, tfs_record **asmt)
{
    tfs_lua_output out;
    tfs_error err = {0};
    int rc = tfs_lua_map(rt, "pacs_to_cama.lua", src, "k", cama_targets, 2, arena, &out, &err);
    cr_assert_eq(rc, 0, "map failed: %s\n%s", err.message, err.detail);
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.recs[0]->entity, &pardat_entity, "pardat comes first (targets order)");
    cr_assert_eq(out.recs[1]->entity, &asmt_entity);
    *pardat = out.recs[0];
    *asmt = out.recs[1];
}

static void expect_number(const tfs_record *r, const char *field, double want)
{
    int f = tfs_entity_field_index(r->entity, field);
    cr_assert_geq(f, 0, "no field %s", field);
    const tfs_value *v = &r->values[f];
    cr_assert(v->type == TFS_SDK_INT64 || v->type == TFS_SDK_FLOAT64 ||
                  v->type == TFS_SDK_DECIMAL,
              "%s: expected a number, got %s", field, tfs_type_name(v->type));
    /* a float into a decimal field arrives as decimal text (lua_decimal.c) */
    double got = v->type == TFS_SDK_INT64    ? (double)v->u.i
                 : v->type == TFS_SDK_DECIMAL ? strtod(v->u.s, NULL)
                                              : v->u.f;
    cr_expect_float_eq(got, want, 1e-9, "%s: expected %g, got %g", field, want, got);
}

Test(lua, pacs_to_cama_without_situs)
{
    copy_shipped();
    tfs_lua *rt = new_rt(NULL);
    tfs_record *src = property(1001), *p, *a;
    prop_set(src, "simple_geo_id", TFS_SDK_TEXT, NULL);
    map_cama(rt, src, &p, &a);
    expect_text(p, "parid", "1234567890"); /* from geo_id "12-345 678-90" */
    expect_int(p, "taxyr", 2026);
    expect_int(p, "seq", 0);
    expect_text(p, "cur", "Y");
    expect_text(p, "class", "R");
    expect_text(p, "luc", "101");
    expect_text(p, "nbhd", "N100");
    expect_number(p, "acres", 0.25);
    expect_text(p, "acres", "0.2500"); /* the source's own digits */
    static const char *const situs[] = {"adrno", "adradd", "adrdir", "adrstr", "adrsuf",
                                        "unitno", "cityname", "statecode", "postalcode",
                                        "deactivat", "wen", "who"};
    for (size_t i = 0; i < sizeof situs / sizeof situs[0]; i++)
        expect_null(p, situs[i]);
    expect_text(p, "zoning", "R-1");
    expect_text(a, "parid", "1234567890");
    expect_int(a, "taxyr", 2026);
    expect_text(a, "cur", "Y");
    expect_text(a, "valclass", "HS");
    expect_number(a, "valapr1", 15250);
    expect_number(a, "valapr2", 100000);
    expect_number(a, "valapr3", 115250);
    expect_number(a, "valasm1", 15250);
    expect_number(a, "valasm2", 100000);
    expect_number(a, "valasm3", 90000);
    expect_null(a, "deactivat");
    tfs_lua_free(rt);
}

Test(lua, pacs_to_cama_with_situs_and_ex)
{
    copy_shipped();
    tfs_lua *rt = new_rt(NULL);
    tfs_record *src = property(1002), *p, *a;
    prop_set(src, "state_cd", TFS_SDK_TEXT, "F1");
    prop_set(src, "situs_num", TFS_SDK_TEXT, "123A");
    prop_set(src, "situs_street_prefx", TFS_SDK_TEXT, "n");
    prop_set(src, "situs_street", TFS_SDK_TEXT, "  Main  ");
    prop_set(src, "situs_street_sufix", TFS_SDK_TEXT, "Street");
    prop_set(src, "situs_unit", TFS_SDK_TEXT, "4B");
    prop_set(src, "situs_city", TFS_SDK_TEXT, "Springfield");
    prop_set(src, "situs_state", TFS_SDK_TEXT, "tx");
    prop_set(src, "situs_zip", TFS_SDK_TEXT, "78701-1234");
    prop_set(src, "exemptions", TFS_SDK_JSON, "[\"HS\",\"EX\"]");
    prop_set(src, "prop_inactive_dt", TFS_SDK_DATE, "2026-06-30");
    map_cama(rt, src, &p, &a);
    expect_text(p, "class", "C");
    expect_int(p, "adrno", 123);
    expect_text(p, "adradd", "A");
    expect_text(p, "adrdir", "N");
    expect_text(p, "adrstr", "MAIN");
    expect_text(p, "adrsuf", "ST");
    expect_text(p, "unitno", "4B");
    expect_text(p, "cityname", "SPRINGFIELD");
    expect_text(p, "statecode", "TX");
    expect_text(p, "postalcode", "78701-1234");
    expect_text(p, "deactivat", "2026-06-30");
    expect_text(a, "valclass", "EX");
    expect_text(a, "deactivat", "2026-06-30");
    tfs_lua_free(rt);
}

Test(lua, pacs_to_cama_nulls_and_odd_values)
{
    copy_shipped();
    tfs_lua *rt = new_rt(NULL);
    tfs_record *src = property(1003), *p, *a;
    static const char *const nulls[] = {"state_cd", "land_hstd_val", "imprv_hstd_val",
                                        "ag_use_val", "assessed_val", "legal_acreage",
                                        "exemptions", "zoning", "hood_cd"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        prop_set(src, nulls[i], TFS_SDK_TEXT, NULL);
    prop_set(src, "situs_num", TFS_SDK_TEXT, "  45 1/2 ");
    prop_set(src, "situs_street", TFS_SDK_TEXT, "Oak");
    prop_set(src, "situs_street_sufix", TFS_SDK_TEXT, "Ave.");
    map_cama(rt, src, &p, &a);
    expect_text(p, "class", "O");
    expect_null(p, "acres");
    expect_null(p, "zoning");
    expect_null(p, "nbhd");
    expect_int(p, "adrno", 45);
    expect_text(p, "adradd", "1/2");
    expect_null(p, "adrdir");
    expect_text(p, "adrsuf", "AVE");
    expect_null(p, "cityname");
    expect_text(a, "valclass", "O");
    expect_number(a, "valapr1", 5000); /* null land_hstd_val and ag_use_val count as 0 */
    expect_number(a, "valapr2", 0);
    expect_number(a, "valapr3", 5000);
    expect_null(a, "valasm3");

    /* no leading digits: no house number; state code classes */
    static const struct { const char *state_cd, *cls; } classes[] = {
        {"A1", "R"}, {"B2", "R"}, {"C1", "V"}, {"D1", "A"}, {"E", "A"}, {"F1", "C"},
        {"F2", "I"}, {"F3", "O"}, {"M1", "R"}, {"L1", "O"}, {"O", "O"}, {"J5", "O"},
        {" f2 ", "I"}, {"", "O"},
    };
    src = property(1004);
    prop_set(src, "situs_num", TFS_SDK_TEXT, "A12");
    prop_set(src, "exemptions", TFS_SDK_JSON, "[]");
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        prop_set(src, "state_cd", TFS_SDK_TEXT, classes[i].state_cd);
        map_cama(rt, src, &p, &a);
        expect_text(p, "class", classes[i].cls);
        expect_text(a, "valclass", classes[i].cls);
        expect_null(p, "adrno");
        expect_text(p, "adradd", "A12");
    }
    tfs_lua_free(rt);
}

/* The SQL version of the mapping (tests/integration/sql) must use the same lookup tables:
 * every row of the CSVs appears in it. */
Test(lua, sql_mapping_uses_the_same_lookups)
{
    static const struct { const char *csv, *sql, *fmt; } pairs[] = {
        {"street_suffix.csv", "pacs_to_cama_pardat.sql", "('%s', '%s')"},
        {"state_cd_class.csv", "pacs_to_cama_pardat.sql", "WHEN '%s' THEN '%s'"},
        {"state_cd_class.csv", "pacs_to_cama_asmt.sql", "WHEN '%s' THEN '%s'"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/tests/integration/sql/%s", TFS_SOURCE_DIR, pairs[i].sql);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "could not read %s", path);
        static char sql[1 << 16];
        size_t n = fread(sql, 1, sizeof sql - 1, f);
        sql[n] = '\0';
        fclose(f);
        snprintf(path, sizeof path, "%s/transforms/lookups/%s", TFS_SOURCE_DIR, pairs[i].csv);
        f = fopen(path, "r");
        cr_assert_not_null(f, "could not read %s", path);
        char line[256];
        int rows = 0;
        bool header = true;
        while (fgets(line, sizeof line, f)) {
            if (line[0] == '#' || line[0] == '\n')
                continue;
            if (header) {
                header = false;
                continue;
            }
            line[strcspn(line, "\r\n")] = '\0';
            char *comma = strchr(line, ',');
            cr_assert_not_null(comma, "%s: %s", pairs[i].csv, line);
            *comma = '\0';
            char want[300];
            snprintf(want, sizeof want, pairs[i].fmt, line, comma + 1);
            cr_expect(strstr(sql, want), "%s lacks %s (from %s)", pairs[i].sql, want,
                      pairs[i].csv);
            rows++;
        }
        fclose(f);
        cr_expect_gt(rows, 5);
    }
}
