-- The next fencing epoch, never at or below ARGV[1] (the highest epoch the caller has seen):
-- if Redis lost the counter (restart, failover) epochs still never go backwards for that caller.
local e = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if e <= floor then
  e = floor + 1
  redis.call('SET', KEYS[1], e)
end
return e
