-- A consumer's consistent starting point for one symbol, read atomically:
-- {status hash as a flat list, snapshot id or false, entries from the snapshot entry on (or from the
-- start of the stream when there is no snapshot), Redis time in ms}.
-- KEYS: log, snap, status. ARGV[1] most entries to return.
local status = redis.call('HGETALL', KEYS[3])
local snap = redis.call('GET', KEYS[2])
local entries = redis.call('XRANGE', KEYS[1], snap or '-', '+', 'COUNT', ARGV[1])
local now = redis.call('TIME')
return {status, snap, entries, now[1] * 1000 + math.floor(now[2] / 1000)}
