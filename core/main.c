/* core/main.c — tfsyncd: loads the config and the plugins, migrates the state store,
 * starts the workers and the HTTP API, writes the ready file, and runs until SIGTERM or
 * SIGINT, when it stops between batches so that nothing is lost. */
#include <errno.h>
#include <getopt.h>
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
#include "plugin_host.h"
#include "runner.h"
#include "store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tfsyncd --config FILE [--check]\n"
               "  -c, --config FILE  the daemon's JSON config\n"
               "      --check        check the config and the plugins, then exit\n"
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

/* Every system whose plugin is loaded must have settings the plugin declares; a system
 * whose plugin was refused is reported and left down, the daemon goes on. */
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
        char prefix[256];
        char **values;
        snprintf(prefix, sizeof prefix, "systems.%s.settings", s->name);
        int rc = tfs_plugin_check_settings(p, s->settings, prefix, &values, err);
        if (rc)
            return rc;
        tfs_plugin_values_free(p, values);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int check_only = 0, c;
    /* Before jansson allocates anything: its allocation failures must be told from bad
     * JSON. */
    tfs_alloc_init();
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'k': check_only = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    tfs_log_init_from_env();

    /* Signals are taken synchronously by the main thread; every other thread inherits
     * the mask and never sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    tfs_error err = {0};
    tfs_config *cfg = NULL;
    tfs_plugin_host *plugins = NULL;
    tfs_store *store = NULL;
    tfs_runner *runner = NULL;
    tfs_health *health = NULL;
    tfs_http_server *http = NULL;
    tfs_api api;
    int api_ready = 0, status = 1;

    if (tfs_config_load(config_path, &cfg, &err) != 0 ||
        tfs_plugin_host_load_dir(cfg->plugin_dir, cfg->roll_year, &plugins, &err) != 0 ||
        check_systems(cfg, plugins, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        if (err.hint[0])
            tfs_log_error("core", "hint: %s", err.hint);
        goto out;
    }
    if (check_only) {
        printf("config \"%s\" is valid; %zu plugins loaded, %zu refused\n", config_path,
               plugins->n, plugins->n_refused);
        status = 0;
        goto out;
    }
    tfs_store_set_connect_timeout(cfg->state_connect_timeout_s);
    if (tfs_store_open(cfg->state_conninfo, &store, &err) != 0 ||
        tfs_store_migrate(store, &err) != 0 ||
        tfs_health_start(cfg, plugins, &health, &err) != 0 ||
        tfs_runner_start(cfg, plugins, health, &runner, &err) != 0 ||
        tfs_runner_resume(runner, store, &err) != 0 ||
        tfs_api_init(&api, cfg, plugins, runner, health, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    api_ready = 1;
    size_t n_routes;
    const tfs_http_route *routes = tfs_api_routes(&n_routes);
    tfs_http_config hc = {
        .address = cfg->listen_address,
        .port = cfg->port,
        .threads = cfg->http_threads,
        .max_body = cfg->max_body,
        .keys = cfg->keys,
        .n_keys = cfg->n_keys,
        .tls_cert_file = cfg->tls_cert_file,
        .tls_key_file = cfg->tls_key_file,
    };
    if (tfs_http_start(&hc, routes, n_routes, &api, &http, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    unsigned port = tfs_http_port(http);
    if (cfg->ready_file && write_ready_file(cfg->ready_file, port, &err) != 0) {
        tfs_log_error("core", "%s", err.message);
        goto out;
    }
    tfs_log_info("core", "tfsyncd listening on %s:%u with %u workers", cfg->listen_address,
                 port, cfg->workers);
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            tfs_log_info("core", "SIGHUP: scripts reload by themselves when they change");
            continue;
        }
        tfs_log_info("core", "signal %d: stopping", sig);
        break;
    }
    status = 0;
out:
    tfs_http_stop(http);
    tfs_runner_stop(runner);
    if (api_ready)
        tfs_api_destroy(&api);
    tfs_health_stop(health);
    if (cfg && cfg->ready_file && http)
        unlink(cfg->ready_file);
    tfs_store_close(store);
    tfs_plugin_host_free(plugins);
    tfs_config_free(cfg);
    return status;
}
