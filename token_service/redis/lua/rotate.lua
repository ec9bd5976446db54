-- RotateToken. KEYS: 2 token record, 3 its grace zset, 4 new secret, 5 events,
-- 6 the new secret's issued bucket.
-- ARGV: 5 token id, 6 now ms, 7 now (RFC 3339), 8 grace end ms, 9 new digest,
-- 10 new hint, 11 TokenRotated JSON, 12 secret key prefix, 13 issued field.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'rejected', 'not_found', 'no token has this id'}
end
local record = redis.call(
  'HMGET', KEYS[2], 'status', 'expires_ms', 'scopes', 'expires_at', 'secret', 'allowed_cidrs')
local status, expires_ms, scopes, current = record[1], record[2], record[3], record[5]
local now_ms, grace_end = tonumber(ARGV[6]), tonumber(ARGV[8])
if status ~= 'active' then
  return {'rejected', 'conflict', 'the token is ' .. status .. ' and cannot be rotated'}
end
if expires_ms and tonumber(expires_ms) <= now_ms then
  return {'rejected', 'conflict', 'the token has expired and cannot be rotated'}
end
-- An old secret never outlives its token, and the event says so.
local event = ARGV[11]
if expires_ms and tonumber(expires_ms) < grace_end then
  grace_end = tonumber(expires_ms)
  local decoded = cjson.decode(event)
  decoded['previous_valid_until'] = record[4]
  event = cjson.encode(decoded)
end
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[5], '*', 'data', event)

-- Secrets whose grace has run out are already gone from Redis; forget them.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
if current then
  if grace_end <= now_ms then
    redis.call('DEL', ARGV[12] .. current)
  else
    redis.call('PEXPIREAT', ARGV[12] .. current, grace_end)
    redis.call('ZADD', KEYS[3], grace_end, current)
  end
end
-- The grace zset goes when its last secret does.
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[3], last[2])
end

redis.call('HSET', KEYS[4], 'token_id', ARGV[5], 'scopes', scopes)
if record[6] then  -- the new secret keeps the token's allowlist
  redis.call('HSET', KEYS[4], 'allowed_cidrs', record[6])
end
if expires_ms then
  redis.call('HSET', KEYS[4], 'expires_at', expires_ms)
  redis.call('PEXPIREAT', KEYS[4], expires_ms)
end
redis.call('HSET', KEYS[6], ARGV[13], ARGV[5])
redis.call('HSET', KEYS[2], 'rotated_at', ARGV[7], 'hint', ARGV[10], 'secret', ARGV[9])

local fields = token_fields(KEYS[2], ARGV[5])
remember_token(fields)
return {'ok', fields}
