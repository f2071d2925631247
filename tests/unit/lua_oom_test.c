/* tests/unit/lua_oom_test.c — out of memory in the Lua runtime, SQLite style: for n = 1, 2,
 * 3, ... the nth allocation fails (once, or from then on), through tfs_alloc_fail_at, which
 * both the Lua state's allocator and the runtime's own allocations consult (jansson's too:
 * the test routes them through tfs_malloc). A realistic record (nested tables, lists,
 * decimals, JSON, strings, a module, a lookup table and a validate()) is mapped through
 * the public API each time; the call must succeed or fail with TFS_ENOMEM and a message saying so, never
 * crash, and the runtime must map correctly right afterwards. The loop ends when a run
 * injected nothing. ASan's leak check covers what the failures leave behind.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "arena.h"
#include "error.h"
#include "log.h"
#include "lua_transform.h"
#include "record.h"

static char tdir[PATH_MAX]; /* mkdtemp'd transform directory */
static tfs_arena *arena;

static void write_at(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "could not write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void remove_at(const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tdir, name);
    remove(path);
}

static const char script[] =
    "local util = require('util')\n"
    "function map(rec)\n"
    "  local lazy = require('lazy') -- a module loaded during the call\n"
    "  local tags = {}\n"
    "  for i, t in ipairs(rec.tags) do tags[i] = tf.upper(t) end\n"
    "  local lines = {}\n"
    "  for i = 1, 3 do\n"
    "    lines[i] = { id = rec.id, n = i, label = util.label(rec.name, i) }\n"
    "  end\n"
    "  return {\n"
    "    out = { id = rec.id, name = tf.trim(rec.name) .. lazy.suffix,\n"
    "            amount = rec.amount, big = rec.big, total = rec.amount * 2,\n"
    "            colour = tf.lookup('colour', rec.code, 'none'),\n"
    "            j = { tags = tf.array(tags), meta = rec.meta, none = tf.null,\n"
    "                  nested = { a = { b = { 1, 2.5, 'three' } },\n"
    "                             s = string.rep('x', 40) } } },\n"
    "    line = lines,\n"
    "  }\n"
    "end\n"
    "function validate(rec, out)\n"
    "  return { 'out.name: ' .. out.out.name, 'lines: ' .. #out.line }\n"
    "end\n";

static void setup(void)
{
    tfs_log_set_level(TFS_LOG_ERROR); /* every injected load failure would log a warning */
    json_set_alloc_funcs(tfs_malloc, tfs_free);
    strcpy(tdir, "/tmp/tfs_lua_oom_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir));
    char sub[PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/lookups", tdir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    write_at("s.lua", script);
    write_at("util.lua", "local M = {}\n"
                         "function M.label(name, i) return ('%s #%d'):format(name, i) end\n"
                         "return M\n");
    write_at("lazy.lua", "return { suffix = ' (' .. tf.lookup('colour', 'G') .. ')' }\n");
    write_at("lookups/colour.csv", "code,value\nR,red\nG,green\n");
    arena = tfs_arena_new();
    cr_assert_not_null(arena);
}

static void teardown(void)
{
    tfs_alloc_fail_at(0, false);
    tfs_arena_free(arena);
    remove_at("s.lua");
    remove_at("util.lua");
    remove_at("lazy.lua");
    remove_at("lookups/colour.csv");
    remove_at("lookups");
    rmdir(tdir);
}

TestSuite(lua_oom, .init = setup, .fini = teardown, .timeout = 300);

static const tfs_sdk_field src_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 14, 3},
    {"big", TFS_SDK_DECIMAL, 0, 0, 20, 3},
    {"code", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"tags", TFS_SDK_JSON, 0, 0, 0, 0},
    {"meta", TFS_SDK_JSON, 0, 0, 0, 0},
};
static const tfs_sdk_entity src_entity = {"src", src_fields, 7};

static const tfs_sdk_field out_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 14, 3},
    {"big", TFS_SDK_DECIMAL, 0, 0, 20, 3},
    {"total", TFS_SDK_DECIMAL, 0, 0, 14, 3},
    {"colour", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"j", TFS_SDK_JSON, 0, 0, 0, 0},
};
static const tfs_sdk_entity out_entity = {"out", out_fields, 7};
static const tfs_sdk_field line_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"n", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"label", TFS_SDK_TEXT, 0, 0, 0, 0},
};
static const tfs_sdk_entity line_entity = {"line", line_fields, 3};
static const tfs_sdk_entity *const targets[] = {&out_entity, &line_entity};

static void set_text(tfs_record *r, size_t f, tfs_sdk_type t, const char *s)
{
    cr_assert_eq(tfs_record_set_text(r, f, t, s, strlen(s)), 0);
}

/* Made before injection is armed: the record is the caller's, not the runtime's. */
static tfs_record *source(void)
{
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 42};
    set_text(r, 1, TFS_SDK_TEXT, "  Ann Example  ");
    set_text(r, 2, TFS_SDK_DECIMAL, "1.005");
    set_text(r, 3, TFS_SDK_DECIMAL, "12345678901234567.891");
    set_text(r, 4, TFS_SDK_TEXT, "R");
    set_text(r, 5, TFS_SDK_JSON, "[\"hs\",\"ov65\"]");
    set_text(r, 6, TFS_SDK_JSON, "{\"k\":[1,2.5,{\"x\":null}],\"s\":\"text\",\"e\":[]}");
    return r;
}

static const char *text(const tfs_record *r, size_t f)
{
    cr_assert(tfs_type_is_text(r->values[f].type), "%s.%s is a %s", r->entity->name,
              r->entity->fields[f].name, tfs_type_name(r->values[f].type));
    return r->values[f].u.s;
}

/* What the script makes of source(), checked field by field. */
static void check_output(const tfs_lua_output *out, unsigned long n)
{
    cr_assert_eq(out->n, 4, "n=%lu: %zu records", n, out->n);
    const tfs_record *o = out->recs[0];
    cr_assert_eq(o->entity, &out_entity);
    cr_expect_eq(o->values[0].u.i, 42);
    cr_expect_str_eq(text(o, 1), "Ann Example (green)", "n=%lu", n);
    cr_expect_str_eq(text(o, 2), "1.005", "n=%lu", n);
    cr_expect_str_eq(text(o, 3), "12345678901234567.891", "n=%lu", n);
    cr_expect_str_eq(text(o, 4), "2.01", "n=%lu", n);
    cr_expect_str_eq(text(o, 5), "red", "n=%lu", n);
    cr_expect_str_eq(text(o, 6),
                     "{\"meta\":{\"e\":[],\"k\":[1,2.5,{\"x\":null}],\"s\":\"text\"},"
                     "\"nested\":{\"a\":{\"b\":[1,2.5,\"three\"]},"
                     "\"s\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"},\"none\":null,"
                     "\"tags\":[\"HS\",\"OV65\"]}",
                     "n=%lu", n);
    cr_assert_eq(out->n_problems, 2, "n=%lu: validate()'s problems", n);
    cr_expect_str_eq(out->problems[0], "out.name: Ann Example (green)", "n=%lu", n);
    cr_expect_str_eq(out->problems[1], "lines: 3", "n=%lu", n);
    for (size_t i = 1; i <= 3; i++) {
        const tfs_record *l = out->recs[i];
        cr_assert_eq(l->entity, &line_entity);
        cr_expect_eq(l->values[1].u.i, (int64_t)i);
        char want[32];
        snprintf(want, sizeof want, "  Ann Example   #%zu", i);
        cr_expect_str_eq(text(l, 2), want, "n=%lu", n);
    }
}

static int map(tfs_lua *rt, const tfs_record *src, tfs_lua_output *out, tfs_error *err)
{
    memset(err, 0, sizeof *err);
    return tfs_lua_map(rt, "s.lua", src, "42", targets, 2, arena, out, err);
}

/* One run with the nth allocation failing; returns whether anything was injected. */
static bool run_once(tfs_lua *rt, const tfs_record *src, unsigned long n, bool sticky)
{
    tfs_lua_output out;
    tfs_error err;
    tfs_alloc_fail_at(n, sticky);
    int rc = map(rt, src, &out, &err);
    unsigned long injected = tfs_alloc_injected();
    tfs_alloc_fail_at(0, false);
    if (rc == 0)
        check_output(&out, n);
    else
        cr_assert(rc == TFS_ENOMEM && strstr(err.message, "memory"),
                  "n=%lu%s: expected success or TFS_ENOMEM, got %d: %s", n,
                  sticky ? " (sticky)" : "", rc, err.message);
    cr_assert(rc == 0 || injected > 0, "n=%lu: failed with nothing injected: %s", n,
              err.message);
    /* still usable, and right */
    rc = map(rt, src, &out, &err);
    cr_assert_eq(rc, 0, "n=%lu%s: the call after the failure failed: %s\n%s", n,
                 sticky ? " (sticky)" : "", err.message, err.detail);
    check_output(&out, n);
    return injected > 0;
}

/* A runtime that has loaded nothing: the failure may hit loading the script, its modules,
 * the lookup table, the entity caches, or the conversion. */
static void cold(bool sticky)
{
    const tfs_record *src = source();
    unsigned long n = 1;
    for (;; n++) {
        tfs_lua *rt = NULL;
        tfs_error err = {0};
        cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
        bool injected = run_once(rt, src, n, sticky);
        tfs_lua_free(rt);
        tfs_arena_reset(arena);
        src = source();
        if (!injected)
            break;
    }
    cr_log_info("cold%s: %lu allocations", sticky ? " (sticky)" : "", n - 1);
    cr_assert_gt(n, 100, "too few allocations to be the real path: %lu", n);
}

/* A runtime in its steady state: the hot path of one record. */
static void warm(bool sticky)
{
    const tfs_record *src = source();
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
    tfs_lua_output out;
    cr_assert_eq(map(rt, src, &out, &err), 0, "%s", err.message);
    unsigned long n = 1;
    while (run_once(rt, src, n, sticky))
        n++;
    cr_assert_gt(n, 10, "too few allocations to be the real path: %lu", n);
    tfs_lua_free(rt);
}

Test(lua_oom, cold_runtime_once) { cold(false); }
Test(lua_oom, cold_runtime_sticky) { cold(true); }
Test(lua_oom, warm_runtime_once) { warm(false); }
Test(lua_oom, warm_runtime_sticky) { warm(true); }

/* Creating a runtime: fails with TFS_ENOMEM or makes one that works. */
Test(lua_oom, create_runtime)
{
    const tfs_record *src = source();
    for (int sticky = 0; sticky < 2; sticky++) {
        for (unsigned long n = 1;; n++) {
            tfs_lua *rt = NULL;
            tfs_error err = {0};
            tfs_alloc_fail_at(n, sticky);
            int rc = tfs_lua_new(tdir, NULL, 2026, &rt, &err);
            unsigned long injected = tfs_alloc_injected();
            tfs_alloc_fail_at(0, false);
            if (rc != 0) {
                cr_assert_eq(rc, TFS_ENOMEM, "n=%lu: %s", n, err.message);
                cr_assert_null(rt);
                continue;
            }
            tfs_lua_output out;
            cr_assert_eq(map(rt, src, &out, &err), 0, "n=%lu: %s", n, err.message);
            check_output(&out, n);
            tfs_lua_free(rt);
            if (injected == 0)
                break;
        }
    }
}

/* The lookups rules ask for: a cold table read under every failure, then a warm one. */
Test(lua_oom, lookup_has)
{
    for (int sticky = 0; sticky < 2; sticky++) {
        for (unsigned long n = 1;; n++) {
            tfs_lua *rt = NULL;
            tfs_error err = {0};
            cr_assert_eq(tfs_lua_new(tdir, NULL, 2026, &rt, &err), 0, "%s", err.message);
            tfs_alloc_fail_at(n, sticky);
            int rc = tfs_lua_lookup_has(rt, "colour", "G", 1, &err);
            unsigned long injected = tfs_alloc_injected();
            tfs_alloc_fail_at(0, false);
            cr_assert(rc == 1 || (rc == TFS_ENOMEM && strstr(err.message, "memory")),
                      "n=%lu: got %d: %s", n, rc, err.message);
            cr_assert_eq(tfs_lua_lookup_has(rt, "colour", "G", 1, &err), 1,
                         "n=%lu: the lookup after the failure: %s", n, err.message);
            cr_assert_eq(tfs_lua_lookup_has(rt, "colour", "B", 1, &err), 0);
            tfs_lua_free(rt);
            if (!injected)
                break;
        }
    }
}
