/* core/record.h — typed values, records and batches: the host side of the SDK's opaque
 * tfs_sdk_record and tfs_sdk_batch.
 *
 * A record is positional against the entity that describes it: values[i] is the value of
 * entity->fields[i]. Records and their text live in an arena (the batch's), never malloc'd
 * one by one. Text values are NUL-terminated and carry their length.
 */
#ifndef TFS_RECORD_H
#define TFS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../sdk/tfsync_plugin.h"
#include "arena.h"
#include "error.h"

typedef struct tfs_value {
    tfs_sdk_type type;
    uint32_t len; /* text types: bytes, without the NUL */
    union {
        int b;
        int64_t i;
        double f;
        const char *s; /* DECIMAL, TEXT, DATE, TIMESTAMP, JSON, BYTES (NUL allowed within
                        * len), GEOMETRY */
    } u;
} tfs_value;

/* The definition of the SDK's opaque record. */
struct tfs_sdk_record {
    const tfs_sdk_entity *entity;
    tfs_arena *arena; /* where its text lives and where setters copy to */
    bool deleted;     /* from batch_add_delete: only the key fields mean anything */
    const char *fail_reason; /* from rec_fail (1.3): a dead letter at stage "read" */
    size_t n;
    tfs_value *values;
};
typedef struct tfs_sdk_record tfs_record;

/* The definition of the SDK's opaque batch: what cb_read and cb_fetch fill. */
struct tfs_sdk_batch {
    tfs_arena *arena; /* borrowed: records and cursor live here */
    const tfs_sdk_entity *entity;
    tfs_record **recs;
    size_t n, cap;
    unsigned char *cursor;
    size_t cursor_len;
    bool cursor_set;
    bool done;
    bool oom;
};
typedef struct tfs_sdk_batch tfs_batch;

static inline bool tfs_type_is_text(tfs_sdk_type t)
{
    return t == TFS_SDK_DECIMAL || t == TFS_SDK_TEXT || t == TFS_SDK_DATE ||
           t == TFS_SDK_TIMESTAMP || t == TFS_SDK_JSON || t == TFS_SDK_BYTES ||
           t == TFS_SDK_GEOMETRY;
}

/* The types whose text is JSON, shown as nested values and given to scripts as tables:
 * JSON, and GEOMETRY (a GeoJSON geometry object, SDK 1.3). */
static inline bool tfs_type_is_json(tfs_sdk_type t)
{
    return t == TFS_SDK_JSON || t == TFS_SDK_GEOMETRY;
}

/* Whether text is a geometry as SDK 1.3 states it: a GeoJSON geometry object with a known
 * "type", its "coordinates" array (a GeometryCollection: its "geometries" array) and a
 * "crs" naming "EPSG:<srid>". 0, or -1 with the reason in why (TFS_ENOMEM's -2 when
 * parsing ran out of memory). *srid gets the SRID when not NULL. */
int tfs_geometry_check(const char *text, size_t len, int *srid, char *why, size_t why_len);

/* "null", "bool", "int64", "float64", "decimal", "text", "date", "timestamp", "json",
 * "bytes", "geometry". */
const char *tfs_type_name(tfs_sdk_type t);
/* The type of a name above, or -1. */
int tfs_type_from_name(const char *name);

/* A new record of the entity with every field null, in the arena; NULL when out of memory. */
tfs_record *tfs_record_new(tfs_arena *a, const tfs_sdk_entity *entity);
/* The index of a field by name, or -1. */
int tfs_entity_field_index(const tfs_sdk_entity *entity, const char *name);
/* Copies a record (and its text) into another arena. */
tfs_record *tfs_record_copy(tfs_arena *a, const tfs_record *rec);

/* Sets a text-typed value, copied into the record's arena. Returns 0 or -1. */
int tfs_record_set_text(tfs_record *rec, size_t field, tfs_sdk_type type,
                        const char *s, size_t len);

/* Prepares a batch of the entity over the arena. */
void tfs_batch_init(tfs_batch *b, tfs_arena *a, const tfs_sdk_entity *entity);

/* The key of a record as stable text: the key fields' canonical values joined by '|'
 * (with '|' and '\\' escaped), e.g. "10042|2026". In the arena; NULL when out of memory. */
char *tfs_record_key(tfs_arena *a, const tfs_record *rec);

/* An INT64 value, or a FLOAT64 one truncated toward zero, into *out. Returns 0, or
 * TFS_EINVAL (err set, *out 0) for another type and for a float that no int64 holds (a
 * NaN, an infinity, |x| >= 2^63). */
int tfs_value_to_int64(const tfs_value *v, int64_t *out, tfs_error *err);



#include <jansson.h>
/* The record as a JSON object {field: value} (new reference; NULL when out of memory).
 * DECIMAL stays a string so that no digit is lost; JSON values are embedded parsed; BYTES
 * are base64 text (RFC 4648, padded). */
json_t *tfs_record_to_json(const tfs_record *rec);

/* A record of entity from a JSON object as tfs_record_to_json makes it (fields missing
 * from the object are null; a BYTES field's string is base64-decoded), in the arena.
 * Returns 0 with *out set, TFS_EINVAL with the reason (a BYTES field that is not base64,
 * naming the field and the offset) or TFS_ENOMEM. */
int tfs_record_from_json_checked(tfs_arena *a, const tfs_sdk_entity *entity, const json_t *obj,
                                 tfs_record **out, tfs_error *err);
/* The same for JSON the host wrote itself (stored records): NULL when out of memory or,
 * which the host never writes, a BYTES field that is not base64. */
tfs_record *tfs_record_from_json(tfs_arena *a, const tfs_sdk_entity *entity, const json_t *obj);

/* Decodes base64 text (RFC 4648, padded, no white space) of n characters into out (room
 * for n / 4 * 3 bytes). 0 with *out_len, or -1 with the reason in why ("not base64: '!'
 * at offset 3"). */
int tfs_base64_decode(const char *s, size_t n, char *out, size_t *out_len, char *why,
                      size_t why_len);

struct tfs_buf;
/* Appends the same JSON object as text, without building a jansson tree: this runs for
 * every record written, to keep the sync map's last-written record. Returns 0 or -1. */
int tfs_record_json_append(struct tfs_buf *out, const tfs_record *rec);
/* Appends one value as JSON (DECIMAL and text types as strings, BYTES as base64 text).
 * Returns 0, or -1 when out of memory (out->oom set). */
int tfs_value_json_append(struct tfs_buf *out, const tfs_value *v);
/* Appends s as a JSON string literal (quoted, escaped). Returns 0, or -1 when out of
 * memory (out->oom set). */
int tfs_json_string_append(struct tfs_buf *out, const char *s, size_t len);
#endif
