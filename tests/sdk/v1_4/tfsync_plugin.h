/* sdk/tfsync_plugin.h — the whole contract between TerraFusion Sync and an adapter plugin.
 *
 * A plugin is a shared object that includes only this header (and its own system's client
 * library) and exports exactly one function, tfs_sdk_entry(). The host calls it with a table
 * of host functions and gets back the plugin's descriptor. Everything that crosses the
 * boundary is either plain C data described here or an opaque host object (records, batches,
 * errors, write results) reached through the host table, so no JSON text and no core type
 * ever crosses it.
 *
 * VERSION POLICY
 *   TFS_SDK_VERSION_MAJOR changes when anything already published changes meaning, size or
 *   position. TFS_SDK_VERSION_MINOR changes when something is appended: a host function at
 *   the end of tfs_sdk_host, a callback at the end of tfs_sdk_plugin, an enum value.
 *   The host loads a plugin whose major equals its own and whose minor is not newer than
 *   its own; it reads at most struct_size bytes of the descriptor into a zeroed copy, so a
 *   callback an older plugin does not have reads as NULL. A plugin that wants a host
 *   function added in a later minor tests TFS_SDK_HOST_HAS(host, field) before calling it.
 *   tfs_sdk_field, tfs_sdk_entity and tfs_sdk_config_key are arrays the host walks by
 *   stride, so they are frozen for a major version: new per-field facts arrive as new
 *   callbacks, never as new members.
 *
 * CHANGELOG
 *   1.4  callback cb_entity_roles: which described entities the plugin reads and which it
 *        writes, so tfsyncd --check refuses a pair that reads an entity its source only
 *        writes (or writes one its target only reads) before a run fails on it.
 *   1.3  what vendors writing the GIS, ERP and CRM adapters found missing: host functions
 *        config_system and config_dir (a config array's system name and the config's
 *        folder), op_source (the source record a write operation belongs to), rec_fail (a
 *        record a source could not read becomes a dead letter at stage "read"); callbacks
 *        cb_check (settings checked without connecting, for tfsyncd --check),
 *        cb_write_limits (most operations and bytes per cb_write), cb_estimate (an entity's
 *        record count, for progress), cb_run_end (a run's outcome, after the state store
 *        committed it); capabilities TFS_SDK_CAP_LAZY_OPEN (cb_open and cb_describe never
 *        connect) and TFS_SDK_CAP_DELTAS (a source of deltas only, never swept); value
 *        types TFS_SDK_BYTES and TFS_SDK_GEOMETRY (GeoJSON with its SRID).
 *   1.2  conflict detection: TFS_SDK_CAP_NO_FETCH, declared by a target that cannot fetch
 *        its current records (a file outbox); cb_fetch may then be NULL, and its pairs skip
 *        conflict detection. A 1.0 or 1.1 target always has cb_fetch and is fetched.
 *   1.1  change data: TFS_SDK_CAP_CHANGES; host function batch_add_delete (a record that no
 *        longer exists, by key); callbacks cb_changes_start (the change cursor of "now",
 *        taken when a full run begins), cb_changes_lag (how many changes wait, how old the
 *        oldest is) and cb_changes_trim (every reader's checkpoint, so the plugin can forget
 *        what all of them are past).
 *   1.0  first published version: open/close, describe, read (full and incremental, opaque
 *        cursor), fetch by keys, write (upserts and deletes, one result per operation),
 *        health; declared config keys; positional typed records.
 *
 * THREADS AND LIFETIMES
 *   The host opens one instance per worker and never calls one instance from two threads at
 *   once; different instances may be called concurrently. Pointers handed to a callback
 *   (records, cursors, config values) are borrowed for that call only. Strings the plugin
 *   hands back (entity descriptions) stay valid until cb_close of that instance.
 */
#ifndef TFSYNC_PLUGIN_H
#define TFSYNC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TFS_SDK_VERSION_MAJOR 1
#define TFS_SDK_VERSION_MINOR 4

#if defined(__GNUC__)
#define TFS_SDK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define TFS_SDK_EXPORT __attribute__((visibility("default")))
#else
#define TFS_SDK_PRINTF(fmt, args)
#define TFS_SDK_EXPORT
#endif

/* Every callback returns one of these. The orchestrator retries TRANSIENT with backoff
 * (connection lost, timeout, deadlock, server restart) and never retries PERMANENT (bad
 * data, bad config, missing table). */
typedef enum tfs_sdk_status {
    TFS_SDK_OK = 0,
    TFS_SDK_ETRANSIENT = -1,
    TFS_SDK_EPERMANENT = -2,
} tfs_sdk_status;

/* Value types of record fields. DECIMAL, TEXT, DATE ("YYYY-MM-DD"), TIMESTAMP (ISO 8601,
 * "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]"), JSON (a JSON text), BYTES and GEOMETRY travel
 * as text through rec_set_text and rec_get_text (with their length); DECIMAL text is a
 * plain decimal number ("-12.50"). */
typedef enum tfs_sdk_type {
    TFS_SDK_NULL = 0,
    TFS_SDK_BOOL,
    TFS_SDK_INT64,
    TFS_SDK_FLOAT64,
    TFS_SDK_DECIMAL,
    TFS_SDK_TEXT,
    TFS_SDK_DATE,
    TFS_SDK_TIMESTAMP,
    TFS_SDK_JSON,
    /* ---- 1.3 ---- */
    /* Raw bytes, NUL allowed: set with an explicit len. A Lua string in scripts; base64
     * text wherever the host shows records as JSON (audit, dead letters). */
    TFS_SDK_BYTES,
    /* A geometry as a GeoJSON geometry object (RFC 7946 types: Point ... MultiPolygon,
     * GeometryCollection) naming its spatial reference in a "crs" member,
     *   {"type":"MultiPolygon","crs":{"type":"name","properties":{"name":"EPSG:2277"}},
     *    "coordinates":[...]}
     * which is what PostGIS's ST_AsGeoJSON(geom, 15, 2) writes. The host refuses text that
     * is not such an object; scripts see a nested table, as for JSON. */
    TFS_SDK_GEOMETRY,
} tfs_sdk_type;

/* Field flags. */
#define TFS_SDK_FIELD_KEY 0x1u         /* part of the entity's key, in declaration order */
#define TFS_SDK_FIELD_REQUIRED 0x2u    /* null is refused by the validator */
#define TFS_SDK_FIELD_BOOKKEEPING 0x4u /* set by the system itself (CAMA wen/who): left out of
                                        * content hashes and conflict checks */

typedef struct tfs_sdk_field {
    const char *name;
    tfs_sdk_type type;
    unsigned flags;
    int max_length; /* TEXT: most characters; 0 = unbounded */
    int precision;  /* DECIMAL: most significant digits; 0 = unbounded */
    int scale;      /* DECIMAL: digits after the point, values are rounded to it */
} tfs_sdk_field;

typedef struct tfs_sdk_entity {
    const char *name;
    const tfs_sdk_field *fields;
    size_t n_fields;
} tfs_sdk_entity;

/* Config keys a plugin declares. The host refuses a system whose settings hold a key not in
 * this table or a value of the wrong type, fills in defaults, and hands cb_open the values
 * as text in declaration order: integers in decimal, booleans as "true"/"false". */
typedef enum tfs_sdk_config_type {
    TFS_SDK_CONFIG_STRING = 0,
    TFS_SDK_CONFIG_INT,
    TFS_SDK_CONFIG_BOOL,
} tfs_sdk_config_type;

typedef struct tfs_sdk_config_key {
    const char *name;
    tfs_sdk_config_type type;
    const char *default_value; /* NULL: the key is required */
    const char *description;
} tfs_sdk_config_key;

typedef enum tfs_sdk_log_level {
    TFS_SDK_LOG_DEBUG = 0,
    TFS_SDK_LOG_INFO,
    TFS_SDK_LOG_WARN,
    TFS_SDK_LOG_ERROR,
} tfs_sdk_log_level;

typedef enum tfs_sdk_read_mode {
    TFS_SDK_READ_FULL = 0,   /* every record, keyset-paginated: the cursor is the last key */
    TFS_SDK_READ_CHANGES = 1 /* only what changed after the cursor */
} tfs_sdk_read_mode;

typedef enum tfs_sdk_op_kind {
    TFS_SDK_OP_UPSERT = 0,
    TFS_SDK_OP_DELETE = 1, /* only the key fields of the record are meaningful */
} tfs_sdk_op_kind;

/* How a run ended (1.3, cb_run_end). */
typedef enum tfs_sdk_run_outcome {
    TFS_SDK_RUN_SUCCEEDED = 0,
    TFS_SDK_RUN_PARTIAL = 1,   /* some records failed or conflict: see dead letters */
    TFS_SDK_RUN_FAILED = 2,
    TFS_SDK_RUN_CANCELLED = 3,
} tfs_sdk_run_outcome;

/* The part an instance played in a run (1.3, cb_run_end). */
typedef enum tfs_sdk_run_role {
    TFS_SDK_RUN_AS_SOURCE = 0,
    TFS_SDK_RUN_AS_TARGET = 1,
} tfs_sdk_run_role;

/* What cb_run_end is told (1.3). Members are appended in later minors; struct_size says
 * how many this host filled. Strings are borrowed for the call. */
typedef struct tfs_sdk_run_end {
    uint32_t struct_size;
    int64_t run_id;
    const char *pair;
    const char *mode; /* "full", "incremental", "replay", "resolve" or "validate" */
    tfs_sdk_run_outcome outcome;
    tfs_sdk_run_role role;
} tfs_sdk_run_end;

/* Host objects, opaque to plugins. */
typedef struct tfs_sdk_record tfs_sdk_record;
typedef struct tfs_sdk_batch tfs_sdk_batch;
typedef struct tfs_sdk_error tfs_sdk_error;
typedef struct tfs_sdk_results tfs_sdk_results;

typedef struct tfs_sdk_write_op {
    size_t entity; /* index into the plugin's described entities */
    tfs_sdk_op_kind kind;
    const tfs_sdk_record *record;
} tfs_sdk_write_op;

/* The host table, handed to tfs_sdk_entry. Lives as long as the process. */
typedef struct tfs_sdk_host {
    uint32_t struct_size;
    uint16_t sdk_major;
    uint16_t sdk_minor;

    /* The tax roll year of this deployment (from the config, never the clock). */
    int32_t roll_year;

    /* Logging; the host prefixes the line with [plugin:<name>]. */
    void (*log)(const struct tfs_sdk_host *host, tfs_sdk_log_level level, const char *fmt, ...)
        TFS_SDK_PRINTF(3, 4);

    /* Sets the message of a failing callback: lowercase, "could not X: cause". */
    void (*error_set)(tfs_sdk_error *err, const char *fmt, ...) TFS_SDK_PRINTF(2, 3);

    /* Batches (the output of cb_read and cb_fetch). batch_add returns a new record of the
     * batch's entity with every field null, owned by the batch, or NULL when out of memory. */
    tfs_sdk_record *(*batch_add)(tfs_sdk_batch *batch);
    /* The cursor after the last record added; copied. */
    int (*batch_set_cursor)(tfs_sdk_batch *batch, const void *cursor, size_t len);
    /* No records remain after this batch (for the current read). */
    void (*batch_set_done)(tfs_sdk_batch *batch);

    /* Record building. Field indexes are positions in the entity's described fields. Text
     * is copied; len may be (size_t)-1 for a NUL-terminated string. Each returns 0, or -1
     * for a field index out of range or out of memory. */
    int (*rec_set_null)(tfs_sdk_record *rec, size_t field);
    int (*rec_set_bool)(tfs_sdk_record *rec, size_t field, int value);
    int (*rec_set_int)(tfs_sdk_record *rec, size_t field, int64_t value);
    int (*rec_set_float)(tfs_sdk_record *rec, size_t field, double value);
    int (*rec_set_text)(tfs_sdk_record *rec, size_t field, tfs_sdk_type type, const char *text,
                        size_t len);

    /* Record reading. rec_get_text returns borrowed text (NUL-terminated) for DECIMAL,
     * TEXT, DATE, TIMESTAMP and JSON values, NULL for other types. */
    size_t (*rec_n_fields)(const tfs_sdk_record *rec);
    tfs_sdk_type (*rec_type)(const tfs_sdk_record *rec, size_t field);
    int (*rec_get_bool)(const tfs_sdk_record *rec, size_t field);
    int64_t (*rec_get_int)(const tfs_sdk_record *rec, size_t field);
    double (*rec_get_float)(const tfs_sdk_record *rec, size_t field);
    const char *(*rec_get_text)(const tfs_sdk_record *rec, size_t field, size_t *len);

    /* Write results: one per operation, TFS_SDK_OK unless set otherwise. */
    void (*result_set)(tfs_sdk_results *results, size_t op, tfs_sdk_status status,
                       const char *fmt, ...) TFS_SDK_PRINTF(4, 5);

    /* ---- 1.1 ---- */

    /* Like batch_add, for a record that no longer exists in the source (hard-deleted, or
     * retired if the plugin reports retirements so): set its key fields only. */
    tfs_sdk_record *(*batch_add_delete)(tfs_sdk_batch *batch);

    /* ---- 1.3 ---- */

    /* Of the config array handed to cb_check or cb_open (and only during that call): the
     * system's name in the config, so messages can name systems.<name>.settings.<key>,
     * and the absolute folder of the config file, where relative paths in settings
     * start. NULL for any other pointer. */
    const char *(*config_system)(const char *const *config);
    const char *(*config_dir)(const char *const *config);

    /* Of the results handed to cb_write: the source record operation op belongs to,
     * counted from 0 in each call. The operations of one source record (its target
     * entities, upserts and deletes) have the same number and are adjacent, so a target
     * without transactions can apply them all or none. */
    size_t (*op_source)(const tfs_sdk_results *results, size_t op);

    /* Of a record cb_read added: it could not be read as a record (a malformed line of a
     * file). It becomes a dead letter at stage "read" with this reason, counted as
     * read_failed, and the run goes on. Set its key fields when known (a file source: the
     * file and line, in a key of its own) so that the dead letter names it. 0, or -1. */
    int (*rec_fail)(tfs_sdk_record *rec, const char *fmt, ...) TFS_SDK_PRINTF(2, 3);
} tfs_sdk_host;

/* True when the host table has the member (a host function added in a later minor). */
#define TFS_SDK_HOST_HAS(host, member)                                                          \
    ((host)->struct_size >= offsetof(tfs_sdk_host, member) + sizeof((host)->member) &&         \
     (host)->member != NULL)

/* Plugin capabilities. */
#define TFS_SDK_CAP_SOURCE 0x1u /* cb_read */
#define TFS_SDK_CAP_TARGET 0x2u /* cb_fetch, cb_write */
#define TFS_SDK_CAP_CHANGES 0x4u /* cb_read with TFS_SDK_READ_CHANGES, cb_changes_start (1.1) */
/* A target that cannot fetch its current records (1.2): cb_fetch may be NULL; the host
 * never fetches from it, so its pairs have no conflict detection. */
#define TFS_SDK_CAP_NO_FETCH 0x8u
/* 1.3: cb_open and cb_describe never connect (the connection is made by the first read,
 * fetch, write or health call), so tfsyncd --check can describe the schema offline and
 * check the pairs against it. */
#define TFS_SDK_CAP_LAZY_OPEN 0x10u
/* 1.3: a source that delivers only deltas (a file drop): a full run reads what is there,
 * and its pairs never sweep (a key not read is not deleted). */
#define TFS_SDK_CAP_DELTAS 0x20u

/* The descriptor a plugin returns. Static storage in the plugin; the host copies it. */
typedef struct tfs_sdk_plugin {
    uint32_t struct_size; /* sizeof(tfs_sdk_plugin) as the plugin was built */
    uint16_t sdk_major;   /* TFS_SDK_VERSION_MAJOR as the plugin was built */
    uint16_t sdk_minor;   /* TFS_SDK_VERSION_MINOR as the plugin was built */

    const char *name; /* [a-z][a-z0-9_]*, unique among loaded plugins */
    const char *version;
    const char *description;
    unsigned capabilities;

    const tfs_sdk_config_key *config_keys;
    size_t n_config_keys;

    /* Opens an instance with the validated config values (text, in declaration order). */
    int (*cb_open)(const char *const *config, void **instance, tfs_sdk_error *err);
    /* Closes an instance; accepts NULL. */
    void (*cb_close)(void *instance);
    /* Describes the entities this system reads or writes. The array stays valid until
     * cb_close. */
    int (*cb_describe)(void *instance, const tfs_sdk_entity **entities, size_t *n_entities,
                       tfs_sdk_error *err);
    /* Reads up to max_records records of an entity after the cursor (len 0: from the
     * start) into out, sets the cursor after the last one, and marks the batch done when
     * nothing remains. Records are positional against the described entity.
     * TFS_SDK_READ_CHANGES returns the records that changed after the cursor (each once
     * per batch, in its state now) and, through batch_add_delete, the ones that no longer
     * exist; done means "caught up". The cursor of a changes read must let the next read
     * go on exactly after what this batch returned. */
    int (*cb_read)(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                   size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                   tfs_sdk_error *err);
    /* Adds to out the current record of each key that exists (keys hold the key fields), in
     * any order; bookkeeping fields as the system holds them. The host calls it before
     * each batch it writes, for the records it is about to write, to find edits made on
     * the target side (conflicts); NULL only with TFS_SDK_CAP_NO_FETCH (1.2). */
    int (*cb_fetch)(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                    size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err);
    /* Applies a batch of operations in one transaction, idempotent by key. A failing
     * operation is reported through result_set and does not fail the others; the return
     * value is for the batch as a whole (connection lost: TFS_SDK_ETRANSIENT, nothing
     * committed). */
    int (*cb_write)(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                    tfs_sdk_results *results, tfs_sdk_error *err);
    /* Cheap liveness check of the system behind the instance. */
    int (*cb_health)(void *instance, tfs_sdk_error *err);

    /* ---- 1.1: change data (with TFS_SDK_CAP_CHANGES) ---- */

    /* Sets on out (batch_set_cursor; no records) the change cursor of "now": reading
     * changes after it returns what changes from this moment on. The host takes it when a
     * full run begins and makes it the incremental checkpoint once that run has read
     * everything, so nothing that changes during the full run is missed. */
    int (*cb_changes_start)(void *instance, size_t entity, tfs_sdk_batch *out,
                            tfs_sdk_error *err);
    /* How many changes of the entity wait after the cursor, and the age in milliseconds of
     * the oldest (0 when none). Optional: NULL when the system cannot tell. */
    int (*cb_changes_lag)(void *instance, size_t entity, const void *cursor, size_t cursor_len,
                          int64_t *pending, int64_t *oldest_age_ms, tfs_sdk_error *err);
    /* The checkpoints of every reader of this system (every pair and entity), so that the
     * plugin may forget the changes all of them are past (e.g. trim a change log).
     * Optional. */
    int (*cb_changes_trim)(void *instance, const void *const *cursors, const size_t *lens,
                           size_t n, tfs_sdk_error *err);

    /* ---- 1.3 ---- */

    /* Checks the settings (text, in declaration order, as cb_open gets them) without
     * connecting or touching the system: values out of range, files that must exist,
     * options that exclude each other. Name the key as systems.<config_system>.settings.<key>.
     * tfsyncd --check calls it offline, and the host calls it before every cb_open.
     * Optional. */
    int (*cb_check)(const char *const *config, tfs_sdk_error *err);
    /* The most operations (*max_ops) and bytes (*max_bytes) one cb_write takes; 0, or left
     * as the host set it (0), is no limit. Bytes are counted as the operations' records
     * written as JSON objects ({"field":value,...}, as GET /audit shows them). The host
     * splits its write batches to fit, never splitting one source record's operations
     * unless they alone pass a limit. Called once after cb_open. Optional. */
    int (*cb_write_limits)(void *instance, size_t *max_ops, size_t *max_bytes,
                           tfs_sdk_error *err);
    /* A cheap estimate of how many records an entity holds (a catalogue statistic, a count
     * of files' lines), for progress bars and ETAs: the run status shows it as
     * estimated_total. *count < 0: cannot tell. Called when a full run starts an entity.
     * Optional. */
    int (*cb_estimate)(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err);
    /* A run of a pair this instance served has ended, and the state store has committed
     * its outcome and everything it read and wrote: a file target publishes its outbox
     * here, a file source archives the inbox files it read. A crash between that commit
     * and this call means the call does not come for that run, so act on everything
     * committed so far, not only on this run. A failure is logged and shown on the run;
     * it does not change the run's outcome. Optional. */
    int (*cb_run_end)(void *instance, const tfs_sdk_run_end *run, tfs_sdk_error *err);

    /* ---- 1.4 ---- */

    /* What the plugin does with described entity `entity`: TFS_SDK_CAP_SOURCE (cb_read
     * serves it), TFS_SDK_CAP_TARGET (cb_write takes it), or both. Called after
     * cb_describe, like it never connecting; the host masks the answer with the plugin's
     * capabilities. tfsyncd --check refuses a pair that reads an entity its source does not
     * read or writes one its target does not write. Optional: NULL means every entity has
     * the plugin's own SOURCE and TARGET capabilities. */
    unsigned (*cb_entity_roles)(void *instance, size_t entity);
} tfs_sdk_plugin;

/* The one symbol a plugin exports. Returns the plugin's descriptor, or NULL to refuse
 * loading (after logging why through host->log). */
typedef const tfs_sdk_plugin *(*tfs_sdk_entry_fn)(const tfs_sdk_host *host);
#define TFS_SDK_ENTRY_SYMBOL "tfs_sdk_entry"

/* What a plugin defines: TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(...) { ... } */
TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *host);

#ifdef __cplusplus
}
#endif

#endif /* TFSYNC_PLUGIN_H */
