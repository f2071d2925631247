-- transforms/pacs_to_cama.lua — PACS property -> CAMA parcel (pardat) and assessment (asmt).
--
-- How this script is used: for every PACS property of the roll year (its property_val row
-- at the highest supplement, with its primary situs address and its exemption codes),
-- tfsyncd calls map(p) with the record as a table and writes what map returns into CAMA.
-- One property gives one pardat row and one asmt row, keyed by (parid, taxyr).
--
-- Things to know when editing (docs/transform-guide.md has the whole story):
--   * A field that is null in PACS arrives as tf.null, not nil. tf.null is "truthy" in Lua,
--     so test it with tf.isnull(x), never with `if x then`.
--   * A field you leave out (nil) or set to tf.null is written as NULL.
--   * Money arrives as Lua numbers, acreage as a number with decimals.
--   * CAMA fills wen (when) and who itself: do not set them.
--   * The same mapping is written in SQL in tests/integration/sql/pacs_to_cama_*.sql; the
--     integration tests compare the two, so change both together.
--   * Save the file and tfsyncd picks the new version up within a second, no restart.

local null = tf.null
local isnull, trim, upper, num = tf.isnull, tf.trim, tf.upper, tf.num

-- CAMA class from the PTAD state code (A1 single family, C1 vacant lot, D1 ag land,
-- F1 commercial, F2 industrial, ...): the whole code is looked up first, then its first
-- letter, in lookups/state_cd_class.csv; anything else is 'O' (other).
local function class_of(state_cd)
  local code = upper(trim(state_cd))
  if isnull(code) then
    return 'O'
  end
  return tf.lookup('state_cd_class', code)
      or tf.lookup('state_cd_class', code:sub(1, 1))
      or 'O'
end

-- CAMA parid: PACS simple_geo_id, or geo_id without its spaces and dashes when the simple
-- form is missing.
local function parcel_id(p)
  if not isnull(p.simple_geo_id) then
    return p.simple_geo_id
  end
  if isnull(p.geo_id) then
    return null
  end
  return (p.geo_id:gsub('[ %-]', ''))
end

-- Splits a situs number such as '123A' or '45 1/2' into the house number (123, 45) and
-- what follows it ('A', '1/2'). No leading digits: no house number, all of it is the
-- addition. More than 9 digits do not fit CAMA's integer column, so they stay text too.
local function house_number(situs_num)
  if isnull(situs_num) then
    return null, null
  end
  local s = trim(situs_num)
  local digits, rest = s:match('^(%d*)(.*)$')
  local adrno = null
  if #digits >= 1 and #digits <= 9 then
    adrno = math.tointeger(tonumber(digits))
  else
    rest = s
  end
  rest = trim(rest)
  if rest == '' then
    rest = null
  end
  return adrno, rest
end

function map(p)
  local parid = parcel_id(p)
  local class = class_of(p.state_cd)
  local adrno, adradd = house_number(p.situs_num)

  local pardat = {
    parid = parid,
    taxyr = p.prop_val_yr,
    seq = 0,
    cur = 'Y',
    class = class,
    luc = p.property_use_cd,
    nbhd = p.hood_cd,
    acres = p.legal_acreage,
    adrno = adrno,
    adradd = adradd,
    adrdir = upper(p.situs_street_prefx),
    adrstr = upper(trim(p.situs_street)),
    adrsuf = tf.address_suffix(p.situs_street_sufix),  -- STREET -> ST, Ave. -> AVE, ...
    unitno = p.situs_unit,
    cityname = upper(p.situs_city),
    statecode = upper(p.situs_state),
    postalcode = p.situs_zip,
    zoning = p.zoning,
    deactivat = p.prop_inactive_dt,
  }

  -- Value class: a totally exempt property is 'EX', a homestead 'HS', anything else
  -- takes the parcel's class.
  local valclass = class
  if tf.contains(p.exemptions, 'EX') then
    valclass = 'EX'
  elseif tf.contains(p.exemptions, 'HS') then
    valclass = 'HS'
  end

  -- Appraised land = land (homestead and not) + agricultural use; building = improvements
  -- (homestead and not). A null value counts as 0 in these sums.
  local land = num(p.land_hstd_val) + num(p.land_non_hstd_val) + num(p.ag_use_val)
  local building = num(p.imprv_hstd_val) + num(p.imprv_non_hstd_val)

  local asmt = {
    parid = parid,
    taxyr = p.prop_val_yr,
    seq = 0,
    cur = 'Y',
    valclass = valclass,
    valapr1 = land,
    valapr2 = building,
    valapr3 = land + building,
    valasm1 = land,
    valasm2 = building,
    valasm3 = p.assessed_val,   -- PACS's certified assessed value, null stays null
    deactivat = p.prop_inactive_dt,
  }

  return { pardat = pardat, asmt = asmt }
end
