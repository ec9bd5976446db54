-- GenerateToken. KEYS: 2 name bucket, 3 token record, 4 secret, 5 ids, 6 expiries,
-- 7 events, 8 issued bucket.
-- ARGV: 5 token id, 6 now ms, 7 expiry ms or '', 8 scopes, 9 secret digest,
-- 10 TokenCreated JSON, 11 name field (lowercase), 12 issued field, 13 the allowlist,
-- space-separated ('' for none: any address), 14.. field/value pairs of the token record.
local holder = redis.call('HGET', KEYS[2], ARGV[11])
if holder then
  -- A holder past its expiry holds the name no longer, swept or not yet.
  local holder_key = string.sub(KEYS[3], 1, #KEYS[3] - #ARGV[5]) .. holder
  local state = redis.call('HMGET', holder_key, 'status', 'expires_ms')
  if state[1] == 'active' and not (state[2] and tonumber(state[2]) <= tonumber(ARGV[6])) then
    return {'rejected', 'conflict', 'the name is taken by active token ' .. holder}
  end
end
local token_id, expires_ms = ARGV[5], ARGV[7]
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[7], '*', 'data', ARGV[10])

redis.call('HSET', KEYS[3], 'secret', ARGV[9], unpack(ARGV, 14))
redis.call('HSET', KEYS[4], 'token_id', token_id, 'scopes', ARGV[8])
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[4], 'allowed_cidrs', ARGV[13])
end
redis.call('HSET', KEYS[2], ARGV[11], token_id)
redis.call('HSET', KEYS[8], ARGV[12], token_id)
redis.call('RPUSH', KEYS[5], token_id)
if expires_ms ~= '' then
  redis.call('HSET', KEYS[4], 'expires_at', expires_ms)
  redis.call('PEXPIREAT', KEYS[4], expires_ms)
  redis.call('ZADD', KEYS[6], expires_ms, token_id)
end

local fields = token_fields(KEYS[3], token_id)
remember_token(fields)
return {'ok', fields}
