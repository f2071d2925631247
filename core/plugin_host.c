/* core/plugin_host.c — dlopen'ing plugins, checking their descriptors, versions and
 * described schemas, and every call into a plugin; see plugin_host.h. The host functions
 * plugins call back are in sdk_host.c. */
#include "plugin_host.h"
#include "plugin_private.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sdk_host.h"


/* The descriptor's size in each minor of this major: a plugin declares exactly the size
 * of the minor it was built for. */
static const size_t desc_size_of_minor[] = {
    offsetof(tfs_sdk_plugin, cb_health) + sizeof(void (*)(void)),        /* 1.0 */
    offsetof(tfs_sdk_plugin, cb_changes_trim) + sizeof(void (*)(void)),  /* 1.1 */
    offsetof(tfs_sdk_plugin, cb_changes_trim) + sizeof(void (*)(void)),  /* 1.2: a flag */
    offsetof(tfs_sdk_plugin, cb_run_end) + sizeof(void (*)(void)),       /* 1.3 */
    offsetof(tfs_sdk_plugin, cb_entity_roles) + sizeof(void (*)(void)),  /* 1.4 */
    offsetof(tfs_sdk_plugin, cb_entity_roles) + sizeof(void (*)(void)),  /* 1.5: a flag */
};
_Static_assert(sizeof desc_size_of_minor / sizeof desc_size_of_minor[0] ==
                   TFS_SDK_VERSION_MINOR + 1,
               "every minor needs its descriptor size");

static int valid_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Checks the descriptor's shape; returns a reason or NULL. */
static const char *check_descriptor(const tfs_sdk_plugin *d, char *buf, size_t len)
{
    if (!valid_name(d->name))
        return "descriptor has no valid name (lowercase letters, digits, '_')";
    if (!d->version)
        return "descriptor has no version";
    if (!d->cb_open || !d->cb_close || !d->cb_describe)
        return "descriptor lacks cb_open, cb_close or cb_describe";
    if (!(d->capabilities & (TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET)))
        return "descriptor declares neither the source nor the target capability";
    if ((d->capabilities & TFS_SDK_CAP_SOURCE) && !d->cb_read)
        return "descriptor declares the source capability without cb_read";
    if ((d->capabilities & TFS_SDK_CAP_NO_FETCH) && d->sdk_minor < 2)
        return "descriptor declares the no-fetch capability, which needs SDK 1.2";
    if ((d->capabilities & TFS_SDK_CAP_TARGET) &&
        (!d->cb_write || (!d->cb_fetch && !(d->capabilities & TFS_SDK_CAP_NO_FETCH))))
        return "descriptor declares the target capability without cb_write and cb_fetch "
               "(a target that cannot fetch declares TFS_SDK_CAP_NO_FETCH, SDK 1.2)";
    if ((d->capabilities & (TFS_SDK_CAP_LAZY_OPEN | TFS_SDK_CAP_DELTAS)) && d->sdk_minor < 3)
        return "descriptor declares the lazy-open or deltas capability, which needs SDK 1.3";
    if ((d->capabilities & TFS_SDK_CAP_INSERT) && d->sdk_minor < 5)
        return "descriptor declares the insert capability, which needs SDK 1.5";
    if ((d->capabilities & TFS_SDK_CAP_INSERT) && !(d->capabilities & TFS_SDK_CAP_TARGET))
        return "descriptor declares the insert capability without the target capability";
    if ((d->capabilities & TFS_SDK_CAP_DELTAS) && !(d->capabilities & TFS_SDK_CAP_SOURCE))
        return "descriptor declares the deltas capability without the source capability";
    if ((d->capabilities & TFS_SDK_CAP_CHANGES) &&
        (d->sdk_minor < 1 || !d->cb_read || !d->cb_changes_start))
        return "descriptor declares the changes capability without cb_changes_start (SDK 1.1)";
    if (d->n_config_keys && !d->config_keys)
        return "descriptor declares config keys but no table";
    for (size_t i = 0; i < d->n_config_keys; i++) {
        const tfs_sdk_config_key *k = &d->config_keys[i];
        if (!k->name || !*k->name || (unsigned)k->type > TFS_SDK_CONFIG_BOOL) {
            snprintf(buf, len, "config key %zu has no name or an unknown type", i);
            return buf;
        }
    }
    return NULL;
}

int tfs_plugin_load(const char *path, int roll_year, tfs_plugin **out, tfs_error *err)
{
    char why[4400];
    const char *reason = NULL;
    *out = NULL;
    tfs_plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    tfs_sdk_host_fill(&p->host, roll_year);
    /* Before dlopen: it runs the file's constructors, and maps a truncated file whose first
     * touch past its end is a SIGBUS. */
    if ((reason = tfs_plugin_file_check(path, why, sizeof why)))
        goto out;
    /* Logged before dlopen: a plugin whose constructor crashes the daemon is then named
     * by the last line of the log. */
    tfs_log_info("plugins", "loading %s", path);
    dlerror();
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "%s", e ? e : "dlopen failed");
        reason = why;
        goto out;
    }
    tfs_sdk_entry_fn entry;
    *(void **)&entry = dlsym(p->dl, TFS_SDK_ENTRY_SYMBOL);
    if (!entry) {
        reason = "undefined symbol tfs_sdk_entry";
        goto out;
    }
    const tfs_sdk_plugin *d = entry(&p->host);
    if (!d) {
        reason = "tfs_sdk_entry returned no descriptor (the plugin refused to load)";
        goto out;
    }
    /* The first 8 bytes are the same in every version: size, major, minor. */
    if (d->sdk_major != TFS_SDK_VERSION_MAJOR) {
        snprintf(why, sizeof why, "built for SDK major version %u, this host speaks %u",
                 (unsigned)d->sdk_major, TFS_SDK_VERSION_MAJOR);
        reason = why;
        goto out;
    }
    if (d->sdk_minor > TFS_SDK_VERSION_MINOR) {
        snprintf(why, sizeof why, "needs SDK %u.%u, this host provides %u.%u",
                 (unsigned)d->sdk_major, (unsigned)d->sdk_minor, TFS_SDK_VERSION_MAJOR,
                 TFS_SDK_VERSION_MINOR);
        reason = why;
        goto out;
    }
    if (d->struct_size != desc_size_of_minor[d->sdk_minor]) {
        snprintf(why, sizeof why,
                 "descriptor struct_size %u does not match SDK %u.%u (expected %zu)",
                 (unsigned)d->struct_size, (unsigned)d->sdk_major, (unsigned)d->sdk_minor,
                 desc_size_of_minor[d->sdk_minor]);
        reason = why;
        goto out;
    }
    memcpy(&p->desc, d, d->struct_size);
    if ((reason = check_descriptor(&p->desc, why, sizeof why)))
        goto out;
    if (!(p->name = strdup(p->desc.name))) {
        reason = "out of memory";
        goto out;
    }
out:
    if (reason) {
        tfs_error_set(err, TFS_EINVAL, "could not load plugin \"%s\": %s", path, reason);
        tfs_plugin_free(p, true);
        return TFS_EINVAL;
    }
    *out = p;
    return 0;
}

void tfs_plugin_free(tfs_plugin *p, bool unload)
{
    if (!p)
        return;
    if (unload && p->dl)
        dlclose(p->dl);
    free(p->path);
    free(p->name);
    free(p);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_refusal(tfs_plugin_host *h, const char *file, const char *reason)
{
    tfs_plugin_refusal *r = realloc(h->refused, (h->n_refused + 1) * sizeof *r);
    if (!r)
        return -1;
    h->refused = r;
    r[h->n_refused].file = strdup(file);
    r[h->n_refused].reason = strdup(reason);
    h->n_refused++;
    return 0;
}

int tfs_plugin_host_load_dir(const char *dir, int roll_year, tfs_plugin_host **out,
                             tfs_error *err)
{
    *out = NULL;
    /* A folder others can write is refused whole: any file in it may be theirs. */
    int rc = tfs_plugin_dir_check(dir, err);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return tfs_error_set(err, TFS_EIO, "could not open plugin directory \"%s\": %m", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = TFS_ENOMEM;
                goto out;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = TFS_ENOMEM;
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    tfs_plugin_host *h = calloc(1, sizeof *h);
    if (!h || !(h->plugins = calloc(n + 1, sizeof *h->plugins))) {
        free(h);
        rc = TFS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        tfs_plugin *p;
        tfs_error e = {0};
        if (tfs_plugin_load(path, roll_year, &p, &e) != 0) {
            tfs_log_error("plugins", "%s", e.message);
            add_refusal(h, path, e.message);
            continue;
        }
        if (tfs_plugin_host_get(h, p->name)) {
            char msg[600];
            snprintf(msg, sizeof msg,
                     "could not load plugin \"%s\": a plugin named \"%s\" is already loaded",
                     path, p->name);
            tfs_log_error("plugins", "%s", msg);
            add_refusal(h, path, msg);
            tfs_plugin_free(p, false); /* never dlclose: its code may still be mapped */
            continue;
        }
        tfs_log_info("plugins", "loaded plugin \"%s\" %s from \"%s\" (SDK %u.%u)", p->name,
                     p->desc.version, path, (unsigned)p->desc.sdk_major,
                     (unsigned)p->desc.sdk_minor);
        h->plugins[h->n++] = p;
    }
    *out = h;
out:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc)
        tfs_error_set(err, rc, "out of memory");
    return rc;
}

void tfs_plugin_host_free(tfs_plugin_host *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        tfs_plugin_free(h->plugins[i], false);
    free(h->plugins);
    for (size_t i = 0; i < h->n_refused; i++) {
        free(h->refused[i].file);
        free(h->refused[i].reason);
    }
    free(h->refused);
    free(h);
}

const tfs_plugin *tfs_plugin_host_get(const tfs_plugin_host *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->plugins[i]->name, name) == 0)
            return h->plugins[i];
    return NULL;
}

static const char *const config_type_names[] = {"a string", "an integer", "a boolean"};

int tfs_plugin_check_settings(const tfs_plugin *p, const json_t *settings, const char *prefix,
                              char ***values_out, tfs_error *err)
{
    const tfs_sdk_plugin *d = &p->desc;
    *values_out = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)settings, key, v) {
        size_t i;
        for (i = 0; i < d->n_config_keys; i++)
            if (strcmp(d->config_keys[i].name, key) == 0)
                break;
        if (i == d->n_config_keys) {
            tfs_error_set(err, TFS_EINVAL, "%s.%s: unknown setting for plugin \"%s\"", prefix,
                          key, p->name);
            char list[256] = "";
            for (size_t j = 0; j < d->n_config_keys; j++) {
                strncat(list, d->config_keys[j].name, sizeof list - strlen(list) - 1);
                if (j + 1 < d->n_config_keys)
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            tfs_error_hint(err, "plugin \"%s\" declares: %s", p->name, list);
            return TFS_EINVAL;
        }
    }
    char **values = calloc(d->n_config_keys + 1, sizeof *values);
    if (!values)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_config_keys; i++) {
        const tfs_sdk_config_key *k = &d->config_keys[i];
        v = json_object_get(settings, k->name);
        char buf[64];
        const char *text = NULL;
        if (!v) {
            if (!k->default_value) {
                tfs_error_set(err, TFS_EINVAL, "%s.%s: missing (%s is required: %s)", prefix,
                              k->name, config_type_names[k->type],
                              k->description ? k->description : "no description");
                goto fail;
            }
            text = k->default_value;
        } else if (k->type == TFS_SDK_CONFIG_STRING && json_is_string(v)) {
            text = json_string_value(v);
        } else if (k->type == TFS_SDK_CONFIG_INT && json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = buf;
        } else if (k->type == TFS_SDK_CONFIG_BOOL && json_is_boolean(v)) {
            text = json_is_true(v) ? "true" : "false";
        } else {
            tfs_error_set(err, TFS_EINVAL, "%s.%s: must be %s", prefix, k->name,
                          config_type_names[k->type]);
            goto fail;
        }
        if (!(values[i] = strdup(text))) {
            tfs_error_set(err, TFS_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *values_out = values;
    return 0;
fail:
    tfs_plugin_values_free(p, values);
    return err ? err->code : TFS_EINVAL;
}

void tfs_plugin_values_free(const tfs_plugin *p, char **values)
{
    if (!values)
        return;
    for (size_t i = 0; i < p->desc.n_config_keys; i++)
        free(values[i]);
    free(values);
}

static int map_status(const tfs_instance *inst, int status, const tfs_sdk_error *e,
                      const char *what, tfs_error *err)
{
    if (status == TFS_SDK_OK)
        return 0;
    int code = status == TFS_SDK_ETRANSIENT ? TFS_ETRANSIENT : TFS_EPERMANENT;
    return tfs_error_set(err, code, "%s %s: %s", inst->system, what,
                         e->set ? e->message : "failed without a message");
}

/* Checks what cb_describe handed back before anything walks it: the core indexes fields by
 * position, looks entities and fields up by name and builds keys from the key fields, so a
 * NULL name, a duplicate, an unknown type or an entity without a key would crash or
 * mislead it later. Returns 0, or TFS_EPERMANENT with a message naming the plugin, the
 * entity and the field index: a plugin does not describe itself better on a retry. */
static int check_schema(const tfs_instance *inst, tfs_error *err)
{
    const char *plugin = inst->plugin->name;
    const tfs_sdk_entity *ents = inst->entities;
    char where[160] = "";
    char why[192] = "";
    if (inst->n_entities == 0) {
        snprintf(why, sizeof why, "no entities");
        goto fail;
    }
    if (!ents) {
        snprintf(why, sizeof why, "%zu entities announced but no array",
                 inst->n_entities);
        goto fail;
    }
    for (size_t e = 0; e < inst->n_entities; e++) {
        const tfs_sdk_entity *ent = &ents[e];
        snprintf(where, sizeof where, "entity %zu%s%s%s", e, ent->name ? " \"" : "",
                 ent->name ? ent->name : "", ent->name ? "\"" : "");
        if (!ent->name || !*ent->name) {
            snprintf(why, sizeof why, "has no name");
            goto fail;
        }
        for (size_t o = 0; o < e; o++)
            if (ents[o].name && strcmp(ents[o].name, ent->name) == 0) {
                snprintf(why, sizeof why, "has the name of entity %zu", o);
                goto fail;
            }
        if (ent->n_fields == 0) {
            snprintf(why, sizeof why, "has no fields");
            goto fail;
        }
        if (!ent->fields) {
            snprintf(why, sizeof why, "announces %zu fields but gives no array", ent->n_fields);
            goto fail;
        }
        size_t keys = 0;
        for (size_t i = 0; i < ent->n_fields; i++) {
            const tfs_sdk_field *f = &ent->fields[i];
            size_t at = strlen(where);
            snprintf(where + at, sizeof where - at, ", field %zu%s%s%s", i,
                     f->name ? " \"" : "", f->name ? f->name : "", f->name ? "\"" : "");
            if (!f->name || !*f->name) {
                snprintf(why, sizeof why, "has no name");
                goto fail;
            }
            for (size_t o = 0; o < i; o++)
                if (ent->fields[o].name && strcmp(ent->fields[o].name, f->name) == 0) {
                    snprintf(why, sizeof why, "has the name of field %zu", o);
                    goto fail;
                }
            /* A plugin names only the types of the minor it was built for. */
            unsigned last = inst->plugin->desc.sdk_minor >= 3 ? TFS_SDK_GEOMETRY : TFS_SDK_JSON;
            if ((unsigned)f->type < TFS_SDK_BOOL || (unsigned)f->type > last) {
                snprintf(why, sizeof why, "has an unknown type %d", (int)f->type);
                goto fail;
            }
            if (f->max_length < 0 || f->precision < 0 || f->scale < 0) {
                snprintf(why, sizeof why, "has a negative max_length, precision or scale");
                goto fail;
            }
            keys += (f->flags & TFS_SDK_FIELD_KEY) != 0;
            where[at] = '\0';
        }
        if (keys == 0) {
            snprintf(why, sizeof why, "has no key field (TFS_SDK_FIELD_KEY)");
            goto fail;
        }
    }
    return 0;
fail:
    tfs_error_set(err, TFS_EPERMANENT, "could not open system \"%s\": plugin \"%s\" describes "
                  "an invalid schema: %s%s%s", inst->system, plugin, where, where[0] ? " " : "",
                  why);
    tfs_error_hint(err, "fix the entities the plugin's cb_describe returns");
    return TFS_EPERMANENT;
}

/* Calls the plugin's cb_check on checked values, with the system and folder the config
 * host functions answer for them. */
static int run_cb_check(const tfs_plugin *p, const char *system, const char *config_dir,
                        char **values, tfs_error *err)
{
    if (!p->desc.cb_check)
        return 0;
    tfs_sdk_error e = {0};
    tfs_sdk_host_config_enter((const char *const *)values, system, config_dir);
    int rc = p->desc.cb_check((const char *const *)values, &e);
    tfs_sdk_host_config_leave();
    if (rc == TFS_SDK_OK)
        return 0;
    tfs_error_set(err, TFS_EINVAL, "%s", e.set ? e.message : "");
    if (!e.set)
        snprintf(err->message, sizeof err->message,
                 "systems.%s.settings: refused by plugin \"%s\" without a message", system,
                 p->name);
    return TFS_EINVAL;
}

int tfs_plugin_check(const tfs_plugin *p, const char *system, const json_t *settings,
                     const char *config_dir, tfs_error *err)
{
    char prefix[256];
    char **values = NULL;
    snprintf(prefix, sizeof prefix, "systems.%s.settings", system);
    int rc = tfs_plugin_check_settings(p, settings, prefix, &values, err);
    if (!rc)
        rc = run_cb_check(p, system, config_dir, values, err);
    tfs_plugin_values_free(p, values);
    return rc;
}

bool tfs_plugin_is_lazy(const tfs_plugin *p)
{
    return (p->desc.capabilities & TFS_SDK_CAP_LAZY_OPEN) != 0;
}

int tfs_instance_open(const tfs_plugin *p, const char *system, const json_t *settings,
                      const char *config_dir, tfs_instance **out, tfs_error *err)
{
    char prefix[256];
    char **values = NULL;
    tfs_sdk_error e = {0};
    *out = NULL;
    snprintf(prefix, sizeof prefix, "systems.%s.settings", system);
    int rc = tfs_plugin_check_settings(p, settings, prefix, &values, err);
    if (!rc)
        rc = run_cb_check(p, system, config_dir, values, err);
    if (rc) {
        tfs_plugin_values_free(p, values);
        return rc;
    }
    tfs_instance *inst = calloc(1, sizeof *inst);
    if (!inst || !(inst->system = strdup(system))) {
        free(inst);
        tfs_plugin_values_free(p, values);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    inst->plugin = p;
    tfs_sdk_host_config_enter((const char *const *)values, system, config_dir);
    rc = p->desc.cb_open((const char *const *)values, &inst->handle, &e);
    tfs_sdk_host_config_leave();
    tfs_plugin_values_free(p, values);
    if ((rc = map_status(inst, rc, &e, "could not open", err)))
        goto fail;
    e.set = false;
    rc = p->desc.cb_describe(inst->handle, &inst->entities, &inst->n_entities, &e);
    if ((rc = map_status(inst, rc, &e, "could not describe its schema", err)) ||
        (rc = check_schema(inst, err)))
        goto fail;
    if (p->desc.cb_write_limits) {
        e.set = false;
        rc = p->desc.cb_write_limits(inst->handle, &inst->max_ops, &inst->max_bytes, &e);
        if ((rc = map_status(inst, rc, &e, "could not tell its write limits", err)))
            goto fail;
    }
    *out = inst;
    return 0;
fail:
    tfs_instance_close(inst);
    return rc;
}

void tfs_instance_close(tfs_instance *inst)
{
    if (!inst)
        return;
    if (inst->handle)
        inst->plugin->desc.cb_close(inst->handle);
    free(inst->system);
    free(inst);
}

int tfs_instance_entity(const tfs_instance *inst, const char *name)
{
    for (size_t i = 0; i < inst->n_entities; i++)
        if (strcmp(inst->entities[i].name, name) == 0)
            return (int)i;
    return -1;
}

unsigned tfs_instance_entity_roles(const tfs_instance *inst, size_t entity)
{
    const unsigned both = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET;
    unsigned own = inst->plugin->desc.capabilities & both;
    if (entity >= inst->n_entities)
        return 0;
    if (!inst->plugin->desc.cb_entity_roles)
        return own;
    return inst->plugin->desc.cb_entity_roles(inst->handle, entity) & own;
}

size_t tfs_instance_n_entities(const tfs_instance *inst)
{
    return inst->n_entities;
}

const tfs_sdk_entity *tfs_instance_entity_get(const tfs_instance *inst, size_t entity)
{
    return entity < inst->n_entities ? &inst->entities[entity] : NULL;
}

const char *tfs_instance_system(const tfs_instance *inst)
{
    return inst->system;
}

uint32_t tfs_instance_capabilities(const tfs_instance *inst)
{
    return inst->plugin->desc.capabilities;
}

int tfs_instance_can_fetch(const tfs_instance *inst)
{
    return inst->plugin->desc.cb_fetch &&
           !(inst->plugin->desc.capabilities & TFS_SDK_CAP_NO_FETCH);
}

tfs_plugin_info tfs_plugin_get_info(const tfs_plugin *p)
{
    return (tfs_plugin_info){.name = p->name,
                             .version = p->desc.version,
                             .description = p->desc.description,
                             .sdk_major = p->desc.sdk_major,
                             .sdk_minor = p->desc.sdk_minor,
                             .capabilities = p->desc.capabilities,
                             .config_keys = p->desc.config_keys,
                             .n_config_keys = p->desc.n_config_keys};
}

int tfs_instance_read(tfs_instance *inst, size_t entity, tfs_sdk_read_mode mode,
                      const void *cursor, size_t cursor_len, size_t max, tfs_batch *out,
                      tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!inst->plugin->desc.cb_read)
        return tfs_error_set(err, TFS_EPERMANENT, "system \"%s\" cannot be read (plugin \"%s\" "
                             "is not a source)", inst->system, inst->plugin->name);
    int rc = inst->plugin->desc.cb_read(inst->handle, entity, mode, cursor, cursor_len, max,
                                        out, &e);
    if (out->oom)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory reading %s", inst->system);
    return map_status(inst, rc, &e, "could not read", err);
}

int tfs_instance_fetch(tfs_instance *inst, size_t entity, const tfs_record *const *keys,
                       size_t n, tfs_batch *out, tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!inst->plugin->desc.cb_fetch)
        return tfs_error_set(err, TFS_EPERMANENT, "system \"%s\" cannot fetch records",
                             inst->system);
    int rc = inst->plugin->desc.cb_fetch(inst->handle, entity, keys, n, out, &e);
    if (out->oom)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory fetching from %s", inst->system);
    return map_status(inst, rc, &e, "could not fetch", err);
}

int tfs_instance_takes_inserts(const tfs_instance *inst)
{
    /* check_descriptor refuses the flag below SDK 1.5 */
    return (inst->plugin->desc.capabilities & TFS_SDK_CAP_INSERT) != 0;
}

int tfs_instance_write(tfs_instance *inst, const tfs_sdk_write_op *ops, size_t n,
                       tfs_results *results, tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!inst->plugin->desc.cb_write)
        return tfs_error_set(err, TFS_EPERMANENT, "system \"%s\" cannot be written (plugin "
                             "\"%s\" is not a target)", inst->system, inst->plugin->name);
    /* An insert is an upsert to a plugin that does not take them (SDK 1.5): it never sees
     * an operation kind it was not built for. The stage asks first, so this copy is only
     * made for a caller that did not. */
    tfs_sdk_write_op *own = NULL;
    if (!tfs_instance_takes_inserts(inst)) {
        size_t i = 0;
        while (i < n && ops[i].kind != TFS_SDK_OP_INSERT)
            i++;
        if (i < n) {
            if (!(own = malloc(n * sizeof *own)))
                return tfs_error_set(err, TFS_ENOMEM, "out of memory");
            memcpy(own, ops, n * sizeof *own);
            for (; i < n; i++)
                if (own[i].kind == TFS_SDK_OP_INSERT)
                    own[i].kind = TFS_SDK_OP_UPSERT;
            ops = own;
        }
    }
    int rc = inst->plugin->desc.cb_write(inst->handle, ops, n, results, &e);
    free(own);
    return map_status(inst, rc, &e, "could not write", err);
}

int tfs_instance_health(tfs_instance *inst, tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!inst->plugin->desc.cb_health)
        return 0;
    int rc = inst->plugin->desc.cb_health(inst->handle, &e);
    return map_status(inst, rc, &e, "is unhealthy", err);
}

void tfs_instance_write_limits(const tfs_instance *inst, size_t *max_ops, size_t *max_bytes)
{
    *max_ops = inst->max_ops;
    *max_bytes = inst->max_bytes;
}

int tfs_instance_estimate(tfs_instance *inst, size_t entity, int64_t *count, tfs_error *err)
{
    tfs_sdk_error e = {0};
    *count = -1;
    if (!inst->plugin->desc.cb_estimate)
        return tfs_error_set(err, TFS_ENOTFOUND, "system \"%s\" cannot estimate its size",
                             inst->system);
    int rc = inst->plugin->desc.cb_estimate(inst->handle, entity, count, &e);
    if ((rc = map_status(inst, rc, &e, "could not estimate its size", err)))
        return rc;
    if (*count < 0)
        return tfs_error_set(err, TFS_ENOTFOUND, "system \"%s\" cannot estimate its size",
                             inst->system);
    return 0;
}

int tfs_instance_run_end(tfs_instance *inst, const tfs_sdk_run_end *run, tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!inst->plugin->desc.cb_run_end)
        return 0;
    int rc = inst->plugin->desc.cb_run_end(inst->handle, run, &e);
    return map_status(inst, rc, &e, "could not end the run", err);
}

static bool has_changes(const tfs_instance *inst)
{
    return (inst->plugin->desc.capabilities & TFS_SDK_CAP_CHANGES) != 0;
}

int tfs_instance_changes_start(tfs_instance *inst, size_t entity, tfs_batch *out,
                               tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!has_changes(inst) || !inst->plugin->desc.cb_changes_start)
        return 0;
    int rc = inst->plugin->desc.cb_changes_start(inst->handle, entity, out, &e);
    if (out->oom)
        return tfs_error_set(err, TFS_ENOMEM, "out of memory starting change capture of %s",
                             inst->system);
    return map_status(inst, rc, &e, "could not start change capture", err);
}

int tfs_instance_changes_lag(tfs_instance *inst, size_t entity, const void *cursor,
                             size_t cursor_len, int64_t *pending, int64_t *oldest_age_ms,
                             tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!has_changes(inst) || !inst->plugin->desc.cb_changes_lag)
        return tfs_error_set(err, TFS_ENOTFOUND, "system \"%s\" cannot tell its change lag",
                             inst->system);
    int rc = inst->plugin->desc.cb_changes_lag(inst->handle, entity, cursor, cursor_len,
                                               pending, oldest_age_ms, &e);
    return map_status(inst, rc, &e, "could not tell its change lag", err);
}

int tfs_instance_changes_trim(tfs_instance *inst, const void *const *cursors,
                              const size_t *lens, size_t n, tfs_error *err)
{
    tfs_sdk_error e = {0};
    if (!has_changes(inst) || !inst->plugin->desc.cb_changes_trim)
        return 0;
    int rc = inst->plugin->desc.cb_changes_trim(inst->handle, cursors, lens, n, &e);
    return map_status(inst, rc, &e, "could not trim its change log", err);
}

int tfs_results_init(tfs_results *r, size_t n)
{
    r->n = n;
    r->status = calloc(n ? n : 1, sizeof *r->status);
    r->message = calloc(n ? n : 1, sizeof *r->message);
    r->source = malloc((n ? n : 1) * sizeof *r->source);
    if (!r->status || !r->message || !r->source) {
        tfs_results_free(r);
        return TFS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        r->source[i] = i;
    return 0;
}

void tfs_results_free(tfs_results *r)
{
    free(r->source);
    r->source = NULL;
    if (!r->message) {
        free(r->status);
        r->status = NULL;
        return;
    }
    for (size_t i = 0; i < r->n; i++)
        free(r->message[i]);
    free(r->message);
    free(r->status);
    r->message = NULL;
    r->status = NULL;
    r->n = 0;
}
