-- Prelude of the functions that derive keys of the token layout (token_service.keys).
-- Names and issued secrets live in buckets: hashes named by the first 3 hex digits of the
-- name's SHA-1 or of the secret's sha256, so that each stays small enough for Redis to
-- store compactly. Keys.name and Keys.issued compute the same buckets in Python.
local function name_bucket(names_prefix, name)
  local field = string.lower(name)  -- ASCII only, as Keys.name lowers it
  return names_prefix .. string.sub(redis.sha1hex(field), 1, 3), field
end

-- Where a secret's sha256 is kept for good: the bucket of its first 3 hex digits, and
-- digits 4 to 32 (128 bits, as Keys.issued).
local function issued_entry(issued_prefix, digest)
  return issued_prefix .. string.sub(digest, 1, 3), string.sub(digest, 4, 32)
end

-- Forget that the token holds its name, if it still does (a newer token may hold it now).
local function release_name(names_prefix, token_key, token_id)
  local name = redis.call('HGET', token_key, 'name')
  if name then
    local bucket, field = name_bucket(names_prefix, name)
    if redis.call('HGET', bucket, field) == token_id then
      redis.call('HDEL', bucket, field)
    end
  end
end

-- Delete every live secret of a token: the current one and any in a grace period.
local function drop_secrets(secret_prefix, token_key)
  local current = redis.call('HGET', token_key, 'secret')
  if current then
    redis.call('DEL', secret_prefix .. current)
    redis.call('HDEL', token_key, 'secret')
  end
  local grace = token_key .. ':grace'
  for _, digest in ipairs(redis.call('ZRANGE', grace, 0, -1)) do
    redis.call('DEL', secret_prefix .. digest)
  end
  redis.call('DEL', grace)
end

-- The token record as the functions answer with it: with its id (the key's, not stored)
-- and without the current secret's digest (no outcome or reply holds one).
local function token_fields(token_key, token_id)
  local fields = {'id', token_id}
  local stored = redis.call('HGETALL', token_key)
  for i = 1, #stored, 2 do
    if stored[i] ~= 'secret' and stored[i] ~= 'id' then
      fields[#fields + 1] = stored[i]
      fields[#fields + 1] = stored[i + 1]
    end
  end
  return fields
end
