/* cli/tfsync.c — tfsync, the command-line client of tfsyncd: starts and watches runs,
 * reads the status, the audit trail and the dead letters over the same HTTP API
 * (docs/openapi.yaml).
 *
 *   tfsync [--url URL] [--key KEY] [--json] COMMAND ...
 *
 * URL defaults to $TFSYNC_URL or http://127.0.0.1:8080, KEY to $TFSYNC_KEY; the key is
 * sent as "Authorization: Bearer <key>" and never printed. Exit codes: 0 success, 1 a run
 * that failed (sync --wait) or a health that is not ok, 2 an error answer of the API
 * (problem+json), 3 the daemon could not be reached, 64 a usage error.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_RUN_FAILED 1
#define EXIT_API 2
#define EXIT_UNREACHABLE 3
#define EXIT_USAGE 64

#define DEFAULT_URL "http://127.0.0.1:8080"
#define POLL_MS 200

typedef struct cli {
    const char *url;  /* without a trailing slash */
    const char *key;  /* NULL: no Authorization header */
    int json;         /* print the raw JSON */
} cli;

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

typedef struct answer {
    long status;
    char *body;     /* owned, NUL-terminated */
    json_t *json;   /* owned; NULL when the body is not JSON */
    int problem;    /* Content-Type application/problem+json */
} answer;

static void usage(FILE *to)
{
    fputs("usage: tfsync [--url URL] [--key KEY] [--json] COMMAND ...\n"
          "\n"
          "commands:\n"
          "  sync full|incremental PAIR [--wait]   start a run; --wait follows it to its end\n"
          "  status [RUN_ID]                       every pair's last run, or one run\n"
          "  audit [--pair P] [--key K] [--run N] [--limit N]\n"
          "                                        applied changes, oldest first\n"
          "  dead-letters [--pair P] [--run N]     records that failed, newest first\n"
          "  cancel RUN_ID                         end a queued, waiting or running run as\n"
          "                                        cancelled at its next batch boundary\n"
          "  health                                the daemon, its state store and systems\n"
          "\n"
          "URL defaults to $TFSYNC_URL or " DEFAULT_URL ", KEY to $TFSYNC_KEY.\n"
          "exit codes: 0 ok, 1 run failed or not healthy, 2 API error, 3 unreachable,\n"
          "64 usage\n",
          to);
}

static _Noreturn void usage_error(const char *fmt, const char *arg)
{
    fputs("tfsync: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    usage(stderr);
    exit(EXIT_USAGE);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0; /* libcurl reports a write error */
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void answer_free(answer *a)
{
    free(a->body);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

/* One request; exits 3 when no HTTP answer came, and 2 on a problem+json answer (or any
 * other error status unless allow_error). path is appended to the base URL. */
static answer request(const cli *c, const char *method, const char *path, const char *body,
                      int allow_error)
{
    answer a = {0};
    buf b = {0};
    char url[4096], auth[1024], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", c->url, path);
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "tfsync: could not initialise libcurl\n");
        exit(EXIT_UNREACHABLE);
    }
    struct curl_slist *hdrs = NULL;
    if (c->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json, application/problem+json");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "tfsync: could not reach %s: %s\n", c->url,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
        exit(EXIT_UNREACHABLE);
    }
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    a.problem = ct && strncmp(ct, "application/problem+json", 24) == 0;
    a.body = b.data ? b.data : strdup("");
    a.json = json_loads(a.body, 0, NULL);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (a.problem || (a.status >= 400 && !allow_error)) {
        const char *title = json_string_value(json_object_get(a.json, "title"));
        const char *detail = json_string_value(json_object_get(a.json, "detail"));
        if (title)
            fprintf(stderr, "tfsync: %s: %s\n", title, detail ? detail : "");
        else
            fprintf(stderr, "tfsync: HTTP %ld from %s %s\n", a.status, method, path);
        exit(EXIT_API);
    }
    if (!a.json) {
        fprintf(stderr, "tfsync: the answer to %s %s is not JSON\n", method, path);
        exit(EXIT_API);
    }
    return a;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
}

static json_int_t int_of(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str_of(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

/* "read 10 written 9 unchanged 1 deleted 0 failed 0" for one entity's counts. */
static void format_counts(const json_t *n, char *out, size_t size)
{
    snprintf(out, size, "read %lld written %lld unchanged %lld deleted %lld failed %lld",
             (long long)int_of(n, "read"), (long long)int_of(n, "written"),
             (long long)int_of(n, "unchanged"), (long long)int_of(n, "deleted"),
             (long long)int_of(n, "failed"));
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
           (long long)int_of(run, "run_id"),
           str_of(run, "pair", "?"), str_of(run, "mode", "?"), str_of(run, "state", "?"),
           str_of(run, "actor", "?"), (long long)int_of(run, "elapsed_ms"));
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
        printf("%s  waiting since %s: %s\n", indent, str_of(w, "since", "?"),
               str_of(w, "reason", "?"));
    const char *fin = json_string_value(json_object_get(run, "finished_at"));
    printf("%s  created %s, finished %s\n", indent, str_of(run, "created_at", "?"),
           fin ? fin : "-");
}

static long parse_id(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1)
        usage_error(what, s);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmd_sync(const cli *c, int argc, char **argv)
{
    const char *mode = NULL, *pair = NULL;
    int wait = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0)
            wait = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            usage_error("unknown option \"%s\" for sync", argv[i]);
        else if (!mode)
            mode = argv[i];
        else if (!pair)
            pair = argv[i];
        else
            usage_error("unexpected argument \"%s\"", argv[i]);
    }
    if (!mode || (strcmp(mode, "full") != 0 && strcmp(mode, "incremental") != 0))
        usage_error("sync needs a mode, full or incremental%s", "");
    if (!pair)
        usage_error("sync needs a pair%s", "");

    char path[64];
    snprintf(path, sizeof path, "/sync/%s", mode);
    json_t *req = json_pack("{s:s}", "pair", pair);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    answer a = request(c, "POST", path, body, 0);
    free(body);
    json_int_t id = int_of(a.json, "run_id");
    if (c->json && !wait)
        print_json(a.json);
    else if (!c->json)
        printf("%lld\n", (long long)id);
    answer_free(&a);
    if (!wait)
        return 0;

    fflush(stdout);
    char last[4096] = "";
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)id);
    for (;;) {
        /* An error answer while the state store is down (503) is waited out too. */
        answer s = request(c, "GET", path, NULL, 1);
        const char *state = str_of(s.json, "state", NULL);
        if (!state) {
            answer_free(&s);
            sleep_ms(POLL_MS);
            continue;
        }
        int done = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                   strcmp(state, "cancelled") == 0;
        if (!c->json) {
            char counts[3800], line[4096];
            format_all_counts(json_object_get(s.json, "counts"), counts, sizeof counts);
            const json_t *w = json_object_get(s.json, "waiting");
            if (json_is_object(w))
                snprintf(line, sizeof line, "%s (%s): %s", state, str_of(w, "reason", "?"),
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
            int failed = strcmp(state, "succeeded") != 0;
            if (c->json)
                print_json(s.json);
            else if (strcmp(state, "cancelled") == 0)
                printf("run %lld cancelled\n", (long long)id);
            else if (failed)
                printf("run %lld failed: %s\n", (long long)id, str_of(s.json, "error", "?"));
            else
                printf("run %lld succeeded in %lld ms\n", (long long)id,
                       (long long)int_of(s.json, "elapsed_ms"));
            answer_free(&s);
            return failed ? EXIT_RUN_FAILED : 0;
        }
        answer_free(&s);
        sleep_ms(POLL_MS);
    }
}

static void print_pair(const char *name, const json_t *p)
{
    printf("%s (%s -> %s)%s\n", name, str_of(p, "source", "?"), str_of(p, "target", "?"),
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
            printf("  %s checkpoint: run %lld at %s\n", entity, (long long)int_of(cp, "run_id"),
                   str_of(cp, "updated_at", "?"));
        else
            printf("  %s checkpoint: none\n", entity);
        const json_t *lag = json_object_get(e, "lag");
        if (json_is_object(lag))
            printf("  %s lag: %lld pending, oldest %lld ms\n", entity,
                   (long long)int_of(lag, "pending"), (long long)int_of(lag, "oldest_age_ms"));
    }
    const json_t *sched = json_object_get(p, "schedule");
    if (json_is_object(sched))
        printf("  schedule: incremental every %s, next at %s\n",
               str_of(sched, "incremental_every", "?"), str_of(p, "next_run_at", "-"));
}

static int cmd_status(const cli *c, int argc, char **argv)
{
    char path[64] = "/sync/status";
    if (argc > 1)
        usage_error("unexpected argument \"%s\"", argv[1]);
    if (argc == 1)
        snprintf(path, sizeof path, "/sync/status/%ld",
                 parse_id(argv[0], "run id \"%s\" is not a positive integer"));
    answer a = request(c, "GET", path, NULL, 0);
    if (c->json) {
        print_json(a.json);
    } else if (argc == 1) {
        print_run(a.json, "", "");
    } else {
        const char *name;
        json_t *p;
        json_object_foreach(json_object_get(a.json, "pairs"), name, p)
            print_pair(name, p);
    }
    answer_free(&a);
    return 0;
}

/* Appends "&name=<value URL-encoded>" (or "?" first) to path. */
static void add_query(char *path, size_t size, const char *name, const char *value)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    size_t len = strlen(path);
    snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', name,
             enc ? enc : "");
    curl_free(enc);
}

/* Options NAME VALUE of audit and dead-letters; names lists the accepted ones as
 * "--pair=pair" pairs of option and query parameter. */
static void parse_filters(int argc, char **argv, const char *const *names, char *path,
                          size_t size)
{
    for (int i = 0; i < argc; i++) {
        const char *param = NULL;
        for (int k = 0; names[k]; k += 2)
            if (strcmp(argv[i], names[k]) == 0)
                param = names[k + 1];
        if (!param)
            usage_error("unexpected argument \"%s\"", argv[i]);
        if (i + 1 >= argc)
            usage_error("%s needs a value", argv[i]);
        const char *v = argv[++i];
        if (strcmp(param, "run_id") == 0)
            parse_id(v, "run id \"%s\" is not a positive integer");
        if (strcmp(param, "limit") == 0)
            parse_id(v, "limit \"%s\" is not a positive integer");
        add_query(path, size, param, v);
    }
}

static int cmd_audit(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair", "pair", "--key", "key", "--run", "run_id",
                                        "--limit", "limit", NULL};
    char path[2048] = "/audit";
    parse_filters(argc, argv, names, path, sizeof path);
    answer a = request(c, "GET", path, NULL, 0);
    if (c->json) {
        print_json(a.json);
        answer_free(&a);
        return 0;
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a.json, "entries"), i, e) {
        printf("%lld run %lld %s %s", (long long)int_of(e, "id"), (long long)int_of(e, "run_id"),
               str_of(e, "key", "?"), str_of(e, "op", "?"));
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
    json_int_t next = int_of(a.json, "next_after_id");
    if (next)
        fprintf(stderr, "tfsync: more entries follow id %lld (the API's after_id)\n",
                (long long)next);
    answer_free(&a);
    return 0;
}

static int cmd_dead_letters(const cli *c, int argc, char **argv)
{
    static const char *const names[] = {"--pair", "pair", "--run", "run_id", "--limit",
                                        "limit", NULL};
    char path[2048] = "/dead-letters";
    parse_filters(argc, argv, names, path, sizeof path);
    answer a = request(c, "GET", path, NULL, 0);
    if (c->json) {
        print_json(a.json);
        answer_free(&a);
        return 0;
    }
    size_t i, j;
    json_t *d, *r;
    json_array_foreach(json_object_get(a.json, "dead_letters"), i, d) {
        printf("%lld run %lld %s %s %s:", (long long)int_of(d, "id"),
               (long long)int_of(d, "run_id"), str_of(d, "entity", "?"),
               str_of(d, "source_key", "?"), str_of(d, "stage", "?"));
        json_array_foreach(json_object_get(d, "reasons"), j, r)
            printf("%s%s", j ? "; " : " ", json_string_value(r) ? json_string_value(r) : "?");
        putchar('\n');
    }
    answer_free(&a);
    return 0;
}

static int cmd_cancel(const cli *c, int argc, char **argv)
{
    if (argc != 1)
        usage_error("cancel needs one run id%s", "");
    char path[96];
    snprintf(path, sizeof path, "/sync/runs/%ld/cancel",
             parse_id(argv[0], "run id \"%s\" is not a positive integer"));
    answer a = request(c, "POST", path, "", 0);
    if (c->json)
        print_json(a.json);
    else
        printf("run %lld: cancel asked (it was %s); it ends cancelled at its next batch "
               "boundary\n",
               (long long)int_of(a.json, "run_id"), str_of(a.json, "state", "?"));
    answer_free(&a);
    return 0;
}

static int cmd_health(const cli *c, int argc, char **argv)
{
    if (argc > 0)
        usage_error("unexpected argument \"%s\"", argv[0]);
    /* 503 with a Health body means the state store is down: still worth printing. */
    answer a = request(c, "GET", "/health", NULL, 1);
    const char *status = str_of(a.json, "status", "?");
    int ok = strcmp(status, "ok") == 0;
    if (c->json) {
        print_json(a.json);
    } else {
        printf("%s, up %lld s\n", status, (long long)int_of(a.json, "uptime_seconds"));
        const json_t *st = json_object_get(a.json, "state_store");
        const char *err = str_of(st, "error", NULL);
        printf("  state store: %s%s%s\n", str_of(st, "status", "?"), err ? ": " : "",
               err ? err : "");
        const char *name;
        json_t *s;
        json_object_foreach(json_object_get(a.json, "systems"), name, s) {
            err = str_of(s, "error", NULL);
            printf("  %s (%s): %s, circuit %s%s%s\n", name, str_of(s, "plugin", "?"),
                   str_of(s, "status", "?"), str_of(s, "circuit", "?"), err ? ": " : "",
                   err ? err : "");
        }
    }
    answer_free(&a);
    return ok ? 0 : EXIT_RUN_FAILED;
}

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
                usage_error("%s needs a value", argv[i]);
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
            usage(stdout);
            return 0;
        } else {
            usage_error("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc)
        usage_error("no command given%s", "");
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
    int rc;
    if (strcmp(cmd, "sync") == 0)
        rc = cmd_sync(&c, n, rest);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&c, n, rest);
    else if (strcmp(cmd, "audit") == 0)
        rc = cmd_audit(&c, n, rest);
    else if (strcmp(cmd, "dead-letters") == 0)
        rc = cmd_dead_letters(&c, n, rest);
    else if (strcmp(cmd, "cancel") == 0)
        rc = cmd_cancel(&c, n, rest);
    else if (strcmp(cmd, "health") == 0)
        rc = cmd_health(&c, n, rest);
    else
        usage_error("unknown command \"%s\"", cmd);
    free(rest);
    curl_global_cleanup();
    return rc;
}
