-- transforms/pacs_to_erp.lua — PACS owners -> the billing system's roll (the erp adapter's
-- roll_owner entity): who a property's tax bill goes to.
--
-- For every PACS property of the roll year with an owner: the ERP account is the first
-- owner's PACS owner id, zero-padded to the ERP's 10 digits ("0000012345"); the name and
-- mailing address are the first owner's, trimmed, the city and state upper-cased, the ZIP
-- as 5 or 5-4 digits. The bill is mailed, so a confidential owner's name and address go
-- to the billing system in clear (it is not published; docs/decisions.md). A property
-- without owners maps to nothing. The SQL twin is tests/integration/sql/pacs_to_erp_owner.sql.

local null = tf.null
local isnull, trim, upper = tf.isnull, tf.trim, tf.upper

local function clean(v)
  if isnull(v) then
    return null
  end
  local s = trim(v)
  if s == '' then
    return null
  end
  return s
end

-- "78701" or "78701-1234" from the digits PACS holds; anything else is dropped.
local function zip(z)
  if isnull(z) then
    return null
  end
  local d = trim(z):gsub('[^%d]', '')
  if #d == 9 then
    return d:sub(1, 5) .. '-' .. d:sub(6)
  end
  if #d == 5 then
    return d
  end
  return null
end

function map(o)
  if isnull(o.owner_count) or o.owner_count == 0 or isnull(o.own1_id) then
    return {}
  end
  return {
    roll_owner = {
      prop_id = o.prop_id,
      tax_year = o.prop_val_yr,
      account = string.format('%010d', o.own1_id),
      owner_name = clean(o.own1_name),
      mail_line1 = clean(o.addr_line1),
      mail_line2 = clean(o.addr_line2),
      mail_city = upper(clean(o.addr_city)),
      mail_state = upper(clean(o.addr_state)),
      mail_zip = zip(o.addr_zip),
    },
  }
end
