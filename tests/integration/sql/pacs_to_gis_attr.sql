-- tests/integration/sql/pacs_to_gis_attr.sql — the PACS -> GIS attribute mapping of
-- transforms/pacs_to_gis.lua (the pacs adapter's property entity, the gis adapter's
-- parcel_attr entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly the GIS taxparcel attribute columns parcel_attr writes, in its order;
-- psql variable :roll_year; no ORDER BY and no trailing semicolon (wrapped in COPY (...)).
-- Keep it free of double dashes outside comments.
--
-- Same rules as the adapter and the script:
--   * property_val: the roll year's row at the highest sup_num, not retired;
--   * only real property (prop_type_cd 'R');
--   * SITEADDRESS: the primary situs (primary_situs 'Y', else the lowest situs_id): number,
--     prefix, street, suffix and 'UNIT ' || unit, each trimmed, empty ones left out, one
--     space apart, upper-cased (ASCII); null when none is there; the suffix as in
--     lookups/street_suffix.csv after trimming, upper-casing and dropping trailing
--     periods, kept (normalised) when not listed;
--   * USEDSCRP from transforms/lookups/land_use.csv;
--   * LNDVALUE = land homestead + non-homestead, IMPVALUE = improvements, CNTASSDVAL the
--     assessed value, CNTTXBLVAL the assessed value or 0 with an EX exemption.
WITH pv AS (
    SELECT DISTINCT ON (prop_id) *
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ps AS (
    SELECT DISTINCT ON (prop_id) *
    FROM situs
    ORDER BY prop_id, coalesce(primary_situs = 'Y', false) DESC, situs_id
), ex AS (
    SELECT prop_id, sup_num, bool_or(exmpt_type_cd = 'EX') AS has_ex
    FROM property_exemption
    WHERE exmpt_tax_yr = :roll_year
    GROUP BY prop_id, sup_num
), sfx (code, abbr) AS (
    VALUES
        ('AV', 'AVE'), ('AVE', 'AVE'), ('AVEN', 'AVE'), ('AVENU', 'AVE'),
        ('AVENUE', 'AVE'), ('AVN', 'AVE'), ('AVNUE', 'AVE'), ('BEND', 'BND'),
        ('BND', 'BND'), ('BLVD', 'BLVD'), ('BOUL', 'BLVD'), ('BOULEVARD', 'BLVD'),
        ('BOULV', 'BLVD'), ('CIR', 'CIR'), ('CIRC', 'CIR'), ('CIRCL', 'CIR'),
        ('CIRCLE', 'CIR'), ('CRCL', 'CIR'), ('CRCLE', 'CIR'), ('COURT', 'CT'),
        ('CRT', 'CT'), ('CT', 'CT'), ('COVE', 'CV'), ('CV', 'CV'), ('CROSSING', 'XING'),
        ('CRSSNG', 'XING'), ('XING', 'XING'), ('DR', 'DR'), ('DRIV', 'DR'),
        ('DRIVE', 'DR'), ('DRV', 'DR'), ('EXPRESSWAY', 'EXPY'), ('EXPY', 'EXPY'),
        ('FREEWAY', 'FWY'), ('FWY', 'FWY'), ('HIGHWAY', 'HWY'), ('HIGHWY', 'HWY'),
        ('HIWAY', 'HWY'), ('HIWY', 'HWY'), ('HWAY', 'HWY'), ('HWY', 'HWY'),
        ('HOLLOW', 'HOLW'), ('HOLW', 'HOLW'), ('LANE', 'LN'), ('LN', 'LN'),
        ('LOOP', 'LOOP'), ('LP', 'LOOP'), ('PARKWAY', 'PKWY'), ('PARKWY', 'PKWY'),
        ('PKWAY', 'PKWY'), ('PKWY', 'PKWY'), ('PKY', 'PKWY'), ('PATH', 'PATH'),
        ('PL', 'PL'), ('PLACE', 'PL'), ('POINT', 'PT'), ('PT', 'PT'), ('RD', 'RD'),
        ('ROAD', 'RD'), ('RUN', 'RUN'), ('SQ', 'SQ'), ('SQUARE', 'SQ'), ('ST', 'ST'),
        ('STR', 'ST'), ('STREET', 'ST'), ('STRT', 'ST'), ('TER', 'TER'), ('TERR', 'TER'),
        ('TERRACE', 'TER'), ('TRAIL', 'TRL'), ('TRAILS', 'TRL'), ('TRL', 'TRL'),
        ('TRLS', 'TRL'), ('WAY', 'WAY'), ('WY', 'WAY')
), use_cd(code, descr) AS (
    VALUES ('SFR', 'SINGLE FAMILY RESIDENCE'), ('MHL', 'MOBILE HOME ON LAND'),
           ('MFR', 'MULTI-FAMILY RESIDENCE'), ('APT', 'APARTMENTS'), ('DPX', 'DUPLEX'),
           ('VAC', 'VACANT LOT'), ('AG', 'AGRICULTURAL'), ('RUR', 'RURAL RESIDENCE'),
           ('RET', 'RETAIL'), ('OFF', 'OFFICE'), ('REST', 'RESTAURANT'),
           ('WHSE', 'WAREHOUSE'), ('IND', 'INDUSTRIAL'), ('INV', 'INVENTORY'),
           ('EXM', 'EXEMPT')
)
SELECT
    coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS "PARCELID",
    nullif(upper(concat_ws(' ',
        nullif(btrim(ps.situs_num, E' \t\n\x0B\f\r'), ''),
        nullif(btrim(ps.situs_street_prefx, E' \t\n\x0B\f\r'), ''),
        nullif(btrim(ps.situs_street, E' \t\n\x0B\f\r'), ''),
        coalesce(sfx.abbr, nullif(x.suffix, '')),
        'UNIT ' || nullif(btrim(ps.situs_unit, E' \t\n\x0B\f\r'), '')) COLLATE "C"), '')
        AS "SITEADDRESS",
    pv.legal_desc AS "PRPRTYDSCRP",
    pv.property_use_cd AS "USECD",
    u.descr AS "USEDSCRP",
    pv.hood_cd AS "NGHBRHDCD",
    p.state_cd AS "CLASSCD",
    coalesce(pv.land_hstd_val, 0) + coalesce(pv.land_non_hstd_val, 0) AS "LNDVALUE",
    coalesce(pv.imprv_hstd_val, 0) + coalesce(pv.imprv_non_hstd_val, 0) AS "IMPVALUE",
    pv.assessed_val AS "CNTASSDVAL",
    CASE WHEN ex.has_ex THEN 0 ELSE pv.assessed_val END AS "CNTTXBLVAL"
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
LEFT JOIN ps ON ps.prop_id = pv.prop_id
LEFT JOIN ex ON ex.prop_id = pv.prop_id AND ex.sup_num = pv.sup_num
LEFT JOIN use_cd u ON u.code = pv.property_use_cd
CROSS JOIN LATERAL (
    SELECT btrim(rtrim(upper(btrim(ps.situs_street_sufix, E' \t\n\x0B\f\r') COLLATE "C"), '.'),
                 E' \t\n\x0B\f\r') AS suffix
) x
LEFT JOIN sfx ON sfx.code = x.suffix
WHERE pv.prop_inactive_dt IS NULL AND p.prop_type_cd = 'R'
