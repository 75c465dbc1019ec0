-- Fenced publish of stream entries for one or more symbols (all of one bucket: one hash slot).
-- KEYS: log, snap, status of each symbol, in groups of three.
-- ARGV[1] epoch of the publisher, ARGV[2] owner id, ARGV[3] slot, ARGV[4] MAXLEN cap,
-- ARGV[5] JSON: one list of entries per symbol, each [t, sq, vs, tu, b, a, st, why] (vs and tu as
-- strings: Lua numbers print only 14 significant digits).
-- Per symbol, all or nothing (every check runs before any write):
--   epoch below the stored one          -> "FENCED:<stored ep>"     (a zombie: nothing written)
--   epoch above the stored one, sq ~= 1 -> "LOST:<stored ep>:<sq>"  (our state is gone: Redis lost it)
--   sq not contiguous                   -> "BADSEQ:<stored ep>:<sq>"
--   otherwise XADD each entry and answer the last stream id. An S entry sets the snapshot key to
--   its own id in this same script (atomic with the entry) and trims the stream up to the previous
--   snapshot; an X REMOVED entry shrinks the stream to itself, drops the snapshot key and resets the
--   fencing state (epoch 0): the code may come back later in another slot, under any owner's epoch.
local ep = tonumber(ARGV[1])
local owner, slot, cap = ARGV[2], ARGV[3], ARGV[4]
local batches = cjson.decode(ARGV[5])
local now = redis.call('TIME')
local tp = now[1] .. string.format('%06d', tonumber(now[2]))
local out = {}
for s = 1, #batches do
  local log, snap, status = KEYS[3 * s - 2], KEYS[3 * s - 1], KEYS[3 * s]
  local entries = batches[s]
  local cur = redis.call('HMGET', status, 'ep', 'sq')
  local cur_ep = tonumber(cur[1]) or 0
  local cur_sq = tonumber(cur[2]) or 0
  local sq = cur_sq
  local verdict = nil
  if ep < cur_ep then
    verdict = 'FENCED:' .. cur_ep
  elseif ep > cur_ep then
    if entries[1][2] ~= 1 then verdict = 'LOST:' .. cur_ep .. ':' .. cur_sq end
    sq = 0
  end
  if verdict == nil then
    for i = 1, #entries do
      if entries[i][2] ~= sq + i then verdict = 'BADSEQ:' .. cur_ep .. ':' .. cur_sq; break end
    end
  end
  if verdict == nil then
    local id, st, why, vs = nil, 'LIVE', '', 0
    for i = 1, #entries do
      local e = entries[i]
      local t = e[1]
      vs = e[3]
      local fields = {'t', t, 'ep', ep, 'sq', e[2], 'vs', vs, 'tu', e[4], 'tp', tp}
      if e[5] ~= '' then fields[#fields + 1] = 'b'; fields[#fields + 1] = e[5] end
      if e[6] ~= '' then fields[#fields + 1] = 'a'; fields[#fields + 1] = e[6] end
      if t == 'X' then
        st, why = e[7], e[8]
        fields[#fields + 1] = 'st'; fields[#fields + 1] = st
        fields[#fields + 1] = 'why'; fields[#fields + 1] = why
      else
        st, why = 'LIVE', ''
      end
      id = redis.call('XADD', log, 'MAXLEN', '~', cap, '*', unpack(fields))
      if t == 'S' then
        local previous = redis.call('GET', snap)
        redis.call('SET', snap, id)
        if previous then redis.call('XTRIM', log, 'MINID', '~', previous) end
      elseif st == 'REMOVED' then
        redis.call('XTRIM', log, 'MAXLEN', 1)
        redis.call('DEL', snap)
      end
    end
    local final_ep, final_sq = ep, sq + #entries
    if st == 'REMOVED' then final_ep, final_sq = 0, 0 end
    redis.call('HSET', status, 'ep', final_ep, 'sq', final_sq, 'id', id, 'st', st, 'why', why, 'owner', owner,
               'slot', slot, 'vs', vs, 'tp', tp)
    verdict = id
  end
  out[s] = verdict
end
return out
