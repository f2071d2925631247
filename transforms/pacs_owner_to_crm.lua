-- transforms/pacs_owner_to_crm.lua — PACS owners -> the parcels of CRM contacts (the pacs
-- adapter's owner entity, the crm adapter's contact_property).
--
-- Each owner of a property's roll-year value row is one contact_property: the contact (the
-- owner's account id, a contact of pacs_to_crm.lua), the property, the tax year, the
-- property's geo_id, and primary_owner for the owner with the largest share (the first of
-- owner_ids). A confidential owner's parcels are sent too: the contact they point to shows
-- no name. A property without owners sends nothing, and a retired one (a deletion) takes
-- its parcels out of the CRM. The SQL twin is tests/integration/sql/pacs_owner_to_crm.sql.

local isnull = tf.isnull

function map(o)
  if isnull(o.owner_ids) then
    return {}
  end
  local links = {}
  for i, acct in ipairs(o.owner_ids) do
    links[#links + 1] = {
      contact_id = acct,
      prop_id = o.prop_id,
      tax_year = o.prop_val_yr,
      geo_id = o.geo_id,
      primary_owner = i == 1,
    }
  end
  return { contact_property = links }
end
