-- Prelude shared by every command function (prepended when the library is built).
-- KEYS[1] the command's outcome record (scoped per publisher and actor).
-- ARGV[1] actor, ARGV[2] '' when the actor is an admin by configuration, else the
-- admins set to look the actor up in, ARGV[3] how long to remember the outcome, in ms,
-- ARGV[4] a digest of the command's body (every field but reply_to).
-- The admins set is passed as an argument, not in KEYS: Redis checks a function's
-- declared keys for writing as well as reading, and this caller may only read that set.
-- Authorization comes first: a non-administrator learns nothing, not even whether an id
-- was used. A command seen before returns its first outcome and changes nothing (that is
-- what makes redelivery safe); the same id with another body is a conflict.
if ARGV[2] ~= '' and redis.call('SISMEMBER', ARGV[2], ARGV[1]) == 0 then
  return {'rejected', 'forbidden', 'only administrators may change tokens'}
end
local prior = redis.call('GET', KEYS[1])
if prior then
  local body = cjson.decode(prior)['body']  -- nil in records from before version 2
  if body and body ~= ARGV[4] then
    return {'rejected', 'conflict', 'this command_id was used for another command'}
  end
  return {'duplicate', prior}
end

local function remember_token(fields)
  local flat = {}
  for i = 1, #fields, 2 do
    flat[fields[i]] = fields[i + 1]
  end
  redis.call('SET', KEYS[1], cjson.encode({ok = true, token = flat, body = ARGV[4]}), 'PX', ARGV[3])
end
