-- tests/integration/sql/pacs_owner_to_cama_owndat.sql — the PACS -> CAMA owndat mapping of
-- transforms/pacs_owner_to_cama.lua (with the pacs adapter's owner entity), written
-- independently as one SELECT over the PACS tables.
--
-- Used like pacs_to_cama_pardat.sql: columns exactly owndat's without wen and who, in
-- owndat's order; psql variable :roll_year; no ORDER BY and no trailing semicolon, so that
-- it can be wrapped in COPY (...). Keep it free of double dashes outside comments.
--
-- Same rules as the adapter and the script:
--   * property_val: the roll year's row at the highest sup_num; a retired one
--     (prop_inactive_dt set) is left out, as the adapter does by default
--     (retired_as_delete true; with false, drop that condition);
--   * owners: the owner rows of that year and sup_num, ranked by pct_ownership descending,
--     then owner_id; own1/own2 are the first two (pivoted in one aggregate, so that the
--     ranking is read once); a property without owner rows has no row;
--   * a confidential owner (account.confidential_flag 'T') is 'CONFIDENTIAL OWNER', and
--     when it is the first owner the address columns are null;
--   * the mailing address is the first owner's address row, primary first, then type 'M',
--     then by type; cityname upper-cased, statecode trimmed and upper-cased (ASCII only,
--     hence COLLATE "C");
--   * pctown is the first owner's pct_ownership.
WITH pv AS (
    SELECT DISTINCT ON (prop_id) prop_id, prop_val_yr, sup_num, prop_inactive_dt
    FROM property_val
    WHERE prop_val_yr = :roll_year
    ORDER BY prop_id, sup_num DESC
), ranked AS (
    SELECT o.prop_id, o.owner_id, o.pct_ownership,
           row_number() OVER (PARTITION BY o.prop_id
                              ORDER BY o.pct_ownership DESC, o.owner_id) AS rank
    FROM owner o
    JOIN pv ON pv.prop_id = o.prop_id AND o.sup_num = pv.sup_num
    WHERE o.owner_tax_yr = :roll_year
), owners AS (
    SELECT prop_id,
           max(owner_id) FILTER (WHERE rank = 1) AS id1,
           max(owner_id) FILTER (WHERE rank = 2) AS id2,
           max(pct_ownership) FILTER (WHERE rank = 1) AS pct1
    FROM ranked
    GROUP BY prop_id
), mail AS (
    SELECT DISTINCT ON (acct_id) *
    FROM address
    ORDER BY acct_id, primary_addr = 'Y' DESC, addr_type_cd = 'M' DESC, addr_type_cd
)
SELECT
    coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS parid,
    pv.prop_val_yr AS taxyr,
    0 AS seq,
    'Y' AS cur,
    CASE WHEN a1.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER' ELSE a1.file_as_name END
        AS own1,
    CASE WHEN a2.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER' ELSE a2.file_as_name END
        AS own2,
    CASE WHEN a1.confidential_flag = 'T' THEN NULL ELSE m.addr_line1 END AS addr1,
    CASE WHEN a1.confidential_flag = 'T' THEN NULL ELSE m.addr_line2 END AS addr2,
    CASE WHEN a1.confidential_flag = 'T' THEN NULL
         ELSE upper(m.addr_city COLLATE "C") END AS cityname,
    CASE WHEN a1.confidential_flag = 'T' THEN NULL
         ELSE upper(btrim(m.addr_state, E' \t\n\x0B\f\r') COLLATE "C") END AS statecode,
    CASE WHEN a1.confidential_flag = 'T' THEN NULL ELSE m.addr_zip END AS zip1,
    o.pct1 AS pctown,
    pv.prop_inactive_dt AS deactivat
FROM pv
JOIN property p ON p.prop_id = pv.prop_id
JOIN owners o ON o.prop_id = pv.prop_id
LEFT JOIN account a1 ON a1.acct_id = o.id1
LEFT JOIN account a2 ON a2.acct_id = o.id2
LEFT JOIN mail m ON m.acct_id = o.id1
WHERE pv.prop_inactive_dt IS NULL
