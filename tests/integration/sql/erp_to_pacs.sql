-- tests/integration/sql/erp_to_pacs.sql — the ERP -> PACS payment-status mapping of
-- transforms/erp_to_pacs.lua, over the payment rows the test dropped in the inbox, loaded
-- as table erp_payment_in (the file's columns) with the row's file and line.
--
-- Columns exactly bill_status's, in its order; no ORDER BY, no trailing semicolon, no
-- double dashes outside comments. The last row of a bill_id (by file, then line) wins;
-- cents become dollars with two decimals; codes PD PP DU DQ VD become PAID PARTIAL DUE
-- DELINQUENT VOID.
SELECT DISTINCT ON (bill_id)
    bill_id,
    prop_id,
    tax_year,
    (amount_due_cents / 100.0)::numeric(14, 2) AS amount_due,
    (amount_paid_cents / 100.0)::numeric(14, 2) AS amount_paid,
    CASE upper(btrim(payment_status_type_cd))
        WHEN 'PD' THEN 'PAID' WHEN 'PP' THEN 'PARTIAL' WHEN 'DU' THEN 'DUE'
        WHEN 'DQ' THEN 'DELINQUENT' WHEN 'VD' THEN 'VOID' END AS payment_status,
    last_modified AS erp_modified
FROM erp_payment_in
ORDER BY bill_id, file DESC, line DESC
