-- A rejection: remember the outcome and write CommandRejected, together.
-- KEYS: 1 the command's outcome record, 2 events.
-- ARGV: 1 outcome JSON (with the body digest), 2 CommandRejected JSON, 3 how long to
-- remember, in ms, 4 the body digest.
-- Not prefixed by the guard; forbidden commands are never remembered (the service
-- answers and audits them without this), so an outcome here is an administrator's.
local prior = redis.call('GET', KEYS[1])
if prior then
  local body = cjson.decode(prior)['body']  -- nil in records from before version 2
  if body and body ~= ARGV[4] then
    return {'rejected', 'conflict', 'this command_id was used for another command'}
  end
  return {'duplicate', prior}
end
redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {'recorded'}
