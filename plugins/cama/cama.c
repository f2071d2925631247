/* plugins/cama/cama.c — target adapter for the CAMA mass-appraisal database (PostgreSQL,
 * iasWorld-flavoured tables).
 *
 * Writes parcels (pardat), assessments (asmt) and owners (owndat), keyed by (parid, taxyr),
 * and sales, keyed by (parid, instruno), one transaction per cb_write. The fast path COPYs each entity's operations into a per-connection temp
 * table and applies them with one DELETE ... USING and one INSERT ... ON CONFLICT DO
 * UPDATE per entity (the last operation of a key in the batch wins). An entity whose
 * operations are all inserts (SDK 1.5, TFS_SDK_OP_INSERT: keys the host never wrote here)
 * is COPYed straight into its table under a savepoint instead, and goes the upsert's way
 * when a row is there after all (a unique violation). When that fails on
 * data (a length, type, NOT NULL or CHECK violation), the batch is rolled back to a
 * savepoint and redone one operation at a time, each under its own savepoint, so that only
 * the bad operations fail and the rest commit. The bookkeeping fields wen and who are set
 * here on every write (now(), the configured who), never taken from the record; an upsert
 * that changes nothing leaves the row, wen included, as it was. Also fetches current rows
 * by key, reads full (keyset on the key) and answers health checks. Each instance owns
 * one libpq connection and reconnects with PQreset on the first call after losing it.
 * Every statement is parameterised; identifiers come only from the fixed tables below.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tfsync_plugin.h"

#include "pg_plugin.h"

/* Full-read cursor, format 1: "c1:<second key>:<parid>", the second key (taxyr, or sales'
 * instruno) with '%' and ':' percent-encoded so that the first colon ends it. */
#define CAMA_CURSOR_PREFIX "c1:"
#define CAMA_KEY_MAX 256 /* longest key value a cursor carries, in bytes */
#define CAMA_WHO_MAX 30
#define CAMA_COPY_CHUNK 65536

/* Per field: the cast that turns the text of a value into the column's type ("" for text
 * columns, whose length the assignment checks) and the column default taken for a null
 * (NULL: a null stays null). */
typedef struct cama_col {
    const char *cast;
    const char *dflt;
} cama_col;

typedef struct cama_table {
    const tfs_sdk_entity *entity;
    const cama_col *cols;
} cama_table;

/* The statements of one entity, built at open from the tables below. */
typedef struct cama_sql {
    char *create_tmp;  /* the temp table the fast path COPYs into */
    char *copy;        /* COPY ... FROM STDIN into it */
    char *copy_insert; /* COPY ... FROM STDIN into the table itself (SDK 1.5 inserts) */
    char *apply_del;   /* deletes whose last operation in the batch is a delete */
    char *apply_ups;   /* upserts whose last operation is an upsert; $1 who */
    char *one_ups;     /* one upsert: $1..$n the data fields, $n+1 who */
    char *one_del;     /* one delete by key */
    char *fetch;       /* by key arrays */
    char *read_first;  /* $1 limit */
    char *read_after;  /* $1 parid, $2 second key (taxyr, instruno), $3 limit */
} cama_sql;

typedef struct cama {
    PGconn *conn;   /* NULL until the first call that needs the database (lazy open) */
    char *conninfo; /* what that call connects with */
    pgp_timeouts timeouts;
    char who[CAMA_WHO_MAX + 1];
    int session_ready; /* session settings applied, temp tables made, statements prepared */
    int up;            /* the last call found the connection working: log its loss once */
    cama_sql sql[4]; /* per entity, in cama_entities order */
    char *buf; /* scratch (COPY data, key arrays), kept across calls */
    size_t buf_len, buf_cap;
    int buf_oom;
    unsigned char *skip; /* per operation of a write: refused before SQL */
    size_t skip_cap;
} cama;

/* The host table: set once by tfs_sdk_entry, lives as long as the process. */
static const tfs_sdk_host *host;

static const tfs_sdk_config_key cama_config[] = {
    {"conninfo", TFS_SDK_CONFIG_STRING, NULL,
     "libpq connection string or URI of the CAMA database"},
    {"who", TFS_SDK_CONFIG_STRING, "tfsync",
     "the user name written into the who column of every row written (at most 30 characters)"},
    {"connect_timeout", TFS_SDK_CONFIG_INT, "5",
     "seconds a connection attempt to the CAMA database may take before it fails as "
     "transient (1 to 3600)"},
    {"statement_timeout", TFS_SDK_CONFIG_INT, "0",
     "milliseconds one statement may run before the server cancels it (SQLSTATE 57014, "
     "transient: the batch is retried); 0: no limit"},
};

#define KEYT(n) TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, (n), 0, 0
#define KEYI TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0
#define INT TFS_SDK_INT64, 0, 0, 0, 0
#define TXT(n) TFS_SDK_TEXT, 0, (n), 0, 0
#define DEC(p, s) TFS_SDK_DECIMAL, 0, 0, (p), (s)
#define DATE TFS_SDK_DATE, 0, 0, 0, 0
#define WEN TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0
#define WHO TFS_SDK_TEXT, TFS_SDK_FIELD_BOOKKEEPING, 30, 0, 0

/* The field orders are a contract with the transforms: never reorder, only append. */
static const tfs_sdk_field pardat_fields[] = {
    {"parid", KEYT(30)},   {"taxyr", KEYI},         {"seq", INT},
    {"cur", TXT(1)},       {"class", TXT(5)},       {"luc", TXT(10)},
    {"nbhd", TXT(10)},     {"acres", DEC(12, 4)},   {"adrno", INT},
    {"adradd", TXT(10)},   {"adrdir", TXT(2)},      {"adrstr", TXT(50)},
    {"adrsuf", TXT(8)},    {"unitno", TXT(10)},     {"cityname", TXT(40)},
    {"statecode", TXT(2)}, {"postalcode", TXT(10)}, {"zoning", TXT(10)},
    {"deactivat", DATE},   {"wen", WEN},            {"who", WHO},
};
static const cama_col pardat_cols[] = {
    {"", NULL},       {"::integer", NULL}, {"::integer", "0"}, {"", "'Y'"}, {"", NULL},
    {"", NULL},       {"", NULL},          {"::numeric", NULL}, {"::bigint", NULL},
    {"", NULL},       {"", NULL},          {"", NULL},         {"", NULL},   {"", NULL},
    {"", NULL},       {"", NULL},          {"", NULL},         {"", NULL},   {"::date", NULL},
    {NULL, NULL},     {NULL, NULL},
};

static const tfs_sdk_field asmt_fields[] = {
    {"parid", KEYT(30)},     {"taxyr", KEYI},         {"seq", INT},
    {"cur", TXT(1)},         {"valclass", TXT(5)},    {"valapr1", DEC(14, 0)},
    {"valapr2", DEC(14, 0)}, {"valapr3", DEC(14, 0)}, {"valasm1", DEC(14, 0)},
    {"valasm2", DEC(14, 0)}, {"valasm3", DEC(14, 0)}, {"deactivat", DATE},
    {"wen", WEN},            {"who", WHO},
};
static const cama_col asmt_cols[] = {
    {"", NULL},          {"::integer", NULL}, {"::integer", "0"}, {"", "'Y'"},
    {"", NULL},          {"::numeric", NULL}, {"::numeric", NULL}, {"::numeric", NULL},
    {"::numeric", NULL}, {"::numeric", NULL}, {"::numeric", NULL}, {"::date", NULL},
    {NULL, NULL},        {NULL, NULL},
};

static const tfs_sdk_field owndat_fields[] = {
    {"parid", KEYT(30)},   {"taxyr", KEYI},         {"seq", INT},
    {"cur", TXT(1)},       {"own1", TXT(60)},       {"own2", TXT(60)},
    {"addr1", TXT(60)},    {"addr2", TXT(60)},      {"cityname", TXT(40)},
    {"statecode", TXT(2)}, {"zip1", TXT(10)},       {"pctown", DEC(13, 10)},
    {"deactivat", DATE},   {"wen", WEN},            {"who", WHO},
};
static const cama_col owndat_cols[] = {
    {"", NULL}, {"::integer", NULL}, {"::integer", "0"}, {"", "'Y'"}, {"", NULL},
    {"", NULL}, {"", NULL},          {"", NULL},         {"", NULL},   {"", NULL},
    {"", NULL}, {"::numeric", NULL}, {"::date", NULL},   {NULL, NULL}, {NULL, NULL},
};

/* One row per sale and parcel: keyed by (parid, instruno), the deed instrument number. */
static const tfs_sdk_field sales_fields[] = {
    {"parid", KEYT(30)},    {"instruno", KEYT(20)}, {"saledt", DATE},
    {"price", DEC(14, 0)},  {"saletype", TXT(5)},   {"own1", TXT(60)},
    {"oldown", TXT(60)},    {"deactivat", DATE},    {"wen", WEN},
    {"who", WHO},
};
static const cama_col sales_cols[] = {
    {"", NULL}, {"", NULL}, {"::date", NULL}, {"::numeric", NULL}, {"", NULL},
    {"", NULL}, {"", NULL}, {"::date", NULL}, {NULL, NULL},        {NULL, NULL},
};

#undef KEYT
#undef KEYI
#undef INT
#undef TXT
#undef DEC
#undef DATE
#undef WEN
#undef WHO

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Every entity's key is its first two fields: parid, then taxyr or instruno. */
static const tfs_sdk_entity cama_entities[] = {
    {"pardat", pardat_fields, N_OF(pardat_fields)},
    {"asmt", asmt_fields, N_OF(asmt_fields)},
    {"owndat", owndat_fields, N_OF(owndat_fields)},
    {"sales", sales_fields, N_OF(sales_fields)},
};

static const cama_table cama_tables[] = {
    {&cama_entities[0], pardat_cols},
    {&cama_entities[1], asmt_cols},
    {&cama_entities[2], owndat_cols},
    {&cama_entities[3], sales_cols},
};

#define N_ENTITIES N_OF(cama_entities)

_Static_assert(N_ENTITIES == N_OF(cama_tables), "one table per entity");
_Static_assert(N_ENTITIES == sizeof(((cama *)0)->sql) / sizeof(cama_sql),
               "one statement set per entity");

/* ---- libpq helpers (the same in plugins/pacs/pacs.c) ----------------------------------- */

/* A failure caused by the data of one row (so worth retrying row by row): data exception
 * (class 22), integrity violation (23), cardinality (21), program limit (54, e.g. an index
 * row too large). */
static int pg_is_data_error(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
                     strncmp(state, "21", 2) == 0 || strncmp(state, "54", 2) == 0);
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

/* ---- the scratch buffer ---------------------------------------------------------------- */

static void buf_reset(cama *c)
{
    c->buf_len = 0;
    c->buf_oom = 0;
    if (c->buf)
        c->buf[0] = '\0';
}

static void buf_put(cama *c, const char *s, size_t n)
{
    if (c->buf_oom)
        return;
    if (c->buf_len + n + 1 > c->buf_cap) {
        size_t cap = c->buf_cap ? c->buf_cap : 8192;
        while (cap < c->buf_len + n + 1)
            cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) {
            c->buf_oom = 1;
            return;
        }
        c->buf = b;
        c->buf_cap = cap;
    }
    memcpy(c->buf + c->buf_len, s, n);
    c->buf_len += n;
    c->buf[c->buf_len] = '\0';
}

/* ---- SQL text, built once at open ------------------------------------------------------ */

typedef struct sb {
    char *s;
    size_t len, cap;
    int oom;
} sb;

static void sb_printf(sb *b, const char *fmt, ...) TFS_SDK_PRINTF(2, 3);
static void sb_printf(sb *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* The built string (owned), or NULL when out of memory. */
static char *sb_take(sb *b)
{
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    char *s = b->s;
    *b = (sb){0};
    return s;
}

static int is_data_field(const tfs_sdk_field *f)
{
    return !(f->flags & TFS_SDK_FIELD_BOOKKEEPING);
}

/* "<alias>.<field><cast>", with the column default for a null when it has one. */
static void sb_value(sb *b, const cama_table *t, size_t f, const char *alias)
{
    const cama_col *col = &t->cols[f];
    const char *name = t->entity->fields[f].name;
    if (col->dflt)
        sb_printf(b, "coalesce(%s\"%s\"%s, %s)", alias, name, col->cast, col->dflt);
    else
        sb_printf(b, "%s\"%s\"%s", alias, name, col->cast);
}

/* The key condition "t.k1 = <a>k1<cast> AND ..." joining the table to alias. */
static void sb_key_match(sb *b, const cama_table *t, const char *alias, int params)
{
    int first = 1, p = 0;
    for (size_t f = 0; f < t->entity->n_fields; f++) {
        if (!(t->entity->fields[f].flags & TFS_SDK_FIELD_KEY))
            continue;
        const char *name = t->entity->fields[f].name;
        if (params)
            sb_printf(b, "%st.\"%s\" = $%d%s", first ? "" : " AND ", name, ++p,
                      t->cols[f].cast);
        else
            sb_printf(b, "%st.\"%s\" = %s\"%s\"%s", first ? "" : " AND ", name, alias, name,
                      t->cols[f].cast);
        first = 0;
    }
}

/* "k1, k2" or with a prefix. */
static void sb_keys(sb *b, const cama_table *t, const char *alias)
{
    int first = 1;
    for (size_t f = 0; f < t->entity->n_fields; f++)
        if (t->entity->fields[f].flags & TFS_SDK_FIELD_KEY) {
            sb_printf(b, "%s%s\"%s\"", first ? "" : ", ", alias, t->entity->fields[f].name);
            first = 0;
        }
}

/* "INSERT INTO t AS t (...) " and, after the values, the ON CONFLICT clause that updates
 * every non-key field but only when something changed. */
static void sb_insert_head(sb *b, const cama_table *t)
{
    const tfs_sdk_entity *e = t->entity;
    sb_printf(b, "INSERT INTO \"%s\" AS t (", e->name);
    for (size_t f = 0; f < e->n_fields; f++)
        sb_printf(b, "%s\"%s\"", f ? ", " : "", e->fields[f].name);
    sb_printf(b, ") ");
}

static void sb_on_conflict(sb *b, const cama_table *t)
{
    const tfs_sdk_entity *e = t->entity;
    sb_printf(b, " ON CONFLICT (");
    sb_keys(b, t, "");
    sb_printf(b, ") DO UPDATE SET ");
    int first = 1;
    for (size_t f = 0; f < e->n_fields; f++)
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY)) {
            sb_printf(b, "%s\"%s\" = EXCLUDED.\"%s\"", first ? "" : ", ", e->fields[f].name,
                      e->fields[f].name);
            first = 0;
        }
    sb_printf(b, " WHERE (");
    first = 1;
    for (size_t f = 0; f < e->n_fields; f++)
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY) && is_data_field(&e->fields[f])) {
            sb_printf(b, "%st.\"%s\"", first ? "" : ", ", e->fields[f].name);
            first = 0;
        }
    sb_printf(b, ") IS DISTINCT FROM (");
    first = 1;
    for (size_t f = 0; f < e->n_fields; f++)
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY) && is_data_field(&e->fields[f])) {
            sb_printf(b, "%sEXCLUDED.\"%s\"", first ? "" : ", ", e->fields[f].name);
            first = 0;
        }
    sb_printf(b, ")");
}

/* The value a bookkeeping field gets on write. */
static const char *bookkeeping_value(const tfs_sdk_field *f, const char *who_param)
{
    return strcmp(f->name, "wen") == 0 ? "now()" : who_param;
}

static void sb_select_all(sb *b, const cama_table *t)
{
    const tfs_sdk_entity *e = t->entity;
    sb_printf(b, "SELECT ");
    for (size_t f = 0; f < e->n_fields; f++)
        sb_printf(b, "%st.\"%s\"", f ? ", " : "", e->fields[f].name);
    sb_printf(b, " FROM \"%s\" t", e->name);
}

static void cama_sql_free(cama_sql *q)
{
    free(q->create_tmp);
    free(q->copy);
    free(q->copy_insert);
    free(q->apply_del);
    free(q->apply_ups);
    free(q->one_ups);
    free(q->one_del);
    free(q->fetch);
    free(q->read_first);
    free(q->read_after);
}

static int cama_sql_build(cama_sql *q, const cama_table *t)
{
    const tfs_sdk_entity *e = t->entity;
    sb b = {0};

    /* Text columns: every value arrives as text and is cast on the way into the table, so
     * a bad value fails the INSERT, where the row-by-row retry can name it. */
    sb_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS tfs_cama_%s (_ord integer, _del boolean",
              e->name);
    for (size_t f = 0; f < e->n_fields; f++)
        if (is_data_field(&e->fields[f]))
            sb_printf(&b, ", \"%s\" text", e->fields[f].name);
    sb_printf(&b, ") ON COMMIT DELETE ROWS");
    q->create_tmp = sb_take(&b);

    sb_printf(&b, "COPY pg_temp.tfs_cama_%s (_ord, _del", e->name);
    for (size_t f = 0; f < e->n_fields; f++)
        if (is_data_field(&e->fields[f]))
            sb_printf(&b, ", \"%s\"", e->fields[f].name);
    sb_printf(&b, ") FROM STDIN");
    q->copy = sb_take(&b);

    /* New keys (TFS_SDK_OP_INSERT) go straight into the table, every described field. */
    sb_printf(&b, "COPY \"%s\" (", e->name);
    for (size_t f = 0; f < e->n_fields; f++)
        sb_printf(&b, "%s\"%s\"", f ? ", " : "", e->fields[f].name);
    sb_printf(&b, ") FROM STDIN");
    q->copy_insert = sb_take(&b);

    /* The last operation of each key in the batch decides. */
    sb_printf(&b, "DELETE FROM \"%s\" t USING (SELECT DISTINCT ON (", e->name);
    sb_keys(&b, t, "");
    sb_printf(&b, ") ");
    sb_keys(&b, t, "");
    sb_printf(&b, ", _del FROM pg_temp.tfs_cama_%s ORDER BY ", e->name);
    sb_keys(&b, t, "");
    sb_printf(&b, ", _ord DESC) l WHERE l._del AND ");
    sb_key_match(&b, t, "l.", 0);
    q->apply_del = sb_take(&b);

    sb_insert_head(&b, t);
    sb_printf(&b, "SELECT ");
    for (size_t f = 0; f < e->n_fields; f++) {
        if (f)
            sb_printf(&b, ", ");
        if (is_data_field(&e->fields[f]))
            sb_value(&b, t, f, "l.");
        else
            sb_printf(&b, "%s", bookkeeping_value(&e->fields[f], "$1"));
    }
    sb_printf(&b, " FROM (SELECT DISTINCT ON (");
    sb_keys(&b, t, "");
    sb_printf(&b, ") * FROM pg_temp.tfs_cama_%s ORDER BY ", e->name);
    sb_keys(&b, t, "");
    sb_printf(&b, ", _ord DESC) l WHERE NOT l._del");
    sb_on_conflict(&b, t);
    q->apply_ups = sb_take(&b);

    sb_insert_head(&b, t);
    sb_printf(&b, "SELECT ");
    int p = 0;
    char who_param[16];
    for (size_t f = 0; f < e->n_fields; f++)
        if (is_data_field(&e->fields[f]))
            p++;
    snprintf(who_param, sizeof who_param, "$%d", p + 1);
    p = 0;
    for (size_t f = 0; f < e->n_fields; f++) {
        if (f)
            sb_printf(&b, ", ");
        if (!is_data_field(&e->fields[f])) {
            sb_printf(&b, "%s", bookkeeping_value(&e->fields[f], who_param));
            continue;
        }
        p++;
        if (t->cols[f].dflt)
            sb_printf(&b, "coalesce($%d::text%s, %s)", p, t->cols[f].cast, t->cols[f].dflt);
        else
            sb_printf(&b, "$%d::text%s", p, t->cols[f].cast);
    }
    sb_on_conflict(&b, t);
    q->one_ups = sb_take(&b);

    sb_printf(&b, "DELETE FROM \"%s\" t WHERE ", e->name);
    sb_key_match(&b, t, NULL, 1);
    q->one_del = sb_take(&b);

    /* Fetch: one array parameter per key field, pairwise. */
    sb_select_all(&b, t);
    sb_printf(&b, " JOIN (SELECT DISTINCT * FROM unnest(");
    p = 0;
    for (size_t f = 0; f < e->n_fields; f++)
        if (e->fields[f].flags & TFS_SDK_FIELD_KEY) {
            sb_printf(&b, "%s$%d::%s[]", p ? ", " : "", p + 1,
                      e->fields[f].type == TFS_SDK_INT64 ? "int8" : "text");
            p++;
        }
    sb_printf(&b, ") AS k(");
    sb_keys(&b, t, "");
    sb_printf(&b, ")) k ON ");
    sb_key_match(&b, t, "k.", 0);
    sb_printf(&b, " ORDER BY ");
    sb_keys(&b, t, "t.");
    q->fetch = sb_take(&b);

    sb_select_all(&b, t);
    sb_printf(&b, " ORDER BY ");
    sb_keys(&b, t, "t.");
    sb_printf(&b, " LIMIT $1::int4");
    q->read_first = sb_take(&b);

    sb_select_all(&b, t);
    sb_printf(&b, " WHERE (");
    sb_keys(&b, t, "t.");
    sb_printf(&b, ") > ($1%s, $2%s) ORDER BY ", t->cols[0].cast, t->cols[1].cast);
    sb_keys(&b, t, "t.");
    sb_printf(&b, " LIMIT $3::int4");
    q->read_after = sb_take(&b);

    return q->create_tmp && q->copy && q->copy_insert && q->apply_del && q->apply_ups && q->one_ups &&
                   q->one_del && q->fetch && q->read_first && q->read_after
               ? 0
               : -1;
}

/* ---- connection ------------------------------------------------------------------------ */

/* Prepared statement names: tfs_cama_<entity>_<what>. */
static void stmt_name(char *out, size_t cap, size_t entity, const char *what)
{
    snprintf(out, cap, "tfs_cama_%s_%s", cama_entities[entity].name, what);
}

static int cama_session(cama *c, tfs_sdk_error *err)
{
    char msg[512];
    PGresult *res = NULL;
    int rc = 0;

    if (PQsetClientEncoding(c->conn, "UTF8") != 0) {
        host->error_set(err, "could not set the client encoding of cama: %s",
                        pgp_message(c->conn, NULL, msg, sizeof msg));
        rc = pgp_classify(c->conn, NULL);
        goto out;
    }
    res = PQexec(c->conn, "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601';"
                          " SET TimeZone = 'UTC'; SET extra_float_digits = 3");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    for (size_t e = 0; e < N_ENTITIES; e++) {
        const cama_sql *q = &c->sql[e];
        PQclear(res);
        res = PQexec(c->conn, q->create_tmp);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            goto fail;
        const struct {
            const char *what, *sql;
        } stmts[] = {
            {"apply_del", q->apply_del}, {"apply_ups", q->apply_ups},
            {"one_ups", q->one_ups},     {"one_del", q->one_del},
            {"fetch", q->fetch},         {"read_first", q->read_first},
            {"read_after", q->read_after},
        };
        for (size_t s = 0; s < N_OF(stmts); s++) {
            char name[64];
            stmt_name(name, sizeof name, e, stmts[s].what);
            PQclear(res);
            res = PQprepare(c->conn, name, stmts[s].sql, 0, NULL);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                goto fail;
        }
    }
    c->session_ready = 1;
    goto out;
fail:
    rc = pgp_classify(c->conn, res);
    host->error_set(err, "could not prepare the cama session: %s",
                    pgp_message(c->conn, res, msg, sizeof msg));
out:
    PQclear(res);
    return rc;
}

static int cama_check_tables(cama *c, tfs_sdk_error *err);

/* Makes sure the connection is up, set up and outside a transaction: connects at the first
 * call (lazy open) and reconnects after a lost connection. */
static int cama_ensure(cama *c, tfs_sdk_error *err)
{
    if (PQstatus(c->conn) != CONNECTION_OK && c->up)
        host->log(host, TFS_SDK_LOG_WARN, "lost the cama database, reconnecting");
    int re = pgp_ensure(&c->conn, c->conninfo, "tfsync-cama", &c->timeouts, host, "cama", err);
    if (re != 0) {
        c->up = 0;
        c->session_ready = 0;
        if (re < 0)
            return re;
    }
    if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    /* Missing tables are a bad config (permanent), said before preparing on them. */
    int rc = c->session_ready ? 0 : cama_check_tables(c, err);
    if (!rc && !c->session_ready)
        rc = cama_session(c, err);
    c->up = rc == 0;
    return rc;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static void cama_close(void *instance)
{
    cama *c = instance;
    if (!c)
        return;
    PQfinish(c->conn);
    free(c->conninfo);
    for (size_t e = 0; e < N_ENTITIES; e++)
        cama_sql_free(&c->sql[e]);
    free(c->buf);
    free(c->skip);
    free(c);
}

/* Checks that every described table exists, through the catalog only: opening must not
 * wait for locks a running writer holds on the tables themselves. */
static int cama_check_tables(cama *c, tfs_sdk_error *err)
{
    char msg[512];
    for (size_t e = 0; e < N_ENTITIES; e++) {
        const char *params[] = {cama_entities[e].name};
        PGresult *res = PQexecParams(c->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL,
                                     params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            int rc = pgp_classify(c->conn, res);
            host->error_set(err, "could not check the cama tables: %s",
                            pgp_message(c->conn, res, msg, sizeof msg));
            PQclear(res);
            return rc;
        }
        int exists = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!exists) {
            host->error_set(err, "could not use cama: table \"%s\" does not exist; load "
                            "plugins/cama/schema.sql into the database", cama_entities[e].name);
            return TFS_SDK_EPERMANENT;
        }
    }
    return 0;
}

/* The settings, checked without connecting (tfsyncd --check, and before every open). */
static int cama_check(const char *const *config, tfs_sdk_error *err)
{
    char path[192];
    int rc = pgp_check_settings(host, config, 0, 2, 3, err);
    if (rc)
        return rc;
    const char *who = config[1];
    if (!who || !*who || strlen(who) > CAMA_WHO_MAX) {
        host->error_set(err, "%s.who: \"%s\" must have 1 to %d characters",
                        pgp_settings_path(host, config, path, sizeof path), who ? who : "",
                        CAMA_WHO_MAX);
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}

/* Never connects (TFS_SDK_CAP_LAZY_OPEN): the first call that needs the database does and
 * checks the tables then, so a database that is down is an outage of that call
 * (transient), and --check can describe the schema offline. */
static int cama_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    char msg[512];
    *instance = NULL;
    int rc = cama_check(config, err);
    if (rc)
        return rc;
    cama *c = calloc(1, sizeof *c);
    if (!c || !(c->conninfo = strdup(config[0]))) {
        free(c);
        host->error_set(err, "could not open cama: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    rc = TFS_SDK_ETRANSIENT;
    if (pgp_timeouts_parse(config[2], config[3], &c->timeouts, msg, sizeof msg) != 0) {
        host->error_set(err, "could not open cama: %s", msg); /* cama_check refused it */
        rc = TFS_SDK_EPERMANENT;
        goto fail;
    }
    memcpy(c->who, config[1], strlen(config[1]) + 1);
    for (size_t e = 0; e < N_ENTITIES; e++)
        if (cama_sql_build(&c->sql[e], &cama_tables[e]) != 0) {
            host->error_set(err, "could not open cama: out of memory");
            goto fail;
        }
    *instance = c;
    return 0;
fail:
    cama_close(c);
    return rc;
}

static int cama_describe(void *instance, const tfs_sdk_entity **entities, size_t *n_entities,
                         tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *entities = cama_entities;
    *n_entities = N_ENTITIES;
    return 0;
}

/* The text of field f of rec (NULL for null), in tmp when it has to be formatted. */
static const char *value_text(const tfs_sdk_record *rec, size_t f, char *tmp, size_t cap,
                              size_t *len)
{
    const char *s = NULL;
    switch (host->rec_type(rec, f)) {
    case TFS_SDK_NULL:
        return NULL;
    case TFS_SDK_BOOL:
        s = host->rec_get_bool(rec, f) ? "true" : "false";
        break;
    case TFS_SDK_INT64:
        snprintf(tmp, cap, "%" PRId64, host->rec_get_int(rec, f));
        s = tmp;
        break;
    case TFS_SDK_FLOAT64:
        snprintf(tmp, cap, "%.17g", host->rec_get_float(rec, f));
        s = tmp;
        break;
    default:
        s = host->rec_get_text(rec, f, len);
        if (!s)
            return NULL;
        return s;
    }
    *len = strlen(s);
    return s;
}

/* "parid|taxyr" of a record, for messages. */
static const char *key_text(const tfs_sdk_entity *e, const tfs_sdk_record *rec, char *out,
                            size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t f = 0; f < e->n_fields && rec; f++) {
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY))
            continue;
        char tmp[40];
        size_t len = 0;
        const char *v = value_text(rec, f, tmp, sizeof tmp, &len);
        int w = snprintf(out + n, cap - n, "%s%.*s", n ? "|" : "", v ? (int)len : 2,
                         v ? v : "\\N");
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
    return out;
}

/* Appends one COPY text-format value: backslash, newline, carriage return and tab
 * escaped, \N for null. */
static void copy_value(cama *c, const char *s, size_t len)
{
    if (!s) {
        buf_put(c, "\\N", 2);
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: continue;
        }
        buf_put(c, s + start, i - start);
        buf_put(c, esc, 2);
        start = i + 1;
    }
    buf_put(c, s + start, len - start);
}

/* Sends the buffered COPY data when it is big enough (or always with force). */
static int copy_flush(cama *c, int force)
{
    if (c->buf_oom)
        return -1;
    if (!force && c->buf_len < CAMA_COPY_CHUNK)
        return 0;
    if (c->buf_len && PQputCopyData(c->conn, c->buf, (int)c->buf_len) != 1)
        return -1;
    buf_reset(c);
    return 0;
}

/* Reads the results of a command until none is left; returns the first failed one (owned)
 * or NULL when all succeeded. */
static PGresult *drain(PGconn *conn)
{
    PGresult *bad = NULL, *r;
    while ((r = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (!bad && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            bad = r;
        else
            PQclear(r);
    }
    return bad;
}

/* Runs a parameterless command; returns NULL on success or the failed result (owned; a
 * result with no status when libpq gave none). */
static PGresult *run(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        return NULL;
    }
    return r ? r : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

static PGresult *run_prepared(PGconn *conn, size_t entity, const char *what, int n,
                              const char *const *params)
{
    char name[64];
    stmt_name(name, sizeof name, entity, what);
    PGresult *r = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return NULL;
    }
    return r ? r : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

/* One operation's line of a COPY, without its newline, put into c's buffer; arg is the
 * caller's. */
typedef void copy_row_fn(cama *c, size_t entity, size_t i, const tfs_sdk_write_op *op,
                         void *arg);

/* Runs copy_sql (a COPY ... FROM STDIN) and sends the operations of entity not skipped, a
 * line each from row, flushed as the buffer fills; out of memory ends the COPY with an
 * error. Returns NULL or the failed result (owned). */
static PGresult *copy_ops(cama *c, const char *copy_sql, size_t entity,
                          const tfs_sdk_write_op *ops, size_t n_ops, copy_row_fn *row, void *arg)
{
    PGresult *r = PQexec(c->conn, copy_sql);
    if (!r || PQresultStatus(r) != PGRES_COPY_IN)
        return r ? r : PQmakeEmptyPGresult(c->conn, PGRES_FATAL_ERROR);
    PQclear(r);

    buf_reset(c);
    int failed = 0;
    for (size_t i = 0; i < n_ops && !failed; i++) {
        if (ops[i].entity != entity || c->skip[i])
            continue;
        row(c, entity, i, &ops[i], arg);
        buf_put(c, "\n", 1);
        failed = copy_flush(c, 0) != 0;
    }
    if (!failed)
        failed = copy_flush(c, 1) != 0;
    if (failed && c->buf_oom) {
        PQputCopyEnd(c->conn, "out of memory");
        PQclear(drain(c->conn));
        buf_reset(c);
        return PQmakeEmptyPGresult(c->conn, PGRES_FATAL_ERROR);
    }
    if (PQputCopyEnd(c->conn, NULL) != 1)
        return PQmakeEmptyPGresult(c->conn, PGRES_FATAL_ERROR);
    return drain(c->conn);
}

/* A temp-table line: the operation's index, whether it deletes (counted in *arg), and its
 * data fields (a delete's keys only). */
static void temp_row(cama *c, size_t entity, size_t i, const tfs_sdk_write_op *op, void *arg)
{
    const tfs_sdk_entity *e = &cama_entities[entity];
    char num[32];
    int del = op->kind == TFS_SDK_OP_DELETE;
    *(size_t *)arg += (size_t)del;
    int n = snprintf(num, sizeof num, "%zu\t%s", i, del ? "t" : "f");
    buf_put(c, num, (size_t)n);
    for (size_t f = 0; f < e->n_fields; f++) {
        if (!is_data_field(&e->fields[f]))
            continue;
        buf_put(c, "\t", 1);
        char tmp[40];
        size_t len = 0;
        const char *v = NULL;
        if (!del || (e->fields[f].flags & TFS_SDK_FIELD_KEY))
            v = value_text(op->record, f, tmp, sizeof tmp, &len);
        copy_value(c, v, len);
    }
}

/* The fast path for one entity: COPY its operations into the temp table, then apply the
 * deletes and the upserts. Returns NULL or the failed result (owned). */
static PGresult *write_entity_fast(cama *c, size_t entity, const tfs_sdk_write_op *ops,
                                   size_t n_ops)
{
    size_t n_del = 0;
    PGresult *r = copy_ops(c, c->sql[entity].copy, entity, ops, n_ops, temp_row, &n_del);
    if (r)
        return r;
    /* Most batches hold no delete: spare them the sort and join of the delete pass. */
    if (n_del && (r = run_prepared(c->conn, entity, "apply_del", 0, NULL)) != NULL)
        return r;
    const char *params[] = {c->who};
    return run_prepared(c->conn, entity, "apply_ups", 1, params);
}

/* The COPY text of a null of a field with a column default (what the upsert's coalesce
 * gives: "0", 'Y' without its quotes), or NULL when a null stays null. */
static const char *copy_default(const cama_col *col, size_t *len)
{
    const char *d = col->dflt;
    if (!d)
        return NULL;
    size_t n = strlen(d);
    if (n >= 2 && d[0] == '\'' && d[n - 1] == '\'') {
        *len = n - 2;
        return d + 1;
    }
    *len = n;
    return d;
}

/* A table line of an insert: every described field, a null with a column default as that
 * default, wen the transaction's now() (arg: its text, as the upsert's now() gives it) and
 * who the configured one. */
static void insert_row(cama *c, size_t entity, size_t i, const tfs_sdk_write_op *op, void *arg)
{
    (void)i;
    const cama_table *t = &cama_tables[entity];
    const tfs_sdk_entity *e = t->entity;
    const char *now = arg;
    for (size_t f = 0; f < e->n_fields; f++) {
        if (f)
            buf_put(c, "\t", 1);
        char tmp[40];
        size_t len = 0;
        const char *v;
        if (!is_data_field(&e->fields[f])) {
            v = strcmp(e->fields[f].name, "wen") == 0 ? now : c->who;
            len = strlen(v);
        } else if (!(v = value_text(op->record, f, tmp, sizeof tmp, &len))) {
            v = copy_default(&t->cols[f], &len);
        }
        copy_value(c, v, len);
    }
}

/* COPYs the operations of one entity straight into its table (insert_row's lines).
 * Returns NULL or the failed result (owned). */
static PGresult *copy_inserts(cama *c, size_t entity, const tfs_sdk_write_op *ops,
                              size_t n_ops, const char *now)
{
    return copy_ops(c, c->sql[entity].copy_insert, entity, ops, n_ops, insert_row, (void *)now);
}

/* SDK 1.5: an entity whose operations in this call are all inserts (keys the host never
 * wrote here) is COPYed into its table under a savepoint, as fast as PostgreSQL loads. A
 * row already there (SQLSTATE 23505: a replay after a crash between this commit and the
 * state store's, a row added by hand, a key twice in the call) rolls back to the
 * savepoint, and the operations go the upsert's way, where the last one of a key wins.
 * Any other failure is the caller's, as the upsert's would be. Returns NULL or the failed
 * result (owned). */
static PGresult *write_entity_insert(cama *c, size_t entity, const tfs_sdk_write_op *ops,
                                     size_t n_ops, const char *now)
{
    PGresult *r;
    if ((r = run(c->conn, "SAVEPOINT tfs_insert")) != NULL)
        return r;
    if (!(r = copy_inserts(c, entity, ops, n_ops, now)))
        return run(c->conn, "RELEASE SAVEPOINT tfs_insert");
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!state || strcmp(state, "23505") != 0 || PQstatus(c->conn) != CONNECTION_OK)
        return r;
    char msg[512];
    host->log(host, TFS_SDK_LOG_DEBUG,
              "%s: a row of the new keys is there already (%s), writing them as upserts",
              cama_entities[entity].name, pgp_message(c->conn, r, msg, sizeof msg));
    PQclear(r);
    if ((r = run(c->conn, "ROLLBACK TO SAVEPOINT tfs_insert")) != NULL ||
        (r = write_entity_fast(c, entity, ops, n_ops)) != NULL)
        return r;
    return run(c->conn, "RELEASE SAVEPOINT tfs_insert");
}

/* One operation on its own. Returns NULL or the failed result (owned). */
static PGresult *write_one(cama *c, const tfs_sdk_write_op *op)
{
    const tfs_sdk_entity *e = &cama_entities[op->entity];
    const char *params[32];
    char tmp[32][40];
    size_t n = 0;
    int del = op->kind == TFS_SDK_OP_DELETE;
    for (size_t f = 0; f < e->n_fields && n < 31; f++) {
        if (!is_data_field(&e->fields[f]) || (del && !(e->fields[f].flags & TFS_SDK_FIELD_KEY)))
            continue;
        size_t len = 0;
        /* Parameters are NUL-terminated: host text is, formatted values are. */
        params[n] = value_text(op->record, f, tmp[n], sizeof tmp[n], &len);
        n++;
    }
    if (!del)
        params[n++] = c->who;
    return run_prepared(c->conn, op->entity, del ? "one_del" : "one_ups", (int)n, params);
}

/* Finishes a failed write: rolls back what can be, sets the message, returns the status. */
static int write_failed(cama *c, PGresult *r, const char *what, tfs_sdk_error *err)
{
    char msg[512];
    int rc = pgp_classify(c->conn, r);
    host->error_set(err, "could not write to cama: %s: %s", what,
                    pgp_message(c->conn, r, msg, sizeof msg));
    PQclear(r);
    if (PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        PQclear(PQexec(c->conn, "ROLLBACK"));
    return rc;
}

static int cama_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                      tfs_sdk_results *results, tfs_sdk_error *err)
{
    cama *c = instance;
    PGresult *r = NULL;
    char msg[512], key[256];
    int rc;

    if (n_ops == 0)
        return 0;
    if (n_ops > c->skip_cap) {
        unsigned char *s = realloc(c->skip, n_ops);
        if (!s) {
            host->error_set(err, "could not write to cama: out of memory");
            return TFS_SDK_ETRANSIENT;
        }
        c->skip = s;
        c->skip_cap = n_ops;
    }
    /* Operations that cannot be written at all fail alone, before any SQL. */
    size_t per_entity[N_ENTITIES] = {0}, inserts[N_ENTITIES] = {0};
    for (size_t i = 0; i < n_ops; i++) {
        const tfs_sdk_write_op *op = &ops[i];
        c->skip[i] = 1;
        if (op->entity >= N_ENTITIES) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write operation %zu: cama has no entity %zu", i,
                             op->entity);
            continue;
        }
        const tfs_sdk_entity *e = &cama_entities[op->entity];
        if (!op->record || host->rec_n_fields(op->record) != e->n_fields) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: the record does not have its %zu fields",
                             e->name, e->n_fields);
            continue;
        }
        if (op->kind != TFS_SDK_OP_UPSERT && op->kind != TFS_SDK_OP_DELETE &&
            op->kind != TFS_SDK_OP_INSERT) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s %s: unknown operation %d", e->name,
                             key_text(e, op->record, key, sizeof key), (int)op->kind);
            continue;
        }
        size_t f;
        for (f = 0; f < e->n_fields; f++)
            if ((e->fields[f].flags & TFS_SDK_FIELD_KEY) &&
                host->rec_type(op->record, f) == TFS_SDK_NULL)
                break;
        if (f < e->n_fields) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s %s: key field %s is null", e->name,
                             key_text(e, op->record, key, sizeof key), e->fields[f].name);
            continue;
        }
        c->skip[i] = 0;
        per_entity[op->entity]++;
        inserts[op->entity] += op->kind == TFS_SDK_OP_INSERT;
    }

    if ((rc = cama_ensure(c, err)) != 0)
        return rc;
    if ((r = run(c->conn, "BEGIN")) != NULL)
        return write_failed(c, r, "begin", err);
    if ((r = run(c->conn, "SAVEPOINT tfs_batch")) != NULL)
        return write_failed(c, r, "savepoint", err);

    /* An entity whose operations are all inserts is COPYed into its table; one with any
     * other operation goes the upsert's way whole (an insert then counts as an upsert), so
     * that the last operation of a key still wins. */
    char now[64] = "";
    int any_insert = 0;
    for (size_t e = 0; e < N_ENTITIES; e++)
        any_insert |= per_entity[e] && inserts[e] == per_entity[e];
    if (any_insert) {
        /* wen of the inserted rows: the transaction's now(), as the upsert writes it. */
        PGresult *t = PQexec(c->conn, "SELECT now()");
        if (PQresultStatus(t) != PGRES_TUPLES_OK || PQntuples(t) != 1 ||
            PQgetlength(t, 0, 0) >= (int)sizeof now)
            return write_failed(c, t ? t : PQmakeEmptyPGresult(c->conn, PGRES_FATAL_ERROR),
                                "now", err);
        memcpy(now, PQgetvalue(t, 0, 0), (size_t)PQgetlength(t, 0, 0) + 1);
        PQclear(t);
    }
    for (size_t e = 0; e < N_ENTITIES && !r; e++)
        if (per_entity[e] && inserts[e] == per_entity[e])
            r = write_entity_insert(c, e, ops, n_ops, now);
        else if (per_entity[e])
            r = write_entity_fast(c, e, ops, n_ops);
    if (r) {
        if (!pg_is_data_error(r) || PQstatus(c->conn) != CONNECTION_OK)
            return write_failed(c, r, "batch", err);
        host->log(host, TFS_SDK_LOG_DEBUG,
                  "a batch of %zu operations failed on data (%s), writing them one by one",
                  n_ops, pgp_message(c->conn, r, msg, sizeof msg));
        PQclear(r);
        if ((r = run(c->conn, "ROLLBACK TO SAVEPOINT tfs_batch")) != NULL)
            return write_failed(c, r, "rollback to savepoint", err);
        /* Row by row, in operation order, each under its own savepoint. */
        for (size_t i = 0; i < n_ops; i++) {
            if (c->skip[i])
                continue;
            if ((r = run(c->conn, "SAVEPOINT tfs_op")) != NULL)
                return write_failed(c, r, "savepoint", err);
            if ((r = write_one(c, &ops[i])) == NULL) {
                if ((r = run(c->conn, "RELEASE SAVEPOINT tfs_op")) != NULL)
                    return write_failed(c, r, "release savepoint", err);
                continue;
            }
            if (pgp_classify(c->conn, r) == TFS_SDK_ETRANSIENT)
                return write_failed(c, r, "operation", err);
            const tfs_sdk_entity *e = &cama_entities[ops[i].entity];
            host->result_set(results, i, TFS_SDK_EPERMANENT, "could not write %s %s: %s",
                             e->name, key_text(e, ops[i].record, key, sizeof key),
                             pgp_message(c->conn, r, msg, sizeof msg));
            PQclear(r);
            if ((r = run(c->conn, "ROLLBACK TO SAVEPOINT tfs_op")) != NULL)
                return write_failed(c, r, "rollback to savepoint", err);
        }
    }
    if ((r = run(c->conn, "COMMIT")) != NULL)
        return write_failed(c, r, "commit", err);
    return 0;
}

/* Appends the array literal of key field f of the keys: {1,2} or {"a","b"}. */
static void key_array(cama *c, size_t f, const tfs_sdk_record *const *keys, size_t n_keys,
                      const unsigned char *ok)
{
    int first = 1;
    buf_put(c, "{", 1);
    for (size_t i = 0; i < n_keys; i++) {
        if (!ok[i])
            continue;
        char tmp[40];
        size_t len = 0;
        const char *v = value_text(keys[i], f, tmp, sizeof tmp, &len);
        if (!first)
            buf_put(c, ",", 1);
        first = 0;
        buf_put(c, "\"", 1);
        size_t start = 0;
        for (size_t j = 0; j < len; j++)
            if (v[j] == '"' || v[j] == '\\') {
                buf_put(c, v + start, j - start);
                buf_put(c, "\\", 1);
                start = j;
            }
        buf_put(c, v + start, len - start);
        buf_put(c, "\"", 1);
    }
    buf_put(c, "}", 2); /* with its NUL: the arrays lie one after the other */
}

static int cama_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                      size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    cama *c = instance;
    PGresult *res = NULL;
    char msg[512];
    int rc;

    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not fetch entity %zu: cama has no such entity", entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &cama_entities[entity];
    if (n_keys > c->skip_cap) {
        unsigned char *s = realloc(c->skip, n_keys);
        if (!s) {
            host->error_set(err, "could not fetch %s: out of memory", e->name);
            return TFS_SDK_ETRANSIENT;
        }
        c->skip = s;
        c->skip_cap = n_keys;
    }
    /* A key with a null part, or an integer part that is not one, cannot exist. */
    size_t n_ok = 0;
    for (size_t i = 0; i < n_keys; i++) {
        unsigned char ok = keys[i] && host->rec_n_fields(keys[i]) >= 2;
        for (size_t f = 0; ok && f < e->n_fields; f++) {
            if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY))
                continue;
            tfs_sdk_type t = host->rec_type(keys[i], f);
            if (t == TFS_SDK_NULL)
                ok = 0;
            else if (e->fields[f].type == TFS_SDK_INT64 && t != TFS_SDK_INT64) {
                const char *s = host->rec_get_text(keys[i], f, NULL);
                char *end = NULL;
                errno = 0;
                if (!s || (strtoll(s, &end, 10) == 0 && end == s) || errno || *end)
                    ok = 0;
            }
        }
        c->skip[i] = ok;
        n_ok += ok;
    }
    if (n_ok == 0)
        return 0;
    if ((rc = cama_ensure(c, err)) != 0)
        return rc;

    buf_reset(c);
    const char *params[8];
    size_t offsets[8], n_params = 0;
    for (size_t f = 0; f < e->n_fields && n_params < 8; f++)
        if (e->fields[f].flags & TFS_SDK_FIELD_KEY) {
            offsets[n_params++] = c->buf_len;
            key_array(c, f, keys, n_keys, c->skip);
        }
    if (c->buf_oom) {
        host->error_set(err, "could not fetch %s: out of memory", e->name);
        return TFS_SDK_ETRANSIENT;
    }
    for (size_t p = 0; p < n_params; p++)
        params[p] = c->buf + offsets[p];
    char name[64];
    stmt_name(name, sizeof name, entity, "fetch");
    res = PQexecPrepared(c->conn, name, (int)n_params, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pgp_classify(c->conn, res);
        host->error_set(err, "could not fetch %s: %s", e->name,
                        pgp_message(c->conn, res, msg, sizeof msg));
        goto out;
    }
    rc = pg_add_rows(e, res, out, err);
out:
    PQclear(res);
    return rc;
}

/* Appends s[0..len) to out (capacity cap, used *n) with '%' and ':' percent-encoded. */
static int cursor_encode(const char *s, size_t len, char *out, size_t cap, size_t *n)
{
    for (size_t i = 0; i < len; i++) {
        int esc = s[i] == '%' || s[i] == ':';
        if (*n + (esc ? 3 : 1) >= cap)
            return -1;
        if (esc) {
            snprintf(out + *n, cap - *n, "%%%02X", (unsigned char)s[i]);
            *n += 3;
        } else {
            out[(*n)++] = s[i];
        }
    }
    out[*n] = '\0';
    return 0;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decodes s[0..len) (percent-encoded) into out; -1 when malformed, empty or too long. */
static int cursor_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= len || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0)
                return -1;
            ch = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        }
        if (ch == '\0' || n + 1 >= cap)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* Full reads, keyset on the key (parid, then taxyr or instruno): "c1:<key 2>:<parid>". */
static int cama_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                     size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                     tfs_sdk_error *err)
{
    cama *c = instance;
    PGresult *res = NULL;
    char msg[512];
    int rc;

    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not read entity %zu: cama has no such entity", entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &cama_entities[entity];
    if (mode != TFS_SDK_READ_FULL) {
        host->error_set(err, "could not read %s: incremental reads are not supported yet",
                        e->name);
        return TFS_SDK_EPERMANENT;
    }
    char key2[CAMA_KEY_MAX + 1], parid[CAMA_KEY_MAX + 1], lim[16];
    const size_t plen = sizeof CAMA_CURSOR_PREFIX - 1;
    if (cursor_len > 0) {
        const char *cur = cursor;
        const char *colon = cursor_len > plen ? memchr(cur + plen, ':', cursor_len - plen) : NULL;
        size_t klen = colon ? (size_t)(colon - cur) - plen : 0;
        size_t pl = colon ? cursor_len - (size_t)(colon - cur) - 1 : 0;
        if (!colon || memcmp(cur, CAMA_CURSOR_PREFIX, plen) != 0 ||
            cursor_decode(cur + plen, klen, key2, sizeof key2) != 0 || pl >= sizeof parid ||
            memchr(colon + 1, '\0', pl)) {
            host->error_set(err, "could not read %s: malformed cursor (%zu bytes)", e->name,
                            cursor_len);
            return TFS_SDK_EPERMANENT;
        }
        memcpy(parid, colon + 1, pl);
        parid[pl] = '\0';
    }
    size_t limit = max_records > 0 && max_records < 100000 ? max_records : 100000;
    snprintf(lim, sizeof lim, "%zu", limit);
    if ((rc = cama_ensure(c, err)) != 0)
        return rc;

    char name[64];
    if (cursor_len > 0) {
        const char *params[] = {parid, key2, lim};
        stmt_name(name, sizeof name, entity, "read_after");
        res = PQexecPrepared(c->conn, name, 3, params, NULL, NULL, 0);
    } else {
        const char *params[] = {lim};
        stmt_name(name, sizeof name, entity, "read_first");
        res = PQexecPrepared(c->conn, name, 1, params, NULL, NULL, 0);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pgp_classify(c->conn, res);
        host->error_set(err, "could not read %s: %s", e->name,
                        pgp_message(c->conn, res, msg, sizeof msg));
        goto out;
    }
    if ((rc = pg_add_rows(e, res, out, err)) != 0)
        goto out;
    int rows = PQntuples(res);
    if (rows > 0) {
        char next[4 * CAMA_KEY_MAX + 8];
        size_t n = plen;
        memcpy(next, CAMA_CURSOR_PREFIX, plen);
        int bad = cursor_encode(PQgetvalue(res, rows - 1, 1),
                                (size_t)PQgetlength(res, rows - 1, 1), next, sizeof next, &n);
        if (!bad && n + 1 + (size_t)PQgetlength(res, rows - 1, 0) < sizeof next) {
            next[n++] = ':';
            memcpy(next + n, PQgetvalue(res, rows - 1, 0), (size_t)PQgetlength(res, rows - 1, 0));
            n += (size_t)PQgetlength(res, rows - 1, 0);
        } else {
            bad = 1;
        }
        if (bad || host->batch_set_cursor(out, next, n) != 0) {
            host->error_set(err, "could not set the %s cursor", e->name);
            rc = TFS_SDK_EPERMANENT;
            goto out;
        }
    }
    if ((size_t)rows < limit)
        host->batch_set_done(out);
out:
    PQclear(res);
    return rc;
}

static int cama_health(void *instance, tfs_sdk_error *err)
{
    cama *c = instance;
    char msg[512];
    int rc = 0;
    /* Only the connection, not the session: preparing statements takes locks on the
     * tables, and a health check must answer even while a writer holds them. */
    int re = pgp_ensure(&c->conn, c->conninfo, "tfsync-cama", &c->timeouts, host, "cama", err);
    if (re != 0) {
        c->session_ready = 0;
        if (re < 0)
            return re;
    }
    PGresult *res = PQexec(c->conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pgp_classify(c->conn, res);
        host->error_set(err, "could not check the cama database: %s",
                        pgp_message(c->conn, res, msg, sizeof msg));
    }
    PQclear(res);
    return rc;
}

static const tfs_sdk_plugin cama_plugin = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "cama",
    .version = "0.2.0",
    .description = "CAMA mass-appraisal database (PostgreSQL, iasWorld-flavoured): writes "
                   "parcels (pardat), assessments (asmt), owners (owndat) and sales",
    .capabilities =
        TFS_SDK_CAP_TARGET | TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_LAZY_OPEN | TFS_SDK_CAP_INSERT,
    .config_keys = cama_config,
    .n_config_keys = N_OF(cama_config),
    .cb_open = cama_open,
    .cb_close = cama_close,
    .cb_describe = cama_describe,
    .cb_read = cama_read,
    .cb_fetch = cama_fetch,
    .cb_write = cama_write,
    .cb_health = cama_health,
    .cb_check = cama_check,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    /* Built against SDK 1.3 (config_system names settings in errors); a host of an older
     * minor refuses this plugin anyway (its minor is newer). */
    if (!h || h->sdk_major != TFS_SDK_VERSION_MAJOR || !TFS_SDK_HOST_HAS(h, config_system))
        return NULL;
    host = h;
    return &cama_plugin;
}
