-- Append lifecycle events to each token's audit trail, once per event id.
-- ARGV: 1 key prefix, 2 this dedupe window's number, 3 the previous window's number,
-- 4 how long this window's seen set is kept (ms), 5 how many refusals a token keeps,
-- then four values per event: event id, token id, 'refusal' or 'change', the event's JSON.
-- Keys: {p}:token:<id> (must exist), {p}:token:<id>:audit (every change, kept),
-- {p}:token:<id>:refusals (the newest CommandRejected naming it, capped: whoever may write
-- commands may be refused without end, and that must not grow the trail without bound),
-- {p}:seen:<window> (event ids folded in that window of arrival: an id in this window's
-- set or the previous one's is a repeat).
local prefix = ARGV[1]
local seen = prefix .. ':seen:' .. ARGV[2]
local before = prefix .. ':seen:' .. ARGV[3]
local kept = 0
local cap = tonumber(ARGV[5])
for i = 6, #ARGV, 4 do
  local token = prefix .. ':token:' .. ARGV[i + 1]
  if redis.call('EXISTS', token) == 1
    and redis.call('SISMEMBER', before, ARGV[i]) == 0
    and redis.call('SADD', seen, ARGV[i]) == 1 then
    if ARGV[i + 2] == 'refusal' then
      redis.call('RPUSH', token .. ':refusals', ARGV[i + 3])
      redis.call('LTRIM', token .. ':refusals', -cap, -1)
    else
      redis.call('RPUSH', token .. ':audit', ARGV[i + 3])
    end
    kept = kept + 1
  end
end
if kept > 0 then
  redis.call('PEXPIRE', seen, ARGV[4])
end
return kept
