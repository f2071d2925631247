/* cli/cli_dead_letters.c — tfsync dead-letters list|replay|discard: the records that
 * failed, running them again through the current script and rules, and discarding one;
 * see cli.h. `tfsync dead-letters [filters]` is the list. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reasons on one line: the first line of each; a Lua traceback is left to --json. */
static void print_reasons(const json_t *d)
{
    size_t j;
    json_t *r;
    int n = 0;
    json_array_foreach(json_object_get(d, "reasons"), j, r) {
        const char *s = json_string_value(r) ? json_string_value(r) : "?";
        if (strncmp(s, "stack traceback:", 16) == 0)
            continue;
        printf("%s%.*s", n++ ? "; " : " ", (int)strcspn(s, "\n"), s);
    }
    putchar('\n');
}

static int list(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair",   "pair",   "--entity", "entity",
                                        "--run",    "run_id", "--stage",  "stage",
                                        "--status", "status", "--limit",  "limit",
                                        "--after",  "after_id", NULL};
    char path[2048] = "/dead-letters";
    cli_parse_filters(argc, argv, names, path, sizeof path);
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return 0;
    }
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(a.json, "dead_letters"), i, d) {
        printf("%lld run %lld %s %s %s %s attempts %lld%s%s:", (long long)cli_int_of(d, "id"),
               (long long)cli_int_of(d, "run_id"), cli_str_of(d, "entity", "?"),
               cli_str_of(d, "source_key", "?"), cli_str_of(d, "stage", "?"),
               cli_str_of(d, "status", "?"), (long long)cli_int_of(d, "attempts"),
               json_is_string(json_object_get(d, "script_version")) ? " script " : "",
               cli_str_of(d, "script_version", ""));
        print_reasons(d);
    }
    json_t *next = json_object_get(a.json, "next_after_id");
    if (json_is_integer(next))
        printf("more: --after %lld\n", (long long)json_integer_value(next));
    cli_answer_free(&a);
    return 0;
}

static int replay(const cli *c, int argc, char **argv)
{
    answer a;
    if (argc == 1 && argv[0][0] != '-') {
        char path[64];
        snprintf(path, sizeof path, "/dead-letters/%ld/replay",
                 cli_parse_id(argv[0], "dead letter id \"%s\" is not a positive integer"));
        a = cli_request(c, "POST", path, NULL, 0);
    } else {
        json_t *body = json_object();
        for (int i = 0; i < argc; i++) {
            static const char *const opts[][2] = {
                {"--pair", "pair"}, {"--entity", "entity"}, {"--run", "run_id"},
                {"--stage", "stage"}};
            const char *key = NULL;
            for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
                if (strcmp(argv[i], opts[k][0]) == 0)
                    key = opts[k][1];
            if (!key)
                cli_usage_error("unexpected argument \"%s\"", argv[i]);
            if (i + 1 >= argc)
                cli_usage_error("%s needs a value", argv[i]);
            const char *v = argv[++i];
            json_object_set_new(body, key,
                                strcmp(key, "run_id") == 0
                                    ? json_integer(cli_parse_id(v, "run id \"%s\" is not a "
                                                                   "positive integer"))
                                    : json_string(v));
        }
        if (!json_object_get(body, "pair"))
            cli_usage_error("%s: replay takes a dead letter id, or --pair P with filters",
                            "dead-letters");
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        a = cli_request(c, "POST", "/dead-letters/replay", text, 0);
        free(text);
    }
    json_t *res = cli_job_result(c, &a);
    cli_answer_free(&a);
    if (c->json) {
        cli_print_json(res);
    } else {
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(res, "keys"), i, k) {
            printf("%lld %s %s %s", (long long)cli_int_of(k, "id"), cli_str_of(k, "entity", "?"),
                   cli_str_of(k, "key", "?"), cli_str_of(k, "outcome", "?"));
            if (json_object_get(k, "reasons")) {
                printf(" (attempt %lld, %s):", (long long)cli_int_of(k, "attempts"),
                       cli_str_of(k, "stage", "?"));
                print_reasons(k);
            } else {
                putchar('\n');
            }
        }
        printf("run %lld %s: replayed %lld, failed again %lld\n",
               (long long)cli_int_of(res, "run_id"), cli_str_of(res, "state", "?"),
               (long long)cli_int_of(res, "replayed"),
               (long long)cli_int_of(res, "failed_again"));
        if (json_is_string(json_object_get(res, "error")))
            printf("error: %s\n", cli_str_of(res, "error", ""));
    }
    const char *state = cli_str_of(res, "state", "");
    int code = !strcmp(state, "failed") || !strcmp(state, "cancelled") ? EXIT_RUN_FAILED
               /* some failed again: the replay run ended partial */
               : cli_int_of(res, "failed_again") > 0 ? EXIT_RUN_PARTIAL
                                                     : 0;
    json_decref(res);
    return code;
}

static int discard(const cli *c, int argc, char **argv)
{
    if (argc != 1)
        cli_usage_error("%s: discard takes one dead letter id", "dead-letters");
    char path[64];
    snprintf(path, sizeof path, "/dead-letters/%ld",
             cli_parse_id(argv[0], "dead letter id \"%s\" is not a positive integer"));
    answer a = cli_request(c, "DELETE", path, NULL, 0);
    if (c->json)
        cli_print_json(a.json);
    else
        printf("%lld %s %s %s\n", (long long)cli_int_of(a.json, "id"),
               cli_str_of(a.json, "entity", "?"), cli_str_of(a.json, "source_key", "?"),
               cli_str_of(a.json, "status", "?"));
    cli_answer_free(&a);
    return 0;
}

int cli_cmd_dead_letters(const cli *c, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "list") == 0)
        return list(c, argc - 1, argv + 1);
    if (argc > 0 && strcmp(argv[0], "replay") == 0)
        return replay(c, argc - 1, argv + 1);
    if (argc > 0 && strcmp(argv[0], "discard") == 0)
        return discard(c, argc - 1, argv + 1);
    if (argc > 0 && argv[0][0] != '-')
        cli_usage_error("unknown dead-letters command \"%s\"; use list, replay or discard",
                        argv[0]);
    return list(c, argc, argv);
}
