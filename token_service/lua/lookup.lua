#!lua flags=no-writes
-- The gateway lookup for every token checked in one event-loop turn: one call, one
-- round trip. Reads only; KEYS are tokens:secret:<sha256> keys. Returns, per key, its
-- token_id, scopes and expires_at (false where absent).
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HMGET', key, 'token_id', 'scopes', 'expires_at')
end
return found
