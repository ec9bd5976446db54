-- Append lifecycle events to each token's audit trail, once per event id.
-- ARGV: 1 key prefix, 2 how long a bucket of seen event ids is kept (ms), then four
-- values per event: event id, its hour bucket, token id, the event's JSON.
local prefix, ttl = ARGV[1], ARGV[2]
local kept = 0
for i = 3, #ARGV, 4 do
  local seen = prefix .. ':seen:' .. ARGV[i + 1]
  local token = prefix .. ':token:' .. ARGV[i + 2]
  if redis.call('EXISTS', token) == 1 and redis.call('SADD', seen, ARGV[i]) == 1 then
    redis.call('PEXPIRE', seen, ttl)
    redis.call('RPUSH', token .. ':audit', ARGV[i + 3])
    kept = kept + 1
  end
end
return kept
