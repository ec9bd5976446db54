-- GenerateToken. KEYS: 2 name, 3 token record, 4 token secrets zset, 5 secret,
-- 6 index, 7 expiries, 8 events, 9 the secret's digest record.
-- ARGV: 5 token id, 6 now ms, 7 expiry ms or '', 8 scopes, 9 secret digest,
-- 10 TokenCreated JSON, 11 the allowlist, space-separated ('' for none: any address),
-- 12.. field/value pairs of the token record.
local holder = redis.call('GET', KEYS[2])
if holder then
  return {'rejected', 'conflict', 'the name is taken by active token ' .. holder}
end
local token_id, expires_ms = ARGV[5], ARGV[7]
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[8], '*', 'data', ARGV[10])

redis.call('HSET', KEYS[3], unpack(ARGV, 12))
redis.call('HSET', KEYS[5], 'token_id', token_id, 'scopes', ARGV[8])
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[5], 'allowed_cidrs', ARGV[11])
end
redis.call('SET', KEYS[2], token_id)
redis.call('SET', KEYS[9], token_id)
redis.call('ZADD', KEYS[4], '+inf', ARGV[9])
redis.call('ZADD', KEYS[6], ARGV[6], token_id)
if expires_ms ~= '' then
  redis.call('HSET', KEYS[5], 'expires_at', expires_ms)
  redis.call('PEXPIREAT', KEYS[5], expires_ms)
  redis.call('PEXPIREAT', KEYS[2], expires_ms)
  redis.call('ZADD', KEYS[7], expires_ms, token_id)
end

local fields = redis.call('HGETALL', KEYS[3])
remember_token(fields)
return {'ok', fields}
