-- Shard membership on the Redis clock (shards on different hosts may disagree about time).
-- KEYS[1] shards zset, KEYS[2] the shard's info hash (for 'beat').
-- ARGV[1] 'beat' | 'live', ARGV[2] ttl ms, ARGV[3] shard id, ARGV[4..] info field/value pairs.
-- beat: score the shard now, store its info (expiring); live: ids seen within ttl (old ones are pruned).
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[1] == 'beat' then
  redis.call('ZADD', KEYS[1], ms, ARGV[3])
  if #ARGV > 4 then
    redis.call('HSET', KEYS[2], unpack(ARGV, 4))
    redis.call('PEXPIRE', KEYS[2], ttl * 20)
  end
  return ms
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - ttl * 20)
return redis.call('ZRANGEBYSCORE', KEYS[1], ms - ttl, '+inf')
