-- GenerateToken. KEYS: 3 name, 4 token record, 5 token secrets zset, 6 secret,
-- 7 index, 8 expiries, 9 events, 10 the secret's digest record.
-- ARGV: 4 token id, 5 now ms, 6 expiry ms or '', 7 scopes, 8 secret digest,
-- 9 TokenCreated JSON, 10.. field/value pairs of the token record.
local holder = redis.call('GET', KEYS[3])
if holder then
  return {'rejected', 'conflict', 'the name is taken by active token ' .. holder}
end
local token_id, expires_ms = ARGV[4], ARGV[6]
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[9], '*', 'data', ARGV[9])

redis.call('HSET', KEYS[4], unpack(ARGV, 10))
redis.call('HSET', KEYS[6], 'token_id', token_id, 'scopes', ARGV[7])
redis.call('SET', KEYS[3], token_id)
redis.call('SET', KEYS[10], token_id)
redis.call('ZADD', KEYS[5], '+inf', ARGV[8])
redis.call('ZADD', KEYS[7], ARGV[5], token_id)
if expires_ms ~= '' then
  redis.call('HSET', KEYS[6], 'expires_at', expires_ms)
  redis.call('PEXPIREAT', KEYS[6], expires_ms)
  redis.call('PEXPIREAT', KEYS[3], expires_ms)
  redis.call('ZADD', KEYS[8], expires_ms, token_id)
end

local fields = redis.call('HGETALL', KEYS[4])
remember_token(fields)
return {'ok', fields}
