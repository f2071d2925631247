/* core/config.c — loading and checking the config file; see config.h. */
#include "config_private.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hex.h"

static int resolve_in_place(const char *dir, char **p, tfs_error *err)
{
    if (!*p)
        return 0;
    char *r = tfs_config_resolve(dir, *p);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    free(*p);
    *p = r;
    return 0;
}

/* The key just parsed (the last of cfg->keys) against those before it: a hash configured
 * twice would give whichever entry comes first, whatever role the other says, and a name
 * twice makes two callers one actor in the audit trail. Both entries are named. */
static int check_key_unique(const tfs_config *cfg, const tfs_config_path *kp, tfs_error *err)
{
    size_t last = cfg->n_keys - 1;
    const tfs_api_key *k = &cfg->keys[last];
    for (size_t j = 0; j < last; j++) {
        const tfs_api_key *o = &cfg->keys[j];
        tfs_config_path ip = tfs_config_path_index(kp, last);
        tfs_config_path op = tfs_config_path_index(kp, j);
        if (memcmp(o->sha256, k->sha256, sizeof k->sha256) == 0) {
            tfs_config_path hp = tfs_config_path_key(&ip, "sha256");
            tfs_config_path ohp = tfs_config_path_key(&op, "sha256");
            tfs_config_fail(err, &hp, "the same key as %s (\"%s\", role \"%s\"); this entry "
                            "is \"%s\", role \"%s\"", ohp.text, o->name, tfs_role_name(o->role),
                            k->name, tfs_role_name(k->role));
            tfs_error_hint(err, "give each API key its own secret: remove one of the two "
                           "entries or give it a new key's SHA-256");
            return TFS_EINVAL;
        }
        if (strcmp(o->name, k->name) == 0) {
            tfs_config_path np = tfs_config_path_key(&ip, "name");
            tfs_config_path onp = tfs_config_path_key(&op, "name");
            tfs_config_fail(err, &np, "\"%s\" is already the name of %s", k->name, onp.text);
            tfs_error_hint(err, "a key's name is its actor in the audit trail: give each key "
                           "its own name");
            return TFS_EINVAL;
        }
    }
    return 0;
}

static int parse_keys(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"name", "role", "sha256", NULL};
    tfs_config_path top = {""};
    tfs_config_path kp = tfs_config_path_key(&top, "api_keys");
    const json_t *keys = json_object_get(root, "api_keys");
    if (!keys)
        return 0;
    if (!json_is_array(keys))
        return tfs_config_fail(err, &kp, "must be an array, not %s", tfs_config_kind(keys));
    cfg->keys = calloc(json_array_size(keys) + 1, sizeof *cfg->keys);
    if (!cfg->keys)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        tfs_config_path ip = tfs_config_path_index(&kp, i);
        if (!json_is_object(k))
            return tfs_config_fail(err, &ip, "must be an object, not %s", tfs_config_kind(k));
        int rc = tfs_config_check_keys(k, &ip, allowed, err);
        if (rc)
            return rc;
        tfs_api_key *key = &cfg->keys[cfg->n_keys++];
        char *role = NULL, *hex = NULL;
        if ((rc = tfs_config_get_string(k, &ip, "name", 1, NULL, &key->name, err)) ||
            (rc = tfs_config_get_string(k, &ip, "role", 1, NULL, &role, err)) ||
            (rc = tfs_config_get_string(k, &ip, "sha256", 1, NULL, &hex, err))) {
            free(role);
            free(hex);
            return rc;
        }
        int r = tfs_role_from_name(role);
        if (r <= 0) {
            tfs_config_path rp = tfs_config_path_key(&ip, "role");
            tfs_config_fail(err, &rp, "unknown role \"%s\"", role);
            tfs_error_hint(err, "use \"read\", \"operate\" or \"admin\"");
            free(role);
            free(hex);
            return TFS_EINVAL;
        }
        key->role = (tfs_role)r;
        int bad = strlen(hex) != 64;
        for (size_t j = 0; !bad && j < 32; j++) {
            int hi = tfs_hex_digit(hex[2 * j]), lo = tfs_hex_digit(hex[2 * j + 1]);
            if (hi < 0 || lo < 0)
                bad = 1;
            else
                key->sha256[j] = (unsigned char)(hi << 4 | lo);
        }
        free(role);
        free(hex);
        if (bad) {
            tfs_config_path hp = tfs_config_path_key(&ip, "sha256");
            tfs_config_fail(err, &hp, "must be 64 hexadecimal digits");
            tfs_error_hint(err, "store the SHA-256 of the key, e.g. printf %%s KEY | sha256sum");
            return TFS_EINVAL;
        }
        if ((rc = check_key_unique(cfg, &kp, err)))
            return rc;
    }
    return 0;
}

static int parse_systems(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"plugin", "settings", NULL};
    tfs_config_path top = {""};
    const json_t *systems;
    int rc = tfs_config_get_object(root, &top, "systems", 1, &systems, err);
    if (rc)
        return rc;
    tfs_config_path sp = tfs_config_path_key(&top, "systems");
    cfg->systems = calloc(json_object_size(systems) + 1, sizeof *cfg->systems);
    if (!cfg->systems)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)systems, name, s) {
        tfs_config_path np = tfs_config_path_key(&sp, name);
        tfs_config_system *sys = &cfg->systems[cfg->n_systems++];
        if (!(sys->name = strdup(name)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        if (!tfs_config_is_name(name))
            return tfs_config_fail(err, &np, "a system name may only hold a-z, 0-9, '-' and '_'");
        if (!json_is_object(s))
            return tfs_config_fail(err, &np, "must be an object, not %s", tfs_config_kind(s));
        if ((rc = tfs_config_check_keys(s, &np, allowed, err)) ||
            (rc = tfs_config_get_string(s, &np, "plugin", 1, NULL, &sys->plugin, err)))
            return rc;
        const json_t *settings;
        if ((rc = tfs_config_get_object(s, &np, "settings", 0, &settings, err)))
            return rc;
        sys->settings = settings ? json_deep_copy(settings) : json_object();
        if (!sys->settings)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return 0;
}

/* node_id, lease.{ttl, heartbeat, poll}, resume.max_deaths. */
static int parse_lease(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                       tfs_error *err)
{
    static const char *const lease_keys[] = {"ttl", "heartbeat", "poll", NULL};
    static const char *const resume_keys[] = {"max_deaths", NULL};
    const json_t *lease, *resume;
    tfs_config_path lp = tfs_config_path_key(top, "lease"), rp = tfs_config_path_key(top, "resume");
    long long deaths;
    int rc;
    if ((rc = tfs_config_get_string(root, top, "node_id", 0, NULL, &cfg->node_id, err)) ||
        (rc = tfs_config_get_object(root, top, "lease", 0, &lease, err)) ||
        (rc = tfs_config_get_object(root, top, "resume", 0, &resume, err)) ||
        (lease && (rc = tfs_config_check_keys(lease, &lp, lease_keys, err))) ||
        (resume && (rc = tfs_config_check_keys(resume, &rp, resume_keys, err))) ||
        (rc = tfs_config_get_duration(lease, &lp, "ttl", TFS_LEASE_TTL_MS_DEFAULT,
                                      TFS_LEASE_TTL_MS_MIN, TFS_LEASE_TTL_MS_MAX,
                                      &cfg->lease_ttl_ms, err)) ||
        (rc = tfs_config_get_duration(lease, &lp, "heartbeat", TFS_LEASE_HEARTBEAT_MS_DEFAULT,
                                      TFS_LEASE_HEARTBEAT_MS_MIN, cfg->lease_ttl_ms / 3,
                                      &cfg->lease_heartbeat_ms, err)) ||
        (rc = tfs_config_get_duration(lease, &lp, "poll", TFS_LEASE_POLL_MS_DEFAULT,
                                      TFS_LEASE_POLL_MS_MIN, TFS_LEASE_POLL_MS_MAX,
                                      &cfg->lease_poll_ms, err)))
        return rc;
    if (resume)
        rc = tfs_config_get_int(resume, &rp, "max_deaths", TFS_RESUME_MAX_DEATHS_DEFAULT,
                     TFS_RESUME_MAX_DEATHS_MIN, TFS_RESUME_MAX_DEATHS_MAX, &deaths, err);
    else
        deaths = TFS_RESUME_MAX_DEATHS_DEFAULT;
    if (rc)
        return rc;
    cfg->resume_max_deaths = (unsigned)deaths;
    if (cfg->node_id && (cfg->node_id[0] == '\0' || strlen(cfg->node_id) > TFS_NODE_ID_MAX)) {
        tfs_config_path np = tfs_config_path_key(top, "node_id");
        return tfs_config_fail(err, &np, "a node id has 1 to %d characters", TFS_NODE_ID_MAX);
    }
    return 0;
}

/* An optional object of root (an empty one when absent), its keys checked. */
static int section(const json_t *root, const tfs_config_path *top, const char *name,
                   const char *const *keys, const json_t **out, tfs_config_path *where,
                   tfs_error *err)
{
    static const json_t *empty;
    if (!empty)
        empty = json_object();
    *where = tfs_config_path_key(top, name);
    int rc = tfs_config_get_object(root, top, name, 0, out, err);
    if (rc)
        return rc;
    if (!*out)
        *out = empty;
    return tfs_config_check_keys(*out, where, keys, err);
}

/* listen.*: the API's address, port, threads, body limit and TLS files. */
static int parse_listen(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                        tfs_error *err)
{
    static const char *const keys[] = {"address", "port", "ready_file", "threads",
                                       "max_body_bytes", "tls_cert_file", "tls_key_file",
                                       "max_connections", "max_per_ip", "header_timeout",
                                       "idle_timeout", NULL};
    const json_t *l;
    tfs_config_path lp;
    long long port, threads, max_body, max_conn, per_ip, header_ms, idle_ms;
    int rc;
    if ((rc = section(root, top, "listen", keys, &l, &lp, err)) ||
        (rc = tfs_config_get_string(l, &lp, "address", 0, "127.0.0.1", &cfg->listen_address,
                                    err)) ||
        (rc =
             tfs_config_get_int(l, &lp, "port", TFS_HTTP_PORT_DEFAULT, 0, 65535, &port, err)) ||
        (rc = tfs_config_get_string(l, &lp, "ready_file", 0, NULL, &cfg->ready_file, err)) ||
        (rc = tfs_config_get_int(l, &lp, "threads", TFS_HTTP_THREADS_DEFAULT,
                                 TFS_HTTP_THREADS_MIN, TFS_HTTP_THREADS_MAX, &threads, err)) ||
        (rc = tfs_config_get_int(l, &lp, "max_body_bytes", (long long)TFS_HTTP_MAX_BODY_DEFAULT,
                                 TFS_HTTP_MAX_BODY_MIN, TFS_HTTP_MAX_BODY_MAX, &max_body,
                                 err)) ||
        (rc = tfs_config_get_string(l, &lp, "tls_cert_file", 0, NULL, &cfg->tls_cert_file,
                                    err)) ||
        (rc = tfs_config_get_string(l, &lp, "tls_key_file", 0, NULL, &cfg->tls_key_file, err)) ||
        (rc = tfs_config_get_int(l, &lp, "max_connections", TFS_HTTP_MAX_CONNECTIONS_DEFAULT,
                                 TFS_HTTP_MAX_CONNECTIONS_MIN, TFS_HTTP_MAX_CONNECTIONS_MAX,
                                 &max_conn, err)) ||
        (rc = tfs_config_get_int(l, &lp, "max_per_ip", TFS_HTTP_MAX_CONNECTIONS_PER_IP_DEFAULT,
                                 0, TFS_HTTP_MAX_CONNECTIONS_PER_IP_MAX, &per_ip, err)) ||
        (rc = tfs_config_get_duration(l, &lp, "header_timeout",
                                      TFS_HTTP_HEADER_TIMEOUT_MS_DEFAULT,
                                      TFS_HTTP_HEADER_TIMEOUT_MS_MIN,
                                      TFS_HTTP_HEADER_TIMEOUT_MS_MAX, &header_ms, err)) ||
        (rc = tfs_config_get_duration(l, &lp, "idle_timeout",
                                      TFS_HTTP_CONNECTION_TIMEOUT_S_DEFAULT * 1000LL,
                                      TFS_HTTP_IDLE_TIMEOUT_MS_MIN, TFS_HTTP_IDLE_TIMEOUT_MS_MAX,
                                      &idle_ms, err)))
        return rc;
    if (!!cfg->tls_cert_file != !!cfg->tls_key_file)
        return tfs_config_fail(err, &lp, "tls_cert_file and tls_key_file go together");
    if (per_ip > max_conn)
        return tfs_config_fail(err, &lp,
                               "max_per_ip (%lld) is larger than max_connections (%lld); set "
                               "max_per_ip to at most max_connections, or 0 for no per-address "
                               "limit",
                               per_ip, max_conn);
    cfg->max_connections = (unsigned)max_conn;
    cfg->max_per_ip = (unsigned)per_ip;
    cfg->header_timeout_ms = (unsigned)header_ms;
    cfg->idle_timeout_s = (unsigned)((idle_ms + 999) / 1000); /* libmicrohttpd's unit */
    cfg->port = (uint16_t)port;
    cfg->http_threads = (unsigned)threads;
    cfg->max_body = (size_t)max_body;
    return 0;
}

/* log.*: which requests the access log writes at info level, and the lines' format. */
static int parse_log(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                     tfs_error *err)
{
    static const char *const keys[] = {"access", "format", NULL};
    const json_t *l;
    tfs_config_path lp;
    char *access = NULL, *format = NULL;
    int rc;
    if ((rc = section(root, top, "log", keys, &l, &lp, err)) ||
        (rc = tfs_config_get_string(l, &lp, "access", 0, "errors", &access, err)) ||
        (rc = tfs_config_get_string(l, &lp, "format", 0, "text", &format, err)))
        goto out;
    if (strcmp(access, "all") == 0 || strcmp(access, "errors") == 0) {
        cfg->access_log_all = strcmp(access, "all") == 0;
    } else {
        tfs_config_path ap = tfs_config_path_key(&lp, "access");
        rc = tfs_config_fail(err, &ap,
                             "\"%s\" is not an access log setting; use \"errors\" (4xx and 5xx "
                             "at info, the rest at debug) or \"all\" (every request at info)",
                             access);
        goto out;
    }
    if (strcmp(format, "text") == 0 || strcmp(format, "json") == 0) {
        cfg->log_json = strcmp(format, "json") == 0;
    } else {
        tfs_config_path fp = tfs_config_path_key(&lp, "format");
        rc = tfs_config_fail(err, &fp,
                             "\"%s\" is not a log format; use \"text\" (lines for people, the "
                             "default) or \"json\" (one JSON object a line, for collectors)",
                             format);
    }
out:
    free(access);
    free(format);
    return rc;
}

/* metrics.*: whether GET /metrics answers without an API key. */
/* api.*: how the API's status answers are kept (status_cache.h). */
static int parse_api(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                     tfs_error *err)
{
    static const char *const keys[] = {"status_refresh", NULL};
    const json_t *a;
    tfs_config_path ap;
    int rc;
    if ((rc = section(root, top, "api", keys, &a, &ap, err)))
        return rc;
    return tfs_config_get_duration(a, &ap, "status_refresh", TFS_STATUS_REFRESH_MS_DEFAULT,
                                   TFS_STATUS_REFRESH_MS_MIN, TFS_STATUS_REFRESH_MS_MAX,
                                   &cfg->status_refresh_ms, err);
}

static int parse_metrics(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                         tfs_error *err)
{
    static const char *const keys[] = {"public", NULL};
    const json_t *m;
    tfs_config_path mp;
    int rc;
    if ((rc = section(root, top, "metrics", keys, &m, &mp, err)))
        return rc;
    const json_t *pub = json_object_get(m, "public");
    if (!pub)
        return 0;
    if (!json_is_boolean(pub)) {
        tfs_config_path pp = tfs_config_path_key(&mp, "public");
        return tfs_config_fail(err, &pp,
                               "must be true (GET /metrics answers without an API key) or "
                               "false (it needs a key of role read, the default), not %s",
                               tfs_config_kind(pub));
    }
    cfg->metrics_public = json_is_true(pub);
    return 0;
}

/* state.*, plugin_dir, transform_dir, roll_year, workers: what the daemon stands on. */
static int parse_ground(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                        tfs_error *err)
{
    static const char *const state_keys[] = {"conninfo", "connect_timeout", NULL};
    const json_t *state;
    tfs_config_path sp = tfs_config_path_key(top, "state");
    long long sconn, roll_year, workers;
    int rc;
    if ((rc = tfs_config_get_object(root, top, "state", 1, &state, err)) ||
        (rc = tfs_config_check_keys(state, &sp, state_keys, err)) ||
        (rc = tfs_config_get_string(state, &sp, "conninfo", 1, NULL, &cfg->state_conninfo,
                                    err)) ||
        (rc = tfs_config_get_duration(state, &sp, "connect_timeout",
                                      TFS_STATE_CONNECT_TIMEOUT_S_DEFAULT * 1000, 1000,
                                      TFS_STATE_CONNECT_TIMEOUT_S_MAX * 1000, &sconn, err)) ||
        (rc = tfs_config_get_string(root, top, "plugin_dir", 1, NULL, &cfg->plugin_dir, err)) ||
        (rc = tfs_config_get_string(root, top, "transform_dir", 1, NULL, &cfg->transform_dir,
                                    err)) ||
        (rc = tfs_config_get_int(root, top, "roll_year", 0, 1900, 2200, &roll_year, err)) ||
        (rc = tfs_config_get_int(root, top, "workers", 2, 1, 64, &workers, err)))
        return rc;
    if (!json_object_get(root, "roll_year")) {
        tfs_config_path rp = tfs_config_path_key(top, "roll_year");
        rc = tfs_config_fail(err, &rp, "missing (the tax roll year, e.g. 2026, is required)");
        tfs_error_hint(err, "the roll year comes from the config, never from the clock");
        return rc;
    }
    cfg->state_connect_timeout_s = (sconn + 999) / 1000;
    cfg->roll_year = (int)roll_year;
    cfg->workers = (unsigned)workers;
    return 0;
}

/* lua.*: the limits of a script's state and call. */
static int parse_lua(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                     tfs_error *err)
{
    static const char *const keys[] = {"memory_bytes", "instructions", "max_string", "record_ms",
                                       NULL};
    const json_t *lua;
    tfs_config_path up;
    long long lmem, lins, lstr, lms;
    int rc;
    if ((rc = section(root, top, "lua", keys, &lua, &up, err)) ||
        (rc = tfs_config_get_int(lua, &up, "memory_bytes", (long long)TFS_LUA_MEMORY_DEFAULT,
                      TFS_LUA_MEMORY_MIN, TFS_LUA_MEMORY_MAX, &lmem, err)) ||
        (rc = tfs_config_get_int(lua, &up, "instructions", (long long)TFS_LUA_INSTRUCTIONS_DEFAULT,
                      TFS_LUA_INSTRUCTIONS_MIN, TFS_LUA_INSTRUCTIONS_MAX, &lins, err)) ||
        (rc = tfs_config_get_int(lua, &up, "max_string", (long long)TFS_LUA_MAX_STRING_DEFAULT,
                      TFS_LUA_MAX_STRING_MIN, TFS_LUA_MAX_STRING_MAX, &lstr, err)) ||
        (rc = tfs_config_get_int(lua, &up, "record_ms", (long long)TFS_LUA_RECORD_MS_DEFAULT,
                      TFS_LUA_RECORD_MS_MIN, TFS_LUA_RECORD_MS_MAX, &lms, err)))
        return rc;
    cfg->lua = (tfs_lua_limits){(size_t)lmem, (uint64_t)lins, (size_t)lstr, (unsigned)lms};
    return 0;
}

/* breaker.*, retry.*, shutdown.*: how outages are waited out and how a stop ends. */
static int parse_healing(const json_t *root, const tfs_config_path *top, tfs_config *cfg,
                         tfs_error *err)
{
    static const char *const breaker_keys[] = {"failures", "max_probe_interval", NULL};
    static const char *const retry_keys[] = {"max_backoff", NULL};
    static const char *const shutdown_keys[] = {"grace", NULL};
    static const char *const jobs_keys[] = {"wait", NULL};
    const json_t *breaker, *retry, *shutdown, *jobs;
    tfs_config_path bp, rp, hp, jp;
    long long bfail, bprobe, rmax;
    int rc;
    if ((rc = section(root, top, "breaker", breaker_keys, &breaker, &bp, err)) ||
        (rc = tfs_config_get_int(breaker, &bp, "failures", TFS_BREAKER_FAILURES_DEFAULT,
                      TFS_BREAKER_FAILURES_MIN, TFS_BREAKER_FAILURES_MAX, &bfail, err)) ||
        (rc = tfs_config_get_duration(breaker, &bp, "max_probe_interval",
                           TFS_BREAKER_MAX_PROBE_INTERVAL_MS_DEFAULT,
                           TFS_BREAKER_FIRST_PROBE_MS_DEFAULT, TFS_DURATION_MS_MAX, &bprobe,
                           err)) ||
        (rc = section(root, top, "retry", retry_keys, &retry, &rp, err)) ||
        (rc = tfs_config_get_duration(retry, &rp, "max_backoff", TFS_RETRY_MAX_BACKOFF_MS_DEFAULT,
                           TFS_RETRY_BASE_MS_DEFAULT, TFS_DURATION_MS_MAX, &rmax, err)) ||
        (rc = section(root, top, "shutdown", shutdown_keys, &shutdown, &hp, err)) ||
        (rc = section(root, top, "jobs", jobs_keys, &jobs, &jp, err)) ||
        (rc = tfs_config_get_duration(jobs, &jp, "wait", TFS_JOB_WAIT_MS_DEFAULT, 1,
                                      TFS_JOB_WAIT_MS_MAX, &cfg->job_wait_ms, err)))
        return rc;
    cfg->breaker_failures = (unsigned)bfail;
    cfg->breaker_max_probe_interval_ms = bprobe;
    cfg->retry_max_backoff_ms = rmax;
    cfg->shutdown_grace_ms = TFS_SHUTDOWN_GRACE_MS_DEFAULT;
    const json_t *grace = json_object_get(shutdown, "grace");
    if (grace) {
        tfs_config_path gp = tfs_config_path_key(&hp, "grace");
        long long ms =
            json_is_string(grace) ? tfs_config_duration_ms(json_string_value(grace)) : -1;
        if (ms < TFS_SHUTDOWN_GRACE_MS_MIN || ms > TFS_SHUTDOWN_GRACE_MS_MAX)
            return tfs_config_fail(err, &gp, "not a duration between 100ms and 1h (e.g. \"5s\")");
        cfg->shutdown_grace_ms = ms;
    }
    return 0;
}

/* The config's paths made absolute against its folder; plugin_dir and transform_dir
 * must be folders. */
static int resolve_paths(const tfs_config_path *top, tfs_config *cfg, tfs_error *err)
{
    int rc;
    if ((rc = resolve_in_place(cfg->dir, &cfg->ready_file, err)) ||
        (rc = resolve_in_place(cfg->dir, &cfg->plugin_dir, err)) ||
        (rc = resolve_in_place(cfg->dir, &cfg->transform_dir, err)) ||
        (rc = resolve_in_place(cfg->dir, &cfg->tls_cert_file, err)) ||
        (rc = resolve_in_place(cfg->dir, &cfg->tls_key_file, err)))
        return rc;
    const char *dirs[] = {cfg->plugin_dir, cfg->transform_dir};
    const char *dir_keys[] = {"plugin_dir", "transform_dir"};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (stat(dirs[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            tfs_config_path dp = tfs_config_path_key(top, dir_keys[i]);
            return tfs_config_fail(err, &dp, "no such directory \"%s\"", dirs[i]);
        }
    }
    return 0;
}

int tfs_config_parse(const json_t *root, const char *dir, tfs_config **out, tfs_error *err)
{
    static const char *const allowed[] = {"listen", "state", "plugin_dir", "transform_dir",
                                          "roll_year", "workers", "lua", "api_keys",
                                          "systems", "pairs", "node_id", "lease", "resume",
                                          "shutdown", "breaker", "retry", "jobs", "log",
                                          "metrics", "api", NULL};
    tfs_config_path top = {""};
    int rc;
    *out = NULL;
    if (!json_is_object(root))
        return tfs_config_fail(err, &top, "the config must be a JSON object, not %s",
                               tfs_config_kind(root));
    tfs_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    atomic_init(&cfg->refs, 1);
    if (dir && !(cfg->dir = strdup(dir))) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = tfs_config_check_keys(root, &top, allowed, err)) ||
        (rc = parse_listen(root, &top, cfg, err)) || (rc = parse_log(root, &top, cfg, err)) ||
        (rc = parse_metrics(root, &top, cfg, err)) || (rc = parse_api(root, &top, cfg, err)) ||
        (rc = parse_ground(root, &top, cfg, err)) || (rc = parse_lua(root, &top, cfg, err)) ||
        (rc = parse_healing(root, &top, cfg, err)) ||
        (rc = resolve_paths(&top, cfg, err)) || (rc = parse_lease(root, &top, cfg, err)) ||
        (rc = parse_keys(root, cfg, err)) || (rc = parse_systems(root, cfg, err)) ||
        (rc = tfs_config_parse_pairs(root, cfg, err)))
        goto out;
    *out = cfg;
    cfg = NULL;
out:
    tfs_config_free(cfg);
    return rc;
}

int tfs_config_load(const char *file, tfs_config **out, tfs_error *err)
{
    json_error_t jerr;
    *out = NULL;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tfs_error_set(err, TFS_EINVAL, "could not read config \"%s\": %s (line %d, column %d)",
                      file, jerr.text, jerr.line, jerr.column);
        return TFS_EINVAL;
    }
    char dir[PATH_MAX];
    const char *slash = strrchr(file, '/');
    if (!slash) {
        if (!getcwd(dir, sizeof dir))
            snprintf(dir, sizeof dir, ".");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
        if (dir[0] == '\0')
            snprintf(dir, sizeof dir, "/");
    }
    /* Absolute, as plugins are promised (SDK config_dir): a relative path a plugin resolves
     * must not depend on the daemon's working directory later. */
    char abs[PATH_MAX];
    if (dir[0] != '/' && realpath(dir, abs))
        snprintf(dir, sizeof dir, "%s", abs);
    int rc = tfs_config_parse(root, dir, out, err);
    if (rc)
        tfs_error_prefix(err, "invalid config \"%s\"", file);
    json_decref(root);
    return rc;
}

tfs_config *tfs_config_retain(const tfs_config *cfg)
{
    tfs_config *c = (tfs_config *)cfg;
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void tfs_config_free(tfs_config *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    free(cfg->dir);
    free(cfg->listen_address);
    free(cfg->node_id);
    free(cfg->ready_file);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->state_conninfo);
    free(cfg->plugin_dir);
    free(cfg->transform_dir);
    for (size_t i = 0; i < cfg->n_keys; i++)
        free(cfg->keys[i].name);
    free(cfg->keys);
    for (size_t i = 0; i < cfg->n_systems; i++) {
        free(cfg->systems[i].name);
        free(cfg->systems[i].plugin);
        json_decref(cfg->systems[i].settings);
    }
    free(cfg->systems);
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        tfs_config_pair *p = &cfg->pairs[i];
        free(p->name);
        free(p->source);
        free(p->target);
        free(p->deactivate_field);
        free(p->incremental_every);
        json_decref(p->conflicts);
        free(p->conflict.rules);
        json_decref(p->rules);
        tfs_config_rules_free(&p->validation);
        for (size_t j = 0; j < p->n_entities; j++) {
            tfs_config_entity *e = &p->entities[j];
            free(e->source);
            for (size_t k = 0; k < e->n_targets; k++)
                free(e->targets[k]);
            free(e->targets);
            free(e->script);
        }
        free(p->entities);
    }
    free(cfg->pairs);
    free(cfg);
}

const tfs_config_pair *tfs_config_pair_get(const tfs_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_pairs; i++)
        if (strcmp(cfg->pairs[i].name, name) == 0)
            return &cfg->pairs[i];
    return NULL;
}

const tfs_config_system *tfs_config_system_get(const tfs_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_systems; i++)
        if (strcmp(cfg->systems[i].name, name) == 0)
            return &cfg->systems[i];
    return NULL;
}

/* ---- the current config ----------------------------------------------------------- */

struct tfs_config_slot {
    pthread_mutex_t lock;
    tfs_config *cfg; /* one reference, the slot's */
};

int tfs_config_slot_new(tfs_config *cfg, tfs_config_slot **out, tfs_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        tfs_config_free(cfg);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&(*out)->lock, NULL);
    (*out)->cfg = cfg;
    return 0;
}

tfs_config *tfs_config_slot_get(tfs_config_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    tfs_config *cfg = tfs_config_retain(slot->cfg);
    pthread_mutex_unlock(&slot->lock);
    return cfg;
}

void tfs_config_slot_set(tfs_config_slot *slot, tfs_config *cfg)
{
    pthread_mutex_lock(&slot->lock);
    tfs_config *old = slot->cfg;
    slot->cfg = cfg;
    pthread_mutex_unlock(&slot->lock);
    tfs_config_free(old);
}

void tfs_config_slot_free(tfs_config_slot *slot)
{
    if (!slot)
        return;
    tfs_config_free(slot->cfg);
    pthread_mutex_destroy(&slot->lock);
    free(slot);
}
