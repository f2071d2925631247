/* core/config.c — loading and checking the config file; see config.h. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where in the document a check is: a JSON path built as we descend. */
typedef struct path {
    char text[256];
} path;

static path path_key(const path *p, const char *key)
{
    path out;
    if (p->text[0])
        snprintf(out.text, sizeof out.text, "%s.%s", p->text, key);
    else
        snprintf(out.text, sizeof out.text, "%s", key);
    return out;
}

static path path_index(const path *p, size_t i)
{
    path out;
    snprintf(out.text, sizeof out.text, "%s[%zu]", p->text, i);
    return out;
}

static int fail(tfs_error *err, const path *p, const char *fmt, ...) TFS_PRINTF(3, 4);
static int fail(tfs_error *err, const path *p, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tfs_error_set(err, TFS_EINVAL, "%s: %s", p->text[0] ? p->text : "(top level)", msg);
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Refuses keys of obj that are not in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const path *p, const char *const *allowed,
                      tfs_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, key) == 0;
        if (!ok) {
            path kp = path_key(p, key);
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 1);
                if (a[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            fail(err, &kp, "unknown key");
            tfs_error_hint(err, "the keys allowed here are: %s", list);
            return TFS_EINVAL;
        }
    }
    return 0;
}

static int get_object(const json_t *parent, const path *p, const char *key, int required,
                      const json_t **out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    path kp = path_key(p, key);
    *out = NULL;
    if (!v)
        return required ? fail(err, &kp, "missing (an object is required)") : 0;
    if (!json_is_object(v))
        return fail(err, &kp, "must be an object, not %s", json_kind(v));
    *out = v;
    return 0;
}

static int get_string(const json_t *parent, const path *p, const char *key, int required,
                      const char *def, char **out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    path kp = path_key(p, key);
    *out = NULL;
    if (!v) {
        if (required)
            return fail(err, &kp, "missing (a string is required)");
        if (def && !(*out = strdup(def)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, &kp, "must be a string, not %s", json_kind(v));
    if (json_string_length(v) == 0 && required)
        return fail(err, &kp, "must not be empty");
    if (!(*out = strdup(json_string_value(v))))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    return 0;
}

static int get_int(const json_t *parent, const path *p, const char *key, long long def,
                   long long min, long long max, long long *out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    path kp = path_key(p, key);
    *out = def;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(err, &kp, "must be an integer, not %s", json_kind(v));
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return fail(err, &kp, "%lld is out of range (%lld to %lld)", x, min, max);
    *out = x;
    return 0;
}

/* Makes a path relative to the config's folder absolute. */
static char *resolve(const char *dir, const char *p)
{
    if (!p)
        return NULL;
    if (p[0] == '/' || !dir)
        return strdup(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", dir, p);
    return out;
}

static int resolve_in_place(const char *dir, char **p, tfs_error *err)
{
    if (!*p)
        return 0;
    char *r = resolve(dir, *p);
    if (!r)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    free(*p);
    *p = r;
    return 0;
}

static int is_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_keys(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"name", "role", "sha256", NULL};
    path top = {""};
    path kp = path_key(&top, "api_keys");
    const json_t *keys = json_object_get(root, "api_keys");
    if (!keys)
        return 0;
    if (!json_is_array(keys))
        return fail(err, &kp, "must be an array, not %s", json_kind(keys));
    cfg->keys = calloc(json_array_size(keys) + 1, sizeof *cfg->keys);
    if (!cfg->keys)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        path ip = path_index(&kp, i);
        if (!json_is_object(k))
            return fail(err, &ip, "must be an object, not %s", json_kind(k));
        int rc = check_keys(k, &ip, allowed, err);
        if (rc)
            return rc;
        tfs_api_key *key = &cfg->keys[cfg->n_keys++];
        char *role = NULL, *hex = NULL;
        if ((rc = get_string(k, &ip, "name", 1, NULL, &key->name, err)) ||
            (rc = get_string(k, &ip, "role", 1, NULL, &role, err)) ||
            (rc = get_string(k, &ip, "sha256", 1, NULL, &hex, err))) {
            free(role);
            free(hex);
            return rc;
        }
        int r = tfs_role_from_name(role);
        if (r <= 0) {
            path rp = path_key(&ip, "role");
            fail(err, &rp, "unknown role \"%s\"", role);
            tfs_error_hint(err, "use \"read\", \"operate\" or \"admin\"");
            free(role);
            free(hex);
            return TFS_EINVAL;
        }
        key->role = (tfs_role)r;
        int bad = strlen(hex) != 64;
        for (size_t j = 0; !bad && j < 32; j++) {
            int hi = hex_value(hex[2 * j]), lo = hex_value(hex[2 * j + 1]);
            if (hi < 0 || lo < 0)
                bad = 1;
            else
                key->sha256[j] = (unsigned char)(hi << 4 | lo);
        }
        free(role);
        free(hex);
        if (bad) {
            path hp = path_key(&ip, "sha256");
            fail(err, &hp, "must be 64 hexadecimal digits");
            tfs_error_hint(err, "store the SHA-256 of the key, e.g. printf %%s KEY | sha256sum");
            return TFS_EINVAL;
        }
    }
    return 0;
}

static int parse_systems(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"plugin", "settings", NULL};
    path top = {""};
    const json_t *systems;
    int rc = get_object(root, &top, "systems", 1, &systems, err);
    if (rc)
        return rc;
    path sp = path_key(&top, "systems");
    cfg->systems = calloc(json_object_size(systems) + 1, sizeof *cfg->systems);
    if (!cfg->systems)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)systems, name, s) {
        path np = path_key(&sp, name);
        tfs_config_system *sys = &cfg->systems[cfg->n_systems++];
        if (!(sys->name = strdup(name)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        if (!is_name(name))
            return fail(err, &np, "a system name may only hold a-z, 0-9, '-' and '_'");
        if (!json_is_object(s))
            return fail(err, &np, "must be an object, not %s", json_kind(s));
        if ((rc = check_keys(s, &np, allowed, err)) ||
            (rc = get_string(s, &np, "plugin", 1, NULL, &sys->plugin, err)))
            return rc;
        const json_t *settings;
        if ((rc = get_object(s, &np, "settings", 0, &settings, err)))
            return rc;
        sys->settings = settings ? json_deep_copy(settings) : json_object();
        if (!sys->settings)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_entity(const json_t *e, const path *ep, const tfs_config *cfg,
                        tfs_config_entity *ent, tfs_error *err)
{
    static const char *const allowed[] = {"source", "targets", "script", NULL};
    int rc;
    if (!json_is_object(e))
        return fail(err, ep, "must be an object, not %s", json_kind(e));
    if ((rc = check_keys(e, ep, allowed, err)) ||
        (rc = get_string(e, ep, "source", 1, NULL, &ent->source, err)) ||
        (rc = get_string(e, ep, "script", 1, NULL, &ent->script, err)))
        return rc;
    path tp = path_key(ep, "targets");
    const json_t *targets = json_object_get(e, "targets");
    if (!targets || !json_is_array(targets) || json_array_size(targets) == 0)
        return fail(err, &tp, "must be a non-empty array of target entity names");
    ent->targets = calloc(json_array_size(targets), sizeof *ent->targets);
    if (!ent->targets)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t) {
        if (!json_is_string(t)) {
            path ip = path_index(&tp, i);
            return fail(err, &ip, "must be a string, not %s", json_kind(t));
        }
        if (!(ent->targets[ent->n_targets++] = strdup(json_string_value(t))))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    /* The script must exist now: a typo found at the first run is found too late. */
    path sp = path_key(ep, "script");
    if (strstr(ent->script, "..") || ent->script[0] == '/')
        return fail(err, &sp, "\"%s\" must be a file name inside the transform directory",
                    ent->script);
    char *full = resolve(cfg->transform_dir, ent->script);
    if (!full)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    struct stat st;
    int missing = stat(full, &st) != 0 || !S_ISREG(st.st_mode);
    free(full);
    if (missing) {
        fail(err, &sp, "no such file \"%s\" in the transform directory \"%s\"", ent->script,
             cfg->transform_dir);
        tfs_error_hint(err, "put the script in transform_dir or fix its name");
        return TFS_EINVAL;
    }
    return 0;
}

/* "30s", "500ms", "5m", "1h" -> milliseconds, or -1. */
static long long parse_duration_ms(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v <= 0)
        return -1;
    long long unit = strcmp(end, "ms") == 0 ? 1
                     : strcmp(end, "s") == 0 ? 1000
                     : strcmp(end, "m") == 0 ? 60000
                     : strcmp(end, "h") == 0 ? 3600000
                                             : -1;
    if (unit < 0 || v > (1LL << 40) / unit)
        return -1;
    return v * unit;
}

/* A duration setting ("30s") into *ms: def when absent, refused outside [min, max]. */
static int get_duration(const json_t *obj, const path *p, const char *key, long long def,
                        long long min, long long max, long long *ms, tfs_error *err)
{
    char *text = NULL;
    *ms = def;
    if (!obj)
        return 0;
    int rc = get_string(obj, p, key, 0, NULL, &text, err);
    if (rc || !text)
        return rc;
    *ms = parse_duration_ms(text);
    if (*ms < min || *ms > max) {
        path kp = path_key(p, key);
        rc = fail(err, &kp, "\"%s\" is not a duration from %lldms to %lldms", text, min, max);
        tfs_error_hint(err, "write a whole number with ms, s, m or h, e.g. \"30s\"");
    }
    free(text);
    return rc;
}

static int parse_pair_extras(const json_t *p, const path *ip, tfs_config_pair *pair,
                             tfs_error *err)
{
    static const char *const schedule_keys[] = {"incremental_every", NULL};
    char *action = NULL;
    int rc;
    long long max_wait;
    if ((rc = get_duration(p, ip, "max_wait", 0, 1, TFS_DURATION_MS_MAX, &max_wait, err)))
        goto out;
    pair->max_wait_ms = max_wait;
    if ((rc = get_string(p, ip, "delete_action", 0, "delete", &action, err)) ||
        (rc = get_string(p, ip, "deactivate_field", 0, "deactivat", &pair->deactivate_field,
                         err)))
        goto out;
    if (strcmp(action, "delete") == 0) {
        pair->delete_action = TFS_DELETE_ROWS;
    } else if (strcmp(action, "deactivate") == 0) {
        pair->delete_action = TFS_DELETE_DEACTIVATE;
    } else {
        path ap = path_key(ip, "delete_action");
        rc = fail(err, &ap, "unknown action \"%s\"", action);
        tfs_error_hint(err, "use \"delete\" (remove the target rows) or \"deactivate\" (keep "
                       "them with their deactivate_field set)");
        goto out;
    }
    const json_t *sched;
    if ((rc = get_object(p, ip, "schedule", 0, &sched, err)) || !sched)
        goto out;
    path sp = path_key(ip, "schedule");
    char *every = NULL;
    if ((rc = check_keys(sched, &sp, schedule_keys, err)) ||
        (rc = get_string(sched, &sp, "incremental_every", 1, NULL, &every, err)))
        goto out;
    pair->incremental_every_ms = parse_duration_ms(every);
    if (pair->incremental_every_ms < 100) {
        path ep = path_key(&sp, "incremental_every");
        rc = fail(err, &ep, "\"%s\" is not a duration of at least 100ms", every);
        tfs_error_hint(err, "write a number and a unit: \"500ms\", \"30s\", \"5m\", \"1h\"");
        free(every);
    } else {
        pair->incremental_every = every;
    }
out:
    free(action);
    return rc;
}

static int parse_pairs(const json_t *root, tfs_config *cfg, tfs_error *err)
{
    static const char *const allowed[] = {"name", "source", "target", "batch_size", "entities",
                                          "delete_action", "deactivate_field", "schedule",
                                          "max_wait", NULL};
    path top = {""};
    path pp = path_key(&top, "pairs");
    const json_t *pairs = json_object_get(root, "pairs");
    if (!pairs)
        return fail(err, &pp, "missing (an array of pairs is required)");
    if (!json_is_array(pairs))
        return fail(err, &pp, "must be an array, not %s", json_kind(pairs));
    cfg->pairs = calloc(json_array_size(pairs) + 1, sizeof *cfg->pairs);
    if (!cfg->pairs)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    size_t i;
    json_t *p;
    json_array_foreach(pairs, i, p) {
        path ip = path_index(&pp, i);
        int rc;
        if (!json_is_object(p))
            return fail(err, &ip, "must be an object, not %s", json_kind(p));
        tfs_config_pair *pair = &cfg->pairs[cfg->n_pairs++];
        long long batch;
        if ((rc = check_keys(p, &ip, allowed, err)) ||
            (rc = get_string(p, &ip, "name", 1, NULL, &pair->name, err)) ||
            (rc = get_string(p, &ip, "source", 1, NULL, &pair->source, err)) ||
            (rc = get_string(p, &ip, "target", 1, NULL, &pair->target, err)) ||
            (rc = get_int(p, &ip, "batch_size", 1000, 1, 100000, &batch, err)))
            return rc;
        pair->batch_size = (size_t)batch;
        if ((rc = parse_pair_extras(p, &ip, pair, err)))
            return rc;
        path np = path_key(&ip, "name");
        if (!is_name(pair->name))
            return fail(err, &np, "\"%s\" may only hold a-z, 0-9, '-' and '_'", pair->name);
        for (size_t j = 0; j + 1 < cfg->n_pairs; j++)
            if (strcmp(cfg->pairs[j].name, pair->name) == 0)
                return fail(err, &np, "a pair named \"%s\" is already defined at pairs[%zu]",
                            pair->name, j);
        const char *roles[] = {"source", "target"};
        const char *names[] = {pair->source, pair->target};
        for (int r = 0; r < 2; r++) {
            if (!tfs_config_system_get(cfg, names[r])) {
                path rp = path_key(&ip, roles[r]);
                fail(err, &rp, "unknown system \"%s\"", names[r]);
                tfs_error_hint(err, "define it under \"systems\" or fix the name");
                return TFS_EINVAL;
            }
        }
        path ep = path_key(&ip, "entities");
        const json_t *ents = json_object_get(p, "entities");
        if (!ents || !json_is_array(ents) || json_array_size(ents) == 0)
            return fail(err, &ep, "must be a non-empty array of entity mappings");
        pair->entities = calloc(json_array_size(ents), sizeof *pair->entities);
        if (!pair->entities)
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        size_t j;
        json_t *e;
        json_array_foreach(ents, j, e) {
            path jp = path_index(&ep, j);
            pair->n_entities++;
            if ((rc = parse_entity(e, &jp, cfg, &pair->entities[j], err)))
                return rc;
        }
    }
    return 0;
}

/* node_id, lease.{ttl, heartbeat, poll}, resume.max_deaths. */
static int parse_lease(const json_t *root, const path *top, tfs_config *cfg, tfs_error *err)
{
    static const char *const lease_keys[] = {"ttl", "heartbeat", "poll", NULL};
    static const char *const resume_keys[] = {"max_deaths", NULL};
    const json_t *lease, *resume;
    path lp = path_key(top, "lease"), rp = path_key(top, "resume");
    long long deaths;
    int rc;
    if ((rc = get_string(root, top, "node_id", 0, NULL, &cfg->node_id, err)) ||
        (rc = get_object(root, top, "lease", 0, &lease, err)) ||
        (rc = get_object(root, top, "resume", 0, &resume, err)) ||
        (lease && (rc = check_keys(lease, &lp, lease_keys, err))) ||
        (resume && (rc = check_keys(resume, &rp, resume_keys, err))) ||
        (rc = get_duration(lease, &lp, "ttl", TFS_LEASE_TTL_MS_DEFAULT, TFS_LEASE_TTL_MS_MIN,
                           TFS_LEASE_TTL_MS_MAX, &cfg->lease_ttl_ms, err)) ||
        (rc = get_duration(lease, &lp, "heartbeat", TFS_LEASE_HEARTBEAT_MS_DEFAULT,
                           TFS_LEASE_HEARTBEAT_MS_MIN, cfg->lease_ttl_ms / 3,
                           &cfg->lease_heartbeat_ms, err)) ||
        (rc = get_duration(lease, &lp, "poll", TFS_LEASE_POLL_MS_DEFAULT,
                           TFS_LEASE_POLL_MS_MIN, TFS_LEASE_POLL_MS_MAX, &cfg->lease_poll_ms,
                           err)))
        return rc;
    if (resume)
        rc = get_int(resume, &rp, "max_deaths", TFS_RESUME_MAX_DEATHS_DEFAULT,
                     TFS_RESUME_MAX_DEATHS_MIN, TFS_RESUME_MAX_DEATHS_MAX, &deaths, err);
    else
        deaths = TFS_RESUME_MAX_DEATHS_DEFAULT;
    if (rc)
        return rc;
    cfg->resume_max_deaths = (unsigned)deaths;
    if (cfg->node_id && (cfg->node_id[0] == '\0' || strlen(cfg->node_id) > TFS_NODE_ID_MAX)) {
        path np = path_key(top, "node_id");
        return fail(err, &np, "a node id has 1 to %d characters", TFS_NODE_ID_MAX);
    }
    return 0;
}

/* An optional object of root (an empty one when absent), its keys checked. */
static int section(const json_t *root, const path *top, const char *name,
                   const char *const *keys, const json_t **out, path *where, tfs_error *err)
{
    static const json_t *empty;
    if (!empty)
        empty = json_object();
    *where = path_key(top, name);
    int rc = get_object(root, top, name, 0, out, err);
    if (rc)
        return rc;
    if (!*out)
        *out = empty;
    return check_keys(*out, where, keys, err);
}

/* listen.*: the API's address, port, threads, body limit and TLS files. */
static int parse_listen(const json_t *root, const path *top, tfs_config *cfg, tfs_error *err)
{
    static const char *const keys[] = {"address", "port", "ready_file", "threads",
                                       "max_body_bytes", "tls_cert_file", "tls_key_file",
                                       NULL};
    const json_t *l;
    path lp;
    long long port, threads, max_body;
    int rc;
    if ((rc = section(root, top, "listen", keys, &l, &lp, err)) ||
        (rc = get_string(l, &lp, "address", 0, "127.0.0.1", &cfg->listen_address, err)) ||
        (rc = get_int(l, &lp, "port", TFS_HTTP_PORT_DEFAULT, 0, 65535, &port, err)) ||
        (rc = get_string(l, &lp, "ready_file", 0, NULL, &cfg->ready_file, err)) ||
        (rc = get_int(l, &lp, "threads", TFS_HTTP_THREADS_DEFAULT, TFS_HTTP_THREADS_MIN,
                      TFS_HTTP_THREADS_MAX, &threads, err)) ||
        (rc = get_int(l, &lp, "max_body_bytes", (long long)TFS_HTTP_MAX_BODY_DEFAULT,
                      TFS_HTTP_MAX_BODY_MIN, TFS_HTTP_MAX_BODY_MAX, &max_body, err)) ||
        (rc = get_string(l, &lp, "tls_cert_file", 0, NULL, &cfg->tls_cert_file, err)) ||
        (rc = get_string(l, &lp, "tls_key_file", 0, NULL, &cfg->tls_key_file, err)))
        return rc;
    if (!!cfg->tls_cert_file != !!cfg->tls_key_file)
        return fail(err, &lp, "tls_cert_file and tls_key_file go together");
    cfg->port = (uint16_t)port;
    cfg->http_threads = (unsigned)threads;
    cfg->max_body = (size_t)max_body;
    return 0;
}

/* state.*, plugin_dir, transform_dir, roll_year, workers: what the daemon stands on. */
static int parse_ground(const json_t *root, const path *top, tfs_config *cfg, tfs_error *err)
{
    static const char *const state_keys[] = {"conninfo", "connect_timeout", NULL};
    const json_t *state;
    path sp = path_key(top, "state");
    long long sconn, roll_year, workers;
    int rc;
    if ((rc = get_object(root, top, "state", 1, &state, err)) ||
        (rc = check_keys(state, &sp, state_keys, err)) ||
        (rc = get_string(state, &sp, "conninfo", 1, NULL, &cfg->state_conninfo, err)) ||
        (rc = get_duration(state, &sp, "connect_timeout",
                           TFS_STATE_CONNECT_TIMEOUT_S_DEFAULT * 1000, 1000,
                           TFS_STATE_CONNECT_TIMEOUT_S_MAX * 1000, &sconn, err)) ||
        (rc = get_string(root, top, "plugin_dir", 1, NULL, &cfg->plugin_dir, err)) ||
        (rc = get_string(root, top, "transform_dir", 1, NULL, &cfg->transform_dir, err)) ||
        (rc = get_int(root, top, "roll_year", 0, 1900, 2200, &roll_year, err)) ||
        (rc = get_int(root, top, "workers", 2, 1, 64, &workers, err)))
        return rc;
    if (!json_object_get(root, "roll_year")) {
        path rp = path_key(top, "roll_year");
        rc = fail(err, &rp, "missing (the tax roll year, e.g. 2026, is required)");
        tfs_error_hint(err, "the roll year comes from the config, never from the clock");
        return rc;
    }
    cfg->state_connect_timeout_s = (sconn + 999) / 1000;
    cfg->roll_year = (int)roll_year;
    cfg->workers = (unsigned)workers;
    return 0;
}

/* lua.*: the limits of a script's state and call. */
static int parse_lua(const json_t *root, const path *top, tfs_config *cfg, tfs_error *err)
{
    static const char *const keys[] = {"memory_bytes", "instructions", "max_string", NULL};
    const json_t *lua;
    path up;
    long long lmem, lins, lstr;
    int rc;
    if ((rc = section(root, top, "lua", keys, &lua, &up, err)) ||
        (rc = get_int(lua, &up, "memory_bytes", (long long)TFS_LUA_MEMORY_DEFAULT,
                      TFS_LUA_MEMORY_MIN, TFS_LUA_MEMORY_MAX, &lmem, err)) ||
        (rc = get_int(lua, &up, "instructions", (long long)TFS_LUA_INSTRUCTIONS_DEFAULT,
                      TFS_LUA_INSTRUCTIONS_MIN, TFS_LUA_INSTRUCTIONS_MAX, &lins, err)) ||
        (rc = get_int(lua, &up, "max_string", (long long)TFS_LUA_MAX_STRING_DEFAULT,
                      TFS_LUA_MAX_STRING_MIN, TFS_LUA_MAX_STRING_MAX, &lstr, err)))
        return rc;
    cfg->lua = (tfs_lua_limits){(size_t)lmem, (uint64_t)lins, (size_t)lstr};
    return 0;
}

/* breaker.*, retry.*, shutdown.*: how outages are waited out and how a stop ends. */
static int parse_healing(const json_t *root, const path *top, tfs_config *cfg,
                         tfs_error *err)
{
    static const char *const breaker_keys[] = {"failures", "max_probe_interval", NULL};
    static const char *const retry_keys[] = {"max_backoff", NULL};
    static const char *const shutdown_keys[] = {"grace", NULL};
    const json_t *breaker, *retry, *shutdown;
    path bp, rp, hp;
    long long bfail, bprobe, rmax;
    int rc;
    if ((rc = section(root, top, "breaker", breaker_keys, &breaker, &bp, err)) ||
        (rc = get_int(breaker, &bp, "failures", TFS_BREAKER_FAILURES_DEFAULT,
                      TFS_BREAKER_FAILURES_MIN, TFS_BREAKER_FAILURES_MAX, &bfail, err)) ||
        (rc = get_duration(breaker, &bp, "max_probe_interval",
                           TFS_BREAKER_MAX_PROBE_INTERVAL_MS_DEFAULT,
                           TFS_BREAKER_FIRST_PROBE_MS_DEFAULT, TFS_DURATION_MS_MAX, &bprobe,
                           err)) ||
        (rc = section(root, top, "retry", retry_keys, &retry, &rp, err)) ||
        (rc = get_duration(retry, &rp, "max_backoff", TFS_RETRY_MAX_BACKOFF_MS_DEFAULT,
                           TFS_RETRY_BASE_MS_DEFAULT, TFS_DURATION_MS_MAX, &rmax, err)) ||
        (rc = section(root, top, "shutdown", shutdown_keys, &shutdown, &hp, err)))
        return rc;
    cfg->breaker_failures = (unsigned)bfail;
    cfg->breaker_max_probe_interval_ms = bprobe;
    cfg->retry_max_backoff_ms = rmax;
    cfg->shutdown_grace_ms = TFS_SHUTDOWN_GRACE_MS_DEFAULT;
    const json_t *grace = json_object_get(shutdown, "grace");
    if (grace) {
        path gp = path_key(&hp, "grace");
        long long ms = json_is_string(grace) ? parse_duration_ms(json_string_value(grace)) : -1;
        if (ms < TFS_SHUTDOWN_GRACE_MS_MIN || ms > TFS_SHUTDOWN_GRACE_MS_MAX)
            return fail(err, &gp, "not a duration between 100ms and 1h (e.g. \"5s\")");
        cfg->shutdown_grace_ms = ms;
    }
    return 0;
}

/* The config's paths made absolute against its folder; plugin_dir and transform_dir
 * must be folders. */
static int resolve_paths(const path *top, tfs_config *cfg, tfs_error *err)
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
            path dp = path_key(top, dir_keys[i]);
            return fail(err, &dp, "no such directory \"%s\"", dirs[i]);
        }
    }
    return 0;
}

int tfs_config_parse(const json_t *root, const char *dir, tfs_config **out, tfs_error *err)
{
    static const char *const allowed[] = {"listen", "state", "plugin_dir", "transform_dir",
                                          "roll_year", "workers", "lua", "api_keys",
                                          "systems", "pairs", "node_id", "lease", "resume",
                                          "shutdown", "breaker", "retry", NULL};
    path top = {""};
    int rc;
    *out = NULL;
    if (!json_is_object(root))
        return fail(err, &top, "the config must be a JSON object, not %s", json_kind(root));
    tfs_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    atomic_init(&cfg->refs, 1);
    if (dir && !(cfg->dir = strdup(dir))) {
        rc = tfs_error_set(err, TFS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = check_keys(root, &top, allowed, err)) ||
        (rc = parse_listen(root, &top, cfg, err)) ||
        (rc = parse_ground(root, &top, cfg, err)) || (rc = parse_lua(root, &top, cfg, err)) ||
        (rc = parse_healing(root, &top, cfg, err)) ||
        (rc = resolve_paths(&top, cfg, err)) || (rc = parse_lease(root, &top, cfg, err)) ||
        (rc = parse_keys(root, cfg, err)) || (rc = parse_systems(root, cfg, err)) ||
        (rc = parse_pairs(root, cfg, err)))
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
