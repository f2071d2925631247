/* core/main.c — tfsyncd: loads the config and the plugins, migrates the state store,
 * starts the workers and the HTTP API, writes the ready file, and runs until SIGTERM or
 * SIGINT. Then the API answers 503 and the workers stop between batches, waiting at most
 * shutdown.grace for the batches in flight; past it they are abandoned as a crash would
 * (transactions roll back), and every interrupted run resumes at the next start-up.
 * SIGHUP (and POST /admin/reload) re-reads the config file: a config that does not load
 * is refused with the reason in the log and the one in use is kept. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "api.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "plugin_host.h"
#include "runner.h"
#include "status_cache.h"
#include "config_check.h"
#include "store.h"
#include "version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tfsyncd --config FILE [--check [--connect]]\n"
               "       tfsyncd --version\n"
               "  -c, --config FILE  the daemon's JSON config\n"
               "      --check        check the config offline, then exit (0: valid): every\n"
               "                     system's settings, the pairs' entities and fields against\n"
               "                     the schemas plugins describe without connecting, the\n"
               "                     scripts (they compile; the fields they set exist in the\n"
               "                     target); one line per problem: path: what; how to fix\n"
               "      --connect      with --check: also open every system and the state store\n"
               "                     and check that they answer\n"
               "      --version      the version, the SDK version and the libraries' versions\n"
               "  -h, --help         this help\n"
               "environment: TFS_LOG=debug|info|warn|error\n");
}

/* Writes the bound port to the ready file atomically, so a reader never sees half. */
static int write_ready_file(const char *path, unsigned port, tfs_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return tfs_error_set(err, TFS_EIO, "could not write ready file \"%s\": %s", tmp,
                             strerror(errno));
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return tfs_error_set(err, TFS_EIO, "could not write ready file \"%s\": %s", path,
                             strerror(errno));
    }
    return 0;
}

/* Every system whose plugin is loaded must have settings the plugin declares and its
 * cb_check accepts (tfs_plugin_check: offline, nothing connects); a system whose plugin
 * was refused is reported and left down, the daemon goes on. */
static int check_systems(const tfs_config *cfg, const tfs_plugin_host *plugins,
                         tfs_error *err)
{
    for (size_t i = 0; i < cfg->n_systems; i++) {
        const tfs_config_system *s = &cfg->systems[i];
        const tfs_plugin *p = tfs_plugin_host_get(plugins, s->plugin);
        if (!p) {
            tfs_log_error("core", "systems.%s.plugin: plugin \"%s\" is not loaded; pairs using "
                          "system \"%s\" will fail until it is (see GET /plugins)",
                          s->name, s->plugin, s->name);
            continue;
        }
        int rc = tfs_plugin_check(p, s->name, s->settings, cfg->dir, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* What a reload needs; the lock serialises SIGHUP and POST /admin/reload. */
typedef struct daemon_ctx {
    const char *config_path;
    tfs_config_slot *slot;
    const tfs_plugin_host *plugins;
    tfs_http_server *http;
    int notified_ready; /* the start-up's READY=1 is sent: reloads may tell theirs */
    pthread_mutex_t lock;
} daemon_ctx;

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Settings a running daemon holds in its server, its state store connections, its
 * plugins, its worker count and its node's leases: a reload refuses to change them. */
static int check_fixed(const tfs_config *old, const tfs_config *cfg, tfs_error *err)
{
    const char *what = !same_str(old->listen_address, cfg->listen_address) ? "listen.address"
                       : old->port != cfg->port                            ? "listen.port"
                       : old->http_threads != cfg->http_threads           ? "listen.threads"
                       : old->max_body != cfg->max_body ? "listen.max_body_bytes"
                       : old->max_connections != cfg->max_connections ? "listen.max_connections"
                       : old->max_per_ip != cfg->max_per_ip           ? "listen.max_per_ip"
                       : old->header_timeout_ms != cfg->header_timeout_ms
                           ? "listen.header_timeout"
                       : old->idle_timeout_s != cfg->idle_timeout_s ? "listen.idle_timeout"
                       : old->access_log_all != cfg->access_log_all ? "log.access"
                       : old->log_json != cfg->log_json             ? "log.format"
                       : !same_str(old->ready_file, cfg->ready_file) ? "listen.ready_file"
                       : !same_str(old->tls_cert_file, cfg->tls_cert_file) ||
                               !same_str(old->tls_key_file, cfg->tls_key_file)
                           ? "listen.tls_cert_file/tls_key_file"
                       : !same_str(old->state_conninfo, cfg->state_conninfo) ? "state.conninfo"
                       : !same_str(old->plugin_dir, cfg->plugin_dir)          ? "plugin_dir"
                       : old->roll_year != cfg->roll_year                     ? "roll_year"
                       : old->workers != cfg->workers                         ? "workers"
                       : !same_str(old->node_id, cfg->node_id)                ? "node_id"
                       : old->lease_ttl_ms != cfg->lease_ttl_ms ||
                               old->lease_heartbeat_ms != cfg->lease_heartbeat_ms ||
                               old->lease_poll_ms != cfg->lease_poll_ms
                           ? "lease"
                       : old->resume_max_deaths != cfg->resume_max_deaths ? "resume.max_deaths"
                       : old->breaker_failures != cfg->breaker_failures ||
                               old->breaker_max_probe_interval_ms !=
                                   cfg->breaker_max_probe_interval_ms
                           ? "breaker"
                       : old->retry_max_backoff_ms != cfg->retry_max_backoff_ms
                           ? "retry.max_backoff"
                       : old->state_connect_timeout_s != cfg->state_connect_timeout_s
                           ? "state.connect_timeout"
                           : NULL;
    if (!what)
        return 0;
    tfs_error_set(err, TFS_EINVAL, "%s cannot change by a reload", what);
    tfs_error_hint(err, "restart the daemon to change %s, or put its old value back", what);
    return TFS_EINVAL;
}

static int pair_equal(const tfs_config_pair *a, const tfs_config_pair *b)
{
    if (!same_str(a->source, b->source) || !same_str(a->target, b->target) ||
        a->batch_size != b->batch_size || a->delete_action != b->delete_action ||
        !same_str(a->deactivate_field, b->deactivate_field) ||
        a->incremental_every_ms != b->incremental_every_ms || a->n_entities != b->n_entities)
        return 0;
    for (size_t i = 0; i < a->n_entities; i++) {
        const tfs_config_entity *x = &a->entities[i], *y = &b->entities[i];
        if (!same_str(x->source, y->source) || !same_str(x->script, y->script) ||
            x->n_targets != y->n_targets)
            return 0;
        for (size_t k = 0; k < x->n_targets; k++)
            if (!same_str(x->targets[k], y->targets[k]))
                return 0;
    }
    return 1;
}

/* {"added": [...], "removed": [...], "changed": [...]} of named items of two configs. */
typedef const char *(*item_name_fn)(const tfs_config *c, size_t i);
typedef int (*item_equal_fn)(const tfs_config *a, size_t i, const tfs_config *b, size_t j);

static const char *pair_name(const tfs_config *c, size_t i) { return c->pairs[i].name; }
static const char *system_name(const tfs_config *c, size_t i) { return c->systems[i].name; }
static const char *key_name(const tfs_config *c, size_t i) { return c->keys[i].name; }
static int pair_same(const tfs_config *a, size_t i, const tfs_config *b, size_t j)
{
    return pair_equal(&a->pairs[i], &b->pairs[j]);
}
static int system_same(const tfs_config *a, size_t i, const tfs_config *b, size_t j)
{
    return same_str(a->systems[i].plugin, b->systems[j].plugin) &&
           json_equal(a->systems[i].settings, b->systems[j].settings);
}
static int key_same(const tfs_config *a, size_t i, const tfs_config *b, size_t j)
{
    return a->keys[i].role == b->keys[j].role &&
           memcmp(a->keys[i].sha256, b->keys[j].sha256, 32) == 0;
}

static json_t *diff_items(const tfs_config *old, size_t n_old, const tfs_config *cfg,
                          size_t n_new, item_name_fn name, item_equal_fn same)
{
    json_t *added = json_array(), *removed = json_array(), *changed = json_array();
    for (size_t j = 0; j < n_new; j++) {
        size_t i = 0;
        while (i < n_old && strcmp(name(old, i), name(cfg, j)) != 0)
            i++;
        if (i == n_old)
            json_array_append_new(added, json_string(name(cfg, j)));
        else if (!same(old, i, cfg, j))
            json_array_append_new(changed, json_string(name(cfg, j)));
    }
    for (size_t i = 0; i < n_old; i++) {
        size_t j = 0;
        while (j < n_new && strcmp(name(old, i), name(cfg, j)) != 0)
            j++;
        if (j == n_new)
            json_array_append_new(removed, json_string(name(old, i)));
    }
    return json_pack("{sososo}", "added", added, "removed", removed, "changed", changed);
}

static json_t *config_changes(const tfs_config *old, const tfs_config *cfg)
{
    json_t *other = json_array();
    if (!same_str(old->transform_dir, cfg->transform_dir))
        json_array_append_new(other, json_string("transform_dir"));
    if (memcmp(&old->lua, &cfg->lua, sizeof old->lua) != 0)
        json_array_append_new(other, json_string("lua"));
    if (old->shutdown_grace_ms != cfg->shutdown_grace_ms)
        json_array_append_new(other, json_string("shutdown.grace"));
    return json_pack(
        "{sosososo}", "pairs",
        diff_items(old, old->n_pairs, cfg, cfg->n_pairs, pair_name, pair_same), "systems",
        diff_items(old, old->n_systems, cfg, cfg->n_systems, system_name, system_same),
        "api_keys", diff_items(old, old->n_keys, cfg, cfg->n_keys, key_name, key_same),
        "other", other);
}

/* Loads the config file again and makes it the current one; see tfs_api_reload_fn. */
static int daemon_reload(void *arg, json_t **changes, tfs_error *err)
{
    daemon_ctx *d = arg;
    tfs_config *cfg = NULL, *old = NULL;
    int rc;
    *changes = NULL;
    int told = 0;
    pthread_mutex_lock(&d->lock);
    old = tfs_config_slot_get(d->slot);
    if (!d->http) {
        rc = tfs_error_set(err, TFS_ETRANSIENT, "the daemon is still starting");
        goto out;
    }
    /* Under systemd, a reload is RELOADING=1 until READY=1, whatever its outcome; not
     * before the start-up's own READY=1, which a READY=1 here would anticipate. */
    if (d->notified_ready) {
        tfs_notify_reloading();
        told = 1;
    }
    if ((rc = tfs_config_load(d->config_path, &cfg, err)) ||
        (rc = check_systems(cfg, d->plugins, err)) || (rc = check_fixed(old, cfg, err)))
        goto out;
    if (!(*changes = config_changes(old, cfg))) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = tfs_http_set_keys(d->http, cfg->keys, cfg->n_keys, err)))
        goto out;
    char *text = json_dumps(*changes, JSON_COMPACT);
    tfs_log_info("core", "config \"%s\" reloaded: %s; runs under way keep the config they "
                 "started with", d->config_path, text ? text : "");
    free(text);
    tfs_config_slot_set(d->slot, cfg);
    cfg = NULL;
out:
    if (rc) {
        json_decref(*changes);
        *changes = NULL;
        tfs_log_error("core", "could not reload the config: %s; keeping the config in use",
                      err->message);
        if (err->hint[0])
            tfs_log_error("core", "hint: %s", err->hint);
    }
    tfs_config_free(cfg);
    tfs_config_free(old);
    if (told)
        tfs_notify("READY=1");
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* The command line: -1 to go on, or the exit code (after --help or a usage error). */
static int parse_options(int argc, char **argv, const char **config_path, int *check_only,
                         int *connect)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"connect", no_argument, NULL, 'n'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': *config_path = optarg; break;
        case 'k': *check_only = 1; break;
        case 'n': *connect = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': return tfs_version_print(stdout) == 0 ? 0 : 1;
        default: usage(stderr); return 2;
        }
    }
    if (!*config_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (*connect && !*check_only) {
        fprintf(stderr, "tfsyncd: --connect goes with --check\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* SIGTERM, SIGINT and SIGHUP into sigs, blocked: the main thread takes them synchronously
 * and every other thread inherits the mask and never sees them. */
static void take_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int start_http(const tfs_config *cfg, tfs_api *api, tfs_http_server **http,
                      tfs_error *err)
{
    size_t n_routes;
    const tfs_http_route *routes = tfs_api_routes(&n_routes);
    tfs_http_config hc = {
        .address = cfg->listen_address,
        .port = cfg->port,
        .threads = cfg->http_threads,
        .max_body = cfg->max_body,
        .max_connections = cfg->max_connections,
        .max_connections_per_ip = cfg->max_per_ip ? cfg->max_per_ip : UINT_MAX,
        .connection_timeout_s = cfg->idle_timeout_s,
        .header_timeout_ms = cfg->header_timeout_ms,
        .access_log_all = cfg->access_log_all != 0,
        .keys = cfg->keys,
        .n_keys = cfg->n_keys,
        .tls_cert_file = cfg->tls_cert_file,
        .tls_key_file = cfg->tls_key_file,
        .invoke = tfs_api_invoke,
    };
    return tfs_http_start(&hc, routes, n_routes, api, http, err);
}

/* Serves until SIGTERM or SIGINT; a SIGHUP reloads the config file. */
static void wait_for_stop(daemon_ctx *d, const sigset_t *sigs, const char *config_path)
{
    for (;;) {
        int sig = 0;
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return;
        json_t *changes = NULL;
        tfs_error err = {0};
        tfs_log_info("core", "SIGHUP: reloading the config \"%s\"", config_path);
        if (daemon_reload(d, &changes, &err) == 0)
            json_decref(changes);
    }
}

/* The open conflicts and dead letters of each pair into the metrics, so a scrape after a
 * restart has them before the pair's next run counts them again. Best effort. */
static void seed_metrics(tfs_store *store, const tfs_config *cfg)
{
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        int64_t conflicts, dead;
        tfs_error e = {0};
        if (tfs_store_pair_open_counts(store, cfg->pairs[i].name, &conflicts, &dead, &e) == 0)
            tfs_metrics_pair_open(cfg->pairs[i].name, conflicts, dead);
        else
            tfs_log_warn("core", "%s (the metrics have no open counts of \"%s\" until its "
                         "next run)", e.message, cfg->pairs[i].name);
    }
}

/* Longer than most functions on purpose: start-up in order and the release of everything
 * in reverse through one exit, which is easiest to check in one place. */
int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check_only = 0, connect = 0;
    /* Before jansson allocates anything: its allocation failures must be told from bad
     * JSON. */
    tfs_alloc_init();
    int code = parse_options(argc, argv, &config_path, &check_only, &connect);
    if (code >= 0)
        return code;
    tfs_log_init_from_env();
    sigset_t sigs;
    take_signals(&sigs);

    tfs_error err = {0};
    tfs_config *cfg = NULL; /* the start-up config; the slot holds its own reference */
    tfs_config_slot *slot = NULL;
    daemon_ctx d = {.config_path = config_path};
    pthread_mutex_init(&d.lock, NULL);
    tfs_plugin_host *plugins = NULL;
    tfs_store *store = NULL;
    tfs_runner *runner = NULL;
    tfs_health *health = NULL;
    tfs_status_cache *status_cache = NULL;
    tfs_http_server *http = NULL;
    tfs_api api;
    int api_ready = 0, status = 1;

    if (check_only) {
        /* Every problem on stdout, one a line, and the exit code says whether any. */
        if (tfs_config_load(config_path, &cfg, &err) == 0)
            tfs_log_set_json(cfg->log_json);
        if (!cfg ||
            tfs_plugin_host_load_dir(cfg->plugin_dir, cfg->roll_year, &plugins, &err) != 0) {
            tfs_config_check_print(stdout, &err);
            printf("config \"%s\" is not valid: 1 problem\n", config_path);
            goto out;
        }
        status = tfs_config_check(config_path, cfg, plugins, connect != 0, stdout) ? 1 : 0;
        goto out;
    }
    if (tfs_config_load(config_path, &cfg, &err) == 0)
        tfs_log_set_json(cfg->log_json); /* before anything else is logged */
    if (!cfg ||
        tfs_plugin_host_load_dir(cfg->plugin_dir, cfg->roll_year, &plugins, &err) != 0 ||
        check_systems(cfg, plugins, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        if (err.hint[0])
            tfs_log_error("core", "hint: %s", err.hint);
        goto out;
    }
    tfs_store_set_connect_timeout(cfg->state_connect_timeout_s);
    if (tfs_config_slot_new(tfs_config_retain(cfg), &slot, &err) != 0 ||
        tfs_store_open(cfg->state_conninfo, &store, &err) != 0 ||
        tfs_store_migrate(store, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    seed_metrics(store, cfg);
    if (tfs_health_start(cfg, plugins, &health, &err) != 0 ||
        tfs_runner_start(slot, plugins, health, &runner, &err) != 0 ||
        /* Before the resume: its first read is done before runs start again here. */
        tfs_status_cache_start(slot, health, runner, &status_cache, &err) != 0 ||
        tfs_runner_resume(runner, store, &err) != 0 ||
        tfs_api_init(&api, slot, plugins, runner, health, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    api_ready = 1;
    api.status = status_cache;
    d.slot = slot;
    d.plugins = plugins;
    api.reload = daemon_reload;
    api.reload_ctx = &d;
    if (start_http(cfg, &api, &http, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    pthread_mutex_lock(&d.lock);
    d.http = http;
    pthread_mutex_unlock(&d.lock);
    unsigned port = tfs_http_port(http);
    if (cfg->ready_file && write_ready_file(cfg->ready_file, port, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    tfs_log_info("core", "tfsyncd %s listening on %s:%u with %u workers",
                 tfs_version_string(), cfg->listen_address, port, cfg->workers);
    pthread_mutex_lock(&d.lock);
    tfs_notify_ready(cfg->listen_address, port);
    d.notified_ready = 1;
    pthread_mutex_unlock(&d.lock);
    wait_for_stop(&d, &sigs, config_path);
    tfs_notify_stopping();
    /* New requests get 503 while the batches in flight get shutdown.grace to finish. */
    tfs_config *now_cfg = tfs_config_slot_get(slot);
    long long grace = now_cfg->shutdown_grace_ms;
    tfs_config_free(now_cfg);
    tfs_log_info("core", "stopping: waiting at most %lld ms for the batches in flight", grace);
    tfs_http_drain(http);
    int stopped = tfs_runner_stop_within(runner, grace);
    runner = NULL;
    if (stopped != 0) {
        /* Threads are still in a batch: end the process without unwinding what they use.
         * Their transactions roll back when the connections close, as after a crash,
         * and the runs resume from their last committed batch at the next start-up. */
        tfs_http_stop(http);
        if (cfg->ready_file)
            unlink(cfg->ready_file);
        tfs_log_info("core", "stopped; the batches in flight were abandoned");
        fflush(NULL);
        _exit(0);
    }
    tfs_log_info("core", "stopped");
    status = 0;
out:
    tfs_http_stop(http);
    tfs_runner_stop(runner);
    /* After the threads that change runs (the runner, the requests) have stopped. */
    tfs_status_cache_stop(status_cache);
    if (api_ready)
        tfs_api_destroy(&api);
    tfs_health_stop(health);
    if (cfg && cfg->ready_file && http)
        unlink(cfg->ready_file);
    tfs_store_close(store);
    tfs_plugin_host_free(plugins);
    tfs_config_slot_free(slot);
    tfs_config_free(cfg);
    pthread_mutex_destroy(&d.lock);
    return status;
}
