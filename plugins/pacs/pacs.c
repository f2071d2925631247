/* plugins/pacs/pacs.c — source adapter for the PACS appraisal database (PostgreSQL).
 *
 * Exposes one entity, property: a PACS property with its property_val row for the roll
 * year at the highest sup_num (a supplement is an update of the same record), its primary
 * situs address and the sorted list of its exemption codes for that year and supplement.
 * Full reads are keyset-paginated on prop_id, one parameterised query per batch; fetch
 * takes (prop_id, prop_val_yr) keys in one query over unnested arrays. Each instance owns
 * one libpq connection, reconnects with PQreset on the first call after losing it, and
 * classifies errors as transient (connection, server shutdown, serialization, deadlock,
 * timeout) or permanent (everything else). Incremental reads are not implemented yet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tfsync_plugin.h"

#define PACS_CURSOR_PREFIX "p1:" /* cursor format version 1: "p1:<last prop_id>" */
#define PACS_FETCH_SIZE_MAX 100000

typedef struct pacs {
    PGconn *conn;
    int fetch_size;
    int session_ready; /* session settings applied and statements prepared */
    int up;            /* the last call found the connection working: log its loss once */
    char *buf;         /* scratch for fetch key arrays, kept across calls */
    size_t buf_cap;
} pacs;

/* The host table: set once by tfs_sdk_entry, lives as long as the process. */
static const tfs_sdk_host *host;

static const tfs_sdk_config_key pacs_config[] = {
    {"conninfo", TFS_SDK_CONFIG_STRING, NULL,
     "libpq connection string or URI of the PACS database"},
    {"fetch_size", TFS_SDK_CONFIG_INT, "1000",
     "most rows one read query returns, an upper bound beside the host's max_records"},
};

#define DEC(p, s) TFS_SDK_DECIMAL, 0, 0, (p), (s)
#define TXT TFS_SDK_TEXT, 0, 0, 0, 0
/* The order is the contract with the transforms: never reorder, only append. */
static const tfs_sdk_field property_fields[] = {
    {"prop_id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"prop_val_yr", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"sup_num", TFS_SDK_INT64, 0, 0, 0, 0},
    {"prop_type_cd", TXT},
    {"geo_id", TXT},
    {"simple_geo_id", TXT},
    {"state_cd", TXT},
    {"zoning", TXT},
    {"land_hstd_val", DEC(14, 0)},
    {"land_non_hstd_val", DEC(14, 0)},
    {"imprv_hstd_val", DEC(14, 0)},
    {"imprv_non_hstd_val", DEC(14, 0)},
    {"ag_use_val", DEC(14, 0)},
    {"market", DEC(14, 0)},
    {"appraised_val", DEC(14, 0)},
    {"assessed_val", DEC(14, 0)},
    {"legal_desc", TXT},
    {"legal_acreage", DEC(14, 4)},
    {"hood_cd", TXT},
    {"property_use_cd", TXT},
    {"prop_inactive_dt", TFS_SDK_DATE, 0, 0, 0, 0},
    {"situs_num", TXT},
    {"situs_street_prefx", TXT},
    {"situs_street", TXT},
    {"situs_street_sufix", TXT},
    {"situs_unit", TXT},
    {"situs_city", TXT},
    {"situs_state", TXT},
    {"situs_zip", TXT},
    {"exemptions", TFS_SDK_JSON, 0, 0, 0, 0},
};
#undef DEC
#undef TXT

#define N_PROPERTY_FIELDS (sizeof property_fields / sizeof property_fields[0])

static const tfs_sdk_entity pacs_entities[] = {
    {"property", property_fields, N_PROPERTY_FIELDS},
};

/* The select list follows property_fields. v is the property_val row at the highest
 * sup_num of the year, s the primary situs (primary_situs = 'Y', else the lowest
 * situs_id), x the exemption codes of that year and supplement as a compact JSON array. */
#define PACS_SELECT                                                                             \
    "SELECT p.prop_id, v.prop_val_yr, v.sup_num, p.prop_type_cd, p.geo_id, p.simple_geo_id,"   \
    " p.state_cd, p.zoning, v.land_hstd_val, v.land_non_hstd_val, v.imprv_hstd_val,"           \
    " v.imprv_non_hstd_val, v.ag_use_val, v.market, v.appraised_val, v.assessed_val,"          \
    " v.legal_desc, v.legal_acreage, v.hood_cd, v.property_use_cd, v.prop_inactive_dt,"        \
    " s.situs_num, s.situs_street_prefx, s.situs_street, s.situs_street_sufix, s.situs_unit,"  \
    " s.situs_city, s.situs_state, s.situs_zip, x.exemptions"
#define PACS_LATERALS(year)                                                                     \
    " CROSS JOIN LATERAL (SELECT pv.* FROM property_val pv"                                     \
    "   WHERE pv.prop_id = p.prop_id AND pv.prop_val_yr = " year                               \
    "   ORDER BY pv.sup_num DESC LIMIT 1) v"                                                    \
    " LEFT JOIN LATERAL (SELECT st.* FROM situs st WHERE st.prop_id = p.prop_id"               \
    "   ORDER BY coalesce(st.primary_situs = 'Y', false) DESC, st.situs_id LIMIT 1) s ON true" \
    " CROSS JOIN LATERAL (SELECT coalesce('[' || string_agg(to_json(d.c)::text, ','"           \
    "   ORDER BY d.c COLLATE \"C\") || ']', '[]') AS exemptions"                                \
    "   FROM (SELECT DISTINCT e.exmpt_type_cd AS c FROM property_exemption e"                  \
    "     WHERE e.prop_id = p.prop_id AND e.exmpt_tax_yr = v.prop_val_yr"                      \
    "       AND e.sup_num = v.sup_num) d) x"

/* $1 roll year, $2 last prop_id returned (0 at the start), $3 most rows. */
static const char read_sql[] = PACS_SELECT " FROM property p" PACS_LATERALS("$1::int4")
    " WHERE p.prop_id > $2::int8 ORDER BY p.prop_id LIMIT $3::int4";

/* $1 prop_id[], $2 prop_val_yr[] (pairwise). */
static const char fetch_sql[] = PACS_SELECT
    " FROM (SELECT DISTINCT k.prop_id, k.prop_val_yr"
    "   FROM unnest($1::int8[], $2::int8[]) AS k(prop_id, prop_val_yr)) k"
    " JOIN property p ON p.prop_id = k.prop_id" PACS_LATERALS("k.prop_val_yr")
    " ORDER BY p.prop_id, v.prop_val_yr";

#define READ_STMT "tfs_pacs_read"
#define FETCH_STMT "tfs_pacs_fetch"

/* ---- libpq helpers (the same in plugins/cama/cama.c) ----------------------------------- */

/* Transient or permanent, from the connection state and the result's SQLSTATE. */
static int pg_classify(PGconn *conn, const PGresult *res)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return TFS_SDK_ETRANSIENT;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return res ? TFS_SDK_EPERMANENT : TFS_SDK_ETRANSIENT;
    if (strncmp(state, "08", 2) == 0 ||     /* connection exception */
        strcmp(state, "57P01") == 0 ||      /* admin shutdown */
        strcmp(state, "57P02") == 0 ||      /* crash shutdown */
        strcmp(state, "57P03") == 0 ||      /* cannot connect now */
        strcmp(state, "57014") == 0 ||      /* query canceled: statement timeout */
        strcmp(state, "53300") == 0 ||      /* too many connections */
        strcmp(state, "40001") == 0 ||      /* serialization failure */
        strcmp(state, "40P01") == 0)        /* deadlock detected */
        return TFS_SDK_ETRANSIENT;
    return TFS_SDK_EPERMANENT;
}

/* m on one line (runs of white space made one space, none at the ends) in out. */
static const char *pg_oneline(const char *m, char *out, size_t cap)
{
    size_t n = 0;
    int space = 0;
    for (; *m && n + 1 < cap; m++) {
        if (*m == '\n' || *m == '\t' || *m == '\r' || *m == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            out[n++] = ' ';
        space = 0;
        out[n++] = *m;
    }
    out[n] = '\0';
    return out;
}

/* The error text of a result (or of the connection) on one line, without the "ERROR:"
 * prefix, in out. */
static const char *pg_message(PGconn *conn, const PGresult *res, char *out, size_t cap)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m)
        m = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                              : conn ? PQerrorMessage(conn) : NULL;
    return pg_oneline(m && *m ? m : "unknown error", out, cap);
}

static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    size_t len = strlen(message);
    while (len && (message[len - 1] == '\n' || message[len - 1] == ' '))
        len--;
    tfs_sdk_log_level level = TFS_SDK_LOG_INFO;
    if (strncmp(message, "WARNING", 7) == 0)
        level = TFS_SDK_LOG_WARN;
    else if (strncmp(message, "DEBUG", 5) == 0 || strncmp(message, "LOG", 3) == 0)
        level = TFS_SDK_LOG_DEBUG;
    host->log(host, level, "%.*s", (int)len, message);
}

/* Sets field f of rec from column col of the result row, as the field's type says. */
static int pg_set_field(tfs_sdk_record *rec, const tfs_sdk_field *field, size_t f,
                        const PGresult *res, int row, int col, tfs_sdk_error *err)
{
    if (PQgetisnull(res, row, col))
        return host->rec_set_null(rec, f) == 0 ? 0 : TFS_SDK_ETRANSIENT;
    const char *val = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    int rc;
    switch (field->type) {
    case TFS_SDK_INT64: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end) {
            host->error_set(err, "could not read %s: \"%s\" is not an integer", field->name,
                            val);
            return TFS_SDK_EPERMANENT;
        }
        rc = host->rec_set_int(rec, f, (int64_t)v);
        break;
    }
    case TFS_SDK_BOOL:
        rc = host->rec_set_bool(rec, f, val[0] == 't');
        break;
    case TFS_SDK_FLOAT64:
        rc = host->rec_set_float(rec, f, strtod(val, NULL));
        break;
    default:
        rc = host->rec_set_text(rec, f, field->type, val, (size_t)len);
        break;
    }
    if (rc != 0) {
        host->error_set(err, "could not set %s: out of memory", field->name);
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

/* Adds every row of res to out as records of entity. */
static int pg_add_rows(const tfs_sdk_entity *entity, const PGresult *res, tfs_sdk_batch *out,
                       tfs_sdk_error *err)
{
    int rows = PQntuples(res);
    if ((size_t)PQnfields(res) != entity->n_fields) {
        host->error_set(err, "could not read %s: the query returned %d columns, not %zu",
                        entity->name, PQnfields(res), entity->n_fields);
        return TFS_SDK_EPERMANENT;
    }
    for (int r = 0; r < rows; r++) {
        tfs_sdk_record *rec = host->batch_add(out);
        if (!rec) {
            host->error_set(err, "could not add a %s record: out of memory", entity->name);
            return TFS_SDK_ETRANSIENT;
        }
        for (size_t f = 0; f < entity->n_fields; f++) {
            int rc = pg_set_field(rec, &entity->fields[f], f, res, r, (int)f, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- connection ------------------------------------------------------------------------ */

static int pacs_session(pacs *p, tfs_sdk_error *err)
{
    char msg[512];
    PGresult *res = NULL;
    int rc = 0;

    if (PQsetClientEncoding(p->conn, "UTF8") != 0) {
        host->error_set(err, "could not set the client encoding of pacs: %s",
                        pg_message(p->conn, NULL, msg, sizeof msg));
        rc = pg_classify(p->conn, NULL);
        goto out;
    }
    res = PQexec(p->conn, "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601';"
                          " SET TimeZone = 'UTC'; SET extra_float_digits = 3");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(res);
    res = PQprepare(p->conn, READ_STMT, read_sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(res);
    res = PQprepare(p->conn, FETCH_STMT, fetch_sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    p->session_ready = 1;
    goto out;
fail:
    rc = pg_classify(p->conn, res);
    host->error_set(err, "could not prepare the pacs session: %s",
                    pg_message(p->conn, res, msg, sizeof msg));
out:
    PQclear(res);
    return rc;
}

/* Makes sure the connection is up and set up: reconnects after a lost connection. */
static int pacs_ensure(pacs *p, tfs_sdk_error *err)
{
    char msg[512];
    if (PQstatus(p->conn) != CONNECTION_OK) {
        if (p->up)
            host->log(host, TFS_SDK_LOG_WARN, "lost the pacs database, reconnecting");
        p->up = 0;
        p->session_ready = 0;
        PQreset(p->conn);
        if (PQstatus(p->conn) != CONNECTION_OK) {
            host->error_set(err, "could not connect to the pacs database: %s",
                            pg_message(p->conn, NULL, msg, sizeof msg));
            return TFS_SDK_ETRANSIENT;
        }
    }
    int rc = p->session_ready ? 0 : pacs_session(p, err);
    p->up = rc == 0;
    return rc;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static void pacs_close(void *instance)
{
    pacs *p = instance;
    if (!p)
        return;
    PQfinish(p->conn);
    free(p->buf);
    free(p);
}

static int pacs_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    char msg[512];
    char *perr = NULL;
    PQconninfoOption *opts = NULL;
    pacs *p = NULL;
    int rc = TFS_SDK_EPERMANENT;

    *instance = NULL;
    const char *conninfo = config[0];
    if (!conninfo) {
        host->error_set(err, "could not open pacs: conninfo is required");
        goto out;
    }
    opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        host->error_set(err, "could not open pacs: invalid conninfo: %s",
                        perr ? pg_oneline(perr, msg, sizeof msg) : "out of memory");
        goto out;
    }
    char *end;
    errno = 0;
    long fetch_size = strtol(config[1] ? config[1] : "1000", &end, 10);
    if (errno || *end || fetch_size < 1 || fetch_size > PACS_FETCH_SIZE_MAX) {
        host->error_set(err, "could not open pacs: fetch_size \"%s\" is not between 1 and %d",
                        config[1], PACS_FETCH_SIZE_MAX);
        goto out;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        host->error_set(err, "could not open pacs: out of memory");
        rc = TFS_SDK_ETRANSIENT;
        goto out;
    }
    p->fetch_size = (int)fetch_size;

    static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {conninfo, "tfsync-pacs", NULL};
    p->conn = PQconnectdbParams(keys, values, 1);
    if (!p->conn) {
        host->error_set(err, "could not open pacs: out of memory");
        rc = TFS_SDK_ETRANSIENT;
        goto out;
    }
    PQsetNoticeProcessor(p->conn, pg_notice, p);
    /* A database that is down now is not a bad config: keep the instance, and let every
     * call (health first) reconnect and report it as transient until it is back. */
    if (PQstatus(p->conn) != CONNECTION_OK)
        host->log(host, TFS_SDK_LOG_WARN, "could not connect to the pacs database: %s",
                  pg_message(p->conn, NULL, msg, sizeof msg));
    else if (pacs_ensure(p, err) == TFS_SDK_EPERMANENT)
        goto out; /* e.g. the PACS tables are missing */
    *instance = p;
    p = NULL;
    rc = 0;
out:
    pacs_close(p);
    PQconninfoFree(opts);
    PQfreemem(perr);
    return rc;
}

static int pacs_describe(void *instance, const tfs_sdk_entity **entities, size_t *n_entities,
                         tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *entities = pacs_entities;
    *n_entities = sizeof pacs_entities / sizeof pacs_entities[0];
    return 0;
}

/* Parses a cursor written by pacs_read. */
static int pacs_cursor_parse(const void *cursor, size_t len, int64_t *last)
{
    char text[32];
    size_t plen = sizeof PACS_CURSOR_PREFIX - 1;
    if (len == 0) {
        *last = 0;
        return 0;
    }
    if (len <= plen || len >= sizeof text || memcmp(cursor, PACS_CURSOR_PREFIX, plen) != 0)
        return -1;
    memcpy(text, (const char *)cursor + plen, len - plen);
    text[len - plen] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < 0)
        return -1;
    *last = (int64_t)v;
    return 0;
}

static int pacs_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                     size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                     tfs_sdk_error *err)
{
    pacs *p = instance;
    PGresult *res = NULL;
    char msg[512];
    int rc;

    if (entity != 0) {
        host->error_set(err, "could not read entity %zu: pacs has only property", entity);
        return TFS_SDK_EPERMANENT;
    }
    if (mode != TFS_SDK_READ_FULL) {
        host->error_set(err, "could not read property: incremental reads are not supported yet");
        return TFS_SDK_EPERMANENT;
    }
    int64_t last;
    if (pacs_cursor_parse(cursor, cursor_len, &last) != 0) {
        host->error_set(err, "could not read property: malformed cursor (%zu bytes)",
                        cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    size_t limit = (size_t)p->fetch_size;
    if (max_records > 0 && max_records < limit)
        limit = max_records;
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;

    char year[16], after[32], lim[16];
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    snprintf(after, sizeof after, "%" PRId64, last);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {year, after, lim};
    res = PQexecPrepared(p->conn, READ_STMT, 3, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_classify(p->conn, res);
        host->error_set(err, "could not read property: %s",
                        pg_message(p->conn, res, msg, sizeof msg));
        goto out;
    }
    if ((rc = pg_add_rows(&pacs_entities[0], res, out, err)) != 0)
        goto out;

    int rows = PQntuples(res);
    if (rows > 0) {
        char next[40];
        int n = snprintf(next, sizeof next, PACS_CURSOR_PREFIX "%s",
                         PQgetvalue(res, rows - 1, 0));
        if (host->batch_set_cursor(out, next, (size_t)n) != 0) {
            host->error_set(err, "could not set the property cursor: out of memory");
            rc = TFS_SDK_ETRANSIENT;
            goto out;
        }
    }
    if ((size_t)rows < limit)
        host->batch_set_done(out);
out:
    PQclear(res);
    return rc;
}

/* Appends s to the instance's scratch buffer at *len; keeps it NUL-terminated. */
static int pacs_buf_put(pacs *p, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : 4096;
        while (cap < *len + n + 1)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b)
            return -1;
        p->buf = b;
        p->buf_cap = cap;
    }
    memcpy(p->buf + *len, s, n);
    *len += n;
    p->buf[*len] = '\0';
    return 0;
}

/* An integer key value of a key record: INT64, or text holding an integer. */
static int pacs_key_int(const tfs_sdk_record *rec, size_t f, int64_t *v)
{
    if (host->rec_n_fields(rec) <= f)
        return -1;
    tfs_sdk_type t = host->rec_type(rec, f);
    if (t == TFS_SDK_INT64) {
        *v = host->rec_get_int(rec, f);
        return 0;
    }
    if (t == TFS_SDK_TEXT || t == TFS_SDK_DECIMAL) {
        const char *s = host->rec_get_text(rec, f, NULL);
        char *end;
        errno = 0;
        long long x = s ? strtoll(s, &end, 10) : 0;
        if (!s || errno || end == s || *end)
            return -1;
        *v = (int64_t)x;
        return 0;
    }
    return -1;
}

static int pacs_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                      size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    pacs *p = instance;
    PGresult *res = NULL;
    char msg[512];
    int rc;

    if (entity != 0) {
        host->error_set(err, "could not fetch entity %zu: pacs has only property", entity);
        return TFS_SDK_EPERMANENT;
    }
    /* Both arrays in one buffer: "{ids}\0{years}". */
    size_t len = 0, n_valid = 0;
    if (pacs_buf_put(p, &len, "{", 1) != 0)
        goto oom;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && (pacs_buf_put(p, &len, "\0{", 2) != 0))
            goto oom;
        n_valid = 0;
        for (size_t i = 0; i < n_keys; i++) {
            int64_t id, yr;
            /* A key with a null or non-integer part cannot exist in PACS. */
            if (!keys[i] || pacs_key_int(keys[i], 0, &id) != 0 ||
                pacs_key_int(keys[i], 1, &yr) != 0)
                continue;
            char num[32];
            int n = snprintf(num, sizeof num, "%s%" PRId64, n_valid ? "," : "",
                             pass == 0 ? id : yr);
            if (pacs_buf_put(p, &len, num, (size_t)n) != 0)
                goto oom;
            n_valid++;
        }
        if (pacs_buf_put(p, &len, "}", 1) != 0)
            goto oom;
    }
    if (n_valid == 0)
        return 0;
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;

    const char *params[] = {p->buf, p->buf + strlen(p->buf) + 1};
    res = PQexecPrepared(p->conn, FETCH_STMT, 2, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_classify(p->conn, res);
        host->error_set(err, "could not fetch property: %s",
                        pg_message(p->conn, res, msg, sizeof msg));
        goto out;
    }
    rc = pg_add_rows(&pacs_entities[0], res, out, err);
out:
    PQclear(res);
    return rc;
oom:
    host->error_set(err, "could not fetch property: out of memory");
    return TFS_SDK_ETRANSIENT;
}

static int pacs_health(void *instance, tfs_sdk_error *err)
{
    pacs *p = instance;
    char msg[512];
    int rc = pacs_ensure(p, err);
    if (rc)
        return rc;
    PGresult *res = PQexec(p->conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_classify(p->conn, res);
        host->error_set(err, "could not check the pacs database: %s",
                        pg_message(p->conn, res, msg, sizeof msg));
    }
    PQclear(res);
    return rc;
}

static const tfs_sdk_plugin pacs_plugin = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "pacs",
    .version = "0.1.0",
    .description = "PACS appraisal database (PostgreSQL): properties with values, situs and "
                   "exemptions for the roll year",
    .capabilities = TFS_SDK_CAP_SOURCE,
    .config_keys = pacs_config,
    .n_config_keys = sizeof pacs_config / sizeof pacs_config[0],
    .cb_open = pacs_open,
    .cb_close = pacs_close,
    .cb_describe = pacs_describe,
    .cb_read = pacs_read,
    .cb_fetch = pacs_fetch,
    .cb_write = NULL,
    .cb_health = pacs_health,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    /* Every host function used here is in SDK 1.0, so a 1.x host table has them all. */
    if (!h || h->sdk_major != TFS_SDK_VERSION_MAJOR || h->struct_size < sizeof(tfs_sdk_host))
        return NULL;
    host = h;
    return &pacs_plugin;
}
