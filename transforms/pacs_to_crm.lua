-- transforms/pacs_to_crm.lua — PACS owner accounts -> CRM contacts (the pacs adapter's
-- account entity, the crm adapter's contact).
--
-- Every PACS account that owns a property of the roll year is the CRM contact whose id is
-- its account id: name, mailing address (ZIP split into zip5 and zip4) and
-- do_not_publish. The parcels it owns are contact_property records
-- (pacs_owner_to_crm.lua), so an account that stops owning one property keeps its
-- contact, and one that owns nothing any more is deleted from the CRM. A confidential
-- owner (PACS account.confidential_flag 'T') is never sent in clear: CONFIDENTIAL OWNER,
-- no address, do_not_publish. Values go as PACS holds them, so that a contact sent back
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

function map(a)
  local c = { id = a.acct_id, do_not_publish = pacs.is_confidential(a.confidential) }
  if c.do_not_publish then
    c.display_name = pacs.CONFIDENTIAL_OWNER
  else
    c.display_name = a.file_as_name
    c.mail_line1 = a.addr_line1
    c.mail_line2 = a.addr_line2
    c.mail_city = a.addr_city
    c.mail_state = a.addr_state
    c.mail_zip5, c.mail_zip4 = split_zip(a.addr_zip)
  end
  return { contact = c }
end
