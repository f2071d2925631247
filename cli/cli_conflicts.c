/* cli/cli_conflicts.c — tfsync conflicts: list, show and resolve the conflicts the manual
 * policy parks; see cli.h. A resolve is a job of the pair: it answers at once with the
 * result, or with the run to follow when the daemon did not finish it within jobs.wait. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_fields(const json_t *fields)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        char *s = json_dumps(json_object_get(f, "source"), JSON_ENCODE_ANY);
        char *t = json_dumps(json_object_get(f, "target"), JSON_ENCODE_ANY);
        char *b = json_dumps(json_object_get(f, "base"), JSON_ENCODE_ANY);
        printf("  %s.%s: source %s, target %s, base %s (%s)\n", cli_str_of(f, "entity", "?"),
               cli_str_of(f, "field", "?"), s ? s : "?", t ? t : "?", b ? b : "?",
               cli_str_of(f, "decision", "?"));
        free(s);
        free(t);
        free(b);
    }
}

static int list(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair",  "pair",     "--status", "status",
                                        "--entity", "entity",  "--limit",  "limit",
                                        "--after", "after_id", NULL};
    char path[2048] = "/sync/conflicts";
    cli_parse_filters(argc, argv, names, path, sizeof path);
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return 0;
    }
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(a.json, "conflicts"), i, k)
        printf("%lld %s %s %s %s %s, %zu field%s in dispute\n", (long long)cli_int_of(k, "id"),
               cli_str_of(k, "status", "?"), cli_str_of(k, "pair", "?"),
               cli_str_of(k, "entity", "?"), cli_str_of(k, "source_key", "?"),
               cli_str_of(k, "policy", "?"), json_array_size(json_object_get(k, "fields")),
               json_array_size(json_object_get(k, "fields")) == 1 ? "" : "s");
    json_int_t next = cli_int_of(a.json, "next_after_id");
    if (next > 0)
        printf("more: --after %lld\n", (long long)next);
    cli_answer_free(&a);
    return 0;
}

static int show(const cli *c, int argc, char **argv)
{
    if (argc != 1)
        cli_usage_error("conflicts show needs one conflict id%s", "");
    char path[128];
    snprintf(path, sizeof path, "/sync/conflicts/%ld", cli_parse_id(argv[0], "conflict id \"%s\""));
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
    } else {
        printf("conflict %lld: %s, pair %s, %s %s, policy %s, run %lld\n",
               (long long)cli_int_of(a.json, "id"), cli_str_of(a.json, "status", "?"),
               cli_str_of(a.json, "pair", "?"), cli_str_of(a.json, "entity", "?"),
               cli_str_of(a.json, "source_key", "?"), cli_str_of(a.json, "policy", "?"),
               (long long)cli_int_of(a.json, "run_id"));
        print_fields(json_object_get(a.json, "fields"));
        const char *versions[] = {"source", "target", "base"};
        for (int v = 0; v < 3; v++) {
            char *s = json_dumps(json_object_get(a.json, versions[v]),
                                 JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%s: %s\n", versions[v], s ? s : "null");
            free(s);
        }
    }
    cli_answer_free(&a);
    return 0;
}

/* Reads FILE as JSON: a {target entity: [records]} object. */
static json_t *record_file(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        cli_errf("could not read the record in \"%s\": %s (line %d)", path, je.text, je.line);
        exit(EXIT_USAGE);
    }
    return j;
}

static int resolve(const cli *c, int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "--record") == 0 && argc != 3) ||
        (strcmp(argv[1], "--record") != 0 && argc != 2))
        cli_usage_error("conflicts resolve needs ID source|target|--record FILE%s", "");
    long id = cli_parse_id(argv[0], "conflict id \"%s\"");
    json_t *body;
    if (strcmp(argv[1], "--record") == 0)
        body = json_pack("{so}", "record", record_file(argv[2]));
    else if (strcmp(argv[1], "source") == 0 || strcmp(argv[1], "target") == 0)
        body = json_pack("{ss}", "choose", argv[1]);
    else
        cli_usage_error("choose source or target, or give --record FILE, not \"%s\"", argv[1]);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[128];
    snprintf(path, sizeof path, "/sync/conflicts/%ld/resolve", id);
    answer a = cli_request(c, "POST", path, text, 0); /* a refusal exits 2 with its reasons */
    free(text);
    int rc = 0;
    if (c->json)
        cli_print_json(a.json);
    else if (a.status == 202)
        printf("conflict %ld: resolve run %lld is %s; follow it with tfsync status %lld\n", id,
               (long long)cli_int_of(a.json, "run_id"), cli_str_of(a.json, "state", "?"),
               (long long)cli_int_of(a.json, "run_id"));
    else
        printf("conflict %ld resolved: %s, %lld record%s written\n", id,
               cli_str_of(a.json, "resolution", "?"), (long long)cli_int_of(a.json, "written"),
               cli_int_of(a.json, "written") == 1 ? "" : "s");
    cli_answer_free(&a);
    return rc;
}

int cli_cmd_conflicts(const cli *c, int argc, char **argv)
{
    if (argc < 1)
        cli_usage_error("conflicts needs list, show or resolve%s", "");
    if (strcmp(argv[0], "list") == 0)
        return list(c, argc - 1, argv + 1);
    if (strcmp(argv[0], "show") == 0)
        return show(c, argc - 1, argv + 1);
    if (strcmp(argv[0], "resolve") == 0)
        return resolve(c, argc - 1, argv + 1);
    cli_usage_error("unknown conflicts command \"%s\"; use list, show or resolve", argv[0]);
}
