/* core/config_json.c — the readers the config's parsers share: JSON paths for errors, typed
 * getters that say where a value is wrong and what it should be, durations, names; see
 * config_private.h. */
#include "config_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where in the document a check is: a JSON tfs_config_path built as we descend. */

tfs_config_path tfs_config_path_key(const tfs_config_path *p, const char *key)
{
    tfs_config_path out;
    if (p->text[0])
        snprintf(out.text, sizeof out.text, "%s.%s", p->text, key);
    else
        snprintf(out.text, sizeof out.text, "%s", key);
    return out;
}

tfs_config_path tfs_config_path_index(const tfs_config_path *p, size_t i)
{
    tfs_config_path out;
    snprintf(out.text, sizeof out.text, "%s[%zu]", p->text, i);
    return out;
}

int tfs_config_fail(tfs_error *err, const tfs_config_path *p, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tfs_error_set(err, TFS_EINVAL, "%s: %s", p->text[0] ? p->text : "(top level)", msg);
}

const char *tfs_config_kind(const json_t *v)
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
int tfs_config_check_keys(const json_t *obj, const tfs_config_path *p, const char *const *allowed,
                      tfs_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, key) == 0;
        if (!ok) {
            tfs_config_path kp = tfs_config_path_key(p, key);
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 1);
                if (a[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            tfs_config_fail(err, &kp, "unknown key");
            tfs_error_hint(err, "the keys allowed here are: %s", list);
            return TFS_EINVAL;
        }
    }
    return 0;
}

int tfs_config_get_object(const json_t *parent, const tfs_config_path *p, const char *key,
                          int required, const json_t **out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    tfs_config_path kp = tfs_config_path_key(p, key);
    *out = NULL;
    if (!v)
        return required ? tfs_config_fail(err, &kp, "missing (an object is required)") : 0;
    if (!json_is_object(v))
        return tfs_config_fail(err, &kp, "must be an object, not %s", tfs_config_kind(v));
    *out = v;
    return 0;
}

int tfs_config_get_string(const json_t *parent, const tfs_config_path *p, const char *key,
                          int required, const char *def, char **out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    tfs_config_path kp = tfs_config_path_key(p, key);
    *out = NULL;
    if (!v) {
        if (required)
            return tfs_config_fail(err, &kp, "missing (a string is required)");
        if (def && !(*out = strdup(def)))
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        return 0;
    }
    if (!json_is_string(v))
        return tfs_config_fail(err, &kp, "must be a string, not %s", tfs_config_kind(v));
    if (json_string_length(v) == 0 && required)
        return tfs_config_fail(err, &kp, "must not be empty");
    if (!(*out = strdup(json_string_value(v))))
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    return 0;
}

int tfs_config_get_int(const json_t *parent, const tfs_config_path *p, const char *key,
                       long long def, long long min, long long max, long long *out,
                       tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    tfs_config_path kp = tfs_config_path_key(p, key);
    *out = def;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return tfs_config_fail(err, &kp, "must be an integer, not %s", tfs_config_kind(v));
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return tfs_config_fail(err, &kp, "%lld is out of range (%lld to %lld)", x, min, max);
    *out = x;
    return 0;
}

/* Makes a tfs_config_path relative to the config's folder absolute. */
char *tfs_config_resolve(const char *dir, const char *p)
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

int tfs_config_is_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* "30s", "500ms", "5m", "1h" -> milliseconds, or -1. */
long long tfs_config_duration_ms(const char *s)
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
int tfs_config_get_duration(const json_t *obj, const tfs_config_path *p, const char *key,
                            long long def, long long min, long long max, long long *ms,
                            tfs_error *err)
{
    char *text = NULL;
    *ms = def;
    if (!obj)
        return 0;
    int rc = tfs_config_get_string(obj, p, key, 0, NULL, &text, err);
    if (rc || !text)
        return rc;
    *ms = tfs_config_duration_ms(text);
    if (*ms < min || *ms > max) {
        tfs_config_path kp = tfs_config_path_key(p, key);
        rc = tfs_config_fail(err, &kp, "\"%s\" is not a duration from %lldms to %lldms", text,
                             min, max);
        tfs_error_hint(err, "write a whole number with ms, s, m or h, e.g. \"30s\"");
    }
    free(text);
    return rc;
}


int tfs_config_get_number(const json_t *parent, const tfs_config_path *p, const char *key,
                          double def, double min, double max, double *out, tfs_error *err)
{
    const json_t *v = json_object_get(parent, key);
    tfs_config_path kp = tfs_config_path_key(p, key);
    *out = def;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return tfs_config_fail(err, &kp, "must be a number, not %s", tfs_config_kind(v));
    double x = json_number_value(v);
    if (!(x >= min && x <= max))
        return tfs_config_fail(err, &kp, "%g is out of range (%g to %g)", x, min, max);
    *out = x;
    return 0;
}
