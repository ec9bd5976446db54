-- Mark tokens whose expiry has passed as expired, each exactly once, with TokenExpired.
-- Atomic, so several service processes sweeping at once never expire a token twice.
-- KEYS: 1 expiries zset, 2 events stream.
-- ARGV: 1 now ms, 2 now (RFC 3339), 3 key prefix, then one fresh event id per token
-- that may be expired in this call (their number is the batch limit).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, #ARGV - 3)
local expired = 0
for i, token_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], token_id)
  local token = ARGV[3] .. ':token:' .. token_id
  if redis.call('HGET', token, 'status') == 'active' then
    -- Redis drops the secrets by their own expiry; make sure of it.
    drop_secrets(ARGV[3] .. ':secret:', token)
    release_name(ARGV[3] .. ':names:', token, token_id)
    redis.call('HSET', token, 'status', 'expired')
    redis.call('XADD', KEYS[2], '*', 'data', cjson.encode({
      type = 'TokenExpired', schema_version = 1, event_id = ARGV[3 + i],
      occurred_at = ARGV[2], token_id = token_id, actor = 'token-service',
      command_id = cjson.null,
    }))
    expired = expired + 1
  end
end
return expired
