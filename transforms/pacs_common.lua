-- transforms/pacs_common.lua — helpers shared by the PACS -> CAMA owner and sale mappings.
--
-- Load it with `local pacs = require('pacs_common')`. It only computes values; it never
-- decides which records exist. The rules match pacs_to_cama.lua's (the parid) and the
-- SQL twins in tests/integration/sql/, so change them all together.

local M = {}

local isnull = tf.isnull

-- What CAMA shows instead of the name of an owner who asked for confidentiality (PACS
-- account.confidential_flag 'T'): such owners are never published in clear.
M.CONFIDENTIAL_OWNER = 'CONFIDENTIAL OWNER'

-- CAMA parid: PACS simple_geo_id, or geo_id without its spaces and dashes when the simple
-- form is missing (the same rule as pacs_to_cama.lua). rec needs simple_geo_id and geo_id.
function M.parcel_id(rec)
  if not isnull(rec.simple_geo_id) then
    return rec.simple_geo_id
  end
  if isnull(rec.geo_id) then
    return tf.null
  end
  return (rec.geo_id:gsub('[ %-]', ''))
end

-- True only for a confidential owner. A missing account (null) is not confidential.
function M.is_confidential(flag)
  return flag == true
end

-- The name CAMA may show for an owner: the PACS name, or CONFIDENTIAL_OWNER.
function M.owner_name(name, confidential)
  if M.is_confidential(confidential) then
    return M.CONFIDENTIAL_OWNER
  end
  return name
end

return M
