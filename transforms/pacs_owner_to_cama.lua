-- transforms/pacs_owner_to_cama.lua — PACS owners -> CAMA owner record (owndat).
--
-- How this script is used: for every PACS property of the roll year, tfsyncd builds one
-- "owner" record (the owners of its value row at the highest supplement, the first by the
-- largest share, ties by owner id, with the first owner's mailing address) and calls
-- map(o) with it. One property gives one owndat row keyed by (parid, taxyr). An owner's
-- mailing-address change in PACS reaches the owndat row of every property the owner has.
--
-- Things to know when editing (docs/transform-guide.md has the whole story):
--   * A field that is null in PACS arrives as tf.null, not nil; test it with tf.isnull(x).
--   * Confidential owners (PACS confidential_flag) are never written in clear: the name
--     becomes 'CONFIDENTIAL OWNER', and for the first owner the mailing address is left
--     empty too.
--   * pctown is the first owner's share in percent (50 for a co-owner of two).
--   * CAMA fills wen (when) and who itself: do not set them.
--   * The same mapping is written in SQL in tests/integration/sql/pacs_owner_to_cama_owndat.sql;
--     the integration tests compare the two, so change both together.

local pacs = require('pacs_common')
local isnull, trim, upper = tf.isnull, tf.trim, tf.upper

function map(o)
  -- A property without any owner row for its value row: nothing to say in owndat.
  if isnull(o.owner_count) or o.owner_count == 0 then
    return {}
  end

  local owndat = {
    parid = pacs.parcel_id(o),
    taxyr = o.prop_val_yr,
    seq = 0,
    cur = 'Y',
    own1 = pacs.owner_name(o.own1_name, o.own1_confidential),
    own2 = pacs.owner_name(o.own2_name, o.own2_confidential),
    pctown = o.own1_pct,
    deactivat = o.prop_inactive_dt,
  }

  -- The mailing address belongs to the first owner: published only when that owner is not
  -- confidential. City and state upper-cased, state trimmed.
  if not pacs.is_confidential(o.own1_confidential) then
    owndat.addr1 = o.addr_line1
    owndat.addr2 = o.addr_line2
    owndat.cityname = upper(o.addr_city)
    owndat.statecode = upper(trim(o.addr_state))
    owndat.zip1 = o.addr_zip
  end

  return { owndat = owndat }
end
