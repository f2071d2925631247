/* core/config_check.c — tfsyncd --check [--connect]; see config_check.h. Every check
 * reports and goes on, so one run lists everything that is wrong; each line names the
 * config's JSON path, what is wrong and the fix. */
#include "config_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "lua_transform.h"
#include "record.h"
#include "schema_check.h"
#include "script_scan.h"
#include "store.h"

typedef struct checker {
    FILE *out;
    const tfs_config *cfg;
    size_t n_findings;
    size_t n_opened, n_unchecked, n_pairs, n_scripts, n_fields;
} checker;

size_t tfs_config_check_print(FILE *out, const tfs_error *err)
{
    if (err->hint[0])
        fprintf(out, "%s; %s\n", err->message, err->hint);
    else
        fprintf(out, "%s\n", err->message);
    return 1;
}

/* One problem: the message must start with its path; a message that does not (a plugin's
 * own, a connection's) gets the path given. */
static void finding_at(checker *c, const char *path, const tfs_error *err,
                       const char *fallback_hint)
{
    tfs_error e = *err;
    if (path && strncmp(e.message, path, strlen(path)) != 0)
        tfs_error_prefix(&e, "%s", path);
    if (!e.hint[0] && fallback_hint)
        snprintf(e.hint, sizeof e.hint, "%s", fallback_hint);
    tfs_config_check_print(c->out, &e);
    c->n_findings++;
}

static void schema_finding(void *ctx, const tfs_error *err)
{
    finding_at(ctx, NULL, err, NULL);
}

static int system_index(const tfs_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_systems; i++)
        if (strcmp(cfg->systems[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Each system's plugin and settings; ok[i] says system i may be opened. */
static void check_settings(checker *c, const tfs_plugin_host *plugins, bool *ok)
{
    const tfs_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->n_systems; i++) {
        const tfs_config_system *s = &cfg->systems[i];
        const tfs_plugin *p = tfs_plugin_host_get(plugins, s->plugin);
        char path[256], hint[512];
        tfs_error err = {0};
        if (!p) {
            /* The daemon starts without it (its systems down); a check says it fails. */
            tfs_error_set(&err, TFS_EINVAL, "systems.%s.plugin: plugin \"%s\" is not loaded",
                          s->name, s->plugin);
            tfs_error_hint(&err, "put %s.so in plugin_dir \"%s\"; a plugin that is there but "
                           "refused is listed above with the reason", s->plugin,
                           cfg->plugin_dir);
            finding_at(c, NULL, &err, NULL);
            continue;
        }
        snprintf(path, sizeof path, "systems.%s.settings", s->name);
        snprintf(hint, sizeof hint, "fix systems.%s.settings: the %s plugin's README lists "
                 "its settings", s->name, s->plugin);
        if (tfs_plugin_check(p, s->name, s->settings, cfg->dir, &err) != 0)
            finding_at(c, path, &err, hint);
        else
            ok[i] = true;
    }
}

/* Opens the systems that can be opened: lazy ones offline, every one with connect. */
static void open_systems(checker *c, const tfs_plugin_host *plugins, bool connect,
                         const bool *ok, tfs_instance **insts)
{
    const tfs_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->n_systems; i++) {
        const tfs_config_system *s = &cfg->systems[i];
        const tfs_plugin *p = tfs_plugin_host_get(plugins, s->plugin);
        if (!ok[i])
            continue;
        if (!connect && !tfs_plugin_is_lazy(p)) {
            fprintf(c->out, "system \"%s\": schema not checked offline (its plugin connects "
                    "to describe it: no TFS_SDK_CAP_LAZY_OPEN); tfsyncd --check --connect "
                    "checks it\n", s->name);
            c->n_unchecked++;
            continue;
        }
        char path[256], hint[320];
        tfs_error err = {0};
        snprintf(path, sizeof path, "systems.%s", s->name);
        snprintf(hint, sizeof hint, "check systems.%s.settings and that the system is up",
                 s->name);
        if (tfs_instance_open(p, s->name, s->settings, cfg->dir, &insts[i], &err) != 0)
            finding_at(c, path, &err, hint);
        else
            c->n_opened++;
    }
}

/* Whether entity is the source of some mapping of a pair reading from system. */
static bool read_by_a_pair(const tfs_config *cfg, const char *system, const char *entity)
{
    for (size_t pi = 0; pi < cfg->n_pairs; pi++) {
        if (strcmp(cfg->pairs[pi].source, system) != 0)
            continue;
        for (size_t j = 0; j < cfg->pairs[pi].n_entities; j++)
            if (strcmp(cfg->pairs[pi].entities[j].source, entity) == 0)
                return true;
    }
    return false;
}

/* Whether entity is a target of some mapping of a pair writing to system. */
static bool written_by_a_pair(const tfs_config *cfg, const char *system, const char *entity)
{
    for (size_t pi = 0; pi < cfg->n_pairs; pi++) {
        if (strcmp(cfg->pairs[pi].target, system) != 0)
            continue;
        for (size_t j = 0; j < cfg->pairs[pi].n_entities; j++)
            for (size_t k = 0; k < cfg->pairs[pi].entities[j].n_targets; k++)
                if (strcmp(cfg->pairs[pi].entities[j].targets[k], entity) == 0)
                    return true;
    }
    return false;
}

/* A key no record is expected to have, of the entity's key types, for a fetch that shows
 * the target's table is there (what conflict detection asks before each write). NULL when
 * out of memory. */
static tfs_record *probe_key(tfs_arena *a, const tfs_sdk_entity *e)
{
    tfs_record *k = tfs_record_new(a, e);
    for (size_t f = 0; k && f < e->n_fields; f++) {
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY))
            continue;
        tfs_value *v = &k->values[f];
        switch (e->fields[f].type) {
        case TFS_SDK_BOOL: v->type = TFS_SDK_BOOL, v->u.b = 0; break;
        case TFS_SDK_INT64: v->type = TFS_SDK_INT64, v->u.i = -1; break;
        case TFS_SDK_FLOAT64: v->type = TFS_SDK_FLOAT64, v->u.f = -1; break;
        case TFS_SDK_DECIMAL: tfs_record_set_text(k, f, TFS_SDK_DECIMAL, "-1", 2); break;
        case TFS_SDK_DATE: tfs_record_set_text(k, f, TFS_SDK_DATE, "1900-01-01", 10); break;
        case TFS_SDK_TIMESTAMP:
            tfs_record_set_text(k, f, TFS_SDK_TIMESTAMP, "1900-01-01 00:00:00", 19);
            break;
        default: tfs_record_set_text(k, f, TFS_SDK_TEXT, "tfsync-check-probe", 18); break;
        }
    }
    return k;
}

/* --connect: each open system answers its health call, a first record of each entity a
 * pair reads from it (what a run does first) and a fetch by key of each entity a pair
 * writes to it (what a batch does before writing), so a missing table or grant shows
 * now. Nothing is written. */
static void probe_systems(checker *c, tfs_instance **insts)
{
    const tfs_config *cfg = c->cfg;
    tfs_arena *arena = tfs_arena_new();
    for (size_t i = 0; i < cfg->n_systems; i++) {
        if (!insts[i])
            continue;
        const char *name = cfg->systems[i].name;
        char path[256], hint[320];
        tfs_error err = {0};
        snprintf(path, sizeof path, "systems.%s", name);
        snprintf(hint, sizeof hint, "check that system \"%s\" is up and that systems.%s."
                 "settings reach it (host, port, credentials)", name, name);
        if (tfs_instance_health(insts[i], &err) != 0) {
            finding_at(c, path, &err, hint);
            continue;
        }
        for (size_t e = 0; arena && e < tfs_instance_n_entities(insts[i]); e++) {
            const tfs_sdk_entity *ent = tfs_instance_entity_get(insts[i], e);
            bool read = read_by_a_pair(cfg, name, ent->name);
            bool fetch = written_by_a_pair(cfg, name, ent->name) &&
                         tfs_instance_can_fetch(insts[i]);
            tfs_batch b;
            char at[320], ehint[320];
            snprintf(at, sizeof at, "systems.%s: entity \"%s\"", name, ent->name);
            snprintf(ehint, sizeof ehint, "create what plugin \"%s\" needs for entity \"%s\" "
                     "(its README says) and let the daemon's user read it",
                     cfg->systems[i].plugin, ent->name);
            tfs_arena_reset(arena);
            tfs_batch_init(&b, arena, ent);
            if (read &&
                tfs_instance_read(insts[i], e, TFS_SDK_READ_FULL, NULL, 0, 1, &b, &err) != 0) {
                finding_at(c, at, &err, ehint);
                continue;
            }
            const tfs_record *key = fetch ? probe_key(arena, ent) : NULL;
            tfs_batch_init(&b, arena, ent);
            if (key && tfs_instance_fetch(insts[i], e, &key, 1, &b, &err) != 0)
                finding_at(c, at, &err, ehint);
        }
    }
    tfs_arena_free(arena);
}

/* A script's text, owned (free), or NULL. */
static char *read_script(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *t = realloc(text, cap = (cap ? cap * 2 : 8192));
            if (!t) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = t;
        }
        size_t got = fread(text + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    text[n] = '\0';
    *len = n;
    return text;
}

typedef struct field_ctx {
    checker *c;
    size_t pi, j;
    const tfs_config_entity *m;
    const tfs_instance *tgt;
} field_ctx;

/* One field a script's text sets on a target entity's record: it must be a field there. */
static void script_field(void *ctx, size_t entity, const char *field, size_t len, int line)
{
    field_ctx *f = ctx;
    int ti = tfs_instance_entity(f->tgt, f->m->targets[entity]);
    f->c->n_fields++;
    if (ti < 0)
        return; /* the mapping's own finding names the entity */
    const tfs_sdk_entity *e = tfs_instance_entity_get(f->tgt, (size_t)ti);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(len < 127 ? len : 127), field);
    if (tfs_entity_field_index(e, name) >= 0)
        return;
    tfs_error err = {0};
    tfs_error_set(&err, TFS_EINVAL, "pairs[%zu].entities[%zu].script: %s:%d: sets field \"%s\" "
                  "that target entity \"%s\" of system \"%s\" does not have", f->pi, f->j,
                  f->m->script, line, name, e->name, tfs_instance_system(f->tgt));
    char list[2048];
    list[0] = '\0';
    for (size_t k = 0; k < e->n_fields; k++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", e->fields[k].name);
    }
    tfs_error_hint(&err, "%s has: %s", e->name, list);
    finding_at(f->c, NULL, &err, NULL);
}

/* Every mapping's script loads (compiles and defines map) in the sandbox, and the fields
 * its text sets on the target entities exist there (when the target's schema is known). */
static void check_scripts(checker *c, tfs_instance **insts)
{
    const tfs_config *cfg = c->cfg;
    tfs_lua *L = NULL;
    tfs_error err = {0};
    if (tfs_lua_new(cfg->transform_dir, &cfg->lua, cfg->roll_year, &L, &err) != 0) {
        finding_at(c, "transform_dir", &err, "check transform_dir and its lookups/ folder");
        return;
    }
    for (size_t pi = 0; pi < cfg->n_pairs; pi++) {
        const tfs_config_pair *pair = &cfg->pairs[pi];
        int t = system_index(cfg, pair->target);
        const tfs_instance *tgt = t >= 0 ? insts[t] : NULL;
        for (size_t j = 0; j < pair->n_entities; j++) {
            const tfs_config_entity *m = &pair->entities[j];
            char path[128];
            snprintf(path, sizeof path, "pairs[%zu].entities[%zu].script", pi, j);
            tfs_error_clear(&err);
            if (tfs_lua_load(L, m->script, &err) != 0) {
                finding_at(c, path, &err, "fix the script at that line (tfsync transform test "
                           "tries an edit without saving it)");
                continue;
            }
            c->n_scripts++;
            size_t len = 0;
            char *text = tgt ? read_script(cfg->transform_dir, m->script, &len) : NULL;
            if (!text)
                continue;
            field_ctx f = {c, pi, j, m, tgt};
            tfs_script_scan(text, len, (const char *const *)m->targets, m->n_targets,
                            script_field, &f);
            free(text);
        }
    }
    tfs_lua_free(L);
}

/* --connect: the state store answers and is at a migration this daemon knows. */
static void check_store(checker *c)
{
    tfs_store *st = NULL;
    tfs_error err = {0};
    tfs_store_set_connect_timeout(c->cfg->state_connect_timeout_s);
    if (tfs_store_open(c->cfg->state_conninfo, &st, &err) != 0) {
        finding_at(c, "state.conninfo", &err, "check state.conninfo (host, port, dbname, "
                   "credentials) and that the state store's PostgreSQL is up");
        return;
    }
    int have = 0, want = 0;
    if (tfs_store_schema_version(st, &have, &want, &err) != 0) {
        finding_at(c, "state.conninfo", &err, "grant the daemon's user access to the "
                   "tfsync schema");
    } else if (have > want) {
        tfs_error_set(&err, TFS_EINVAL, "state.conninfo: the state store is at migration %d, "
                      "newer than this daemon's %d", have, want);
        tfs_error_hint(&err, "run the newer tfsyncd, or restore a state store of this "
                       "version");
        finding_at(c, NULL, &err, NULL);
    } else if (have < want) {
        fprintf(c->out, "state store: at migration %d of %d; the daemon applies the rest when "
                "it starts\n", have, want);
    }
    tfs_store_close(st);
}

size_t tfs_config_check(const char *config_path, const tfs_config *cfg,
                        const tfs_plugin_host *plugins, bool connect, FILE *out)
{
    checker c = {.out = out, .cfg = cfg};
    bool *ok = calloc(cfg->n_systems + 1, sizeof *ok);
    tfs_instance **insts = calloc(cfg->n_systems + 1, sizeof *insts);
    if (!ok || !insts) {
        free(ok);
        free(insts);
        fprintf(out, "could not check the config: out of memory\n");
        return 1;
    }
    /* The daemon would start without them; the check names each and why. */
    for (size_t i = 0; i < plugins->n_refused; i++)
        fprintf(out, "plugin refused: %s\n", plugins->refused[i].reason);
    check_settings(&c, plugins, ok);
    open_systems(&c, plugins, connect, ok, insts);
    if (connect)
        probe_systems(&c, insts);
    for (size_t pi = 0; pi < cfg->n_pairs; pi++) {
        int s = system_index(cfg, cfg->pairs[pi].source);
        int t = system_index(cfg, cfg->pairs[pi].target);
        const tfs_instance *src = s >= 0 ? insts[s] : NULL, *tgt = t >= 0 ? insts[t] : NULL;
        if (!src && !tgt)
            continue;
        c.n_pairs++;
        tfs_schema_sink sink = {schema_finding, &c};
        tfs_schema_check_pair(cfg, pi, src, tgt, &sink);
    }
    check_scripts(&c, insts);
    if (connect)
        check_store(&c);
    for (size_t i = 0; i < cfg->n_systems; i++)
        tfs_instance_close(insts[i]);
    free(insts);
    free(ok);

    if (c.n_findings) {
        fprintf(out, "config \"%s\" is not valid: %zu problem%s\n", config_path, c.n_findings,
                c.n_findings == 1 ? "" : "s");
        return c.n_findings;
    }
    fprintf(out, "config \"%s\" is valid: %zu system%s (%zu schema%s checked%s, %zu not), %zu "
            "pair%s (%zu checked against a schema); %zu plugin%s loaded, %zu refused; %zu "
            "script%s loaded, %zu field%s they set checked%s\n",
            config_path, cfg->n_systems, cfg->n_systems == 1 ? "" : "s", c.n_opened,
            c.n_opened == 1 ? "" : "s", connect ? " and connected to" : " offline",
            c.n_unchecked, cfg->n_pairs, cfg->n_pairs == 1 ? "" : "s", c.n_pairs, plugins->n,
            plugins->n == 1 ? "" : "s", plugins->n_refused, c.n_scripts,
            c.n_scripts == 1 ? "" : "s", c.n_fields, c.n_fields == 1 ? "" : "s",
            connect ? "; the state store answers" : "");
    return 0;
}
