/* plugins/pacs/pacs.c — source adapter for the PACS appraisal database (PostgreSQL).
 *
 * Four source entities. property: a PACS property with its property_val row for the roll
 * year at the highest sup_num (a supplement is an update of the same record), its primary
 * situs address and the sorted list of its exemption codes for that year and supplement.
 * owner: the owners of the same property_val row (the first two by share, the first one's
 * mailing address, every owner's account id). sale: one record per sale and property it
 * conveyed, with the property's current first owner as the buyer. account: an account
 * that owns a property of the roll year, with its mailing address. Full reads are keyset-paginated, one parameterised
 * query per batch; fetch takes keys in one query over unnested arrays.
 *
 * Change reads follow PgQ: triggers (schema.sql) append (transaction id, table, key) to
 * change_log, and a read takes the rows committed between two transaction snapshots, the
 * previous one (from the cursor) and one taken when the window starts. A transaction that
 * began before a later one but committed after it is not visible in the window's end
 * snapshot, so the next window takes it: nothing is missed however commits interleave.
 * Each entity maps the rows of the tables behind it to its own keys (an account's rows to
 * every property the account owns), returns the affected keys in key order, paginated
 * within one window, each as its record now or as a deletion when it no longer exists
 * (or is retired, with retired_as_delete).
 *
 * Three target entities, each writing only what another system owns: parcel_gis (what
 * GIS computes about a parcel) into property_gis and bill_status (what the billing system
 * says of a bill) into property_bill_status, tables without a change-log trigger, so that
 * PACS's change reads never see them (docs/decisions.md, "GIS and PACS without
 * ping-pong"); account_mail (a mailing address a CRM clerk changed) into an account's
 * address row, under tfsync.origin = 'sync', which the trigger skips.
 *
 * Each instance owns one libpq connection, reconnects with PQreset on the first call after
 * losing it, and classifies errors as transient (connection, server shutdown,
 * serialization, deadlock, timeout) or permanent (everything else).
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

#define PACS_CURSOR_PREFIX "p1:" /* full reads, format 1: "p1:<last key>[:<last key 2>]" */
#define PACS_CHANGES_PREFIX "v1|" /* change reads, format 1: "v1|<prev>|<cur>|[<k1>[,<k2>]]" */
#define PACS_FETCH_SIZE_MAX 100000
#define PACS_SNAPSHOT_MAX 65536 /* longest pg_snapshot text accepted in a cursor */
#ifndef PACS_WINDOW_CHUNK
#define PACS_WINDOW_CHUNK 100000 /* keys of a change window read ahead at once */
#endif

/* Parameter type OIDs (pg_type), so that statements may leave some parameters unused and
 * snapshots are parsed once per execution, not once per row. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT4 23
#define OID_INT8_ARRAY 1016
#define OID_PG_SNAPSHOT 5038

/* Scratch text: one per instance per use, kept across calls. */
typedef struct pacs_buf {
    char *s;
    size_t len, cap;
} pacs_buf;

/* The keys of a change window, read ahead: mapping a window's log rows to keys costs the
 * same for one page as for all of them, so one query reads up to PACS_WINDOW_CHUNK keys
 * and the pages of the window take theirs from here. Only a cache: a page whose cursor it
 * does not cover (another instance read the previous page, a restart) reads the keys again
 * from the database, which gives the same keys. */
typedef struct pacs_window {
    char *prev, *cur;     /* the window's snapshots (owned); NULL: nothing cached */
    int64_t from1, from2; /* the cached keys are the window's first ones after this key */
    int64_t *k1, *k2;     /* in key order (k2 0 for a one-field keyset) */
    size_t n, cap;
    int complete; /* the window has no key after the last cached one */
} pacs_window;

typedef struct pacs {
    PGconn *conn;        /* NULL until the first call that needs the database (lazy open) */
    char *conninfo;      /* what that call connects with */
    pgp_timeouts timeouts;
    int fetch_size;
    int include_retired; /* retired_as_delete is false: retired properties are records */
    int session_ready;   /* session settings applied and statements prepared */
    int up;              /* the last call found the connection working: log its loss once */
    pacs_buf keys;       /* fetch key arrays, trim snapshot arrays */
    pacs_buf cursor;     /* the parsed copy of a change cursor */
    pacs_buf next;       /* the cursor being built */
    pacs_window windows[4]; /* per source entity */
} pacs;

/* A change cursor, parsed: pointers into pacs.cursor. */
typedef struct pacs_changes_pos {
    const char *prev;  /* the snapshot the window starts after */
    const char *cur;   /* the snapshot the window ends at */
    int in_window;     /* k1/k2 are the last key returned in (prev, cur] */
    int64_t k1, k2;
} pacs_changes_pos;

/* The host table: set once by tfs_sdk_entry, lives as long as the process. */
static const tfs_sdk_host *host;

static const tfs_sdk_config_key pacs_config[] = {
    {"conninfo", TFS_SDK_CONFIG_STRING, NULL,
     "libpq connection string or URI of the PACS database"},
    {"fetch_size", TFS_SDK_CONFIG_INT, "1000",
     "most rows one read query returns, an upper bound beside the host's max_records"},
    {"retired_as_delete", TFS_SDK_CONFIG_BOOL, "true",
     "a retired property (prop_inactive_dt set) is a deletion in change reads and left out "
     "of full reads; false: a record like any other"},
    {"connect_timeout", TFS_SDK_CONFIG_INT, "5",
     "seconds a connection attempt to the PACS database may take before it fails as "
     "transient (1 to 3600)"},
    {"statement_timeout", TFS_SDK_CONFIG_INT, "0",
     "milliseconds one statement may run before the server cancels it (SQLSTATE 57014, "
     "transient: the batch is retried); 0: no limit"},
};

#define KEY TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0
#define INT TFS_SDK_INT64, 0, 0, 0, 0
#define DEC(p, s) TFS_SDK_DECIMAL, 0, 0, (p), (s)
#define TXT TFS_SDK_TEXT, 0, 0, 0, 0
#define BOOL TFS_SDK_BOOL, 0, 0, 0, 0
#define DATE TFS_SDK_DATE, 0, 0, 0, 0
/* The orders are a contract with the transforms: never reorder, only append. */
static const tfs_sdk_field property_fields[] = {
    {"prop_id", KEY},
    {"prop_val_yr", KEY},
    {"sup_num", INT},
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
    {"prop_inactive_dt", DATE},
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

static const tfs_sdk_field owner_fields[] = {
    {"prop_id", KEY},
    {"prop_val_yr", KEY},
    {"sup_num", INT},
    {"geo_id", TXT},
    {"simple_geo_id", TXT},
    {"prop_inactive_dt", DATE},
    {"owner_count", INT},
    {"own1_id", INT},
    {"own1_name", TXT},
    {"own1_confidential", BOOL},
    {"own1_pct", DEC(13, 10)},
    {"own2_id", INT},
    {"own2_name", TXT},
    {"own2_confidential", BOOL},
    {"addr_line1", TXT},
    {"addr_line2", TXT},
    {"addr_city", TXT},
    {"addr_state", TXT},
    {"addr_zip", TXT},
    /* GIS maps only real property ('R'): pacs_owner_to_gis.lua skips the others. */
    {"prop_type_cd", TXT},
    /* Every owner's account id, largest share first: a contact's parcels in the CRM. */
    {"owner_ids", TFS_SDK_JSON, 0, 0, 0, 0},
};

/* An account that owns a property of the roll year (a live one, unless retired properties
 * are records): one CRM contact each, with its name, confidentiality and the mailing
 * address an owner record shows. */
static const tfs_sdk_field account_fields[] = {
    {"acct_id", KEY},
    {"file_as_name", TXT},
    {"confidential", BOOL},
    {"addr_line1", TXT},
    {"addr_line2", TXT},
    {"addr_city", TXT},
    {"addr_state", TXT},
    {"addr_zip", TXT},
};

static const tfs_sdk_field sale_fields[] = {
    {"chg_of_owner_id", KEY},
    {"prop_id", KEY},
    {"sl_price", DEC(14, 0)},
    {"sl_dt", DATE},
    {"sl_type_cd", TXT},
    {"confidential_sale", BOOL},
    {"simple_geo_id", TXT},
    {"geo_id", TXT},
    {"buyer_name", TXT},
    {"buyer_confidential", BOOL},
    {"seller_name", TXT},
};

/* The one entity PACS is a target of (pair gis-to-pacs): what GIS computes about a parcel,
 * kept in property_gis (schema.sql) by simple_geo_id = GIS PARCELID. Nothing PACS owns is
 * ever written through it. */
static const tfs_sdk_field parcel_gis_fields[] = {
    {"simple_geo_id", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 50, 0, 0},
    {"gis_acres", DEC(14, 4)},
    {"gis_centroid_lat", DEC(10, 7)},
    {"gis_centroid_lon", DEC(11, 7)},
    {"gis_srid", INT},
    {"gis_stated_area", TFS_SDK_TEXT, 0, 25, 0, 0},
};

/* The mailing address of an account (pair crm-to-pacs): written only into the account's
 * address row of type 'M', so that nothing else PACS owns is touched through it. */
static const tfs_sdk_field account_mail_fields[] = {
    {"acct_id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"addr_line1", TFS_SDK_TEXT, 0, 60, 0, 0},
    {"addr_line2", TFS_SDK_TEXT, 0, 60, 0, 0},
    {"addr_city", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"addr_state", TFS_SDK_TEXT, 0, 50, 0, 0},
    {"addr_zip", TFS_SDK_TEXT, 0, 10, 0, 0},
};

/* What the billing system (ERP) says about a tax bill (pair erp-to-pacs), kept in
 * property_bill_status (schema.sql) by bill_id, for a PACS property. Nothing PACS owns is
 * written through it. */
static const tfs_sdk_field bill_status_fields[] = {
    {"bill_id", TFS_SDK_TEXT, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 30, 0, 0},
    {"prop_id", TFS_SDK_INT64, TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"tax_year", TFS_SDK_INT64, TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    {"amount_due", DEC(14, 2)},
    {"amount_paid", DEC(14, 2)},
    {"payment_status", TFS_SDK_TEXT, 0, 12, 0, 0},
    {"erp_modified", DATE},
};
#undef KEY
#undef INT
#undef DEC
#undef TXT
#undef BOOL
#undef DATE

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The source entities first (every per-entity table below has one row per source
 * entity), then the target one. */
enum {
    ENT_PROPERTY,
    ENT_OWNER,
    ENT_SALE,
    ENT_ACCOUNT,
    N_SOURCE_ENTITIES,
    ENT_GIS = N_SOURCE_ENTITIES,
    ENT_BILL,
    ENT_ACCT_MAIL,
};

static const tfs_sdk_entity pacs_entities[] = {
    [ENT_PROPERTY] = {"property", property_fields, N_OF(property_fields)},
    [ENT_OWNER] = {"owner", owner_fields, N_OF(owner_fields)},
    [ENT_SALE] = {"sale", sale_fields, N_OF(sale_fields)},
    [ENT_ACCOUNT] = {"account", account_fields, N_OF(account_fields)},
    [ENT_GIS] = {"parcel_gis", parcel_gis_fields, N_OF(parcel_gis_fields)},
    [ENT_BILL] = {"bill_status", bill_status_fields, N_OF(bill_status_fields)},
    [ENT_ACCT_MAIL] = {"account_mail", account_mail_fields, N_OF(account_mail_fields)},
};

/* N_ENTITIES: the entities read (statements, change windows); N_DESCRIBED: all of them. */
#define N_ENTITIES ((size_t)N_SOURCE_ENTITIES)
#define N_DESCRIBED N_OF(pacs_entities)

_Static_assert(N_ENTITIES == sizeof(((pacs *)0)->windows) / sizeof(pacs_window),
               "one change window cache per entity");

/* ---- SQL ----------------------------------------------------------------------------------
 *
 * Per entity, five statements with fixed parameter lists (types declared, so an entity may
 * leave one unused):
 *   read     $1 roll year, $2/$3 last key (k1, k2), $4 most rows, $5 include retired
 *   fetch    $1/$2 key arrays (k1[], k2[]), $3 roll year, $4 include retired
 *   keys     $1 prev snapshot, $2 cur snapshot, $3/$4 last key, $5 most keys, $6 roll year
 *   records  $1/$2 key arrays (k1[], k2[]), $3 roll year, $4 include retired
 *   lag      $1 prev snapshot, $2 cur snapshot, $3/$4 last key, $5 roll year
 * The keys of property and owner are (prop_id, prop_val_yr); the keyset is prop_id alone
 * (k2 unused). The key of sale is (chg_of_owner_id, prop_id), both in the keyset.
 */

/* "Live" unless retired, when retirements count as deletions. */
#define LIVE(param) " (" param "::bool OR v.prop_inactive_dt IS NULL)"

/* The property_val row of the year at the highest sup_num. */
#define VAL_LATERAL(year)                                                                       \
    " CROSS JOIN LATERAL (SELECT pv.* FROM property_val pv"                                     \
    "   WHERE pv.prop_id = p.prop_id AND pv.prop_val_yr = " year                               \
    "   ORDER BY pv.sup_num DESC LIMIT 1) v"

/* property: the select list follows property_fields. s is the primary situs
 * (primary_situs = 'Y', else the lowest situs_id), x the exemption codes of that year and
 * supplement as a compact JSON array. */
#define PROP_SELECT                                                                             \
    "SELECT p.prop_id, v.prop_val_yr, v.sup_num, p.prop_type_cd, p.geo_id, p.simple_geo_id,"   \
    " p.state_cd, p.zoning, v.land_hstd_val, v.land_non_hstd_val, v.imprv_hstd_val,"           \
    " v.imprv_non_hstd_val, v.ag_use_val, v.market, v.appraised_val, v.assessed_val,"          \
    " v.legal_desc, v.legal_acreage, v.hood_cd, v.property_use_cd, v.prop_inactive_dt,"        \
    " s.situs_num, s.situs_street_prefx, s.situs_street, s.situs_street_sufix, s.situs_unit,"  \
    " s.situs_city, s.situs_state, s.situs_zip, x.exemptions"
#define PROP_LATERALS(year)                                                                     \
    VAL_LATERAL(year)                                                                           \
    " LEFT JOIN LATERAL (SELECT st.* FROM situs st WHERE st.prop_id = p.prop_id"               \
    "   ORDER BY coalesce(st.primary_situs = 'Y', false) DESC, st.situs_id LIMIT 1) s ON true" \
    " CROSS JOIN LATERAL (SELECT coalesce('[' || string_agg(to_json(d.c)::text, ','"           \
    "   ORDER BY d.c COLLATE \"C\") || ']', '[]') AS exemptions"                                \
    "   FROM (SELECT DISTINCT e.exmpt_type_cd AS c FROM property_exemption e"                  \
    "     WHERE e.prop_id = p.prop_id AND e.exmpt_tax_yr = v.prop_val_yr"                      \
    "       AND e.sup_num = v.sup_num) d) x"

/* owner: the select list follows owner_fields. os holds the owners of the property_val
 * row, first by the largest share, then by owner_id; a1/a2 are the accounts of the first
 * two, ma the first one's mailing address (primary first, then type 'M'). */
#define OWNER_SELECT                                                                            \
    "SELECT p.prop_id, v.prop_val_yr, v.sup_num, p.geo_id, p.simple_geo_id,"                   \
    " v.prop_inactive_dt, os.n, os.ids[1], a1.file_as_name, a1.confidential_flag = 'T',"       \
    " os.pcts[1], os.ids[2], a2.file_as_name, a2.confidential_flag = 'T', ma.addr_line1,"      \
    " ma.addr_line2, ma.addr_city, ma.addr_state, ma.addr_zip, p.prop_type_cd,"               \
    " array_to_json(os.ids)"
#define OWNER_LATERALS(year)                                                                    \
    VAL_LATERAL(year)                                                                           \
    " CROSS JOIN LATERAL (SELECT count(*) AS n,"                                                \
    "   array_agg(o.owner_id ORDER BY o.pct_ownership DESC, o.owner_id) AS ids,"               \
    "   array_agg(o.pct_ownership ORDER BY o.pct_ownership DESC, o.owner_id) AS pcts"          \
    "   FROM owner o WHERE o.prop_id = p.prop_id AND o.owner_tax_yr = v.prop_val_yr"           \
    "     AND o.sup_num = v.sup_num) os"                                                        \
    " LEFT JOIN account a1 ON a1.acct_id = os.ids[1]"                                          \
    " LEFT JOIN account a2 ON a2.acct_id = os.ids[2]"                                          \
    " LEFT JOIN LATERAL (SELECT ad.* FROM address ad WHERE ad.acct_id = os.ids[1]"             \
    "   ORDER BY ad.primary_addr = 'Y' DESC, ad.addr_type_cd = 'M' DESC, ad.addr_type_cd"      \
    "   LIMIT 1) ma ON true"

/* sale: the select list follows sale_fields; a is the association row. The buyer is the
 * property's current first owner (b); the demo PACS keeps no seller, so seller_name is
 * null. A sale exists while its property has a value row for the roll year. */
#define SALE_SELECT                                                                             \
    "SELECT a.chg_of_owner_id, a.prop_id, sl.sl_price, sl.sl_dt, sl.sl_type_cd,"                \
    " sl.confidential_sale = 'T', p.simple_geo_id, p.geo_id, b.file_as_name,"                  \
    " b.confidential_flag = 'T', NULL::text"
#define SALE_JOINS(year)                                                                        \
    " JOIN sale sl ON sl.chg_of_owner_id = a.chg_of_owner_id"                                  \
    " JOIN property p ON p.prop_id = a.prop_id" VAL_LATERAL(year)                              \
    " LEFT JOIN LATERAL (SELECT o.owner_id FROM owner o WHERE o.prop_id = p.prop_id"           \
    "   AND o.owner_tax_yr = v.prop_val_yr AND o.sup_num = v.sup_num"                          \
    "   ORDER BY o.pct_ownership DESC, o.owner_id LIMIT 1) o1 ON true"                        \
    " LEFT JOIN account b ON b.acct_id = o1.owner_id"

/* account: the select list follows account_fields; ma is the mailing address an owner
 * record shows (primary first, then type 'M'). An account is a record while it owns a
 * property of the roll year at the value row's highest sup_num (live, unless retired
 * properties are records). */
#define ACCT_SELECT                                                                             \
    "SELECT a.acct_id, a.file_as_name, a.confidential_flag = 'T', ma.addr_line1,"              \
    " ma.addr_line2, ma.addr_city, ma.addr_state, ma.addr_zip"
#define ACCT_JOINS                                                                              \
    " LEFT JOIN LATERAL (SELECT ad.* FROM address ad WHERE ad.acct_id = a.acct_id"              \
    "   ORDER BY ad.primary_addr = 'Y' DESC, ad.addr_type_cd = 'M' DESC, ad.addr_type_cd"      \
    "   LIMIT 1) ma ON true"
#define ACCT_OWNS(year, live)                                                                   \
    " EXISTS (SELECT 1 FROM owner o JOIN property p ON p.prop_id = o.prop_id" VAL_LATERAL(year) \
    "   WHERE o.owner_id = a.acct_id AND o.owner_tax_yr = v.prop_val_yr"                       \
    "     AND o.sup_num = v.sup_num AND" LIVE(live) ")"

/* Change log rows. In a window: committed after prev (not visible in it; the index finds
 * them from prev's xmin on) and visible in cur. Pending (lag): not visible in prev, with w
 * telling whether they are in the window (prev, cur]. Only the rows of the tables behind
 * the entity ("which"); an update logged as 'u' changed no column the owner and sale
 * records use (schema.sql). */
#define CL_COLS "c.tbl, c.prop_id, c.acct_id, c.chg_of_owner_id, c.at"
#define CL_AFTER_PREV                                                                           \
    " FROM change_log c WHERE c.txid >= pg_snapshot_xmin($1::pg_snapshot)"                      \
    " AND NOT pg_visible_in_snapshot(c.txid, $1::pg_snapshot)"
#define CL_WINDOW(which)                                                                        \
    "WITH cl AS (SELECT " CL_COLS ", true AS w" CL_AFTER_PREV                                   \
    " AND pg_visible_in_snapshot(c.txid, $2::pg_snapshot) AND " which ")"
#define CL_PENDING(which)                                                                       \
    "WITH cl AS (SELECT " CL_COLS ", pg_visible_in_snapshot(c.txid, $2::pg_snapshot) AS w"     \
    CL_AFTER_PREV " AND " which ")"

/* The rows mapped to the entity's keys (k1, k2) as km(k1, k2, w, at). Materialized, so
 * that the planner does not push the keyset condition down into the joins of the mapping
 * (a row comparison beside an equality on the same index column made each probe of
 * chg_of_owner_prop_assoc walk the index: seconds per page). */
#define PROP_ROWS "c.tbl IN ('property', 'property_val', 'situs', 'property_exemption')"
#define PROP_KEYS(year)                                                                         \
    ", km AS MATERIALIZED (SELECT cl.prop_id AS k1, NULL::int8 AS k2, cl.w, cl.at FROM cl"                   \
    " WHERE cl.prop_id IS NOT NULL)"
#define OWNER_ROWS                                                                              \
    "(c.tbl IN ('owner', 'address') OR (c.tbl IN ('property', 'property_val', 'account')"      \
    " AND c.op <> 'u'))"
#define OWNER_KEYS(year)                                                                        \
    ", km AS MATERIALIZED (SELECT cl.prop_id AS k1, NULL::int8 AS k2, cl.w, cl.at FROM cl"                   \
    " WHERE cl.prop_id IS NOT NULL"                                                             \
    " UNION ALL SELECT o.prop_id, NULL::int8, cl.w, cl.at FROM cl"                              \
    " JOIN owner o ON o.owner_id = cl.acct_id AND o.owner_tax_yr = " year                      \
    " WHERE cl.tbl IN ('account', 'address'))"
/* An account record changes with the account (name, confidentiality), its addresses, and
 * what it owns: an owner row (logged with its account, so a removed one is found too) or
 * a property's value row (its supplement or retirement) of a property it owns. */
#define ACCT_ROWS OWNER_ROWS
#define ACCT_KEYS(year)                                                                         \
    ", km AS MATERIALIZED (SELECT cl.acct_id AS k1, NULL::int8 AS k2, cl.w, cl.at FROM cl"     \
    " WHERE cl.acct_id IS NOT NULL"                                                             \
    " UNION ALL SELECT o.owner_id, NULL::int8, cl.w, cl.at FROM cl"                             \
    " JOIN owner o ON o.prop_id = cl.prop_id AND o.owner_tax_yr = " year                       \
    " WHERE cl.tbl IN ('property', 'property_val'))"
/* A sale record changes with the sale, its association, the property (geo ids, value row),
 * its owners and their accounts (the buyer's name). */
#define SALE_ROWS                                                                               \
    "(c.tbl IN ('sale', 'chg_of_owner_prop_assoc', 'owner') OR (c.tbl IN ('property',"          \
    " 'property_val', 'account') AND c.op <> 'u'))"
#define SALE_KEYS(year)                                                                         \
    ", km AS MATERIALIZED (SELECT cl.chg_of_owner_id AS k1, cl.prop_id AS k2, cl.w, cl.at FROM cl"           \
    " WHERE cl.tbl = 'chg_of_owner_prop_assoc'"                                                 \
    " UNION ALL SELECT a.chg_of_owner_id, a.prop_id, cl.w, cl.at FROM cl"                       \
    " JOIN chg_of_owner_prop_assoc a ON a.chg_of_owner_id = cl.chg_of_owner_id"                \
    " WHERE cl.tbl = 'sale'"                                                                    \
    " UNION ALL SELECT a.chg_of_owner_id, a.prop_id, cl.w, cl.at FROM cl"                       \
    " JOIN chg_of_owner_prop_assoc a ON a.prop_id = cl.prop_id"                                \
    " WHERE cl.tbl IN ('property', 'property_val', 'owner')"                                    \
    " UNION ALL SELECT a.chg_of_owner_id, a.prop_id, cl.w, cl.at FROM cl"                       \
    " JOIN owner o ON o.owner_id = cl.acct_id AND o.owner_tax_yr = " year                      \
    " JOIN chg_of_owner_prop_assoc a ON a.prop_id = o.prop_id WHERE cl.tbl = 'account')"

#define AFTER1 "km.k1 > $3::int8"
#define AFTER2 "(km.k1, km.k2) > ($3::int8, $4::int8)"

/* The distinct keys of a window after the last one, in key order. */
#define KEYS(cl, keys, after)                                                                   \
    cl keys " SELECT DISTINCT km.k1, km.k2 FROM km WHERE " after                               \
    " ORDER BY km.k1, km.k2 LIMIT $5::int4"

/* The records of keys, in the keys' order, all record columns null for a key that no
 * longer exists. */
#define RECORDS(record)                                                                         \
    "SELECT k.k1, k.k2, r.* FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY"              \
    " AS k(k1, k2, ord) LEFT JOIN LATERAL (" record ") r ON true ORDER BY k.ord"

/* The distinct keys still to read after a cursor, and the age of the oldest change. */
#define LAG(cl, keys, after)                                                                    \
    cl keys " SELECT count(*), coalesce(floor(extract(epoch FROM clock_timestamp() - min(q.at))" \
    " * 1000), 0)::int8 FROM (SELECT km.k1, km.k2, min(km.at) AS at FROM km"                    \
    " WHERE NOT km.w OR " after " GROUP BY km.k1, km.k2) q"

typedef struct pacs_sql {
    const char *read, *fetch, *keys, *records, *lag;
    int keyset; /* key fields in the keyset: 1 (prop_id) or 2 (chg_of_owner_id, prop_id) */
} pacs_sql;

static const pacs_sql pacs_sqls[] = {
    [ENT_PROPERTY] =
        {
            PROP_SELECT " FROM property p" PROP_LATERALS("$1::int4")
            " WHERE p.prop_id > $2::int8 AND" LIVE("$5") " ORDER BY p.prop_id LIMIT $4::int4",
            PROP_SELECT " FROM (SELECT DISTINCT k.prop_id, k.prop_val_yr"
            "   FROM unnest($1::int8[], $2::int8[]) AS k(prop_id, prop_val_yr)) k"
            " JOIN property p ON p.prop_id = k.prop_id" PROP_LATERALS("k.prop_val_yr")
            " WHERE" LIVE("$4") " ORDER BY p.prop_id, v.prop_val_yr",
            KEYS(CL_WINDOW(PROP_ROWS), PROP_KEYS("$6::int4"), AFTER1),
            RECORDS(PROP_SELECT " FROM property p" PROP_LATERALS("$3::int4")
                    " WHERE p.prop_id = k.k1 AND" LIVE("$4")),
            LAG(CL_PENDING(PROP_ROWS), PROP_KEYS("$5::int4"), AFTER1),
            1,
        },
    [ENT_OWNER] =
        {
            OWNER_SELECT " FROM property p" OWNER_LATERALS("$1::int4")
            " WHERE p.prop_id > $2::int8 AND" LIVE("$5") " ORDER BY p.prop_id LIMIT $4::int4",
            OWNER_SELECT " FROM (SELECT DISTINCT k.prop_id, k.prop_val_yr"
            "   FROM unnest($1::int8[], $2::int8[]) AS k(prop_id, prop_val_yr)) k"
            " JOIN property p ON p.prop_id = k.prop_id" OWNER_LATERALS("k.prop_val_yr")
            " WHERE" LIVE("$4") " ORDER BY p.prop_id, v.prop_val_yr",
            KEYS(CL_WINDOW(OWNER_ROWS), OWNER_KEYS("$6::int4"), AFTER1),
            RECORDS(OWNER_SELECT " FROM property p" OWNER_LATERALS("$3::int4")
                    " WHERE p.prop_id = k.k1 AND" LIVE("$4")),
            LAG(CL_PENDING(OWNER_ROWS), OWNER_KEYS("$5::int4"), AFTER1),
            1,
        },
    [ENT_SALE] =
        {
            SALE_SELECT " FROM chg_of_owner_prop_assoc a" SALE_JOINS("$1::int4")
            " WHERE (a.chg_of_owner_id, a.prop_id) > ($2::int8, $3::int8)"
            /* Redundant, so that a merge join with sale starts at the page, not at the
             * table's first row (which made reading all sales quadratic). */
            " AND sl.chg_of_owner_id >= $2::int8 AND" LIVE("$5")
            " ORDER BY a.chg_of_owner_id, a.prop_id LIMIT $4::int4",
            SALE_SELECT " FROM (SELECT DISTINCT k.k1, k.k2"
            "   FROM unnest($1::int8[], $2::int8[]) AS k(k1, k2)) k"
            " JOIN chg_of_owner_prop_assoc a ON a.chg_of_owner_id = k.k1 AND a.prop_id = k.k2"
            SALE_JOINS("$3::int4") " WHERE" LIVE("$4")
            " ORDER BY a.chg_of_owner_id, a.prop_id",
            KEYS(CL_WINDOW(SALE_ROWS), SALE_KEYS("$6::int4"), AFTER2),
            RECORDS(SALE_SELECT " FROM chg_of_owner_prop_assoc a" SALE_JOINS("$3::int4")
                    " WHERE a.chg_of_owner_id = k.k1 AND a.prop_id = k.k2 AND" LIVE("$4")),
            LAG(CL_PENDING(SALE_ROWS), SALE_KEYS("$5::int4"), AFTER2),
            2,
        },
    [ENT_ACCOUNT] =
        {
            ACCT_SELECT " FROM account a" ACCT_JOINS " WHERE a.acct_id > $2::int8 AND"
            ACCT_OWNS("$1::int4", "$5") " ORDER BY a.acct_id LIMIT $4::int4",
            ACCT_SELECT " FROM (SELECT DISTINCT unnest($1::int8[]) AS acct_id) k"
            " JOIN account a ON a.acct_id = k.acct_id" ACCT_JOINS " WHERE"
            ACCT_OWNS("$3::int4", "$4") " ORDER BY a.acct_id",
            KEYS(CL_WINDOW(ACCT_ROWS), ACCT_KEYS("$6::int4"), AFTER1),
            RECORDS(ACCT_SELECT " FROM account a" ACCT_JOINS " WHERE a.acct_id = k.k1 AND"
                    ACCT_OWNS("$3::int4", "$4")),
            LAG(CL_PENDING(ACCT_ROWS), ACCT_KEYS("$5::int4"), AFTER1),
            1,
        },
};

static const char snapshot_sql[] = "SELECT pg_current_snapshot()::text";
/* Every reader is past the changes of transactions below the xmin of its cursor's
 * previous snapshot: they are visible in it. $1 the snapshots, text[]. */
static const char trim_sql[] =
    "DELETE FROM change_log WHERE txid < (SELECT min(pg_snapshot_xmin(s::pg_snapshot))"
    " FROM unnest($1::text[]) AS s)";

static const Oid read_types[] = {OID_INT4, OID_INT8, OID_INT8, OID_INT4, OID_BOOL};
static const Oid fetch_types[] = {OID_INT8_ARRAY, OID_INT8_ARRAY, OID_INT4, OID_BOOL};
static const Oid keys_types[] = {OID_PG_SNAPSHOT, OID_PG_SNAPSHOT, OID_INT8, OID_INT8,
                                 OID_INT4, OID_INT4};
static const Oid lag_types[] = {OID_PG_SNAPSHOT, OID_PG_SNAPSHOT, OID_INT8, OID_INT8, OID_INT4};

/* Reads, fetches and the records of changed keys are prepared once per session: their plans
 * do not depend on the parameters. The change log queries (keys, lag) are planned at every
 * call instead (unnamed statements): how many log rows lie after a snapshot is only known
 * from the snapshot itself, and a generic plan guessing a third of the table would scan all
 * of it. */
enum { STMT_READ, STMT_FETCH, STMT_RECORDS, N_PREPARED, STMT_KEYS = N_PREPARED, STMT_LAG,
       N_STMTS };
static const char *const stmt_what[N_STMTS] = {"read", "fetch", "records", "keys", "lag"};

/* The text, parameter count and types of a statement of an entity. */
static void stmt_get(size_t entity, int what, const char **sql, int *n, const Oid **types)
{
    const pacs_sql *q = &pacs_sqls[entity];
    switch (what) {
    case STMT_READ:
        *sql = q->read, *n = (int)N_OF(read_types), *types = read_types;
        break;
    case STMT_FETCH:
        *sql = q->fetch, *n = (int)N_OF(fetch_types), *types = fetch_types;
        break;
    case STMT_RECORDS:
        *sql = q->records, *n = (int)N_OF(fetch_types), *types = fetch_types;
        break;
    case STMT_KEYS:
        *sql = q->keys, *n = (int)N_OF(keys_types), *types = keys_types;
        break;
    default:
        *sql = q->lag, *n = (int)N_OF(lag_types), *types = lag_types;
        break;
    }
}

/* Prepared statement names: tfs_pacs_<entity>_<what>. */
static void stmt_name(char *out, size_t cap, size_t entity, int what)
{
    snprintf(out, cap, "tfs_pacs_%s_%s", pacs_entities[entity].name, stmt_what[what]);
}

/* "; load plugins/pacs/schema.sql ..." when res failed on a missing table. */
static const char *missing_table_hint(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && strcmp(state, "42P01") == 0
               ? "; load plugins/pacs/schema.sql into the database (change capture needs its "
                 "change_log table and triggers)"
               : "";
}

/* ---- libpq helpers (the same in plugins/cama/cama.c) ----------------------------------- */

/* Parses a decimal int64 of exactly len bytes. */
static int parse_i64(const char *s, size_t len, int64_t *v)
{
    char text[24];
    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *v = (int64_t)x;
    return 0;
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
        int64_t v;
        if (parse_i64(val, (size_t)len, &v) != 0) {
            host->error_set(err, "could not read %s: \"%s\" is not an integer", field->name,
                            val);
            return TFS_SDK_EPERMANENT;
        }
        rc = host->rec_set_int(rec, f, v);
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

/* Adds row r of res, from column col0 on, to out as a record of entity. */
static int pg_add_row(const tfs_sdk_entity *entity, const PGresult *res, int r, int col0,
                      tfs_sdk_batch *out, tfs_sdk_error *err)
{
    tfs_sdk_record *rec = host->batch_add(out);
    if (!rec) {
        host->error_set(err, "could not add a %s record: out of memory", entity->name);
        return TFS_SDK_ETRANSIENT;
    }
    for (size_t f = 0; f < entity->n_fields; f++) {
        int rc = pg_set_field(rec, &entity->fields[f], f, res, r, col0 + (int)f, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Checks that res has the entity's columns after col0 others. */
static int pg_check_columns(const tfs_sdk_entity *entity, const PGresult *res, int col0,
                            tfs_sdk_error *err)
{
    if ((size_t)PQnfields(res) == entity->n_fields + (size_t)col0)
        return 0;
    host->error_set(err, "could not read %s: the query returned %d columns, not %zu",
                    entity->name, PQnfields(res), entity->n_fields + (size_t)col0);
    return TFS_SDK_EPERMANENT;
}

/* Adds every row of res to out as records of entity. */
static int pg_add_rows(const tfs_sdk_entity *entity, const PGresult *res, tfs_sdk_batch *out,
                       tfs_sdk_error *err)
{
    int rc = pg_check_columns(entity, res, 0, err);
    for (int r = 0; r < PQntuples(res) && !rc; r++)
        rc = pg_add_row(entity, res, r, 0, out, err);
    return rc;
}

/* ---- scratch text ---------------------------------------------------------------------- */

static int buf_put(pacs_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t)
            return -1;
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

static int buf_printf(pacs_buf *b, const char *fmt, ...) TFS_SDK_PRINTF(2, 3);
static int buf_printf(pacs_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return buf_put(b, tmp, (size_t)n);
}

static void buf_free(pacs_buf *b)
{
    free(b->s);
    *b = (pacs_buf){0};
}

/* ---- connection ------------------------------------------------------------------------ */

static int pacs_session(pacs *p, tfs_sdk_error *err)
{
    char msg[512], name[64];
    PGresult *res = NULL;
    int rc = 0;

    if (PQsetClientEncoding(p->conn, "UTF8") != 0) {
        host->error_set(err, "could not set the client encoding of pacs: %s",
                        pgp_message(p->conn, NULL, msg, sizeof msg));
        rc = pgp_classify(p->conn, NULL);
        goto out;
    }
    res = PQexec(p->conn, "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601';"
                          " SET TimeZone = 'UTC'; SET extra_float_digits = 3");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    for (size_t e = 0; e < N_ENTITIES; e++)
        for (int s = 0; s < N_PREPARED; s++) {
            const char *sql;
            const Oid *types;
            int n;
            stmt_get(e, s, &sql, &n, &types);
            stmt_name(name, sizeof name, e, s);
            PQclear(res);
            res = PQprepare(p->conn, name, sql, n, types);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                goto fail;
        }
    p->session_ready = 1;
    goto out;
fail:
    rc = pgp_classify(p->conn, res);
    host->error_set(err, "could not prepare the pacs session: %s%s",
                    pgp_message(p->conn, res, msg, sizeof msg), missing_table_hint(res));
out:
    PQclear(res);
    return rc;
}

/* Makes sure the connection is up and set up: reconnects after a lost connection. */
static int pacs_ensure(pacs *p, tfs_sdk_error *err)
{
    if (PQstatus(p->conn) != CONNECTION_OK && p->up)
        host->log(host, TFS_SDK_LOG_WARN, "lost the pacs database, reconnecting");
    int re = pgp_ensure(&p->conn, p->conninfo, "tfsync-pacs", &p->timeouts, host, "pacs", err);
    if (re != 0) {
        p->up = 0;
        p->session_ready = 0;
        if (re < 0)
            return re;
    }
    int rc = p->session_ready ? 0 : pacs_session(p, err);
    p->up = rc == 0;
    return rc;
}

/* Runs a prepared statement of an entity; returns the result (owned) or NULL after setting
 * err and *rc. */
static PGresult *pacs_exec(pacs *p, size_t entity, int what, int n, const char *const *params,
                           int *rc, tfs_sdk_error *err)
{
    char name[64], msg[512];
    PGresult *res;
    if (what < N_PREPARED) {
        stmt_name(name, sizeof name, entity, what);
        res = PQexecPrepared(p->conn, name, n, params, NULL, NULL, 0);
    } else {
        const char *sql;
        const Oid *types;
        int n_types;
        stmt_get(entity, what, &sql, &n_types, &types);
        res = PQexecParams(p->conn, sql, n, types, params, NULL, NULL, 0);
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
        return res;
    *rc = pgp_classify(p->conn, res);
    host->error_set(err, "could not %s %s%s: %s%s",
                    what == STMT_FETCH ? "fetch" : what == STMT_LAG ? "measure the lag of" : "read",
                    pacs_entities[entity].name,
                    what == STMT_KEYS || what == STMT_RECORDS ? " changes" : "",
                    pgp_message(p->conn, res, msg, sizeof msg), missing_table_hint(res));
    PQclear(res);
    return NULL;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static void window_clear(pacs_window *w)
{
    free(w->prev);
    free(w->cur);
    free(w->k1);
    free(w->k2);
    *w = (pacs_window){0};
}

static void pacs_close(void *instance)
{
    pacs *p = instance;
    if (!p)
        return;
    PQfinish(p->conn);
    free(p->conninfo);
    for (size_t e = 0; e < N_ENTITIES; e++)
        window_clear(&p->windows[e]);
    buf_free(&p->keys);
    buf_free(&p->cursor);
    buf_free(&p->next);
    free(p);
}

/* The settings, checked without connecting (tfsyncd --check, and before every open). */
static int pacs_check(const char *const *config, tfs_sdk_error *err)
{
    char path[192];
    int rc = pgp_check_settings(host, config, 0, 3, 4, err);
    if (rc)
        return rc;
    pgp_settings_path(host, config, path, sizeof path);
    if (pgp_number_in(config[1], 1, PACS_FETCH_SIZE_MAX) < 0) {
        host->error_set(err, "%s.fetch_size: \"%s\" is not a number from 1 to %d", path,
                        config[1] ? config[1] : "", PACS_FETCH_SIZE_MAX);
        return TFS_SDK_EPERMANENT;
    }
    if (!config[2] || (strcmp(config[2], "true") != 0 && strcmp(config[2], "false") != 0)) {
        host->error_set(err, "%s.retired_as_delete: \"%s\" is not true or false", path,
                        config[2] ? config[2] : "");
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}

/* Never connects (TFS_SDK_CAP_LAZY_OPEN): the first call that needs the database does, so
 * a database that is down is an outage of that call (transient), and --check can describe
 * the schema offline. */
static int pacs_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    char msg[512];
    *instance = NULL;
    int rc = pacs_check(config, err);
    if (rc)
        return rc;
    pacs *p = calloc(1, sizeof *p);
    if (!p || !(p->conninfo = strdup(config[0]))) {
        free(p);
        host->error_set(err, "could not open pacs: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    if (pgp_timeouts_parse(config[3], config[4], &p->timeouts, msg, sizeof msg) != 0) {
        host->error_set(err, "could not open pacs: %s", msg); /* pacs_check refused it */
        pacs_close(p);
        return TFS_SDK_EPERMANENT;
    }
    p->fetch_size = (int)pgp_number_in(config[1], 1, PACS_FETCH_SIZE_MAX);
    p->include_retired = strcmp(config[2], "false") == 0;
    *instance = p;
    return 0;
}

static int pacs_describe(void *instance, const tfs_sdk_entity **entities, size_t *n_entities,
                         tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *entities = pacs_entities;
    *n_entities = N_DESCRIBED;
    return 0;
}

/* Parses a full-read cursor: "p1:<k1>" or, for a two-field keyset, "p1:<k1>:<k2>". */
static int full_cursor_parse(const void *cursor, size_t len, int keyset, int64_t *k1,
                             int64_t *k2)
{
    const char *c = cursor;
    const size_t plen = sizeof PACS_CURSOR_PREFIX - 1;
    *k1 = *k2 = 0;
    if (len == 0)
        return 0;
    if (len <= plen || memcmp(c, PACS_CURSOR_PREFIX, plen) != 0)
        return -1;
    c += plen;
    len -= plen;
    const char *colon = memchr(c, ':', len);
    if ((keyset == 2) != (colon != NULL))
        return -1;
    if (!colon)
        return parse_i64(c, len, k1);
    size_t n1 = (size_t)(colon - c);
    return parse_i64(c, n1, k1) == 0 && parse_i64(colon + 1, len - n1 - 1, k2) == 0 ? 0 : -1;
}

/* Whether s[0..len) is snapshot text: digits, ':' and ','. */
static int is_snapshot(const char *s, size_t len)
{
    if (len == 0 || len > PACS_SNAPSHOT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ':' || s[i] == ','))
            return 0;
    return 1;
}

/* Parses a change cursor "v1|<prev>|<cur>|[<k1>[,<k2>]]" into pos (pointing into
 * p->cursor). Returns 0, -1 when malformed, -2 when out of memory. */
static int changes_cursor_parse(pacs *p, const void *cursor, size_t len, int keyset,
                                pacs_changes_pos *pos)
{
    const size_t plen = sizeof PACS_CHANGES_PREFIX - 1;
    memset(pos, 0, sizeof *pos);
    if (len <= plen || memcmp(cursor, PACS_CHANGES_PREFIX, plen) != 0 ||
        memchr(cursor, '\0', len))
        return -1;
    p->cursor.len = 0;
    if (buf_put(&p->cursor, (const char *)cursor + plen, len - plen) != 0)
        return -2;
    char *s = p->cursor.s;
    char *bar1 = strchr(s, '|');
    char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    if (!bar2 || strchr(bar2 + 1, '|'))
        return -1;
    *bar1 = *bar2 = '\0';
    char *last = bar2 + 1;
    if (!is_snapshot(s, strlen(s)) || !is_snapshot(bar1 + 1, strlen(bar1 + 1)))
        return -1;
    pos->prev = s;
    pos->cur = bar1 + 1;
    if (!*last)
        return 0;
    char *comma = strchr(last, ',');
    if ((keyset == 2) != (comma != NULL))
        return -1;
    size_t n1 = comma ? (size_t)(comma - last) : strlen(last);
    if (parse_i64(last, n1, &pos->k1) != 0 ||
        (comma && parse_i64(comma + 1, strlen(comma + 1), &pos->k2) != 0))
        return -1;
    pos->in_window = 1;
    return 0;
}

/* Sets the batch's cursor "v1|<prev>|<cur>|" and, inside a window, the last key. */
static int changes_cursor_set(pacs *p, tfs_sdk_batch *out, const char *prev, const char *cur,
                              int keyset, const char *k1, const char *k2, tfs_sdk_error *err)
{
    p->next.len = 0;
    int bad = buf_put(&p->next, PACS_CHANGES_PREFIX, sizeof PACS_CHANGES_PREFIX - 1) ||
              buf_put(&p->next, prev, strlen(prev)) || buf_put(&p->next, "|", 1) ||
              buf_put(&p->next, cur, strlen(cur)) || buf_put(&p->next, "|", 1);
    if (!bad && k1) {
        bad = buf_put(&p->next, k1, strlen(k1));
        if (!bad && keyset == 2)
            bad = buf_put(&p->next, ",", 1) || buf_put(&p->next, k2, strlen(k2));
    }
    if (bad || host->batch_set_cursor(out, p->next.s, p->next.len) != 0) {
        host->error_set(err, "could not set the change cursor: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

/* The current snapshot's text into snap (owned by the result *res). */
static int current_snapshot(pacs *p, PGresult **res, const char **snap, tfs_sdk_error *err)
{
    char msg[512];
    *res = PQexec(p->conn, snapshot_sql);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK || PQntuples(*res) != 1) {
        int rc = pgp_classify(p->conn, *res);
        host->error_set(err, "could not take a snapshot of pacs: %s",
                        pgp_message(p->conn, *res, msg, sizeof msg));
        PQclear(*res);
        *res = NULL;
        return rc;
    }
    *snap = PQgetvalue(*res, 0, 0);
    if (!is_snapshot(*snap, strlen(*snap))) {
        host->error_set(err, "could not take a snapshot of pacs: unexpected text \"%.64s\"",
                        *snap);
        PQclear(*res);
        *res = NULL;
        return TFS_SDK_EPERMANENT;
    }
    return 0;
}

/* The cursor of "now": "v1|<snapshot>|<snapshot>|", nothing pending. */
static int changes_now(pacs *p, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    PGresult *res = NULL;
    const char *snap;
    int rc = current_snapshot(p, &res, &snap, err);
    if (rc == 0)
        rc = changes_cursor_set(p, out, snap, snap, 1, NULL, NULL, err);
    PQclear(res);
    return rc;
}

/* Adds a deletion of the key (k1, k2) of entity: property and owner are keyed by
 * (prop_id, roll year), sale by (chg_of_owner_id, prop_id), account by acct_id alone. */
static int add_delete(size_t entity, int64_t k1, int64_t k2, tfs_sdk_batch *out,
                      tfs_sdk_error *err)
{
    tfs_sdk_record *rec = host->batch_add_delete(out);
    int64_t second = entity == ENT_SALE ? k2 : (int64_t)host->roll_year;
    if (!rec || host->rec_set_int(rec, 0, k1) != 0 ||
        (entity != ENT_ACCOUNT && host->rec_set_int(rec, 1, second) != 0)) {
        host->error_set(err, "could not add a %s deletion: out of memory",
                        pacs_entities[entity].name);
        return TFS_SDK_ETRANSIENT;
    }
    return 0;
}

/* ---- change windows ---------------------------------------------------------------- */

/* Key order: (a1, a2) against (b1, b2). */
static int key_cmp(int64_t a1, int64_t a2, int64_t b1, int64_t b2)
{
    if (a1 != b1)
        return a1 < b1 ? -1 : 1;
    return a2 < b2 ? -1 : a2 > b2;
}

/* The index of the first cached key after (k1, k2). */
static size_t window_after(const pacs_window *w, int64_t k1, int64_t k2)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(w->k1[mid], w->k2[mid], k1, k2) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether the cache holds the keys of window (prev, cur) that follow (k1, k2). */
static int window_covers(const pacs_window *w, const char *prev, const char *cur, int64_t k1,
                         int64_t k2)
{
    if (!w->prev || strcmp(w->prev, prev) != 0 || strcmp(w->cur, cur) != 0 ||
        key_cmp(k1, k2, w->from1, w->from2) < 0)
        return 0;
    return w->complete || window_after(w, k1, k2) < w->n;
}

/* Reads the next keys of window (prev, cur) after (k1, k2) into the cache. */
static int window_fill(pacs *p, size_t entity, pacs_window *w, const char *prev,
                       const char *cur, int64_t k1, int64_t k2, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &pacs_entities[entity];
    const int keyset = pacs_sqls[entity].keyset;
    char a1[24], a2[24], lim[16], year[16];
    int rc = 0;

    window_clear(w);
    snprintf(a1, sizeof a1, "%" PRId64, k1);
    snprintf(a2, sizeof a2, "%" PRId64, k2);
    snprintf(lim, sizeof lim, "%d", PACS_WINDOW_CHUNK);
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    const char *params[] = {prev, cur, a1, a2, lim, year};
    PGresult *res = pacs_exec(p, entity, STMT_KEYS, (int)N_OF(params), params, &rc, err);
    if (!res)
        return rc;
    size_t rows = (size_t)PQntuples(res);
    w->prev = strdup(prev);
    w->cur = strdup(cur);
    w->k1 = malloc((rows ? rows : 1) * sizeof *w->k1);
    w->k2 = malloc((rows ? rows : 1) * sizeof *w->k2);
    if (!w->prev || !w->cur || !w->k1 || !w->k2) {
        host->error_set(err, "could not read %s changes: out of memory", e->name);
        rc = TFS_SDK_ETRANSIENT;
        goto out;
    }
    for (size_t r = 0; r < rows; r++) {
        const char *v1 = PQgetvalue(res, (int)r, 0), *v2 = PQgetvalue(res, (int)r, 1);
        w->k2[r] = 0;
        if (parse_i64(v1, strlen(v1), &w->k1[r]) != 0 ||
            (keyset == 2 && parse_i64(v2, strlen(v2), &w->k2[r]) != 0)) {
            host->error_set(err, "could not read %s changes: bad key \"%s\"", e->name, v1);
            rc = TFS_SDK_EPERMANENT;
            goto out;
        }
    }
    w->n = w->cap = rows;
    w->from1 = k1;
    w->from2 = k2;
    w->complete = rows < PACS_WINDOW_CHUNK;
out:
    if (rc)
        window_clear(w);
    PQclear(res);
    return rc;
}

/* Adds the records (or deletions) of cached keys [from, from + n) to out. */
static int window_records(pacs *p, size_t entity, const pacs_window *w, size_t from, size_t n,
                          tfs_sdk_batch *out, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &pacs_entities[entity];
    pacs_buf *b = &p->keys;
    int rc = 0;

    /* Both key fields as arrays in one buffer: "{k1s}\0{k2s}". */
    b->len = 0;
    if (buf_put(b, "{", 1) != 0)
        goto oom;
    for (size_t i = from; i < from + n; i++)
        if (buf_printf(b, "%s%" PRId64, i > from ? "," : "", w->k1[i]) != 0)
            goto oom;
    if (buf_put(b, "}\0{", 3) != 0)
        goto oom;
    size_t second = b->len - 1;
    for (size_t i = from; i < from + n; i++)
        if (buf_printf(b, "%s%" PRId64, i > from ? "," : "", w->k2[i]) != 0)
            goto oom;
    if (buf_put(b, "}", 1) != 0)
        goto oom;
    char year[16];
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    const char *params[] = {b->s, b->s + second, year, p->include_retired ? "true" : "false"};
    PGresult *res = pacs_exec(p, entity, STMT_RECORDS, (int)N_OF(params), params, &rc, err);
    if (!res)
        return rc;
    if ((rc = pg_check_columns(e, res, 2, err)) != 0)
        goto out;
    if ((size_t)PQntuples(res) != n) {
        host->error_set(err, "could not read %s changes: %d records for %zu keys", e->name,
                        PQntuples(res), n);
        rc = TFS_SDK_EPERMANENT;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!PQgetisnull(res, (int)i, 2))
            rc = pg_add_row(e, res, (int)i, 2, out, err);
        else
            rc = add_delete(entity, w->k1[from + i], w->k2[from + i], out, err);
    }
out:
    PQclear(res);
    return rc;
oom:
    host->error_set(err, "could not read %s changes: out of memory", e->name);
    return TFS_SDK_ETRANSIENT;
}

static int pacs_read_changes(pacs *p, size_t entity, const void *cursor, size_t cursor_len,
                             size_t limit, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &pacs_entities[entity];
    const int keyset = pacs_sqls[entity].keyset;
    pacs_window *w = &p->windows[entity];
    PGresult *snap_res = NULL;
    pacs_changes_pos pos;
    int rc;

    /* No checkpoint yet: changes from now on. */
    if (cursor_len == 0) {
        if ((rc = changes_now(p, out, err)) == 0)
            host->batch_set_done(out);
        return rc;
    }
    rc = changes_cursor_parse(p, cursor, cursor_len, keyset, &pos);
    if (rc != 0) {
        host->error_set(err, rc == -2 ? "could not read %s changes: out of memory"
                                      : "could not read %s changes: malformed cursor (%zu "
                                        "bytes)",
                        e->name, cursor_len);
        return rc == -2 ? TFS_SDK_ETRANSIENT : TFS_SDK_EPERMANENT;
    }
    const char *prev = pos.prev, *cur = pos.cur;
    int64_t last1 = pos.in_window ? pos.k1 : 0, last2 = pos.in_window ? pos.k2 : 0;
    if (!pos.in_window) {
        /* The window after the last one: from its end to now. */
        prev = pos.cur;
        if ((rc = current_snapshot(p, &snap_res, &cur, err)) != 0)
            return rc;
        if (strcmp(prev, cur) == 0) {
            /* Nothing was committed since: an empty window. */
            rc = changes_cursor_set(p, out, cur, cur, keyset, NULL, NULL, err);
            if (rc == 0)
                host->batch_set_done(out);
            goto out;
        }
    }
    if (!window_covers(w, prev, cur, last1, last2) &&
        (rc = window_fill(p, entity, w, prev, cur, last1, last2, err)) != 0)
        goto out;
    size_t from = window_after(w, last1, last2);
    size_t n = w->n - from < limit ? w->n - from : limit;
    if (n > 0 && (rc = window_records(p, entity, w, from, n, out, err)) != 0)
        goto out;
    if (from + n == w->n && w->complete) {
        /* The window is done: the next read starts after its end. */
        rc = changes_cursor_set(p, out, cur, cur, keyset, NULL, NULL, err);
        if (rc == 0)
            host->batch_set_done(out);
        window_clear(w);
    } else {
        char k1[24], k2[24];
        snprintf(k1, sizeof k1, "%" PRId64, w->k1[from + n - 1]);
        snprintf(k2, sizeof k2, "%" PRId64, w->k2[from + n - 1]);
        rc = changes_cursor_set(p, out, prev, cur, keyset, k1, k2, err);
    }
out:
    PQclear(snap_res);
    return rc;
}

static int pacs_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                     size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                     tfs_sdk_error *err)
{
    pacs *p = instance;
    PGresult *res = NULL;
    int rc;

    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not read entity %zu: pacs has property, owner, sale and account",
                        entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &pacs_entities[entity];
    const int keyset = pacs_sqls[entity].keyset;
    if (mode != TFS_SDK_READ_FULL && mode != TFS_SDK_READ_CHANGES) {
        host->error_set(err, "could not read %s: unknown read mode %d", e->name, (int)mode);
        return TFS_SDK_EPERMANENT;
    }
    size_t limit = (size_t)p->fetch_size;
    if (max_records > 0 && max_records < limit)
        limit = max_records;
    int64_t last1 = 0, last2 = 0;
    if (mode == TFS_SDK_READ_FULL &&
        full_cursor_parse(cursor, cursor_len, keyset, &last1, &last2) != 0) {
        host->error_set(err, "could not read %s: malformed cursor (%zu bytes)", e->name,
                        cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;
    if (mode == TFS_SDK_READ_CHANGES)
        return pacs_read_changes(p, entity, cursor, cursor_len, limit, out, err);

    char year[16], after1[24], after2[24], lim[16];
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    snprintf(after1, sizeof after1, "%" PRId64, last1);
    snprintf(after2, sizeof after2, "%" PRId64, last2);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {year, after1, after2, lim, p->include_retired ? "true" : "false"};
    res = pacs_exec(p, entity, STMT_READ, (int)N_OF(params), params, &rc, err);
    if (!res)
        return rc;
    if ((rc = pg_add_rows(e, res, out, err)) != 0)
        goto out;

    int rows = PQntuples(res);
    if (rows > 0) {
        char next[64];
        int n = keyset == 2 ? snprintf(next, sizeof next, PACS_CURSOR_PREFIX "%s:%s",
                                       PQgetvalue(res, rows - 1, 0),
                                       PQgetvalue(res, rows - 1, 1))
                            : snprintf(next, sizeof next, PACS_CURSOR_PREFIX "%s",
                                       PQgetvalue(res, rows - 1, 0));
        if (n < 0 || (size_t)n >= sizeof next ||
            host->batch_set_cursor(out, next, (size_t)n) != 0) {
            host->error_set(err, "could not set the %s cursor: out of memory", e->name);
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
        size_t len = 0;
        const char *s = host->rec_get_text(rec, f, &len);
        return s ? parse_i64(s, len, v) : -1;
    }
    return -1;
}

static int pacs_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                      size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    pacs *p = instance;
    PGresult *res = NULL;
    int rc;

    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not fetch entity %zu: pacs has property, owner, sale and account",
                        entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &pacs_entities[entity];
    /* Both key fields as arrays in one buffer: "{k1s}\0{k2s}". */
    pacs_buf *b = &p->keys;
    b->len = 0;
    size_t n_valid = 0;
    if (buf_put(b, "{", 1) != 0)
        goto oom;
    size_t second = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (buf_put(b, "\0{", 2) != 0)
                goto oom;
            second = b->len - 1;
        }
        n_valid = 0;
        for (size_t i = 0; i < n_keys; i++) {
            int64_t a, c;
            /* A key with a null or non-integer part cannot exist in PACS. */
            c = 0;
            if (!keys[i] || pacs_key_int(keys[i], 0, &a) != 0 ||
                (entity != ENT_ACCOUNT && pacs_key_int(keys[i], 1, &c) != 0))
                continue;
            if (buf_printf(b, "%s%" PRId64, n_valid ? "," : "", pass == 0 ? a : c) != 0)
                goto oom;
            n_valid++;
        }
        if (buf_put(b, "}", 1) != 0)
            goto oom;
    }
    if (n_valid == 0)
        return 0;
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;

    char year[16];
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    const char *params[] = {b->s, b->s + second, year, p->include_retired ? "true" : "false"};
    res = pacs_exec(p, entity, STMT_FETCH, (int)N_OF(params), params, &rc, err);
    if (!res)
        return rc;
    rc = pg_add_rows(e, res, out, err);
    PQclear(res);
    return rc;
oom:
    host->error_set(err, "could not fetch %s: out of memory", e->name);
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
        rc = pgp_classify(p->conn, res);
        host->error_set(err, "could not check the pacs database: %s",
                        pgp_message(p->conn, res, msg, sizeof msg));
    }
    PQclear(res);
    return rc;
}

static int pacs_changes_start(void *instance, size_t entity, tfs_sdk_batch *out,
                              tfs_sdk_error *err)
{
    pacs *p = instance;
    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not start changes of entity %zu: pacs has property, "
                        "owner and sale", entity);
        return TFS_SDK_EPERMANENT;
    }
    int rc = pacs_ensure(p, err);
    return rc ? rc : changes_now(p, out, err);
}

static int pacs_changes_lag(void *instance, size_t entity, const void *cursor,
                            size_t cursor_len, int64_t *pending, int64_t *oldest_age_ms,
                            tfs_sdk_error *err)
{
    pacs *p = instance;
    pacs_changes_pos pos;
    int rc;

    *pending = *oldest_age_ms = 0;
    if (entity >= N_ENTITIES) {
        host->error_set(err, "could not measure the lag of entity %zu: pacs has property, "
                        "owner and sale", entity);
        return TFS_SDK_EPERMANENT;
    }
    const tfs_sdk_entity *e = &pacs_entities[entity];
    if (cursor_len == 0)
        return 0; /* reading from now on: nothing waits yet */
    rc = changes_cursor_parse(p, cursor, cursor_len, pacs_sqls[entity].keyset, &pos);
    if (rc != 0) {
        host->error_set(err, rc == -2 ? "could not measure the lag of %s: out of memory"
                                      : "could not measure the lag of %s: malformed cursor "
                                        "(%zu bytes)",
                        e->name, cursor_len);
        return rc == -2 ? TFS_SDK_ETRANSIENT : TFS_SDK_EPERMANENT;
    }
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;
    /* Outside a window, everything after its end waits. */
    const char *prev = pos.in_window ? pos.prev : pos.cur;
    char k1[24], k2[24], year[16];
    snprintf(k1, sizeof k1, "%" PRId64, pos.k1);
    snprintf(k2, sizeof k2, "%" PRId64, pos.k2);
    snprintf(year, sizeof year, "%" PRId32, host->roll_year);
    const char *params[] = {prev, pos.cur, k1, k2, year};
    PGresult *res = pacs_exec(p, entity, STMT_LAG, (int)N_OF(params), params, &rc, err);
    if (!res)
        return rc;
    if (PQntuples(res) != 1 || PQnfields(res) != 2 ||
        parse_i64(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), pending) != 0 ||
        parse_i64(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), oldest_age_ms) != 0) {
        host->error_set(err, "could not measure the lag of %s: unexpected result", e->name);
        rc = TFS_SDK_EPERMANENT;
    }
    PQclear(res);
    return rc;
}

static int pacs_changes_trim(void *instance, const void *const *cursors, const size_t *lens,
                             size_t n, tfs_sdk_error *err)
{
    pacs *p = instance;
    char msg[512];
    pacs_changes_pos pos;
    int rc;

    /* {"<snapshot>",...}: the snapshot each reader's next window starts after. */
    pacs_buf *b = &p->keys;
    b->len = 0;
    size_t n_snaps = 0;
    if (buf_put(b, "{", 1) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0)
            continue; /* reads from now on: needs nothing kept */
        /* The keyset does not matter here: try both forms. */
        rc = changes_cursor_parse(p, cursors[i], lens[i], 1, &pos);
        if (rc == -1)
            rc = changes_cursor_parse(p, cursors[i], lens[i], 2, &pos);
        if (rc == -2)
            goto oom;
        if (rc != 0) {
            host->error_set(err, "could not trim the pacs change log: cursor %zu is "
                            "malformed (%zu bytes)", i, lens[i]);
            return TFS_SDK_EPERMANENT;
        }
        const char *snap = pos.in_window ? pos.prev : pos.cur;
        if (buf_put(b, n_snaps ? ",\"" : "\"", n_snaps ? 2 : 1) != 0 ||
            buf_put(b, snap, strlen(snap)) != 0 || buf_put(b, "\"", 1) != 0)
            goto oom;
        n_snaps++;
    }
    if (buf_put(b, "}", 1) != 0)
        goto oom;
    if (n_snaps == 0)
        return 0; /* no reader has a checkpoint: keep everything */
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;
    const char *params[] = {b->s};
    PGresult *res = PQexecParams(p->conn, trim_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pgp_classify(p->conn, res);
        host->error_set(err, "could not trim the pacs change log: %s%s",
                        pgp_message(p->conn, res, msg, sizeof msg), missing_table_hint(res));
    } else {
        host->log(host, TFS_SDK_LOG_DEBUG, "trimmed %s change log rows every reader is past",
                  PQcmdTuples(res));
    }
    PQclear(res);
    return rc;
oom:
    host->error_set(err, "could not trim the pacs change log: out of memory");
    return TFS_SDK_ETRANSIENT;
}

/* ---- the target entities ----------------------------------------------------------------
 *
 * PACS is a target only of what other systems own or keep, each entity into what it alone
 * may touch, and none of them ever a new property or account:
 *   parcel_gis (pair gis-to-pacs): property_gis, what GIS computes about a parcel;
 *   bill_status (pair erp-to-pacs): property_bill_status, what the billing system says;
 *   account_mail (pair crm-to-pacs): an account's address row of type 'M' (inserted when
 *     it has none), written with tfsync.origin = 'sync' for the transaction.
 * property_gis and property_bill_status have no change-log trigger and the trigger skips
 * address rows written with that origin, so none of these writes comes back out of PACS's
 * change reads (docs/decisions.md, "GIS and PACS without ping-pong", "CRM and PACS without
 * ping-pong"). One transaction per cb_write, each operation under its own savepoint, so
 * one bad record fails alone. */

static const char gis_fetch_sql[] =
    "SELECT simple_geo_id, gis_acres, gis_centroid_lat, gis_centroid_lon, gis_srid,"
    " gis_stated_area FROM property_gis WHERE simple_geo_id = ANY($1::text[])";

static const char gis_upsert_sql[] =
    "WITH u AS (INSERT INTO property_gis AS g (simple_geo_id, gis_acres, gis_centroid_lat,"
    " gis_centroid_lon, gis_srid, gis_stated_area)"
    " SELECT $1::text, $2::numeric, $3::numeric, $4::numeric, $5::integer, $6::text"
    " WHERE EXISTS (SELECT 1 FROM property WHERE simple_geo_id = $1::text)"
    " ON CONFLICT (simple_geo_id) DO UPDATE SET (gis_acres, gis_centroid_lat,"
    " gis_centroid_lon, gis_srid, gis_stated_area, gis_updated_at) = (EXCLUDED.gis_acres,"
    " EXCLUDED.gis_centroid_lat, EXCLUDED.gis_centroid_lon, EXCLUDED.gis_srid,"
    " EXCLUDED.gis_stated_area, now()) WHERE (g.gis_acres, g.gis_centroid_lat,"
    " g.gis_centroid_lon, g.gis_srid, g.gis_stated_area) IS DISTINCT FROM (EXCLUDED.gis_acres,"
    " EXCLUDED.gis_centroid_lat, EXCLUDED.gis_centroid_lon, EXCLUDED.gis_srid,"
    " EXCLUDED.gis_stated_area) RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM property WHERE simple_geo_id = $1::text)";

static const char gis_delete_sql[] = "DELETE FROM property_gis WHERE simple_geo_id = $1";

static const char mail_fetch_sql[] =
    "SELECT acct_id, addr_line1, addr_line2, addr_city, addr_state, addr_zip FROM address"
    " WHERE addr_type_cd = 'M' AND acct_id = ANY($1::int8[])";

static const char mail_upsert_sql[] =
    "WITH u AS (INSERT INTO address AS a (acct_id, addr_type_cd, addr_line1, addr_line2,"
    " addr_city, addr_state, addr_zip)"
    " SELECT $1::int, 'M', $2, $3, $4, $5, $6"
    " WHERE EXISTS (SELECT 1 FROM account WHERE acct_id = $1::int)"
    " ON CONFLICT (acct_id, addr_type_cd) DO UPDATE SET (addr_line1, addr_line2, addr_city,"
    " addr_state, addr_zip) = (EXCLUDED.addr_line1, EXCLUDED.addr_line2, EXCLUDED.addr_city,"
    " EXCLUDED.addr_state, EXCLUDED.addr_zip) WHERE (a.addr_line1, a.addr_line2,"
    " a.addr_city, a.addr_state, a.addr_zip) IS DISTINCT FROM (EXCLUDED.addr_line1,"
    " EXCLUDED.addr_line2, EXCLUDED.addr_city, EXCLUDED.addr_state, EXCLUDED.addr_zip)"
    " RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM account WHERE acct_id = $1::int), (SELECT count(*) FROM u)";

static const char bill_fetch_sql[] =
    "SELECT bill_id, prop_id, tax_year, amount_due, amount_paid, payment_status, erp_modified"
    " FROM property_bill_status WHERE bill_id = ANY($1::text[])";

static const char bill_upsert_sql[] =
    "WITH u AS (INSERT INTO property_bill_status AS b (bill_id, prop_id, tax_year, amount_due,"
    " amount_paid, payment_status, erp_modified)"
    " SELECT $1::text, $2::integer, $3::integer, $4::numeric, $5::numeric, $6::text, $7::date"
    " WHERE EXISTS (SELECT 1 FROM property WHERE prop_id = $2::integer)"
    " ON CONFLICT (bill_id) DO UPDATE SET (prop_id, tax_year, amount_due, amount_paid,"
    " payment_status, erp_modified, erp_updated_at) = (EXCLUDED.prop_id, EXCLUDED.tax_year,"
    " EXCLUDED.amount_due, EXCLUDED.amount_paid, EXCLUDED.payment_status,"
    " EXCLUDED.erp_modified, now()) WHERE (b.prop_id, b.tax_year, b.amount_due, b.amount_paid,"
    " b.payment_status, b.erp_modified) IS DISTINCT FROM (EXCLUDED.prop_id, EXCLUDED.tax_year,"
    " EXCLUDED.amount_due, EXCLUDED.amount_paid, EXCLUDED.payment_status,"
    " EXCLUDED.erp_modified) RETURNING 1)"
    " SELECT EXISTS (SELECT 1 FROM property WHERE prop_id = $2::integer)";

static const char bill_delete_sql[] = "DELETE FROM property_bill_status WHERE bill_id = $1";

typedef struct pacs_target {
    size_t entity;
    int text_key;            /* the key is text (else int8) */
    const char *fetch_sql;   /* $1 the keys as an array */
    const char *upsert_sql;  /* every field in order; answers whether the parent exists */
    const char *delete_sql;  /* $1 the key; NULL: a deletion writes nothing */
    int origin_sync;         /* write with tfsync.origin = 'sync' (a captured table) */
    /* The failure of an upsert whose property or account PACS does not have. */
    void (*missing)(tfs_sdk_results *results, size_t i, const char *const *params);
} pacs_target;

static void gis_missing(tfs_sdk_results *results, size_t i, const char *const *params)
{
    host->result_set(results, i, TFS_SDK_EPERMANENT,
                     "no such property in PACS: simple_geo_id %s (GIS maps a parcel PACS "
                     "does not have)", params[0]);
}

static void bill_missing(tfs_sdk_results *results, size_t i, const char *const *params)
{
    host->result_set(results, i, TFS_SDK_EPERMANENT,
                     "no such property in PACS: prop_id %s (bill %s of the billing system)",
                     params[1] ? params[1] : "(null)", params[0]);
}

static void mail_missing(tfs_sdk_results *results, size_t i, const char *const *params)
{
    host->result_set(results, i, TFS_SDK_EPERMANENT,
                     "no such account in PACS: acct_id %s (the CRM contact's id is not a "
                     "PACS account)", params[0]);
}

static const pacs_target pacs_targets[] = {
    {ENT_GIS, 1, gis_fetch_sql, gis_upsert_sql, gis_delete_sql, 0, gis_missing},
    {ENT_BILL, 1, bill_fetch_sql, bill_upsert_sql, bill_delete_sql, 0, bill_missing},
    /* A contact gone from the CRM does not take the PACS account's address with it. */
    {ENT_ACCT_MAIL, 0, mail_fetch_sql, mail_upsert_sql, NULL, 1, mail_missing},
};

#define TARGET_FIELDS_MAX 8
_Static_assert(N_OF(parcel_gis_fields) <= TARGET_FIELDS_MAX &&
                   N_OF(bill_status_fields) <= TARGET_FIELDS_MAX &&
                   N_OF(account_mail_fields) <= TARGET_FIELDS_MAX,
               "a target record's parameters fit");

static const pacs_target *target_of(size_t entity)
{
    for (size_t t = 0; t < N_OF(pacs_targets); t++)
        if (pacs_targets[t].entity == entity)
            return &pacs_targets[t];
    return NULL;
}

/* The text of field f of rec (NULL for null), formatted into tmp when it is a number. */
static const char *target_value_text(const tfs_sdk_record *rec, size_t f, char *tmp, size_t cap)
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

/* The keys of a target entity as a PostgreSQL array literal in p->keys: text keys quoted
 * and escaped, int8 ones as numbers; keys of the wrong type (which PACS cannot have) left
 * out. Returns how many, or -1 when out of memory. */
static int target_keys(pacs *p, const pacs_target *t, const tfs_sdk_record *const *keys,
                       size_t n_keys)
{
    pacs_buf *b = &p->keys;
    int n = 0;
    b->len = 0;
    if (buf_put(b, "{", 1) != 0)
        return -1;
    for (size_t i = 0; i < n_keys; i++) {
        if (!keys[i] || host->rec_type(keys[i], 0) != (t->text_key ? TFS_SDK_TEXT : TFS_SDK_INT64))
            continue;
        if (n++ && buf_put(b, ",", 1) != 0)
            return -1;
        if (!t->text_key) {
            if (buf_printf(b, "%" PRId64, host->rec_get_int(keys[i], 0)) != 0)
                return -1;
            continue;
        }
        if (buf_put(b, "\"", 1) != 0)
            return -1;
        for (const char *c = host->rec_get_text(keys[i], 0, NULL); *c; c++) {
            int esc = *c == '"' || *c == '\\';
            if ((esc && buf_put(b, "\\", 1) != 0) || buf_put(b, c, 1) != 0)
                return -1;
        }
        if (buf_put(b, "\"", 1) != 0)
            return -1;
    }
    return buf_put(b, "}", 1) != 0 ? -1 : n;
}

static int target_fetch(pacs *p, const pacs_target *t, const tfs_sdk_record *const *keys,
                        size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &pacs_entities[t->entity];
    char msg[512];
    int rc, n = target_keys(p, t, keys, n_keys);
    if (n < 0) {
        host->error_set(err, "could not fetch %s: out of memory", e->name);
        return TFS_SDK_ETRANSIENT;
    }
    if (n == 0)
        return 0;
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;
    const char *params[] = {p->keys.s};
    PGresult *res = PQexecParams(p->conn, t->fetch_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pgp_classify(p->conn, res);
        host->error_set(err, "could not fetch %s: %s%s", e->name,
                        pgp_message(p->conn, res, msg, sizeof msg), missing_table_hint(res));
        PQclear(res);
        return rc;
    }
    rc = pg_add_rows(e, res, out, err);
    PQclear(res);
    return rc;
}

/* cb_fetch: the target entities here, the source entities in pacs_fetch. */
static int pacs_fetch_any(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                          size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    const pacs_target *t = target_of(entity);
    if (t)
        return target_fetch(instance, t, keys, n_keys, out, err);
    return pacs_fetch(instance, entity, keys, n_keys, out, err);
}

/* A command that must succeed: NULL, or its failed result (owned). */
static PGresult *pacs_run(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Ends a write that failed as a whole: rolls back, sets err. */
static int pacs_write_failed(pacs *p, PGresult *res, const char *what, tfs_sdk_error *err)
{
    char msg[512];
    int rc = pgp_classify(p->conn, res);
    host->error_set(err, "could not write to pacs (%s): %s%s", what,
                    pgp_message(p->conn, res, msg, sizeof msg), missing_table_hint(res));
    PQclear(res);
    if (PQstatus(p->conn) == CONNECTION_OK)
        PQclear(PQexec(p->conn, "ROLLBACK"));
    return rc;
}

/* One operation inside pacs_write's transaction, under its own savepoint: 0 (done, or its
 * own failure reported), or the batch's failure (the transaction rolled back). */
static int target_write_one(pacs *p, const pacs_target *t, const tfs_sdk_write_op *op,
                            size_t i, tfs_sdk_results *results, tfs_sdk_error *err)
{
    const tfs_sdk_entity *e = &pacs_entities[t->entity];
    char msg[512];
    PGresult *r;
    if (op->kind != TFS_SDK_OP_UPSERT && op->kind != TFS_SDK_OP_DELETE) {
        host->result_set(results, i, TFS_SDK_EPERMANENT, "could not write %s: unknown "
                         "operation %d", e->name, (int)op->kind);
        return 0;
    }
    int del = op->kind == TFS_SDK_OP_DELETE;
    if (del && !t->delete_sql)
        return 0;
    if (!op->record || host->rec_n_fields(op->record) != e->n_fields ||
        host->rec_type(op->record, 0) != (t->text_key ? TFS_SDK_TEXT : TFS_SDK_INT64)) {
        host->result_set(results, i, TFS_SDK_EPERMANENT,
                         "could not write %s: the record has no %s or not its %zu fields",
                         e->name, e->fields[0].name, e->n_fields);
        return 0;
    }
    const char *params[TARGET_FIELDS_MAX];
    char tmp[TARGET_FIELDS_MAX][40];
    for (size_t f = 0; f < e->n_fields; f++)
        params[f] = target_value_text(op->record, f, tmp[f], sizeof tmp[f]);
    if ((r = pacs_run(p->conn, "SAVEPOINT tfs_op")) != NULL)
        return pacs_write_failed(p, r, "savepoint", err);
    if (t->origin_sync &&
        (r = pacs_run(p->conn, "SET LOCAL tfsync.origin = 'sync'")) != NULL)
        return pacs_write_failed(p, r, "origin", err);
    PGresult *res = PQexecParams(p->conn, del ? t->delete_sql : t->upsert_sql,
                                 del ? 1 : (int)e->n_fields, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        int missing = st == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      PQgetvalue(res, 0, 0)[0] != 't';
        PQclear(res);
        if ((r = pacs_run(p->conn, "RELEASE SAVEPOINT tfs_op")) != NULL)
            return pacs_write_failed(p, r, "release savepoint", err);
        if (missing)
            t->missing(results, i, params);
        return 0;
    }
    if (pgp_classify(p->conn, res) == TFS_SDK_ETRANSIENT)
        return pacs_write_failed(p, res, e->name, err);
    host->result_set(results, i, TFS_SDK_EPERMANENT, "could not write %s %s: %s", e->name,
                     params[0], pgp_message(p->conn, res, msg, sizeof msg));
    PQclear(res);
    if ((r = pacs_run(p->conn, "ROLLBACK TO SAVEPOINT tfs_op")) != NULL)
        return pacs_write_failed(p, r, "rollback to savepoint", err);
    return 0;
}

static int pacs_write_any(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                          tfs_sdk_results *results, tfs_sdk_error *err)
{
    pacs *p = instance;
    PGresult *r;
    int rc;
    if (n_ops == 0)
        return 0;
    if ((rc = pacs_ensure(p, err)) != 0)
        return rc;
    if (PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        PQclear(PQexec(p->conn, "ROLLBACK"));
    if ((r = pacs_run(p->conn, "BEGIN")) != NULL)
        return pacs_write_failed(p, r, "begin", err);
    for (size_t i = 0; i < n_ops; i++) {
        const pacs_target *t = target_of(ops[i].entity);
        if (!t) {
            host->result_set(results, i, TFS_SDK_EPERMANENT,
                             "could not write %s: pacs is a target of parcel_gis, bill_status "
                             "and account_mail only (PACS owns its properties)",
                             ops[i].entity < N_DESCRIBED ? pacs_entities[ops[i].entity].name
                                                         : "?");
            continue;
        }
        if ((rc = target_write_one(p, t, &ops[i], i, results, err)) != 0)
            return rc;
    }
    if ((r = pacs_run(p->conn, "COMMIT")) != NULL)
        return pacs_write_failed(p, r, "commit", err);
    return 0;
}

/* SDK 1.3: a full read's size for the run's progress bar, from the catalogue's row estimate
 * of the table that drives the entity's read (no scan; a count only for a table never
 * analysed), as the GIS adapter does. Retired properties and other years are in it, so it
 * is an estimate, never a promise. */
static const char *const estimate_table[N_ENTITIES] = {
    [ENT_PROPERTY] = "property",
    [ENT_OWNER] = "property",
    [ENT_SALE] = "chg_of_owner_prop_assoc",
    [ENT_ACCOUNT] = "account",
};

static int pacs_estimate(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err)
{
    pacs *p = instance;
    char sql[256], msg[512];
    *count = -1;
    if (entity >= N_ENTITIES || !estimate_table[entity])
        return 0;
    int rc = pacs_ensure(p, err);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8"
             " ELSE (SELECT count(*) FROM %s) END FROM pg_class c"
             " WHERE c.oid = to_regclass('%s')",
             estimate_table[entity], estimate_table[entity]);
    PGresult *res = PQexec(p->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pgp_classify(p->conn, res);
        host->error_set(err, "could not estimate the pacs %s: %s", estimate_table[entity],
                        pgp_message(p->conn, res, msg, sizeof msg));
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return rc;
}

/* SDK 1.4: the first N_ENTITIES are read (PACS owns them), the rest only written (what
 * GIS, the ERP and the CRM send back). */
static unsigned pacs_entity_roles(void *instance, size_t entity)
{
    (void)instance;
    return entity < N_ENTITIES ? TFS_SDK_CAP_SOURCE : TFS_SDK_CAP_TARGET;
}

static const tfs_sdk_plugin pacs_plugin = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "pacs",
    .version = "0.2.0",
    .description = "PACS appraisal database (PostgreSQL): properties with values, situs and "
                   "exemptions, owners with mailing addresses, and sales for the roll year; "
                   "change capture through a trigger-maintained change log; a target of "
                   "what GIS computes about parcels (parcel_gis), of ERP bill statuses "
                   "(bill_status) and of accounts' mailing addresses from the CRM "
                   "(account_mail) only",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_CHANGES | TFS_SDK_CAP_TARGET |
                    TFS_SDK_CAP_LAZY_OPEN,
    .config_keys = pacs_config,
    .n_config_keys = N_OF(pacs_config),
    .cb_open = pacs_open,
    .cb_close = pacs_close,
    .cb_describe = pacs_describe,
    .cb_read = pacs_read,
    .cb_fetch = pacs_fetch_any,
    .cb_write = pacs_write_any,
    .cb_health = pacs_health,
    .cb_changes_start = pacs_changes_start,
    .cb_changes_lag = pacs_changes_lag,
    .cb_changes_trim = pacs_changes_trim,
    .cb_check = pacs_check,
    .cb_entity_roles = pacs_entity_roles,
    .cb_estimate = pacs_estimate,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    /* Built against SDK 1.3: the host table must have batch_add_delete and config_system.
     * A host of an older minor refuses this plugin anyway (its minor is newer). */
    if (!h || h->sdk_major != TFS_SDK_VERSION_MAJOR || !TFS_SDK_HOST_HAS(h, batch_add_delete) ||
        !TFS_SDK_HOST_HAS(h, config_system))
        return NULL;
    host = h;
    return &pacs_plugin;
}
