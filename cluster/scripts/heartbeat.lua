-- Fenced heartbeat: stamp the Redis clock (ms) into each status hash the publisher still owns.
-- KEYS: status hashes (one bucket per call on Redis Cluster). ARGV[1] epoch of the publisher.
-- Answers one number per key: 1 stamped, 0 fenced (a newer epoch owns it), -1 lost (no state,
-- or an older epoch: our own state is gone).
local ep = tonumber(ARGV[1])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local out = {}
for i = 1, #KEYS do
  local cur = tonumber(redis.call('HGET', KEYS[i], 'ep')) or 0
  if cur == ep then
    redis.call('HSET', KEYS[i], 'hb', ms)
    out[i] = 1
  elseif cur > ep then
    out[i] = 0
  else
    out[i] = -1
  end
end
return out
