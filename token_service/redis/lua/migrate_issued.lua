-- Move layout 1's issued-secret keys ({p}:digest:<sha256>, strings) to their buckets.
-- ARGV: 1 key prefix, then the sha256 of each key to move (as SCAN found them).
-- A key already moved (by another process) is gone: skipped. Returns how many moved.
local prefix = ARGV[1]
local moved = 0
for i = 2, #ARGV do
  local digest = ARGV[i]
  local old = prefix .. ':digest:' .. digest
  local token_id = redis.call('GET', old)
  if token_id then
    local bucket, field = issued_entry(prefix .. ':issued:', digest)
    redis.call('HSET', bucket, field, token_id)
    redis.call('DEL', old)
    moved = moved + 1
  end
end
return moved
