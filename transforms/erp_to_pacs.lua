-- transforms/erp_to_pacs.lua — the billing system's payment statuses (the erp adapter's
-- payment entity, from its inbox files) -> PACS bill_status (property_bill_status).
--
-- The ERP keeps amounts in cents and its own status codes; PACS keeps dollars with two
-- decimals and words:
--   PD paid   PP partial   DU due   DQ delinquent   VD void
-- An unknown code fails the record (a dead letter naming it). The SQL twin is
-- tests/integration/sql/erp_to_pacs.sql.

local null = tf.null
local isnull, trim, upper = tf.isnull, tf.trim, tf.upper

local STATUS = { PD = 'PAID', PP = 'PARTIAL', DU = 'DUE', DQ = 'DELINQUENT', VD = 'VOID' }

-- Cents (an integer) as dollars with two decimals, as text so no digit is lost.
local function dollars(cents)
  if isnull(cents) then
    return null
  end
  local sign = cents < 0 and '-' or ''
  local c = math.abs(cents)
  return string.format('%s%d.%02d', sign, c // 100, c % 100)
end

function map(b)
  local status = null
  if not isnull(b.payment_status_type_cd) then
    local code = upper(trim(b.payment_status_type_cd))
    status = STATUS[code]
    if not status then
      error('bill ' .. b.bill_id .. ': unknown payment_status_type_cd "' .. code
            .. '" (known: PD, PP, DU, DQ, VD)')
    end
  end
  return {
    bill_status = {
      bill_id = b.bill_id,
      prop_id = b.prop_id,
      tax_year = b.tax_year,
      amount_due = dollars(b.amount_due_cents),
      amount_paid = dollars(b.amount_paid_cents),
      payment_status = status,
      erp_modified = b.last_modified,
    },
  }
end
