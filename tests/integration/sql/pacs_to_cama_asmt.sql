-- tests/integration/sql/pacs_to_cama_asmt.sql — the PACS -> CAMA asmt mapping of
-- transforms/pacs_to_cama.lua, written independently as one SELECT over the PACS tables.
--
-- Used like pacs_to_cama_pardat.sql (integration tests, physical-limit benchmark): columns
-- exactly asmt's without wen and who, in asmt's order; psql variable :roll_year; no ORDER
-- BY and no trailing semicolon, so that it can be wrapped in COPY (...).
--
-- Same rules as the Lua script:
--   * property_val: the roll year's row at the highest sup_num of each property;
--   * exemptions: property_exemption rows of that year and that sup_num; valclass is 'EX'
--     when one of them is EX, else 'HS' when one is HS, else the parcel's class
--     (lookups/state_cd_class.csv: whole code, then its first letter, else 'O');
--   * valapr1 = land_hstd_val + land_non_hstd_val + ag_use_val, valapr2 = imprv_hstd_val +
--     imprv_non_hstd_val, valapr3 = their sum, valasm1/2 = valapr1/2, valasm3 =
--     assessed_val; a null counts as 0 in the sums (assessed_val stays as it is).
WITH pv AS (
    SELECT DISTINCT ON (prop_id) *
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ex AS (
    SELECT prop_id, sup_num,
           bool_or(exmpt_type_cd = 'EX') AS has_ex,
           bool_or(exmpt_type_cd = 'HS') AS has_hs
    FROM property_exemption
    WHERE exmpt_tax_yr = :roll_year
    GROUP BY prop_id, sup_num
)
SELECT
    coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS parid,
    pv.prop_val_yr AS taxyr,
    0 AS seq,
    'Y' AS cur,
    CASE
        WHEN ex.has_ex THEN 'EX'
        WHEN ex.has_hs THEN 'HS'
        ELSE CASE x.state_cd
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
        END
    END AS valclass,
    x.land AS valapr1,
    x.building AS valapr2,
    x.land + x.building AS valapr3,
    x.land AS valasm1,
    x.building AS valasm2,
    pv.assessed_val AS valasm3,
    pv.prop_inactive_dt AS deactivat
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
LEFT JOIN ex ON ex.prop_id = pv.prop_id AND ex.sup_num = pv.sup_num
CROSS JOIN LATERAL (
    SELECT upper(btrim(p.state_cd, E' \t\n\x0B\f\r') COLLATE "C") AS state_cd,
           coalesce(pv.land_hstd_val, 0) + coalesce(pv.land_non_hstd_val, 0)
               + coalesce(pv.ag_use_val, 0) AS land,
           coalesce(pv.imprv_hstd_val, 0) + coalesce(pv.imprv_non_hstd_val, 0) AS building
) x
-- A retired property is a deletion (the PACS adapter's retired_as_delete, on by default).
WHERE pv.prop_inactive_dt IS NULL
