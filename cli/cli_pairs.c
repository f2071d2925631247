/* cli/cli_pairs.c — what the daemon is configured with and can do: tfsync pairs (GET
 * /pairs for the mappings, GET /sync/status for the schedule and the last run), tfsync
 * plugins (GET /plugins: loaded and refused), and tfsync validate PAIR (POST
 * /sync/validate, a dry run of the pair's mappings on a sample, nothing written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_list(const json_t *arr, const char *sep)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        printf("%s%s", i ? sep : "", json_string_value(v) ? json_string_value(v) : "?");
}

int cli_cmd_pairs(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    if (argc > 0)
        cli_usage_error("unexpected argument \"%s\"", argv[0]);
    answer a = cli_request(c, "GET", "/pairs", NULL, 0);
    /* The schedule and last run come from the state store: without it, the pairs still. */
    answer st = cli_request(c, "GET", "/sync/status", NULL, CLI_ANY_ANSWER);
    const json_t *status = st.status == 200 ? json_object_get(st.json, "pairs") : NULL;
    if (c->json) {
        /* The pair as GET /pairs gives it, with its schedule and last run beside. */
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(a.json, "pairs"), i, p) {
            const json_t *s = json_object_get(status, cli_str_of(p, "name", ""));
            static const char *const extra[] = {"schedule", "next_run_at", "last_run",
                                                "running"};
            for (size_t k = 0; s && k < 4; k++)
                if (json_object_get(s, extra[k]))
                    json_object_set(p, extra[k], json_object_get(s, extra[k]));
        }
        cli_print_json(a.json);
        cli_answer_free(&a);
        cli_answer_free(&st);
        return 0;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(a.json, "pairs"), i, p) {
        const char *name = cli_str_of(p, "name", "?");
        const json_t *s = json_object_get(status, name);
        printf("%s: %s -> %s, batch %lld, conflicts %s%s\n", name, cli_str_of(p, "source", "?"),
               cli_str_of(p, "target", "?"), (long long)cli_int_of(p, "batch_size"),
               cli_str_of(p, "conflict_policy", "-"),
               json_is_true(json_object_get(s, "running")) ? ", running" : "");
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(p, "entities"), k, e) {
            printf("  %s -> ", cli_str_of(e, "source", "?"));
            print_list(json_object_get(e, "targets"), ", ");
            printf(" (%s)\n", cli_str_of(e, "script", "?"));
        }
        const json_t *sch = json_object_get(s, "schedule");
        if (json_is_object(sch))
            printf("  schedule: incremental every %s, next %s\n",
                   cli_str_of(sch, "incremental_every", "?"), cli_str_of(s, "next_run_at", "-"));
        else if (s)
            printf("  schedule: none (runs start through the API)\n");
        const json_t *lr = json_object_get(s, "last_run");
        if (json_is_object(lr))
            printf("  last run %lld: %s %s, by %s, finished %s\n",
                   (long long)cli_int_of(lr, "run_id"), cli_str_of(lr, "mode", "?"),
                   cli_str_of(lr, "state", "?"), cli_str_of(lr, "actor", "?"),
                   cli_str_of(lr, "finished_at", "-"));
        else if (s)
            printf("  last run: none\n");
        else
            printf("  schedule and last run: unknown (the state store did not answer)\n");
    }
    if (json_array_size(json_object_get(a.json, "pairs")) == 0)
        printf("no pairs configured\n");
    cli_answer_free(&a);
    cli_answer_free(&st);
    return 0;
}

int cli_cmd_plugins(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    if (argc > 1)
        cli_usage_error("unexpected argument \"%s\"", argv[1]);
    const char *only = argc == 1 ? argv[0] : NULL;
    answer a = cli_request(c, "GET", "/plugins", NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return 0;
    }
    size_t i, k;
    json_t *p, *v;
    int found = 0;
    json_array_foreach(json_object_get(a.json, "plugins"), i, p) {
        if (only && strcmp(only, cli_str_of(p, "name", "")) != 0)
            continue;
        found = 1;
        printf("%s %s (SDK %s): ", cli_str_of(p, "name", "?"), cli_str_of(p, "version", "?"),
               cli_str_of(p, "sdk", "?"));
        print_list(json_object_get(p, "capabilities"), ", ");
        putchar('\n');
        if (cli_str_of(p, "description", NULL))
            printf("  %s\n", cli_str_of(p, "description", ""));
        if (!only)
            continue;
        printf("  settings:\n");
        json_array_foreach(json_object_get(p, "config_keys"), k, v) {
            const char *dflt = cli_str_of(v, "default", NULL);
            printf("    %s (%s, %s%s): %s\n", cli_str_of(v, "name", "?"),
                   cli_str_of(v, "type", "?"), dflt ? "default " : "required",
                   dflt ? dflt : "", cli_str_of(v, "description", ""));
        }
    }
    if (only && !found) {
        cli_errf("no plugin \"%s\" is loaded; tfsync plugins lists those that are", only);
        cli_answer_free(&a);
        return EXIT_API;
    }
    json_array_foreach(json_object_get(a.json, "refused"), i, p)
        if (!only)
            printf("refused %s: %s\n", cli_str_of(p, "file", "?"), cli_str_of(p, "reason", "?"));
    cli_answer_free(&a);
    return 0;
}

/* One entity of a validation: its counts, findings and the records that would fail. */
static void print_validated(const json_t *e)
{
    printf("%s -> ", cli_str_of(e, "source", "?"));
    print_list(json_object_get(e, "targets"), ", ");
    printf(" (%s): %s", cli_str_of(e, "script", "?"),
           json_is_true(json_object_get(e, "ok")) ? "ok" : "NOT VALID");
    const char *what;
    json_t *n;
    int first = 1;
    json_object_foreach(json_object_get(e, "counts"), what, n) {
        printf("%s%s %lld", first ? ", " : " ", what, (long long)json_integer_value(n));
        first = 0;
    }
    putchar('\n');
    const json_t *se = json_object_get(e, "script_error");
    if (json_is_object(se))
        printf("  script error: %s\n", cli_str_of(se, "message", "?"));
    static const char *const errs[] = {"rules_error", "conflicts_error"};
    for (int k = 0; k < 2; k++) {
        const json_t *x = json_object_get(e, errs[k]);
        if (json_is_object(x))
            printf("  %s: %s%s%s\n", errs[k], cli_str_of(x, "message", "?"),
                   cli_str_of(x, "hint", NULL) ? "; " : "", cli_str_of(x, "hint", ""));
    }
    const json_t *schema = json_object_get(e, "schema");
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(schema, "unknown_fields"), i, f)
        printf("  unknown field %s.%s (%lld records)\n", cli_str_of(f, "entity", "?"),
               cli_str_of(f, "field", "?"), (long long)cli_int_of(f, "records"));
    json_array_foreach(json_object_get(schema, "required_never_set"), i, f)
        printf("  required field never set %s.%s\n", cli_str_of(f, "entity", "?"),
               cli_str_of(f, "field", "?"));
    json_array_foreach(json_object_get(schema, "required_sometimes_null"), i, f)
        printf("  required field null %s.%s (%lld records)\n", cli_str_of(f, "entity", "?"),
               cli_str_of(f, "field", "?"), (long long)cli_int_of(f, "records"));
    json_array_foreach(json_object_get(schema, "mismatches"), i, f)
        printf("  mismatch %s.%s (%lld records): %s\n", cli_str_of(f, "entity", "?"),
               cli_str_of(f, "field", "?"), (long long)cli_int_of(f, "records"),
               cli_str_of(f, "example", ""));
    json_array_foreach(json_object_get(e, "records"), i, f) {
        if (strcmp(cli_str_of(f, "status", ""), "would_fail") != 0)
            continue;
        const json_t *r = json_array_get(json_object_get(f, "reasons"), 0);
        printf("  record %s would fail in %s: %s\n", cli_str_of(f, "key", "?"),
               cli_str_of(f, "stage", "?"), json_string_value(r) ? json_string_value(r) : "?");
    }
}

int cli_cmd_validate(const cli *c, int argc, char **argv)
{
    const char *pair = NULL;
    long sample = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--sample") == 0) {
            if (i + 1 >= argc)
                cli_usage_error("%s needs a value", argv[i]);
            sample = cli_parse_id(argv[++i], "--sample \"%s\" is not a positive integer");
        } else if (argv[i][0] == '-') {
            cli_usage_error("unknown option \"%s\"", argv[i]);
        } else if (!pair) {
            pair = argv[i];
        } else {
            cli_usage_error("unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!pair)
        cli_usage_error("validate needs a pair%s", "");
    json_t *req = json_pack("{ss}", "pair", pair);
    if (sample)
        json_object_set_new(req, "sample", json_integer(sample));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    answer a = cli_request(c, "POST", "/sync/validate", body, 0);
    free(body);
    json_t *res = cli_job_result(c, &a); /* 202: the job's run, waited for */
    cli_answer_free(&a);
    int ok = json_is_true(json_object_get(res, "ok"));
    if (c->json) {
        cli_print_json(res);
    } else if (cli_str_of(res, "error", NULL)) {
        printf("validate %s failed: %s\n", pair, cli_str_of(res, "error", "?"));
    } else {
        printf("%s: %s, sample %lld%s\n", cli_str_of(res, "pair", pair),
               ok ? "valid" : "NOT VALID", (long long)cli_int_of(res, "sample"),
               json_is_true(json_object_get(res, "conflicts_checked")) ? ", conflicts checked"
                                                                        : "");
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(res, "entities"), i, e)
            print_validated(e);
    }
    json_decref(res);
    return ok ? 0 : EXIT_RUN_FAILED;
}
