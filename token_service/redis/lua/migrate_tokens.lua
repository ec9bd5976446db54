-- Move the newest tokens still in layout 1 to layout 2 (token_service.redis.migration).
-- KEYS: 1 layout 1's index zset (ids by creation ms), 2 layout 2's ids list.
-- ARGV: 1 key prefix, 2 how many tokens at most, 3 now ms.
-- Per token: the +inf member of {p}:token:<id>:secrets becomes the record's `secret`,
-- members still in a grace period go to {p}:token:<id>:grace, and {p}:name:<name>, if it
-- names this token, goes to its name bucket. Each id leaves the index as it goes to the
-- head of the list, newest of the batch last: ids created since (already in the list)
-- stay after it, so the list keeps creation order however often this runs, or where.
-- Returns how many tokens were moved (0: nothing is left).
local prefix, now = ARGV[1], ARGV[3]
local ids = redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[2]), -1)
for i = #ids, 1, -1 do
  local token_id = ids[i]
  local token = prefix .. ':token:' .. token_id
  local secrets = token .. ':secrets'
  local current = redis.call('ZRANGEBYSCORE', secrets, '+inf', '+inf')[1]
  if current then
    redis.call('HSET', token, 'secret', current)
  end
  local grace = redis.call('ZRANGEBYSCORE', secrets, '(' .. now, '(+inf', 'WITHSCORES')
  for j = 1, #grace, 2 do
    redis.call('ZADD', token .. ':grace', grace[j + 1], grace[j])
  end
  if #grace > 0 then
    redis.call('PEXPIREAT', token .. ':grace', grace[#grace])
  end
  redis.call('DEL', secrets)
  local name = redis.call('HGET', token, 'name')
  if name then
    local old = prefix .. ':name:' .. string.lower(name)
    if redis.call('GET', old) == token_id then
      local bucket, field = name_bucket(prefix .. ':names:', name)
      redis.call('HSET', bucket, field, token_id)
      redis.call('DEL', old)
    end
  end
  redis.call('LPUSH', KEYS[2], token_id)
  redis.call('ZREM', KEYS[1], token_id)
end
return #ids
