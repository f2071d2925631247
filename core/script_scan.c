/* core/script_scan.c — the fields a transform script sets on its target records, read from
 * its text; see script_scan.h. A small Lua tokeniser (names, strings, numbers, operators;
 * comments skipped) and a stack of the constructors and blocks it is inside, so a field is
 * only taken where a record's table constructor lists it, never from a function body
 * written inside one. */
#include "script_scan.h"

#include <ctype.h>
#include <string.h>

enum { T_EOF, T_NAME, T_STR, T_NUM, T_OP };

typedef struct token {
    int kind;
    int op; /* T_OP: the character, or 'E' for "==" (other two-character operators: '~') */
    const char *s;
    size_t len;
    int line;
} token;

typedef struct lexer {
    const char *p, *end;
    int line;
} lexer;

/* The level of a long bracket at p ("[[" 0, "[==[" 2), or -1 when p starts none. */
static int long_open(const char *p, const char *end)
{
    if (p >= end || *p != '[')
        return -1;
    int level = 0;
    const char *q = p + 1;
    while (q < end && *q == '=')
        level++, q++;
    return q < end && *q == '[' ? level : -1;
}

/* Skips a long bracket of level at x->p (its opening included); 0, or -1 if unfinished. */
static int skip_long(lexer *x, int level)
{
    x->p += level + 2;
    while (x->p < x->end) {
        if (*x->p == '\n')
            x->line++;
        if (*x->p == ']') {
            const char *q = x->p + 1;
            int n = 0;
            while (q < x->end && *q == '=')
                n++, q++;
            if (n == level && q < x->end && *q == ']') {
                x->p = q + 1;
                return 0;
            }
        }
        x->p++;
    }
    return -1;
}

/* Skips white space and comments. 0, or -1 at an unfinished long comment. */
static int skip_space(lexer *x)
{
    while (x->p < x->end) {
        char c = *x->p;
        if (c == '\n') {
            x->line++;
            x->p++;
        } else if (isspace((unsigned char)c)) {
            x->p++;
        } else if (c == '-' && x->p + 1 < x->end && x->p[1] == '-') {
            x->p += 2;
            int level = long_open(x->p, x->end);
            if (level >= 0) {
                if (skip_long(x, level) != 0)
                    return -1;
            } else {
                while (x->p < x->end && *x->p != '\n')
                    x->p++;
            }
        } else {
            break;
        }
    }
    return 0;
}

/* The next token; T_EOF at the end or at text that cannot be tokenised. */
static token next(lexer *x)
{
    token t = {T_EOF, 0, NULL, 0, 0};
    if (skip_space(x) != 0 || x->p >= x->end)
        return t;
    t.s = x->p;
    t.line = x->line;
    char c = *x->p;
    if (isalpha((unsigned char)c) || c == '_') {
        while (x->p < x->end && (isalnum((unsigned char)*x->p) || *x->p == '_'))
            x->p++;
        t.kind = T_NAME;
    } else if (isdigit((unsigned char)c) ||
               (c == '.' && x->p + 1 < x->end && isdigit((unsigned char)x->p[1]))) {
        /* Hex, exponents with signs, fractions: letters, digits, dots, and a sign after an
         * exponent letter. */
        while (x->p < x->end &&
               (isalnum((unsigned char)*x->p) || *x->p == '.' ||
                ((*x->p == '+' || *x->p == '-') &&
                 strchr("eEpP", x->p[-1]) != NULL)))
            x->p++;
        t.kind = T_NUM;
    } else if (c == '"' || c == '\'') {
        x->p++;
        while (x->p < x->end && *x->p != c) {
            if (*x->p == '\n')
                return (token){T_EOF, 0, NULL, 0, 0};
            if (*x->p == '\\' && x->p + 1 < x->end) {
                if (x->p[1] == '\n')
                    x->line++;
                x->p++;
            }
            x->p++;
        }
        if (x->p >= x->end)
            return (token){T_EOF, 0, NULL, 0, 0};
        x->p++;
        t.kind = T_STR;
    } else if (long_open(x->p, x->end) >= 0) {
        if (skip_long(x, long_open(x->p, x->end)) != 0)
            return (token){T_EOF, 0, NULL, 0, 0};
        t.kind = T_STR;
    } else {
        t.kind = T_OP;
        t.op = c;
        x->p++;
        if (c == '=' && x->p < x->end && *x->p == '=') {
            t.op = 'E';
            x->p++;
        } else if (strchr("~<>", c) && x->p < x->end && *x->p == '=') {
            t.op = '~';
            x->p++;
        }
    }
    t.len = (size_t)(x->p - t.s);
    return t;
}

static int is_name(const token *t, const char *word)
{
    return t->kind == T_NAME && t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

static int is_op(const token *t, int op)
{
    return t->kind == T_OP && t->op == op;
}

/* Which of names the token is, or -1. */
static int entity_of(const token *t, const char *const *names, size_t n)
{
    if (t->kind != T_NAME)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == t->len && memcmp(names[i], t->s, t->len) == 0)
            return (int)i;
    return -1;
}

/* What the scan is inside: a table constructor (owned by an entity, or -1), a parenthesis
 * or bracket, or a block (function, if, do, repeat) that ends with end or until. */
typedef struct frame {
    char kind; /* '{', '(', '[', 'B' */
    int owner;
} frame;

#define MAX_DEPTH 256

size_t tfs_script_scan(const char *text, size_t len, const char *const *names, size_t n,
                       tfs_script_field_fn fn, void *ctx)
{
    lexer x = {text, text + len, 1};
    frame stack[MAX_DEPTH];
    size_t depth = 0, found = 0;
    /* The last three tokens and the next one: a field is "<, or {> NAME =" inside an
     * owned constructor; an assignment "<not . or :> ENTITY . NAME =". */
    token p3 = {0}, p2 = {0}, p1 = {0}, t = next(&x);
    while (t.kind != T_EOF) {
        token ahead = next(&x);
        const frame *top = depth ? &stack[depth - 1] : NULL;
        if (t.kind == T_NAME && top && top->kind == '{' && top->owner >= 0 &&
            (is_op(&p1, '{') || is_op(&p1, ',') || is_op(&p1, ';')) && is_op(&ahead, '=')) {
            fn(ctx, (size_t)top->owner, t.s, t.len, t.line);
            found++;
        }
        if (t.kind == T_NAME && is_op(&p1, '.') && entity_of(&p2, names, n) >= 0 &&
            !is_op(&p3, '.') && !is_op(&p3, ':') && is_op(&ahead, '=')) {
            fn(ctx, (size_t)entity_of(&p2, names, n), t.s, t.len, t.line);
            found++;
        }
        if (t.kind == T_OP && (t.op == '{' || t.op == '(' || t.op == '[')) {
            int owner = -1;
            if (t.op == '{' && is_op(&p1, '='))
                owner = entity_of(&p2, names, n);
            else if (t.op == '{' && top && top->kind == '{' && top->owner >= 0 &&
                     (is_op(&p1, '{') || is_op(&p1, ',') || is_op(&p1, ';')))
                owner = top->owner; /* a list of records: sales = { {...}, {...} } */
            if (depth == MAX_DEPTH)
                break;
            stack[depth++] = (frame){(char)t.op, owner};
        } else if (t.kind == T_OP && (t.op == '}' || t.op == ')' || t.op == ']')) {
            if (depth)
                depth--;
        } else if (is_name(&t, "function") || is_name(&t, "if") || is_name(&t, "do") ||
                   is_name(&t, "repeat")) {
            if (depth == MAX_DEPTH)
                break;
            stack[depth++] = (frame){'B', -1};
        } else if (is_name(&t, "end") || is_name(&t, "until")) {
            if (depth)
                depth--;
        }
        p3 = p2;
        p2 = p1;
        p1 = t;
        t = ahead;
    }
    return found;
}
