-- tests/integration/sql/gis_to_pacs.sql — the GIS -> PACS mapping of
-- transforms/gis_to_pacs.lua (the gis adapter's taxparcel entity, the pacs adapter's
-- parcel_gis entity), written independently as one SELECT over the GIS layer.
--
-- Columns exactly property_gis's that parcel_gis writes, in its order; no ORDER BY, no
-- trailing semicolon, no double dashes outside comments.
--
-- Same rules: a parcel whose shape is missing, empty or invalid has no row (it is a dead
-- letter); acres = the shape's area in square US survey feet (EPSG:2277) / 43560,
-- rounded to 4 decimals; the centroid in WGS 84 (EPSG:4326) rounded to 7 decimals; the
-- shape's SRID; STATEDAREA as GIS has it.
SELECT
    t."PARCELID" AS simple_geo_id,
    round((ST_Area(t.shape) / 43560.0)::numeric, 4) AS gis_acres,
    round(ST_Y(ST_Transform(ST_Centroid(t.shape), 4326))::numeric, 7) AS gis_centroid_lat,
    round(ST_X(ST_Transform(ST_Centroid(t.shape), 4326))::numeric, 7) AS gis_centroid_lon,
    ST_SRID(t.shape) AS gis_srid,
    t."STATEDAREA" AS gis_stated_area
FROM taxparcel t
WHERE t.shape IS NOT NULL AND NOT ST_IsEmpty(t.shape) AND ST_IsValid(t.shape)
