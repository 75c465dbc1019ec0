-- Renew leases: KEYS lease keys, ARGV[1] owner id, ARGV[2] ttl ms. One answer per key:
-- 1 renewed, 0 refused (expired or someone else's: the caller must stop that slot at once).
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
