-- transforms/pacs_owner_to_gis.lua — PACS owners -> GIS parcel owners (taxparcel, through
-- the gis adapter's parcel_owner entity).
--
-- For every PACS property of the roll year, the first two owners' names and the first
-- owner's mailing address go to the GIS parcel of the property's simple_geo_id. The parcel
-- layer is public: a confidential owner (PACS account.confidential_flag 'T') is shown as
-- CONFIDENTIAL OWNER, and when the first owner is confidential no mailing address is
-- published. A property without owners clears them in GIS. Only real property ('R') has a
-- GIS parcel. The SQL twin is tests/integration/sql/pacs_owner_to_gis.sql.

local pacs = require('pacs_common')
local null = tf.null
local isnull, trim, upper = tf.isnull, tf.trim, tf.upper

-- The first five characters of a ZIP code (LGIM PSTLZIP5), when they are five digits.
local function zip5(z)
  if isnull(z) then
    return null
  end
  local five = trim(z):match('^(%d%d%d%d%d)')
  return five or null
end

function map(o)
  if o.prop_type_cd ~= 'R' then
    return {}
  end
  local owner = { PARCELID = pacs.parcel_id(o) }
  if not isnull(o.owner_count) and o.owner_count > 0 then
    owner.OWNERNME1 = pacs.owner_name(o.own1_name, o.own1_confidential)
    owner.OWNERNME2 = pacs.owner_name(o.own2_name, o.own2_confidential)
    if not pacs.is_confidential(o.own1_confidential) then
      local lines = {}
      for _, l in ipairs({ o.addr_line1, o.addr_line2 }) do
        if not isnull(l) and trim(l) ~= '' then
          lines[#lines + 1] = trim(l)
        end
      end
      if #lines > 0 then
        owner.PSTLADDRESS = table.concat(lines, ', ')
      end
      owner.PSTLCITY = upper(o.addr_city)
      owner.PSTLSTATE = upper(trim(o.addr_state))
      owner.PSTLZIP5 = zip5(o.addr_zip)
    end
  end
  return { parcel_owner = owner }
end
