-- plugins/cama/schema.sql — the demo CAMA database (Tyler iasWorld flavoured names).
--
-- The mass-appraisal side of the demo: parcels (pardat), assessed values (asmt),
-- dwellings (dweldat), land lines (land), owners (owndat) and sales. As in iasWorld every
-- table carries parid, taxyr, seq, cur ('Y' current), wen (last change), who (who changed
-- it) and deactivat (the date a record was retired). tfsync writes pardat, asmt, owndat and
-- sales (wen and who are set by the adapter on every write); dweldat and land exist so that
-- the demo looks like a CAMA database and for later mappings.
--
-- The CHECK constraints are the target's own integrity rules: a row that breaks one is
-- refused by CAMA, and the adapter reports that one operation as failed while the rest of
-- its batch commits.

CREATE TABLE IF NOT EXISTS pardat (
    parid       varchar(30)   NOT NULL,
    taxyr       integer       NOT NULL,
    seq         integer       NOT NULL DEFAULT 0,
    cur         varchar(1)    NOT NULL DEFAULT 'Y',
    class       varchar(5),                 -- R residential, C commercial, I industrial, A ag, ...
    luc         varchar(10),                -- land use code
    nbhd        varchar(10),
    acres       numeric(12,4),
    adrno       bigint,                     -- situs house number
    adradd      varchar(10),                -- what follows the number: 'A', '1/2'
    adrdir      varchar(2),
    adrstr      varchar(50),
    adrsuf      varchar(8),
    unitno      varchar(10),
    cityname    varchar(40),
    statecode   varchar(2),
    postalcode  varchar(10),
    zoning      varchar(10),
    deactivat   date,
    wen         timestamptz   NOT NULL DEFAULT now(),
    who         varchar(30)   DEFAULT current_user,
    PRIMARY KEY (parid, taxyr),
    CONSTRAINT pardat_parid_check CHECK (parid <> ''),
    CONSTRAINT pardat_taxyr_check CHECK (taxyr BETWEEN 1900 AND 2200),
    CONSTRAINT pardat_seq_check CHECK (seq >= 0),
    CONSTRAINT pardat_cur_check CHECK (cur IN ('Y', 'N')),
    CONSTRAINT pardat_acres_check CHECK (acres >= 0),
    CONSTRAINT pardat_adrno_check CHECK (adrno >= 0),
    CONSTRAINT pardat_statecode_check CHECK (statecode ~ '^[A-Z]{2}$'),
    CONSTRAINT pardat_postalcode_check CHECK (postalcode ~ '^[0-9]{5}(-?[0-9]{4})?$')
);

CREATE TABLE IF NOT EXISTS asmt (
    parid      varchar(30)    NOT NULL,
    taxyr      integer        NOT NULL,
    seq        integer        NOT NULL DEFAULT 0,
    cur        varchar(1)     NOT NULL DEFAULT 'Y',
    valclass   varchar(5),
    valapr1    numeric(14,0),               -- appraised land
    valapr2    numeric(14,0),               -- appraised building
    valapr3    numeric(14,0),               -- appraised total
    valasm1    numeric(14,0),               -- assessed land
    valasm2    numeric(14,0),               -- assessed building
    valasm3    numeric(14,0),               -- assessed total
    deactivat  date,
    wen        timestamptz    NOT NULL DEFAULT now(),
    who        varchar(30)    DEFAULT current_user,
    PRIMARY KEY (parid, taxyr),
    CONSTRAINT asmt_parid_check CHECK (parid <> ''),
    CONSTRAINT asmt_taxyr_check CHECK (taxyr BETWEEN 1900 AND 2200),
    CONSTRAINT asmt_seq_check CHECK (seq >= 0),
    CONSTRAINT asmt_cur_check CHECK (cur IN ('Y', 'N')),
    CONSTRAINT asmt_values_check CHECK (valapr1 >= 0 AND valapr2 >= 0 AND valapr3 >= 0
                                        AND valasm1 >= 0 AND valasm2 >= 0 AND valasm3 >= 0),
    CONSTRAINT asmt_assessed_check CHECK (valasm3 <= valapr3)
);

CREATE TABLE IF NOT EXISTS dweldat (
    parid      varchar(30)    NOT NULL,
    taxyr      integer        NOT NULL,
    card       integer        NOT NULL DEFAULT 1,
    seq        integer        NOT NULL DEFAULT 0,
    cur        varchar(1)     NOT NULL DEFAULT 'Y',
    yrblt      integer,                     -- year built
    sfla       integer,                     -- finished living area, sq ft
    stories    numeric(4,1),
    rmbed      integer,
    fixbath    integer,
    grade      varchar(5),
    cdu        varchar(5),                  -- condition, desirability, utility
    cond       varchar(5),
    style      varchar(5),
    extwall    varchar(5),
    heat       varchar(5),
    deactivat  date,
    wen        timestamptz    NOT NULL DEFAULT now(),
    who        varchar(30)    DEFAULT current_user,
    PRIMARY KEY (parid, taxyr, card),
    CONSTRAINT dweldat_yrblt_check CHECK (yrblt BETWEEN 1700 AND taxyr + 1),
    CONSTRAINT dweldat_sfla_check CHECK (sfla > 0)
);

CREATE TABLE IF NOT EXISTS land (
    parid      varchar(30)    NOT NULL,
    taxyr      integer        NOT NULL,
    lline      integer        NOT NULL DEFAULT 1,
    seq        integer        NOT NULL DEFAULT 0,
    cur        varchar(1)     NOT NULL DEFAULT 'Y',
    ltype      varchar(5),
    acres      numeric(12,4),
    sf         numeric(14,0),
    price      numeric(14,2),
    zoning     varchar(10),
    deactivat  date,
    wen        timestamptz    NOT NULL DEFAULT now(),
    who        varchar(30)    DEFAULT current_user,
    PRIMARY KEY (parid, taxyr, lline),
    CONSTRAINT land_acres_check CHECK (acres >= 0 AND sf >= 0 AND price >= 0)
);

CREATE TABLE IF NOT EXISTS owndat (
    parid      varchar(30)    NOT NULL,
    taxyr      integer        NOT NULL,
    seq        integer        NOT NULL DEFAULT 0,
    cur        varchar(1)     NOT NULL DEFAULT 'Y',
    own1       varchar(60),                 -- first owner (largest share)
    own2       varchar(60),
    addr1      varchar(60),                 -- mailing address of the first owner
    addr2      varchar(60),
    cityname   varchar(40),
    statecode  varchar(2),
    zip1       varchar(10),
    pctown     numeric(13,10),              -- the first owner's share, percent
    deactivat  date,
    wen        timestamptz    NOT NULL DEFAULT now(),
    who        varchar(30)    DEFAULT current_user,
    PRIMARY KEY (parid, taxyr),
    CONSTRAINT owndat_parid_check CHECK (parid <> ''),
    CONSTRAINT owndat_taxyr_check CHECK (taxyr BETWEEN 1900 AND 2200),
    CONSTRAINT owndat_seq_check CHECK (seq >= 0),
    CONSTRAINT owndat_cur_check CHECK (cur IN ('Y', 'N')),
    CONSTRAINT owndat_pctown_check CHECK (pctown > 0 AND pctown <= 100)
);

-- One row per sale and parcel: a sale that conveyed two parcels has a row for each, under
-- the same deed instrument number.
CREATE TABLE IF NOT EXISTS sales (
    parid      varchar(30)    NOT NULL,
    instruno   varchar(20)    NOT NULL,     -- deed instrument number
    seq        integer        NOT NULL DEFAULT 0,
    cur        varchar(1)     NOT NULL DEFAULT 'Y',
    saledt     date,
    price      numeric(14,0),
    saletype   varchar(5),
    own1       varchar(60),                 -- buyer
    oldown     varchar(60),                 -- seller
    deactivat  date,
    wen        timestamptz    NOT NULL DEFAULT now(),
    who        varchar(30)    DEFAULT current_user,
    PRIMARY KEY (parid, instruno),
    CONSTRAINT sales_parid_check CHECK (parid <> ''),
    CONSTRAINT sales_instruno_check CHECK (instruno <> ''),
    CONSTRAINT sales_seq_check CHECK (seq >= 0),
    CONSTRAINT sales_cur_check CHECK (cur IN ('Y', 'N')),
    CONSTRAINT sales_price_check CHECK (price >= 0)
);
CREATE INDEX IF NOT EXISTS sales_parid_saledt_idx ON sales (parid, saledt);
