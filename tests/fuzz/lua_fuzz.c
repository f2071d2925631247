/* tests/fuzz/lua_fuzz.c — records across the Lua boundary (core/lua_convert.c, lua_json.c,
 * lua_decimal.c, record.c): a source record built of the input's lines (fuzz_common.h)
 * goes through two fixed scripts of a scratch transform directory.
 *
 * copy.lua returns the record's fields unchanged. Invariants: a JSON or geometry field's
 * text is taken exactly when jansson's decoder takes it (lua_json.c's promise, up to its
 * nesting limit); when it is, every field comes back equal under its declared type
 * (canonical encoding), a decimal with its source text, JSON as the same JSON (objects,
 * arrays, an empty array kept an array, numbers by value).
 * calc.lua runs the tf helpers on the same values and computes a decimal: it may fail,
 * with a message naming the script, but never crashes; a computed decimal's text reads
 * back as the same double (lua_decimal.c's shortest round-trip text).
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "canonical.h"
#include "fuzz_common.h"
#include "lua_transform.h"

static const tfs_sdk_field fields[] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY, 0, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 20, 6},
    {"name", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"day", TFS_SDK_DATE, 0, 0, 0, 0},
    {"at", TFS_SDK_TIMESTAMP, 0, 0, 0, 0},
    {"doc", TFS_SDK_JSON, 0, 0, 0, 0},
    {"blob", TFS_SDK_BYTES, 0, 0, 0, 0},
    {"ratio", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"flag", TFS_SDK_BOOL, 0, 0, 0, 0},
    {"shape", TFS_SDK_GEOMETRY, 0, 0, 0, 0},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])
static const tfs_sdk_entity src = {"src", fields, N_FIELDS};
static const tfs_sdk_entity copy = {"copy", fields, N_FIELDS};
static const tfs_sdk_field calc_fields[] = {
    {"s", TFS_SDK_TEXT, 0, 0, 0, 0},      {"n", TFS_SDK_FLOAT64, 0, 0, 0, 0},
    {"d", TFS_SDK_DATE, 0, 0, 0, 0},      {"x", TFS_SDK_DECIMAL, 0, 0, 38, 10},
    {"j", TFS_SDK_JSON, 0, 0, 0, 0},      {"suffix", TFS_SDK_TEXT, 0, 0, 0, 0},
    {"arr", TFS_SDK_BOOL, 0, 0, 0, 0},
};
static const tfs_sdk_entity calc = {"calc", calc_fields, 7};
static const tfs_sdk_entity *const copy_targets[] = {&copy};
static const tfs_sdk_entity *const calc_targets[] = {&calc};

static const char copy_lua[] =
    "function map(rec)\n"
    "  return { copy = { id = rec.id, amount = rec.amount, name = rec.name, day = rec.day,\n"
    "    at = rec.at, doc = rec.doc, blob = rec.blob, ratio = rec.ratio, flag = rec.flag,\n"
    "    shape = rec.shape } }\n"
    "end\n";
static const char calc_lua[] =
    "function map(rec)\n"
    "  local t = tf.str(rec.name)\n"
    "  local ok, d = pcall(tf.date, rec.day)\n"
    "  local x = tf.null\n"
    "  if math.type(rec.amount) == 'float' then x = rec.amount * 3 end\n"
    "  return { calc = {\n"
    "    s = tf.str(rec.amount) .. '|' .. tf.trim(t) .. '|' .. tf.upper(t) .. tf.str(rec.flag),\n"
    "    n = tf.num(rec.name, -1) + tf.sqft_to_acres(tf.num(rec.ratio, 0)),\n"
    "    d = ok and d or tf.null,\n"
    "    x = x,\n"
    "    j = { a = rec.amount, list = tf.array(), doc = rec.doc, n = tf.coalesce(rec.blob, 1) },\n"
    "    suffix = tf.address_suffix(t),\n"
    "    arr = tf.isarray(rec.doc) } }\n"
    "end\n"
    "function validate(rec, out)\n"
    "  if #tf.str(rec.name) > 100 then return { 'name too long' } end\n"
    "end\n";

static tfs_lua *rt;
static tfs_arena *arena;
static tfs_buf a = TFS_BUF_INIT, b = TFS_BUF_INIT;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = fuzz_scratch_dir("lua");
    tfs_error err = {0};
    if (fuzz_write_file(dir, "copy.lua", copy_lua, strlen(copy_lua)) ||
        fuzz_write_file(dir, "calc.lua", calc_lua, strlen(calc_lua)) ||
        tfs_lua_new(dir, NULL, 2026, &rt, &err) != 0) {
        fprintf(stderr, "lua_fuzz: %s\n", err.message);
        abort();
    }
    arena = tfs_arena_new();
    return 0;
}

static int depth(const json_t *j)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *v;
    if (json_is_array(j))
        json_array_foreach(j, i, v) d = d > depth(v) ? d : depth(v);
    else if (json_is_object(j))
        json_object_foreach((json_t *)j, k, v) d = d > depth(v) ? d : depth(v);
    else
        return 0;
    return d + 1;
}

/* Whether every JSON text of r reads as jansson reads it, within the nesting limit: 1 all
 * do, 0 one does not, -1 one nests too deep to compare. */
static int jansson_takes(const tfs_record *r)
{
    int ok = 1;
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *v = &r->values[i];
        if (!tfs_type_is_json(v->type))
            continue;
        /* jansson's json_loadb takes a NUL after a value ("123\0") as the end of the text;
         * lua_json.c refuses it: such text is not compared. */
        if (memchr(v->u.s, '\0', v->len))
            return -1;
        json_t *j = json_loadb(v->u.s, v->len, JSON_DECODE_ANY, NULL);
        if (!j)
            ok = 0;
        else if (depth(j) > 60)
            ok = ok ? -1 : 0;
        json_decref(j);
        if (!ok)
            return 0;
    }
    return ok;
}

static bool plain(const tfs_value *v)
{
    size_t i = v->len && (v->u.s[0] == '-' || v->u.s[0] == '+'), digits = 0;
    for (; i < v->len && v->u.s[i] >= '0' && v->u.s[i] <= '9'; i++)
        digits++;
    if (i < v->len && v->u.s[i] == '.')
        for (i++; i < v->len && v->u.s[i] >= '0' && v->u.s[i] <= '9'; i++)
            digits++;
    return i == v->len && digits > 0;
}

/* Whether another decimal of the record has another value but the same double: which of
 * the two a script copied cannot be known, and lua_decimal.c gives the shortest text
 * (lua_transform.h), so neither text is promised. */
static bool shares_double(const tfs_record *r, size_t f)
{
    double d = strtod(r->values[f].u.s, NULL);
    for (size_t i = 0; i < r->n; i++) {
        const tfs_value *v = &r->values[i];
        if (i != f && v->type == TFS_SDK_DECIMAL && strtod(v->u.s, NULL) == d &&
            (v->len != r->values[f].len || memcmp(v->u.s, r->values[f].u.s, v->len)))
            return true;
    }
    return false;
}

/* A decimal written with digits on both sides of its point ("-12.50"): the form whose text
 * a copy must keep (others, "0." or "12", may come back as the same number). */
static bool fractional(const tfs_value *v)
{
    size_t i = v->len && v->u.s[0] == '-', int_digits = 0, frac_digits = 0;
    for (; i < v->len && v->u.s[i] >= '0' && v->u.s[i] <= '9'; i++)
        int_digits++;
    if (i == v->len || v->u.s[i++] != '.')
        return false;
    for (; i < v->len && v->u.s[i] >= '0' && v->u.s[i] <= '9'; i++)
        frac_digits++;
    return i == v->len && int_digits && frac_digits;
}

/* What a value that left Lua stands for as JSON: a JSON scalar comes out of the script
 * typed loosely (a boolean, a number, a string), a table as JSON text. */
static json_t *as_json(const tfs_value *y)
{
    switch (y->type) {
    case TFS_SDK_NULL: return json_null();
    case TFS_SDK_BOOL: return json_boolean(y->u.b);
    case TFS_SDK_INT64: return json_integer(y->u.i);
    case TFS_SDK_FLOAT64: return json_real(y->u.f);
    case TFS_SDK_TEXT: return json_stringn(y->u.s, y->len);
    default: return json_loadb(y->u.s, y->len, JSON_DECODE_ANY, NULL);
    }
}

static void check_copy(const tfs_record *in, const tfs_record *out)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        const tfs_value *x = &in->values[i], *y = &out->values[i];
        const tfs_sdk_field *f = &fields[i];
        /* A value of another type than declared is converted as lua_transform.h says (a
         * float into a text field becomes its text): only well-typed values must come
         * back equal. */
        if (x->type != TFS_SDK_NULL && x->type != f->type)
            continue;
        /* A DECIMAL's text is sign, digits, point, digits; other text ("1e5") is a number
         * Lua reads as it can, not a decimal the promise is about. */
        if (x->type == TFS_SDK_DECIMAL && (!plain(x) || shares_double(in, i)))
            continue;
        if (tfs_type_is_json(x->type)) {
            json_t *p = json_loadb(x->u.s, x->len, JSON_DECODE_ANY, NULL);
            json_t *q = as_json(y);
            FUZZ_CHECK(p && q && fuzz_json_same(p, q), "%s: %.*s came back as %.*s", f->name,
                       (int)x->len, x->u.s, (int)y->len, y->u.s ? y->u.s : "");
            json_decref(p);
            json_decref(q);
            continue;
        }
        if (x->type == TFS_SDK_DECIMAL && y->type == TFS_SDK_DECIMAL && fractional(x))
            FUZZ_CHECK(x->len == y->len && memcmp(x->u.s, y->u.s, x->len) == 0,
                       "decimal %s came back as %s", x->u.s, y->u.s);
        tfs_buf_reset(&a);
        tfs_buf_reset(&b);
        tfs_canonical_value(&a, x, f);
        tfs_canonical_value(&b, y, f);
        FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                   "%s (%s) came back as %s: %s against %s", f->name, tfs_type_name(x->type),
                   tfs_type_name(y->type), tfs_buf_str(&a), tfs_buf_str(&b));
    }
}

static void check_calc(const tfs_record *in, const tfs_lua_output *out)
{
    FUZZ_CHECK(out->n <= 1, "%zu calc records", out->n);
    const tfs_value *amount = &in->values[1];
    if (out->n == 0 || amount->type != TFS_SDK_DECIMAL)
        return;
    const tfs_value *x = &out->recs[0]->values[3];
    double want = strtod(amount->u.s, NULL) * 3;
    if (x->type == TFS_SDK_DECIMAL || x->type == TFS_SDK_TEXT) {
        double got = strtod(x->u.s, NULL);
        FUZZ_CHECK(got == want || (isnan(got) && isnan(want)),
                   "%s * 3 came back as %s, which reads as %.17g, not %.17g", amount->u.s,
                   x->u.s, got, want);
    } else if (x->type == TFS_SDK_FLOAT64) {
        FUZZ_CHECK(!isfinite(want) && (x->u.f == want || (isnan(want) && isnan(x->u.f))),
                   "a finite float into a decimal field stays a float");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    tfs_record *r = fuzz_record_from_lines(arena, &src, data, size);
    FUZZ_CHECK(r, "out of memory");
    tfs_lua_output out = {0};
    tfs_error err = {0};
    int rc = tfs_lua_map(rt, "copy.lua", r, "k", copy_targets, 1, arena, &out, &err);
    int takes = jansson_takes(r);
    if (rc == 0) {
        FUZZ_CHECK(takes != 0, "copy.lua took JSON that jansson refuses");
        FUZZ_CHECK(out.n == 1, "%zu copies", out.n);
        check_copy(r, out.recs[0]);
    } else {
        FUZZ_CHECK(err.message[0], "a failed map without a message");
        FUZZ_CHECK(takes != 1 || rc == TFS_ELIMIT || rc == TFS_ENOMEM,
                   "copy.lua failed on a record jansson reads: %s", err.message);
    }
    memset(&err, 0, sizeof err);
    memset(&out, 0, sizeof out);
    rc = tfs_lua_map(rt, "calc.lua", r, "k", calc_targets, 1, arena, &out, &err);
    if (rc == 0)
        check_calc(r, &out);
    else
        FUZZ_CHECK(strstr(err.message, "calc.lua") || strstr(err.message, "src") ||
                       strstr(err.message, "(record k)"),
                   "an error that names neither script nor record: %s", err.message);
    tfs_arena_reset(arena);
    return 0;
}
