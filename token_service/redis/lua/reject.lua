-- A rejection: remember the outcome and write CommandRejected, together.
-- KEYS: 1 the command's outcome record, 2 events.
-- ARGV: 1 outcome JSON, 2 CommandRejected JSON, 3 how long to remember, in ms.
-- Not prefixed by the guard: a forbidden actor's rejection must be recorded too.
local prior = redis.call('GET', KEYS[1])
if prior then
  return {'duplicate', prior}
end
redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {'recorded'}
