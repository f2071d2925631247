-- tests/integration/sql/pacs_owner_to_gis.sql — the PACS -> GIS owner mapping of
-- transforms/pacs_owner_to_gis.lua (the pacs adapter's owner entity, the gis adapter's
-- parcel_owner entity), written independently as one SELECT over the PACS tables.
--
-- Columns exactly the taxparcel owner columns parcel_owner writes, in its order; psql
-- variable :roll_year; no ORDER BY, no trailing semicolon, no double dashes outside
-- comments. Only parcels with some owner information (an all-null row is what a
-- never-synced GIS parcel holds too), as the test compares them.
--
-- Same rules as the script:
--   * the roll year's property_val row at the highest sup_num, not retired; real property;
--   * owners of that row ranked by pct_ownership descending, then owner_id;
--   * a confidential owner (confidential_flag 'T') is 'CONFIDENTIAL OWNER', and when it
--     is the first owner no address column is published;
--   * PSTLADDRESS: address lines 1 and 2, trimmed, empty ones left out, ', ' apart;
--     PSTLCITY upper-cased; PSTLSTATE trimmed and upper-cased; PSTLZIP5 the ZIP's first
--     five characters when they are digits (after trimming).
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
), owners AS (
    SELECT prop_id,
           max(owner_id) FILTER (WHERE rank = 1) AS id1,
           max(owner_id) FILTER (WHERE rank = 2) AS id2
    FROM ranked
    GROUP BY prop_id
), mail AS (
    SELECT DISTINCT ON (acct_id) *
    FROM address
    ORDER BY acct_id, primary_addr = 'Y' DESC, addr_type_cd = 'M' DESC, addr_type_cd
), r AS (
    SELECT
        coalesce(p.simple_geo_id, translate(p.geo_id, ' -', '')) AS "PARCELID",
        CASE WHEN a1.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER'
             ELSE a1.file_as_name END AS "OWNERNME1",
        CASE WHEN a2.confidential_flag = 'T' THEN 'CONFIDENTIAL OWNER'
             ELSE a2.file_as_name END AS "OWNERNME2",
        CASE WHEN a1.confidential_flag = 'T' THEN NULL
             ELSE nullif(concat_ws(', ', nullif(btrim(m.addr_line1, E' \t\n\x0B\f\r'), ''),
                                   nullif(btrim(m.addr_line2, E' \t\n\x0B\f\r'), '')), '')
             END AS "PSTLADDRESS",
        CASE WHEN a1.confidential_flag = 'T' THEN NULL
             ELSE upper(m.addr_city COLLATE "C") END AS "PSTLCITY",
        CASE WHEN a1.confidential_flag = 'T' THEN NULL
             ELSE upper(btrim(m.addr_state, E' \t\n\x0B\f\r') COLLATE "C") END AS "PSTLSTATE",
        CASE WHEN a1.confidential_flag = 'T' THEN NULL
             ELSE substring(btrim(m.addr_zip, E' \t\n\x0B\f\r') FROM '^([0-9]{5})') END
            AS "PSTLZIP5"
    FROM pv
    JOIN property p ON p.prop_id = pv.prop_id
    LEFT JOIN owners o ON o.prop_id = pv.prop_id
    LEFT JOIN account a1 ON a1.acct_id = o.id1
    LEFT JOIN account a2 ON a2.acct_id = o.id2
    LEFT JOIN mail m ON m.acct_id = o.id1
    WHERE pv.prop_inactive_dt IS NULL AND p.prop_type_cd = 'R'
)
SELECT * FROM r
WHERE num_nonnulls("OWNERNME1", "OWNERNME2", "PSTLADDRESS", "PSTLCITY", "PSTLSTATE",
                   "PSTLZIP5") > 0
