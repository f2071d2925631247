-- plugins/pacs/generate.sql — pacs_generate(n, seed, roll_year): fills the demo PACS with n
-- realistic parcels for demos, tests and benchmarks.
--
-- Deterministic for a given (n, seed, roll_year): every choice comes from
-- hashtextextended(i || ':' || salt, seed), never from random(), so two databases filled
-- with the same arguments hold the same rows. Set-based (one INSERT ... SELECT per table
-- over a per-parcel staging table), so a million parcels load in well under a minute or
-- two on two cores. The tables of schema.sql are truncated first. The change-log triggers
-- are disabled while it loads (they would double the load time and log every row) and the
-- change log is left empty: a generated database is a starting point, not a change.
--
-- What it makes, per parcel i (prop_id = i, 1..n):
--   property      prop_type_cd R ~86%, P ~8%, MH ~4.5%, M ~1.5%; PTAD state_cd by type
--                 (A1 A2 B1 C1 D1 E1 F1 F2 O1 X / L1 L2 / M1 / G1); geo_id
--                 'AA-BBB-CCC-DD' unique per parcel, simple_geo_id without the dashes
--   property_val  one row for roll_year sup_num 0 (about 0.2% have none: retired
--                 parcels, only a prior-year row), about 30% a roll_year - 1 row, about 5%
--                 a supplement (sup_num 1 with changed values); homestead and
--                 non-homestead land and improvement values, ag_use_val for D1,
--                 market = land + improvements, appraised (ag land at its use value),
--                 assessed <= appraised (homestead cap)
--   situs         about 96% one row, 3% two (one primary, sometimes the second), 1% none;
--                 street suffixes written every way counties do ('ST', 'Street', 'Dr'...)
--   account       one per parcel (acct_id = i; business names for commercial parcels),
--                 plus a co-owner account n + i for ~12% (50/50 ownership); about 6% of
--                 homes belong to investor accounts that own many parcels; ~1%
--                 confidential
--   address       one mailing address per account (the situs when owner-occupied)
--   owner         per property_val row: one owner at 100%, or two at 50%
--   property_exemption  HS (most owner-occupied homes), OV65, OV65S, DP, DV1-DV4, EX
--                 (state_cd X), AG (some D1)
--   sale, chg_of_owner_prop_assoc  about 35% sold once, 8% twice, 1% multi-parcel
--                 sales; many prices unknown, ~15% confidential

-- A uniform number in [0, 1) for (i, salt) under seed. Inlined by the planner.
CREATE OR REPLACE FUNCTION pacs_gen_u(i bigint, salt text, seed integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ((hashtextextended($1::text || ':' || $2, $3) >> 11) & 9007199254740991)::double precision
           / 9007199254740992.0
$$;

-- An integer in [0, k) for (i, salt) under seed.
CREATE OR REPLACE FUNCTION pacs_gen_k(i bigint, salt text, seed integer, k integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT floor(pacs_gen_u($1, $2, $3) * $4)::integer
$$;

CREATE OR REPLACE FUNCTION pacs_generate(n integer, seed integer, roll_year integer)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    -- (city, zip, neighbourhood prefix) of the county's situs addresses; repeats weight
    -- the bigger towns.
    city_name text[] := ARRAY[
        'GEORGETOWN', 'GEORGETOWN', 'GEORGETOWN', 'ROUND ROCK', 'ROUND ROCK', 'ROUND ROCK',
        'CEDAR PARK', 'CEDAR PARK', 'LEANDER', 'LEANDER', 'HUTTO', 'TAYLOR', 'LIBERTY HILL',
        'JARRELL', 'FLORENCE', 'GRANGER', 'AUSTIN', 'AUSTIN', 'THRALL', 'COUPLAND'];
    city_zip text[] := ARRAY[
        '78626', '78628', '78633', '78664', '78665', '78681',
        '78613', '78613', '78641', '78645', '78634', '76574', '78642',
        '76537', '76527', '76530', '78717', '78729', '76578', '78615'];
    city_hood text[] := ARRAY[
        'GT', 'GT', 'GT', 'RR', 'RR', 'RR', 'CP', 'CP', 'LE', 'LE', 'HU', 'TA', 'LH',
        'JA', 'FL', 'GR', 'AU', 'AU', 'TH', 'CO'];
    -- Mailing addresses out of the county and out of state.
    far_city text[] := ARRAY['HOUSTON', 'DALLAS', 'SAN ANTONIO', 'DENVER', 'PHOENIX',
        'CHICAGO', 'SAN DIEGO', 'TULSA', 'BATON ROUGE', 'NEW YORK', 'SEATTLE', 'MIAMI'];
    far_state text[] := ARRAY['TX', 'TX', 'TX', 'CO', 'AZ', 'IL', 'CA', 'OK', 'LA', 'NY',
        'WA', 'FL'];
    far_zip text[] := ARRAY['77002', '75201', '78205', '80202', '85004', '60601', '92101',
        '74103', '70801', '10001', '98101', '33131'];
    streets text[] := ARRAY[
        'MAIN', 'OAK', 'ELM', 'PECAN', 'CEDAR', 'LIVE OAK', 'MESQUITE', 'BLUEBONNET',
        'CHISHOLM TRAIL', 'SAM HOUSTON', 'AUSTIN', 'LAMAR', 'TRAVIS', 'BOWIE', 'CROCKETT',
        'WILLIAMS', 'UNIVERSITY', 'CHURCH', 'COLLEGE', 'MAPLE', 'WILLOW', 'CYPRESS',
        'MAGNOLIA', 'HICKORY', 'POST OAK', 'RED BUD', 'SUNSET', 'HILLCREST', 'LAKEVIEW',
        'RIVER BEND', 'BRUSHY CREEK', 'SAN GABRIEL', 'SHELL', 'ROCK', 'QUAIL VALLEY',
        'WILDFLOWER', 'INDIAN PAINTBRUSH', 'MOCKINGBIRD', 'CARDINAL', 'WHITETAIL',
        'LONGHORN', 'SADDLE', 'MEADOW', 'PRAIRIE', 'TIMBER', 'GRANITE', 'LIMESTONE',
        'COMANCHE', 'WOLF RANCH', 'RABBIT HILL', 'FOREST', 'HIGHLAND', 'SPRING', 'COUNTRY',
        'O''CONNOR', 'DE LA VINA', 'RONALD REAGAN', 'INNER LOOP', 'OLD SETTLERS',
        'GATTIS SCHOOL', 'KENNEY FORT', 'SENDERO', 'LAS LOMAS', 'BUENA VISTA',
        'FM 1460', 'FM 971', 'CR 110', 'CR 245', 'HIGHWAY 29', 'HIGHWAY 95'];
    suffixes text[] := ARRAY[
        'ST', 'ST', 'Street', 'St', 'AVE', 'Avenue', 'Ave', 'RD', 'Road', 'Rd', 'DR', 'DR',
        'Dr', 'Drive', 'LN', 'Lane', 'BLVD', 'Blvd', 'CT', 'Ct', 'CV', 'Cove', 'WAY', 'Way',
        'TRL', 'Trail', 'PKWY', 'CIR', 'PL', 'LOOP'];
    prefixes text[] := ARRAY['N', 'S', 'E', 'W', 'N', 'S', 'E', 'W', 'NE', 'SW'];
    first_names text[] := ARRAY[
        'JAMES', 'MARY', 'JOHN', 'PATRICIA', 'ROBERT', 'JENNIFER', 'MICHAEL', 'LINDA',
        'WILLIAM', 'ELIZABETH', 'DAVID', 'BARBARA', 'RICHARD', 'SUSAN', 'JOSEPH', 'JESSICA',
        'THOMAS', 'SARAH', 'CHARLES', 'KAREN', 'CHRISTOPHER', 'NANCY', 'DANIEL', 'LISA',
        'MATTHEW', 'BETTY', 'ANTHONY', 'MARGARET', 'MARK', 'SANDRA', 'DONALD', 'ASHLEY',
        'STEVEN', 'KIMBERLY', 'PAUL', 'EMILY', 'ANDREW', 'DONNA', 'JOSHUA', 'MICHELLE',
        'JOSE', 'MARIA', 'JUAN', 'GUADALUPE', 'LUIS', 'ROSA', 'CARLOS', 'ANA', 'NGUYEN',
        'MINH', 'WEI', 'PRIYA', 'RAJESH', 'AISHA', 'OMAR', 'ZOE', 'CHLOE', 'RENEE', 'JOSÉ',
        'BILLY BOB'];
    last_names text[] := ARRAY[
        'SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS',
        'RODRIGUEZ', 'MARTINEZ', 'HERNANDEZ', 'LOPEZ', 'GONZALEZ', 'WILSON', 'ANDERSON',
        'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON', 'MARTIN', 'LEE', 'PEREZ', 'THOMPSON',
        'WHITE', 'HARRIS', 'SANCHEZ', 'CLARK', 'RAMIREZ', 'LEWIS', 'ROBINSON', 'WALKER',
        'YOUNG', 'ALLEN', 'KING', 'WRIGHT', 'SCOTT', 'TORRES', 'NGUYEN', 'HILL', 'FLORES',
        'GREEN', 'ADAMS', 'NELSON', 'BAKER', 'HALL', 'RIVERA', 'CAMPBELL', 'MITCHELL',
        'CARTER', 'ROBERTS', 'GOMEZ', 'PHILLIPS', 'EVANS', 'TURNER', 'DIAZ', 'PARKER',
        'CRUZ', 'EDWARDS', 'COLLINS', 'REYES', 'STEWART', 'MORRIS', 'MORALES', 'MURPHY',
        'COOK', 'ROGERS', 'GUTIERREZ', 'ORTIZ', 'MORGAN', 'COOPER', 'PETERSON', 'BAILEY',
        'REED', 'KELLY', 'HOWARD', 'RAMOS', 'KIM', 'COX', 'WARD', 'RICHARDSON', 'O''BRIEN',
        'DE LA CRUZ', 'VAN DYKE', 'MCALLISTER', 'SCHULTZ', 'PATEL', 'CHEN', 'KOWALSKI',
        'NÚÑEZ', 'ST. JOHN'];
    biz_words text[] := ARRAY['HOLDINGS LLC', 'PROPERTIES LP', 'ENTERPRISES INC',
        'PARTNERS LTD', 'INVESTMENTS LLC', 'FAMILY TRUST', 'RANCH LLC', 'DEVELOPMENT CORP',
        'REALTY LLC', 'CAPITAL LP'];
    mail_domains text[] := ARRAY['gmail.com', 'gmail.com', 'gmail.com', 'yahoo.com',
        'outlook.com', 'hotmail.com', 'icloud.com', 'att.net', 'sbcglobal.net', 'aol.com'];
    subdivisions text[] := ARRAY['OAK MEADOWS', 'SUN CITY TEXAS', 'WOOD RANCH', 'TERAVISTA',
        'BRUSHY CREEK', 'SONTERRA', 'RIVERY', 'BERRY CREEK', 'PARK CENTRAL',
        'CYPRESS CREEK', 'LAKE GEORGETOWN ESTATES', 'REATA TRAILS', 'SANTA RITA RANCH',
        'PARMER RANCH', 'STAR RANCH', 'BLOCK HOUSE CREEK'];
    surveyors text[] := ARRAY['ADDISON, W.', 'BARKER, J.', 'CHANDLER, E.', 'FISH, J.',
        'HUDSON, W.', 'PORTER, J.', 'ROBERTSON, G.', 'WALTERS, J.', 'DOSS, A.', 'MCDANIEL, D.'];
    mh_makes text[] := ARRAY['FLEETWOOD', 'CLAYTON', 'OAK CREEK', 'PALM HARBOR', 'CAVCO',
        'SOUTHERN ENERGY'];
    n_parcels integer := n;
    geo_b bigint;
    trg record;
BEGIN
    IF n IS NULL OR n < 0 OR n > 100000000 THEN
        RAISE EXCEPTION 'could not generate PACS data: n must be between 0 and 100000000, not %', n;
    END IF;
    IF roll_year IS NULL OR roll_year < 1901 OR roll_year > 2199 THEN
        RAISE EXCEPTION 'could not generate PACS data: roll_year % is out of range', roll_year;
    END IF;
    seed := coalesce(seed, 0);
    -- geo_id is an affine bijection of i on [0, 10^8), so parcels never share one.
    geo_b := abs(hashtextextended('geo_id', seed)) % 100000000;

    -- The joins and sorts below fit in memory at a million parcels.
    PERFORM set_config('work_mem', '256MB', true);
    -- A bulk load is not a change to capture: the change-log triggers of schema.sql are
    -- off until the end (inside this transaction, so no other session ever sees them
    -- off), and the change log is emptied. Readers of the old rows need a full run after.
    FOR trg IN
        SELECT g.tgrelid::regclass AS rel, g.tgname
        FROM pg_trigger g
        WHERE g.tgname IN ('pacs_cl_ins', 'pacs_cl_upd', 'pacs_cl_del')
          AND g.tgrelid = ANY (ARRAY['property', 'property_val', 'situs', 'account', 'address',
                                     'owner', 'property_exemption', 'sale',
                                     'chg_of_owner_prop_assoc']::regclass[])
    LOOP
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', trg.rel, trg.tgname);
    END LOOP;
    TRUNCATE property, property_val, situs, account, address, owner, property_exemption,
             sale, chg_of_owner_prop_assoc, property_gis, change_log;
    IF to_regclass('pg_temp.pacs_gen_p') IS NOT NULL THEN
        DROP TABLE pg_temp.pacs_gen_p;
    END IF;

    -- One staging row per parcel with every decision that more than one table needs.
    -- OFFSET 0 fences each level so the planner does not inline (and recompute) the
    -- hashes of a lower level in every expression that uses them.
    CREATE TEMP TABLE pacs_gen_p AS
    SELECT l3.*,
           l3.lh + l3.lnh + l3.ih + l3.inh AS market
    FROM (
        SELECT l2.*,
               CASE WHEN l2.hs AND l2.st = 'E1'
                    THEN least(l2.land, round(l2.land / greatest(l2.acres, 1), -1))
                    WHEN l2.hs THEN l2.land ELSE 0 END AS lh,
               CASE WHEN l2.hs AND l2.st = 'E1'
                    THEN l2.land - least(l2.land, round(l2.land / greatest(l2.acres, 1), -1))
                    WHEN l2.hs THEN 0 ELSE l2.land END AS lnh,
               CASE WHEN l2.hs THEN l2.imprv ELSE 0 END AS ih,
               CASE WHEN l2.hs THEN 0 ELSE l2.imprv END AS inh,
               array_remove(ARRAY[
                   CASE WHEN l2.hs THEN 'HS' END,
                   CASE WHEN l2.hs AND l2.ux < 0.20 THEN 'OV65' END,
                   CASE WHEN l2.hs AND l2.ux >= 0.20 AND l2.ux < 0.215 THEN 'OV65S' END,
                   CASE WHEN l2.hs AND l2.ux >= 0.215 AND l2.ux < 0.25 THEN 'DP' END,
                   CASE WHEN l2.hs AND l2.uv < 0.045
                        THEN 'DV' || (1 + pacs_gen_k(l2.i, 'dv', seed, 4)) END,
                   CASE WHEN l2.st = 'X' THEN 'EX' END,
                   CASE WHEN l2.st = 'D1' AND l2.uv < 0.6 THEN 'AG' END
               ]::text[], NULL) AS codes,
               l2.hs AND l2.ux >= 0.25 AND pacs_gen_u(l2.i, 'supov65', seed) < 0.3
                   AS sup_adds_ov65
        FROM (
            SELECT l1.*,
                   CASE l1.st
                       WHEN 'A1' THEN round((25000 + 155000 * l1.ul * l1.ul)::numeric, -1)
                       WHEN 'A2' THEN round((15000 + 45000 * l1.ul)::numeric, -1)
                       WHEN 'B1' THEN round((60000 + 340000 * l1.ul * l1.ul)::numeric, -1)
                       WHEN 'C1' THEN round((10000 + 110000 * l1.ul * l1.ul)::numeric, -1)
                       WHEN 'D1' THEN round(l1.acres * (2500 + 4500 * l1.ul)::numeric, -1)
                       WHEN 'E1' THEN round(l1.acres * (8000 + 8000 * l1.ul)::numeric, -1)
                       WHEN 'F1' THEN round((80000 + 2400000 * l1.ul * l1.ul)::numeric, -1)
                       WHEN 'F2' THEN round((200000 + 2800000 * l1.ul * l1.ul)::numeric, -1)
                       WHEN 'O1' THEN round((30000 + 50000 * l1.ul)::numeric, -1)
                       WHEN 'X' THEN round((50000 + 950000 * l1.ul * l1.ul)::numeric, -1)
                       ELSE 0 END AS land,
                   CASE l1.st
                       WHEN 'A1' THEN round((90000 + 560000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'A2' THEN round((15000 + 75000 * l1.ui)::numeric, -1)
                       WHEN 'B1' THEN round((250000 + 2750000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'C1' THEN 0
                       WHEN 'D1' THEN CASE WHEN l1.ui < 0.7 THEN 0
                                           ELSE round((20000 + 180000 * l1.ui)::numeric, -1) END
                       WHEN 'E1' THEN round((40000 + 410000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'F1' THEN round((200000 + 7800000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'F2' THEN round((500000 + 19500000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'O1' THEN CASE WHEN l1.ui < 0.5 THEN 0
                                           ELSE round((40000 + 160000 * l1.ui)::numeric, -1) END
                       WHEN 'X' THEN round((3000000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'L1' THEN round((5000 + 495000 * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'L2' THEN round((50000 + 19950000 * l1.ui * l1.ui * l1.ui)::numeric, -1)
                       WHEN 'M1' THEN round((10000 + 80000 * l1.ui)::numeric, -1)
                       WHEN 'G1' THEN round((100 + 199900 * l1.ui * l1.ui * l1.ui)::numeric, 0)
                       ELSE 0 END AS imprv,
                   CASE WHEN l1.st = 'D1'
                        THEN round(l1.acres * (35 + 205 * pacs_gen_u(l1.i, 'agrate', seed))::numeric, -1)
                        ELSE 0 END AS ag,
                   CASE WHEN l1.hs AND pacs_gen_u(l1.i, 'cap', seed) < 0.4
                        THEN round((0.01 + 0.17 * pacs_gen_u(l1.i, 'capf', seed))::numeric, 4)
                        ELSE 0 END AS capf
            FROM (
                SELECT l0b.*,
                       CASE l0b.st
                           WHEN 'A1' THEN round((0.12 + 0.5 * l0b.ua * l0b.ua)::numeric, 4)
                           WHEN 'A2' THEN round((0.2 + 1.8 * l0b.ua)::numeric, 4)
                           WHEN 'B1' THEN round((0.3 + 4.7 * l0b.ua * l0b.ua)::numeric, 4)
                           WHEN 'C1' THEN round((0.1 + 1.4 * l0b.ua)::numeric, 4)
                           WHEN 'D1' THEN round((10 + 390 * l0b.ua * l0b.ua)::numeric, 4)
                           WHEN 'E1' THEN round((5 + 55 * l0b.ua)::numeric, 4)
                           WHEN 'F1' THEN round((0.3 + 14.7 * l0b.ua * l0b.ua)::numeric, 4)
                           WHEN 'F2' THEN round((2 + 78 * l0b.ua * l0b.ua)::numeric, 4)
                           WHEN 'O1' THEN round((0.12 + 0.18 * l0b.ua)::numeric, 4)
                           WHEN 'X' THEN round((0.5 + 19.5 * l0b.ua * l0b.ua)::numeric, 4)
                           END AS acres,
                       NOT l0b.biz AND NOT l0b.inv
                           AND l0b.st IN ('A1', 'A2', 'M1', 'E1')
                           AND pacs_gen_u(l0b.i, 'hs', seed)
                               < CASE l0b.st WHEN 'E1' THEN 0.45 ELSE 0.72 END AS hs,
                       NOT l0b.biz AND NOT l0b.inv
                           AND pacs_gen_u(l0b.i, 'cown', seed) < 0.14 AS cown,
                       CASE WHEN l0b.inv
                            THEN 1 + pacs_gen_k(l0b.i, 'invacct', seed, greatest(n_parcels / 50, 1))
                            ELSE l0b.i END AS acct1
                FROM (
                    SELECT l0a.*,
                           l0a.st IN ('B1', 'F1', 'F2', 'O1', 'L1', 'L2', 'G1', 'X')
                               OR (l0a.st = 'D1' AND pacs_gen_u(l0a.i, 'farmbiz', seed) < 0.25)
                               AS biz,
                           l0a.st IN ('A1', 'A2', 'C1', 'M1')
                               AND pacs_gen_u(l0a.i, 'inv', seed) < 0.07 AS inv
                    FROM (
                        SELECT g.i, g.ua, g.ul, g.ui, g.ux, g.uv, g.c, g.geo_x,
                               g.uc >= 0.002 AS has_cur,
                               g.uc < 0.002 OR g.up < 0.30 AS has_prior,
                               g.uc >= 0.002 AND g.usp < 0.05 AS has_sup,
                               CASE WHEN g.un < 0.01 THEN 0 WHEN g.un < 0.04 THEN 2 ELSE 1 END
                                   AS nsitus,
                               g.un >= 0.01 AND g.un < 0.02 AS prim2,
                               CASE WHEN g.ut < 0.86 THEN 'R' WHEN g.ut < 0.94 THEN 'P'
                                    WHEN g.ut < 0.985 THEN 'MH' ELSE 'M' END AS typ,
                               CASE WHEN g.ut < 0.86 THEN
                                        CASE WHEN g.us < 0.64 THEN 'A1' WHEN g.us < 0.67 THEN 'A2'
                                             WHEN g.us < 0.71 THEN 'B1' WHEN g.us < 0.79 THEN 'C1'
                                             WHEN g.us < 0.85 THEN 'D1' WHEN g.us < 0.88 THEN 'E1'
                                             WHEN g.us < 0.93 THEN 'F1' WHEN g.us < 0.95 THEN 'F2'
                                             WHEN g.us < 0.98 THEN 'O1' ELSE 'X' END
                                    WHEN g.ut < 0.94 THEN CASE WHEN g.us < 0.8 THEN 'L1' ELSE 'L2' END
                                    WHEN g.ut < 0.985 THEN 'M1'
                                    ELSE 'G1' END AS st
                        FROM (
                            SELECT i,
                                   pacs_gen_u(i, 'type', seed) AS ut,
                                   pacs_gen_u(i, 'state', seed) AS us,
                                   pacs_gen_u(i, 'acres', seed) AS ua,
                                   pacs_gen_u(i, 'land', seed) AS ul,
                                   pacs_gen_u(i, 'imprv', seed) AS ui,
                                   pacs_gen_u(i, 'exa', seed) AS ux,
                                   pacs_gen_u(i, 'exb', seed) AS uv,
                                   pacs_gen_u(i, 'cur', seed) AS uc,
                                   pacs_gen_u(i, 'prior', seed) AS up,
                                   pacs_gen_u(i, 'sup', seed) AS usp,
                                   pacs_gen_u(i, 'nsitus', seed) AS un,
                                   1 + pacs_gen_k(i, 'city', seed, cardinality(city_name)) AS c,
                                   ((i::bigint - 1) * 7654321 + geo_b) % 100000000 AS geo_x
                            FROM generate_series(1, n_parcels) AS i
                            OFFSET 0
                        ) g
                        OFFSET 0
                    ) l0a
                    OFFSET 0
                ) l0b
                OFFSET 0
            ) l1
            OFFSET 0
        ) l2
        OFFSET 0
    ) l3;

    INSERT INTO property (prop_id, prop_type_cd, geo_id, simple_geo_id, state_cd, zoning,
                          prop_create_dt)
    SELECT p.i, p.typ,
           x.geo_id, replace(x.geo_id, '-', ''),
           p.st,
           CASE p.st
               WHEN 'A1' THEN (ARRAY['SF-1', 'SF-2', 'SF-3', 'PUD', 'R-1'])[1 + pacs_gen_k(p.i, 'zone', seed, 5)]
               WHEN 'A2' THEN (ARRAY['MH', 'AG', NULL])[1 + pacs_gen_k(p.i, 'zone', seed, 3)]
               WHEN 'B1' THEN (ARRAY['MF-1', 'MF-2', 'MF-3'])[1 + pacs_gen_k(p.i, 'zone', seed, 3)]
               WHEN 'C1' THEN (ARRAY['SF-1', 'C-1', 'AG', 'PUD'])[1 + pacs_gen_k(p.i, 'zone', seed, 4)]
               WHEN 'D1' THEN (ARRAY['AG', 'AG', 'RE', NULL])[1 + pacs_gen_k(p.i, 'zone', seed, 4)]
               WHEN 'E1' THEN (ARRAY['AG', 'RE', NULL])[1 + pacs_gen_k(p.i, 'zone', seed, 3)]
               WHEN 'F1' THEN (ARRAY['C-1', 'C-2', 'C-3', 'MU', 'PUD'])[1 + pacs_gen_k(p.i, 'zone', seed, 5)]
               WHEN 'F2' THEN (ARRAY['I-1', 'I-2', 'LI'])[1 + pacs_gen_k(p.i, 'zone', seed, 3)]
               WHEN 'O1' THEN (ARRAY['PUD', 'SF-2'])[1 + pacs_gen_k(p.i, 'zone', seed, 2)]
               WHEN 'X' THEN (ARRAY['PF', 'GOV', 'C-1'])[1 + pacs_gen_k(p.i, 'zone', seed, 3)]
               WHEN 'M1' THEN (ARRAY['MH', NULL])[1 + pacs_gen_k(p.i, 'zone', seed, 2)]
               END,
           make_timestamp(1985, 1, 1, 9, 0, 0)
               + make_interval(days => pacs_gen_k(p.i, 'created', seed, (roll_year - 1985) * 365),
                               secs => pacs_gen_k(p.i, 'createds', seed, 28800))
    FROM pacs_gen_p p
    CROSS JOIN LATERAL (
        SELECT (10 + pacs_gen_k(p.i, 'geo_d', seed, 90))::text
               || '-' || substr(lpad(p.geo_x::text, 8, '0'), 1, 3)
               || '-' || substr(lpad(p.geo_x::text, 8, '0'), 4, 3)
               || '-' || substr(lpad(p.geo_x::text, 8, '0'), 7, 2) AS geo_id
    ) x;

    -- Versions: roll year sup 0, its supplement sup 1, and the prior year. lf/imf scale
    -- the roll-year land and improvement values.
    INSERT INTO property_val (prop_id, prop_val_yr, sup_num, land_hstd_val,
                              land_non_hstd_val, imprv_hstd_val, imprv_non_hstd_val,
                              ag_use_val, market, appraised_val, assessed_val, legal_desc,
                              legal_acreage, hood_cd, property_use_cd, prop_inactive_dt)
    SELECT w.i, w.yr, w.sup, w.lh, w.lnh, w.ih, w.inh, w.ag,
           w.lh + w.lnh + w.ih + w.inh,
           w.appraised,
           w.appraised - round(w.appraised * w.capf, -1),
           w.legal_desc, w.acres, w.hood_cd, w.use_cd,
           CASE WHEN w.yr = roll_year AND pacs_gen_u(w.i, 'inactive', seed) < 0.004
                THEN make_date(roll_year, 1, 1) + pacs_gen_k(w.i, 'inactdt', seed, 200) END
    FROM (
        SELECT v.*,
               CASE WHEN v.st = 'D1' THEN v.ag + v.ih + v.inh
                    ELSE v.lh + v.lnh + v.ih + v.inh END AS appraised
        FROM (
            SELECT p.i, p.st, p.capf, p.acres, s.yr, s.sup,
                   round(p.lh * s.lf, -1) AS lh, round(p.lnh * s.lf, -1) AS lnh,
                   round(p.ih * s.imf, -1) AS ih, round(p.inh * s.imf, -1) AS inh,
                   round(p.ag * s.lf, -1) AS ag,
                   city_hood[p.c] || lpad((1 + pacs_gen_k(p.i, 'hood', seed, 40))::text, 3, '0')
                       AS hood_cd,
                   CASE p.st
                       WHEN 'A1' THEN 'SFR' WHEN 'A2' THEN 'MHL'
                       WHEN 'B1' THEN (ARRAY['MFR', 'APT', 'DPX'])[1 + pacs_gen_k(p.i, 'use', seed, 3)]
                       WHEN 'C1' THEN 'VAC' WHEN 'D1' THEN 'AG' WHEN 'E1' THEN 'RUR'
                       WHEN 'F1' THEN (ARRAY['RET', 'OFF', 'REST', 'WHSE'])[1 + pacs_gen_k(p.i, 'use', seed, 4)]
                       WHEN 'F2' THEN 'IND' WHEN 'O1' THEN 'INV' WHEN 'X' THEN 'EXM'
                       WHEN 'L1' THEN 'BPP' WHEN 'L2' THEN 'IBPP' WHEN 'M1' THEN 'MH'
                       ELSE 'MIN' END AS use_cd,
                   CASE
                       WHEN p.st IN ('A1', 'B1', 'C1', 'F1', 'O1', 'X') THEN
                           subdivisions[1 + pacs_gen_k(p.i, 'subd', seed, cardinality(subdivisions))]
                           || ' SEC ' || (1 + pacs_gen_k(p.i, 'sec', seed, 9))
                           || ', BLOCK ' || chr(65 + pacs_gen_k(p.i, 'blk', seed, 12))
                           || ', LOT ' || (1 + pacs_gen_k(p.i, 'lot', seed, 48))
                       WHEN p.st IN ('A2', 'D1', 'E1', 'F2') THEN
                           'AW0' || lpad((1 + pacs_gen_k(p.i, 'abs', seed, 900))::text, 3, '0')
                           || ' ' || surveyors[1 + pacs_gen_k(p.i, 'sur', seed, cardinality(surveyors))]
                           || ' SUR., ACRES ' || p.acres
                       WHEN p.st = 'M1' THEN
                           'MH ONLY, ' || mh_makes[1 + pacs_gen_k(p.i, 'mhmake', seed, cardinality(mh_makes))]
                           || ', SERIAL# TX' || lpad(pacs_gen_k(p.i, 'mhser', seed, 1000000)::text, 6, '0')
                       WHEN p.st = 'G1' THEN
                           'MINERAL INTEREST, LEASE ' || (1000 + pacs_gen_k(p.i, 'lease', seed, 9000))
                           || ', RI ' || round((0.001 + 0.2 * pacs_gen_u(p.i, 'ri', seed))::numeric, 6)
                       ELSE 'BUSINESS PERSONAL PROPERTY, ACCT '
                           || lpad(p.i::text, 8, '0') END AS legal_desc
            FROM pacs_gen_p p
            CROSS JOIN LATERAL unnest(
                ARRAY[roll_year, roll_year, roll_year - 1],
                ARRAY[0, 1, 0],
                ARRAY[1.0,
                      round((0.90 + 0.25 * pacs_gen_u(p.i, 'suplf', seed))::numeric, 4),
                      round((0.85 + 0.15 * pacs_gen_u(p.i, 'prilf', seed))::numeric, 4)],
                ARRAY[1.0,
                      round((0.85 + 0.35 * pacs_gen_u(p.i, 'supif', seed))::numeric, 4),
                      round((0.85 + 0.15 * pacs_gen_u(p.i, 'priif', seed))::numeric, 4)],
                ARRAY[p.has_cur, p.has_sup, p.has_prior]
            ) AS s(yr, sup, lf, imf, present)
            WHERE s.present
            OFFSET 0
        ) v
    ) w;

    INSERT INTO situs (prop_id, situs_id, primary_situs, situs_num, situs_street_prefx,
                       situs_street, situs_street_sufix, situs_unit, situs_city, situs_state,
                       situs_zip)
    SELECT a.i, 2 * a.i - 1 + r.k,
           CASE WHEN a.nsitus = 1 AND a.noprim THEN 'N'
                WHEN (r.k = 1) = a.prim2 THEN 'Y' ELSE 'N' END,
           CASE WHEN a.num IS NULL THEN NULL ELSE (a.num + 2 * r.k)::text END,
           a.prefx, a.street,
           CASE WHEN left(a.street, 3) IN ('FM ', 'CR ', 'HIG') THEN NULL ELSE a.sufix END,
           a.unit, city_name[a.c], 'TX', city_zip[a.c]
    FROM (
        SELECT p.i, p.c, p.nsitus, p.prim2,
               pacs_gen_u(p.i, 'noprim', seed) < 0.005 AS noprim,
               CASE WHEN p.st IN ('C1', 'D1') AND pacs_gen_u(p.i, 'nonum', seed) < 0.4 THEN NULL
                    WHEN p.st IN ('D1', 'E1', 'A2') THEN 1000 + pacs_gen_k(p.i, 'num', seed, 19000)
                    ELSE 100 + pacs_gen_k(p.i, 'num', seed, 9900) END AS num,
               CASE WHEN pacs_gen_u(p.i, 'prefx', seed) < 0.15
                    THEN prefixes[1 + pacs_gen_k(p.i, 'prefxw', seed, cardinality(prefixes))] END
                   AS prefx,
               streets[1 + pacs_gen_k(p.i, 'street', seed, cardinality(streets))] AS street,
               suffixes[1 + pacs_gen_k(p.i, 'sufix', seed, cardinality(suffixes))] AS sufix,
               CASE WHEN p.st IN ('F1', 'L1') AND pacs_gen_u(p.i, 'unit', seed) < 0.35
                    THEN (100 * (1 + pacs_gen_k(p.i, 'unitf', seed, 3))
                          + pacs_gen_k(p.i, 'unitn', seed, 20))::text
                    WHEN pacs_gen_u(p.i, 'unit', seed) < 0.03
                    THEN (ARRAY['A', 'B', '1', '2', '101', '2B'])[1 + pacs_gen_k(p.i, 'unitn', seed, 6)]
                    END AS unit
        FROM pacs_gen_p p
        WHERE p.nsitus > 0
        OFFSET 0
    ) a
    CROSS JOIN generate_series(0, 1) AS r(k)
    WHERE r.k < a.nsitus;

    -- Accounts: acct_id i for every parcel (an investor-owned parcel's own account is a
    -- former owner), n + i for co-owners.
    INSERT INTO account (acct_id, first_name, last_name, file_as_name, email_addr,
                         confidential_flag, update_dt)
    SELECT b.acct_id,
           CASE WHEN b.biz THEN NULL ELSE b.first_name END,
           CASE WHEN b.biz THEN NULL ELSE b.last_name END,
           CASE WHEN b.biz THEN b.last_name || ' ' || b.biz_word
                WHEN b.mi IS NULL THEN b.last_name || ', ' || b.first_name
                ELSE b.last_name || ', ' || b.first_name || ' ' || b.mi END,
           CASE WHEN b.biz AND b.ue < 0.7
                THEN 'office@' || lower(translate(b.last_name, ' ''.', '')) || '-'
                     || lower(split_part(b.biz_word, ' ', 1)) || '.com'
                WHEN NOT b.biz AND b.ue < 0.55
                THEN lower(translate(b.first_name, ' ''.', '')) || '.'
                     || lower(translate(b.last_name, ' ''.', ''))
                     || CASE WHEN b.ue < 0.3 THEN pacs_gen_k(b.acct_id, 'emn', seed, 100)::text ELSE '' END
                     || '@' || mail_domains[1 + pacs_gen_k(b.acct_id, 'emd', seed, cardinality(mail_domains))]
                END,
           CASE WHEN pacs_gen_u(b.acct_id, 'conf', seed) < 0.01 THEN 'T' ELSE 'F' END,
           make_timestamp(roll_year - 1, 1, 1, 8, 0, 0)
               - make_interval(days => pacs_gen_k(b.acct_id, 'upd', seed, 3000),
                               secs => pacs_gen_k(b.acct_id, 'upds', seed, 36000))
    FROM (
        SELECT a.acct_id, a.biz,
               first_names[1 + pacs_gen_k(a.acct_id, 'fn', seed, cardinality(first_names))] AS first_name,
               CASE WHEN a.co AND pacs_gen_u(a.acct_id, 'samelast', seed) < 0.75
                    THEN last_names[1 + pacs_gen_k(a.base, 'ln', seed, cardinality(last_names))]
                    ELSE last_names[1 + pacs_gen_k(a.acct_id, 'ln', seed, cardinality(last_names))]
                    END AS last_name,
               CASE WHEN pacs_gen_u(a.acct_id, 'mi', seed) < 0.4
                    THEN chr(65 + pacs_gen_k(a.acct_id, 'mic', seed, 26)) END AS mi,
               biz_words[1 + pacs_gen_k(a.acct_id, 'bizw', seed, cardinality(biz_words))] AS biz_word,
               pacs_gen_u(a.acct_id, 'email', seed) AS ue
        FROM (
            SELECT p.i AS acct_id, p.i AS base, p.biz, false AS co FROM pacs_gen_p p
            UNION ALL
            SELECT n_parcels + p.i, p.i, false, true FROM pacs_gen_p p WHERE p.cown
        ) a
        OFFSET 0
    ) b;

    -- Mailing addresses: the situs for owner-occupied homes, else a PO box, an address
    -- elsewhere in the county, or one out of the county. A co-owner mostly shares the
    -- first owner's (key = the first owner's account).
    INSERT INTO address (acct_id, addr_type_cd, primary_addr, addr_line1, addr_line2,
                         addr_city, addr_state, addr_zip)
    SELECT m.acct_id, 'M', 'Y',
           CASE m.kind
               WHEN 'situs' THEN concat_ws(' ', m.s_num, m.s_prefx, m.s_street, m.s_sufix)
               WHEN 'pobox' THEN 'PO BOX ' || (100 + pacs_gen_k(m.key, 'box', seed, 9800))
               ELSE concat_ws(' ', 100 + pacs_gen_k(m.key, 'mnum', seed, 19000),
                              streets[1 + pacs_gen_k(m.key, 'mst', seed, cardinality(streets))],
                              suffixes[1 + pacs_gen_k(m.key, 'msuf', seed, cardinality(suffixes))])
               END,
           CASE WHEN m.kind = 'situs' AND m.s_unit IS NOT NULL THEN 'UNIT ' || m.s_unit
                WHEN m.kind IN ('local', 'far') AND pacs_gen_u(m.key, 'apt', seed) < 0.1
                THEN 'APT ' || (1 + pacs_gen_k(m.key, 'aptn', seed, 400)) END,
           CASE m.kind WHEN 'situs' THEN m.s_city WHEN 'far' THEN far_city[m.fc]
                ELSE city_name[m.mc] END,
           CASE m.kind WHEN 'far' THEN far_state[m.fc] ELSE 'TX' END,
           CASE m.kind WHEN 'situs' THEN m.s_zip WHEN 'far' THEN far_zip[m.fc]
                ELSE city_zip[m.mc] END
               || CASE WHEN pacs_gen_u(m.key, 'zip4', seed) < 0.1
                       THEN '-' || lpad(pacs_gen_k(m.key, 'zip4n', seed, 10000)::text, 4, '0')
                       ELSE '' END
    FROM (
        SELECT k.acct_id, k.key,
               CASE WHEN k.hs AND s.prop_id IS NOT NULL AND k.key = k.i THEN 'situs'
                    WHEN pacs_gen_u(k.key, 'pobox', seed) < 0.08 THEN 'pobox'
                    WHEN pacs_gen_u(k.key, 'far', seed) < 0.08 THEN 'far'
                    ELSE 'local' END AS kind,
               s.situs_num AS s_num, s.situs_street_prefx AS s_prefx,
               s.situs_street AS s_street, s.situs_street_sufix AS s_sufix,
               s.situs_unit AS s_unit, s.situs_city AS s_city, s.situs_zip AS s_zip,
               1 + pacs_gen_k(k.key, 'mcity', seed, cardinality(city_name)) AS mc,
               1 + pacs_gen_k(k.key, 'fcity', seed, cardinality(far_city)) AS fc
        FROM (
            SELECT p.i AS acct_id, p.i AS key, p.i, p.hs FROM pacs_gen_p p
            UNION ALL
            SELECT n_parcels + p.i,
                   CASE WHEN pacs_gen_u(n_parcels + p.i, 'samemail', seed) < 0.85
                        THEN p.i ELSE n_parcels + p.i END,
                   p.i, p.hs
            FROM pacs_gen_p p WHERE p.cown
        ) k
        LEFT JOIN situs s ON s.prop_id = k.i AND s.situs_id = 2 * k.i - 1
        OFFSET 0
    ) m;

    -- Owners of every property_val row: the first owner (the parcel's account, or an
    -- investor's), and the co-owner at 50%. Exemptions of every property_val row, held by
    -- the first owner; a supplement sometimes adds OV65 (the owner turned 65).
    INSERT INTO owner (owner_id, owner_tax_yr, prop_id, sup_num, pct_ownership, hs_prop)
    SELECT o.owner_id, s.yr, p.i, s.sup, o.pct, CASE WHEN p.hs THEN 'T' ELSE 'F' END
    FROM pacs_gen_p p
    CROSS JOIN LATERAL unnest(ARRAY[roll_year, roll_year, roll_year - 1], ARRAY[0, 1, 0],
                              ARRAY[p.has_cur, p.has_sup, p.has_prior]) AS s(yr, sup, present)
    CROSS JOIN LATERAL unnest(
        ARRAY[p.acct1, CASE WHEN p.cown THEN n_parcels + p.i END],
        ARRAY[CASE WHEN p.cown THEN 50 ELSE 100 END, 50]) AS o(owner_id, pct)
    WHERE s.present AND o.owner_id IS NOT NULL;

    INSERT INTO property_exemption (prop_id, owner_id, exmpt_tax_yr, sup_num, exmpt_type_cd,
                                    effective_dt, termination_dt)
    SELECT p.i, p.acct1, s.yr, s.sup, e.code,
           make_date(s.yr, 1, 1) - pacs_gen_k(p.i, 'eff' || e.code, seed, 5000),
           CASE WHEN pacs_gen_u(p.i, 'term' || e.code, seed) < 0.01
                THEN make_date(s.yr, 12, 31) END
    FROM pacs_gen_p p
    CROSS JOIN LATERAL unnest(ARRAY[roll_year, roll_year, roll_year - 1], ARRAY[0, 1, 0],
                              ARRAY[p.has_cur, p.has_sup, p.has_prior]) AS s(yr, sup, present)
    CROSS JOIN LATERAL unnest(
        CASE WHEN s.sup = 1 AND p.sup_adds_ov65 THEN p.codes || 'OV65'::text
             ELSE p.codes END) AS e(code)
    WHERE s.present AND cardinality(p.codes) > 0;

    -- Sales: the latest before the roll year, sometimes an earlier one, and now and then
    -- a sale that conveyed the next parcel too.
    INSERT INTO sale (chg_of_owner_id, sl_price, sl_dt, sl_type_cd, confidential_sale)
    SELECT 2 * s.i - 1 + s.k,
           CASE WHEN pacs_gen_u(s.i * 2 + s.k, 'noprice', seed) < 0.3 THEN NULL
                ELSE round(s.market * (0.7 + 0.5 * pacs_gen_u(s.i * 2 + s.k, 'price', seed))::numeric
                           * CASE WHEN s.k = 1 THEN 0.7 ELSE 1 END, -2) END,
           make_date(roll_year - 1, 12, 31) - pacs_gen_k(s.i, 'sd1', seed, 3650)
               - CASE WHEN s.k = 1 THEN 200 + pacs_gen_k(s.i, 'sd2', seed, 4000) ELSE 0 END,
           (ARRAY['Q', 'Q', 'Q', 'Q', 'Q', 'Q', 'Q', 'Q', 'U', 'F', 'R', 'R'])
               [1 + pacs_gen_k(s.i * 2 + s.k, 'sltype', seed, 12)],
           CASE WHEN pacs_gen_u(s.i * 2 + s.k, 'slconf', seed) < 0.15 THEN 'T' ELSE 'F' END
    FROM (
        SELECT p.i, p.market, r.k
        FROM pacs_gen_p p
        CROSS JOIN generate_series(0, 1) AS r(k)
        WHERE pacs_gen_u(p.i, 'sale1', seed) < 0.35
          AND (r.k = 0 OR pacs_gen_u(p.i, 'sale2', seed) < 0.23)
    ) s;

    INSERT INTO chg_of_owner_prop_assoc (chg_of_owner_id, prop_id, seq_num)
    SELECT s.chg_of_owner_id, a.prop_id, a.seq
    FROM sale s
    CROSS JOIN LATERAL unnest(
        ARRAY[(s.chg_of_owner_id + 1) / 2,
              CASE WHEN s.chg_of_owner_id % 2 = 1 AND (s.chg_of_owner_id + 1) / 2 < n_parcels
                        AND pacs_gen_u((s.chg_of_owner_id + 1) / 2, 'multi', seed) < 0.03
                   THEN (s.chg_of_owner_id + 1) / 2 + 1 END],
        ARRAY[0, 1]) AS a(prop_id, seq)
    WHERE a.prop_id IS NOT NULL;

    DROP TABLE pacs_gen_p;
    FOR trg IN
        SELECT g.tgrelid::regclass AS rel, g.tgname
        FROM pg_trigger g
        WHERE g.tgname IN ('pacs_cl_ins', 'pacs_cl_upd', 'pacs_cl_del')
          AND g.tgrelid = ANY (ARRAY['property', 'property_val', 'situs', 'account', 'address',
                                     'owner', 'property_exemption', 'sale',
                                     'chg_of_owner_prop_assoc']::regclass[])
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', trg.rel, trg.tgname);
    END LOOP;
    ANALYZE property, property_val, situs, account, address, owner, property_exemption,
            sale, chg_of_owner_prop_assoc, change_log;
END
$fn$;
