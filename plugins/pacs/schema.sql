-- plugins/pacs/schema.sql — the demo PACS database (Harris Govern PACS field names).
--
-- A simplified slice of a PACS appraisal database: properties, their yearly values per
-- supplement, situs addresses, owner accounts with mailing addresses, ownership,
-- exemptions and sales. Demos, tests and benchmarks run it into a fresh database and fill
-- it with pacs_generate() from generate.sql. Money is numeric(14,0) as in PACS; tax years
-- are integers. Foreign keys are left out on purpose: the real PACS enforces few of them
-- and the generator loads a million parcels set-based, in dependency order anyway.
-- Indexes serve what the adapter reads: a property by prop_id, its value row for a year at
-- the highest sup_num, its situs rows, its exemptions for a (year, sup_num), the
-- properties of an owner account (an account change is a change of each of them) and the
-- change log by transaction id.
--
-- At the end: change capture (change_log and its row triggers on every table behind an
-- entity), which the adapter's change reads consume.

CREATE TABLE IF NOT EXISTS property (
    prop_id         integer      NOT NULL PRIMARY KEY,
    prop_type_cd    varchar(5)   NOT NULL,           -- R real, P personal, MH mobile home, M mineral
    geo_id          varchar(50),                      -- map/parcel number, e.g. 12-345-678-90
    simple_geo_id   varchar(50),                      -- geo_id without spaces and dashes
    state_cd        varchar(10),                      -- PTAD state category: A1, B1, D1, F1, ...
    zoning          varchar(20),
    prop_create_dt  timestamp
);
CREATE INDEX IF NOT EXISTS property_simple_geo_id_idx ON property (simple_geo_id);

CREATE TABLE IF NOT EXISTS property_val (
    prop_id             integer       NOT NULL,
    prop_val_yr         integer       NOT NULL,
    sup_num             integer       NOT NULL DEFAULT 0,
    land_hstd_val       numeric(14,0) NOT NULL DEFAULT 0,
    land_non_hstd_val   numeric(14,0) NOT NULL DEFAULT 0,
    imprv_hstd_val      numeric(14,0) NOT NULL DEFAULT 0,
    imprv_non_hstd_val  numeric(14,0) NOT NULL DEFAULT 0,
    ag_use_val          numeric(14,0) NOT NULL DEFAULT 0,
    market              numeric(14,0) NOT NULL DEFAULT 0,
    appraised_val       numeric(14,0) NOT NULL DEFAULT 0,
    assessed_val        numeric(14,0) NOT NULL DEFAULT 0,
    legal_desc          varchar(255),
    legal_acreage       numeric(14,4),
    hood_cd             varchar(10),
    property_use_cd     varchar(10),
    prop_inactive_dt    date,
    PRIMARY KEY (prop_id, prop_val_yr, sup_num)
);

CREATE TABLE IF NOT EXISTS situs (
    prop_id             integer      NOT NULL,
    situs_id            integer      NOT NULL,
    primary_situs       char(1)      NOT NULL DEFAULT 'N',   -- 'Y' for the primary address
    situs_num           varchar(15),
    situs_street_prefx  varchar(10),
    situs_street        varchar(50),
    situs_street_sufix  varchar(10),
    situs_unit          varchar(10),
    situs_city          varchar(30),
    situs_state         varchar(2),
    situs_zip           varchar(10),
    PRIMARY KEY (prop_id, situs_id)
);

CREATE TABLE IF NOT EXISTS account (
    acct_id            integer      NOT NULL PRIMARY KEY,
    first_name         varchar(30),
    last_name          varchar(30),
    file_as_name       varchar(70),
    email_addr         varchar(100),
    confidential_flag  char(1)      NOT NULL DEFAULT 'F',    -- 'T': never published in clear
    update_dt          timestamp
);

CREATE TABLE IF NOT EXISTS address (
    acct_id        integer      NOT NULL,
    addr_type_cd   varchar(5)   NOT NULL DEFAULT 'M',        -- M mailing
    primary_addr   char(1)      NOT NULL DEFAULT 'Y',
    addr_line1     varchar(60),
    addr_line2     varchar(60),
    addr_city      varchar(50),
    addr_state     varchar(50),
    addr_zip       varchar(10),
    PRIMARY KEY (acct_id, addr_type_cd)
);

CREATE TABLE IF NOT EXISTS owner (
    owner_id       integer        NOT NULL,                  -- account.acct_id
    owner_tax_yr   integer        NOT NULL,
    prop_id        integer        NOT NULL,
    sup_num        integer        NOT NULL DEFAULT 0,
    pct_ownership  numeric(13,10) NOT NULL DEFAULT 100,
    hs_prop        char(1)        NOT NULL DEFAULT 'F',
    PRIMARY KEY (prop_id, owner_tax_yr, sup_num, owner_id)
);
CREATE INDEX IF NOT EXISTS owner_owner_id_idx ON owner (owner_id);

CREATE TABLE IF NOT EXISTS property_exemption (
    prop_id         integer      NOT NULL,
    owner_id        integer      NOT NULL,
    exmpt_tax_yr    integer      NOT NULL,
    sup_num         integer      NOT NULL DEFAULT 0,
    exmpt_type_cd   varchar(10)  NOT NULL,   -- HS, OV65, OV65S, DP, DV1-DV4, EX, AG
    effective_dt    date,
    termination_dt  date,
    PRIMARY KEY (prop_id, exmpt_tax_yr, sup_num, owner_id, exmpt_type_cd)
);

CREATE TABLE IF NOT EXISTS sale (
    chg_of_owner_id    integer       NOT NULL PRIMARY KEY,
    sl_price           numeric(14,0),             -- often unknown: Texas is a non-disclosure state
    sl_dt              date,
    sl_type_cd         varchar(5),                -- Q qualified, U unqualified, F foreclosure, R related
    confidential_sale  char(1)       NOT NULL DEFAULT 'F'
);

CREATE TABLE IF NOT EXISTS chg_of_owner_prop_assoc (
    chg_of_owner_id  integer  NOT NULL,
    prop_id          integer  NOT NULL,
    seq_num          integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (chg_of_owner_id, prop_id)
);
CREATE INDEX IF NOT EXISTS chg_of_owner_prop_assoc_prop_id_idx
    ON chg_of_owner_prop_assoc (prop_id);

-- What GIS tells PACS about a parcel, kept apart from what PACS owns: the area computed
-- from the mapped shape, its centroid, the SRID the shape was in and GIS's stated area,
-- written only by tfsync's gis-to-pacs pair (the pacs adapter's parcel_gis entity), by
-- PACS's simple_geo_id (= GIS PARCELID). A table of its own, not columns on property, so
-- that writing it can never touch a PACS field, and so that change capture (below) does
-- not see it at all: no trigger logs it, and a GIS write is never read back by the pairs
-- that send PACS properties out (pacs-to-cama, pacs-to-gis).
CREATE TABLE IF NOT EXISTS property_gis (
    simple_geo_id      varchar(50)   NOT NULL PRIMARY KEY,
    gis_acres          numeric(14,4),
    gis_centroid_lat   numeric(10,7),
    gis_centroid_lon   numeric(11,7),
    gis_srid           integer,
    gis_stated_area    varchar(25),
    gis_updated_at     timestamptz   NOT NULL DEFAULT now()
);

-- What the billing system (ERP) says about a tax bill: amounts due and paid and the
-- payment status, written only by tfsync's erp-to-pacs pair (the pacs adapter's
-- bill_status entity), by the ERP's bill_id, for a PACS property. A table of its own, with
-- no change-capture trigger, for the reasons property_gis has none.
CREATE TABLE IF NOT EXISTS property_bill_status (
    bill_id            varchar(30)   NOT NULL PRIMARY KEY,
    prop_id            integer       NOT NULL,
    tax_year           integer       NOT NULL,
    amount_due         numeric(14,2),
    amount_paid        numeric(14,2),
    payment_status     varchar(12),
    erp_modified       date,
    erp_updated_at     timestamptz   NOT NULL DEFAULT now()
);

-- ---- Change capture ----------------------------------------------------------------------
--
-- Every table behind a tfsync entity logs its changes here, the way PgQ does: one row per
-- changed row, with the writing transaction's id, the table and the row's key (prop_id;
-- acct_id for account and address; both for owner (its owner_id as acct_id);
-- chg_of_owner_id for sale; both for
-- chg_of_owner_prop_assoc). The adapter reads the rows committed between two transaction
-- snapshots (pg_current_snapshot(), pg_visible_in_snapshot()), so a transaction that
-- commits late is read by a later window, never skipped, and trims what every reader is
-- past. No primary key on purpose: rows are only appended, read by txid range and deleted
-- by txid range, and every index costs each captured write.
CREATE TABLE IF NOT EXISTS change_log (
    id               bigserial    NOT NULL,
    txid             xid8         NOT NULL DEFAULT pg_current_xact_id(),
    tbl              text         NOT NULL,                  -- the table that changed
    prop_id          integer,
    acct_id          integer,
    chg_of_owner_id  integer,
    op               char(1)      NOT NULL,                  -- I insert, U/u update, D delete
    at               timestamptz  NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS change_log_txid_idx ON change_log (txid);

-- The row trigger of every captured table; TG_ARGV[0] names the key column(s). An update
-- is logged under the old key, and under the new one too when the key itself changed.
-- Row triggers with a WHEN clause, not statement triggers with transition tables: measured
-- at a million parcels they cost the same on changed rows, and a touched-but-unchanged
-- row never even calls the function (statement triggers have to compare the old and new
-- transition tables, which made a 10,000-row no-op update 80% slower).
CREATE OR REPLACE FUNCTION pacs_change_log() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    op char(1) := left(TG_OP, 1);
BEGIN
    -- A mailing address the sync itself wrote (the crm-to-pacs pair, through the pacs
    -- adapter's account_mail entity, which sets tfsync.origin for its transaction) is not
    -- a change of PACS: logging it would send it straight back to the CRM
    -- (docs/decisions.md, "CRM and PACS without ping-pong").
    IF TG_TABLE_NAME = 'address' AND current_setting('tfsync.origin', true) = 'sync' THEN
        RETURN NULL;
    END IF;
    -- 'u': an update that left alone every column another entity depends on (owner and
    -- sale records use a property's geo ids, its value row's year, supplement and
    -- retirement, an account's name and confidentiality), so only the property entity
    -- reads it, and a change of values or of an e-mail address reads no owner or sale.
    IF TG_OP = 'UPDATE' THEN
        IF TG_TABLE_NAME = 'property' THEN
            IF (NEW.prop_id, NEW.geo_id, NEW.simple_geo_id)
               IS NOT DISTINCT FROM (OLD.prop_id, OLD.geo_id, OLD.simple_geo_id) THEN
                op := 'u';
            END IF;
        ELSIF TG_TABLE_NAME = 'property_val' THEN
            IF (NEW.prop_id, NEW.prop_val_yr, NEW.sup_num, NEW.prop_inactive_dt)
               IS NOT DISTINCT FROM (OLD.prop_id, OLD.prop_val_yr, OLD.sup_num, OLD.prop_inactive_dt) THEN
                op := 'u';
            END IF;
        ELSIF TG_TABLE_NAME = 'account' THEN
            IF (NEW.acct_id, NEW.file_as_name, NEW.confidential_flag)
               IS NOT DISTINCT FROM (OLD.acct_id, OLD.file_as_name, OLD.confidential_flag) THEN
                op := 'u';
            END IF;
        END IF;
    END IF;
    IF TG_ARGV[0] = 'prop_id' THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO change_log (tbl, prop_id, op) VALUES (TG_TABLE_NAME, OLD.prop_id, op);
        END IF;
        IF TG_OP = 'INSERT' OR NEW.prop_id IS DISTINCT FROM OLD.prop_id THEN
            INSERT INTO change_log (tbl, prop_id, op) VALUES (TG_TABLE_NAME, NEW.prop_id, op);
        END IF;
    ELSIF TG_ARGV[0] = 'prop_id, owner_id' THEN
        -- owner: its property and its account (acct_id), so that the account entity
        -- finds an account whose ownership was removed, whose row is gone.
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO change_log (tbl, prop_id, acct_id, op)
            VALUES (TG_TABLE_NAME, OLD.prop_id, OLD.owner_id, op);
        END IF;
        IF TG_OP = 'INSERT' OR (NEW.prop_id, NEW.owner_id)
                               IS DISTINCT FROM (OLD.prop_id, OLD.owner_id) THEN
            INSERT INTO change_log (tbl, prop_id, acct_id, op)
            VALUES (TG_TABLE_NAME, NEW.prop_id, NEW.owner_id, op);
        END IF;
    ELSIF TG_ARGV[0] = 'acct_id' THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO change_log (tbl, acct_id, op) VALUES (TG_TABLE_NAME, OLD.acct_id, op);
        END IF;
        IF TG_OP = 'INSERT' OR NEW.acct_id IS DISTINCT FROM OLD.acct_id THEN
            INSERT INTO change_log (tbl, acct_id, op) VALUES (TG_TABLE_NAME, NEW.acct_id, op);
        END IF;
    ELSIF TG_ARGV[0] = 'chg_of_owner_id' THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO change_log (tbl, chg_of_owner_id, op)
            VALUES (TG_TABLE_NAME, OLD.chg_of_owner_id, op);
        END IF;
        IF TG_OP = 'INSERT' OR NEW.chg_of_owner_id IS DISTINCT FROM OLD.chg_of_owner_id THEN
            INSERT INTO change_log (tbl, chg_of_owner_id, op)
            VALUES (TG_TABLE_NAME, NEW.chg_of_owner_id, op);
        END IF;
    ELSIF TG_ARGV[0] = 'chg_of_owner_id, prop_id' THEN
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO change_log (tbl, chg_of_owner_id, prop_id, op)
            VALUES (TG_TABLE_NAME, OLD.chg_of_owner_id, OLD.prop_id, op);
        END IF;
        IF TG_OP = 'INSERT' OR (NEW.chg_of_owner_id, NEW.prop_id)
                               IS DISTINCT FROM (OLD.chg_of_owner_id, OLD.prop_id) THEN
            INSERT INTO change_log (tbl, chg_of_owner_id, prop_id, op)
            VALUES (TG_TABLE_NAME, NEW.chg_of_owner_id, NEW.prop_id, op);
        END IF;
    ELSE
        RAISE EXCEPTION 'pacs_change_log: unknown key "%" on table %', TG_ARGV[0], TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;

-- pacs_cl_ins/upd/del on each table. An update that changes nothing (a touched row) logs
-- nothing. TRUNCATE is not captured: after one, run a full sync.

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON property
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON property
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON property
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON property_val
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON property_val
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON property_val
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON situs
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON situs
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON situs
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON property_exemption
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON property_exemption
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON property_exemption
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON owner
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id, owner_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON owner
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('prop_id, owner_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON owner
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('prop_id, owner_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON account
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('acct_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON account
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('acct_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('acct_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON address
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('acct_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON address
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('acct_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON address
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('acct_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON sale
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('chg_of_owner_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON sale
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('chg_of_owner_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON sale
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('chg_of_owner_id');

CREATE OR REPLACE TRIGGER pacs_cl_ins AFTER INSERT ON chg_of_owner_prop_assoc
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('chg_of_owner_id, prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_upd AFTER UPDATE ON chg_of_owner_prop_assoc
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pacs_change_log('chg_of_owner_id, prop_id');
CREATE OR REPLACE TRIGGER pacs_cl_del AFTER DELETE ON chg_of_owner_prop_assoc
    FOR EACH ROW EXECUTE FUNCTION pacs_change_log('chg_of_owner_id, prop_id');
