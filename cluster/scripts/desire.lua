-- The cluster's desired set and its code -> slot assignment, changed atomically.
-- KEYS: desired (set), assign (hash code -> slot), slots (hash slot -> count), version (counter).
-- ARGV[1] op:
--   'add' codes...     add to the desired set (anyone: consumers, the CLI, shards seeding);
--                      answers the codes that were new
--   'remove' codes...  drop from the desired set and from the assignment; answers the codes removed
--   'assign' slot_size max_slots   (shards) give every desired code without a slot the lowest slot
--                      with room; a code keeps its slot while it stays desired, so adding symbols never
--                      moves others. Answers the codes left without a slot (max_slots reached).
-- The version is bumped whenever anything changed (shards watch it).
local op = ARGV[1]
local out, changed = {}, false
if op == 'add' then
  for i = 2, #ARGV do
    if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then out[#out + 1] = ARGV[i]; changed = true end
  end
elseif op == 'remove' then
  for i = 2, #ARGV do
    local code = ARGV[i]
    if redis.call('SREM', KEYS[1], code) == 1 then out[#out + 1] = code; changed = true end
    local slot = redis.call('HGET', KEYS[2], code)
    if slot then
      redis.call('HDEL', KEYS[2], code)
      if redis.call('HINCRBY', KEYS[3], slot, -1) <= 0 then redis.call('HDEL', KEYS[3], slot) end
      changed = true
    end
  end
else
  local size, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
  local counts = {}
  local flat = redis.call('HGETALL', KEYS[3])
  for i = 1, #flat, 2 do counts[tonumber(flat[i])] = tonumber(flat[i + 1]) end
  for _, code in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if not redis.call('HGET', KEYS[2], code) then
      local k = 0
      while (counts[k] or 0) >= size and (cap == 0 or k < cap) do k = k + 1 end
      if cap ~= 0 and k >= cap then
        out[#out + 1] = code
      else
        counts[k] = (counts[k] or 0) + 1
        redis.call('HSET', KEYS[3], k, counts[k])
        redis.call('HSET', KEYS[2], code, k)
        changed = true
      end
    end
  end
end
if changed then redis.call('INCR', KEYS[4]) end
return out
