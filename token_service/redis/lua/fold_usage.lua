-- Fold a batch of TokenUsed events and acknowledge their entries, in one call.
-- Keys are derived from the prefix, so this needs a single Redis (or one slot).
-- ARGV: 1 key prefix, 2 how long a bucket of seen event ids is kept (ms),
-- 3 the usage stream, 4 its group, 5 JSON list of events, each
-- [event id, hour bucket, token id, used_at ms, count, day (YYYY-MM-DD)], all strings,
-- 6 JSON list of the entry ids to acknowledge.
-- An event id seen before is skipped, so redeliveries and retried reports count once;
-- last use only moves forward, so late or reordered events never move it back.
local prefix, ttl = ARGV[1], ARGV[2]
local folded, buckets = 0, {}
for _, e in ipairs(cjson.decode(ARGV[5])) do
  local seen = prefix .. ':seen:' .. e[2]
  if redis.call('SISMEMBER', seen, e[1]) == 0 then
    local token = prefix .. ':token:' .. e[3]
    if redis.call('EXISTS', token) == 1 then
      local last = redis.call('HGET', token, 'last_used_ms')
      if not last or tonumber(last) < tonumber(e[4]) then
        redis.call('HSET', token, 'last_used_ms', e[4])
      end
      redis.call('HINCRBY', token .. ':daily', e[6], e[5])
    end
    -- Marked seen last: an error above leaves it unmarked, so a redelivery tries again.
    redis.call('SADD', seen, e[1])
    buckets[seen] = true
    folded = folded + 1
  end
end
for seen in pairs(buckets) do
  redis.call('PEXPIRE', seen, ttl)
end
local ids = cjson.decode(ARGV[6])
for i = 1, #ids, 1000 do
  redis.call('XACK', ARGV[3], ARGV[4], unpack(ids, i, math.min(i + 999, #ids)))
end
return folded
