/* cli/cli_transform.c — tfsync transform test NAME FILE [--pair P] [--entity E]
 * [--source SCRIPT.lua]: runs a mapping script (the saved one, or with --source an unsaved
 * edit) over the source records of FILE through POST /transforms/{name}/test, and prints
 * what each record would be written as, its validation problems, or the Lua error with
 * its line. Nothing is written anywhere. FILE holds one JSON record (an object) or a list
 * of them. Exit code 0 when every record maps and validates, 1 when one does not.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The whole file as text (malloc'd), or exits 64 saying why. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        cli_usage_error("cannot open \"%s\"", path);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *more = realloc(buf, cap * 2);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        cli_errf("out of memory reading %s", path);
        exit(EXIT_USAGE);
    }
    buf[len] = '\0';
    return buf;
}

static int print_results(const json_t *ans)
{
    int bad = 0;
    const json_t *le = json_object_get(ans, "lua_error");
    if (json_is_object(le)) {
        printf("the script does not load: %s\n", cli_str_of(le, "message", "?"));
        return EXIT_RUN_FAILED;
    }
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(ans, "records"), i, r) {
        const char *status = cli_str_of(r, "status", "?");
        printf("record %zu (%s): %s\n", i + 1, cli_str_of(r, "key", "?"), status);
        if (strcmp(status, "ok") != 0)
            bad = 1;
        const json_t *e = json_object_get(r, "lua_error");
        if (json_is_object(e))
            printf("  lua error: %s\n", cli_str_of(e, "message", "?"));
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(r, "problems"), k, p)
            printf("  problem: %s\n", json_string_value(p) ? json_string_value(p) : "?");
        const json_t *out = json_object_get(r, "output");
        if (json_is_object(out) && json_object_size(out)) {
            char *text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);
            printf("  output: %s\n", text ? text : "?");
            free(text);
        }
    }
    return bad ? EXIT_RUN_FAILED : 0;
}

int cli_cmd_transform(const cli *c, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "test") != 0)
        cli_usage_error("transform takes a subcommand: test%s", "");
    const char *name = NULL, *file = NULL, *pair = NULL, *entity = NULL, *source = NULL;
    for (int i = 1; i < argc; i++) {
        const char **opt = strcmp(argv[i], "--pair") == 0     ? &pair
                           : strcmp(argv[i], "--entity") == 0 ? &entity
                           : strcmp(argv[i], "--source") == 0 ? &source
                                                              : NULL;
        if (opt) {
            if (i + 1 >= argc)
                cli_usage_error("%s needs a value", argv[i]);
            *opt = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_usage_error("unknown option \"%s\" for transform test", argv[i]);
        } else if (!name) {
            name = argv[i];
        } else if (!file) {
            file = argv[i];
        } else {
            cli_usage_error("unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!name || !file)
        cli_usage_error("transform test needs a script name and a file of records%s", "");
    char *text = slurp(file);
    json_error_t je;
    json_t *records = json_loads(text, 0, &je);
    free(text);
    if (!records) {
        cli_errf("%s is not JSON: %s at line %d, column %d", file, je.text, je.line,
                 je.column);
        return EXIT_USAGE;
    }
    if (json_is_object(records)) { /* one record */
        json_t *list = json_array();
        json_array_append_new(list, records);
        records = list;
    }
    json_t *body = json_pack("{so}", "records", records);
    if (pair)
        json_object_set_new(body, "pair", json_string(pair));
    if (entity)
        json_object_set_new(body, "entity", json_string(entity));
    if (source) {
        char *lua = slurp(source);
        json_object_set_new(body, "source", json_string(lua));
        free(lua);
    }
    char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[512] = "/transforms/";
    size_t at = strlen(path);
    for (const char *s = name; *s && at + 4 < sizeof path; s++) { /* the name, escaped */
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-')
            path[at++] = (char)ch;
        else
            at += (size_t)snprintf(path + at, sizeof path - at, "%%%02X", ch);
    }
    snprintf(path + at, sizeof path - at, "/test");
    answer a = cli_request(c, "POST", path, b, 0);
    free(b);
    int rc = 0;
    if (a.status == 202) {
        printf("still running as run %lld; see tfsync status %lld\n",
               (long long)cli_int_of(a.json, "run_id"), (long long)cli_int_of(a.json, "run_id"));
    } else if (c->json) {
        cli_print_json(a.json);
        rc = print_results(a.json) ? EXIT_RUN_FAILED : 0;
    } else {
        rc = print_results(a.json);
    }
    cli_answer_free(&a);
    return rc;
}
