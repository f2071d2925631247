/* tests/unit/lua_sandbox_test.c — a sandbox that cannot hang or leak: every way a script
 * could hold a worker (a __close that loops after an error, string.rep of nothing a huge
 * number of times, backtracking patterns in find, match, gmatch and gsub, table.concat
 * over an endless C __index, a looping error handler, metamethods reached from C) ends
 * within the budget as an error naming the script, the line, the budget and the record,
 * also inside pcall and xpcall, and the next record maps; __gc stays refused; the wall
 * clock (lua.record_ms) and the daemon's stop end a call the instruction budget would
 * let run; tf and tf.null are read-only, so one script cannot change what another sees;
 * and the budgeted matcher gives the stock matcher's results on the cases of Lua's own
 * pattern tests, compared result by result against a plain Lua state. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "error.h"
#include "lua_transform.h"
#include "record.h"

static char root[PATH_MAX];
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
    strcpy(root, "/tmp/tfs_sandbox_test_XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    arena = tfs_arena_new();
    cr_assert_not_null(arena);
}

static void teardown(void)
{
    tfs_arena_free(arena);
    if (root[0])
        rm_tree(root);
}

TestSuite(sandbox, .init = setup, .fini = teardown, .timeout = 60);

static void write_script(const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "could not write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static const tfs_sdk_field src_fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
};
static const tfs_sdk_entity src_entity = {"src", src_fields, 1};
static const tfs_sdk_field out_fields[] = {
    {"a", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"b", TFS_SDK_TEXT, 0, 0, 0, 0},
};
static const tfs_sdk_entity out_entity = {"out", out_fields, 2};
static const tfs_sdk_entity *const targets[] = {&out_entity};

static tfs_record *src_rec(void)
{
    tfs_record *r = tfs_record_new(arena, &src_entity);
    cr_assert_not_null(r);
    r->values[0] = (tfs_value){.type = TFS_SDK_INT64, .u.i = 7};
    return r;
}

static tfs_lua *new_rt(const tfs_lua_limits *lim)
{
    tfs_lua *rt = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_lua_new(root, lim, 2026, &rt, &err), 0, "%s", err.message);
    return rt;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int map(tfs_lua *rt, const char *script, tfs_lua_output *out, tfs_error *err)
{
    memset(err, 0, sizeof *err);
    return tfs_lua_map(rt, script, src_rec(), "7", targets, 1, arena, out, err);
}

/* The text field b of the one record script maps to. */
static const char *map_b(tfs_lua *rt, const char *script)
{
    tfs_lua_output out;
    tfs_error err;
    int rc = map(rt, script, &out, &err);
    cr_assert_eq(rc, 0, "%s: %s\n%s", script, err.message, err.detail);
    cr_assert_eq(out.n, 1);
    cr_assert(tfs_type_is_text(out.recs[0]->values[1].type), "%s: b is not text", script);
    return out.recs[0]->values[1].u.s;
}

static void expect_ok_after(tfs_lua *rt)
{
    cr_expect_str_eq(map_b(rt, "ok.lua"), "fine", "the next record did not map");
}

/* A script that must end with TFS_ELIMIT, quickly, naming itself, line, budget, record. */
static void expect_budget(tfs_lua *rt, const char *script, int line, const char *budget)
{
    tfs_lua_output out;
    tfs_error err;
    double t0 = now_s();
    int rc = map(rt, script, &out, &err);
    double dt = now_s() - t0;
    char where[128];
    snprintf(where, sizeof where, "%s:%d:", script, line);
    cr_expect_eq(rc, TFS_ELIMIT, "%s: rc %d: %s", script, rc, err.message);
    cr_expect(strstr(err.message, where), "%s: no %s in: %s", script, where, err.message);
    cr_expect(strstr(err.message, budget), "%s: no \"%s\" in: %s", script, budget,
              err.message);
    cr_expect(strstr(err.message, "(record 7)"), "%s: %s", script, err.message);
    cr_expect_lt(dt, 5.0, "%s took %.1f s", script, dt);
    cr_expect_eq(out.n, 0);
    expect_ok_after(rt);
}

static const char ok_lua[] = "function map(rec) return { out = { a = rec.id, b = 'fine' } } end\n";

/* Each hang of the issue, and its pcall, xpcall and metamethod variants. */
static const struct {
    const char *name, *body; /* body is the inside of map(rec), from line 2 */
} hangs[] = {
    {"close.lua", "  local x <close> = setmetatable({}, {__close = function() while true do end "
                  "end})\n  error('boom')\n"},
    {"close_pcall.lua", "  pcall(function()\n    local x <close> = setmetatable({}, {__close = "
                        "function() while true do end end})\n    error('boom') end)\n"},
    {"close_loop.lua", "  while true do\n    pcall(function() local x <close> = setmetatable({}, "
                       "{__close = function() error('again') end}) error('boom') end)\n  end\n"},
    {"rep_pcall.lua", "  while true do pcall(string.rep, '', 1 << 62) end\n"},
    {"find.lua", "  string.find(string.rep('a', 5000), '.-.-.-.-.-.-.-.-b')\n"},
    {"find_method.lua", "  local s = ('a'):rep(5000)\n  s:find('.-.-.-.-.-.-.-.-b')\n"},
    {"match.lua", "  string.match(string.rep('a', 5000), '(.*)(.*)(.*)(.*)(.*)b')\n"},
    {"gmatch.lua", "  for x in string.gmatch(string.rep('a', 5000), '.-.-.-.-.-.-.-b') do end\n"},
    {"gsub.lua", "  string.gsub(string.rep('a', 5000), '.-.-.-.-.-.-.-b', 'x')\n"},
    {"find_pcall.lua", "  while true do\n    pcall(string.find, string.rep('a', 5000), "
                       "'.-.-.-.-.-.-.-.-b') end\n"},
    {"concat.lua", "  local t = setmetatable({}, {})\n  getmetatable(t).__index = table.concat\n"
                   "  table.concat(t, '', 1, 1 << 62)\n"},
    {"xpcall.lua", "  xpcall(function() error('boom') end, function(m) while true do end end)\n"},
    {"xpcall_close.lua", "  xpcall(function() local x <close> = setmetatable({}, {__close = "
                         "function() while true do end end}) error('boom') end, debug and print "
                         "or tostring)\n"},
    {"tostring.lua", "  tostring(setmetatable({}, {__tostring = function() while true do end "
                     "end}))\n"},
    {"index.lua", "  local t = setmetatable({}, {__index = function() while true do end end})\n"
                  "  table.concat(t, '', 1, 2)\n"},
    {"eq.lua", "  local mt = {__eq = function() while true do end end}\n"
               "  local a, b = setmetatable({}, mt), setmetatable({}, mt)\n  local x = a == b\n"},
    {"sort.lua", "  local t = {}\n  for i = 1, 200 do t[i] = i end\n"
                 "  table.sort(t, function(a, b) while true do end end)\n"},
    {"move.lua", "  table.move({}, 1, 1 << 62, 1, {})\n"},
};

Test(sandbox, hangs_end_at_the_instruction_budget_and_the_next_record_maps)
{
    write_script("ok.lua", ok_lua);
    char text[1024];
    for (size_t i = 0; i < sizeof hangs / sizeof hangs[0]; i++) {
        snprintf(text, sizeof text, "function map(rec)\n%s  return { out = { a = 1 } }\nend\n",
                 hangs[i].body);
        write_script(hangs[i].name, text);
    }
    /* the wall clock out of the way: a sanitizer build on a busy machine is slow */
    tfs_lua_limits lim = {.instructions = 1000000, .record_ms = 60000};
    tfs_lua *rt = new_rt(&lim);
    for (size_t i = 0; i < sizeof hangs / sizeof hangs[0]; i++) {
        const char *name = hangs[i].name;
        tfs_lua_output out;
        tfs_error err;
        double t0 = now_s();
        int rc = map(rt, name, &out, &err);
        double dt = now_s() - t0;
        cr_expect_eq(rc, TFS_ELIMIT, "%s: rc %d: %s", name, rc, err.message);
        cr_expect(strstr(err.message, "instruction budget exceeded") &&
                      strstr(err.message, "lua.instructions"),
                  "%s: %s", name, err.message);
        char where[64];
        snprintf(where, sizeof where, "%s:", name);
        cr_expect(strstr(err.message, where), "%s: %s", name, err.message);
        cr_expect(strstr(err.message, "(record 7)"), "%s: %s", name, err.message);
        cr_expect_lt(dt, 5.0, "%s took %.1f s", name, dt);
        expect_ok_after(rt);
    }
    tfs_lua_free(rt);
}

Test(sandbox, budget_errors_name_the_line_and_the_function)
{
    write_script("ok.lua", ok_lua);
    write_script("find.lua", "function map(rec)\n  local s = ('a'):rep(5000)\n"
                             "  return { out = { a = s:find('.-.-.-.-.-.-.-.-b') } }\nend\n");
    write_script("rep.lua", "function map(rec)\n\n  return { out = { b = ('x'):rep(1 << 25) } }\n"
                            "end\n");
    write_script("concat.lua", "function map(rec)\n  local t = setmetatable({}, {__index = "
                               "table.concat})\n  return table.concat(t, '', 1, 1 << 62)\nend\n");
    tfs_lua_limits lim = {.instructions = 1000000, .memory_bytes = 8u << 20, .record_ms = 60000};
    tfs_lua *rt = new_rt(&lim);
    expect_budget(rt, "find.lua", 3, "string.find");
    expect_budget(rt, "concat.lua", 3, "table.concat");
    /* a repetition larger than the memory cap is refused before it starts */
    expect_budget(rt, "rep.lua", 3, "not enough memory");
    tfs_lua_free(rt);
}

/* Nothing to repeat is nothing to do, however many times: the answer at once, as Lua's
 * (which would loop 2^62 times to give it); a result that cannot fit is refused first. */
Test(sandbox, rep_is_bounded_by_its_size_before_it_starts)
{
    write_script("ok.lua", ok_lua);
    write_script("empty.lua", "function map(rec)\n  local a = string.rep('', 1 << 62)\n"
                              "  local b = (''):rep(1 << 62, '')\n"
                              "  local c = ('ab'):rep(3, ',') .. ('x'):rep(0) .. ('y'):rep(-5)\n"
                              "  return { out = { a = 1, b = '[' .. a .. b .. ']' .. c } }\nend\n");
    write_script("sep.lua", "function map(rec)\n  return { out = { b = (''):rep(1 << 62, 'x') } }\n"
                            "end\n");
    write_script("big.lua", "function map(rec)\n  return { out = { b = ('x'):rep(1 << 30) } }\n"
                            "end\n");
    tfs_lua_limits lim = {.memory_bytes = 8u << 20};
    tfs_lua *rt = new_rt(&lim);
    double t0 = now_s();
    cr_expect_str_eq(map_b(rt, "empty.lua"), "[]ab,ab,ab");
    cr_expect_lt(now_s() - t0, 1.0);
    tfs_lua_output out;
    tfs_error err;
    int rc = map(rt, "sep.lua", &out, &err);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(err.message, "sep.lua:2: resulting string too large"), "%s", err.message);
    rc = map(rt, "big.lua", &out, &err);
    cr_expect_eq(rc, TFS_ELIMIT);
    cr_expect(strstr(err.message, "big.lua:2: not enough memory"), "%s", err.message);
    expect_ok_after(rt);
    tfs_lua_free(rt);
}

/* What the charges cost ordinary work: lists built and emptied at their end, joined,
 * sorted and matched over a 100,000-element list fit the default budget many times over. */
Test(sandbox, ordinary_library_use_stays_within_the_budget)
{
    write_script("busy.lua",
                 "function map(rec)\n"
                 "  local t = {}\n"
                 "  for i = 1, 100000 do table.insert(t, tostring(i % 977)) end\n"
                 "  local s = table.concat(t, ' ')\n"
                 "  table.sort(t)\n"
                 "  local words = 0\n"
                 "  for w in s:gmatch('%d+') do words = words + 1 end\n"
                 "  local _, n = s:gsub('9', '*')\n"
                 "  for i = 1, 100000 do table.remove(t) end\n"
                 "  table.insert(t, 1, 'x') table.remove(t, 1)\n"
                 "  return { out = { a = words, b = #t .. ' ' .. n .. ' ' .. #s:upper() } }\n"
                 "end\n");
    tfs_lua_limits lim = {.record_ms = 60000}; /* the default instruction budget */
    tfs_lua *rt = new_rt(&lim);
    tfs_lua_output out;
    tfs_error err;
    int rc = map(rt, "busy.lua", &out, &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_eq(out.recs[0]->values[0].u.i, 100000);
    cr_expect(strncmp(out.recs[0]->values[1].u.s, "0 ", 2) == 0, "%s",
              out.recs[0]->values[1].u.s);
    tfs_lua_free(rt);
}

Test(sandbox, gc_metamethods_stay_refused)
{
    write_script("ok.lua", ok_lua);
    write_script("gc.lua", "function map(rec)\n  setmetatable({}, {__gc = function() while true "
                           "do end end})\nend\n");
    write_script("gc_pcall.lua",
                 "function map(rec)\n  local ok, e = pcall(setmetatable, {}, {__gc = function() "
                 "while true do end end})\n  collectgarbage()\n"
                 "  return { out = { a = 1, b = tostring(ok) .. ' ' .. e } }\nend\n");
    tfs_lua *rt = new_rt(NULL);
    tfs_lua_output out;
    tfs_error err;
    int rc = map(rt, "gc.lua", &out, &err);
    cr_expect_eq(rc, TFS_EINVAL, "rc %d: %s", rc, err.message);
    cr_expect(strstr(err.message, "gc.lua:2: __gc metamethods are not allowed"), "%s",
              err.message);
    const char *b = map_b(rt, "gc_pcall.lua");
    cr_expect(strstr(b, "false") && strstr(b, "__gc metamethods are not allowed"), "%s", b);
    expect_ok_after(rt);
    tfs_lua_free(rt);
}

Test(sandbox, wall_clock_budget_ends_what_the_instruction_budget_allows)
{
    write_script("ok.lua", ok_lua);
    write_script("loop.lua", "function map(rec)\n  while true do end\nend\n");
    /* each call scans a megabyte in C: few instructions, much time */
    write_script("scan.lua", "function map(rec)\n  local s = ('a'):rep(1 << 20)\n"
                             "  while true do s:find('b', 1, true) end\nend\n");
    write_script("validate.lua", "function map(rec) return { out = { a = 1 } } end\n"
                                 "function validate(rec, out)\n  while true do end\nend\n");
    tfs_lua_limits lim = {.instructions = 1ull << 40, .record_ms = 200};
    tfs_lua *rt = new_rt(&lim);
    expect_budget(rt, "loop.lua", 2, "wall-clock budget exceeded (200 ms per record, "
                                     "lua.record_ms)");
    expect_budget(rt, "scan.lua", 3, "wall-clock budget exceeded");
    expect_budget(rt, "validate.lua", 3, "wall-clock budget exceeded");
    tfs_lua_free(rt);
}

Test(sandbox, the_stop_flag_ends_a_stuck_call)
{
    write_script("ok.lua", ok_lua);
    write_script("loop.lua", "function map(rec)\n  while true do end\nend\n");
    write_script("find.lua", "function map(rec)\n  string.find(('a'):rep(5000), "
                             "'.-.-.-.-.-.-.-.-.-.-b')\nend\n");
    tfs_lua_limits lim = {.instructions = 1ull << 40, .record_ms = 600000};
    tfs_lua *rt = new_rt(&lim);
    atomic_int stop = 1; /* set before the call: the first look at the budgets sees it */
    tfs_lua_set_stop(rt, &stop);
    const char *scripts[] = {"loop.lua", "find.lua"};
    for (size_t i = 0; i < 2; i++) {
        tfs_lua_output out;
        tfs_error err;
        double t0 = now_s();
        int rc = map(rt, scripts[i], &out, &err);
        cr_expect_eq(rc, TFS_ELIMIT, "%s: rc %d %s", scripts[i], rc, err.message);
        cr_expect(tfs_lua_stopped(rt), "%s", scripts[i]);
        cr_expect(strstr(err.message, "stopped: the daemon is stopping or the run was cancelled"), "%s",
                  err.message);
        cr_expect_lt(now_s() - t0, 2.0);
    }
    atomic_store(&stop, 0);
    expect_ok_after(rt);
    cr_expect(!tfs_lua_stopped(rt));
    tfs_lua_free(rt);
}

Test(sandbox, tf_and_tf_null_are_read_only)
{
    write_script("writer.lua",
                 "function map(rec)\n"
                 "  local r = {}\n"
                 "  r[1] = tostring((select(2, pcall(rawset, tf.null, 'x', 1))))\n"
                 "  r[2] = tostring((select(2, pcall(function() tf.null.x = 1 end))))\n"
                 "  r[3] = tostring((select(2, pcall(rawset, tf, 'upper', print))))\n"
                 "  r[4] = tostring((select(2, pcall(function() tf.upper = print end))))\n"
                 "  r[5] = tostring((select(2, pcall(function() tf.mine = 1 end))))\n"
                 "  r[6] = tostring((select(2, pcall(setmetatable, tf.null, nil))))\n"
                 "  r[7] = tostring((select(2, pcall(setmetatable, tf, nil))))\n"
                 "  r[8] = tostring((select(2, pcall(table.insert, tf.null, 1))))\n"
                 "  r[9] = tostring(getmetatable(tf)) .. ' ' .. tostring(getmetatable(tf.null))\n"
                 "  return { out = { a = 1, b = table.concat(r, '\\n') } }\nend\n");
    write_script("reader.lua",
                 "function map(rec)\n"
                 "  local keys = {}\n"
                 "  for k in pairs(tf) do keys[#keys + 1] = k end\n"
                 "  table.sort(keys)\n"
                 "  return { out = { a = 2, b = tostring(rawget(tf.null, 'x')) .. ' ' ..\n"
                 "    tostring(next(tf.null)) .. ' ' .. tf.upper('ok') .. ' ' ..\n"
                 "    tostring(tf.mine) .. ' ' .. table.concat(keys, ',') } }\nend\n");
    tfs_lua *rt = new_rt(NULL);
    const char *w = map_b(rt, "writer.lua");
    char *lines = strdup(w);
    const char *want[] = {"tf.null is read-only", "tf.null", "tf is read-only",
                          "tf is read-only", "tf is read-only", "protected metatable",
                          "protected metatable", "tf.null", "tf tf.null"};
    size_t i = 0;
    for (char *save, *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save), i++)
        if (i < 9)
            cr_expect(strstr(l, want[i]), "write %zu: %s", i + 1, l);
    cr_expect_eq(i, 9, "%s", w);
    free(lines);
    const char *r = map_b(rt, "reader.lua");
    cr_expect(strncmp(r, "nil nil OK nil ", 15) == 0, "another script saw a write: %s", r);
    cr_expect(strstr(r, "null") && strstr(r, "upper") && strstr(r, "roll_year"), "%s", r);
    tfs_lua_free(rt);
}

/* ---- the matcher against the stock one ----------------------------------------------- */

/* Lua that runs every case and returns one string of results; run by a plain Lua state
 * (the stock string library) and by the sandbox (the budgeted one). Cases from Lua 5.4's
 * test suite (testes/pm.lua) and the reference manual, plus error cases. */
static const char cases_lua[] =
    "local R = {}\n"
    "local function put(...)\n"
    "  local t = table.pack(...)\n"
    "  for i = 1, t.n do\n"
    "    local ty = type(t[i])\n"
    "    t[i] = ty == 'string' and string.format('%q', t[i])\n"
    "      or (ty == 'table' or ty == 'function') and ty or tostring(t[i])\n"
    "  end\n"
    "  R[#R + 1] = table.concat(t, '|')\n"
    "end\n"
    "local names = {}\n"
    "for _, k in ipairs({'find', 'match', 'gsub'}) do names[string[k]] = k end\n"
    "local function try(f, ...)\n"
    "  put(names[f] or 'gmatch', ...)\n"
    "  R[#R] = R[#R] .. ' => '\n"
    "  local mark = #R\n"
    "  put(pcall(f, ...))\n"
    "  R[mark] = R[mark] .. table.remove(R)\n"
    "end\n"
    "local function gm(s, p, init)\n"
    "  local out = {}\n"
    "  for a, b, c in string.gmatch(s, p, init) do\n"
    "    out[#out + 1] = tostring(a) .. ',' .. tostring(b) .. ',' .. tostring(c)\n"
    "  end\n"
    "  return table.concat(out, ';')\n"
    "end\n"
    "local finds = {\n"
    "  {'', ''}, {'alo', ''}, {'a\\0o a\\0o a\\0o', 'a', 1}, {'a\\0o a\\0o a\\0o', 'a\\0o', 2},\n"
    "  {'a\\0o a\\0o a\\0o', 'a\\0o', 9}, {'a\\0a\\0a\\0a\\0\\0ab', '\\0ab', 2},\n"
    "  {'a\\0a\\0a\\0a\\0\\0ab', 'b'}, {'a\\0a\\0a\\0a\\0\\0ab', 'b\\0'}, {'', '\\0'},\n"
    "  {'alo123alo', '12'}, {'alo123alo', '^12'}, {'aaab', 'a*'}, {'aaa', '^.*$'},\n"
    "  {'aaab', 'a-'}, {'aaa', '^.-$'}, {'aabaaabaaabaaaba', 'b.*b'},\n"
    "  {'aabaaabaaabaaaba', 'b.-b'}, {'alo xo', '.o$'}, {' \\n isto e assim', '%S%S*'},\n"
    "  {' \\n isto e assim', '%S*$'}, {' \\n isto e assim', '[a-z]*$'}, {'um caracter ? extra',\n"
    "  '[^%sa-z]'}, {'', 'a?'}, {'a', 'a?a'}, {'abl', 'a?b?l?'}, {'  aa', '^aa?a?a'},\n"
    "  {']]]\\225b', '[^]]'}, {'0alo alo', '%x*'}, {'alo alo', '%C+'}, {'(\\194\\130)', '%(.-%)'},\n"
    "  {'abc', 'b', -1}, {'abc', 'b', -10}, {'abc', 'b', 10}, {'abc', '', 4}, {'abc', '', 5},\n"
    "  {'abc', 'c', 0}, {'a.b', '.', 1, true}, {'a+b', '+', 1, true}, {'a+b', 'a+b'},\n"
    "  {'a$b', '$b'}, {'a$', 'a$'}, {'a^b', 'a^b'}, {'^a', '^^a'}, {'x%y', '%%'},\n"
    "  {'hello world from Lua', '(%w+) (%w+)'}, {'  key = value', '(%w+)%s*=%s*(%w+)'},\n"
    "  {'THE (quick) fox', '%f[%a]%a+'}, {'THE (quick) fox', '%f[%l]%a+'},\n"
    "  {'THE (quick) fox', '%f[%A]', 5}, {'abc', '%f[%z]'}, {'abc', '%f[%Z]'},\n"
    "  {'[[x]]', '%[(=*)%['}, {'x = [==[ a ]==] y', '%[(=*)%[(.-)%]%1%]'},\n"
    "  {'f(a(b)c)d', '%b()'}, {'f(a(b c)d', '%b()'}, {'if x then y end', '%bie'},\n"
    "  {'hello', '()ll()'}, {'hello', '(h)(e)(l)(l)(o)'}, {'aaa', '(a*(.))'},\n"
    "  {'0x1F', '^0[xX](%x+)$'}, {'  trim  ', '^%s*(.-)%s*$'}, {'a.b-c', '[%.%-]'},\n"
    "  {'a]b', '[]]'}, {'a-b', '[a-]'}, {'a-b', '[-a]'}, {'x^y', '[%^]'}, {'x^y', '[y^]'},\n"
    "  {'\\0\\1\\2', '[\\0-\\1]+'}, {'\\255\\254', '[\\200-\\255]+'}, {'abc', '[^%a]'},\n"
    "  {'alo', '%w%w?%w?%w?'}, {'testtset', '(.)(.)%2%1'}, {'abab', '(ab)%1'},\n"
    "  {'a,b,,c', ',,'}, {'12.5e3x', '^[+-]?%d+%.?%d*[eE]?[+-]?%d*'}, {'ação', '[\\128-\\255]+'},\n"
    "}\n"
    "for _, c in ipairs(finds) do\n"
    "  try(string.find, c[1], c[2], c[3], c[4])\n"
    "  if not c[4] then try(string.match, c[1], c[2], c[3]) end\n"
    "end\n"
    "local gms = {\n"
    "  {'hello world from Lua', '%a+'}, {'from=world, to=Lua', '(%w+)=(%w+)'},\n"
    "  {'abc', ''}, {'abc', '()'}, {'a,b,,c', '([^,]*)'}, {'THE (quick) fox', '%f[%a]%a+'},\n"
    "  {'13 14 10 = 11, 15= 16, 22=23', '(%d+)%s*=%s*(%d+)'}, {'first second word', '%w+', 7},\n"
    "  {'abc', '.', -1}, {'abc', '.', 10}, {'^a^a', '^a'}, {'aaa', 'a*'}, {'abcd', 'b*'},\n"
    "  {'x=1 y=2', '(%w)=()'},\n"
    "}\n"
    "for _, c in ipairs(gms) do try(gm, c[1], c[2], c[3]) end\n"
    "local subs = {\n"
    "  {'hello world', '(%w+)', '%1 %1'}, {'hello world', '%w+', '%0 %0', 1},\n"
    "  {'hello world from Lua', '(%w+)%s*(%w+)', '%2 %1'}, {'abc', '%w', '%1%1'},\n"
    "  {'abc', '', '-'}, {'abc', 'b*', '-'}, {'', '^', 'x'}, {'abc', '^', 'x'},\n"
    "  {'abc', '$', 'x'}, {'abc', '^a', 'x'}, {'aaa', '^a', 'x'}, {'abc', '%w', '%%'},\n"
    "  {'hello', '()', '%1'}, {'um (dois) tres (quatro)', '(%(%w+%))', string.upper},\n"
    "  {'$name=$value', '%$(%w+)', {name = 'lua', value = 'great'}},\n"
    "  {'$name=$x', '%$(%w+)', {name = 'lua'}}, {'abc', '%w', {a = false, b = 'B'}},\n"
    "  {'a b c', '%w', function(x) if x == 'b' then return nil end return x .. x end},\n"
    "  {'4+5 = $return 4+5$', '%$(.-)%$', function(s) return #s end},\n"
    "  {'abc', '.', 'x', 2}, {'abc', '.', 'x', 0}, {'abc', '.', 'x', -1},\n"
    "  {'  x  ', '^%s*(.-)%s*$', '%1'}, {'a.b.c', '%.', '%%.'}, {'abc', 'b', 42},\n"
    "  {'hello world', 'o', {o = 1.5}},\n"
    "}\n"
    "for _, c in ipairs(subs) do try(string.gsub, c[1], c[2], c[3], c[4]) end\n"
    "local bad = {\n"
    "  {'a', '%'}, {'a', '[a'}, {'a', '[]'}, {'a', '[^]'}, {'a', '(()'}, {'a', '%1'},\n"
    "  {'a', '(a)%2'}, {'a', ')'}, {'a', '%ba'}, {'a', '%f'}, {'a', '%fa'}, {'a', '(a%1)'},\n"
    "  {'a', string.rep('(', 33) .. string.rep(')', 33)}, {'a', '[a-'}, {'a', '%0'},\n"
    "  {string.rep('a', 300), string.rep('a?', 300) .. string.rep('a', 300)},\n"
    "}\n"
    "for _, c in ipairs(bad) do\n"
    "  try(string.find, c[1], c[2]) try(string.match, c[1], c[2])\n"
    "  try(gm, c[1], c[2]) try(string.gsub, c[1], c[2], 'x')\n"
    "end\n"
    "try(string.gsub, 'abc', '%w', '%2') try(string.gsub, 'abc', '(%w)', '%2')\n"
    "try(string.gsub, 'abc', '%w', '%x') try(string.gsub, 'abc', '%w', 'x%')\n"
    "try(string.gsub, 'abc', '%w', {a = {}}) try(string.gsub, 'abc', '(', 'x')\n"
    "try(string.gsub, 'alo', '.', function() return {} end)\n"
    "local s = string.rep('a', 16)\n"
    "try(string.find, s, string.rep('a?', 16) .. string.rep('a', 16))\n"
    "try(string.match, s, '^(a*)(a*)b$')\n"
    "return table.concat(R, '\\n')\n";

/* The result lines of cases_lua in a plain state, with the stock string library. */
static char *stock_results(void)
{
    lua_State *L = luaL_newstate();
    cr_assert_not_null(L);
    luaL_openlibs(L);
    cr_assert_eq(luaL_loadbuffer(L, cases_lua, strlen(cases_lua), "=cases"), LUA_OK, "%s",
                 lua_tostring(L, -1));
    cr_assert_eq(lua_pcall(L, 0, 1, 0), LUA_OK, "%s", lua_tostring(L, -1));
    char *r = strdup(lua_tostring(L, -1));
    lua_close(L);
    return r;
}

Test(sandbox, matcher_gives_the_stock_results)
{
    char *stock = stock_results();
    /* the sandbox runs the same text through load(), in a script's environment */
    FILE *f;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cases.lua", root);
    cr_assert_not_null(f = fopen(path, "w"));
    fputs("local CASES = [=====[\n", f);
    fputs(cases_lua, f);
    fputs("]=====]\nfunction map(rec)\n  return { out = { a = 1, b = load(CASES, '=cases')() } }\nend\n",
          f);
    cr_assert_eq(fclose(f), 0);
    tfs_lua_limits lim = {.instructions = 1ull << 30, .record_ms = 60000};
    tfs_lua *rt = new_rt(&lim);
    const char *ours = map_b(rt, "cases.lua");
    /* line by line, so a difference names its case */
    char *a = stock, *b = strdup(ours), *bb = b;
    int line = 1, lines = 0;
    while (*a || *b) {
        char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        if (ea)
            *ea = '\0';
        if (eb)
            *eb = '\0';
        cr_expect_str_eq(b, a, "result %d differs:\n ours:  %s\n stock: %s", line, b, a);
        lines++;
        a = ea ? ea + 1 : a + strlen(a);
        b = eb ? eb + 1 : b + strlen(b);
        line++;
    }
    cr_expect_gt(lines, 200, "only %d results", lines);
    cr_log_info("%d results of the matcher compared with the stock one", lines);
    free(bb);
    free(stock);
    tfs_lua_free(rt);
}
