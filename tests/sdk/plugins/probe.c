/* tests/sdk/plugins/probe.c — an SDK 1.3 source and target over text files, for the
 * integration tests of what the host does with 1.3's write limits, op_source, estimates,
 * run-end notifications and (built with -DPROBE_DELTAS, as probe_deltas) the deltas
 * capability.
 *
 * The store is a folder (setting `dir`, relative to the config's folder), one file per
 * entity, `<entity>.tsv`, one record a line: `<id>\t<name>`. Entities: `item` (what a
 * source reads) and `left`, `right` (what a target writes; a test maps one item to both).
 * What the host tells the plugin is appended to files beside them, for the tests to check:
 *   writes.log   one line per cb_write: `write n=<ops> bytes=<bytes> ops=<entity>:<id>:<op_source> ...`
 *                with bytes counted as the SDK counts them (each op's record as JSON);
 *   run_end.log  one line per cb_run_end: `run_end system=<name> run=<id> pair=<pair>
 *                mode=<mode> outcome=<n> role=<n> size=<struct_size> at_us=<wall clock>`.
 * Includes only the SDK header.
 */
#include "tfsync_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifdef PROBE_DELTAS
#define PROBE_NAME "probe_deltas"
#define PROBE_CAPS (TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_NO_FETCH | TFS_SDK_CAP_DELTAS)
#else
#define PROBE_NAME "probe"
#define PROBE_CAPS (TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_NO_FETCH)
#endif

static const tfs_sdk_host *host;

enum { F_ID, F_NAME, N_FIELDS };
static const tfs_sdk_field fields[N_FIELDS] = {
    [F_ID] = {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    [F_NAME] = {"name", TFS_SDK_TEXT, 0, 200, 0, 0},
};
enum { E_ITEM, E_LEFT, E_RIGHT, N_ENTITIES };
static const tfs_sdk_entity entities[N_ENTITIES] = {
    [E_ITEM] = {"item", fields, N_FIELDS},
    [E_LEFT] = {"left", fields, N_FIELDS},
    [E_RIGHT] = {"right", fields, N_FIELDS},
};

enum { C_DIR, C_MAX_OPS, C_MAX_BYTES, C_ESTIMATE, C_GATE, C_FAIL_READ, C_REFUSE_NAME,
       C_FAIL_RUN_END, N_KEYS };
static const tfs_sdk_config_key keys[N_KEYS] = {
    [C_DIR] = {"dir", TFS_SDK_CONFIG_STRING, NULL, "the store's folder (relative: to the config's)"},
    [C_MAX_OPS] = {"max_ops", TFS_SDK_CONFIG_INT, "0", "cb_write_limits' max_ops (0: none)"},
    [C_MAX_BYTES] = {"max_bytes", TFS_SDK_CONFIG_INT, "0", "cb_write_limits' max_bytes (0: none)"},
    [C_ESTIMATE] = {"estimate", TFS_SDK_CONFIG_BOOL, "true",
                    "cb_estimate counts the entity's lines (false: cannot tell)"},
    [C_GATE] = {"gate", TFS_SDK_CONFIG_STRING, "",
                "a file a read after the first batch waits for (\"\": none)"},
    [C_FAIL_READ] = {"fail_read", TFS_SDK_CONFIG_BOOL, "false", "cb_read fails (permanent)"},
    [C_REFUSE_NAME] = {"refuse_name", TFS_SDK_CONFIG_STRING, "",
                       "cb_write refuses the ops of records with this name"},
    [C_FAIL_RUN_END] = {"fail_run_end", TFS_SDK_CONFIG_BOOL, "false", "cb_run_end fails"},
};

typedef struct row {
    int64_t id;
    char *name; /* NULL: null */
} row;

typedef struct table {
    row *rows;
    size_t n, cap;
} table;

typedef struct probe {
    char dir[1024], gate[1024], refuse[256], system[128];
    size_t max_ops, max_bytes;
    bool estimate, fail_read, fail_run_end;
} probe;

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->rows[i].name);
    free(t->rows);
    *t = (table){0};
}

static int cmp_row(const void *a, const void *b)
{
    int64_t x = ((const row *)a)->id, y = ((const row *)b)->id;
    return x < y ? -1 : x > y;
}

static void path_of(const probe *pr, const char *file, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", pr->dir, file);
}

/* Loads an entity's file (missing: empty), sorted by id. 0 or -1. */
static int table_load(const probe *pr, size_t entity, table *t)
{
    char path[1100], line[1024];
    snprintf(line, sizeof line, "%s.tsv", entities[entity].name);
    path_of(pr, line, path, sizeof path);
    *t = (table){0};
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        char *name = tab + 1;
        name[strcspn(name, "\n")] = '\0';
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            row *r = realloc(t->rows, cap * sizeof *r);
            if (!r)
                goto fail;
            t->rows = r;
            t->cap = cap;
        }
        row *r = &t->rows[t->n];
        r->id = strtoll(line, NULL, 10);
        r->name = strcmp(name, "\\N") == 0 ? NULL : strdup(name);
        t->n++;
    }
    fclose(f);
    qsort(t->rows, t->n, sizeof *t->rows, cmp_row);
    return 0;
fail:
    fclose(f);
    table_free(t);
    return -1;
}

static int table_save(const probe *pr, size_t entity, const table *t)
{
    char path[1100], tmp[1200], file[64];
    snprintf(file, sizeof file, "%s.tsv", entities[entity].name);
    path_of(pr, file, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < t->n; i++)
        fprintf(f, "%" PRId64 "\t%s\n", t->rows[i].id, t->rows[i].name ? t->rows[i].name : "\\N");
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static row *table_find(table *t, int64_t id)
{
    row key = {.id = id};
    if (!t->n)
        return NULL;
    return bsearch(&key, t->rows, t->n, sizeof *t->rows, cmp_row);
}

static int append_line(const probe *pr, const char *file, const char *text)
{
    char path[1100];
    path_of(pr, file, path, sizeof path);
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* ---- callbacks -------------------------------------------------------------------------- */

static int probe_check(const char *const *config, tfs_sdk_error *err)
{
    if (!config[C_DIR][0]) {
        host->error_set(err, "could not check: systems.%s.settings.dir is empty; name the "
                        "store's folder", host->config_system(config));
        return TFS_SDK_EPERMANENT;
    }
    return TFS_SDK_OK;
}

static int probe_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    probe *pr = calloc(1, sizeof *pr);
    if (!pr) {
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    const char *dir = config[C_DIR];
    const char *base = TFS_SDK_HOST_HAS(host, config_dir) ? host->config_dir(config) : NULL;
    if (dir[0] != '/' && base)
        snprintf(pr->dir, sizeof pr->dir, "%s/%s", base, dir);
    else
        snprintf(pr->dir, sizeof pr->dir, "%s", dir);
    snprintf(pr->gate, sizeof pr->gate, "%s", config[C_GATE]);
    snprintf(pr->refuse, sizeof pr->refuse, "%s", config[C_REFUSE_NAME]);
    const char *sys = TFS_SDK_HOST_HAS(host, config_system) ? host->config_system(config) : NULL;
    snprintf(pr->system, sizeof pr->system, "%s", sys ? sys : "?");
    pr->max_ops = (size_t)strtoull(config[C_MAX_OPS], NULL, 10);
    pr->max_bytes = (size_t)strtoull(config[C_MAX_BYTES], NULL, 10);
    pr->estimate = strcmp(config[C_ESTIMATE], "true") == 0;
    pr->fail_read = strcmp(config[C_FAIL_READ], "true") == 0;
    pr->fail_run_end = strcmp(config[C_FAIL_RUN_END], "true") == 0;
    *instance = pr;
    return TFS_SDK_OK;
}

static void probe_close(void *instance)
{
    free(instance);
}

static int probe_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                          tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n = N_ENTITIES;
    return TFS_SDK_OK;
}

/* Waits for the gate file (a test opens it once it has seen what it looks for). */
static int wait_gate(const probe *pr, tfs_sdk_error *err)
{
    struct stat st;
    for (int i = 0; i < 6000; i++) {
        if (stat(pr->gate, &st) == 0)
            return TFS_SDK_OK;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    host->error_set(err, "could not read: the gate \"%s\" never opened", pr->gate);
    return TFS_SDK_EPERMANENT;
}

static int probe_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                      size_t cursor_len, size_t max, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    probe *pr = instance;
    (void)mode; /* no change data: always a full read */
    if (pr->fail_read) {
        host->error_set(err, "could not read %s: fail_read is set", entities[entity].name);
        return TFS_SDK_EPERMANENT;
    }
    if (cursor_len && pr->gate[0]) {
        int rc = wait_gate(pr, err);
        if (rc)
            return rc;
    }
    int64_t after = INT64_MIN;
    if (cursor_len) {
        char buf[32];
        size_t n = cursor_len < sizeof buf - 1 ? cursor_len : sizeof buf - 1;
        memcpy(buf, cursor, n);
        buf[n] = '\0';
        after = strtoll(buf, NULL, 10);
    }
    table t;
    if (table_load(pr, entity, &t) != 0) {
        host->error_set(err, "could not read %s: %s", entities[entity].name, strerror(errno));
        return TFS_SDK_EPERMANENT;
    }
    size_t i = 0, added = 0;
    while (i < t.n && t.rows[i].id <= after)
        i++;
    int64_t last = after;
    for (; i < t.n && added < max; i++, added++) {
        tfs_sdk_record *rec = host->batch_add(out);
        if (!rec)
            break;
        host->rec_set_int(rec, F_ID, t.rows[i].id);
        if (t.rows[i].name)
            host->rec_set_text(rec, F_NAME, TFS_SDK_TEXT, t.rows[i].name, (size_t)-1);
        last = t.rows[i].id;
    }
    if (i >= t.n)
        host->batch_set_done(out);
    if (added) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%" PRId64, last);
        host->batch_set_cursor(out, buf, (size_t)n);
    }
    table_free(&t);
    return TFS_SDK_OK;
}

/* The bytes of an op as the SDK counts them: its record as a JSON object. */
static size_t op_bytes(const tfs_sdk_record *rec)
{
    char id[32];
    int n = snprintf(id, sizeof id, "%" PRId64, host->rec_get_int(rec, F_ID));
    size_t len;
    const char *name = host->rec_type(rec, F_NAME) == TFS_SDK_TEXT
                           ? host->rec_get_text(rec, F_NAME, &len)
                           : NULL;
    /* {"id":<id>,"name":"<name>"} or ...,"name":null} (test names need no escaping) */
    return strlen("{\"id\":,\"name\":}") + (size_t)n + (name ? len + 2 : 4);
}

static int probe_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                       tfs_sdk_results *results, tfs_sdk_error *err)
{
    probe *pr = instance;
    table t[N_ENTITIES] = {{0}};
    bool loaded[N_ENTITIES] = {false}, dirty[N_ENTITIES] = {false};
    size_t cap = 64 + n_ops * 48, len = 0, bytes = 0;
    char *log = malloc(cap);
    int rc = TFS_SDK_OK;
    if (!log) {
        host->error_set(err, "could not write: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    for (size_t i = 0; i < n_ops; i++) {
        const tfs_sdk_write_op *op = &ops[i];
        size_t e = op->entity;
        int64_t id = host->rec_get_int(op->record, F_ID);
        size_t src = host->op_source(results, i);
        bytes += op_bytes(op->record);
        if (len < cap) {
            int w = snprintf(log + len, cap - len, " %s:%" PRId64 ":%zu", entities[e].name, id,
                             src);
            len = w > 0 && (size_t)w < cap - len ? len + (size_t)w : cap;
        }
        if (!loaded[e]) {
            if (table_load(pr, e, &t[e]) != 0) {
                host->error_set(err, "could not write %s: %s", entities[e].name, strerror(errno));
                rc = TFS_SDK_EPERMANENT;
                goto out;
            }
            loaded[e] = true;
        }
        size_t nl;
        const char *name = host->rec_type(op->record, F_NAME) == TFS_SDK_TEXT
                               ? host->rec_get_text(op->record, F_NAME, &nl)
                               : NULL;
        if (pr->refuse[0] && name && strcmp(name, pr->refuse) == 0) {
            host->result_set(results, i, TFS_SDK_EPERMANENT, "refused by probe: name \"%s\"",
                             name);
            continue;
        }
        row *r = table_find(&t[e], id);
        if (op->kind == TFS_SDK_OP_DELETE) {
            if (r) {
                free(r->name);
                size_t at = (size_t)(r - t[e].rows);
                memmove(r, r + 1, (t[e].n - at - 1) * sizeof *r);
                t[e].n--;
            }
        } else if (r) {
            free(r->name);
            r->name = name ? strdup(name) : NULL;
        } else {
            if (t[e].n == t[e].cap) {
                size_t c = t[e].cap ? t[e].cap * 2 : 64;
                row *rows = realloc(t[e].rows, c * sizeof *rows);
                if (!rows) {
                    host->error_set(err, "could not write: out of memory");
                    rc = TFS_SDK_ETRANSIENT;
                    goto out;
                }
                t[e].rows = rows;
                t[e].cap = c;
            }
            t[e].rows[t[e].n++] = (row){id, name ? strdup(name) : NULL};
            qsort(t[e].rows, t[e].n, sizeof *t[e].rows, cmp_row);
        }
        dirty[e] = true;
    }
    for (size_t e = 0; e < N_ENTITIES; e++)
        if (dirty[e] && table_save(pr, e, &t[e]) != 0) {
            host->error_set(err, "could not write %s: %s", entities[e].name, strerror(errno));
            rc = TFS_SDK_EPERMANENT;
            goto out;
        }
    {
        char head[96];
        snprintf(head, sizeof head, "write n=%zu bytes=%zu ops=", n_ops, bytes);
        char *line = malloc(strlen(head) + len + 2);
        if (line) {
            sprintf(line, "%s%.*s\n", head, len ? (int)(len - 1) : 0, len ? log + 1 : "");
            append_line(pr, "writes.log", line);
            free(line);
        }
    }
out:
    for (size_t e = 0; e < N_ENTITIES; e++)
        table_free(&t[e]);
    free(log);
    return rc;
}

static int probe_write_limits(void *instance, size_t *max_ops, size_t *max_bytes,
                              tfs_sdk_error *err)
{
    probe *pr = instance;
    (void)err;
    *max_ops = pr->max_ops;
    *max_bytes = pr->max_bytes;
    return TFS_SDK_OK;
}

static int probe_estimate(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err)
{
    probe *pr = instance;
    if (!pr->estimate) {
        *count = -1;
        return TFS_SDK_OK;
    }
    table t;
    if (table_load(pr, entity, &t) != 0) {
        host->error_set(err, "could not count %s: %s", entities[entity].name, strerror(errno));
        return TFS_SDK_EPERMANENT;
    }
    *count = (int64_t)t.n;
    table_free(&t);
    return TFS_SDK_OK;
}

static int probe_run_end(void *instance, const tfs_sdk_run_end *run, tfs_sdk_error *err)
{
    probe *pr = instance;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[768];
    snprintf(line, sizeof line,
             "run_end system=%s run=%" PRId64 " pair=%s mode=%s outcome=%d role=%d size=%u "
             "at_us=%lld\n",
             pr->system, run->run_id, run->pair, run->mode, (int)run->outcome, (int)run->role,
             (unsigned)run->struct_size, (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000);
    if (append_line(pr, "run_end.log", line) != 0) {
        host->error_set(err, "could not record the run's end: %s", strerror(errno));
        return TFS_SDK_EPERMANENT;
    }
    if (pr->fail_run_end) {
        host->error_set(err, "could not publish the outbox: fail_run_end is set");
        return TFS_SDK_EPERMANENT;
    }
    return TFS_SDK_OK;
}

static const tfs_sdk_plugin descriptor = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = PROBE_NAME,
    .version = "1.3.0",
    .description = "SDK 1.3 test source and target over text files",
    .capabilities = PROBE_CAPS,
    .config_keys = keys,
    .n_config_keys = N_KEYS,
    .cb_open = probe_open,
    .cb_close = probe_close,
    .cb_describe = probe_describe,
    .cb_read = probe_read,
    .cb_write = probe_write,
    .cb_check = probe_check,
    .cb_write_limits = probe_write_limits,
    .cb_estimate = probe_estimate,
    .cb_run_end = probe_run_end,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    host = h;
    return &descriptor;
}
