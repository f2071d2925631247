/* plugins/gis/gis.c — adapter for the county parcel layer (PostGIS, Esri LGIM tax parcels).
 *
 * Three entities over one table, taxparcel (schema.sql). taxparcel, the source: a parcel's
 * PARCELID, stated area, the area in acres and the centroid (WGS 84 latitude, longitude)
 * computed from its shape, and the shape itself as GeoJSON with its SRID; a shape that is
 * missing, empty or invalid comes with null geometry and the reason in shape_error
 * (ST_IsValidReason), which the transform turns into the record's failure. parcel_attr
 * and parcel_owner, the targets: the attributes PACS owns (situs, legal, land use,
 * neighbourhood, class, values; owners and their mailing address), written by PARCELID
 * with UPDATE of those columns only. GIS owns a parcel's existence and its shape: an
 * upsert of a PARCELID it does not have fails that operation ("no such parcel in GIS"),
 * and a delete clears the entity's attributes, never the row.
 *
 * Change reads follow plugins/pacs/pacs.c: a trigger appends (transaction id, PARCELID) to
 * gis_change_log when a parcel's PARCELID, STATEDAREA or shape changes, and a read takes
 * the rows committed between two transaction snapshots. Attribute writes are not logged,
 * so what tfsync writes here is never read back as a GIS change.
 *
 * Lazy: cb_open and cb_describe never connect; the first read, fetch, write, estimate or
 * health call does, and every call after a lost connection reconnects (PQreset).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tfsync_plugin.h"

#include "pg_plugin.h"

#define GIS_FULL_PREFIX "g1:"    /* full reads: "g1:<last PARCELID>" */
#define GIS_CHANGES_PREFIX "c1|" /* change reads: "c1|<prev>|<cur>|<last PARCELID>" */
#define GIS_FETCH_SIZE_MAX 100000
#define GIS_SNAPSHOT_MAX 65536
#define GIS_KEY_MAX 256

typedef struct gis_buf {
    char *s;
    size_t len, cap;
    int oom;
} gis_buf;

typedef struct gis {
    char *conninfo;
    pgp_timeouts timeouts;
    int fetch_size;
    PGconn *conn;  /* NULL until the first call that needs the database */
    int session_ready;
    int up;        /* the last call found the connection working: log its loss once */
    gis_buf buf;   /* key arrays, cursors */
} gis;

static const tfs_sdk_host *host;

static const tfs_sdk_config_key gis_config[] = {
    {"conninfo", TFS_SDK_CONFIG_STRING, NULL,
     "libpq connection string or URI of the GIS (PostGIS) database"},
    {"fetch_size", TFS_SDK_CONFIG_INT, "1000",
     "most parcels one read query returns, an upper bound beside the host's max_records "
     "(1 to 100000)"},
    {"connect_timeout", TFS_SDK_CONFIG_INT, "5",
     "seconds a connection attempt to the GIS database may take before it fails as "
     "transient (1 to 3600)"},
    {"statement_timeout", TFS_SDK_CONFIG_INT, "0",
     "milliseconds one statement may run before the server cancels it (SQLSTATE 57014, "
     "transient: the batch is retried); 0: no limit"},
};
enum { CFG_CONNINFO, CFG_FETCH_SIZE, CFG_CONNECT_TIMEOUT, CFG_STATEMENT_TIMEOUT };

#define KEY TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 50, 0, 0
#define TXT(n) TFS_SDK_TEXT, 0, (n), 0, 0
#define DEC(p, s) TFS_SDK_DECIMAL, 0, 0, (p), (s)
/* The orders are a contract with the transforms: never reorder, only append. */
static const tfs_sdk_field parcel_fields[] = {
    {"PARCELID", KEY},
    {"STATEDAREA", TXT(25)},
    {"acres", DEC(14, 4)},        /* ST_Area in square US survey feet / 43560 */
    {"centroid_lat", DEC(10, 7)}, /* ST_Centroid transformed to EPSG:4326 */
    {"centroid_lon", DEC(11, 7)},
    {"shape", TFS_SDK_GEOMETRY, 0, 0, 0, 0},
    {"shape_error", TXT(0)},      /* null, or why the shape is unusable */
};
static const tfs_sdk_field attr_fields[] = {
    {"PARCELID", KEY},           {"SITEADDRESS", TXT(100)}, {"PRPRTYDSCRP", TXT(255)},
    {"USECD", TXT(10)},          {"USEDSCRP", TXT(50)},     {"NGHBRHDCD", TXT(10)},
    {"CLASSCD", TXT(10)},        {"LNDVALUE", DEC(14, 0)},  {"IMPVALUE", DEC(14, 0)},
    {"CNTASSDVAL", DEC(14, 0)},  {"CNTTXBLVAL", DEC(14, 0)},
};
static const tfs_sdk_field owner_fields[] = {
    {"PARCELID", KEY},         {"OWNERNME1", TXT(70)}, {"OWNERNME2", TXT(70)},
    {"PSTLADDRESS", TXT(130)}, {"PSTLCITY", TXT(50)},  {"PSTLSTATE", TXT(2)},
    {"PSTLZIP5", TXT(5)},
};
#undef KEY
#undef TXT
#undef DEC

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

enum { ENT_PARCEL, ENT_ATTR, ENT_OWNER };

static const tfs_sdk_entity gis_entities[] = {
    [ENT_PARCEL] = {"taxparcel", parcel_fields, N_OF(parcel_fields)},
    [ENT_ATTR] = {"parcel_attr", attr_fields, N_OF(attr_fields)},
    [ENT_OWNER] = {"parcel_owner", owner_fields, N_OF(owner_fields)},
};
#define N_ENTITIES N_OF(gis_entities)

/* ---- SQL ---------------------------------------------------------------------------------
 * Keys are compared and ordered bytewise (COLLATE "C"), as the keyset index is. */

/* The source record of the parcel t, in parcel_fields' order. */
#define PARCEL_SELECT                                                                           \
    "t.\"PARCELID\", t.\"STATEDAREA\","                                                         \
    " CASE WHEN v.ok THEN round((ST_Area(t.shape) / 43560.0)::numeric, 4) END,"                \
    " CASE WHEN v.ok THEN round(ST_Y(v.c)::numeric, 7) END,"                                   \
    " CASE WHEN v.ok THEN round(ST_X(v.c)::numeric, 7) END,"                                   \
    " CASE WHEN v.ok THEN ST_AsGeoJSON(t.shape, 15, 2) END,"                                   \
    " CASE WHEN t.shape IS NULL THEN 'no shape' WHEN ST_IsEmpty(t.shape) THEN 'empty geometry'" \
    "  WHEN NOT v.ok THEN 'invalid geometry: ' || ST_IsValidReason(t.shape) END"
#define PARCEL_CHECK                                                                            \
    " CROSS JOIN LATERAL (SELECT ok, CASE WHEN ok THEN"                                         \
    "   ST_Transform(ST_Centroid(t.shape), 4326) END AS c FROM (SELECT t.shape IS NOT NULL"     \
    "   AND NOT ST_IsEmpty(t.shape) AND ST_IsValid(t.shape) AS ok) o) v"

static const char read_full_sql[] =
    "SELECT " PARCEL_SELECT " FROM taxparcel t" PARCEL_CHECK
    " WHERE t.\"PARCELID\" COLLATE \"C\" > $1 ORDER BY t.\"PARCELID\" COLLATE \"C\" LIMIT $2::int4";

/* The changed keys of the window (prev, cur] after $3, each with its record now (all
 * columns null when the parcel no longer exists). */
static const char read_changes_sql[] =
    "WITH k AS (SELECT DISTINCT c.\"PARCELID\" COLLATE \"C\" AS k FROM gis_change_log c"
    " WHERE c.txid >= pg_snapshot_xmin($1::pg_snapshot)"
    " AND NOT pg_visible_in_snapshot(c.txid, $1::pg_snapshot)"
    " AND pg_visible_in_snapshot(c.txid, $2::pg_snapshot)"
    " AND c.\"PARCELID\" COLLATE \"C\" > $3 ORDER BY 1 LIMIT $4::int4)"
    " SELECT k.k, r.* FROM k LEFT JOIN LATERAL (SELECT " PARCEL_SELECT " FROM taxparcel t"
    PARCEL_CHECK " WHERE t.\"PARCELID\" = k.k) r ON true ORDER BY k.k";

static const char lag_sql[] =
    "SELECT count(DISTINCT c.\"PARCELID\"), coalesce(floor(extract(epoch FROM"
    " clock_timestamp() - min(c.at)) * 1000), 0)::int8 FROM gis_change_log c"
    " WHERE c.txid >= pg_snapshot_xmin($1::pg_snapshot)"
    " AND NOT pg_visible_in_snapshot(c.txid, $1::pg_snapshot)"
    " AND (NOT pg_visible_in_snapshot(c.txid, $2::pg_snapshot) OR c.\"PARCELID\" COLLATE \"C\" > $3)";

static const char trim_sql[] =
    "DELETE FROM gis_change_log WHERE txid < (SELECT min(pg_snapshot_xmin(s::pg_snapshot))"
    " FROM unnest($1::text[]) AS s)";

static const char fetch_parcel_sql[] =
    "SELECT " PARCEL_SELECT " FROM taxparcel t" PARCEL_CHECK
    " WHERE t.\"PARCELID\" = ANY($1::text[])";
static const char fetch_attr_sql[] =
    "SELECT \"PARCELID\", \"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\", \"USEDSCRP\","
    " \"NGHBRHDCD\", \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\", \"CNTASSDVAL\", \"CNTTXBLVAL\""
    " FROM taxparcel WHERE \"PARCELID\" = ANY($1::text[])";
static const char fetch_owner_sql[] =
    "SELECT \"PARCELID\", \"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\", \"PSTLCITY\","
    " \"PSTLSTATE\", \"PSTLZIP5\" FROM taxparcel WHERE \"PARCELID\" = ANY($1::text[])";

/* One upsert: the attribute columns only, never the shape, and only when they differ (an
 * unchanged row keeps its tuple). Answers whether the parcel exists. */
static const char upsert_attr_sql[] =
    "WITH u AS (UPDATE taxparcel t SET (\"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\","
    " \"USEDSCRP\", \"NGHBRHDCD\", \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\", \"CNTASSDVAL\","
    " \"CNTTXBLVAL\") = (v.a, v.b, v.c, v.d, v.e, v.f, v.g, v.h, v.i, v.j)"
    " FROM (SELECT $2::text a, $3::text b, $4::text c, $5::text d, $6::text e, $7::text f,"
    "  $8::numeric g, $9::numeric h, $10::numeric i, $11::numeric j) v"
    " WHERE t.\"PARCELID\" = $1 AND (t.\"SITEADDRESS\", t.\"PRPRTYDSCRP\", t.\"USECD\","
    "  t.\"USEDSCRP\", t.\"NGHBRHDCD\", t.\"CLASSCD\", t.\"LNDVALUE\", t.\"IMPVALUE\","
    "  t.\"CNTASSDVAL\", t.\"CNTTXBLVAL\") IS DISTINCT FROM"
    "  (v.a, v.b, v.c, v.d, v.e, v.f, v.g, v.h, v.i, v.j) RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM taxparcel WHERE \"PARCELID\" = $1)";
static const char upsert_owner_sql[] =
    "WITH u AS (UPDATE taxparcel t SET (\"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\","
    " \"PSTLCITY\", \"PSTLSTATE\", \"PSTLZIP5\") = (v.a, v.b, v.c, v.d, v.e, v.f)"
    " FROM (SELECT $2::text a, $3::text b, $4::text c, $5::text d, $6::text e, $7::text f) v"
    " WHERE t.\"PARCELID\" = $1 AND (t.\"OWNERNME1\", t.\"OWNERNME2\", t.\"PSTLADDRESS\","
    "  t.\"PSTLCITY\", t.\"PSTLSTATE\", t.\"PSTLZIP5\") IS DISTINCT FROM"
    "  (v.a, v.b, v.c, v.d, v.e, v.f) RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM taxparcel WHERE \"PARCELID\" = $1)";
/* A delete clears what PACS gave; the parcel and its shape stay (GIS owns them). */
static const char clear_attr_sql[] =
    "UPDATE taxparcel SET (\"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\", \"USEDSCRP\","
    " \"NGHBRHDCD\", \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\", \"CNTASSDVAL\", \"CNTTXBLVAL\")"
    " = (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    " WHERE \"PARCELID\" = $1 AND num_nonnulls(\"SITEADDRESS\", \"PRPRTYDSCRP\", \"USECD\","
    " \"USEDSCRP\", \"NGHBRHDCD\", \"CLASSCD\", \"LNDVALUE\", \"IMPVALUE\", \"CNTASSDVAL\","
    " \"CNTTXBLVAL\") > 0";
static const char clear_owner_sql[] =
    "UPDATE taxparcel SET (\"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\", \"PSTLCITY\","
    " \"PSTLSTATE\", \"PSTLZIP5\") = (NULL, NULL, NULL, NULL, NULL, NULL)"
    " WHERE \"PARCELID\" = $1 AND num_nonnulls(\"OWNERNME1\", \"OWNERNME2\", \"PSTLADDRESS\","
    " \"PSTLCITY\", \"PSTLSTATE\", \"PSTLZIP5\") > 0";

static const char estimate_sql[] =
    "SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8"
    " ELSE (SELECT count(*) FROM taxparcel) END FROM pg_class c"
    " WHERE c.oid = to_regclass('taxparcel')";

/* ---- scratch text ---------------------------------------------------------------------- */

static void buf_reset(gis_buf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->s)
        b->s[0] = '\0';
}

static void buf_put(gis_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Appends s as one quoted element of a PostgreSQL array literal. */
static void buf_array_item(gis_buf *b, const char *s, size_t len, int first)
{
    if (!first)
        buf_put(b, ",", 1);
    buf_put(b, "\"", 1);
    size_t start = 0;
    for (size_t j = 0; j < len; j++)
        if (s[j] == '"' || s[j] == '\\') {
            buf_put(b, s + start, j - start);
            buf_put(b, "\\", 1);
            start = j;
        }
    buf_put(b, s + start, len - start);
    buf_put(b, "\"", 1);
}

/* ---- values ---------------------------------------------------------------------------- */

/* The text of field f of rec (NULL for null), formatted into tmp when it is a number. */
static const char *value_text(const tfs_sdk_record *rec, size_t f, char *tmp, size_t cap)
{
    switch (host->rec_type(rec, f)) {
    case TFS_SDK_NULL:
        return NULL;
    case TFS_SDK_BOOL:
        return host->rec_get_bool(rec, f) ? "true" : "false";
    case TFS_SDK_INT64:
        snprintf(tmp, cap, "%" PRId64, host->rec_get_int(rec, f));
        return tmp;
    case TFS_SDK_FLOAT64:
        snprintf(tmp, cap, "%.17g", host->rec_get_float(rec, f));
        return tmp;
    default:
        return host->rec_get_text(rec, f, NULL);
    }
}

static int set_field(tfs_sdk_record *rec, const tfs_sdk_field *field, size_t f,
                     const PGresult *res, int row, int col, tfs_sdk_error *err)
{
    int rc;
    if (PQgetisnull(res, row, col))
        rc = host->rec_set_null(rec, f);
    else
        rc = host->rec_set_text(rec, f, field->type, PQgetvalue(res, row, col),
                                (size_t)PQgetlength(res, row, col));
    if (rc != 0) {
        host->error_set(err, "could not set %s: out of memory", field->name);
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

/* Adds row r of res, from column col0 on, as a record of entity (every field is text). */
static int add_row(const tfs_sdk_entity *e, const PGresult *res, int r, int col0,
                   tfs_sdk_batch *out, tfs_sdk_error *err)
{
    if ((size_t)PQnfields(res) != e->n_fields + (size_t)col0) {
        host->error_set(err, "could not read %s: the query returned %d columns, not %zu",
                        e->name, PQnfields(res), e->n_fields + (size_t)col0);
        return TFS_SDK_EPERMANENT;
    }
    tfs_sdk_record *rec = host->batch_add(out);
    if (!rec) {
        host->error_set(err, "could not add a %s record: out of memory", e->name);
        return TFS_SDK_ETRANSIENT;
    }
    for (size_t f = 0; f < e->n_fields; f++) {
        int rc = set_field(rec, &e->fields[f], f, res, r, col0 + (int)f, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- settings -------------------------------------------------------------------------- */

/* "systems.<name>.settings.<key>" of the config array, or "<key>" outside cb_check/open. */
static const char *setting_name(const char *const *config, const char *key, char *out,
                                size_t cap)
{
    const char *sys = TFS_SDK_HOST_HAS(host, config_system) ? host->config_system(config) : NULL;
    if (sys)
        snprintf(out, cap, "systems.%s.settings.%s", sys, key);
    else
        snprintf(out, cap, "%s", key);
    return out;
}

/* Checks the settings without connecting; fills *fetch_size and *t when given. */
static int gis_check_settings(const char *const *config, int *fetch_size, pgp_timeouts *t,
                              tfs_sdk_error *err)
{
    char msg[512], name[160], *perr = NULL, *end;
    const char *conninfo = config[CFG_CONNINFO];
    if (!conninfo || !*conninfo) {
        host->error_set(err, "could not use gis: %s is required (a libpq connection string "
                        "of the PostGIS database)",
                        setting_name(config, "conninfo", name, sizeof name));
        return TFS_SDK_EPERMANENT;
    }
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        host->error_set(err, "could not use gis: %s is not a libpq connection string: %s",
                        setting_name(config, "conninfo", name, sizeof name),
                        perr ? pgp_oneline(perr, msg, sizeof msg) : "out of memory");
        PQfreemem(perr);
        return TFS_SDK_EPERMANENT;
    }
    PQconninfoFree(opts);
    const char *fs = config[CFG_FETCH_SIZE] ? config[CFG_FETCH_SIZE] : "1000";
    errno = 0;
    long v = strtol(fs, &end, 10);
    if (errno || end == fs || *end || v < 1 || v > GIS_FETCH_SIZE_MAX) {
        host->error_set(err, "could not use gis: %s \"%s\" is not a number from 1 to %d",
                        setting_name(config, "fetch_size", name, sizeof name), fs,
                        GIS_FETCH_SIZE_MAX);
        return TFS_SDK_EPERMANENT;
    }
    if (fetch_size)
        *fetch_size = (int)v;
    pgp_timeouts tmp;
    if (pgp_timeouts_parse(config[CFG_CONNECT_TIMEOUT], config[CFG_STATEMENT_TIMEOUT],
                           t ? t : &tmp, msg, sizeof msg) != 0) {
        /* msg starts with the key's bare name; name it in full. */
        const char *key = strncmp(msg, "connect_timeout", 15) == 0 ? "connect_timeout"
                                                                    : "statement_timeout";
        host->error_set(err, "could not use gis: %s: %s",
                        setting_name(config, key, name, sizeof name), msg);
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}

static int gis_check(const char *const *config, tfs_sdk_error *err)
{
    return gis_check_settings(config, NULL, NULL, err);
}

/* ---- connection ------------------------------------------------------------------------ */

/* "; load plugins/gis/schema.sql ..." when res failed on a missing table or function. */
static const char *schema_hint(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "42P01") == 0)
        return "; load plugins/gis/schema.sql into the database";
    if (state && strcmp(state, "42883") == 0)
        return "; the database needs PostGIS: CREATE EXTENSION postgis";
    return "";
}

/* Connects on first use, reconnects after a lost connection, sets the session up. */
static int gis_ensure(gis *g, tfs_sdk_error *err)
{
    char msg[512];
    if (!g->conn) {
        g->conn = pgp_connect(g->conninfo, "tfsync-gis", &g->timeouts);
        if (!g->conn) {
            host->error_set(err, "could not connect to the gis database: out of memory");
            return TFS_SDK_ETRANSIENT;
        }
        PQsetNoticeProcessor(g->conn, pgp_notice, (void *)host);
        if (PQstatus(g->conn) != CONNECTION_OK) {
            host->error_set(err, "could not connect to the gis database: %s",
                            pgp_message(g->conn, NULL, msg, sizeof msg));
            return TFS_SDK_ETRANSIENT;
        }
    } else {
        if (PQstatus(g->conn) != CONNECTION_OK && g->up)
            host->log(host, TFS_SDK_LOG_WARN, "lost the gis database, reconnecting");
        int re = pgp_reconnect(g->conn, host, "gis", err);
        if (re != 0) {
            g->up = 0;
            g->session_ready = 0;
            if (re < 0)
                return re;
        }
    }
    if (PQtransactionStatus(g->conn) != PQTRANS_IDLE)
        PQclear(PQexec(g->conn, "ROLLBACK"));
    if (!g->session_ready) {
        if (PQsetClientEncoding(g->conn, "UTF8") != 0) {
            host->error_set(err, "could not set the client encoding of gis: %s",
                            pgp_message(g->conn, NULL, msg, sizeof msg));
            return pgp_classify(g->conn, NULL);
        }
        PGresult *res = PQexec(g->conn, "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC';"
                                        " SET extra_float_digits = 3");
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            int rc = pgp_classify(g->conn, res);
            host->error_set(err, "could not set up the gis session: %s",
                            pgp_message(g->conn, res, msg, sizeof msg));
            PQclear(res);
            return rc;
        }
        PQclear(res);
        g->session_ready = 1;
    }
    g->up = 1;
    return 0;
}

/* Runs sql with text parameters; the result (owned) or NULL with err and *rc set. */
static PGresult *gis_exec(gis *g, const char *what, const char *sql, int n,
                          const char *const *params, int *rc, tfs_sdk_error *err)
{
    char msg[512];
    PGresult *res = PQexecParams(g->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
        return res;
    *rc = pgp_classify(g->conn, res);
    host->error_set(err, "could not %s: %s%s", what, pgp_message(g->conn, res, msg, sizeof msg),
                    schema_hint(res));
    PQclear(res);
    return NULL;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static void gis_close(void *instance)
{
    gis *g = instance;
    if (!g)
        return;
    if (g->conn)
        PQfinish(g->conn);
    free(g->conninfo);
    free(g->buf.s);
    free(g);
}

/* No connection here (TFS_SDK_CAP_LAZY_OPEN): tfsyncd --check opens and describes
 * offline, and a database that is down is an outage the first real call reports. */
static int gis_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    *instance = NULL;
    gis *g = calloc(1, sizeof *g);
    if (!g) {
        host->error_set(err, "could not open gis: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    int rc = gis_check_settings(config, &g->fetch_size, &g->timeouts, err);
    if (rc) {
        gis_close(g);
        return rc;
    }
    g->conninfo = strdup(config[CFG_CONNINFO]);
    if (!g->conninfo) {
        gis_close(g);
        host->error_set(err, "could not open gis: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    *instance = g;
    return 0;
}

static int gis_describe(void *instance, const tfs_sdk_entity **entities, size_t *n_entities,
                        tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *entities = gis_entities;
    *n_entities = N_ENTITIES;
    return 0;
}

/* Splits a change cursor "c1|<prev>|<cur>|<key>" into g->buf: pointers to the three
 * parts (cur and key may be empty). */
static int changes_cursor_parse(gis *g, const void *cursor, size_t len, const char **prev,
                                const char **cur, const char **key)
{
    const size_t plen = sizeof GIS_CHANGES_PREFIX - 1;
    if (len < plen || len > 2 * GIS_SNAPSHOT_MAX + GIS_KEY_MAX ||
        memcmp(cursor, GIS_CHANGES_PREFIX, plen) != 0 || memchr(cursor, '\0', len))
        return -1;
    buf_reset(&g->buf);
    buf_put(&g->buf, (const char *)cursor + plen, len - plen);
    if (g->buf.oom)
        return -1;
    char *p = g->buf.s, *bar1 = strchr(p, '|');
    char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    if (!bar1 || !bar2 || bar1 == p)
        return -1;
    *bar1 = *bar2 = '\0';
    /* Snapshot text only ("xmin:xmax:xip,..."); cur may be empty (no window open). */
    for (const char *c = p; c < bar2; c++)
        if (*c && !strchr("0123456789:,", *c))
            return -1;
    *prev = p;
    *cur = bar1 + 1;
    *key = bar2 + 1;
    return 0;
}

static int set_changes_cursor(tfs_sdk_batch *out, const char *prev, const char *cur,
                              const char *key, tfs_sdk_error *err)
{
    gis_buf b = {0};
    buf_put(&b, GIS_CHANGES_PREFIX, sizeof GIS_CHANGES_PREFIX - 1);
    buf_put(&b, prev, strlen(prev));
    buf_put(&b, "|", 1);
    buf_put(&b, cur, strlen(cur));
    buf_put(&b, "|", 1);
    buf_put(&b, key, strlen(key));
    int rc = b.oom || host->batch_set_cursor(out, b.s, b.len) != 0;
    free(b.s);
    if (rc) {
        host->error_set(err, "could not set the taxparcel change cursor: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

/* The current snapshot as text (owned by *res). */
static const char *current_snapshot(gis *g, PGresult **res, int *rc, tfs_sdk_error *err)
{
    *res = gis_exec(g, "take a snapshot of the gis database",
                    "SELECT pg_current_snapshot()::text", 0, NULL, rc, err);
    return *res ? PQgetvalue(*res, 0, 0) : NULL;
}

static int read_changes(gis *g, const void *cursor, size_t cursor_len, size_t limit,
                        tfs_sdk_batch *out, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &gis_entities[ENT_PARCEL];
    const char *prev, *cur, *key;
    PGresult *snap = NULL, *res = NULL;
    char lim[16];
    int rc = 0;
    if (changes_cursor_parse(g, cursor, cursor_len, &prev, &cur, &key) != 0) {
        host->error_set(err, "could not read taxparcel changes: malformed cursor (%zu bytes)",
                        cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    if (!*cur && !(cur = current_snapshot(g, &snap, &rc, err)))
        return rc;
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {prev, cur, key, lim};
    res = gis_exec(g, "read taxparcel changes", read_changes_sql, 4, params, &rc, err);
    if (!res)
        goto out;
    int rows = PQntuples(res);
    for (int r = 0; r < rows && !rc; r++) {
        if (!PQgetisnull(res, r, 1)) {
            rc = add_row(e, res, r, 1, out, err);
            continue;
        }
        /* Gone from the layer: a deletion, by key. */
        tfs_sdk_record *del = host->batch_add_delete(out);
        if (!del || host->rec_set_text(del, 0, TFS_SDK_TEXT, PQgetvalue(res, r, 0),
                                       (size_t)PQgetlength(res, r, 0)) != 0) {
            host->error_set(err, "could not add a taxparcel deletion: out of memory");
            rc = TFS_SDK_ETRANSIENT;
        }
    }
    if (rc)
        goto out;
    if ((size_t)rows < limit) {
        /* Caught up with the window: the next read starts a new one after cur. */
        rc = set_changes_cursor(out, cur, "", "", err);
        host->batch_set_done(out);
    } else {
        rc = set_changes_cursor(out, prev, cur, PQgetvalue(res, rows - 1, 0), err);
    }
out:
    PQclear(res);
    PQclear(snap);
    return rc;
}

static int gis_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                    size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                    tfs_sdk_error *err)
{
    gis *g = instance;
    int rc;
    if (entity != ENT_PARCEL) {
        host->error_set(err, "could not read %s: gis reads only taxparcel (%s is written "
                        "from PACS)", entity < N_ENTITIES ? gis_entities[entity].name : "?",
                        entity < N_ENTITIES ? gis_entities[entity].name : "it");
        return TFS_SDK_EPERMANENT;
    }
    size_t limit = max_records > 0 && max_records < (size_t)g->fetch_size ? max_records
                                                                          : (size_t)g->fetch_size;
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    if (mode == TFS_SDK_READ_CHANGES)
        return read_changes(g, cursor, cursor_len, limit, out, err);

    const size_t plen = sizeof GIS_FULL_PREFIX - 1;
    char after[GIS_KEY_MAX + 1] = "", lim[16];
    if (cursor_len > 0) {
        if (cursor_len < plen || cursor_len - plen > GIS_KEY_MAX ||
            memcmp(cursor, GIS_FULL_PREFIX, plen) != 0 ||
            memchr(cursor, '\0', cursor_len)) {
            host->error_set(err, "could not read taxparcel: malformed cursor (%zu bytes)",
                            cursor_len);
            return TFS_SDK_EPERMANENT;
        }
        memcpy(after, (const char *)cursor + plen, cursor_len - plen);
        after[cursor_len - plen] = '\0';
    }
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {after, lim};
    PGresult *res = gis_exec(g, "read taxparcel", read_full_sql, 2, params, &rc, err);
    if (!res)
        return rc;
    int rows = PQntuples(res);
    for (int r = 0; r < rows && !rc; r++)
        rc = add_row(&gis_entities[ENT_PARCEL], res, r, 0, out, err);
    if (!rc && rows > 0) {
        char next[GIS_KEY_MAX + 8];
        int len = PQgetlength(res, rows - 1, 0);
        if (len > GIS_KEY_MAX) {
            host->error_set(err, "could not read taxparcel: PARCELID of %d bytes is too long "
                            "for a cursor", len);
            rc = TFS_SDK_EPERMANENT;
        } else {
            memcpy(next, GIS_FULL_PREFIX, plen);
            memcpy(next + plen, PQgetvalue(res, rows - 1, 0), (size_t)len);
            if (host->batch_set_cursor(out, next, plen + (size_t)len) != 0) {
                host->error_set(err, "could not set the taxparcel cursor: out of memory");
                rc = TFS_SDK_ETRANSIENT;
            }
        }
    }
    if (!rc && (size_t)rows < limit)
        host->batch_set_done(out);
    PQclear(res);
    return rc;
}

static int gis_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                     size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    gis *g = instance;
    int rc, first = 1;
    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not fetch entity %zu: gis has no such entity", entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &gis_entities[entity];
    buf_reset(&g->buf);
    buf_put(&g->buf, "{", 1);
    for (size_t i = 0; i < n_keys; i++) {
        size_t len = 0;
        const char *k = keys[i] && host->rec_type(keys[i], 0) == TFS_SDK_TEXT
                            ? host->rec_get_text(keys[i], 0, &len)
                            : NULL;
        if (!k)
            continue; /* a null key cannot exist */
        buf_array_item(&g->buf, k, len, first);
        first = 0;
    }
    buf_put(&g->buf, "}", 1);
    if (g->buf.oom) {
        host->error_set(err, "could not fetch %s: out of memory", e->name);
        return TFS_SDK_ETRANSIENT;
    }
    if (first)
        return 0;
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    const char *sql = entity == ENT_PARCEL ? fetch_parcel_sql
                      : entity == ENT_ATTR ? fetch_attr_sql
                                           : fetch_owner_sql;
    const char *params[] = {g->buf.s};
    char what[64];
    snprintf(what, sizeof what, "fetch %s", e->name);
    PGresult *res = gis_exec(g, what, sql, 1, params, &rc, err);
    if (!res)
        return rc;
    for (int r = 0; r < PQntuples(res) && !rc; r++)
        rc = add_row(e, res, r, 0, out, err);
    PQclear(res);
    return rc;
}

/* Finishes a write that failed as a whole: rolls back, sets the message. */
static int write_failed(gis *g, PGresult *res, const char *what, tfs_sdk_error *err)
{
    char msg[512];
    int rc = pgp_classify(g->conn, res);
    host->error_set(err, "could not write to gis (%s): %s", what,
                    pgp_message(g->conn, res, msg, sizeof msg));
    PQclear(res);
    if (PQstatus(g->conn) == CONNECTION_OK)
        PQclear(PQexec(g->conn, "ROLLBACK"));
    return rc;
}

/* A command that must succeed; NULL, or the failed result (owned). */
static PGresult *run(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* One operation, under its own savepoint. Returns NULL with *missing set when an upsert
 * found no parcel, or the failed result (owned). */
static PGresult *write_one(gis *g, const tfs_sdk_write_op *op, int *missing)
{
    const tfs_sdk_entity *e = &gis_entities[op->entity];
    const char *params[16];
    char tmp[16][40];
    *missing = 0;
    for (size_t f = 0; f < e->n_fields && f < 16; f++)
        params[f] = value_text(op->record, f, tmp[f], sizeof tmp[f]);
    const char *sql;
    int n;
    if (op->kind == TFS_SDK_OP_DELETE) {
        sql = op->entity == ENT_ATTR ? clear_attr_sql : clear_owner_sql;
        n = 1;
    } else {
        sql = op->entity == ENT_ATTR ? upsert_attr_sql : upsert_owner_sql;
        n = (int)e->n_fields;
    }
    PGresult *res = PQexecParams(g->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        return res;
    if (st == PGRES_TUPLES_OK && PQntuples(res) == 1)
        *missing = PQgetvalue(res, 0, 0)[0] != 't';
    PQclear(res);
    return NULL;
}

static int gis_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                     tfs_sdk_results *results, tfs_sdk_error *err)
{
    gis *g = instance;
    PGresult *r;
    char msg[512];
    int rc;
    if (n_ops == 0)
        return 0;
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    if ((r = run(g->conn, "BEGIN")) != NULL)
        return write_failed(g, r, "begin", err);
    for (size_t i = 0; i < n_ops; i++) {
        const tfs_sdk_write_op *op = &ops[i];
        if (op->entity != ENT_ATTR && op->entity != ENT_OWNER) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: gis takes only parcel_attr and parcel_owner "
                             "(GIS owns the parcels and their shapes)",
                             op->entity < N_ENTITIES ? gis_entities[op->entity].name : "?");
            continue;
        }
        const tfs_sdk_entity *e = &gis_entities[op->entity];
        if (op->kind != TFS_SDK_OP_UPSERT && op->kind != TFS_SDK_OP_DELETE) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: unknown operation %d", e->name, (int)op->kind);
            continue;
        }
        const char *id = op->record && host->rec_n_fields(op->record) == e->n_fields
                             ? host->rec_get_text(op->record, 0, NULL)
                             : NULL;
        if (!id) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: the record has no PARCELID or not its %zu "
                             "fields", e->name, e->n_fields);
            continue;
        }
        if ((r = run(g->conn, "SAVEPOINT tfs_op")) != NULL)
            return write_failed(g, r, "savepoint", err);
        int missing = 0;
        if ((r = write_one(g, op, &missing)) == NULL) {
            if ((r = run(g->conn, "RELEASE SAVEPOINT tfs_op")) != NULL)
                return write_failed(g, r, "release savepoint", err);
            if (missing)
                host->result_set(results, i, TFS_SDK_EPERMANENT,
                                 "no such parcel in GIS: PARCELID %s (GIS owns parcel "
                                 "existence; map the parcel in GIS first)", id);
            continue;
        }
        if (pgp_classify(g->conn, r) == TFS_SDK_ETRANSIENT)
            return write_failed(g, r, e->name, err);
        host->result_set(results, i, TFS_SDK_EPERMANENT, "could not write %s %s: %s", e->name,
                         id, pgp_message(g->conn, r, msg, sizeof msg));
        PQclear(r);
        if ((r = run(g->conn, "ROLLBACK TO SAVEPOINT tfs_op")) != NULL)
            return write_failed(g, r, "rollback to savepoint", err);
    }
    if ((r = run(g->conn, "COMMIT")) != NULL)
        return write_failed(g, r, "commit", err);
    return 0;
}

static int gis_health(void *instance, tfs_sdk_error *err)
{
    gis *g = instance;
    int rc = gis_ensure(g, err);
    if (rc)
        return rc;
    PGresult *res = gis_exec(g, "check the gis database", "SELECT 1", 0, NULL, &rc, err);
    PQclear(res);
    return res ? 0 : rc;
}

static int gis_changes_start(void *instance, size_t entity, tfs_sdk_batch *out,
                             tfs_sdk_error *err)
{
    gis *g = instance;
    PGresult *snap = NULL;
    int rc;
    if (entity != ENT_PARCEL) {
        host->error_set(err, "could not start changes of entity %zu: gis reads only taxparcel",
                        entity);
        return TFS_SDK_EPERMANENT;
    }
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    const char *now = current_snapshot(g, &snap, &rc, err);
    if (now)
        rc = set_changes_cursor(out, now, "", "", err);
    PQclear(snap);
    return rc;
}

static int gis_changes_lag(void *instance, size_t entity, const void *cursor, size_t cursor_len,
                           int64_t *pending, int64_t *oldest_age_ms, tfs_sdk_error *err)
{
    gis *g = instance;
    const char *prev, *cur, *key;
    int rc;
    if (entity != ENT_PARCEL) {
        host->error_set(err, "could not measure the lag of entity %zu: gis reads only "
                        "taxparcel", entity);
        return TFS_SDK_EPERMANENT;
    }
    if (changes_cursor_parse(g, cursor, cursor_len, &prev, &cur, &key) != 0) {
        host->error_set(err, "could not measure the taxparcel lag: malformed cursor (%zu "
                        "bytes)", cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    /* No window open: everything after prev waits (prev as cur makes the window empty). */
    const char *params[] = {prev, *cur ? cur : prev, key};
    PGresult *res = gis_exec(g, "measure the taxparcel lag", lag_sql, 3, params, &rc, err);
    if (!res)
        return rc;
    *pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *oldest_age_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return 0;
}

static int gis_changes_trim(void *instance, const void *const *cursors, const size_t *lens,
                            size_t n, tfs_sdk_error *err)
{
    gis *g = instance;
    gis_buf arr = {0};
    int rc = 0, first = 1;
    buf_put(&arr, "{", 1);
    for (size_t i = 0; i < n; i++) {
        const char *prev, *cur, *key;
        if (changes_cursor_parse(g, cursors[i], lens[i], &prev, &cur, &key) != 0)
            continue; /* a full-read cursor, or another system's: not ours to weigh */
        buf_array_item(&arr, prev, strlen(prev), first);
        first = 0;
    }
    buf_put(&arr, "}", 1);
    if (arr.oom) {
        host->error_set(err, "could not trim the gis change log: out of memory");
        rc = TFS_SDK_ETRANSIENT;
    } else if (!first && (rc = gis_ensure(g, err)) == 0) {
        const char *params[] = {arr.s};
        PGresult *res = gis_exec(g, "trim the gis change log", trim_sql, 1, params, &rc, err);
        PQclear(res);
    }
    free(arr.s);
    return rc;
}

static int gis_estimate(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err)
{
    gis *g = instance;
    int rc;
    *count = -1;
    if (entity != ENT_PARCEL)
        return 0;
    if ((rc = gis_ensure(g, err)) != 0)
        return rc;
    PGresult *res = gis_exec(g, "estimate taxparcel", estimate_sql, 0, NULL, &rc, err);
    if (!res)
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* SDK 1.4: the parcel layer is read, the attribute and owner tables only written. */
static unsigned gis_entity_roles(void *instance, size_t entity)
{
    (void)instance;
    return entity == ENT_PARCEL ? TFS_SDK_CAP_SOURCE : TFS_SDK_CAP_TARGET;
}

static const tfs_sdk_plugin gis_plugin = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "gis",
    .version = "0.1.0",
    .description = "county parcel layer (PostGIS, LGIM taxparcel): reads parcels with their "
                   "area, centroid and shape; writes PACS attributes, never shapes",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_CHANGES |
                    TFS_SDK_CAP_LAZY_OPEN,
    .config_keys = gis_config,
    .n_config_keys = N_OF(gis_config),
    .cb_open = gis_open,
    .cb_close = gis_close,
    .cb_describe = gis_describe,
    .cb_read = gis_read,
    .cb_fetch = gis_fetch,
    .cb_write = gis_write,
    .cb_health = gis_health,
    .cb_changes_start = gis_changes_start,
    .cb_changes_lag = gis_changes_lag,
    .cb_changes_trim = gis_changes_trim,
    .cb_check = gis_check,
    .cb_entity_roles = gis_entity_roles,
    .cb_estimate = gis_estimate,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    /* batch_add_delete is 1.1; config_system (1.3) is tested before each use. */
    if (!h || h->sdk_major != TFS_SDK_VERSION_MAJOR ||
        h->struct_size < offsetof(tfs_sdk_host, batch_add_delete) + sizeof h->batch_add_delete)
        return NULL;
    host = h;
    return &gis_plugin;
}
