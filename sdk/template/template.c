/* sdk/template/template.c — the plugin to copy when you write an adapter for TerraFusion Sync.
 *
 * It is a complete source AND target over an in-memory table, so that it builds and runs
 * with nothing but sdk/tfsync_plugin.h: one entity, `item` (id INT64 key, name TEXT(40),
 * price DECIMAL(12,2), updated DATE), filled at its first use with `rows` generated items
 * (or the lines of `seed_file`). Every
 * callback of SDK 1.0 is here and does what the contract asks, and of 1.3 the settings
 * check (cb_check), the lazy open (TFS_SDK_CAP_LAZY_OPEN) and the system's name and config
 * folder (config_system, config_dir) in messages and paths, with a comment for the
 * vendor on what a real system adapter does at the same place (a connection instead of the
 * array, a SELECT instead of the loop, one transaction around cb_write).
 *
 * To make it yours: rename the file, the descriptor's name and the config keys, replace the
 * `store` with your system's client handle, and keep the shape of each callback. See
 * sdk/README.md for the whole contract.
 */
#include "tfsync_plugin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host table, handed to tfs_sdk_entry once and valid for the life of the process. It is
 * the only global: it is written once before any instance exists and only read afterwards,
 * so instances on different worker threads can share it. Everything else lives in the
 * instance. */
static const tfs_sdk_host *host;

/* ---- the schema ------------------------------------------------------------------------
 *
 * Records are positional: a record of `item` holds one value per field below, in this
 * order, and the host and the plugin both address values by these indexes. The arrays are
 * static, so they stay valid until cb_close as cb_describe promises (for as long as the
 * plugin is loaded, in fact). Order the fields once and never reorder them in a release:
 * transform scripts and the sync map refer to them by name, but your code does by index. */
enum { F_ID, F_NAME, F_PRICE, F_UPDATED, N_ITEM_FIELDS };

#define NAME_MAX_CHARS 40
#define PRICE_SCALE 2

static const tfs_sdk_field item_fields[N_ITEM_FIELDS] = {
    [F_ID] = {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    [F_NAME] = {"name", TFS_SDK_TEXT, TFS_SDK_FIELD_REQUIRED, NAME_MAX_CHARS, 0, 0},
    [F_PRICE] = {"price", TFS_SDK_DECIMAL, 0, 0, 12, PRICE_SCALE},
    [F_UPDATED] = {"updated", TFS_SDK_DATE, 0, 0, 0, 0},
};

enum { E_ITEM, N_ENTITIES };

static const tfs_sdk_entity entities[N_ENTITIES] = {
    [E_ITEM] = {"item", item_fields, N_ITEM_FIELDS},
};

/* ---- the config ------------------------------------------------------------------------
 *
 * Declared keys: the host refuses settings with any other key or a value of the wrong type,
 * fills in the defaults, and hands cb_open the values as text in this order. A NULL
 * default makes a key required (a real adapter's "dsn" or "url" would be). The
 * descriptions are shown by GET /plugins, so write them for the operator. */
enum { C_ROWS, C_NAME_PREFIX, C_LOG_BATCHES, C_SEED_FILE, N_CONFIG_KEYS };

#define ROWS_MAX 1000000
#define PREFIX_MAX_BYTES 32 /* prefix + "-" + 7 digits stays within NAME_MAX_CHARS */

static const tfs_sdk_config_key config_keys[N_CONFIG_KEYS] = {
    [C_ROWS] = {"rows", TFS_SDK_CONFIG_INT, "100",
                "how many items the in-memory table starts with (0 to 1000000)"},
    [C_NAME_PREFIX] = {"name_prefix", TFS_SDK_CONFIG_STRING, "item",
                       "the generated items are named <name_prefix>-<id> (at most 32 bytes)"},
    [C_LOG_BATCHES] = {"log_batches", TFS_SDK_CONFIG_BOOL, "false",
                       "log one line per batch read or written"},
    [C_SEED_FILE] = {"seed_file", TFS_SDK_CONFIG_STRING, "",
                     "a file of \"id,name,price\" lines the table starts with instead of "
                     "generated rows; a relative path starts at the config file's folder"},
};

/* ---- the instance ----------------------------------------------------------------------
 *
 * One instance per worker: the host never calls one instance from two threads at once, so
 * nothing in it needs a lock. A real adapter keeps its connection here (a PGconn, a CURL
 * handle, an open file), never in a global. */
typedef struct item {
    int64_t id;
    char name[NAME_MAX_CHARS * 4 + 1]; /* up to 40 UTF-8 characters */
    bool has_price;
    int64_t price_cents; /* DECIMAL(12,2) held exactly, never as a double */
    bool has_updated;
    char updated[11]; /* "YYYY-MM-DD" */
} item;

typedef struct store {
    item *items; /* sorted by id: the keyset cursor is the last id read */
    size_t n, cap;
    bool log_batches;
    /* Lazy open (TFS_SDK_CAP_LAZY_OPEN): cb_open only keeps what "connecting" needs; the
     * first read, fetch, write or health call fills the table (tpl_connect), as a real
     * adapter would connect there. */
    bool connected;
    int64_t rows;
    char prefix[PREFIX_MAX_BYTES + 1];
    char *seed_path; /* absolute, or NULL: generated rows */
} store;

/* ---- small helpers --------------------------------------------------------------------- */

/* Parses a whole decimal integer; 0, or -1 when text is not one or is out of range. */
static int parse_int64(const char *text, size_t len, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (buf[0] == '+' || buf[0] == ' ')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

/* Parses DECIMAL text ("-12.5", "3", "0.07") into hundredths without going through a
 * double, so no cent is ever lost; -1 for anything else or more than 2 decimals (the
 * validator already rounds to the declared scale; a careful target checks anyway). */
static int parse_cents(const char *s, int64_t *out)
{
    bool neg = false;
    int64_t v = 0;
    int digits = 0, decimals = 0;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (v > (INT64_MAX / 100 - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    v *= 100;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, decimals++) {
            if (decimals == PRICE_SCALE)
                return -1;
            v += (*s - '0') * (decimals == 0 ? 10 : 1);
        }
    }
    if (*s || digits + decimals == 0)
        return -1;
    *out = neg ? -v : v;
    return 0;
}

/* Formats hundredths as DECIMAL text: -1250 -> "-12.50". */
static void format_cents(int64_t cents, char *buf, size_t len)
{
    uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, len, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", a / 100, a % 100);
}

/* Characters (not bytes) of UTF-8 text: what TEXT max_length counts. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* The index of the first item whose id is >= id (binary search over the sorted array). */
static size_t lower_bound(const store *st, int64_t id)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The index of the first item whose id is > id: where a keyset read after id starts. */
static size_t upper_bound(const store *st, int64_t id)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->items[mid].id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes room for extra more items; 0, or -1 when out of memory (nothing changed). */
static int reserve(store *st, size_t extra)
{
    if (st->cap - st->n >= extra)
        return 0;
    size_t cap = st->cap ? st->cap : 64;
    while (cap - st->n < extra)
        cap *= 2;
    item *items = realloc(st->items, cap * sizeof *items);
    if (!items)
        return -1;
    st->items = items;
    st->cap = cap;
    return 0;
}

/* Builds the batch record of one item. Every host setter copies what it is given and
 * returns -1 when out of memory; the host notices that itself, so one check is enough. */
static int put_item(tfs_sdk_batch *out, const item *it)
{
    tfs_sdk_record *rec = host->batch_add(out);
    if (!rec)
        return -1;
    int rc = host->rec_set_int(rec, F_ID, it->id);
    rc |= host->rec_set_text(rec, F_NAME, TFS_SDK_TEXT, it->name, (size_t)-1);
    if (it->has_price) {
        char price[32];
        format_cents(it->price_cents, price, sizeof price);
        rc |= host->rec_set_text(rec, F_PRICE, TFS_SDK_DECIMAL, price, (size_t)-1);
    } /* else: batch_add made every field null already */
    if (it->has_updated)
        rc |= host->rec_set_text(rec, F_UPDATED, TFS_SDK_DATE, it->updated, 10);
    return rc ? -1 : 0;
}

/* The id of a record (a write's record or a fetch key); 0, or -1 when it has none. Values
 * are read by position and their type checked first: a getter of the wrong type answers 0,
 * which must not be mistaken for an id. */
static int record_id(const tfs_sdk_record *rec, int64_t *id)
{
    if (host->rec_n_fields(rec) != N_ITEM_FIELDS || host->rec_type(rec, F_ID) != TFS_SDK_INT64)
        return -1;
    *id = host->rec_get_int(rec, F_ID);
    return 0;
}

/* ---- callbacks -------------------------------------------------------------------------- */

/* "systems.<name>.settings" of the config array in hand (cb_check and cb_open only), so
 * that an operator reads the very path of the config file to fix. config_system is SDK 1.3:
 * an older host has no such function, and the message says "settings". */
static const char *settings_path(const char *const *config, char *out, size_t len)
{
    const char *system = TFS_SDK_HOST_HAS(host, config_system) ? host->config_system(config)
                                                               : NULL;
    snprintf(out, len, system ? "systems.%s.settings" : "settings", system);
    return out;
}

/* A relative path setting resolved against the config file's folder (config_dir, SDK 1.3),
 * as the README promises operators; malloc'd, or NULL when out of memory. */
static char *resolve_path(const char *const *config, const char *path)
{
    const char *dir = TFS_SDK_HOST_HAS(host, config_dir) ? host->config_dir(config) : NULL;
    size_t n = strlen(path) + (dir ? strlen(dir) : 0) + 2;
    char *full = malloc(n);
    if (full)
        snprintf(full, n, "%s%s%s", path[0] == '/' || !dir ? "" : dir,
                 path[0] == '/' || !dir ? "" : "/", path);
    return full;
}

/* cb_check: every setting checked without connecting or touching the system (SDK 1.3).
 * tfsyncd --check calls it offline, and the host calls it before every cb_open, so cb_open
 * may rely on what it accepts. Values are as cb_open gets them (text, declaration order);
 * name the key as systems.<name>.settings.<key> and say what to put there. */
static int tpl_check(const char *const *config, tfs_sdk_error *err)
{
    char path[160];
    int64_t rows;
    if (parse_int64(config[C_ROWS], strlen(config[C_ROWS]), &rows) != 0 || rows < 0 ||
        rows > ROWS_MAX) {
        host->error_set(err, "%s.rows: %s is out of range, it must be from 0 to %d",
                        settings_path(config, path, sizeof path), config[C_ROWS], ROWS_MAX);
        return TFS_SDK_EPERMANENT;
    }
    if (strlen(config[C_NAME_PREFIX]) > PREFIX_MAX_BYTES) {
        host->error_set(err, "%s.name_prefix: \"%s\" is longer than %d bytes",
                        settings_path(config, path, sizeof path), config[C_NAME_PREFIX],
                        PREFIX_MAX_BYTES);
        return TFS_SDK_EPERMANENT;
    }
    if (config[C_SEED_FILE][0]) {
        /* A file that must exist is checked here: the operator learns it from --check. */
        char *full = resolve_path(config, config[C_SEED_FILE]);
        FILE *f = full ? fopen(full, "r") : NULL;
        if (!f) {
            host->error_set(err, "%s.seed_file: could not read \"%s\": %s",
                            settings_path(config, path, sizeof path), full ? full : "",
                            full ? strerror(errno) : "out of memory");
            free(full);
            return TFS_SDK_EPERMANENT;
        }
        fclose(f);
        free(full);
    }
    return TFS_SDK_OK;
}

/* cb_open: keep what the instance needs (the host checked the config against config_keys,
 * filled in defaults, and called tpl_check). The strings are borrowed for this call only:
 * copy what you keep. With TFS_SDK_CAP_LAZY_OPEN, cb_open and cb_describe must not
 * connect: keep the connection settings and connect at the first call that needs the
 * system (tpl_connect here), so --check reads the schema offline and a system that is down
 * is an outage of that call (TFS_SDK_ETRANSIENT), not a failed open. */
static int tpl_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    store *st = calloc(1, sizeof *st);
    if (!st) {
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    parse_int64(config[C_ROWS], strlen(config[C_ROWS]), &st->rows); /* tpl_check passed */
    snprintf(st->prefix, sizeof st->prefix, "%s", config[C_NAME_PREFIX]);
    st->log_batches = strcmp(config[C_LOG_BATCHES], "true") == 0;
    if (config[C_SEED_FILE][0] && !(st->seed_path = resolve_path(config, config[C_SEED_FILE]))) {
        free(st);
        host->error_set(err, "could not open: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    *instance = st;
    return TFS_SDK_OK;
}

/* Reads the seed file's "id,name,price" lines (sorted by id there). */
static int load_seed(store *st, tfs_sdk_error *err)
{
    FILE *f = fopen(st->seed_path, "r");
    if (!f) {
        /* It was there at cb_check: gone now is an outage, worth a retry. */
        host->error_set(err, "could not read \"%s\": %s", st->seed_path, strerror(errno));
        return TFS_SDK_ETRANSIENT;
    }
    char line[256];
    int rc = TFS_SDK_OK;
    for (unsigned n = 1; fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        char *name = strchr(line, ','), *price = name ? strchr(name + 1, ',') : NULL;
        if (!price) {
            host->error_set(err, "could not read \"%s\": line %u is not id,name,price",
                            st->seed_path, n);
            rc = TFS_SDK_EPERMANENT;
            break;
        }
        *name++ = '\0';
        *price++ = '\0';
        item it = {.has_price = *price != '\0'};
        if (parse_int64(line, strlen(line), &it.id) != 0 ||
            (it.has_price && parse_cents(price, &it.price_cents) != 0) ||
            utf8_chars(name, strlen(name)) > NAME_MAX_CHARS || reserve(st, 1) != 0) {
            host->error_set(err, "could not read \"%s\": line %u has a bad id, name or price",
                            st->seed_path, n);
            rc = TFS_SDK_EPERMANENT;
            break;
        }
        snprintf(it.name, sizeof it.name, "%s", name);
        st->items[st->n++] = it;
    }
    fclose(f);
    return rc;
}

/* The "connection": made by the first call that needs the system, once. A real adapter
 * connects here and answers TFS_SDK_ETRANSIENT while its system is down. */
static int tpl_connect(store *st, tfs_sdk_error *err)
{
    if (st->connected)
        return TFS_SDK_OK;
    if (st->seed_path) {
        int rc = load_seed(st, err);
        if (rc) {
            st->n = 0;
            return rc;
        }
    } else {
        if (reserve(st, (size_t)st->rows) != 0) {
            host->error_set(err, "could not open: out of memory for %" PRId64 " items",
                            st->rows);
            return TFS_SDK_ETRANSIENT;
        }
        /* The generated table. Dates come from the roll year of the deployment
         * (host->roll_year, from the config, never the clock), so every run and test sees
         * the same data. */
        for (int64_t i = 1; i <= st->rows; i++) {
            item *it = &st->items[st->n++];
            it->id = i;
            snprintf(it->name, sizeof it->name, "%s-%" PRId64, st->prefix, i);
            it->has_price = true;
            it->price_cents = i * 125; /* 1.25 per id */
            it->has_updated = true;
            snprintf(it->updated, sizeof it->updated, "%04d-01-%02d", (int)host->roll_year,
                     (int)(i % 28) + 1);
        }
    }
    st->connected = true;
    host->log(host, TFS_SDK_LOG_DEBUG, "connected: %zu items", st->n);
    return TFS_SDK_OK;
}

/* cb_close: release everything the instance holds (close the connection). Accepts NULL.
 * Called once per successful cb_open; nothing of the instance is used afterwards. */
static void tpl_close(void *instance)
{
    store *st = instance;
    if (!st)
        return;
    free(st->items);
    free(st->seed_path);
    free(st);
}

/* cb_describe: the entities this system reads or writes. The host validates transformed
 * records against it (types, key, required, lengths, decimal scale) before they reach
 * cb_write, and builds the records of cb_read and cb_fetch with this many fields. A real
 * adapter may build the array from its system's catalog at cb_open; it must stay valid and
 * unchanged until cb_close. */
static int tpl_describe(void *instance, const tfs_sdk_entity **out, size_t *n_out,
                        tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *out = entities;
    *n_out = N_ENTITIES;
    return TFS_SDK_OK;
}

/* cb_read: up to max_records records after the cursor, in key order.
 *
 * FULL reads are keyset-paginated: the cursor is bytes this plugin alone understands (here
 * the last id read, as decimal text, e.g. "20"); an empty cursor means from the start. The
 * host stores the cursor in the state store after each batch commits and hands it back on
 * the next call, after a retry or after a daemon restart, so it must stay meaningful across
 * processes (no pointers, no offsets into a result set) and the same cursor must give the
 * same batch again. Mark the batch done in the same call that returns the last records; an
 * empty batch also ends the read, so never return an empty batch while records remain.
 *
 * CHANGES reads return only what changed after the cursor (a change-log position, a
 * transaction snapshot). This table keeps no change log, so it refuses them permanently: the
 * orchestrator does not retry and the operator runs full syncs instead. */
static int tpl_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                    size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                    tfs_sdk_error *err)
{
    store *st = instance;
    if (entity != E_ITEM) {
        host->error_set(err, "could not read: no entity %zu (this plugin describes %d)",
                        entity, N_ENTITIES);
        return TFS_SDK_EPERMANENT;
    }
    int rc = tpl_connect(st, err);
    if (rc)
        return rc;
    if (mode != TFS_SDK_READ_FULL) {
        host->error_set(err, "could not read changes of item: this system keeps no change "
                             "log; run full syncs of it instead");
        return TFS_SDK_EPERMANENT;
    }
    int64_t after = INT64_MIN;
    if (cursor_len > 0 && parse_int64(cursor, cursor_len, &after) != 0) {
        host->error_set(err, "could not read item: the cursor (%zu bytes) is not an item id; "
                             "it was not written by this plugin",
                        cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    if (max_records == 0)
        max_records = 1; /* an empty batch would end the read early */

    /* A database adapter would run, with a bound parameter and a LIMIT:
     *   SELECT id, name, price, updated FROM item WHERE id > $1 ORDER BY id LIMIT $2 */
    size_t i = cursor_len == 0 ? 0 : upper_bound(st, after);
    size_t added = 0;
    for (; i < st->n && added < max_records; i++, added++) {
        if (put_item(out, &st->items[i]) != 0) {
            host->error_set(err, "could not read item: out of memory");
            return TFS_SDK_ETRANSIENT;
        }
    }
    /* The cursor after the last record added (copied by the host); when nothing was added
     * the read was already at the end, and the incoming cursor stays the position. */
    char next[32];
    if (added > 0) {
        int len = snprintf(next, sizeof next, "%" PRId64, st->items[i - 1].id);
        rc = host->batch_set_cursor(out, next, (size_t)len);
    } else {
        rc = host->batch_set_cursor(out, cursor, cursor_len);
    }
    if (rc != 0) {
        host->error_set(err, "could not read item: out of memory for the cursor");
        return TFS_SDK_ETRANSIENT;
    }
    if (i == st->n)
        host->batch_set_done(out);
    if (st->log_batches)
        host->log(host, TFS_SDK_LOG_INFO, "read %zu items after %.*s%s", added,
                  cursor_len ? (int)cursor_len : 7, cursor_len ? (const char *)cursor : "(start)",
                  i == st->n ? ", done" : "");
    return TFS_SDK_OK;
}

/* cb_fetch: the current record of each key that exists, for conflict checks and to hash
 * what the target holds after a write. Keys are records of the entity with only the key
 * fields set. A key that does not exist is simply left out (that is an answer, not an
 * error); order does not matter, the host matches records by key. A real adapter fetches
 * them in one query (WHERE id = ANY($1)), not one round trip per key. */
static int tpl_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                     size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    store *st = instance;
    if (entity != E_ITEM) {
        host->error_set(err, "could not fetch: no entity %zu (this plugin describes %d)",
                        entity, N_ENTITIES);
        return TFS_SDK_EPERMANENT;
    }
    int rc = tpl_connect(st, err);
    if (rc)
        return rc;
    for (size_t k = 0; k < n_keys; k++) {
        int64_t id;
        if (record_id(keys[k], &id) != 0) {
            host->error_set(err, "could not fetch item: key %zu has no integer id", k);
            return TFS_SDK_EPERMANENT;
        }
        size_t i = lower_bound(st, id);
        if (i < st->n && st->items[i].id == id && put_item(out, &st->items[i]) != 0) {
            host->error_set(err, "could not fetch item: out of memory");
            return TFS_SDK_ETRANSIENT;
        }
    }
    return TFS_SDK_OK;
}

/* Checks and converts the record of an upsert; 0, or a message in why. */
static int item_from_record(const tfs_sdk_record *rec, item *it, char *why, size_t len)
{
    memset(it, 0, sizeof *it);
    if (record_id(rec, &it->id) != 0) {
        snprintf(why, len, "id is missing or not an integer");
        return -1;
    }
    size_t n;
    const char *name = host->rec_type(rec, F_NAME) == TFS_SDK_TEXT
                           ? host->rec_get_text(rec, F_NAME, &n)
                           : NULL;
    if (!name) {
        snprintf(why, len, "item %" PRId64 ": name is required", it->id);
        return -1;
    }
    if (utf8_chars(name, n) > NAME_MAX_CHARS || n >= sizeof it->name) {
        snprintf(why, len, "item %" PRId64 ": name has more than %d characters", it->id,
                 NAME_MAX_CHARS);
        return -1;
    }
    memcpy(it->name, name, n);
    it->name[n] = '\0';

    tfs_sdk_type t = host->rec_type(rec, F_PRICE);
    if (t == TFS_SDK_DECIMAL) {
        const char *price = host->rec_get_text(rec, F_PRICE, &n);
        if (parse_cents(price, &it->price_cents) != 0) {
            snprintf(why, len, "item %" PRId64 ": price \"%.40s\" is not a decimal with at "
                     "most %d digits after the point", it->id, price, PRICE_SCALE);
            return -1;
        }
        /* A business rule of this system: the validator cannot know it, so the target
         * refuses the record itself, and only this record. */
        if (it->price_cents < 0) {
            snprintf(why, len, "item %" PRId64 ": price %s is negative; prices are 0 or more",
                     it->id, price);
            return -1;
        }
        it->has_price = true;
    } else if (t != TFS_SDK_NULL) {
        snprintf(why, len, "item %" PRId64 ": price must be a decimal", it->id);
        return -1;
    }

    t = host->rec_type(rec, F_UPDATED);
    if (t == TFS_SDK_DATE) {
        const char *d = host->rec_get_text(rec, F_UPDATED, &n);
        if (n != 10) {
            snprintf(why, len, "item %" PRId64 ": updated \"%.20s\" is not YYYY-MM-DD", it->id,
                     d);
            return -1;
        }
        memcpy(it->updated, d, 11);
        it->has_updated = true;
    } else if (t != TFS_SDK_NULL) {
        snprintf(why, len, "item %" PRId64 ": updated must be a date", it->id);
        return -1;
    }
    return 0;
}

/* cb_write: apply a batch of upserts and deletes, each idempotent by key (the host may
 * replay a batch after a crash or a transient failure, so applying one twice must leave the
 * same result as once).
 *
 * Two levels of failure:
 * - one operation the system refuses (bad data, a business rule, a constraint) is reported
 *   with host->result_set(results, op, TFS_SDK_EPERMANENT, "...") and the others still
 *   apply: one bad row fails alone and becomes a dead letter. In a database adapter that is
 *   a SAVEPOINT per operation, or checks before the statement. Operations you do not
 *   report are TFS_SDK_OK.
 * - the batch as a whole failing (connection lost, deadlock, out of memory) is the return
 *   value, and then nothing of the batch may stay committed (one transaction: ROLLBACK).
 *   TFS_SDK_ETRANSIENT makes the host retry the whole batch with backoff.
 *
 * Operations may name any described entity, so check op->entity per operation. A delete's
 * record holds the key fields only; deleting what is not there is a success. */
static int tpl_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                     tfs_sdk_results *results, tfs_sdk_error *err)
{
    store *st = instance;
    int rc = tpl_connect(st, err);
    if (rc)
        return rc;
    /* "BEGIN": take everything the batch can need before changing anything, so an
     * allocation failure cannot leave half a batch applied. */
    if (reserve(st, n_ops) != 0) {
        host->error_set(err, "could not write %zu operations: out of memory", n_ops);
        return TFS_SDK_ETRANSIENT;
    }
    size_t upserts = 0, deletes = 0, refused = 0;
    for (size_t o = 0; o < n_ops; o++) {
        const tfs_sdk_write_op *op = &ops[o];
        char why[256];
        if (op->entity != E_ITEM) {
            host->result_set(results, o, TFS_SDK_EPERMANENT, "no entity %zu in this system",
                             op->entity);
            refused++;
            continue;
        }
        if (op->kind == TFS_SDK_OP_DELETE) {
            int64_t id;
            if (record_id(op->record, &id) != 0) {
                host->result_set(results, o, TFS_SDK_EPERMANENT,
                                 "could not delete item: id is missing or not an integer");
                refused++;
                continue;
            }
            size_t i = lower_bound(st, id);
            if (i < st->n && st->items[i].id == id) {
                memmove(&st->items[i], &st->items[i + 1], (st->n - i - 1) * sizeof *st->items);
                st->n--;
            }
            deletes++;
            continue;
        }
        if (op->kind != TFS_SDK_OP_UPSERT) {
            host->result_set(results, o, TFS_SDK_EPERMANENT, "unknown operation kind %d",
                             (int)op->kind);
            refused++;
            continue;
        }
        item it;
        if (item_from_record(op->record, &it, why, sizeof why) != 0) {
            host->result_set(results, o, TFS_SDK_EPERMANENT, "could not upsert item: %s", why);
            refused++;
            continue;
        }
        /* INSERT ... ON CONFLICT (id) DO UPDATE: replace, or insert in key order. */
        size_t i = lower_bound(st, it.id);
        if (!(i < st->n && st->items[i].id == it.id)) {
            memmove(&st->items[i + 1], &st->items[i], (st->n - i) * sizeof *st->items);
            st->n++;
        }
        st->items[i] = it;
        upserts++;
    }
    /* "COMMIT". A commit that fails (connection lost) is TFS_SDK_ETRANSIENT: the host
     * cannot know what was applied, and idempotent operations make the retry safe. */
    if (st->log_batches)
        host->log(host, TFS_SDK_LOG_INFO, "wrote %zu upserts and %zu deletes, refused %zu",
                  upserts, deletes, refused);
    return TFS_SDK_OK;
}

/* cb_health: a cheap liveness check of the system behind the instance (SELECT 1, a HEAD
 * request), answered fast and without retrying: GET /health calls it while an operator
 * waits, and the circuit breaker uses it to probe a system that is down. Unreachable is
 * TFS_SDK_ETRANSIENT. With a lazy open, it connects first if nothing did yet. */
static int tpl_health(void *instance, tfs_sdk_error *err)
{
    return tpl_connect(instance, err);
}

/* ---- the descriptor and the entry point ------------------------------------------------ */

/* Static storage: the host copies at most struct_size bytes of it at load time. struct_size,
 * sdk_major and sdk_minor must be exactly these three expressions: they tell the host which
 * SDK this file was compiled against. */
static const tfs_sdk_plugin descriptor = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "template", /* [a-z][a-z0-9_]*, unique among the loaded plugins */
    .version = "1.0.0",
    .description = "template adapter: an in-memory item table, source and target",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_LAZY_OPEN,
    .config_keys = config_keys,
    .n_config_keys = N_CONFIG_KEYS,
    .cb_open = tpl_open,
    .cb_close = tpl_close,
    .cb_describe = tpl_describe,
    .cb_read = tpl_read,
    .cb_fetch = tpl_fetch,
    .cb_write = tpl_write,
    .cb_health = tpl_health,
    .cb_check = tpl_check,
};

/* The one exported symbol. It runs once, at load time, on the daemon's main thread: keep it
 * to remembering the host table and returning the descriptor. Connect in cb_open, never
 * here. To refuse loading (a client library too old, say), log why through host->log and
 * return NULL.
 *
 * Host functions added after SDK 1.0 are called only after testing for them, because the
 * table may come from a host older than the header you build with. For example
 * batch_add_delete, appended in SDK 1.1 for change data:
 *
 *     if (TFS_SDK_HOST_HAS(host, batch_add_delete))
 *         rec = host->batch_add_delete(out);
 *
 * config_system and config_dir (SDK 1.3) are tested so, in settings_path and resolve_path;
 * a host older than 1.3 refuses this file anyway, since it was built for 1.3. */
TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    host = h;
    return &descriptor;
}
