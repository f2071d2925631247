-- plugins/pacs/schema.sql — the demo PACS database (Harris Govern PACS field names).
--
-- A simplified slice of a PACS appraisal database: properties, their yearly values per
-- supplement, situs addresses, owner accounts with mailing addresses, ownership,
-- exemptions and sales. Demos, tests and benchmarks run it into a fresh database and fill
-- it with pacs_generate() from generate.sql. Money is numeric(14,0) as in PACS; tax years
-- are integers. Foreign keys are left out on purpose: the real PACS enforces few of them
-- and the generator loads a million parcels set-based, in dependency order anyway.
-- Indexes serve what the adapter reads: a property by prop_id, its value row for a year at
-- the highest sup_num, its situs rows, its exemptions for a (year, sup_num), and the
-- properties of an owner account (an account change is a change of each of them).

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
