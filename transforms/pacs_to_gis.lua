-- transforms/pacs_to_gis.lua — PACS property -> GIS parcel attributes (taxparcel, through
-- the gis adapter's parcel_attr entity).
--
-- How this script is used: for every PACS property of the roll year, tfsyncd calls map(p)
-- and the gis adapter updates the attribute columns of the GIS parcel whose PARCELID is
-- the property's simple_geo_id. GIS owns the parcel and its shape: a PARCELID GIS does not
-- have is a failure of that record ("no such parcel in GIS", a dead letter), never a new
-- parcel, and nothing here can reach the shape.
--
-- Things to know when editing (docs/transform-guide.md has the whole story):
--   * Only real property ('R') has a shape in GIS; personal property, mobile homes and
--     minerals map to nothing (skipped).
--   * Owners come from the owner entity (pacs_owner_to_gis.lua), not from here.
--   * The same mapping is written in SQL in tests/integration/sql/pacs_to_gis_attr.sql;
--     the integration tests compare the two, so change both together.

local pacs = require('pacs_common')
local null = tf.null
local isnull, trim, upper, num = tf.isnull, tf.trim, tf.upper, tf.num

-- "123 N MAIN ST UNIT 4": the situs parts that are there, trimmed, upper-cased, one space
-- apart, the suffix in its USPS abbreviation; null when there is none.
local function site_address(p)
  local parts = {}
  local function add(v, prefix)
    if not isnull(v) then
      local s = trim(v)
      if s ~= '' then
        parts[#parts + 1] = (prefix or '') .. s
      end
    end
  end
  add(p.situs_num)
  add(p.situs_street_prefx)
  add(p.situs_street)
  if not isnull(p.situs_street_sufix) and trim(p.situs_street_sufix) ~= '' then
    add(tf.address_suffix(p.situs_street_sufix))  -- STREET -> ST, Trail -> TRL, ...
  end
  add(p.situs_unit, 'UNIT ')
  if #parts == 0 then
    return null
  end
  return upper(table.concat(parts, ' '))
end

function map(p)
  if p.prop_type_cd ~= 'R' then
    return {}
  end
  -- Market land and improvements (homestead and not); taxable is the assessed value, none
  -- for a totally exempt property.
  local land = num(p.land_hstd_val) + num(p.land_non_hstd_val)
  local imprv = num(p.imprv_hstd_val) + num(p.imprv_non_hstd_val)
  local taxable = p.assessed_val
  if tf.contains(p.exemptions, 'EX') then
    taxable = 0
  end
  return {
    parcel_attr = {
      PARCELID = pacs.parcel_id(p),
      SITEADDRESS = site_address(p),
      PRPRTYDSCRP = p.legal_desc,
      USECD = p.property_use_cd,
      USEDSCRP = tf.lookup('land_use', p.property_use_cd) or null,
      NGHBRHDCD = p.hood_cd,
      CLASSCD = p.state_cd,
      LNDVALUE = land,
      IMPVALUE = imprv,
      CNTASSDVAL = p.assessed_val,
      CNTTXBLVAL = taxable,
    },
  }
end
