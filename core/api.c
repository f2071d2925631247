/* core/api.c — the API's handlers; see api.h. Every error answer is problem+json whose
 * detail says what to fix. */
#include "api_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "status_cache.h"
#include "store_batch.h"
#include "store_views.h"

/* An answer that depends on the config only (/pairs, /plugins), built once per config. */
typedef struct config_answer {
    pthread_mutex_t lock;
    tfs_config *cfg; /* a reference: what body was built for */
    tfs_status_body *body;
} config_answer;

/* What every request's view of the API shares: the state store connections and the
 * answers built once per config. */
struct tfs_api_shared {
    /* State store connections for request threads: one per request at a time. */
    pthread_mutex_t pool_lock;
    tfs_store **pool;
    size_t n_pool, cap_pool;
    config_answer pairs, plugins;
};

int tfs_api_init(tfs_api *api, tfs_config_slot *slot, const tfs_plugin_host *plugins,
                 tfs_runner *runner, tfs_health *health, tfs_error *err)
{
    memset(api, 0, sizeof *api);
    api->slot = slot;
    api->plugins = plugins;
    api->runner = runner;
    api->started = time(NULL);
    api->health = health;
    if (!(api->shared = calloc(1, sizeof *api->shared)))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    pthread_mutex_init(&api->shared->pool_lock, NULL);
    pthread_mutex_init(&api->shared->pairs.lock, NULL);
    pthread_mutex_init(&api->shared->plugins.lock, NULL);
    return 0;
}

void tfs_api_destroy(tfs_api *api)
{
    struct tfs_api_shared *sh = api->shared;
    if (!sh)
        return;
    for (size_t i = 0; i < sh->n_pool; i++)
        tfs_store_close(sh->pool[i]);
    free(sh->pool);
    pthread_mutex_destroy(&sh->pool_lock);
    config_answer *ca[] = {&sh->pairs, &sh->plugins};
    for (int i = 0; i < 2; i++) {
        tfs_status_body_release(ca[i]->body);
        tfs_config_free(ca[i]->cfg);
        pthread_mutex_destroy(&ca[i]->lock);
    }
    free(sh);
    api->shared = NULL;
}

void tfs_api_invoke(const tfs_http_route *route, const tfs_http_request *req,
                    tfs_http_response *resp, void *ctx)
{
    /* The handler gets a view of the API whose cfg is a snapshot held for the request:
     * a reload swapping the config meanwhile frees nothing it uses. */
    tfs_api view = *(tfs_api *)ctx;
    tfs_config *cfg = tfs_config_slot_get(view.slot);
    view.cfg = cfg;
    route->handler(req, resp, &view);
    tfs_config_free(cfg);
}

static tfs_store *store_acquire(tfs_api *api, tfs_error *err)
{
    tfs_store *s = NULL;
    struct tfs_api_shared *sh = api->shared;
    pthread_mutex_lock(&sh->pool_lock);
    if (sh->n_pool)
        s = sh->pool[--sh->n_pool];
    pthread_mutex_unlock(&sh->pool_lock);
    if (s && tfs_store_ensure(s, err) != 0) {
        tfs_store_close(s);
        s = NULL;
    }
    if (!s && tfs_store_open(api->cfg->state_conninfo, &s, err) != 0)
        return NULL;
    return s;
}

void tfs_api_store_put(tfs_api *api, tfs_store *s)
{
    if (!s)
        return;
    struct tfs_api_shared *sh = api->shared;
    pthread_mutex_lock(&sh->pool_lock);
    if (sh->n_pool == sh->cap_pool) {
        size_t cap = sh->cap_pool ? sh->cap_pool * 2 : 8;
        tfs_store **p = realloc(sh->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&sh->pool_lock);
            tfs_store_close(s);
            return;
        }
        sh->pool = p;
        sh->cap_pool = cap;
    }
    sh->pool[sh->n_pool++] = s;
    pthread_mutex_unlock(&sh->pool_lock);
}

void tfs_api_store_problem(tfs_http_response *resp, const tfs_error *err)
{
    /* PostgreSQL's text names hosts, sockets, databases and SQL: it goes to the log, the
     * client gets a stable type and what to do. */
    tfs_log_warn("api", "state store error answered as 503: %s%s%s", err->message,
                 err->detail[0] ? "; " : "", err->detail);
    tfs_http_problem(resp, 503, "state-store-unavailable", "State store unavailable",
                     "the state store could not answer; retry later (the daemon's log has "
                     "the reason)");
}

/* A state store connection for this request, or NULL after answering 503. */
tfs_store *tfs_api_store_get(tfs_api *api, tfs_http_response *resp)
{
    tfs_error err = {0};
    tfs_store *s = store_acquire(api, &err);
    if (!s)
        tfs_api_store_problem(resp, &err);
    return s;
}

/* Answers 200 with a built body (taking the reference), or 304 when the request's
 * If-None-Match names its ETag. */
static void serve_body(const tfs_http_request *req, tfs_http_response *resp,
                       tfs_status_body *b)
{
    snprintf(resp->etag, sizeof resp->etag, "%s", tfs_status_body_etag(b));
    if (tfs_http_etag_matches(req, resp->etag)) {
        tfs_status_body_release(b);
        resp->status = 304;
        return;
    }
    size_t len;
    const char *bytes = tfs_status_body_bytes(b, &len);
    tfs_http_shared(resp, 200, NULL, bytes, len, tfs_status_body_release, b);
}

/* The answer of a config_answer for the request's config, built by build(api) when the
 * config is not the one it was built for; NULL when out of memory. */
static tfs_status_body *config_answer_get(tfs_api *api, config_answer *ca,
                                          json_t *(*build)(tfs_api *api))
{
    pthread_mutex_lock(&ca->lock);
    tfs_status_body *b = ca->cfg == api->cfg ? tfs_status_body_ref(ca->body) : NULL;
    pthread_mutex_unlock(&ca->lock);
    if (b)
        return b;
    json_t *j = build(api);
    b = j ? tfs_status_body_new(j) : NULL;
    json_decref(j);
    if (!b)
        return NULL;
    pthread_mutex_lock(&ca->lock);
    tfs_status_body *old = ca->body;
    tfs_config *old_cfg = ca->cfg;
    ca->body = tfs_status_body_ref(b);
    ca->cfg = tfs_config_retain(api->cfg);
    pthread_mutex_unlock(&ca->lock);
    tfs_status_body_release(old);
    tfs_config_free(old_cfg);
    return b;
}

/* ---- GET /health ------------------------------------------------------------------ */

static void health_anonymous(json_t *o)
{
    if (!json_is_object(o))
        return;
    json_object_del(o, "error");
    json_object_del(o, "plugin");
}

/* Cached figures only (health.h): a system that does not answer never stalls this. */
static void handle_health(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    json_t *systems = json_object();
    int degraded = 0;
    /* Without a key, states only: a probe's error text (a socket path, a host, a database
     * name) and plugin names are for callers with a key. */
    int named = req->role >= TFS_ROLE_READ;
    json_t *store = tfs_health_json(api->health, NULL);
    if (!named)
        health_anonymous(store);
    const char *ss = json_string_value(json_object_get(store, "status"));
    int down = ss && strcmp(ss, "down") == 0;
    for (size_t i = 0; i < api->cfg->n_systems; i++) {
        const tfs_config_system *cs = &api->cfg->systems[i];
        json_t *o = tfs_health_json(api->health, cs->name);
        if (!named)
            health_anonymous(o);
        const char *st = json_string_value(json_object_get(o, "status"));
        degraded |= !st || strcmp(st, "ok") != 0;
        json_object_set_new(systems, cs->name, o ? o : json_null());
    }
    degraded |= ss && strcmp(ss, "ok") != 0;
    const char *status = down ? "down" : degraded ? "degraded" : "ok";
    json_t *body = json_pack("{sssososI}", "status", status, "state_store", store, "systems",
                             systems, "uptime_seconds", (json_int_t)(time(NULL) - api->started));
    tfs_http_json(resp, down ? 503 : 200, body);
}

/* ---- POST /sync/full ---------------------------------------------------------------- */

/* Parses {"pair": NAME}; answers the problem itself and returns NULL when the body is bad. */
static json_t *parse_pair_body(const tfs_http_request *req, tfs_http_response *resp,
                               const char **pair)
{
    json_t *body = tfs_http_body_json(req, resp, "{\"pair\": \"<name>\"}");
    if (!body)
        return NULL;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "pair") != 0) {
            tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                             "unknown field \"%s\"; the body takes only \"pair\"", key);
            json_decref(body);
            return NULL;
        }
    }
    v = json_object_get(body, "pair");
    if (!v) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "field \"pair\" is missing; send {\"pair\": \"<name>\"}");
        json_decref(body);
        return NULL;
    }
    if (!json_is_string(v)) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "field \"pair\" must be a string naming a configured pair");
        json_decref(body);
        return NULL;
    }
    *pair = json_string_value(v);
    return body;
}

static void start_sync(const tfs_http_request *req, tfs_http_response *resp, tfs_api *api,
                       const char *mode)
{
    const char *pair;
    json_t *body = parse_pair_body(req, resp, &pair);
    if (!body)
        return;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s) {
        json_decref(body);
        return;
    }
    tfs_error err = {0};
    int64_t run_id = 0;
    int rc = tfs_runner_submit(api->runner, s, pair, mode, req->actor ? req->actor : "?",
                               &run_id, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-pair", "Unknown pair", "%s; %s", err.message,
                         err.hint);
    } else if (rc == TFS_ECONFLICT) {
        tfs_http_problem(resp, 409, "run-in-progress", "Run in progress",
                         "pair \"%s\" is already running as run %" PRId64
                         "; wait for it (GET /sync/status/%" PRId64 ") and try again",
                         pair, run_id, run_id);
        json_object_set_new(resp->json, "run_id", json_integer(run_id));
    } else if (rc == TFS_ETRANSIENT || rc == TFS_EPERMANENT) {
        tfs_api_store_problem(resp, &err);
    } else if (rc) {
        tfs_http_problem(resp, 500, "internal", "Internal error",
                         "could not start the run: %s", err.message);
    } else {
        snprintf(resp->location, sizeof resp->location, "/sync/status/%" PRId64, run_id);
        tfs_http_json(resp, 202,
                      json_pack("{sIssssssss}", "run_id", (json_int_t)run_id, "pair", pair,
                                "mode", mode, "state", "queued", "status_url", resp->location));
    }
    json_decref(body);
}

static void handle_sync_full(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    start_sync(req, resp, ctx, "full");
}

static void handle_sync_incremental(const tfs_http_request *req, tfs_http_response *resp,
                                    void *ctx)
{
    start_sync(req, resp, ctx, "incremental");
}

/* ---- GET /sync/status -------------------------------------------------------------- */

/* From memory (status_cache.h), never a round trip to the state store: the store's
 * part is what it last said, as of as_of. */
static void handle_status(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    tfs_status_body *b = api->status ? tfs_status_cache_status(api->status, api->cfg) : NULL;
    if (!b) {
        tfs_http_problem(resp, 503, "state-store-unavailable", "State store unavailable",
                         "the state store has not answered since the daemon started; retry "
                         "later (the daemon's log has the reason)");
        return;
    }
    serve_body(req, resp, b);
}

int tfs_api_parse_id(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno || v <= 0)
        return -1;
    *out = v;
    return 0;
}

/* The {run_id} of the path into *id; -1 after answering 400. */
int tfs_api_run_id_param(const tfs_http_request *req, tfs_http_response *resp, int64_t *id)
{
    if (tfs_api_parse_id(req->params[0], id) == 0)
        return 0;
    tfs_http_problem(resp, 400, "invalid-run-id", "Invalid run id",
                     "\"%s\" is not a run id; run ids are positive integers, as returned by "
                     "POST /sync/full",
                     req->params[0]);
    return -1;
}

/* A run the status cache holds from memory; any other from the state store. */
static void handle_run_status(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    if (tfs_api_run_id_param(req, resp, &id) != 0)
        return;
    tfs_status_body *b = api->status ? tfs_status_cache_run(api->status, api->cfg, id) : NULL;
    if (b) {
        serve_body(req, resp, b);
        return;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *o = NULL;
    int rc = tfs_store_views_run_and_cursors(s, id, &o, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-run", "Unknown run",
                         "there is no run %" PRId64 "; GET /sync/status lists the last run of "
                         "each pair",
                         id);
    } else if (rc) {
        tfs_api_store_problem(resp, &err);
    } else {
        /* Just read: as of now. */
        char as_of[40];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(as_of, sizeof as_of, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(as_of + n, sizeof as_of - n, ".%03ldZ", ts.tv_nsec / 1000000);
        tfs_http_json(resp, 200,
                      tfs_status_run_json(api->cfg, json_object_get(o, "run"),
                                          json_object_get(o, "cursors"), as_of));
    }
    json_decref(o);
}

/* ---- GET /pairs, GET /plugins ------------------------------------------------------ */

/* Whether the pair's full runs sweep (delete what they did not read), and why not: a
 * source of deltas only (TFS_SDK_CAP_DELTAS, SDK 1.3). */
static void pair_sweep_json(tfs_api *api, const tfs_config_pair *p, json_t *o)
{
    const tfs_config_system *sys = tfs_config_system_get(api->cfg, p->source);
    const tfs_plugin *pl = sys ? tfs_plugin_host_get(api->plugins, sys->plugin) : NULL;
    int deltas = pl && (tfs_plugin_get_info(pl).capabilities & TFS_SDK_CAP_DELTAS);
    json_object_set_new(o, "sweep", json_boolean(!deltas));
    if (deltas)
        json_object_set_new(o, "sweep_reason",
                            json_string("the source's plugin delivers only deltas "
                                        "(TFS_SDK_CAP_DELTAS): a key a full run does not read "
                                        "is not deleted"));
}

/* Whether the pair detects conflicts, and why not: its config, or a target that cannot
 * fetch (TFS_SDK_CAP_NO_FETCH). */
static void pair_conflicts_json(tfs_api *api, const tfs_config_pair *p, json_t *o)
{
    const tfs_config_system *sys = tfs_config_system_get(api->cfg, p->target);
    const tfs_plugin *pl = sys ? tfs_plugin_host_get(api->plugins, sys->plugin) : NULL;
    uint32_t caps = pl ? tfs_plugin_get_info(pl).capabilities : 0;
    const char *why = !p->conflict.detect ? "the pair's conflicts.detect is false"
                      : !pl ? "the target's plugin is not loaded"
                      : (caps & TFS_SDK_CAP_NO_FETCH)
                          ? "the target's plugin cannot fetch its records (TFS_SDK_CAP_NO_FETCH)"
                          : NULL;
    json_object_set_new(o, "conflict_detection", json_boolean(!why));
    if (why)
        json_object_set_new(o, "conflict_detection_reason", json_string(why));
    json_object_set_new(o, "conflict_policy",
                        json_string(tfs_conflict_policy_name(p->conflict.policy)));
    static const char *const drift[] = {"report", "repair", "ignore"};
    json_object_set_new(o, "drift", json_string(drift[p->conflict.drift]));
}

static json_t *pairs_json(tfs_api *api)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < api->cfg->n_pairs; i++) {
        const tfs_config_pair *p = &api->cfg->pairs[i];
        json_t *ents = json_array();
        for (size_t j = 0; j < p->n_entities; j++) {
            json_t *targets = json_array();
            for (size_t k = 0; k < p->entities[j].n_targets; k++)
                json_array_append_new(targets, json_string(p->entities[j].targets[k]));
            json_array_append_new(ents, json_pack("{sssoss}", "source", p->entities[j].source,
                                                  "targets", targets, "script",
                                                  p->entities[j].script));
        }
        json_t *o = json_pack("{sssssssIso}", "name", p->name, "source", p->source, "target",
                              p->target, "batch_size", (json_int_t)p->batch_size, "entities",
                              ents);
        pair_conflicts_json(api, p, o);
        pair_sweep_json(api, p, o);
        json_array_append_new(arr, o);
    }
    return json_pack("{so}", "pairs", arr);
}

/* The config and the plugins only: built once per config. */
static void handle_pairs(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    tfs_status_body *b = config_answer_get(api, &api->shared->pairs, pairs_json);
    if (b)
        serve_body(req, resp, b);
    else
        tfs_http_problem(resp, 500, "internal", "Internal error", "out of memory");
}

static json_t *plugins_json(tfs_api *api)
{
    static const char *const types[] = {"string", "int", "bool"};
    json_t *loaded = json_array(), *refused = json_array();
    for (size_t i = 0; i < api->plugins->n; i++) {
        tfs_plugin_info p = tfs_plugin_get_info(api->plugins->plugins[i]);
        json_t *keys = json_array();
        for (size_t k = 0; k < p.n_config_keys; k++) {
            const tfs_sdk_config_key *ck = &p.config_keys[k];
            json_array_append_new(keys, json_pack("{sssssoss?}", "name", ck->name, "type",
                                                  types[ck->type], "default",
                                                  ck->default_value
                                                      ? json_string(ck->default_value)
                                                      : json_null(),
                                                  "description", ck->description));
        }
        /* Every capability flag by its name, so an operator sees why a pair has no
         * conflict detection (no_fetch) or no sweep (deltas). */
        static const struct { uint32_t flag; const char *name; } cap_names[] = {
            {TFS_SDK_CAP_SOURCE, "source"},       {TFS_SDK_CAP_TARGET, "target"},
            {TFS_SDK_CAP_CHANGES, "changes"},     {TFS_SDK_CAP_NO_FETCH, "no_fetch"},
            {TFS_SDK_CAP_LAZY_OPEN, "lazy_open"}, {TFS_SDK_CAP_DELTAS, "deltas"},
            {TFS_SDK_CAP_INSERT, "insert"},
        };
        json_t *caps = json_array();
        for (size_t c = 0; c < sizeof cap_names / sizeof cap_names[0]; c++)
            if (p.capabilities & cap_names[c].flag)
                json_array_append_new(caps, json_string(cap_names[c].name));
        char sdk[32];
        snprintf(sdk, sizeof sdk, "%u.%u", (unsigned)p.sdk_major,
                 (unsigned)p.sdk_minor);
        json_array_append_new(loaded, json_pack("{ssssss?sssoso}", "name", p.name, "version",
                                                p.version, "description",
                                                p.description, "sdk", sdk,
                                                "capabilities", caps, "config_keys", keys));
    }
    for (size_t i = 0; i < api->plugins->n_refused; i++)
        json_array_append_new(refused, json_pack("{ssss}", "file", api->plugins->refused[i].file,
                                                 "reason", api->plugins->refused[i].reason));
    return json_pack("{soso}", "plugins", loaded, "refused", refused);
}

/* The plugins are loaded once, at the start: built once per config. */
static void handle_plugins(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    tfs_status_body *b = config_answer_get(api, &api->shared->plugins, plugins_json);
    if (b)
        serve_body(req, resp, b);
    else
        tfs_http_problem(resp, 500, "internal", "Internal error", "out of memory");
}

/* The run_id and limit query arguments of a listing; answers 400 itself and returns -1
 * when one is wrong. */
int tfs_api_parse_run_and_limit(const tfs_http_request *req, tfs_http_response *resp,
                               int64_t *run_id, int64_t *limit)
{
    const char *run = tfs_http_query(req, "run_id"), *lim = tfs_http_query(req, "limit");
    if (run && tfs_api_parse_id(run, run_id) != 0) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "run_id=\"%s\" is not a run id (a positive integer)", run);
        return -1;
    }
    if (lim && (tfs_api_parse_id(lim, limit) != 0 || *limit > 1000)) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "limit=\"%s\" must be an integer from 1 to 1000", lim);
        return -1;
    }
    return 0;
}

/* ---- GET /audit ------------------------------------------------------------------- */

static int parse_nonneg(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Reads n digits of s at *i into *v. */
static int digits(const char *s, size_t *i, int n, int *v)
{
    *v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (s[*i] < '0' || s[*i] > '9')
            return -1;
        *v = *v * 10 + (s[*i] - '0');
    }
    return 0;
}

/* An ISO 8601 date or time, each field in range, so the state store never refuses it:
 * YYYY-MM-DD, optionally [T ]HH:MM[:SS[.ffffff]], optionally Z or +HH[:MM] / -HH[:MM].
 * NULL when valid, else what is wrong. */
static const char *time_problem(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, v;
    if (digits(s, &i, 4, &y) || s[i++] != '-' || digits(s, &i, 2, &mo) || s[i++] != '-' ||
        digits(s, &i, 2, &d))
        return "it does not start with a date YYYY-MM-DD";
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
        return "the date is not a day of the calendar (year 0001-9999, month 01-12, a day of "
               "that month)";
    if (s[i] == 'T' || s[i] == ' ') {
        i++;
        if (digits(s, &i, 2, &h) || s[i++] != ':' || digits(s, &i, 2, &mi))
            return "the time after the date is not HH:MM[:SS]";
        if (s[i] == ':') {
            i++;
            if (digits(s, &i, 2, &sec))
                return "the seconds are not two digits";
            if (s[i] == '.') {
                int n = 0;
                for (i++; s[i] >= '0' && s[i] <= '9'; i++)
                    n++;
                if (n < 1 || n > 6)
                    return "a fraction of a second has 1 to 6 digits";
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return "the time of day is out of range (00:00:00 to 23:59:59)";
        if (s[i] == 'Z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            i++;
            if (digits(s, &i, 2, &v) || v > 14)
                return "the offset is not +HH or -HH from 00 to 14";
            if (s[i] == ':') {
                i++;
                if (digits(s, &i, 2, &v) || v > 59)
                    return "the offset's minutes are not 00 to 59";
            }
        }
    }
    return s[i] ? "there is more after the time" : NULL;
}

static void handle_audit(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    tfs_audit_filter f = {.pair = tfs_http_query(req, "pair"),
                          .entity = tfs_http_query(req, "entity"),
                          .key = tfs_http_query(req, "key"),
                          .since = tfs_http_query(req, "since"),
                          .until = tfs_http_query(req, "until"),
                          .limit = 100};
    const char *after = tfs_http_query(req, "after_id");
    int64_t lim = 100;
    if (tfs_api_parse_run_and_limit(req, resp, &f.run_id, &lim) != 0)
        return;
    if (after && parse_nonneg(after, &f.after_id) != 0) {
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "after_id=\"%s\" must be the next_after_id of a previous page", after);
        return;
    }
    f.limit = (long)lim;
    const char *times[] = {f.since, f.until}, *names[] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        const char *why = times[i] ? time_problem(times[i]) : NULL;
        if (why) {
            tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                             "%s=\"%.60s\" is not a time: %s; use ISO 8601, e.g. "
                             "2026-11-21T08:00:00Z",
                             names[i], times[i], why);
            return;
        }
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *out = NULL;
    int rc = tfs_store_views_audit(s, &f, &out, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_EPERMANENT && (f.since || f.until)) {
        /* Checked above, so this should not happen; the store's text stays in the log. */
        tfs_log_warn("api", "the state store refused since/until: %s", err.message);
        tfs_http_problem(resp, 400, "invalid-query", "Invalid query",
                         "the state store refused since or until as a time; use ISO 8601, "
                         "e.g. 2026-11-21T08:00:00Z");
        return;
    }
    if (rc)
        tfs_api_store_problem(resp, &err);
    else
        tfs_http_json(resp, 200, out);
}

/* ---- POST /sync/runs/{run_id}/cancel ------------------------------------------------ */

static void handle_cancel(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    if (tfs_api_run_id_param(req, resp, &id) != 0)
        return;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    char state[16];
    int rc = tfs_store_run_cancel(s, id, state, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-run", "Unknown run",
                         "there is no run %" PRId64 "; GET /sync/status lists the last run of "
                         "each pair",
                         id);
        return;
    }
    if (rc == TFS_ECONFLICT) {
        tfs_http_problem(resp, 409, "run-ended", "Run already ended",
                         "run %" PRId64 " has already ended (%s); only a queued, waiting, "
                         "running or held run can be cancelled",
                         id, state);
        json_object_set_new(resp->json, "state", json_string(state));
        return;
    }
    if (rc) {
        tfs_api_store_problem(resp, &err);
        return;
    }
    if (strcmp(state, "cancelled") == 0) {
        /* It was held: nobody executes it, so the store ended it at once. */
        tfs_log_info("api", "run %" PRId64 ": held run cancelled by %s, nothing deleted", id,
                     req->actor ? req->actor : "?");
        snprintf(resp->location, sizeof resp->location, "/sync/status/%" PRId64, id);
        tfs_http_json(resp, 200, json_pack("{sIssss}", "run_id", (json_int_t)id, "state",
                                           state, "status_url", resp->location));
        return;
    }
    tfs_runner_cancel(api->runner, id);
    tfs_log_info("api", "run %" PRId64 ": cancel asked by %s (it was %s)", id,
                 req->actor ? req->actor : "?", state);
    snprintf(resp->location, sizeof resp->location, "/sync/status/%" PRId64, id);
    tfs_http_json(resp, 202, json_pack("{sIsssbss}", "run_id", (json_int_t)id, "state", state,
                                       "cancel_requested", 1, "status_url", resp->location));
}

/* ---- POST /sync/runs/{run_id}/confirm ----------------------------------------------- */

/* An operator lets a held run delete what its guard stopped: the body names the held
 * count, so a confirm given for another count (the run read again, a typo) deletes
 * nothing. The same run goes on, queued again, from its deletion step. */
static void handle_confirm(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    if (tfs_api_run_id_param(req, resp, &id) != 0)
        return;
    static const char *const allowed[] = {"deletes", NULL};
    json_t *body = tfs_api_body(req, resp, allowed, "{\"deletes\": 9000}", 0);
    if (!body)
        return;
    json_t *n = json_object_get(body, "deletes");
    json_int_t deletes = json_is_integer(n) ? json_integer_value(n) : -1;
    json_decref(body);
    if (deletes < 0) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "deletes must be the number of deletions the run is held for, a "
                         "non-negative integer (GET /sync/status/%" PRId64 " shows it as "
                         "held.deletes)",
                         id);
        return;
    }
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    char pair[128] = "", mode[16] = "", state[16] = "";
    int64_t total = 0;
    int rc = tfs_store_run_confirm(s, id, deletes, req->actor ? req->actor : "?", pair, mode,
                                   &total, state, &err);
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-run", "Unknown run",
                         "there is no run %" PRId64 "; GET /sync/status lists the last run of "
                         "each pair",
                         id);
        return;
    }
    if (rc == TFS_ECONFLICT && strcmp(state, "held") != 0) {
        tfs_http_problem(resp, 409, "run-not-held", "Run not held",
                         "run %" PRId64 " is %s, not held: only a run a guard held waits for "
                         "a confirm",
                         id, state);
        json_object_set_new(resp->json, "state", json_string(state));
        return;
    }
    if (rc == TFS_ECONFLICT) {
        tfs_http_problem(resp, 409, "wrong-count", "Wrong count",
                         "run %" PRId64 " is held for %" PRId64 " deletions, not %" PRId64
                         "; confirm with {\"deletes\": %" PRId64 "} once you have checked "
                         "them, or cancel the run",
                         id, total, (int64_t)deletes, total);
        json_object_set_new(resp->json, "held_deletes", json_integer(total));
        json_object_set_new(resp->json, "state", json_string(state));
        return;
    }
    if (rc) {
        tfs_api_store_problem(resp, &err);
        return;
    }
    /* Queued in the store already: should this fail, any node's lease poll takes it. */
    if (tfs_runner_requeue(api->runner, id, pair, mode) != 0)
        tfs_log_warn("api", "run %" PRId64 ": out of memory queueing it here; the lease poll "
                     "takes it", id);
    tfs_log_info("api", "run %" PRId64 ": %" PRId64 " deletions confirmed by %s; queued again",
                 id, (int64_t)deletes, req->actor ? req->actor : "?");
    snprintf(resp->location, sizeof resp->location, "/sync/status/%" PRId64, id);
    tfs_http_json(resp, 202, json_pack("{sIsssIss}", "run_id", (json_int_t)id, "state",
                                       "queued", "confirmed_deletes", deletes, "status_url",
                                       resp->location));
}

/* ---- POST /admin/reload ------------------------------------------------------------ */

static void handle_reload(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    tfs_error err = {0};
    json_t *changes = NULL;
    if (!api->reload) {
        tfs_http_problem(resp, 501, "not-implemented", "not implemented",
                         "this daemon cannot reload its config; restart it");
        return;
    }
    tfs_log_info("api", "config reload asked by %s", req->actor ? req->actor : "?");
    if (api->reload(api->reload_ctx, &changes, &err) != 0) {
        tfs_http_problem(resp, 400, "invalid-config", "invalid config",
                         "%s; the config in use is kept%s%s", err.message,
                         err.hint[0] ? "; " : "", err.hint);
        return;
    }
    tfs_http_json(resp, 200, changes);
}

static const tfs_http_route routes[] = {
    {"POST", "/admin/reload", TFS_ROLE_ADMIN, handle_reload},
    {"GET", "/health", TFS_ROLE_NONE, handle_health},
    {"GET", "/metrics", TFS_ROLE_NONE, tfs_api_metrics}, /* its role: metrics.public */
    {"POST", "/sync/full", TFS_ROLE_OPERATE, handle_sync_full},
    {"POST", "/sync/incremental", TFS_ROLE_OPERATE, handle_sync_incremental},
    {"GET", "/audit", TFS_ROLE_READ, handle_audit},
    {"GET", "/audit/verify", TFS_ROLE_READ, tfs_api_audit_verify},
    {"GET", "/sync/status", TFS_ROLE_READ, handle_status},
    {"GET", "/sync/status/{run_id}", TFS_ROLE_READ, handle_run_status},
    {"POST", "/sync/runs/{run_id}/cancel", TFS_ROLE_OPERATE, handle_cancel},
    {"POST", "/sync/runs/{run_id}/confirm", TFS_ROLE_OPERATE, handle_confirm},
    {"GET", "/pairs", TFS_ROLE_READ, handle_pairs},
    {"GET", "/plugins", TFS_ROLE_READ, handle_plugins},
    /* dead letters (api_dead_letters.c); the replay of a filter before the {id} routes */
    {"GET", "/dead-letters", TFS_ROLE_READ, tfs_api_dead_letters_list},
    {"POST", "/dead-letters/replay", TFS_ROLE_OPERATE, tfs_api_dead_letters_replay},
    {"GET", "/dead-letters/{id}", TFS_ROLE_READ, tfs_api_dead_letter_get},
    {"DELETE", "/dead-letters/{id}", TFS_ROLE_ADMIN, tfs_api_dead_letter_discard},
    {"POST", "/dead-letters/{id}/replay", TFS_ROLE_OPERATE, tfs_api_dead_letter_replay},
    {"GET", "/sync/conflicts", TFS_ROLE_READ, tfs_api_conflicts_list},
    {"GET", "/sync/conflicts/{id}", TFS_ROLE_READ, tfs_api_conflict_get},
    /* jobs of a pair, answered by a worker (api_jobs.c) */
    {"POST", "/sync/conflicts/{id}/resolve", TFS_ROLE_OPERATE, tfs_api_conflict_resolve},
    {"POST", "/sync/validate", TFS_ROLE_OPERATE, tfs_api_handle_validate},
    {"POST", "/transforms/{name}/test", TFS_ROLE_OPERATE, tfs_api_handle_transform_test},
    /* the web console's static files, open like /health (api_ui.c) */
    {"GET", "/ui", TFS_ROLE_NONE, tfs_api_ui},
    {"GET", "/ui/{file}", TFS_ROLE_NONE, tfs_api_ui},
};

const tfs_http_route *tfs_api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
