/* cli/cli_audit.c — tfsync audit: the audit trail of applied changes through GET /audit,
 * its filters as the API's query parameters (--record for the record key: --key is the
 * API key, wherever it stands), in pages (--all follows next_after_id); and tfsync audit
 * verify, the hash chain through GET /audit/verify. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* tfsync audit verify [--pair P]: each pair's chain, and the first entry that does not
 * match; exit 1 when one does not. */
static int verify(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair", "pair", NULL};
    char path[2048] = "/audit/verify";
    cli_parse_filters(argc, argv, names, path, sizeof path);
    answer a = cli_request(c, "GET", path, NULL, 0);
    int ok = json_is_true(json_object_get(a.json, "ok"));
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return ok ? 0 : EXIT_RUN_FAILED;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(a.json, "pairs"), i, p) {
        const json_t *head = json_object_get(p, "head");
        const json_t *m = json_object_get(p, "mismatch");
        printf("%s: %s, %lld entries verified, head seq %lld %.16s, %lld unchained (older "
               "than the chain)\n",
               cli_str_of(p, "pair", "?"), m ? "DOES NOT VERIFY" : "ok",
               (long long)cli_int_of(p, "entries"), (long long)cli_int_of(head, "seq"),
               cli_str_of(head, "hash", "-"), (long long)cli_int_of(p, "unchained"));
        if (m && json_object_get(m, "id"))
            printf("  first mismatch: entry %lld (seq %lld, run %lld, %s key \"%s\", op %s): "
                   "%s: %s\n",
                   (long long)cli_int_of(m, "id"), (long long)cli_int_of(m, "seq"),
                   (long long)cli_int_of(m, "run_id"), cli_str_of(m, "entity", "?"),
                   cli_str_of(m, "source_key", "?"), cli_str_of(m, "op", "?"),
                   cli_str_of(m, "what", "?"), cli_str_of(m, "detail", ""));
        else if (m)
            printf("  first mismatch: %s: %s\n", cli_str_of(m, "what", "?"),
                   cli_str_of(m, "detail", ""));
    }
    if (json_array_size(json_object_get(a.json, "pairs")) == 0)
        printf("no audit chain yet\n");
    cli_answer_free(&a);
    return ok ? 0 : EXIT_RUN_FAILED;
}


static void print_entry(const json_t *e)
{
    printf("%lld run %lld %s %s", (long long)cli_int_of(e, "id"), (long long)cli_int_of(e, "run_id"),
           cli_str_of(e, "key", "?"), cli_str_of(e, "op", "?"));
    const char *target, *field;
    json_t *fields, *v;
    int any = 0;
    json_object_foreach(json_object_get(e, "changes"), target, fields) {
        json_object_foreach(fields, field, v) {
            printf("%s%s.%s", any ? "," : " ", target, field);
            any = 1;
        }
    }
    printf(" (%s %s, %s at %s)\n", cli_str_of(e, "pair", "?"), cli_str_of(e, "entity", "?"),
           cli_str_of(e, "actor", "?"), cli_str_of(e, "at", "?"));
}

int cli_cmd_audit(const cli *c, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "verify") == 0)
        return verify(c, argc - 1, argv + 1);
    static const char *const names[] = {"--pair",  "pair",  "--entity", "entity",
                                        "--record", "key",  "--run",    "run_id",
                                        "--since", "since", "--until",  "until",
                                        "--limit", "limit", "--after-id", "after_id",
                                        NULL};
    /* --all is a flag of the client's; the rest are the API's filters. */
    int all = 0, n = 0;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        cli_errf("out of memory");
        return EXIT_USAGE;
    }
    long long after = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "--after-id") == 0) {
            if (i + 1 >= argc)
                cli_usage_error("%s needs a value", argv[i]);
            char *end;
            after = strtoll(argv[++i], &end, 10);
            if (!*argv[i] || *end || after < 0)
                cli_usage_error("--after-id \"%s\" is not a non-negative integer (a page's "
                                "next id)", argv[i]);
        } else {
            rest[n++] = argv[i];
            if (i + 1 < argc && strcmp(argv[i], "--all") != 0)
                rest[n++] = argv[++i];
        }
    }
    char base[2048] = "/audit";
    cli_parse_filters(n, rest, names, base, sizeof base);
    free(rest);
    json_t *entries = c->json ? json_array() : NULL;
    json_int_t next = 0;
    for (;;) {
        char path[2100];
        snprintf(path, sizeof path, "%s", base);
        if (after > 0) {
            char v[32];
            snprintf(v, sizeof v, "%lld", after);
            cli_add_query(path, sizeof path, "after_id", v);
        }
        answer a = cli_request(c, "GET", path, NULL, 0);
        if (c->json && !all) {
            cli_print_json(a.json);
            cli_answer_free(&a);
            return 0;
        }
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(a.json, "entries"), i, e) {
            if (entries)
                json_array_append(entries, e);
            else
                print_entry(e);
        }
        next = cli_int_of(a.json, "next_after_id");
        cli_answer_free(&a);
        if (!all || next <= 0)
            break;
        after = (long long)next;
    }
    if (entries) {
        json_t *out = json_pack("{so}", "entries", entries);
        cli_print_json(out);
        json_decref(out);
    } else if (next > 0) {
        cli_errf("more entries follow: --after-id %lld reads on (or --all)", (long long)next);
    }
    return 0;
}
