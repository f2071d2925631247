-- tests/integration/sql/pacs_to_erp_owner.sql — the PACS -> ERP billing-roll owner mapping
-- of transforms/pacs_to_erp.lua (the pacs adapter's owner entity, the erp adapter's
-- roll_owner entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly roll_owner's, in its order; psql variable :roll_year; no ORDER BY, no
-- trailing semicolon, no double dashes outside comments.
--
-- Same rules as the script:
--   * the roll year's property_val row at the highest sup_num, not retired; every type;
--   * the first owner by pct_ownership descending, then owner_id; none: no row;
--   * account: the owner id zero-padded to 10 digits; names and address lines trimmed,
--     empty ones null; city and state upper-cased; the ZIP's digits as 5 or 5-4, else null;
--   * confidential owners in clear (the bill is mailed to them).
WITH pv AS (
    SELECT DISTINCT ON (prop_id) prop_id, prop_val_yr, sup_num, prop_inactive_dt
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ranked AS (
    SELECT o.prop_id, o.owner_id,
           row_number() OVER (PARTITION BY o.prop_id
                              ORDER BY o.pct_ownership DESC, o.owner_id) AS rank
    FROM owner o
    JOIN pv ON pv.prop_id = o.prop_id AND o.sup_num = pv.sup_num
    WHERE o.owner_tax_yr = :roll_year
), mail AS (
    SELECT DISTINCT ON (acct_id) *
    FROM address
    ORDER BY acct_id, primary_addr = 'Y' DESC, addr_type_cd = 'M' DESC, addr_type_cd
)
SELECT
    pv.prop_id,
    pv.prop_val_yr AS tax_year,
    lpad(r.owner_id::text, 10, '0') AS account,
    nullif(btrim(a.file_as_name, E' \t\n\x0B\f\r'), '') AS owner_name,
    nullif(btrim(m.addr_line1, E' \t\n\x0B\f\r'), '') AS mail_line1,
    nullif(btrim(m.addr_line2, E' \t\n\x0B\f\r'), '') AS mail_line2,
    upper(nullif(btrim(m.addr_city, E' \t\n\x0B\f\r'), '') COLLATE "C") AS mail_city,
    upper(nullif(btrim(m.addr_state, E' \t\n\x0B\f\r'), '') COLLATE "C") AS mail_state,
    CASE length(z.d) WHEN 9 THEN substr(z.d, 1, 5) || '-' || substr(z.d, 6)
                     WHEN 5 THEN z.d END AS mail_zip
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
JOIN ranked r ON r.prop_id = pv.prop_id AND r.rank = 1
LEFT JOIN account a ON a.acct_id = r.owner_id
LEFT JOIN mail m ON m.acct_id = r.owner_id
CROSS JOIN LATERAL (
    SELECT regexp_replace(coalesce(btrim(m.addr_zip, E' \t\n\x0B\f\r'), ''), '[^0-9]', '', 'g')
        AS d
) z
WHERE pv.prop_inactive_dt IS NULL
