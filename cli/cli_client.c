/* cli/cli_client.c — one request to tfsyncd's API and its answer, printing and parsing
 * helpers; see cli.h. */
#include "cli.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

_Noreturn void cli_usage_error(const char *fmt, const char *arg)
{
    fputs("tfsync: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    cli_usage(stderr);
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

/* One request; exits 3 when no HTTP answer came, and 2 on a problem+json answer (or any
 * other error status unless allow_error). path is appended to the base URL. */
answer cli_request(const cli *c, const char *method, const char *path, const char *body,
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
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(a.json, "reasons"), i, r) /* e.g. a 422's */
            fprintf(stderr, "  %s\n", json_string_value(r) ? json_string_value(r) : "?");
        exit(EXIT_API);
    }
    if (!a.json) {
        fprintf(stderr, "tfsync: the answer to %s %s is not JSON\n", method, path);
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
