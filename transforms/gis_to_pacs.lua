-- transforms/gis_to_pacs.lua — GIS parcel -> what PACS keeps of it (property_gis, through
-- the pacs adapter's parcel_gis entity).
--
-- For every GIS parcel, the area (acres) and centroid (WGS 84) the gis adapter computed
-- from the shape, the shape's SRID and the stated area go to PACS by simple_geo_id =
-- PARCELID. Nothing PACS owns is written. A parcel whose shape is missing, empty or
-- invalid fails here with the adapter's reason (ST_IsValidReason), so it becomes a dead
-- letter instead of a wrong area in PACS.
--
-- The shape arrives as a nested table, the GeoJSON geometry:
--   g.shape.type                    'MultiPolygon'
--   g.shape.crs.properties.name     'EPSG:2277'
--   g.shape.coordinates[1][1][1]    the first point, { x, y }
-- The SQL twin is tests/integration/sql/gis_to_pacs.sql.

local isnull = tf.isnull

local function srid_of(shape)
  local crs = shape.crs
  local name = crs and crs.properties and crs.properties.name
  local srid = type(name) == 'string' and tonumber(name:match('^EPSG:(%d+)$'))
  if not srid then
    error('parcel shape names no EPSG SRID')
  end
  return math.tointeger(srid)
end

function map(g)
  if not isnull(g.shape_error) then
    error('PARCELID ' .. g.PARCELID .. ': ' .. g.shape_error)
  end
  local shape = g.shape
  if shape.type ~= 'MultiPolygon' and shape.type ~= 'Polygon' then
    error('PARCELID ' .. g.PARCELID .. ': a parcel shape must be a polygon, not a '
          .. tostring(shape.type))
  end
  return {
    parcel_gis = {
      simple_geo_id = g.PARCELID,
      gis_acres = g.acres,
      gis_centroid_lat = g.centroid_lat,
      gis_centroid_lon = g.centroid_lon,
      gis_srid = srid_of(shape),
      gis_stated_area = g.STATEDAREA,
    },
  }
end
