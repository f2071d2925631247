-- tests/integration/sql/pacs_to_erp_value.sql — the PACS -> ERP billing-roll value mapping
-- of transforms/pacs_value_to_erp.lua (the pacs adapter's property entity, the erp
-- adapter's roll_value entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly roll_value's, in its order; psql variable :roll_year; no ORDER BY, no
-- trailing semicolon, no double dashes outside comments.
--
-- Same rules as the script: the roll year's property_val row at the highest sup_num, not
-- retired, every type; taxable_value the assessed value, 0 with an EX exemption;
-- exemption_codes that year's and supplement's distinct codes in code order, ';' apart,
-- null when none.
WITH pv AS (
    SELECT DISTINCT ON (prop_id) *
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ex AS (
    SELECT prop_id, sup_num, string_agg(c, ';' ORDER BY c COLLATE "C") AS codes,
           bool_or(c = 'EX') AS has_ex
    FROM (SELECT DISTINCT prop_id, sup_num, exmpt_type_cd AS c
          FROM property_exemption WHERE exmpt_tax_yr = :roll_year) d
    GROUP BY prop_id, sup_num
)
SELECT
    pv.prop_id,
    pv.prop_val_yr AS tax_year,
    CASE WHEN ex.has_ex THEN 0 ELSE pv.assessed_val END AS taxable_value,
    ex.codes AS exemption_codes
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
LEFT JOIN ex ON ex.prop_id = pv.prop_id AND ex.sup_num = pv.sup_num
WHERE pv.prop_inactive_dt IS NULL
