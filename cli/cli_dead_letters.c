/* cli/cli_dead_letters.c — tfsync dead-letters: the records that failed; see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cli_cmd_dead_letters(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair", "pair", "--run", "run_id", "--limit",
                                        "limit", NULL};
    char path[2048] = "/dead-letters";
    cli_parse_filters(argc, argv, names, path, sizeof path);
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return 0;
    }
    size_t i, j;
    json_t *d, *r;
    json_array_foreach(json_object_get(a.json, "dead_letters"), i, d) {
        printf("%lld run %lld %s %s %s:", (long long)cli_int_of(d, "id"),
               (long long)cli_int_of(d, "run_id"), cli_str_of(d, "entity", "?"),
               cli_str_of(d, "source_key", "?"), cli_str_of(d, "stage", "?"));
        json_array_foreach(json_object_get(d, "reasons"), j, r)
            printf("%s%s", j ? "; " : " ", json_string_value(r) ? json_string_value(r) : "?");
        putchar('\n');
    }
    cli_answer_free(&a);
    return 0;
}
