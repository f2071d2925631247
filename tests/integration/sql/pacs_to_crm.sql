-- tests/integration/sql/pacs_to_crm.sql — the PACS -> CRM contact mapping of
-- transforms/pacs_to_crm.lua (the pacs adapter's account entity, the crm adapter's contact
-- entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly the contact fields the script writes, in the crm adapter's order
-- (first_name, last_name, email and phone are never sent); psql variable :roll_year; no
-- ORDER BY, no trailing semicolon, no double dashes outside comments.
--
-- Same rules as the script:
--   * every account that owns (any share) a property at its roll year property_val row of
--     the highest sup_num, not retired, is one contact, id = its account id;
--   * a confidential account (confidential_flag 'T') is 'CONFIDENTIAL OWNER' with no
--     address and do_not_publish true;
--   * else its name and mailing address (primary first, then type 'M') as PACS keeps
--     them, the ZIP split into its five digits and the four after an optional dash.
WITH pv AS (
    SELECT DISTINCT ON (prop_id) prop_id, prop_val_yr, sup_num, prop_inactive_dt
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), owners AS (
    SELECT DISTINCT o.owner_id AS acct_id
    FROM owner o
    JOIN pv ON pv.prop_id = o.prop_id AND o.sup_num = pv.sup_num
    WHERE o.owner_tax_yr = :roll_year AND pv.prop_inactive_dt IS NULL
), mail AS (
    SELECT DISTINCT ON (acct_id) *
    FROM address
    ORDER BY acct_id, primary_addr = 'Y' DESC, addr_type_cd = 'M' DESC, addr_type_cd
)
SELECT
    a.acct_id::bigint AS id,
    CASE WHEN a.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER' ELSE a.file_as_name END
        AS display_name,
    a.confidential_flag = 'T' AS do_not_publish,
    CASE WHEN a.confidential_flag = 'T' THEN NULL ELSE m.addr_line1 END AS mail_line1,
    CASE WHEN a.confidential_flag = 'T' THEN NULL ELSE m.addr_line2 END AS mail_line2,
    CASE WHEN a.confidential_flag = 'T' THEN NULL ELSE m.addr_city END AS mail_city,
    CASE WHEN a.confidential_flag = 'T' THEN NULL ELSE m.addr_state END AS mail_state,
    CASE WHEN a.confidential_flag = 'T' THEN NULL
         ELSE substring(m.addr_zip FROM '^([0-9]{5})(-?[0-9]{4})?$') END AS mail_zip5,
    CASE WHEN a.confidential_flag = 'T' THEN NULL
         ELSE substring(m.addr_zip FROM '^[0-9]{5}-?([0-9]{4})$') END AS mail_zip4
FROM owners f
JOIN account a ON a.acct_id = f.acct_id
LEFT JOIN mail m ON m.acct_id = a.acct_id
