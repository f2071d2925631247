-- tests/integration/sql/pacs_sale_to_cama_sales.sql — the PACS -> CAMA sales mapping of
-- transforms/pacs_sale_to_cama.lua (with the pacs adapter's sale entity), written
-- independently as one SELECT over the PACS tables.
--
-- Used like pacs_to_cama_pardat.sql: columns exactly sales' without wen and who, in sales'
-- order; psql variable :roll_year; no ORDER BY and no trailing semicolon, so that it can be
-- wrapped in COPY (...). Keep it free of double dashes outside comments.
--
-- Same rules as the adapter and the script:
--   * one row per sale and property it conveyed (chg_of_owner_prop_assoc), while the
--     property has a value row for the roll year that is not retired (retired_as_delete
--     true, the default; with false, drop the prop_inactive_dt condition);
--   * confidential sales (confidential_sale 'T') are never exported;
--   * instruno is the PACS chg_of_owner_id as text;
--   * own1 (the buyer) is the property's first owner today: of the roll year's value row at
--     the highest sup_num, largest pct_ownership first, then owner_id; a confidential one
--     is 'CONFIDENTIAL OWNER';
--   * oldown (the seller) and deactivat are null: the demo PACS keeps no seller.
WITH pv AS (
    SELECT DISTINCT ON (prop_id) prop_id, prop_val_yr, sup_num, prop_inactive_dt
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), first_owner AS (
    SELECT DISTINCT ON (o.prop_id) o.prop_id, o.owner_id
    FROM owner o
    JOIN pv ON pv.prop_id = o.prop_id AND o.sup_num = pv.sup_num
    WHERE o.owner_tax_yr = :roll_year
    ORDER BY o.prop_id, o.pct_ownership DESC, o.owner_id
)
SELECT
    coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS parid,
    s.chg_of_owner_id::text AS instruno,
    s.sl_dt AS saledt,
    s.sl_price AS price,
    s.sl_type_cd AS saletype,
    CASE WHEN b.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER' ELSE b.file_as_name END
        AS own1,
    NULL::varchar AS oldown,
    NULL::date AS deactivat
FROM chg_of_owner_prop_assoc a
JOIN sale s ON s.chg_of_owner_id = a.chg_of_owner_id
JOIN property p ON p.prop_id = a.prop_id
JOIN pv ON pv.prop_id = a.prop_id
LEFT JOIN first_owner fo ON fo.prop_id = a.prop_id
LEFT JOIN account b ON b.acct_id = fo.owner_id
WHERE s.confidential_sale IS DISTINCT FROM 'T'
  AND pv.prop_inactive_dt IS NULL
