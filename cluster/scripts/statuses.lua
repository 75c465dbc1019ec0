-- Status hashes of symbols of one bucket (one hash slot), read with the clock of the node that holds
-- them, which is the clock their heartbeats were stamped with (heartbeat.lua runs there too): on Redis
-- Cluster a heartbeat's age is then never a difference between two nodes' clocks.
-- KEYS: status hashes. ARGV: the fields to read. Answers {now ms, {values of KEYS[1]}, {values of KEYS[2]}, ...}.
local now = redis.call('TIME')
local out = {now[1] * 1000 + math.floor(now[2] / 1000)}
for i = 1, #KEYS do out[i + 1] = redis.call('HMGET', KEYS[i], unpack(ARGV)) end
return out
