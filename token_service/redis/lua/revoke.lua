-- RevokeToken. KEYS: 2 token record, 3 its grace zset, 4 expiries, 5 events.
-- ARGV: 5 token id, 6 now (RFC 3339), 7 TokenRevoked JSON, 8 secret key prefix,
-- 9 name bucket prefix, 10 now ms.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'rejected', 'not_found', 'no token has this id'}
end
local record = redis.call('HMGET', KEYS[2], 'status', 'expires_ms')
if record[1] == 'revoked' then
  return {'rejected', 'conflict', 'the token is already revoked'}
end
-- Expired is as final as revoked: nothing is left to stop (its secrets are gone).
if record[1] == 'expired' or (record[2] and tonumber(record[2]) <= tonumber(ARGV[10])) then
  return {'rejected', 'conflict', 'the token has expired'}
end
local token_id = ARGV[5]
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[5], '*', 'data', ARGV[7])

-- Every live secret goes at once: the current one and any still in a grace period.
drop_secrets(ARGV[8], KEYS[2])
release_name(ARGV[9], KEYS[2], token_id)
redis.call('ZREM', KEYS[4], token_id)
redis.call('HSET', KEYS[2], 'status', 'revoked', 'revoked_at', ARGV[6], 'revoked_by', ARGV[1])

local fields = token_fields(KEYS[2], token_id)
remember_token(fields)
return {'ok', fields}
