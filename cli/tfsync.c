/* cli/tfsync.c — tfsync, the command-line client of tfsyncd over its HTTP API
 * (docs/openapi.yaml): the dispatcher (global options before or after the command,
 * --help, --version, the command table) and the commands on runs: sync, status, cancel,
 * confirm, health. The other commands have a file each (cli.h).
 *
 *   tfsync [--url URL] [--key KEY] [--json] COMMAND [ARGS] [OPTIONS]
 *
 * URL defaults to $TFSYNC_URL or http://127.0.0.1:8080, KEY to $TFSYNC_KEY; the key is
 * sent as "Authorization: Bearer <key>" and never printed (cli_errf redacts it). Exit
 * codes: 0 success (sync --wait: the run succeeded), 1 a run that failed or was cancelled
 * (sync --wait), a health that is not ok, a pair that is not valid, 2 an error answer of
 * the API (problem+json), 3 the daemon could not be reached, 4 a run that ended partial
 * (dead letters or parked conflicts), 5 a run held by a guard (confirm or cancel it), 6
 * --timeout ran out (the run goes on), 64 a usage error.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* label starts the first line ("", "last "), indent every line. */
static void print_run(const json_t *run, const char *indent, const char *label)
{
    printf("%s%srun %lld: %s %s, %s, by %s, %lld ms\n", indent, label,
           (long long)cli_int_of(run, "run_id"),
           cli_str_of(run, "pair", "?"), cli_str_of(run, "mode", "?"), cli_str_of(run, "state", "?"),
           cli_str_of(run, "actor", "?"), (long long)cli_int_of(run, "elapsed_ms"));
    const char *entity;
    json_t *n;
    json_object_foreach(json_object_get(run, "counts"), entity, n) {
        char line[256];
        cli_format_counts(n, line, sizeof line);
        printf("%s  %s: %s\n", indent, entity, line);
    }
    const char *error = json_string_value(json_object_get(run, "error"));
    if (error)
        printf("%s  error: %s\n", indent, error);
    const json_t *w = json_object_get(run, "waiting");
    if (json_is_object(w))
        printf("%s  waiting since %s: %s\n", indent, cli_str_of(w, "since", "?"),
               cli_str_of(w, "reason", "?"));
    const json_t *h = json_object_get(run, "held");
    if (json_is_object(h))
        printf("%s  held: %s\n", indent, cli_str_of(h, "reason", "?"));
    const char *fin = json_string_value(json_object_get(run, "finished_at"));
    printf("%s  created %s, finished %s\n", indent, cli_str_of(run, "created_at", "?"),
           fin ? fin : "-");
}

static int cmd_sync(const cli *c, int argc, char **argv)
{
    const char *mode = NULL, *pair = NULL;
    int wait = 0;
    double timeout = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = 1;
        } else if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc)
                cli_usage_error("%s needs a number of seconds", argv[i]);
            char *end;
            timeout = strtod(argv[++i], &end);
            if (!*argv[i] || *end || !(timeout > 0) || timeout > 31536000)
                cli_usage_error("--timeout \"%s\" is not a number of seconds above 0",
                                argv[i]);
            wait = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_usage_error("unknown option \"%s\"", argv[i]);
        } else if (!mode) {
            mode = argv[i];
        } else if (!pair) {
            pair = argv[i];
        } else {
            cli_usage_error("unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!mode || (strcmp(mode, "full") != 0 && strcmp(mode, "incremental") != 0))
        cli_usage_error("sync needs a mode, full or incremental%s", "");
    if (!pair)
        cli_usage_error("sync needs a pair%s", "");

    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    json_t *req = json_pack("{s:s}", "pair", pair);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    answer a = cli_request(c, "POST", path, body, 0);
    free(body);
    json_int_t id = cli_int_of(a.json, "run_id");
    if (c->json && !wait)
        cli_print_json(a.json);
    else if (!c->json)
        printf("%lld\n", (long long)id);
    cli_answer_free(&a);
    return wait ? cli_wait_run(c, id, timeout) : 0;
}

static void print_pair(const char *name, const json_t *p)
{
    printf("%s (%s -> %s)%s\n", name, cli_str_of(p, "source", "?"), cli_str_of(p, "target", "?"),
           json_is_true(json_object_get(p, "running")) ? " running" : "");
    const json_t *run = json_object_get(p, "last_run");
    if (json_is_object(run))
        print_run(run, "  ", "last ");
    else
        printf("  last run: none\n");
    const char *entity;
    json_t *e;
    json_object_foreach(json_object_get(p, "entities"), entity, e) {
        const json_t *cp = json_object_get(e, "checkpoint");
        if (json_is_object(cp))
            printf("  %s checkpoint: run %lld at %s\n", entity, (long long)cli_int_of(cp, "run_id"),
                   cli_str_of(cp, "updated_at", "?"));
        else
            printf("  %s checkpoint: none\n", entity);
        const json_t *lag = json_object_get(e, "lag");
        if (json_is_object(lag))
            printf("  %s lag: %lld pending, oldest %lld ms\n", entity,
                   (long long)cli_int_of(lag, "pending"), (long long)cli_int_of(lag, "oldest_age_ms"));
    }
    const json_t *sched = json_object_get(p, "schedule");
    if (json_is_object(sched))
        printf("  schedule: incremental every %s, next at %s\n",
               cli_str_of(sched, "incremental_every", "?"), cli_str_of(p, "next_run_at", "-"));
}

static int cmd_status(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    char path[64] = "/sync/status";
    if (argc > 1)
        cli_usage_error("unexpected argument \"%s\"", argv[1]);
    if (argc == 1)
        snprintf(path, sizeof path, "/sync/status/%ld",
                 cli_parse_id(argv[0], "run id \"%s\" is not a positive integer"));
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
    } else if (argc == 1) {
        print_run(a.json, "", "");
    } else {
        const char *name;
        json_t *p;
        json_object_foreach(json_object_get(a.json, "pairs"), name, p)
            print_pair(name, p);
    }
    cli_answer_free(&a);
    return 0;
}

static int cmd_cancel(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    if (argc != 1)
        cli_usage_error("cancel needs one run id%s", "");
    char path[96];
    snprintf(path, sizeof path, "/sync/runs/%ld/cancel",
             cli_parse_id(argv[0], "run id \"%s\" is not a positive integer"));
    answer a = cli_request(c, "POST", path, "", 0);
    if (c->json)
        cli_print_json(a.json);
    else if (strcmp(cli_str_of(a.json, "state", "?"), "cancelled") == 0)
        printf("run %lld: cancelled (it was held); nothing was deleted\n",
               (long long)cli_int_of(a.json, "run_id"));
    else
        printf("run %lld: cancel asked (it was %s); it ends cancelled at its next batch "
               "boundary\n",
               (long long)cli_int_of(a.json, "run_id"), cli_str_of(a.json, "state", "?"));
    cli_answer_free(&a);
    return 0;
}

static int cmd_confirm(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    if (argc != 2)
        cli_usage_error("confirm needs a run id and the number of deletions it is held "
                        "for%s", "");
    long id = cli_parse_id(argv[0], "run id \"%s\" is not a positive integer");
    char *end = NULL;
    long long n = strtoll(argv[1], &end, 10);
    if (!*argv[1] || *end || n < 0)
        cli_usage_error("the number of deletions \"%s\" is not a non-negative integer",
                        argv[1]);
    char path[96], body[64];
    snprintf(path, sizeof path, "/sync/runs/%ld/confirm", id);
    snprintf(body, sizeof body, "{\"deletes\": %lld}", n);
    answer a = cli_request(c, "POST", path, body, 0);
    if (c->json)
        cli_print_json(a.json);
    else
        printf("run %ld: %lld deletions confirmed; it goes on (tfsync status %ld)\n", id, n,
               id);
    cli_answer_free(&a);
    return 0;
}

static int cmd_health(const cli *c, int argc, char **argv)
{
    cli_no_options(argc, argv);
    if (argc > 0)
        cli_usage_error("unexpected argument \"%s\"", argv[0]);
    /* 503 with a Health body means the state store is down: still worth printing. */
    answer a = cli_request(c, "GET", "/health", NULL, 1);
    const char *status = cli_str_of(a.json, "status", "?");
    int ok = strcmp(status, "ok") == 0;
    if (c->json) {
        cli_print_json(a.json);
    } else {
        printf("%s, up %lld s\n", status, (long long)cli_int_of(a.json, "uptime_seconds"));
        const json_t *st = json_object_get(a.json, "state_store");
        const char *err = cli_str_of(st, "error", NULL);
        printf("  state store: %s%s%s\n", cli_str_of(st, "status", "?"), err ? ": " : "",
               err ? err : "");
        const char *name;
        json_t *s;
        json_object_foreach(json_object_get(a.json, "systems"), name, s) {
            err = cli_str_of(s, "error", NULL);
            printf("  %s (%s): %s, circuit %s%s%s\n", name, cli_str_of(s, "plugin", "?"),
                   cli_str_of(s, "status", "?"), cli_str_of(s, "circuit", "?"), err ? ": " : "",
                   err ? err : "");
        }
    }
    cli_answer_free(&a);
    return ok ? 0 : EXIT_RUN_FAILED;
}

/* Every command and the function that runs it. */
static const struct {
    const char *name;
    int (*run)(const cli *c, int argc, char **argv);
} commands[] = {
    {"sync", cmd_sync},
    {"run", cmd_sync},
    {"status", cmd_status},
    {"pairs", cli_cmd_pairs},
    {"plugins", cli_cmd_plugins},
    {"validate", cli_cmd_validate},
    {"audit", cli_cmd_audit},
    {"dead-letters", cli_cmd_dead_letters},
    {"conflicts", cli_cmd_conflicts},
    {"cancel", cmd_cancel},
    {"confirm", cmd_confirm},
    {"transform", cli_cmd_transform},
    {"health", cmd_health},
};

/* The value of --url or --key at argv[*i] ("--key K" or "--key=K"), or NULL when argv[*i]
 * is not that option. A value that looks like an option is refused without printing what
 * follows it: a misplaced key must not reach a message. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n])
        return NULL;
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
        cli_usage_error("%s needs a value", name);
    return argv[++*i];
}

int main(int argc, char **argv)
{
    cli c = {0};
    const char *env_url = getenv("TFSYNC_URL");
    const char *url = env_url && *env_url ? env_url : DEFAULT_URL;
    c.key = getenv("TFSYNC_KEY");
    if (c.key && !*c.key)
        c.key = NULL;

    /* The key is known before any message can be printed, from the environment or from
     * --key wherever it stands, so every message can leave it out. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && strncmp(argv[i + 1], "--", 2))
            cli_set_secret(argv[i + 1]);
        else if (strncmp(argv[i], "--key=", 6) == 0)
            cli_set_secret(argv[i] + 6);
    }
    if (c.key)
        cli_set_secret(c.key);

    /* The global options, before or after the command; the rest is the command's. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        cli_errf("out of memory");
        return EXIT_USAGE;
    }
    const char *cmd = NULL;
    int n = 0, help = 0, version = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = option_value(argc, argv, &i, "--url"))) {
            url = v;
        } else if ((v = option_value(argc, argv, &i, "--key"))) {
            c.key = *v ? v : NULL;
            cli_set_secret(c.key);
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help = 1;
        } else if (strcmp(argv[i], "--version") == 0 && !cmd) {
            version = 1;
        } else if (!cmd && argv[i][0] == '-') {
            cli_usage_error("unknown option \"%s\"", argv[i]);
        } else if (!cmd) {
            cmd = argv[i];
            cli_set_command(strcmp(cmd, "run") == 0 ? "sync" : cmd);
            size_t k = 0;
            while (k < sizeof commands / sizeof commands[0] && strcmp(cmd, commands[k].name))
                k++;
            if (k == sizeof commands / sizeof commands[0]) {
                cli_set_command(NULL);
                cli_usage_error("unknown command \"%s\"", cmd);
            }
        } else {
            rest[n++] = argv[i];
        }
    }
    int rc = -1;
    if (help && cmd) {
        rc = cli_help(cmd, stdout);
    } else if (help) {
        cli_usage(stdout);
        rc = 0;
    } else if (version) {
        cli_version();
        rc = 0;
    } else if (!cmd) {
        cli_usage_error("no command given%s", "");
    }
    if (rc >= 0) {
        free(rest);
        return rc;
    }

    char base[2048];
    snprintf(base, sizeof base, "%s", url);
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        base[--len] = '\0';
    c.url = base;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t k = 0; k < sizeof commands / sizeof commands[0] && rc < 0; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            rc = commands[k].run(&c, n, rest);
    free(rest);
    curl_global_cleanup();
    return rc;
}
