-- UpdateToken (version 2.x). KEYS: 2 token record, 3 its grace zset, 4 events.
-- ARGV: 5 token id, 6 now ms, 7 TokenUpdated JSON without `changes` (an object, so it
-- ends with '}'), 8 secret key prefix, 9 '1' when the description is given, 10 the
-- description ('' removes it), 11 '1' when the allowlist is given, 12 the allowlist,
-- space-separated CIDR blocks ('' removes it: any address).
-- The old values are read here, in the same step that changes them, so that the event
-- records exactly what it replaced. The secret hashes gateways read carry the allowlist
-- too: every live one is changed with the record, and a check right after sees it.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'rejected', 'not_found', 'no token has this id'}
end
local record = redis.call('HMGET', KEYS[2], 'status', 'expires_ms', 'description', 'allowed_cidrs')
local status, expires_ms = record[1], record[2]
if status ~= 'active' then
  return {'rejected', 'conflict', 'the token is ' .. status .. ' and cannot be updated'}
end
if expires_ms and tonumber(expires_ms) <= tonumber(ARGV[6]) then
  return {'rejected', 'conflict', 'the token has expired and cannot be updated'}
end

-- cjson would write an empty list as {}: the lists are written by hand.
local function json_text(value)
  if value and value ~= '' then
    return cjson.encode(value)
  end
  return 'null'
end
local function json_list(text)
  local items = {}
  for block in string.gmatch(text or '', '%S+') do
    items[#items + 1] = cjson.encode(block)
  end
  return '[' .. table.concat(items, ',') .. ']'
end
local changes = {}
if ARGV[9] == '1' then
  changes[#changes + 1] = '"description":{"old":' .. json_text(record[3])
    .. ',"new":' .. json_text(ARGV[10]) .. '}'
end
if ARGV[11] == '1' then
  changes[#changes + 1] = '"allowed_cidrs":{"old":' .. json_list(record[4])
    .. ',"new":' .. json_list(ARGV[12]) .. '}'
end
local event = string.sub(ARGV[7], 1, -2) .. ',"changes":{' .. table.concat(changes, ',') .. '}}'
-- The event goes first: should Redis refuse it, nothing has changed yet.
redis.call('XADD', KEYS[4], '*', 'data', event)

if ARGV[9] == '1' then
  if ARGV[10] == '' then
    redis.call('HDEL', KEYS[2], 'description')
  else
    redis.call('HSET', KEYS[2], 'description', ARGV[10])
  end
end
if ARGV[11] == '1' then
  local keys = {KEYS[2]}
  local current = redis.call('HGET', KEYS[2], 'secret')
  if current then
    keys[#keys + 1] = ARGV[8] .. current
  end
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    -- A secret whose grace ran out is gone: writing to it would bring back a key
    -- without an expiry.
    if redis.call('EXISTS', ARGV[8] .. digest) == 1 then
      keys[#keys + 1] = ARGV[8] .. digest
    end
  end
  for _, key in ipairs(keys) do
    if ARGV[12] == '' then
      redis.call('HDEL', key, 'allowed_cidrs')
    else
      redis.call('HSET', key, 'allowed_cidrs', ARGV[12])
    end
  end
end

local fields = token_fields(KEYS[2], ARGV[5])
remember_token(fields)
return {'ok', fields}
