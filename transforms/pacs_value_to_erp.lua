-- transforms/pacs_value_to_erp.lua — PACS properties -> the billing system's roll (the erp
-- adapter's roll_value entity): what a property's tax bill is computed on.
--
-- taxable_value is the assessed value in whole dollars, 0 for a totally exempt property
-- (an EX exemption); exemption_codes the year's exemption codes in code order, joined by
-- ';' ("HS;OV65"), null when there is none. Every property type is billed. The SQL twin is
-- tests/integration/sql/pacs_to_erp_value.sql.

local null = tf.null
local isnull = tf.isnull

function map(p)
  local codes = {}
  if not isnull(p.exemptions) then
    for _, c in ipairs(p.exemptions) do
      codes[#codes + 1] = c
    end
  end
  local taxable = p.assessed_val
  if tf.contains(p.exemptions, 'EX') then
    taxable = 0
  end
  return {
    roll_value = {
      prop_id = p.prop_id,
      tax_year = p.prop_val_yr,
      taxable_value = taxable,
      exemption_codes = #codes > 0 and table.concat(codes, ';') or null,
    },
  }
end
