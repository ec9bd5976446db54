-- Fold a batch of TokenUsed events. Keys are derived from the prefix, so this needs a
-- single Redis (or one slot). ARGV: 1 key prefix, 2 how long a bucket of seen event ids
-- is kept (ms), then six values per event: event id, its hour bucket, token id,
-- used_at ms, count, day (YYYY-MM-DD).
-- An event id seen before is skipped, so redeliveries and retried reports count once;
-- last use only moves forward, so late or reordered events never move it back.
local prefix, ttl = ARGV[1], ARGV[2]
local folded = 0
for i = 3, #ARGV, 6 do
  local seen = prefix .. ':seen:' .. ARGV[i + 1]
  if redis.call('SISMEMBER', seen, ARGV[i]) == 0 then
    local token = prefix .. ':token:' .. ARGV[i + 2]
    if redis.call('EXISTS', token) == 1 then
      local last = redis.call('HGET', token, 'last_used_ms')
      if not last or tonumber(last) < tonumber(ARGV[i + 3]) then
        redis.call('HSET', token, 'last_used_ms', ARGV[i + 3])
      end
      redis.call('HINCRBY', token .. ':daily', ARGV[i + 5], ARGV[i + 4])
    end
    -- Marked seen last: an error above leaves it unmarked, so a redelivery tries again.
    redis.call('SADD', seen, ARGV[i])
    redis.call('PEXPIRE', seen, ttl)
    folded = folded + 1
  end
end
return folded
