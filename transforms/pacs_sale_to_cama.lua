-- transforms/pacs_sale_to_cama.lua — PACS sales -> CAMA sales.
--
-- How this script is used: for every PACS sale and every property it conveyed (a sale of
-- two parcels gives two records), tfsyncd calls map(s) with a "sale" record: the sale's
-- price, date, type and confidentiality, the property's geo ids, and as the buyer the
-- property's current first owner. One record gives one sales row keyed by (parid,
-- instruno), where instruno is the PACS sale id (chg_of_owner_id) as text.
--
-- Things to know when editing (docs/transform-guide.md has the whole story):
--   * A confidential sale is never exported: map returns {} (no CAMA row at all).
--   * The demo PACS keeps no seller, so oldown (seller_name) is null; the buyer is the
--     property's owner today, so for an older sale of a property sold again since, it names
--     today's owner, not that sale's buyer.
--   * A confidential buyer is written as 'CONFIDENTIAL OWNER'.
--   * A price PACS does not know (Texas is a non-disclosure state) stays null.
--   * CAMA fills wen (when) and who itself: do not set them.
--   * The same mapping is written in SQL in tests/integration/sql/pacs_sale_to_cama_sales.sql;
--     the integration tests compare the two, so change both together.

local pacs = require('pacs_common')

function map(s)
  if s.confidential_sale == true then
    return {}
  end

  return {
    sales = {
      parid = pacs.parcel_id(s),
      instruno = tostring(s.chg_of_owner_id),
      saledt = s.sl_dt,
      price = s.sl_price,
      saletype = s.sl_type_cd,
      own1 = pacs.owner_name(s.buyer_name, s.buyer_confidential),
      oldown = s.seller_name,
    },
  }
end
