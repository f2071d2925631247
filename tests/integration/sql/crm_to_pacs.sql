-- tests/integration/sql/crm_to_pacs.sql — the CRM -> PACS mailing-address mapping of
-- transforms/crm_to_pacs.lua (the crm adapter's contact entity, the pacs adapter's
-- account_mail entity), written independently as one SELECT over crm_contact, the CRM's
-- contacts as the test loads them into a table.
--
-- Columns exactly the address columns account_mail writes, in its order; no ORDER BY, no
-- trailing semicolon, no double dashes outside comments.
--
-- Same rules as the script:
--   * a do_not_publish contact, and one without line 1, city and ZIP, sends nothing;
--   * else its lines, city and state as the CRM holds them, and the ZIP as zip5, or
--     zip5-zip4 when there is a zip4.
SELECT
    id::integer AS acct_id,
    mail_line1 AS addr_line1,
    mail_line2 AS addr_line2,
    mail_city AS addr_city,
    mail_state AS addr_state,
    CASE WHEN mail_zip5 IS NULL THEN NULL
         WHEN mail_zip4 IS NULL THEN mail_zip5
         ELSE mail_zip5 || '-' || mail_zip4 END AS addr_zip
FROM crm_contact
WHERE do_not_publish IS NOT TRUE
  AND num_nonnulls(mail_line1, mail_city, mail_zip5) > 0
