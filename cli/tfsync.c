/* cli/tfsync.c — tfsync, the command-line client of tfsyncd: starts and watches runs,
 * reads the status, the audit trail and the dead letters over the same HTTP API
 * (docs/openapi.yaml).
 *
 *   tfsync [--url URL] [--key KEY] [--json] COMMAND ...
 *
 * URL defaults to $TFSYNC_URL or http://127.0.0.1:8080, KEY to $TFSYNC_KEY; the key is
 * sent as "Authorization: Bearer <key>" and never printed. Exit codes: 0 success (sync
 * --wait: the run succeeded), 1 a run that failed or was cancelled (sync --wait) or a
 * health that is not ok, 2 an error answer of the API (problem+json), 3 the daemon could
 * not be reached, 4 a run that ended partial (dead letters or parked conflicts), 5 a run
 * held by a guard (confirm or cancel it), 64 a usage error.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

void cli_usage(FILE *to)
{
    fputs("usage: tfsync [--url URL] [--key KEY] [--json] COMMAND ...\n"
          "\n"
          "commands:\n"
          "  sync full|incremental PAIR [--wait]   start a run; --wait follows it to its end\n"
          "  status [RUN_ID]                       every pair's last run, or one run\n"
          "  audit [--pair P] [--key K] [--run N] [--limit N]\n"
          "                                        applied changes, oldest first\n"
          "  audit verify [--pair P]               walk the audit trail's hash chain; names\n"
          "                                        the first entry that does not match and\n"
          "                                        exits 1 then\n"
          "  dead-letters [list] [--pair P] [--entity E] [--run N] [--stage S]\n"
          "               [--status S] [--limit N] [--after ID]\n"
          "                                        records that failed (open ones unless\n"
          "                                        --status), oldest first\n"
          "  dead-letters replay ID | --pair P [--entity E] [--run N] [--stage S]\n"
          "                                        run them again with the current script\n"
          "                                        and rules; exits 4 when some fail again\n"
          "  dead-letters discard ID               drop one (role admin), audited\n"
          "  conflicts list [--pair P] [--status S] [--entity E] [--after ID]\n"
          "                                        conflicts, oldest first\n"
          "  conflicts show ID                     its source, target and base versions\n"
          "  conflicts resolve ID source|target|--record FILE\n"
          "                                        decide an open conflict\n"
          "  cancel RUN_ID                         end a queued, waiting or running run as\n"
          "                                        cancelled at its next batch boundary (a\n"
          "                                        held one at once, nothing deleted)\n"
          "  confirm RUN_ID N                      let a held run apply its N deletions\n"
          "  transform test NAME FILE [--pair P] [--entity E] [--source SCRIPT.lua]\n"
          "                                        run a script (or an unsaved edit) over\n"
          "                                        the JSON records of FILE, nothing written\n"
          "  health                                the daemon, its state store and systems\n"
          "\n"
          "URL defaults to $TFSYNC_URL or " DEFAULT_URL ", KEY to $TFSYNC_KEY.\n"
          "exit codes: 0 ok (sync --wait: succeeded), 1 run failed or cancelled, not\n"
          "healthy, or an audit chain that does not verify, 2 API error, 3 unreachable,\n"
          "4 run partial (dead letters or parked conflicts), 5 run held by a guard (tfsync\n"
          "confirm or cancel), 64 usage\n",
          to);
}

/* "read 10 written 8 unchanged 1 skipped 1 conflicts 0 failed 0 deleted 0" for one
 * entity's counts (the terms of read, in the rule's order), then what is apart from the
 * records read: the sweep's deletions, deletions set aside for the guard, drift. */
static void format_counts(const json_t *n, char *out, size_t size)
{
    int w = snprintf(out, size,
                     "read %lld written %lld unchanged %lld skipped %lld conflicts %lld "
                     "failed %lld deleted %lld",
                     (long long)cli_int_of(n, "read"), (long long)cli_int_of(n, "written"),
                     (long long)cli_int_of(n, "unchanged"), (long long)cli_int_of(n, "skipped"),
                     (long long)cli_int_of(n, "conflicts"), (long long)cli_int_of(n, "failed"),
                     (long long)cli_int_of(n, "deleted"));
    static const char *const extra[] = {"set_aside", "swept", "drift"};
    for (size_t i = 0; i < 3 && w > 0 && (size_t)w < size; i++) {
        json_int_t v = cli_int_of(n, extra[i]);
        if (v)
            w += snprintf(out + w, size - (size_t)w, " %s %lld", extra[i], (long long)v);
    }
    /* A full run's estimate of the entity (SDK 1.3), for how far the run has come. */
    const json_t *est = json_object_get(n, "estimated_total");
    if (json_is_integer(est) && w > 0 && (size_t)w < size)
        snprintf(out + w, size - (size_t)w, " estimated_total %lld",
                 (long long)json_integer_value(est));
}

/* Every entity's counts on one line: "property: read ... ; other: ...". */
static void format_all_counts(const json_t *counts, char *out, size_t size)
{
    const char *entity;
    json_t *n;
    size_t len = 0;
    out[0] = '\0';
    json_object_foreach((json_t *)counts, entity, n) {
        char one[256];
        format_counts(n, one, sizeof one);
        int w = snprintf(out + len, size - len, "%s%s: %s", len ? "; " : "", entity, one);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
    if (!len)
        snprintf(out, size, "no records yet");
}

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
        format_counts(n, line, sizeof line);
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

/* sync --wait's exit code for the state a run stopped in. */
static int run_exit_code(const char *state)
{
    if (strcmp(state, "succeeded") == 0)
        return 0;
    if (strcmp(state, "partial") == 0)
        return EXIT_RUN_PARTIAL;
    if (strcmp(state, "held") == 0)
        return EXIT_RUN_HELD;
    return EXIT_RUN_FAILED;
}

static void print_end(const json_t *run, json_int_t id, const char *state)
{
    if (strcmp(state, "succeeded") == 0) {
        printf("run %lld succeeded in %lld ms\n", (long long)id,
               (long long)cli_int_of(run, "elapsed_ms"));
    } else if (strcmp(state, "partial") == 0) {
        printf("run %lld partial: done, with dead letters or parked conflicts (tfsync "
               "dead-letters --run %lld)\n",
               (long long)id, (long long)id);
    } else if (strcmp(state, "held") == 0) {
        const json_t *h = json_object_get(run, "held");
        printf("run %lld held: %s\n", (long long)id, cli_str_of(h, "reason", "?"));
    } else if (strcmp(state, "cancelled") == 0) {
        printf("run %lld cancelled\n", (long long)id);
    } else {
        printf("run %lld failed: %s\n", (long long)id, cli_str_of(run, "error", "?"));
    }
}

static int cmd_sync(const cli *c, int argc, char **argv)
{
    const char *mode = NULL, *pair = NULL;
    int wait = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0)
            wait = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            cli_usage_error("unknown option \"%s\" for sync", argv[i]);
        else if (!mode)
            mode = argv[i];
        else if (!pair)
            pair = argv[i];
        else
            cli_usage_error("unexpected argument \"%s\"", argv[i]);
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
    if (!wait)
        return 0;

    fflush(stdout);
    char last[4096] = "";
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    for (;;) {
        /* An error answer while the state store is down (503) is waited out too. */
        answer s = cli_request(c, "GET", path, NULL, 1);
        const char *state = cli_str_of(s.json, "state", NULL);
        if (!state) {
            cli_answer_free(&s);
            cli_sleep_ms(POLL_MS);
            continue;
        }
        /* Held is where --wait stops too: the run goes on only when someone confirms. */
        int done = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0 || strcmp(state, "partial") == 0 ||
                   strcmp(state, "held") == 0;
        if (!c->json) {
            char counts[3800], line[4096];
            format_all_counts(json_object_get(s.json, "counts"), counts, sizeof counts);
            const json_t *w = json_object_get(s.json, "waiting");
            if (json_is_object(w))
                snprintf(line, sizeof line, "%s (%s): %s", state, cli_str_of(w, "reason", "?"),
                         counts);
            else
                snprintf(line, sizeof line, "%s: %s", state, counts);
            if (strcmp(line, last) != 0) {
                printf("run %lld %s\n", (long long)id, line);
                fflush(stdout);
                snprintf(last, sizeof last, "%s", line);
            }
        }
        if (done) {
            int code = run_exit_code(state);
            if (c->json)
                cli_print_json(s.json);
            else
                print_end(s.json, id, state);
            cli_answer_free(&s);
            return code;
        }
        cli_answer_free(&s);
        cli_sleep_ms(POLL_MS);
    }
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

/* Appends "&name=<value URL-encoded>" (or "?" first) to path. */
/* tfsync audit verify [--pair P]: each pair's chain, and the first entry that does not
 * match; exit 1 when one does not. */
static int cmd_audit_verify(const cli *c, int argc, char **argv)
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

static int cmd_audit(const cli *c, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "verify") == 0)
        return cmd_audit_verify(c, argc - 1, argv + 1);
    static const char *const names[] = {"--pair", "pair", "--key", "key", "--run", "run_id",
                                        "--limit", "limit", NULL};
    char path[2048] = "/audit";
    cli_parse_filters(argc, argv, names, path, sizeof path);
    answer a = cli_request(c, "GET", path, NULL, 0);
    if (c->json) {
        cli_print_json(a.json);
        cli_answer_free(&a);
        return 0;
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a.json, "entries"), i, e) {
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
        putchar('\n');
    }
    json_int_t next = cli_int_of(a.json, "next_after_id");
    if (next)
        fprintf(stderr, "tfsync: more entries follow id %lld (the API's after_id)\n",
                (long long)next);
    cli_answer_free(&a);
    return 0;
}

static int cmd_cancel(const cli *c, int argc, char **argv)
{
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
    {"status", cmd_status},
    {"audit", cmd_audit},
    {"dead-letters", cli_cmd_dead_letters},
    {"conflicts", cli_cmd_conflicts},
    {"cancel", cmd_cancel},
    {"confirm", cmd_confirm},
    {"transform", cli_cmd_transform},
    {"health", cmd_health},
};

int main(int argc, char **argv)
{
    cli c = {0};
    const char *env_url = getenv("TFSYNC_URL");
    const char *url = env_url && *env_url ? env_url : DEFAULT_URL;
    c.key = getenv("TFSYNC_KEY");
    if (c.key && !*c.key)
        c.key = NULL;

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--url") == 0 || strcmp(argv[i], "--key") == 0) {
            if (i + 1 >= argc)
                cli_usage_error("%s needs a value", argv[i]);
            if (argv[i][2] == 'u')
                url = argv[++i];
            else
                c.key = argv[++i];
        } else if (strncmp(argv[i], "--url=", 6) == 0) {
            url = argv[i] + 6;
        } else if (strncmp(argv[i], "--key=", 6) == 0) {
            c.key = argv[i] + 6;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_usage(stdout);
            return 0;
        } else {
            cli_usage_error("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc)
        cli_usage_error("no command given%s", "");
    const char *cmd = argv[i++];

    /* --json is also accepted after the command. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        fprintf(stderr, "tfsync: out of memory\n");
        return EXIT_USAGE;
    }
    int n = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else
            rest[n++] = argv[i];
    }

    char base[2048];
    snprintf(base, sizeof base, "%s", url);
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        base[--len] = '\0';
    c.url = base;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = -1;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0] && rc < 0; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            rc = commands[k].run(&c, n, rest);
    if (rc < 0)
        cli_usage_error("unknown command \"%s\"", cmd);
    free(rest);
    curl_global_cleanup();
    return rc;
}
