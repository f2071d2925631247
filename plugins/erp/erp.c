/* plugins/erp/erp.c — the billing system's batch interface: CSV files (RFC 4180: quotes,
 * embedded commas and newlines, CRLF, a UTF-8 BOM), read and written with libcsv.
 *
 * Target (pair pacs-to-erp, no fetch): the billing roll, two entities,
 *   roll_owner  prop_id, tax_year | account, owner_name, mail_line1, mail_line2, mail_city,
 *               mail_state, mail_zip
 *   roll_value  prop_id, tax_year | taxable_value (whole dollars), exemption_codes
 * cb_write writes its operations to a new <outbox>/.pending/<entity>.<stamp>.csv (a .tmp
 * file fsync'd, then renamed) before returning OK. cb_run_end (as target) publishes every pending file: the last row per key
 * wins (a batch written again after a crash, before the state commit, adds no duplicate),
 * and the file and its manifest (row count, SHA-256 of the file) are built in a hidden
 * folder, fsync'd, and renamed at once into <outbox>/<entity>-<run_id>/ (then the outbox is
 * fsync'd), so a reader sees both or neither. What is pending at a crash is published by
 * the next run's end; a journal written before the rename keeps a crash between the rename
 * and the pending files' removal from publishing them twice. A delete is a row whose first column, action, is "D" (an upsert: "U").
 *
 * Source (pair erp-to-pacs, deltas: never swept): entity payment, from the inbox's *.csv files, read
 * in name order, each with a header line naming the columns, streamed (csv_stream.h). The
 * cursor is "<file>\n<row>\n<byte offset>\n<line>", where the next record starts.
 * A malformed row (wrong field count, bad number, bad date, unterminated quote) is a dead
 * letter keyed "<file>:<line>" (rec_fail) with its reason; the rest of the file is read. Files read to their end
 * are moved to <archive> in cb_run_end when the run committed (succeeded or partial), never
 * before. A missing inbox is an error, at check and at read.
 *
 * Includes only the SDK header, libcsv and libc.
 */
#include "tfsync_plugin.h"

#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv_stream.h"
#include "sha256.h"

static const tfs_sdk_host *host;

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define KEYF(n, t) {n, t, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0}
#define TXT(n, l) {n, TFS_SDK_TEXT, 0, l, 0, 0}

static const tfs_sdk_field owner_fields[] = {
    KEYF("prop_id", TFS_SDK_INT64), KEYF("tax_year", TFS_SDK_INT64),
    TXT("account", 20),            TXT("owner_name", 120),
    TXT("mail_line1", 120),        TXT("mail_line2", 120),
    TXT("mail_city", 60),          TXT("mail_state", 2),
    TXT("mail_zip", 10),
};
static const tfs_sdk_field value_fields[] = {
    KEYF("prop_id", TFS_SDK_INT64),
    KEYF("tax_year", TFS_SDK_INT64),
    {"taxable_value", TFS_SDK_DECIMAL, 0, 0, 14, 0},
    TXT("exemption_codes", 200),
};
static const tfs_sdk_field payment_fields[] = {
    {"bill_id", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 300, 0, 0},
    {"prop_id", TFS_SDK_INT64, TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"tax_year", TFS_SDK_INT64, TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"amount_due_cents", TFS_SDK_INT64, 0, 0, 0, 0},
    {"amount_paid_cents", TFS_SDK_INT64, 0, 0, 0, 0},
    TXT("payment_status_type_cd", 10),
    {"last_modified", TFS_SDK_DATE, 0, 0, 0, 0},
};
enum { P_BILL_ID };
enum { E_OWNER, E_VALUE, E_PAYMENT, N_ENTITIES };
static const tfs_sdk_entity entities[N_ENTITIES] = {
    [E_OWNER] = {"roll_owner", owner_fields, N_OF(owner_fields)},
    [E_VALUE] = {"roll_value", value_fields, N_OF(value_fields)},
    [E_PAYMENT] = {"payment", payment_fields, N_OF(payment_fields)},
};

enum { C_OUTBOX, C_INBOX, C_ARCHIVE, N_KEYS };
static const tfs_sdk_config_key keys[N_KEYS] = {
    [C_OUTBOX] = {"outbox", TFS_SDK_CONFIG_STRING, "",
                  "folder the billing-roll files are published to (relative: to the config's)"},
    [C_INBOX] = {"inbox", TFS_SDK_CONFIG_STRING, "",
                 "folder the billing system drops payment-status files in"},
    [C_ARCHIVE] = {"archive", TFS_SDK_CONFIG_STRING, "",
                   "folder processed payment-status files are moved to"},
};

typedef struct erp {
    char outbox[1024], inbox[1024], archive[1024], system[128];
    char **done;   /* inbox files read to their end, to archive at run end */
    size_t n_done;
} erp;

/* ---- small helpers ------------------------------------------------------------------ */

static void resolve(const char *const *config, const char *value, char *out, size_t size)
{
    const char *base = TFS_SDK_HOST_HAS(host, config_dir) ? host->config_dir(config) : NULL;
    if (value[0] && value[0] != '/' && base)
        snprintf(out, size, "%s/%s", base, value);
    else
        snprintf(out, size, "%s", value);
}

static const char *sys_of(const char *const *config)
{
    const char *s = TFS_SDK_HOST_HAS(host, config_system) ? host->config_system(config) : NULL;
    return s ? s : "erp";
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        *len = n;
    return buf;
}

/* ---- CSV parsing into rows ---------------------------------------------------------- */

typedef struct csv_row {
    char **f;      /* fields, NUL-terminated */
    size_t n, cap;
    long line;     /* physical line the row starts on, from 1 */
} csv_row;

typedef struct csv_doc {
    csv_row *rows;
    size_t n, cap;
    csv_row cur;
    long line, cur_line;
    bool oom;
} csv_doc;

static void row_free(csv_row *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->f[i]);
    free(r->f);
    *r = (csv_row){0};
}

static void doc_free(csv_doc *d)
{
    for (size_t i = 0; i < d->n; i++)
        row_free(&d->rows[i]);
    free(d->rows);
    row_free(&d->cur);
    *d = (csv_doc){0};
}

static void on_field(void *s, size_t len, void *data)
{
    csv_doc *d = data;
    if (d->cur.n == 0)
        d->cur.line = d->cur_line;
    if (d->cur.n == d->cur.cap) {
        size_t cap = d->cur.cap ? d->cur.cap * 2 : 16;
        char **f = realloc(d->cur.f, cap * sizeof *f);
        if (!f) {
            d->oom = true;
            return;
        }
        d->cur.f = f;
        d->cur.cap = cap;
    }
    char *v = malloc(len + 1);
    if (!v) {
        d->oom = true;
        return;
    }
    memcpy(v, s ? s : "", len);
    v[len] = '\0';
    for (size_t i = 0; i < len; i++) /* embedded newlines move the physical line on */
        if (v[i] == '\n')
            d->line++;
    d->cur.f[d->cur.n++] = v;
}

static void on_row(int c, void *data)
{
    csv_doc *d = data;
    (void)c;
    d->line++;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        csv_row *r = realloc(d->rows, cap * sizeof *r);
        if (!r) {
            d->oom = true;
            row_free(&d->cur);
            return;
        }
        d->rows = r;
        d->cap = cap;
    }
    if (d->cur.n == 0)
        d->cur.line = d->cur_line;
    d->rows[d->n++] = d->cur;
    d->cur = (csv_row){0};
    d->cur_line = d->line;
}

/* Parses buf (a UTF-8 BOM skipped) into rows. On a parse error (an unterminated quote),
 * *bad_line is the line where the broken row starts and the rows before it are kept.
 * 0, or -1 out of memory. */
static int csv_doc_parse(const char *buf, size_t len, csv_doc *d, long *bad_line)
{
    struct csv_parser p;
    *d = (csv_doc){.line = 1, .cur_line = 1};
    *bad_line = 0;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return -1;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    if (csv_parse(&p, buf, len, on_field, on_row, d) != len ||
        csv_fini(&p, on_field, on_row, d) != 0) {
        /* A stray quote breaks the row it is in: report where that row began. */
        *bad_line = d->cur_line;
        row_free(&d->cur);
    }
    csv_free(&p);
    if (d->oom) {
        doc_free(d);
        return -1;
    }
    return 0;
}

/* ---- callbacks: open, check, describe ---------------------------------------------- */

static int erp_check(const char *const *config, tfs_sdk_error *err)
{
    const char *sys = sys_of(config);
    char path[1024];
    if (!config[C_OUTBOX][0] && !config[C_INBOX][0]) {
        host->error_set(err, "could not check: systems.%s.settings has neither outbox nor "
                        "inbox; set outbox (pacs-to-erp) or inbox and archive (erp-to-pacs)",
                        sys);
        return TFS_SDK_EPERMANENT;
    }
    const int dirs[] = {C_OUTBOX, C_INBOX, C_ARCHIVE};
    for (size_t i = 0; i < N_OF(dirs); i++) {
        const char *v = config[dirs[i]];
        if (!v[0])
            continue;
        resolve(config, v, path, sizeof path);
        if (!is_dir(path)) {
            host->error_set(err, "could not check: systems.%s.settings.%s: \"%s\" is not a "
                            "folder; create it or fix the path", sys, keys[dirs[i]].name, path);
            return TFS_SDK_EPERMANENT;
        }
    }
    if (config[C_INBOX][0] && !config[C_ARCHIVE][0]) {
        host->error_set(err, "could not check: systems.%s.settings.archive is empty; name the "
                        "folder processed inbox files move to", sys);
        return TFS_SDK_EPERMANENT;
    }
    return TFS_SDK_OK;
}

static int erp_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    erp *e = calloc(1, sizeof *e);
    if (!e) {
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    resolve(config, config[C_OUTBOX], e->outbox, sizeof e->outbox);
    resolve(config, config[C_INBOX], e->inbox, sizeof e->inbox);
    resolve(config, config[C_ARCHIVE], e->archive, sizeof e->archive);
    snprintf(e->system, sizeof e->system, "%s", sys_of(config));
    *instance = e;
    return TFS_SDK_OK;
}

static void erp_close(void *instance)
{
    erp *e = instance;
    if (!e)
        return;
    for (size_t i = 0; i < e->n_done; i++)
        free(e->done[i]);
    free(e->done);
    free(e);
}

static int erp_describe(void *instance, const tfs_sdk_entity **out, size_t *n,
                        tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n = N_ENTITIES;
    return TFS_SDK_OK;
}

/* ---- target: pending files and publishing ------------------------------------------ */

static int ensure_dir(const char *path)
{
    if (mkdir(path, 0755) == 0) {
        char parent[1100];
        snprintf(parent, sizeof parent, "%s/..", path);
        return fsync_path(parent);
    }
    return errno == EEXIST ? 0 : -1;
}

/* One field of a record as CSV text ("" for null). */
static void write_field(FILE *f, const tfs_sdk_record *rec, size_t i, const tfs_sdk_field *fd)
{
    fputc(',', f);
    tfs_sdk_type t = host->rec_type(rec, i);
    if (t == TFS_SDK_NULL)
        return;
    if (t == TFS_SDK_INT64) {
        fprintf(f, "%" PRId64, host->rec_get_int(rec, i));
        return;
    }
    size_t len = 0;
    const char *s = host->rec_get_text(rec, i, &len);
    (void)fd;
    if (s)
        csv_fwrite(f, s, len);
}

/* A name for a new pending file that sorts after every earlier one of this process and
 * of the ones before it: the wall clock in ns, then a counter. */
static void pending_stamp(char *out, size_t size)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    snprintf(out, size, "%020lld-%08u",
             (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec, n);
}

static int erp_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                     tfs_sdk_results *results, tfs_sdk_error *err)
{
    erp *e = instance;
    char dir[1100], tmp[N_ENTITIES][1300], stamp[64];
    FILE *files[N_ENTITIES] = {NULL};
    int rc = TFS_SDK_OK;
    if (!e->outbox[0]) {
        host->error_set(err, "could not write: systems.%s.settings.outbox is not set",
                        e->system);
        return TFS_SDK_EPERMANENT;
    }
    snprintf(dir, sizeof dir, "%s/.pending", e->outbox);
    if (ensure_dir(dir) != 0) {
        host->error_set(err, "could not write: cannot create \"%s\": %s", dir, strerror(errno));
        return TFS_SDK_EPERMANENT;
    }
    /* Each call writes files of its own, renamed into place once whole: a crash leaves
     * a .tmp file (never OK'd, ignored) or a whole one, never a torn row in one that a
     * later call appends to. */
    pending_stamp(stamp, sizeof stamp);
    for (size_t i = 0; i < n_ops; i++) {
        size_t ent = ops[i].entity;
        if (ent != E_OWNER && ent != E_VALUE) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: erp is a target of roll_owner and "
                             "roll_value only", ent < N_ENTITIES ? entities[ent].name : "?");
            continue;
        }
        if (!files[ent]) {
            snprintf(tmp[ent], sizeof tmp[ent], "%s/%s.%s.csv.tmp", dir, entities[ent].name,
                     stamp);
            files[ent] = fopen(tmp[ent], "wb");
            if (!files[ent]) {
                host->error_set(err, "could not write: cannot create \"%s\": %s", tmp[ent],
                                strerror(errno));
                rc = TFS_SDK_ETRANSIENT;
                goto out;
            }
        }
        FILE *f = files[ent];
        const tfs_sdk_entity *en = &entities[ent];
        fputs(ops[i].kind == TFS_SDK_OP_DELETE ? "D" : "U", f);
        for (size_t k = 0; k < en->n_fields; k++) {
            if (ops[i].kind == TFS_SDK_OP_DELETE && !(en->fields[k].flags & TFS_SDK_FIELD_KEY))
                fputc(',', f);
            else
                write_field(f, ops[i].record, k, &en->fields[k]);
        }
        fputs("\r\n", f);
    }
    /* Durable before OK: the sync map will say these were written. */
    for (size_t k = 0; k < N_ENTITIES && rc == TFS_SDK_OK; k++) {
        if (!files[k])
            continue;
        int bad = fflush(files[k]) != 0 || fsync(fileno(files[k])) != 0;
        bad |= fclose(files[k]) != 0;
        files[k] = NULL;
        char final[1300];
        snprintf(final, sizeof final, "%.*s", (int)(strlen(tmp[k]) - 4), tmp[k]);
        if (bad || rename(tmp[k], final) != 0) {
            host->error_set(err, "could not write %s: %s", entities[k].name, strerror(errno));
            rc = TFS_SDK_ETRANSIENT;
        }
    }
    if (rc == TFS_SDK_OK && fsync_path(dir) != 0) {
        host->error_set(err, "could not write: fsync \"%s\": %s", dir, strerror(errno));
        rc = TFS_SDK_ETRANSIENT;
    }
out:
    for (size_t k = 0; k < N_ENTITIES; k++)
        if (files[k]) {
            fclose(files[k]);
            unlink(tmp[k]);
        }
    return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static int write_file_synced(const char *path, const char *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

/* Appends a CSV field to a growing buffer (quoted when it needs to be). */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_field(sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        sb_add(b, s, strlen(s));
        return;
    }
    sb_add(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        sb_add(b, q, 1);
        if (*q == '"')
            sb_add(b, "\"", 1); /* a quote inside quotes is doubled */
    }
    sb_add(b, "\"", 1);
}

static size_t n_keys_of(const tfs_sdk_entity *en)
{
    size_t n = 0;
    while (n < en->n_fields && (en->fields[n].flags & TFS_SDK_FIELD_KEY))
        n++;
    return n;
}

static int cmp_str(const void *a, const void *b);
static void names_free(char **names, size_t n);

/* The whole pending files of an entity (<entity>.<stamp>.csv), in name order, i.e. in the
 * order they were written. A .tmp file (a write that never returned OK) is removed. */
static int list_pending(const char *pdir, const char *entity, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(pdir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    size_t el = strlen(entity), cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (strncmp(nm, entity, el) != 0 || nm[el] != '.')
            continue;
        if (l > 8 && strcmp(nm + l - 8, ".csv.tmp") == 0) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", pdir, nm);
            unlink(path);
            continue;
        }
        if (l < 5 || strcmp(nm + l - 4, ".csv") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*out, cap * sizeof *p);
            if (!p)
                break;
            *out = p;
        }
        if (((*out)[*n] = strdup(nm)))
            (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, cmp_str);
    return 0;
}

/* The rows of key order for "last row per key wins": pointers to whole rows, sorted by
 * their key fields and then by position, so the last of each key is the last of its run.
 * n log n, where comparing each row with every later one was quadratic in a roll. */
typedef struct keyed_row {
    const csv_row *row;
    size_t at;
} keyed_row;

static _Thread_local size_t sort_keys; /* qsort has no context argument */

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_row *x = a, *y = b;
    for (size_t k = 0; k < sort_keys; k++) {
        int c = strcmp(x->row->f[1 + k], y->row->f[1 + k]);
        if (c)
            return c;
    }
    return x->at < y->at ? -1 : x->at > y->at;
}

/* keep[i] = whether row i is whole and no later whole row has its key. 0, or -1 when out
 * of memory. */
static int last_per_key(const csv_doc *d, size_t nk, size_t width, bool *keep)
{
    keyed_row *k = malloc((d->n ? d->n : 1) * sizeof *k);
    if (!k)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        keep[i] = false;
        if (d->rows[i].n == width) /* a torn last line of a crashed write is left out */
            k[n++] = (keyed_row){&d->rows[i], i};
    }
    sort_keys = nk;
    if (n)
        qsort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < n; i++) {
        int last = i + 1 == n;
        for (size_t f = 0; !last && f < nk; f++)
            last = strcmp(k[i].row->f[1 + f], k[i + 1].row->f[1 + f]) != 0;
        if (last)
            keep[k[i].at] = true;
    }
    free(k);
    return 0;
}

/* The publish journal, <outbox>/.pending/<entity>.journal: the folder a publish renames
 * into place (first line) and the pending files it holds (one a line), written whole
 * before the rename. A crash after the rename and before those pending files are gone
 * leaves it behind: the next publish then removes them instead of publishing their rows
 * a second time (and drops a journal whose folder never appeared). */
static int journal_recover(const char *pdir, const char *outbox, const char *entity)
{
    char jpath[1300], path[1400];
    snprintf(jpath, sizeof jpath, "%s/%s.journal", pdir, entity);
    size_t len;
    char *raw = slurp(jpath, &len);
    if (!raw)
        return errno == ENOENT ? 0 : -1;
    char *text = realloc(raw, len + 1); /* slurp's bytes have no terminator */
    if (!text) {
        free(raw);
        return -1;
    }
    text[len] = '\0';
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", outbox, line ? line : "");
    int done = line && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    while (done && (line = strtok_r(NULL, "\n", &save))) {
        snprintf(path, sizeof path, "%s/%s", pdir, line);
        if (unlink(path) != 0 && errno != ENOENT) {
            free(text);
            return -1;
        }
    }
    free(text);
    if (unlink(jpath) != 0 && errno != ENOENT)
        return -1;
    return fsync_path(pdir);
}

static int journal_write(const char *pdir, const char *entity, const char *final_name,
                         char **names, size_t n)
{
    sbuf j = {0};
    sb_add(&j, final_name, strlen(final_name));
    sb_add(&j, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        sb_add(&j, names[i], strlen(names[i]));
        sb_add(&j, "\n", 1);
    }
    char tmp[1300], jpath[1300];
    snprintf(tmp, sizeof tmp, "%s/%s.journal.tmp", pdir, entity);
    snprintf(jpath, sizeof jpath, "%s/%s.journal", pdir, entity);
    int rc = j.oom || write_file_synced(tmp, j.p, j.n) != 0 || rename(tmp, jpath) != 0 ||
                     fsync_path(pdir) != 0
                 ? -1
                 : 0;
    free(j.p);
    return rc;
}

/* Publishes one entity's pending file as <outbox>/<entity>-<run>/ holding <entity>.csv and
 * manifest.json. 0, or -1 with err set. */
static int publish(erp *e, size_t ent, int64_t run_id, tfs_sdk_error *err)
{
    const tfs_sdk_entity *en = &entities[ent];
    char pdir[1200], tmpdir[1200], final[1300], path[1400];
    snprintf(pdir, sizeof pdir, "%s/.pending", e->outbox);
    char **names;
    size_t n_names, len = 0;
    if (journal_recover(pdir, e->outbox, en->name) != 0) {
        host->error_set(err, "could not publish %s: recover the journal in \"%s\": %s",
                        en->name, pdir, strerror(errno));
        return -1;
    }
    if (list_pending(pdir, en->name, &names, &n_names) != 0) {
        host->error_set(err, "could not publish %s: list \"%s\": %s", en->name, pdir,
                        strerror(errno));
        return -1;
    }
    if (n_names == 0)
        return 0;
    char *buf = NULL;
    for (size_t i = 0; i < n_names; i++) {
        size_t l;
        snprintf(path, sizeof path, "%s/%s", pdir, names[i]);
        char *one = slurp(path, &l);
        char *grown = one ? realloc(buf, len + l + 1) : NULL;
        if (!grown) {
            host->error_set(err, "could not publish %s: read \"%s\": %s", en->name, path,
                            strerror(errno));
            free(one);
            free(buf);
            names_free(names, n_names);
            return -1;
        }
        buf = grown;
        memcpy(buf + len, one, l);
        len += l;
        free(one);
    }
    csv_doc d;
    long bad;
    int rc = csv_doc_parse(buf, len, &d, &bad);
    free(buf);
    if (rc != 0) {
        names_free(names, n_names);
        host->error_set(err, "could not publish %s: out of memory", en->name);
        return -1;
    }
    size_t nk = n_keys_of(en), width = en->n_fields + 1;
    /* Last row per key wins: keep a row only when no later row has its key. */
    sbuf out = {0};
    sb_add(&out, "action", 6);
    for (size_t k = 0; k < en->n_fields; k++) {
        sb_add(&out, ",", 1);
        sb_field(&out, en->fields[k].name);
    }
    sb_add(&out, "\r\n", 2);
    size_t rows = 0;
    bool *keep = malloc((d.n ? d.n : 1) * sizeof *keep);
    if (!keep || last_per_key(&d, nk, width, keep) != 0)
        out.oom = true;
    for (size_t i = 0; !out.oom && i < d.n; i++) {
        csv_row *r = &d.rows[i];
        if (!keep[i])
            continue; /* torn (its batch is written again), or a later row has its key */
        for (size_t k = 0; k < width; k++) {
            if (k)
                sb_add(&out, ",", 1);
            sb_field(&out, r->f[k]);
        }
        sb_add(&out, "\r\n", 2);
        rows++;
    }
    free(keep);
    doc_free(&d);
    if (out.oom) {
        free(out.p);
        names_free(names, n_names);
        host->error_set(err, "could not publish %s: out of memory", en->name);
        return -1;
    }
    char digest[65];
    tfs_sha256_hex(out.p, out.n, digest);
    char manifest[512];
    int mlen = snprintf(manifest, sizeof manifest,
                        "{\"entity\":\"%s\",\"run_id\":%" PRId64 ",\"file\":\"%s.csv\","
                        "\"rows\":%zu,\"bytes\":%zu,\"sha256\":\"%s\"}\n",
                        en->name, run_id, en->name, rows, out.n, digest);
    snprintf(tmpdir, sizeof tmpdir, "%s/.publish-%s-%" PRId64, e->outbox, en->name, run_id);
    snprintf(final, sizeof final, "%s/%s-%" PRId64, e->outbox, en->name, run_id);
    const char *step = "create";
    if (mkdir(tmpdir, 0755) != 0 && errno != EEXIST)
        goto fail;
    step = "write";
    snprintf(path, sizeof path, "%s/%s.csv", tmpdir, en->name);
    if (write_file_synced(path, out.p, out.n) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/manifest.json", tmpdir);
    if (write_file_synced(path, manifest, (size_t)mlen) != 0 || fsync_path(tmpdir) != 0)
        goto fail;
    step = "rename";
    /* A folder of this run id already there (a resumed run published before, with other
     * rows): this one is <entity>-<run>.<k>. The journal names it before the rename. */
    char fname[300];
    snprintf(fname, sizeof fname, "%s-%" PRId64, en->name, run_id);
    struct stat st;
    for (int k = 2; snprintf(final, sizeof final, "%s/%s", e->outbox, fname),
             stat(final, &st) == 0;
         k++) {
        if (k > 99)
            goto fail;
        snprintf(fname, sizeof fname, "%s-%" PRId64 ".%d", en->name, run_id, k);
    }
    step = "journal";
    if (journal_write(pdir, en->name, fname, names, n_names) != 0)
        goto fail;
    step = "rename";
    if (rename(tmpdir, final) != 0 || fsync_path(e->outbox) != 0)
        goto fail;
    /* A test's crash at the worst moment: published, its pending files still there. */
    if (getenv("TFS_ERP_FAULT_AFTER_PUBLISH"))
        _exit(137);
    /* Published: only now may the pending rows go. */
    step = "clear";
    for (size_t i = 0; i < n_names; i++) {
        snprintf(path, sizeof path, "%s/%s", pdir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            goto fail;
    }
    snprintf(path, sizeof path, "%s/%s.journal", pdir, en->name);
    if (unlink(path) != 0 && errno != ENOENT)
        goto fail;
    fsync_path(pdir);
    names_free(names, n_names);
    free(out.p);
    host->log(host, TFS_SDK_LOG_INFO, "published %s: %zu rows, sha256 %s", final, rows, digest);
    return 0;
fail:
    host->error_set(err, "could not publish %s (%s \"%s\"): %s", en->name, step, final,
                    strerror(errno));
    names_free(names, n_names);
    free(out.p);
    return -1;
}

/* ---- source: payment-status files -------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The inbox's *.csv names, sorted. NULL with *n 0 when empty; -1 when unreadable. */
static int list_inbox(const erp *e, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(e->inbox);
    if (!d)
        return -1;
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".csv") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*out, cap * sizeof *p);
            if (!p)
                break;
            *out = p;
        }
        (*out)[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof **out, cmp_str);
    return 0;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void mark_done(erp *e, const char *name)
{
    for (size_t i = 0; i < e->n_done; i++)
        if (strcmp(e->done[i], name) == 0)
            return;
    char **p = realloc(e->done, (e->n_done + 1) * sizeof *p);
    if (!p)
        return;
    e->done = p;
    e->done[e->n_done++] = strdup(name);
}

static bool parse_int(const char *s, int64_t *v)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static bool parse_date(const char *s)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return s[4] == '-' && s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] &&
           (m != 2 || d < 29 || (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

/* Checks a payment row (columns mapped by the header) and, with rec, sets its fields.
 * NULL, or the reason the row is malformed. */
static const char *payment_row(const csv_rec *r, const int *col, tfs_sdk_record *rec,
                               char *why, size_t size)
{
    for (size_t k = 0; k < N_OF(payment_fields); k++) {
        const char *v = r->f[col[k]];
        const tfs_sdk_field *fd = &payment_fields[k];
        if (!*v) {
            if (fd->flags & TFS_SDK_FIELD_REQUIRED) {
                snprintf(why, size, "%s is empty", fd->name);
                return why;
            }
            continue;
        }
        if (fd->type == TFS_SDK_INT64) {
            int64_t x;
            if (!parse_int(v, &x)) {
                snprintf(why, size, "%s \"%s\" is not a whole number", fd->name, v);
                return why;
            }
            if (rec)
                host->rec_set_int(rec, k, x);
        } else if (fd->type == TFS_SDK_DATE) {
            if (!parse_date(v)) {
                snprintf(why, size, "%s \"%s\" is not a date (YYYY-MM-DD)", fd->name, v);
                return why;
            }
            if (rec)
                host->rec_set_text(rec, k, TFS_SDK_DATE, v, (size_t)-1);
        } else if (rec) {
            host->rec_set_text(rec, k, TFS_SDK_TEXT, v, (size_t)-1);
        }
    }
    return NULL;
}

/* A malformed line: a record keyed "<file>:<line>" that the host makes a dead letter
 * (rec_fail, SDK 1.3), or a logged warning on an older host. 0, or -1 out of memory. */
static int dead_letter(tfs_sdk_batch *out, const char *file, long line, const char *reason)
{
    if (!TFS_SDK_HOST_HAS(host, rec_fail)) {
        host->log(host, TFS_SDK_LOG_WARN, "skipped %s line %ld: %s", file, line, reason);
        return 0;
    }
    tfs_sdk_record *rec = host->batch_add(out);
    if (!rec)
        return -1;
    char key[300];
    snprintf(key, sizeof key, "%s:%ld", file, line);
    host->rec_set_text(rec, P_BILL_ID, TFS_SDK_TEXT, key, (size_t)-1);
    return host->rec_fail(rec, "%s line %ld: %s", file, line, reason);
}

/* Where a read of one inbox file stands: the records read after the header (blank ones
 * too), and the byte offset and physical line where the next one starts (off 0: right
 * after the header). An old cursor ("<file>\n<row>") has off -1: its rows are skipped. */
typedef struct file_pos {
    size_t row;
    long long off;
    long line;
} file_pos;

/* Reads one file from `from` into out, at most *room records, streaming it (csv_stream.h:
 * bounded memory whatever the file's size). Sets *next to where it stopped and *eof when
 * nothing of the file is left. */
static int read_file(erp *e, const char *name, const file_pos *from, size_t *room,
                     tfs_sdk_batch *out, file_pos *next, bool *eof, tfs_sdk_error *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", e->inbox, name);
    csv_stream s;
    if (csv_stream_open(&s, path) != 0) {
        host->error_set(err, "could not read payment file \"%s\": %s", path, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    const csv_rec *r;
    long line;
    const char *why = NULL;
    int got = csv_stream_next(&s, &r, &line, &why);
    if (got == -1) {
        csv_stream_close(&s);
        host->error_set(err, "could not read payment file \"%s\": %s", path, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    if (got != 1) {
        csv_stream_close(&s);
        host->error_set(err, "could not read payment file %s: %s; the first line must name "
                        "the columns (bill_id,prop_id,...)",
                        name, got == 0 ? "it has no header line" : why);
        return TFS_SDK_EPERMANENT;
    }
    int col[N_OF(payment_fields)];
    size_t width = r->n;
    for (size_t k = 0; k < N_OF(payment_fields); k++) {
        col[k] = -1;
        for (size_t c = 0; c < r->n; c++)
            if (strcmp(r->f[c], payment_fields[k].name) == 0)
                col[k] = (int)c;
        if (col[k] < 0) {
            csv_stream_close(&s);
            host->error_set(err, "could not read payment file %s: its header has no column %s",
                            name, payment_fields[k].name);
            return TFS_SDK_EPERMANENT;
        }
    }
    *next = *from;
    if (from->off == LLONG_MAX) { /* ended by a record that cannot be parsed */
        csv_stream_close(&s);
        *eof = true;
        return TFS_SDK_OK;
    }
    if (from->off > 0 && csv_stream_seek(&s, from->off, from->line) != 0) {
        csv_stream_close(&s);
        host->error_set(err, "could not read payment file \"%s\" from byte %lld: %s", path,
                        from->off, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    size_t skip = from->off < 0 ? from->row : 0;
    *eof = false;
    int rc = TFS_SDK_OK;
    while (*room > 0) {
        got = csv_stream_next(&s, &r, &line, &why);
        if (got == 0) {
            *eof = true;
            break;
        }
        if (got == -1) {
            host->error_set(err, "could not read payment file \"%s\": %s", path,
                            strerror(errno));
            rc = TFS_SDK_ETRANSIENT;
            break;
        }
        if (got == -2) {
            /* Nothing after it can be read: its dead letter, once (the cursor is past it). */
            if (dead_letter(out, name, line, why) != 0)
                goto oom;
            (*room)--;
            *eof = true;
            next->off = LLONG_MAX;
            break;
        }
        next->off = s.off;
        next->line = s.line_no;
        next->row++;
        if (skip) {
            skip--;
            continue;
        }
        if (r->n == 1 && r->f[0][0] == '\0')
            continue; /* a blank line */
        char buf[256];
        const char *reason = NULL;
        if (r->n != width) {
            snprintf(buf, sizeof buf, "%zu fields where the header has %zu", r->n, width);
            reason = buf;
        } else if (r->bad[0]) {
            reason = r->bad; /* not UTF-8 text, or a NUL (csv_stream.c) */
        } else {
            reason = payment_row(r, col, NULL, buf, sizeof buf);
        }
        if (reason) {
            if (dead_letter(out, name, line, reason) != 0)
                goto oom;
            (*room)--;
            continue;
        }
        tfs_sdk_record *rec = host->batch_add(out);
        if (!rec)
            goto oom;
        payment_row(r, col, rec, buf, sizeof buf);
        (*room)--;
    }
    csv_stream_close(&s);
    return rc;
oom:
    csv_stream_close(&s);
    host->error_set(err, "could not read %s: out of memory", name);
    return TFS_SDK_ETRANSIENT;
}

static int erp_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                    size_t cursor_len, size_t max, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    erp *e = instance;
    (void)mode; /* deltas: every read takes what the inbox holds after the cursor */
    if (entity != E_PAYMENT) {
        host->error_set(err, "could not read %s: erp is a source of payment only",
                        entity < N_ENTITIES ? entities[entity].name : "?");
        return TFS_SDK_EPERMANENT;
    }
    if (!e->inbox[0] || !is_dir(e->inbox)) {
        host->error_set(err, "could not read payment: the inbox \"%s\" (systems.%s.settings."
                        "inbox) is not a folder; create it or fix the setting", e->inbox,
                        e->system);
        return TFS_SDK_EPERMANENT;
    }
    char cur_file[512] = "";
    file_pos cur = {0, 0, 1};
    if (cursor_len) {
        /* "<file>\n<row>\n<offset>\n<line>"; an older "<file>\n<row>" skips rows. */
        char buf[600];
        size_t n = cursor_len < sizeof buf - 1 ? cursor_len : sizeof buf - 1;
        memcpy(buf, cursor, n);
        buf[n] = '\0';
        char *nl = strchr(buf, '\n');
        if (nl) {
            *nl = '\0';
            long long off = -1;
            long line = 1;
            unsigned long long row = 0;
            if (sscanf(nl + 1, "%llu\n%lld\n%ld", &row, &off, &line) < 3)
                off = -1;
            cur = (file_pos){(size_t)row, off, line};
        }
        snprintf(cur_file, sizeof cur_file, "%s", buf);
    }
    char **names;
    size_t n_names;
    if (list_inbox(e, &names, &n_names) != 0) {
        host->error_set(err, "could not read payment: list \"%s\": %s", e->inbox,
                        strerror(errno));
        return TFS_SDK_EPERMANENT;
    }
    size_t room = max ? max : 1000;
    int rc = TFS_SDK_OK;
    size_t i = 0;
    char last_file[512] = "";
    file_pos last = {0};
    bool eof = true;
    while (i < n_names && cur_file[0] && strcmp(names[i], cur_file) < 0)
        i++;
    for (; i < n_names && room > 0; i++) {
        file_pos from = {0, 0, 1};
        if (cur_file[0] && strcmp(names[i], cur_file) == 0)
            from = cur;
        file_pos next;
        rc = read_file(e, names[i], &from, &room, out, &next, &eof, err);
        if (rc != TFS_SDK_OK)
            break;
        snprintf(last_file, sizeof last_file, "%s", names[i]);
        last = next;
        if (eof)
            mark_done(e, names[i]);
        else
            break;
    }
    if (rc == TFS_SDK_OK) {
        if (i >= n_names || (i == n_names - 1 && eof))
            host->batch_set_done(out);
        if (last_file[0]) {
            char c[700];
            int n = snprintf(c, sizeof c, "%s\n%zu\n%lld\n%ld", last_file, last.row, last.off,
                             last.line);
            host->batch_set_cursor(out, c, (size_t)n);
        }
    }
    names_free(names, n_names);
    return rc;
}

/* Data lines of one inbox file, counted in its first ESTIMATE_SAMPLE bytes and, for a
 * larger file, scaled by its size: a read of at most that much per file, for a progress
 * bar. A quoted newline counts as a line. -1 when the file cannot be read. */
#define ESTIMATE_SAMPLE (1 << 20)

static int64_t estimate_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return -1;
    }
    enum { BLOCK = 64 * 1024 };
    char *buf = malloc(BLOCK);
    if (!buf) {
        fclose(f);
        return -1;
    }
    int64_t lines = 0, seen = 0;
    char last = '\n';
    size_t n;
    while (seen < ESTIMATE_SAMPLE && (n = fread(buf, 1, BLOCK, f)) > 0) {
        for (size_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        last = buf[n - 1];
        seen += (int64_t)n;
    }
    free(buf);
    fclose(f);
    if (seen == 0)
        return 0;
    if (seen >= st.st_size) {
        lines += last != '\n'; /* a last line without its line end */
    } else {
        lines = (int64_t)((double)lines * (double)st.st_size / (double)seen + 0.5);
    }
    return lines > 0 ? lines - 1 : 0; /* the header */
}

/* The data rows of the files waiting in the inbox (cheaply: see estimate_file). */
static int erp_estimate(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err)
{
    erp *e = instance;
    (void)err;
    *count = -1;
    char **names;
    size_t n_names;
    if (entity != E_PAYMENT || !e->inbox[0] || list_inbox(e, &names, &n_names) != 0)
        return TFS_SDK_OK;
    int64_t total = 0;
    for (size_t i = 0; i < n_names && total >= 0; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", e->inbox, names[i]);
        int64_t one = estimate_file(path);
        total = one < 0 ? -1 : total + one;
    }
    names_free(names, n_names);
    *count = total;
    return TFS_SDK_OK;
}

/* Moves the files this instance read to their end into the archive. */
static int archive(erp *e, tfs_sdk_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < e->n_done; i++) {
        char from[1400], to[1400];
        snprintf(from, sizeof from, "%s/%s", e->inbox, e->done[i]);
        snprintf(to, sizeof to, "%s/%s", e->archive, e->done[i]);
        if (rename(from, to) != 0 && errno != ENOENT && rc == 0) {
            host->error_set(err, "could not archive %s to \"%s\": %s", e->done[i], e->archive,
                            strerror(errno));
            rc = -1;
        }
        free(e->done[i]);
    }
    e->n_done = 0;
    if (fsync_path(e->archive) != 0 || fsync_path(e->inbox) != 0) {
        if (rc == 0)
            host->error_set(err, "could not archive: fsync: %s", strerror(errno));
        rc = -1;
    }
    return rc;
}

static int erp_run_end(void *instance, const tfs_sdk_run_end *run, tfs_sdk_error *err)
{
    erp *e = instance;
    bool committed = run->outcome == TFS_SDK_RUN_SUCCEEDED || run->outcome == TFS_SDK_RUN_PARTIAL;
    if (run->role == TFS_SDK_RUN_AS_SOURCE) {
        if (!committed) {
            for (size_t i = 0; i < e->n_done; i++)
                free(e->done[i]);
            e->n_done = 0;
            return TFS_SDK_OK;
        }
        return archive(e, err) == 0 ? TFS_SDK_OK : TFS_SDK_ETRANSIENT;
    }
    /* As target: whatever is pending was written by this or an earlier run and, whatever
     * this run's outcome, is what the sync map holds or what a rerun writes again. */
    if (!e->outbox[0])
        return TFS_SDK_OK;
    for (size_t k = E_OWNER; k <= E_VALUE; k++)
        if (publish(e, k, run->run_id, err) != 0)
            return TFS_SDK_ETRANSIENT;
    return TFS_SDK_OK;
}

static int erp_health(void *instance, tfs_sdk_error *err)
{
    erp *e = instance;
    if (e->inbox[0] && !is_dir(e->inbox)) {
        host->error_set(err, "could not check health: inbox \"%s\" is not a folder", e->inbox);
        return TFS_SDK_EPERMANENT;
    }
    if (e->outbox[0] && !is_dir(e->outbox)) {
        host->error_set(err, "could not check health: outbox \"%s\" is not a folder", e->outbox);
        return TFS_SDK_EPERMANENT;
    }
    return TFS_SDK_OK;
}

/* SDK 1.4: payments are read from the inbox, the roll only written to the outbox. */
static unsigned erp_entity_roles(void *instance, size_t entity)
{
    (void)instance;
    return entity == E_PAYMENT ? TFS_SDK_CAP_SOURCE : TFS_SDK_CAP_TARGET;
}

static const tfs_sdk_plugin descriptor = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "erp",
    .version = "1.0.0",
    .description = "billing system CSV batch files: billing-roll outbox, payment-status inbox",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_NO_FETCH |
                    TFS_SDK_CAP_LAZY_OPEN | TFS_SDK_CAP_DELTAS,
    .config_keys = keys,
    .n_config_keys = N_KEYS,
    .cb_open = erp_open,
    .cb_close = erp_close,
    .cb_describe = erp_describe,
    .cb_read = erp_read,
    .cb_write = erp_write,
    .cb_health = erp_health,
    .cb_check = erp_check,
    .cb_entity_roles = erp_entity_roles,
    .cb_estimate = erp_estimate,
    .cb_run_end = erp_run_end,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    host = h;
    return &descriptor;
}
