-- GenerateToken. KEYS: 2 name, 3 token record, 4 token secrets zset, 5 secret,
-- 6 index, 7 expiries, 8 events, 9 the secret's digest record.
-- ARGV: 4 token id, 5 now ms, 6 expiry ms or '', 7 scopes, 8 secret digest,
-- 9 TokenCreated JSON, 10.. field/value pairs of the token record.
local holder = redis.call('GET', KEYS[2])
if holder then
  return {'rejected', 'conflict', 'the name is taken by active token ' .. holder}
end
local token_id, expires_ms = ARGV[4], ARGV[6]
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[8], '*', 'data', ARGV[9])

redis.call('HSET', KEYS[3], unpack(ARGV, 10))
redis.call('HSET', KEYS[5], 'token_id', token_id, 'scopes', ARGV[7])
redis.call('SET', KEYS[2], token_id)
redis.call('SET', KEYS[9], token_id)
redis.call('ZADD', KEYS[4], '+inf', ARGV[8])
redis.call('ZADD', KEYS[6], ARGV[5], token_id)
if expires_ms ~= '' then
  redis.call('HSET', KEYS[5], 'expires_at', expires_ms)
  redis.call('PEXPIREAT', KEYS[5], expires_ms)
  redis.call('PEXPIREAT', KEYS[2], expires_ms)
  redis.call('ZADD', KEYS[7], expires_ms, token_id)
end

local fields = redis.call('HGETALL', KEYS[3])
remember_token(fields)
return {'ok', fields}
