/* tests/sdk/plugins/compat.c — one small source and target plugin, built once against each
 * published SDK header (tests/sdk/v1_0 to v1_4) and once against the current one, so
 * that the host is shown to keep loading and syncing plugins of every earlier minor.
 *
 * A system is one file ("file" setting): lines "seq<TAB>id<TAB>name<TAB>amount<TAB>del",
 * "\N" for null. As a source it is a log: an id's last line is its state, del 1 a deletion,
 * and from 1.1 on its seq numbers are the change cursor. As a target the plugin rewrites it
 * whole, one line per id in id order. Entity "item": id INT64 key, name TEXT(40), amount
 * DECIMAL(12,2).
 *
 * Built for a minor before 1.3, the descriptor is followed in memory by callbacks that
 * abort: a host reading past the descriptor's struct_size would find them (cb_check and
 * cb_write_limits are called when not NULL), so a run that ends proves it read no further.
 * An operation kind it was not built for is refused, as the shipped PACS and GIS do: a
 * host that handed an old build an insert (SDK 1.5) would fail its records. Built for 1.5
 * it takes inserts (TFS_SDK_CAP_INSERT), applies them as upserts, and appends each one's
 * id to "<file>.inserted", so a test can see which keys came as inserts.
 * COMPAT_NAME is the plugin's name (compat_v1_0, ...).
 */
#include "tfsync_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef COMPAT_NAME
#error "COMPAT_NAME must be set"
#endif
/* The header found must be the one of the minor this build is for: an old build that saw
 * the current header would prove nothing. */
#if !defined(COMPAT_MINOR) || TFS_SDK_VERSION_MINOR != COMPAT_MINOR
#error "compat.c is built against the wrong SDK header (check the include path)"
#endif

static const tfs_sdk_host *host;

enum { F_ID, F_NAME, F_AMOUNT, N_FIELDS };

static const tfs_sdk_field item_fields[N_FIELDS] = {
    {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"name", TFS_SDK_TEXT, 0, 40, 0, 0},
    {"amount", TFS_SDK_DECIMAL, 0, 0, 12, 2},
};
static const tfs_sdk_entity entities[] = {{"item", item_fields, N_FIELDS}};

static const tfs_sdk_config_key config_keys[] = {
    {"file", TFS_SDK_CONFIG_STRING, NULL, "the system's data file"},
};

typedef struct row {
    int64_t seq, id;
    char name[200], amount[40]; /* "" with has_* 0: null */
    int has_name, has_amount, del;
} row;

typedef struct compat {
    char *path;
    row *rows;
    size_t n, cap;
} compat;

static int load(compat *c, tfs_sdk_error *err)
{
    c->n = 0;
    FILE *f = fopen(c->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0; /* an empty system */
        host->error_set(err, "could not read \"%s\": %s", c->path, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            row *r = realloc(c->rows, cap * sizeof *r);
            if (!r) {
                fclose(f);
                host->error_set(err, "out of memory");
                return TFS_SDK_ETRANSIENT;
            }
            c->rows = r;
            c->cap = cap;
        }
        row *r = &c->rows[c->n];
        memset(r, 0, sizeof *r);
        char *parts[5] = {0};
        char *save = NULL, *p = strtok_r(line, "\t", &save);
        for (int i = 0; i < 5 && p; i++, p = strtok_r(NULL, "\t", &save))
            parts[i] = p;
        if (!parts[4]) {
            fclose(f);
            host->error_set(err, "could not read \"%s\": a line has not 5 fields", c->path);
            return TFS_SDK_EPERMANENT;
        }
        r->seq = strtoll(parts[0], NULL, 10);
        r->id = strtoll(parts[1], NULL, 10);
        if ((r->has_name = strcmp(parts[2], "\\N") != 0))
            snprintf(r->name, sizeof r->name, "%s", parts[2]);
        if ((r->has_amount = strcmp(parts[3], "\\N") != 0))
            snprintf(r->amount, sizeof r->amount, "%s", parts[3]);
        r->del = parts[4][0] == '1';
        c->n++;
    }
    fclose(f);
    return 0;
}

/* The current state: the last line of each id, deletions included, in id order. */
static int by_id(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0; /* newest first */
}

static void current(compat *c)
{
    if (c->n < 2)
        return; /* qsort of no array: rows may be NULL */
    qsort(c->rows, c->n, sizeof *c->rows, by_id);
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++)
        if (w == 0 || c->rows[w - 1].id != c->rows[i].id)
            c->rows[w++] = c->rows[i];
    c->n = w;
}

static int put(tfs_sdk_batch *out, const row *r)
{
    tfs_sdk_record *rec;
#if TFS_SDK_VERSION_MINOR >= 1
    rec = r->del ? host->batch_add_delete(out) : host->batch_add(out);
#else
    rec = host->batch_add(out);
#endif
    if (!rec)
        return -1;
    int rc = host->rec_set_int(rec, F_ID, r->id);
    if (!r->del && r->has_name)
        rc |= host->rec_set_text(rec, F_NAME, TFS_SDK_TEXT, r->name, (size_t)-1);
    if (!r->del && r->has_amount)
        rc |= host->rec_set_text(rec, F_AMOUNT, TFS_SDK_DECIMAL, r->amount, (size_t)-1);
    return rc;
}

static int compat_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    compat *c = calloc(1, sizeof *c);
    const char *file = config[0];
#if TFS_SDK_VERSION_MINOR >= 3
    /* A relative file starts at the config's folder. */
    const char *dir = host->config_dir(config);
    if (file[0] != '/' && dir) {
        size_t n = strlen(dir) + strlen(file) + 2;
        if (c && (c->path = malloc(n)))
            snprintf(c->path, n, "%s/%s", dir, file);
    } else if (c) {
        c->path = strdup(file);
    }
#else
    if (c)
        c->path = strdup(file);
#endif
    if (!c || !c->path) {
        free(c);
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    *instance = c;
    return 0;
}

static void compat_close(void *instance)
{
    compat *c = instance;
    if (!c)
        return;
    free(c->rows);
    free(c->path);
    free(c);
}

static int compat_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                           tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n = 1;
    return 0;
}

static int read_full(compat *c, const void *cursor, size_t len, size_t max, tfs_sdk_batch *out,
                     tfs_sdk_error *err)
{
    char buf[32] = "";
    int64_t after = INT64_MIN;
    if (len) {
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)cursor);
        after = strtoll(buf, NULL, 10);
    }
    current(c);
    size_t i = 0, added = 0;
    while (i < c->n && c->rows[i].id <= after)
        i++;
    int64_t last = after;
    for (; i < c->n && added < max; i++) {
        if (c->rows[i].del)
            continue;
        if (put(out, &c->rows[i]) != 0)
            goto oom;
        last = c->rows[i].id;
        added++;
    }
    while (i < c->n && c->rows[i].del)
        i++;
    if (added) {
        int n = snprintf(buf, sizeof buf, "%" PRId64, last);
        if (host->batch_set_cursor(out, buf, (size_t)n) != 0)
            goto oom;
    } else if (host->batch_set_cursor(out, cursor, len) != 0) {
        goto oom;
    }
    if (i == c->n)
        host->batch_set_done(out);
    return 0;
oom:
    host->error_set(err, "could not read: out of memory");
    return TFS_SDK_ETRANSIENT;
}

#if TFS_SDK_VERSION_MINOR >= 1
/* The lines after the cursor's seq, in seq order, each id once per batch. */
static int read_changes(compat *c, const void *cursor, size_t len, size_t max,
                        tfs_sdk_batch *out, tfs_sdk_error *err)
{
    char buf[32] = "0";
    if (len)
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), (const char *)cursor);
    int64_t after = strtoll(buf, NULL, 10), last = after;
    size_t added = 0, i;
    for (i = 0; i < c->n && added < max; i++) {
        const row *r = &c->rows[i];
        if (r->seq <= after)
            continue;
        int again = 0;
        for (size_t k = 0; k < i && !again; k++)
            again = c->rows[k].seq > after && c->rows[k].seq <= last && c->rows[k].id == r->id;
        if (again)
            break; /* the next batch takes it */
        if (put(out, r) != 0)
            goto oom;
        last = r->seq;
        added++;
    }
    int n = snprintf(buf, sizeof buf, "%" PRId64, last);
    if (host->batch_set_cursor(out, buf, (size_t)n) != 0)
        goto oom;
    int more = 0;
    for (size_t k = 0; k < c->n; k++)
        more |= c->rows[k].seq > last;
    if (!more)
        host->batch_set_done(out);
    return 0;
oom:
    host->error_set(err, "could not read changes: out of memory");
    return TFS_SDK_ETRANSIENT;
}
#endif

static int compat_read(void *instance, size_t entity, tfs_sdk_read_mode mode,
                       const void *cursor, size_t len, size_t max, tfs_sdk_batch *out,
                       tfs_sdk_error *err)
{
    compat *c = instance;
    (void)entity;
    int rc = load(c, err);
    if (rc)
        return rc;
#if TFS_SDK_VERSION_MINOR >= 1
    if (mode == TFS_SDK_READ_CHANGES)
        return read_changes(c, cursor, len, max, out, err);
#else
    (void)mode;
#endif
    return read_full(c, cursor, len, max, out, err);
}

static int compat_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                        size_t n, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    compat *c = instance;
    (void)entity;
    int rc = load(c, err);
    if (rc)
        return rc;
    current(c);
    for (size_t k = 0; k < n; k++) {
        int64_t id = host->rec_get_int(keys[k], F_ID);
        for (size_t i = 0; i < c->n; i++)
            if (c->rows[i].id == id && !c->rows[i].del && put(out, &c->rows[i]) != 0) {
                host->error_set(err, "could not fetch: out of memory");
                return TFS_SDK_ETRANSIENT;
            }
    }
    return 0;
}

static int save(compat *c, tfs_sdk_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        host->error_set(err, "could not write \"%s\": %s", tmp, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    size_t seq = 0;
    for (size_t i = 0; i < c->n; i++) {
        const row *r = &c->rows[i];
        if (!r->del)
            fprintf(f, "%zu\t%" PRId64 "\t%s\t%s\t0\n", ++seq, r->id,
                    r->has_name ? r->name : "\\N", r->has_amount ? r->amount : "\\N");
    }
    if (fclose(f) != 0 || rename(tmp, c->path) != 0) {
        host->error_set(err, "could not write \"%s\": %s", c->path, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

static int compat_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                        tfs_sdk_results *results, tfs_sdk_error *err)
{
    compat *c = instance;
    int rc = load(c, err);
    if (rc)
        return rc;
    current(c);
    FILE *inserted = NULL;
    for (size_t o = 0; o < n_ops; o++) {
        const tfs_sdk_record *rec = ops[o].record;
        int64_t id = host->rec_get_int(rec, F_ID);
#if TFS_SDK_VERSION_MINOR >= 5
        if (ops[o].kind == TFS_SDK_OP_INSERT) {
            char log[4200];
            snprintf(log, sizeof log, "%s.inserted", c->path);
            if (!inserted && !(inserted = fopen(log, "a"))) {
                host->error_set(err, "could not write \"%s\": %s", log, strerror(errno));
                return TFS_SDK_ETRANSIENT;
            }
            fprintf(inserted, "%" PRId64 "\n", id);
        } else
#endif
        if (ops[o].kind != TFS_SDK_OP_UPSERT && ops[o].kind != TFS_SDK_OP_DELETE) {
            host->result_set(results, o, TFS_SDK_EPERMANENT,
                             "could not write item %" PRId64 ": unknown operation %d", id,
                             (int)ops[o].kind);
            continue;
        }
        row *r = NULL;
        for (size_t i = 0; i < c->n && !r; i++)
            if (c->rows[i].id == id)
                r = &c->rows[i];
        if (!r) {
            if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 64;
                row *nr = realloc(c->rows, cap * sizeof *nr);
                if (!nr) {
                    if (inserted)
                        fclose(inserted);
                    host->error_set(err, "could not write: out of memory");
                    return TFS_SDK_ETRANSIENT;
                }
                c->rows = nr;
                c->cap = cap;
            }
            r = &c->rows[c->n++];
        }
        memset(r, 0, sizeof *r);
        r->id = id;
        r->del = ops[o].kind == TFS_SDK_OP_DELETE;
        size_t len;
        const char *s = host->rec_get_text(rec, F_NAME, &len);
        if ((r->has_name = s != NULL))
            snprintf(r->name, sizeof r->name, "%s", s);
        s = host->rec_get_text(rec, F_AMOUNT, &len);
        if ((r->has_amount = s != NULL))
            snprintf(r->amount, sizeof r->amount, "%s", s);
    }
    if (inserted && fclose(inserted) != 0) {
        host->error_set(err, "could not write the inserted ids: %s", strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    current(c);
    return save(c, err);
}

static int compat_health(void *instance, tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    return 0;
}

#if TFS_SDK_VERSION_MINOR >= 1
static int compat_changes_start(void *instance, size_t entity, tfs_sdk_batch *out,
                                tfs_sdk_error *err)
{
    compat *c = instance;
    (void)entity;
    int rc = load(c, err);
    if (rc)
        return rc;
    int64_t max = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->rows[i].seq > max)
            max = c->rows[i].seq;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRId64, max);
    return host->batch_set_cursor(out, buf, (size_t)n) == 0 ? 0 : TFS_SDK_ETRANSIENT;
}
#endif

#if TFS_SDK_VERSION_MINOR >= 3
static int compat_check(const char *const *config, tfs_sdk_error *err)
{
    if (!config[0][0]) {
        host->error_set(err, "systems.%s.settings.file: must name a file",
                        host->config_system(config));
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}
#endif

#define COMPAT_CAPS_BASE (TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET)
#if TFS_SDK_VERSION_MINOR >= 5
#define COMPAT_CAPS                                                                              \
    (COMPAT_CAPS_BASE | TFS_SDK_CAP_CHANGES | TFS_SDK_CAP_LAZY_OPEN | TFS_SDK_CAP_INSERT)
#elif TFS_SDK_VERSION_MINOR >= 3
#define COMPAT_CAPS (COMPAT_CAPS_BASE | TFS_SDK_CAP_CHANGES | TFS_SDK_CAP_LAZY_OPEN)
#elif TFS_SDK_VERSION_MINOR >= 1
#define COMPAT_CAPS (COMPAT_CAPS_BASE | TFS_SDK_CAP_CHANGES)
#else
#define COMPAT_CAPS COMPAT_CAPS_BASE
#endif

/* Called only by a host that reads past the descriptor. */
static void poison(void)
{
    fputs("compat: the host called a callback past the descriptor's struct_size\n", stderr);
    abort();
}

static const struct {
    tfs_sdk_plugin desc;
    void (*trail[16])(void);
} blob = {
    .desc =
        {
            .struct_size = sizeof(tfs_sdk_plugin),
            .sdk_major = TFS_SDK_VERSION_MAJOR,
            .sdk_minor = TFS_SDK_VERSION_MINOR,
            .name = COMPAT_NAME,
            .version = "1.0.0",
            .description = "a file-backed source and target built against an SDK header",
            .capabilities = COMPAT_CAPS,
            .config_keys = config_keys,
            .n_config_keys = 1,
            .cb_open = compat_open,
            .cb_close = compat_close,
            .cb_describe = compat_describe,
            .cb_read = compat_read,
            .cb_fetch = compat_fetch,
            .cb_write = compat_write,
            .cb_health = compat_health,
#if TFS_SDK_VERSION_MINOR >= 1
            .cb_changes_start = compat_changes_start,
#endif
#if TFS_SDK_VERSION_MINOR >= 3
            .cb_check = compat_check,
#endif
        },
    .trail = {poison, poison, poison, poison, poison, poison, poison, poison, poison, poison,
              poison, poison, poison, poison, poison, poison},
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    host = h;
    return &blob.desc;
}
