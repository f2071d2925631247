-- tests/integration/edge_cases.sql — about twenty hand-written PACS parcels, each one an
-- edge the PACS -> CAMA mapping must get right. Roll year 2026. The expected CAMA rows are
-- in expected/edge_cases_pardat.out and expected/edge_cases_asmt.out.
INSERT INTO property (prop_id, prop_type_cd, geo_id, simple_geo_id, state_cd, zoning) VALUES
 (9001, 'R',  '10-100-001-00', '1010000100', 'A1', 'R1'),    -- plain, one situs, homestead
 (9002, 'R',  '10-100-002-00', '1010000200', 'A1', 'R1'),    -- no situs at all
 (9003, 'R',  '10-100-003-00', '1010000300', 'A2', 'R2'),    -- two situs, the second primary
 (9004, 'R',  '10-100-004-00', '1010000400', 'B1', 'MF'),    -- two situs, none primary
 (9005, 'R',  '10-100-005-00', '1010000500', 'A1', 'R1'),    -- supplement 1 supersedes 0
 (9006, 'R',  '10-100-006-00', '1010000600', 'C1', NULL),    -- zero values, vacant lot
 (9007, 'R',  '10-100-007-00', '1010000700', 'A1', 'R1'),    -- every exemption code but EX
 (9008, 'R',  '10-100-008-00', '1010000800', 'F1', 'C2'),    -- total exemption EX
 (9009, 'R',  '10-100-009-00', '1010000900', 'A1', 'R1'),    -- confidential owner
 (9010, 'R',  '10-100-010-00', '1010001000', 'A1', 'R1'),    -- odd characters
 (9011, 'R',  '10-100-011-00', '1010001100', 'A1', 'R1'),    -- situs number 123A
 (9012, 'R',  '10-100-012-00', '1010001200', 'A1', 'R1'),    -- situs without a number
 (9013, 'R',  '10-100-013-00', '1010001300', 'A1', 'R1'),    -- suffix spelled out, period
 (9014, 'R',  '10-100-014-00', '1010001400', 'D1', 'AG'),    -- retired (inactive)
 (9015, 'R',  '10 100 015 00', NULL,         'A1', 'R1'),    -- no simple_geo_id
 (9016, 'R',  '10-100-016-00', '1010001600', 'A1', 'R1'),    -- only last year's values
 (9017, 'R',  '10-100-017-00', '1010001700', 'E1', NULL),    -- nulls: acreage, hood, use
 (9018, 'R',  '10-100-018-00', '1010001800', 'A1', 'r1'),    -- lower-case city and state
 (9019, 'P',  '10-100-019-00', '1010001900', 'L1', NULL),    -- personal property
 (9020, 'R',  '10-100-020-00', '1010002000', 'F2', 'I1'),    -- large values, 4-place acres
 (9021, 'MH', '10-100-021-00', '1010002100', 'M1', 'MH'),    -- mobile home
 (9022, 'R',  '10-100-022-00-9999-8888-7777-6666-555544433', '10100022009999888877776666555544433', 'A1', 'R1'); -- parid too long for CAMA: fails validation

INSERT INTO property_val (prop_id, prop_val_yr, sup_num, land_hstd_val, land_non_hstd_val,
  imprv_hstd_val, imprv_non_hstd_val, ag_use_val, market, appraised_val, assessed_val,
  legal_desc, legal_acreage, hood_cd, property_use_cd, prop_inactive_dt) VALUES
 (9001, 2026, 0, 40000, 0, 160000, 0, 0, 200000, 200000, 180000, 'LOT 1 BLK 1 OAK HILLS', 0.2500, 'N100', '100', NULL),
 (9002, 2026, 0, 0, 25000, 0, 90000, 0, 115000, 115000, 115000, 'LOT 2 BLK 1 OAK HILLS', 0.2000, 'N100', '100', NULL),
 (9003, 2026, 0, 30000, 5000, 120000, 10000, 0, 165000, 165000, 150000, 'LOT 3 BLK 1 OAK HILLS', 0.3000, 'N100', '100', NULL),
 (9004, 2026, 0, 0, 60000, 0, 240000, 0, 300000, 300000, 300000, 'LOT 4 BLK 1 OAK HILLS', 0.5000, 'N200', '210', NULL),
 (9005, 2025, 0, 1, 1, 1, 1, 0, 4, 4, 4, 'LAST YEAR', 1.0000, 'N100', '100', NULL),
 (9005, 2026, 0, 10000, 0, 90000, 0, 0, 100000, 100000, 100000, 'LOT 5 ORIGINAL', 0.1500, 'N100', '100', NULL),
 (9005, 2026, 1, 12000, 0, 95000, 0, 0, 107000, 107000, 101000, 'LOT 5 CORRECTED', 0.1600, 'N101', '100', NULL),
 (9006, 2026, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'VACANT TRACT', 0.0000, 'N300', '300', NULL),
 (9007, 2026, 0, 50000, 0, 200000, 0, 5000, 255000, 255000, 150000, 'LOT 7 BLK 2', 1.2500, 'N100', '100', NULL),
 (9008, 2026, 0, 0, 80000, 0, 420000, 0, 500000, 500000, 0, 'CHURCH TRACT', 2.0000, 'N400', '800', NULL),
 (9009, 2026, 0, 35000, 0, 140000, 0, 0, 175000, 175000, 160000, 'LOT 9 BLK 2', 0.2200, 'N100', '100', NULL),
 (9010, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, E'LOT 10 "A" O''BRIEN\\ADD | PH 1', 0.1800, 'N100', '100', NULL),
 (9011, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 11', 0.1800, 'N100', '100', NULL),
 (9012, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 12', 0.1800, 'N100', '100', NULL),
 (9013, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 13', 0.1800, 'N100', '100', NULL),
 (9014, 2026, 0, 0, 0, 0, 0, 30000, 30000, 30000, 30000, 'AG TRACT RETIRED', 40.0000, 'N500', '500', '2026-03-15'),
 (9015, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 15', 0.1800, 'N100', '100', NULL),
 (9016, 2025, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 16 LAST YEAR', 0.1800, 'N100', '100', NULL),
 (9017, 2026, 0, 0, 15000, 0, 0, 0, 15000, 15000, 15000, NULL, NULL, NULL, NULL, NULL),
 (9018, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 18', 0.1800, 'N100', '100', NULL),
 (9019, 2026, 0, 0, 0, 0, 45000, 0, 45000, 45000, 45000, 'BPP ACCOUNT', NULL, 'N900', '900', NULL),
 (9020, 2026, 0, 0, 9000000000000, 0, 899999999999, 0, 9899999999999, 9899999999999, 9899999999999, 'PLANT', 1234.5678, 'N600', '610', NULL),
 (9021, 2026, 0, 0, 5000, 0, 35000, 0, 40000, 40000, 40000, 'MH SPACE 21', 0.1000, 'N700', '150', NULL),
 (9022, 2026, 0, 20000, 0, 80000, 0, 0, 100000, 100000, 100000, 'LOT 22', 0.1800, 'N100', '100', NULL);

INSERT INTO situs (prop_id, situs_id, primary_situs, situs_num, situs_street_prefx, situs_street,
  situs_street_sufix, situs_unit, situs_city, situs_state, situs_zip) VALUES
 (9001, 1, 'Y', '101', NULL, 'OAK HILLS', 'DR', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9003, 1, 'N', '300', 'N', 'SIDE', 'ST', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9003, 2, 'Y', '303', 'S', 'MAIN', 'AVE', 'B', 'CEDAR PARK', 'TX', '78613-1234'),
 (9004, 7, 'N', '404', NULL, 'ELM', 'LN', '2', 'LEANDER', 'TX', '78641'),
 (9004, 5, 'N', '400', NULL, 'ELM', 'LN', '1', 'LEANDER', 'TX', '78641'),
 (9005, 1, 'Y', '505', NULL, 'PECAN', 'ST', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9006, 1, 'Y', NULL, NULL, 'RANCH ROAD 2222', NULL, NULL, 'AUSTIN', 'TX', '78730'),
 (9007, 1, 'Y', '707', 'W', 'WHITESTONE', 'BLVD', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9008, 1, 'Y', '808', 'E', 'CHURCH', 'CT', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9009, 1, 'Y', '909', NULL, 'HIDDEN', 'TRL', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9010, 1, 'Y', '1010', NULL, E'O''BRIEN | ÑANDÚ\\TAB', 'Way', NULL, 'SAN MARCOS', 'TX', '78666'),
 (9011, 1, 'Y', '123A', NULL, 'BELL', 'Boulevard', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9012, 1, 'Y', '   ', NULL, 'QUARRY', 'Rd', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9013, 1, 'Y', '1313', NULL, 'MOCKINGBIRD', 'Avenue.', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9014, 1, 'Y', '1414', NULL, 'FM 1431', NULL, NULL, 'JONESTOWN', 'TX', '78645'),
 (9015, 1, 'Y', '1515', NULL, 'LAKELINE', 'Street', NULL, 'CEDAR PARK', 'TX', '78613'),
 (9017, 1, 'Y', '1717', NULL, 'CR 175', NULL, NULL, 'LIBERTY HILL', 'TX', '78642'),
 (9018, 1, 'Y', '1818', 'n', 'lakeline', 'blvd', NULL, 'cedar park', 'tx', '78613'),
 (9020, 1, 'Y', '2020', NULL, 'INDUSTRIAL', 'PKWY', NULL, 'AUSTIN', 'TX', '78744'),
 (9021, 1, 'Y', '2121', NULL, 'TRAILER', 'CIR', '21', 'LEANDER', 'TX', '78641'),
 (9022, 1, 'Y', '2222', NULL, 'LONG', 'WAY', NULL, 'CEDAR PARK', 'TX', '78613');

INSERT INTO account (acct_id, first_name, last_name, file_as_name, email_addr, confidential_flag) VALUES
 (501, 'Ana', 'Garcia', 'GARCIA ANA', 'ana@example.org', 'F'),
 (509, 'John', 'Doe', 'CONFIDENTIAL OWNER', NULL, 'T'),
 (510, 'Seán', 'O''Brien', E'O''BRIEN SEÁN "JR"', 'sean@example.org', 'F');

INSERT INTO owner (owner_id, owner_tax_yr, prop_id, sup_num, pct_ownership, hs_prop) VALUES
 (501, 2026, 9001, 0, 100, 'T'), (501, 2026, 9007, 0, 100, 'T'), (509, 2026, 9009, 0, 100, 'T'),
 (510, 2026, 9010, 0, 100, 'F');

INSERT INTO property_exemption (prop_id, owner_id, exmpt_tax_yr, sup_num, exmpt_type_cd, effective_dt) VALUES
 (9001, 501, 2026, 0, 'HS', '2020-01-01'),
 (9007, 501, 2026, 0, 'HS', '2020-01-01'), (9007, 501, 2026, 0, 'OV65', '2020-01-01'),
 (9007, 501, 2026, 0, 'OV65S', '2020-01-01'), (9007, 501, 2026, 0, 'DP', '2020-01-01'),
 (9007, 501, 2026, 0, 'DV1', '2020-01-01'), (9007, 501, 2026, 0, 'DV2', '2020-01-01'),
 (9007, 501, 2026, 0, 'DV3', '2020-01-01'), (9007, 501, 2026, 0, 'DV4', '2020-01-01'),
 (9007, 501, 2026, 0, 'AG', '2020-01-01'),
 (9008, 501, 2026, 0, 'EX', '2019-01-01'),
 (9005, 501, 2026, 0, 'EX', '2026-01-01'),   -- on supplement 0 only: supplement 1 has none
 (9009, 509, 2026, 0, 'HS', '2021-01-01');
