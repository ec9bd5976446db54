-- Fold a batch of TokenUsed events and acknowledge their entries, in one call.
-- Keys are derived from the prefix, so this needs a single Redis (or one slot).
-- ARGV: 1 key prefix, 2 the worker's clock (ms), 3 this dedupe window's number,
-- 4 the previous window's number, 5 how long this window's seen set is kept (ms),
-- 6 the usage stream, 7 its group, 8 JSON list of events, each
-- [event id, token id, used_at ms, count, day (YYYY-MM-DD)], all strings,
-- 9 JSON list of the entry ids to acknowledge.
-- Keys: {p}:token:<id> (status, expires_ms, last_used_ms), {p}:token:<id>:daily,
-- {p}:seen:<window> (event ids folded in that window of arrival).
-- An event id seen in this window or the previous one is a repeat, whatever its times
-- say, so redeliveries and re-sent reports count once. Only an active token's events
-- are folded; the others are skipped and not remembered. Last use only moves forward.
-- Returns {folded, repeated, skipped}.
local prefix, now = ARGV[1], tonumber(ARGV[2])
local seen = prefix .. ':seen:' .. ARGV[3]
local before = prefix .. ':seen:' .. ARGV[4]
local folded, repeated, skipped = 0, 0, 0
for _, e in ipairs(cjson.decode(ARGV[8])) do
  if redis.call('SISMEMBER', seen, e[1]) == 1 or redis.call('SISMEMBER', before, e[1]) == 1 then
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
      redis.call('SADD', seen, e[1])
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
