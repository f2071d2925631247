-- transforms/crm_to_pacs.lua — CRM contacts -> PACS accounts' mailing addresses (the pacs
-- adapter's account_mail entity).
--
-- A mailing address a clerk keeps in the CRM goes back to the PACS account of the
-- contact's id: lines, city, state, and the ZIP as PACS writes it ('78701' or
-- '78701-1234'). Nothing else of PACS is written. A do_not_publish contact holds no address
-- (pacs-to-crm never sends a confidential owner's), so it sends nothing, and neither does
-- a contact without any address: an empty CRM record never erases what PACS knows. The
-- SQL twin is tests/integration/sql/crm_to_pacs.sql.

local null = tf.null
local isnull = tf.isnull

function map(c)
  if c.do_not_publish == true then
    return {}
  end
  if isnull(c.mail_line1) and isnull(c.mail_city) and isnull(c.mail_zip5) then
    return {}
  end
  local zip = null
  if not isnull(c.mail_zip5) then
    zip = c.mail_zip5
    if not isnull(c.mail_zip4) then
      zip = zip .. '-' .. c.mail_zip4
    end
  end
  return {
    account_mail = {
      acct_id = c.id,
      addr_line1 = c.mail_line1,
      addr_line2 = c.mail_line2,
      addr_city = c.mail_city,
      addr_state = c.mail_state,
      addr_zip = zip,
    },
  }
end
