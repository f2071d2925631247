/* tests/unit/script_scan_test.c — the fields tfsyncd --check reads from a script's text:
 * what the shipped scripts' shapes set, and what is not a field (comments, strings, a
 * function body inside a record, a nested table's keys, a computed key, a comparison). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "script_scan.h"

typedef struct seen {
    char text[2048]; /* "entity.field@line " for each field, in order */
} seen;

static void on_field(void *ctx, size_t entity, const char *field, size_t len, int line)
{
    static const char *const names[] = {"pardat", "asmt", "sales"};
    seen *s = ctx;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof s->text - used, "%s.%.*s@%d ", names[entity], (int)len,
             field, line);
}

static const char *scan(const char *lua, seen *s)
{
    static const char *const names[] = {"pardat", "asmt", "sales"};
    s->text[0] = '\0';
    tfs_script_scan(lua, strlen(lua), names, 3, on_field, s);
    return s->text;
}

Test(script_scan, a_record_in_a_local_of_the_entitys_name_and_in_place)
{
    seen s;
    cr_expect_str_eq(scan("function map(p)\n"
                          "  local pardat = {\n"
                          "    parid = p.id,\n"
                          "    taxyr = p.yr, cur = 'Y'\n"
                          "  }\n"
                          "  return { pardat = pardat, asmt = { parid = 1, valapr1 = 2 } }\n"
                          "end\n",
                          &s),
                     "pardat.parid@3 pardat.taxyr@4 pardat.cur@4 asmt.parid@6 asmt.valapr1@6 ");
}

Test(script_scan, fields_assigned_after_the_constructor)
{
    seen s;
    cr_expect_str_eq(scan("local pardat = {}\n"
                          "pardat.zoning = 'R1'\n"
                          "if pardat.zoning == 'R1' then x.pardat.luc = 1 end\n"
                          "pardat:method()\n",
                          &s),
                     "pardat.zoning@2 ");
}

Test(script_scan, comments_and_strings_are_not_code)
{
    seen s;
    cr_expect_str_eq(scan("-- pardat = { a = 1 }\n"
                          "--[[ pardat = { b = 1 }\n ]]\n"
                          "--[==[ pardat = { c = 1 } ]] ]==]\n"
                          "local t = \"pardat = { d = 1 }\" .. 'asmt = { e = 2 }'\n"
                          "local u = [[ pardat = { f = 1 } ]]\n"
                          "local pardat = { g = \"}\", h = '\\'', i = [=[ ]] ]=] }\n",
                          &s),
                     "pardat.g@7 pardat.h@7 pardat.i@7 ");
}

Test(script_scan, a_function_body_a_nested_table_and_a_computed_key_are_not_fields)
{
    seen s;
    cr_expect_str_eq(scan("local pardat = {\n"
                          "  f = function(a) local x = 1; y = 2 return { z = 3 } end,\n"
                          "  tags = { k = 1, [\"l\"] = 2 },\n"
                          "  [\"m\"] = 3,\n"
                          "  n = (a == b), o = g(q, r),\n"
                          "}\n",
                          &s),
                     "pardat.f@2 pardat.tags@3 pardat.n@5 pardat.o@5 ");
}

Test(script_scan, a_list_of_records)
{
    seen s;
    cr_expect_str_eq(scan("return { sales = { { parid = 1, price = 2 }, { parid = 3 } } }\n", &s),
                     "sales.parid@1 sales.price@1 sales.parid@1 ");
}

Test(script_scan, text_that_does_not_tokenise_ends_the_scan)
{
    seen s;
    cr_expect_str_eq(scan("local pardat = { a = 1 }\nlocal s = \"unfinished\nasmt.b = 1\n", &s),
                     "pardat.a@1 ");
    cr_expect_str_eq(scan("local pardat = { a = 1 --[[ never closed\n", &s), "pardat.a@1 ");
    cr_expect_str_eq(scan("", &s), "");
    /* Deeper than the stack: the scan stops instead of overflowing it. */
    char deep[2100];
    memset(deep, '{', 2000);
    strcpy(deep + 2000, " pardat = { a = 1 }");
    cr_expect_str_eq(scan(deep, &s), "");
}
