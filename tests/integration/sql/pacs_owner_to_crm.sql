-- tests/integration/sql/pacs_owner_to_crm.sql — the PACS -> CRM parcel mapping of
-- transforms/pacs_owner_to_crm.lua (the pacs adapter's owner entity, the crm adapter's
-- contact_property entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly the contact_property fields, in the crm adapter's order; psql variable
-- :roll_year; no ORDER BY, no trailing semicolon, no double dashes outside comments.
--
-- Same rules as the script: every owner row of a property's roll year property_val row at
-- the highest sup_num, not retired, is one parcel of the owner's contact, with the
-- property's geo_id; primary_owner for the largest share (ties by the lower owner_id).
WITH pv AS (
    SELECT DISTINCT ON (prop_id) prop_id, prop_val_yr, sup_num, prop_inactive_dt
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
)
SELECT
    o.owner_id::bigint AS contact_id,
    o.prop_id::bigint AS prop_id,
    pv.prop_val_yr::bigint AS tax_year,
    p.geo_id AS geo_id,
    row_number() OVER (PARTITION BY o.prop_id
                       ORDER BY o.pct_ownership DESC, o.owner_id) = 1 AS primary_owner
FROM owner o
JOIN pv ON pv.prop_id = o.prop_id AND o.sup_num = pv.sup_num
JOIN property p ON p.prop_id = o.prop_id
WHERE o.owner_tax_yr = :roll_year AND pv.prop_inactive_dt IS NULL
