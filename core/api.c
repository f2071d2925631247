/* core/api.c — the API's handlers; see api.h. Every error answer is problem+json whose
 * detail says what to fix. */
#include "api_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_batch.h"
#include "store_views.h"

/* What every request's view of the API shares: the state store connections. */
struct tfs_api_shared {
    /* State store connections for request threads: one per request at a time. */
    pthread_mutex_t pool_lock;
    tfs_store **pool;
    size_t n_pool, cap_pool;
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

/* Per entity of a pair: its change checkpoint and how many changes wait behind it, as the
 * source's prober last counted them (with their age), when the plugin can tell. */
static json_t *pair_entities_status(tfs_api *api, const tfs_config_pair *p, json_t *cursors)
{
    json_t *out = json_object();
    for (size_t e = 0; e < p->n_entities; e++) {
        const char *ent = p->entities[e].source;
        json_t *ch = json_object_get(json_object_get(cursors, ent), "changes");
        json_t *checkpoint = ch ? json_pack("{sOsO}", "run_id", json_object_get(ch, "run_id"),
                                            "updated_at", json_object_get(ch, "updated_at"))
                                : json_null();
        json_t *lag = ch ? tfs_health_lag(api->health, p->name, ent) : NULL;
        json_object_set_new(out, ent, json_pack("{soso}", "checkpoint", checkpoint, "lag",
                                                lag ? lag : json_null()));
    }
    return out;
}

static void handle_status(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    tfs_api *api = ctx;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *last = NULL;
    json_t *pairs = json_object();
    int rc = tfs_store_views_last_runs(s, &last, &err);
    for (size_t i = 0; rc == 0 && i < api->cfg->n_pairs; i++) {
        const tfs_config_pair *p = &api->cfg->pairs[i];
        json_t *cursors = NULL;
        rc = tfs_store_views_cursors(s, p->name, &cursors, &err);
        if (rc)
            break;
        json_t *lr = json_object_get(last, p->name);
        json_t *entities = pair_entities_status(api, p, cursors);
        json_t *o = json_pack("{sssssOsoso}", "source", p->source, "target", p->target,
                              "last_run", lr ? lr : json_null(), "cursors", cursors,
                              "entities", entities);
        if (p->incremental_every_ms) {
            json_object_set_new(o, "schedule", json_pack("{ss}", "incremental_every",
                                                         p->incremental_every));
            int64_t next = tfs_runner_next_run_ms(api->runner, p->name);
            char iso[40] = "";
            if (next > 0) {
                time_t secs = (time_t)(next / 1000);
                struct tm tm;
                gmtime_r(&secs, &tm);
                strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
                snprintf(iso + strlen(iso), sizeof iso - strlen(iso), ".%03dZ",
                         (int)(next % 1000));
            }
            json_object_set_new(o, "next_run_at", iso[0] ? json_string(iso) : json_null());
        } else {
            json_object_set_new(o, "schedule", json_null());
            json_object_set_new(o, "next_run_at", json_null());
        }
        const char *lst = lr ? json_string_value(json_object_get(lr, "state")) : NULL;
        json_object_set_new(o, "running",
                            json_boolean(lst && (strcmp(lst, "running") == 0 ||
                                                 strcmp(lst, "queued") == 0 ||
                                                 strcmp(lst, "waiting") == 0)));
        json_t *sys = json_object();
        json_object_set_new(sys, p->source, tfs_health_json(api->health, p->source));
        if (strcmp(p->source, p->target) != 0)
            json_object_set_new(sys, p->target, tfs_health_json(api->health, p->target));
        json_object_set_new(o, "systems", sys);
        json_object_set_new(pairs, p->name, o);
    }
    tfs_api_store_put(api, s);
    json_decref(last);
    if (rc) {
        json_decref(pairs);
        tfs_api_store_problem(resp, &err);
        return;
    }
    tfs_http_json(resp, 200, json_pack("{so}", "pairs", pairs));
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

static void handle_run_status(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    int64_t id;
    if (tfs_api_run_id_param(req, resp, &id) != 0)
        return;
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    json_t *run = NULL;
    int rc = tfs_store_views_run(s, id, &run, &err);
    if (rc == 0) {
        /* Progress: records read so far per entity and which mappings are done. */
        const tfs_config_pair *p =
            tfs_config_pair_get(api->cfg, json_string_value(json_object_get(run, "pair")));
        json_t *cursors = NULL;
        if (p && tfs_store_views_cursors(s, p->name, &cursors, &err) == 0) {
            json_t *progress = json_array();
            for (size_t i = 0; i < p->n_entities; i++) {
                const char *ent = p->entities[i].source;
                json_t *full = json_object_get(json_object_get(cursors, ent), "full");
                int mine = full && json_integer_value(json_object_get(full, "run_id")) == id;
                json_t *c = json_object_get(json_object_get(run, "counts"), ent);
                const char *state = json_string_value(json_object_get(run, "state"));
                int done = (mine && json_is_true(json_object_get(full, "done"))) ||
                           (state && strcmp(state, "succeeded") == 0);
                /* A full run's estimate of the entity (SDK 1.3), null when none. */
                json_t *est = json_object_get(json_object_get(run, "estimated_totals"), ent);
                json_array_append_new(
                    progress, json_pack("{sssIsbsO}", "entity", ent, "records_read",
                                        c ? json_integer_value(json_object_get(c, "read")) : 0,
                                        "done", done, "estimated_total",
                                        json_is_integer(est) ? est : json_null()));
            }
            json_object_set_new(run, "progress", progress);
        }
        json_decref(cursors);
    }
    tfs_api_store_put(api, s);
    if (rc == TFS_ENOTFOUND)
        tfs_http_problem(resp, 404, "unknown-run", "Unknown run",
                         "there is no run %" PRId64 "; GET /sync/status lists the last run of "
                         "each pair",
                         id);
    else if (rc)
        tfs_api_store_problem(resp, &err);
    else
        tfs_http_json(resp, 200, run);
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

static void handle_pairs(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    tfs_api *api = ctx;
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
    tfs_http_json(resp, 200, json_pack("{so}", "pairs", arr));
}

static void handle_plugins(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)req;
    static const char *const types[] = {"string", "int", "bool"};
    tfs_api *api = ctx;
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
    tfs_http_json(resp, 200, json_pack("{soso}", "plugins", loaded, "refused", refused));
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
