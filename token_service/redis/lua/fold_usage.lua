-- Fold a batch of TokenUsed events and acknowledge their entries, in one call.
-- Keys are derived from the prefix, so this needs a single Redis (or one slot).
-- ARGV: 1 key prefix, 2 the worker's clock (ms), 3 this dedupe window's number,
-- 4 the previous window's number, 5 how long this window's seen set is kept (ms),
-- 6 the usage stream, 7 its group, 8 JSON list of events, each
-- [event id, token id, used_at ms, count, day (YYYY-MM-DD), reporter, sequence], all
-- strings (reporter and sequence empty when the gateway sent none),
-- 9 JSON list of the entry ids to acknowledge, 10 the window of sequences kept per
-- reporter (a multiple of 8).
-- Keys: {p}:token:<id> (status, expires_ms, last_used_ms), {p}:token:<id>:daily,
-- {p}:seen:<window> (event ids folded in that window of arrival, for reports without a
-- sequence), {p}:reporter:<r>:high and {p}:reporter:<r>:seen (per reporter: the highest
-- sequence folded, and a ring of bits, one per sequence of the last ARGV[10]). A reporter's
-- two keys expire with the dedupe window: memory grows with live reporters, not events.
-- An event id seen in this window or the previous one is a repeat, whatever its times
-- say, so redeliveries and re-sent reports count once. Only an active token's events
-- are folded; the others are skipped and not remembered. Last use only moves forward.
-- Returns {folded, repeated, skipped}.
local prefix, now = ARGV[1], tonumber(ARGV[2])
local seen = prefix .. ':seen:' .. ARGV[3]
local before = prefix .. ':seen:' .. ARGV[4]
local ring = tonumber(ARGV[10] or '65536')
local folded, repeated, skipped = 0, 0, 0

-- Zero the ring's bits for sequences first..last (fewer than ring of them).
local function clear(bits, first, last)
  local q = first
  while q <= last do
    local slot = q % ring
    if slot % 8 == 0 and last - q >= 7 then
      local bytes = math.min(math.floor((last - q + 1) / 8), (ring - slot) / 8)
      redis.call('SETRANGE', bits, slot / 8, string.rep('\0', bytes))
      q = q + bytes * 8
    else
      redis.call('SETBIT', bits, slot, 0)
      q = q + 1
    end
  end
end

local function reporter_keys(reporter)
  local base = prefix .. ':reporter:' .. reporter
  return base .. ':high', base .. ':seen'
end

-- Whether a reporter's sequence was folded before. Older than the window, it cannot be
-- told apart, so it is taken for a repeat: a report never counts twice.
local function seen_in_window(reporter, sequence)
  local high_key, bits = reporter_keys(reporter)
  local high = tonumber(redis.call('GET', high_key) or '0')
  if sequence > high then
    return false
  end
  return sequence <= high - ring or redis.call('GETBIT', bits, sequence % ring) == 1
end

-- Marks a sequence folded, moving the window forward when it is the newest.
local function remember_in_window(reporter, sequence, text)
  local high_key, bits = reporter_keys(reporter)
  local high = tonumber(redis.call('GET', high_key) or '0')
  if sequence > high then
    if sequence - high >= ring then
      redis.call('DEL', bits)
    else
      clear(bits, high + 1, sequence)
    end
    redis.call('SET', high_key, text, 'PX', ARGV[5])
  end
  redis.call('SETBIT', bits, sequence % ring, 1)
  redis.call('PEXPIRE', bits, ARGV[5])
  redis.call('PEXPIRE', high_key, ARGV[5])
end

local function repeated_event(e)
  if (e[6] or '') ~= '' then
    return seen_in_window(e[6], tonumber(e[7]))
  end
  return redis.call('SISMEMBER', seen, e[1]) == 1 or redis.call('SISMEMBER', before, e[1]) == 1
end

for _, e in ipairs(cjson.decode(ARGV[8])) do
  if repeated_event(e) then
    repeated = repeated + 1
  else
    local token = prefix .. ':token:' .. e[2]
    local expires = redis.call('HGET', token, 'expires_ms')
    if redis.call('HGET', token, 'status') ~= 'active'
      or (expires and (tonumber(expires) or 0) <= now) then
      skipped = skipped + 1
    else
      local last = tonumber(redis.call('HGET', token, 'last_used_ms') or '')
      if not last or last < tonumber(e[3]) then  -- a value not a number is replaced
        redis.call('HSET', token, 'last_used_ms', e[3])
      end
      redis.call('HINCRBY', token .. ':daily', e[5], e[4])
      -- Marked seen last: an error above leaves it unmarked, so a redelivery tries again.
      if (e[6] or '') == '' then
        redis.call('SADD', seen, e[1])
      else
        remember_in_window(e[6], tonumber(e[7]), e[7])
      end
      folded = folded + 1
    end
  end
end
if folded > 0 then
  redis.call('PEXPIRE', seen, ARGV[5])
end
local ids = cjson.decode(ARGV[9])
for i = 1, #ids, 1000 do
  redis.call('XACK', ARGV[6], ARGV[7], unpack(ids, i, math.min(i + 999, #ids)))
end
return {folded, repeated, skipped}
