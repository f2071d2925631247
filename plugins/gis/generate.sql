-- plugins/gis/generate.sql — gis_generate(n, seed): the parcel layer of the PACS demo
-- county that pacs_generate(n, seed, roll_year) makes (plugins/pacs/generate.sql).
--
-- One taxparcel per PACS real property (prop_type_cd 'R') among parcels 1..n: personal
-- property, mobile homes and minerals have no shape. PARCELID is the PACS simple_geo_id,
-- computed here the same way pacs_generate computes it (the same hash of (i, salt) under
-- the seed), so the two databases agree without either reading the other. The shape is a
-- MultiPolygon in EPSG:2277 on a grid near Georgetown, Texas: one rectangle, or (about 5%)
-- two, sized 60 to 400 feet a side; STATEDAREA is the area of the deed ("0.43 AC"),
-- within a few percent of the mapped one. The attributes are left null: PACS fills them
-- through tfsync. Deterministic; the table and its change log are emptied first and the
-- change-log trigger is off while it loads (a generated layer is a start, not a change).

-- The same numbers as pacs_gen_u/pacs_gen_k of plugins/pacs/generate.sql.
CREATE OR REPLACE FUNCTION gis_gen_u(i bigint, salt text, seed integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ((hashtextextended($1::text || ':' || $2, $3) >> 11) & 9007199254740991)::double precision
           / 9007199254740992.0
$$;

CREATE OR REPLACE FUNCTION gis_gen_k(i bigint, salt text, seed integer, k integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT floor(gis_gen_u($1, $2, $3) * $4)::integer
$$;

CREATE OR REPLACE FUNCTION gis_generate(n integer, seed integer)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    geo_b bigint;
BEGIN
    IF n IS NULL OR n < 0 OR n > 100000000 THEN
        RAISE EXCEPTION 'could not generate GIS data: n must be between 0 and 100000000, not %', n;
    END IF;
    seed := coalesce(seed, 0);
    geo_b := abs(hashtextextended('geo_id', seed)) % 100000000;
    ALTER TABLE taxparcel DISABLE TRIGGER gis_cl_ins;
    TRUNCATE taxparcel, gis_change_log;
    INSERT INTO taxparcel ("PARCELID", "STATEDAREA", shape)
    SELECT g.parcelid,
           to_char(round((g.w * g.h * (1 + 0.04 * (g.ud - 0.5)) / 43560.0)::numeric, 2),
                   'FM9999990.00') || ' AC',
           CASE WHEN g.two THEN
                    ST_Multi(ST_Collect(
                        ST_MakeEnvelope(g.x, g.y, g.x + g.w / 2, g.y + g.h, 2277),
                        ST_MakeEnvelope(g.x + g.w / 2 + 20, g.y, g.x + g.w + 20, g.y + g.h, 2277)))
                ELSE ST_Multi(ST_MakeEnvelope(g.x, g.y, g.x + g.w, g.y + g.h, 2277)) END
    FROM (
        SELECT i,
               (10 + gis_gen_k(i, 'geo_d', seed, 90))::text
                   || lpad((((i::bigint - 1) * 7654321 + geo_b) % 100000000)::text, 8, '0')
                   AS parcelid,
               3100000 + 500 * (i % 200) AS x,
               10180000 + 500 * (i / 200) AS y,
               round((60 + 340 * gis_gen_u(i, 'gis_w', seed))::numeric, 1)::float8 AS w,
               round((60 + 340 * gis_gen_u(i, 'gis_h', seed))::numeric, 1)::float8 AS h,
               gis_gen_u(i, 'gis_d', seed) AS ud,
               gis_gen_u(i, 'gis_two', seed) < 0.05 AS two
        FROM generate_series(1, n) AS i
        WHERE gis_gen_u(i, 'type', seed) < 0.86
    ) g
    ORDER BY g.i;
    ALTER TABLE taxparcel ENABLE TRIGGER gis_cl_ins;
END
$fn$;
