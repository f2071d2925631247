/* cli/cli_client.c — one request to tfsyncd's API and its answer, errors that never show
 * the API key, printing and parsing helpers; see cli.h. */
#include "cli.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *secrets[4]; /* API keys ($TFSYNC_KEY, --key): never in a message */
static const char *command; /* the command a usage error points to the help of */

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

void cli_set_secret(const char *s)
{
    for (size_t i = 0; s && *s && i < sizeof secrets / sizeof secrets[0]; i++) {
        if (secrets[i] && strcmp(secrets[i], s) == 0)
            return;
        if (!secrets[i]) {
            secrets[i] = s;
            return;
        }
    }
}

void cli_set_command(const char *name)
{
    command = name;
}

void cli_redact(const char *text, char *out, size_t size)
{
    size_t n = 0;
    if (!size)
        return;
    while (*text && n + 1 < size) {
        size_t klen = 0;
        for (size_t i = 0; i < sizeof secrets / sizeof secrets[0] && secrets[i] && !klen; i++)
            if (strncmp(text, secrets[i], strlen(secrets[i])) == 0)
                klen = strlen(secrets[i]);
        if (klen) {
            for (const char *m = "***"; *m && n + 1 < size; m++)
                out[n++] = *m;
            text += klen;
        } else {
            out[n++] = *text++;
        }
    }
    out[n] = '\0';
}

void cli_errf(const char *fmt, ...)
{
    char raw[8192], clean[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    cli_redact(raw, clean, sizeof clean);
    fprintf(stderr, "tfsync: %s\n", clean);
}

/* The arguments are printed as they were typed, so the one that holds the key (a misplaced
 * --key's value) is redacted like any other message. */
_Noreturn void cli_usage_error(const char *fmt, const char *arg)
{
    char msg[4096];
    snprintf(msg, sizeof msg, fmt, arg);
    cli_errf("%s", msg);
    if (command)
        fprintf(stderr, "usage: tfsync %s ... (see tfsync %s --help)\n", command, command);
    else
        fputs("usage: tfsync [--url URL] [--key KEY] [--json] COMMAND ... (see tfsync "
              "--help)\n",
              stderr);
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

void cli_answer_free(answer *a)
{
    free(a->body);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

/* One request; see cli.h. */
answer cli_request(const cli *c, const char *method, const char *path, const char *body,
                      int allow_error)
{
    answer a = {0};
    buf b = {0};
    char url[4096], auth[1024], errbuf[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s%s", c->url, path);
    CURL *h = curl_easy_init();
    if (!h) {
        cli_errf("could not initialise libcurl");
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
        cli_errf("could not reach %s: %s", c->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
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
    if (allow_error == CLI_ANY_ANSWER)
        return a; /* the caller looks at status and json (NULL when not JSON) */
    if (a.problem || (a.status >= 400 && !allow_error)) {
        const char *title = json_string_value(json_object_get(a.json, "title"));
        const char *detail = json_string_value(json_object_get(a.json, "detail"));
        if (title)
            cli_errf("%s: %s", title, detail ? detail : "");
        else
            cli_errf("HTTP %ld from %s %s", a.status, method, path);
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(a.json, "reasons"), i, r) { /* e.g. a 422's */
            char line[4096];
            cli_redact(json_string_value(r) ? json_string_value(r) : "?", line, sizeof line);
            fprintf(stderr, "  %s\n", line);
        }
        exit(EXIT_API);
    }
    if (!a.json) {
        cli_errf("the answer to %s %s is not JSON", method, path);
        exit(EXIT_API);
    }
    return a;
}

void cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
}

json_int_t cli_int_of(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

const char *cli_str_of(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

long cli_parse_id(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1)
        cli_usage_error(what, s);
    return v;
}

void cli_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void cli_add_query(char *path, size_t size, const char *name, const char *value)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    size_t len = strlen(path);
    snprintf(path + len, size - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', name,
             enc ? enc : "");
    curl_free(enc);
}

/* Options NAME VALUE of audit and dead-letters; names lists the accepted ones as
 * "--pair=pair" pairs of option and query parameter. */
void cli_parse_filters(int argc, char **argv, const char *const *names, char *path,
                          size_t size)
{
    for (int i = 0; i < argc; i++) {
        const char *param = NULL;
        for (int k = 0; names[k]; k += 2)
            if (strcmp(argv[i], names[k]) == 0)
                param = names[k + 1];
        if (!param && argv[i][0] == '-')
            cli_usage_error("unknown option \"%s\"", argv[i]);
        if (!param)
            cli_usage_error("unexpected argument \"%s\"", argv[i]);
        if (i + 1 >= argc)
            cli_usage_error("%s needs a value", argv[i]);
        const char *v = argv[++i];
        if (strcmp(param, "run_id") == 0)
            cli_parse_id(v, "run id \"%s\" is not a positive integer");
        if (strcmp(param, "limit") == 0)
            cli_parse_id(v, "limit \"%s\" is not a positive integer");
        cli_add_query(path, size, param, v);
    }
}

/* "read 10 written 8 unchanged 1 skipped 1 conflicts 0 failed 0 deleted 0" for one
 * entity's counts (the terms of read, in the rule's order), then what is apart from the
 * records read: the sweep's deletions, deletions set aside for the guard, drift. */
void cli_format_counts(const json_t *n, char *out, size_t size)
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

json_t *cli_job_result(const cli *c, const answer *a)
{
    if (a->status != 202)
        return json_incref(a->json);
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)cli_int_of(a->json, "run_id"));
    for (;;) {
        answer s = cli_request(c, "GET", path, NULL, 0);
        const char *state = cli_str_of(s.json, "state", "");
        if (!strcmp(state, "succeeded") || !strcmp(state, "partial") ||
            !strcmp(state, "failed") || !strcmp(state, "cancelled")) {
            json_t *res = json_object_get(s.json, "result");
            json_t *out = json_is_object(res) ? json_deep_copy(res) : json_object();
            json_object_set(out, "run_id", json_object_get(s.json, "run_id"));
            json_object_set(out, "state", json_object_get(s.json, "state"));
            if (!strcmp(state, "failed"))
                json_object_set(out, "error", json_object_get(s.json, "error"));
            cli_answer_free(&s);
            return out;
        }
        cli_answer_free(&s);
        cli_sleep_ms(POLL_MS);
    }
}

void cli_no_options(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1])
            cli_usage_error("unknown option \"%s\"", argv[i]);
}
