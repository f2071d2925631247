-- transforms/pacs_to_crm.lua — PACS owners -> CRM contacts (the crm adapter's contact).
--
-- For every PACS property of the roll year, its first owner becomes (or refreshes) the CRM
-- contact whose id is the PACS account id: name, mailing address (ZIP split into zip5 and
-- zip4) and do_not_publish. An account that owns several properties is the same contact
-- for each, with the same values. A confidential owner (PACS account.confidential_flag
-- 'T') is never sent in clear: CONFIDENTIAL OWNER, no address, do_not_publish. A property
-- without owners sends nothing. Values go as PACS holds them, so that a contact sent back
-- by crm-to-pacs unchanged is no change in PACS. The SQL twin is
-- tests/integration/sql/pacs_to_crm.sql.

local pacs = require('pacs_common')
local null = tf.null
local isnull = tf.isnull

-- A ZIP as PACS keeps it ('78701' or '78701-1234') as zip5 and zip4.
local function split_zip(z)
  if isnull(z) then
    return null, null
  end
  local five, four = z:match('^(%d%d%d%d%d)%-?(%d%d%d%d)$')
  if five then
    return five, four
  end
  return z:match('^(%d%d%d%d%d)$') or null, null
end

function map(o)
  if isnull(o.owner_count) or o.owner_count == 0 or isnull(o.own1_id) then
    return {}
  end
  local c = { id = o.own1_id, do_not_publish = pacs.is_confidential(o.own1_confidential) }
  if c.do_not_publish then
    c.display_name = pacs.CONFIDENTIAL_OWNER
  else
    c.display_name = o.own1_name
    c.mail_line1 = o.addr_line1
    c.mail_line2 = o.addr_line2
    c.mail_city = o.addr_city
    c.mail_state = o.addr_state
    c.mail_zip5, c.mail_zip4 = split_zip(o.addr_zip)
  end
  return { contact = c }
end
