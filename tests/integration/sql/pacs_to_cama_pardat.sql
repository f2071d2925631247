-- tests/integration/sql/pacs_to_cama_pardat.sql — the PACS -> CAMA pardat mapping of
-- transforms/pacs_to_cama.lua, written independently as one SELECT over the PACS tables.
--
-- The integration tests compare tfsyncd's CAMA rows with what this query gives, and the
-- benchmarks use it as the physical limit:
--   psql -v roll_year=2026 -c "COPY (<this query>) TO STDOUT" pacs | psql -c "COPY pardat
--   (parid, taxyr, ...) FROM STDIN" cama
-- Columns: exactly pardat's, without wen and who, in pardat's order. Needs the psql
-- variable :roll_year. No ORDER BY (sort when comparing) and no trailing semicolon, so that
-- it can be wrapped in COPY (...). Keep it free of double dashes outside comments.
--
-- Same rules as the Lua script, spelled out for SQL:
--   * property_val: the roll year's row at the highest sup_num of each property;
--   * situs: the primary one (primary_situs = 'Y'), else the lowest situs_id; none: nulls;
--   * trimming means the ASCII blanks space, \t, \n, \v, \f, \r (tf.trim), upper-casing is
--     ASCII only (tf.upper), hence COLLATE "C";
--   * class: lookups/state_cd_class.csv, whole code first, then its first letter, else 'O';
--   * adrsuf: lookups/street_suffix.csv after trimming, upper-casing and dropping trailing
--     periods; a suffix not listed is kept (normalised).
WITH pv AS (
    SELECT DISTINCT ON (prop_id) *
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ps AS (
    SELECT DISTINCT ON (prop_id) *
    FROM situs
    ORDER BY prop_id, coalesce(primary_situs = 'Y', false) DESC, situs_id
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
)
SELECT
    coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS parid,
    pv.prop_val_yr AS taxyr,
    0 AS seq,
    'Y' AS cur,
    CASE x.state_cd
        WHEN 'F1' THEN 'C'
        WHEN 'F2' THEN 'I'
        ELSE CASE left(x.state_cd, 1)
            WHEN 'A' THEN 'R'
            WHEN 'B' THEN 'R'
            WHEN 'C' THEN 'V'
            WHEN 'D' THEN 'A'
            WHEN 'E' THEN 'A'
            WHEN 'L' THEN 'O'
            WHEN 'M' THEN 'R'
            WHEN 'O' THEN 'O'
            ELSE 'O'
        END
    END AS class,
    pv.property_use_cd AS luc,
    pv.hood_cd AS nbhd,
    pv.legal_acreage AS acres,
    CASE WHEN length(x.digits) <= 9 THEN x.digits::integer END AS adrno,
    nullif(btrim(CASE WHEN length(x.digits) <= 9 THEN substr(x.num, length(x.digits) + 1)
                      ELSE x.num END, E' \t\n\x0B\f\r'), '') AS adradd,
    upper(ps.situs_street_prefx COLLATE "C") AS adrdir,
    upper(btrim(ps.situs_street, E' \t\n\x0B\f\r') COLLATE "C") AS adrstr,
    coalesce(sfx.abbr, x.suffix) AS adrsuf,
    ps.situs_unit AS unitno,
    upper(ps.situs_city COLLATE "C") AS cityname,
    upper(ps.situs_state COLLATE "C") AS statecode,
    ps.situs_zip AS postalcode,
    p.zoning AS zoning,
    pv.prop_inactive_dt AS deactivat
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
LEFT JOIN ps ON ps.prop_id = pv.prop_id
CROSS JOIN LATERAL (
    SELECT upper(btrim(p.state_cd, E' \t\n\x0B\f\r') COLLATE "C") AS state_cd,
           btrim(ps.situs_num, E' \t\n\x0B\f\r') AS num,
           substring(btrim(ps.situs_num, E' \t\n\x0B\f\r') FROM '^[0-9]+') AS digits,
           btrim(rtrim(upper(btrim(ps.situs_street_sufix, E' \t\n\x0B\f\r') COLLATE "C"), '.'),
                 E' \t\n\x0B\f\r') AS suffix
) x
LEFT JOIN sfx ON sfx.code = x.suffix
-- A retired property is a deletion (the PACS adapter's retired_as_delete, on by default).
WHERE pv.prop_inactive_dt IS NULL
