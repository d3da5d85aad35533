/**
 * The Lua scripts of the Redis limiter. Each runs atomically in Redis, so one admission checks and
 * charges every rule and quota of a request in one round trip, all or nothing, exactly, whatever
 * the number of gateway nodes.
 *
 * Keys (P = key prefix; a limit key is e.g. `c:alice|m:gpt-4o`):
 *   P lim:nodes                      ZSET  node id → lease expiry (Redis ms); a node renews it on
 *                                          every admission with a concurrency limit and every tick
 *   P lim:r:<key>                    HASH  rate windows: field a<epoch> = requests, b<epoch> = tokens
 *                                          in that one-second bucket; PEXPIRE ≈ one window
 *   P lim:c:<key>                    HASH  concurrency: field <node id> = places that node holds;
 *                                          fields of nodes whose lease expired are ignored and deleted
 *   P lim:q:<cd|cm|rd|rm>:<key>      HASH  quota windows: field a<epoch> = tokens, b<epoch> = cost
 *                                          (micros) in that hour / day / month bucket
 * Epochs and windows are those of windows.ts (mirrored below in Lua: the same bucket numbers, the
 * same calendar months). Time is the Redis server's (TIME), so node clocks do not matter; a test
 * may pass its own time instead (ARGV[1], empty = TIME).
 *
 * The scripts touch only keys passed in KEYS. On Redis Cluster every key of one call must hash to
 * one slot: give the prefix a hash tag (`sluice:{lim}:`).
 */

const PRELUDE = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_ms(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Calendar month of a time: months since January 1970, plus 1 (civil-from-days, proleptic Gregorian).
local function month_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return (y - 1970) * 12 + m
end
-- First ms of a calendar month epoch (days-from-civil).
local function month_start(e)
  local months = e - 1
  local y = 1970 + math.floor(months / 12)
  local m = months % 12 + 1
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + math.floor((153 * mp + 2) / 5)
  return (era * 146097 + doe - 719468) * 86400000
end
local BUCKET_MS = { r = 1000, cd = 86400000, rd = 3600000, rm = 86400000 }
local BUCKETS = { r = 60, cd = 1, cm = 1, rd = 24, rm = 30 }
local function epoch_of(kind, ms)
  if kind == 'cm' then return month_of(ms) end
  return math.floor(ms / BUCKET_MS[kind]) + 1
end
local function start_of(kind, e)
  if kind == 'cm' then return month_start(e) end
  return (e - 1) * BUCKET_MS[kind]
end
-- Usage of both metrics of a window hash at epoch e; deletes buckets that have left the window.
local function window_usage(key, e, k)
  local flat = redis.call('HGETALL', key)
  local ua, ub, gone = 0, 0, {}
  for i = 1, #flat, 2 do
    local field = flat[i]
    local ep = tonumber(string.sub(field, 2))
    if ep ~= nil then
      if ep <= e - k then
        gone[#gone + 1] = field
      elseif string.sub(field, 1, 1) == 'a' then
        ua = ua + tonumber(flat[i + 1])
      else
        ub = ub + tonumber(flat[i + 1])
      end
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  return ua, ub, flat
end
-- The epoch whose bucket, leaving the window, frees at least need of metric m; -1 if none does.
local function freeing_epoch(flat, m, e, k, need)
  local list = {}
  for i = 1, #flat, 2 do
    local ep = tonumber(string.sub(flat[i], 2))
    if ep ~= nil and ep > e - k and string.sub(flat[i], 1, 1) == m then list[#list + 1] = { ep, tonumber(flat[i + 1]) } end
  end
  table.sort(list, function(x, y) return x[1] < y[1] end)
  local freed = 0
  for _, bucket in ipairs(list) do
    freed = freed + bucket[2]
    if freed >= need then return bucket[1] end
  end
  return -1
end
-- Places held under a concurrency hash by live nodes; deletes the fields of dead ones.
local function concurrency_used(key, registry, node, now)
  local flat = redis.call('HGETALL', key)
  local sum, gone = 0, {}
  for i = 1, #flat, 2 do
    local held = tonumber(flat[i + 1]) or 0
    if flat[i] == node then
      sum = sum + held
    else
      local expiry = redis.call('ZSCORE', registry, flat[i])
      if expiry and tonumber(expiry) > now then sum = sum + held else gone[#gone + 1] = flat[i] end
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  return sum
end
`;

/**
 * KEYS[1] node registry, KEYS[2..] the keys items name.
 * ARGV[1] time override, ARGV[2] node id, ARGV[3] lease TTL ms, ARGV[4] reserved tokens,
 * ARGV[5] reserved cost, ARGV[6..] items of 4: kind, key index, limit a, limit b (-1 = none):
 *   'r' rate window (a = requests, b = tokens); 'c' concurrency (a = places);
 *   'cd' | 'cm' | 'rd' | 'rm' quota window (a = tokens, b = cost).
 * A cost of 0 still needs one unit left (a request reserving no tokens is refused once they are
 * used up). Returns {1, now, per item: epoch, used a, used b (usage before this charge)} or
 * {0, now, item (1-based), metric 'a' | 'b' | 'c', used, epoch, freeing epoch or -1}.
 */
export const ADMIT_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local node, ttl = ARGV[2], tonumber(ARGV[3])
local tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = (#ARGV - 5) / 4
local out = { 1, now }
for i = 1, n do
  local base = 6 + (i - 1) * 4
  local kind, key = ARGV[base], KEYS[tonumber(ARGV[base + 1])]
  local la, lb = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  if kind == 'c' then
    local used = concurrency_used(key, KEYS[1], node, now)
    if used + 1 > la then return { 0, now, i, 'c', used, 0, -1 } end
    out[#out + 1] = 0
    out[#out + 1] = used
    out[#out + 1] = 0
  else
    local e, k = epoch_of(kind, now), BUCKETS[kind]
    local ua, ub, flat = window_usage(key, e, k)
    local ca, cb = cost, cost
    if kind == 'r' then ca, cb = 1, tokens else ca = tokens end
    if la >= 0 and ua + math.max(ca, 1) > la then
      return { 0, now, i, 'a', ua, e, freeing_epoch(flat, 'a', e, k, ua + math.max(ca, 1) - la) }
    end
    if lb >= 0 and ub + math.max(cb, 1) > lb then
      return { 0, now, i, 'b', ub, e, freeing_epoch(flat, 'b', e, k, ub + math.max(cb, 1) - lb) }
    end
    out[#out + 1] = e
    out[#out + 1] = ua
    out[#out + 1] = ub
  end
end
local registered = false
for i = 1, n do
  local base = 6 + (i - 1) * 4
  local kind, key = ARGV[base], KEYS[tonumber(ARGV[base + 1])]
  local la, lb = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  if kind == 'c' then
    if not registered then
      redis.call('ZADD', KEYS[1], now + ttl, node)
      redis.call('PEXPIRE', KEYS[1], ttl * 3)
      registered = true
    end
    redis.call('HINCRBY', key, node, 1)
    redis.call('PEXPIRE', key, ttl * 3)
  else
    local e = out[3 + (i - 1) * 3]
    local ca, cb = cost, cost
    if kind == 'r' then ca, cb = 1, tokens else ca = tokens end
    local charged = false
    if la >= 0 and ca > 0 then
      redis.call('HINCRBY', key, 'a' .. e, ca)
      charged = true
    end
    if lb >= 0 and cb > 0 then
      redis.call('HINCRBY', key, 'b' .. e, cb)
      charged = true
    end
    if charged then redis.call('PEXPIRE', key, start_of(kind, e + BUCKETS[kind]) - now + 1000) end
  end
end
return out
`;

/**
 * KEYS the keys items name. ARGV[1] time override, ARGV[2] node id, ARGV[3..] items of 5:
 *   window kinds: kind, key index, epoch charged, delta a, delta b. A negative delta goes back to
 *   the bucket charged if that bucket still exists; a positive one is charged to the current bucket.
 *   'c': kind, key index, -, -, -: one concurrency place released.
 * Many tickets' settlements travel in one call. Returns the number of items.
 */
export const SETTLE_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local node = ARGV[2]
local items = 0
for base = 3, #ARGV, 5 do
  items = items + 1
  local kind, key = ARGV[base], KEYS[tonumber(ARGV[base + 1])]
  if kind == 'c' then
    if redis.call('HINCRBY', key, node, -1) <= 0 then redis.call('HDEL', key, node) end
  else
    local charged = ARGV[base + 2]
    local deltas = { a = tonumber(ARGV[base + 3]), b = tonumber(ARGV[base + 4]) }
    for m, delta in pairs(deltas) do
      if delta < 0 then
        if redis.call('HEXISTS', key, m .. charged) == 1 then redis.call('HINCRBY', key, m .. charged, delta) end
      elseif delta > 0 then
        local e = epoch_of(kind, now)
        redis.call('HINCRBY', key, m .. e, delta)
        redis.call('PEXPIRE', key, start_of(kind, e + BUCKETS[kind]) - now + 1000)
      end
    end
  end
end
return items
`;

/**
 * The node's lease, renewed every lease TTL / 3, and its concurrency places re-stated as absolute
 * counts (which repairs any increment or release lost to a timeout).
 * KEYS[1] node registry, KEYS[2..] concurrency hashes. ARGV[1] time override, ARGV[2] node id,
 * ARGV[3] lease TTL ms, ARGV[4..] places this node holds under KEYS[2..]. Returns Redis time.
 */
export const TICK_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local node, ttl = ARGV[2], tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, node)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
for i = 2, #KEYS do
  local held = tonumber(ARGV[i + 2])
  if held > 0 then
    redis.call('HSET', KEYS[i], node, held)
    redis.call('PEXPIRE', KEYS[i], ttl * 3)
  else
    redis.call('HDEL', KEYS[i], node)
  end
end
return now
`;

/**
 * Usage of one window hash (and a concurrency hash, optional).
 * KEYS[1] window hash, KEYS[2] concurrency hash or '', KEYS[3] node registry.
 * ARGV[1] time override, ARGV[2] kind, ARGV[3] node id.
 * Returns {now, epoch, used a, used b, oldest epoch holding usage or -1, concurrency places}.
 */
export const USAGE_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local kind = ARGV[2]
local e, k = epoch_of(kind, now), BUCKETS[kind]
local ua, ub, flat = window_usage(KEYS[1], e, k)
local oldest = -1
for i = 1, #flat, 2 do
  local ep = tonumber(string.sub(flat[i], 2))
  if ep ~= nil and ep > e - k and tonumber(flat[i + 1]) ~= 0 and (oldest < 0 or ep < oldest) then oldest = ep end
end
local places = 0
if KEYS[2] ~= '' then places = concurrency_used(KEYS[2], KEYS[3], ARGV[3], now) end
return { now, e, ua, ub, oldest, places }
`;

/**
 * A top-up: the current bucket's usage goes down by the amounts (credit when below zero).
 * KEYS[1] quota hash. ARGV[1] time override, ARGV[2] kind, ARGV[3] tokens, ARGV[4] cost.
 */
export const TOP_UP_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local kind = ARGV[2]
local e = epoch_of(kind, now)
local tokens, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
if tokens > 0 then redis.call('HINCRBY', KEYS[1], 'a' .. e, -tokens) end
if cost > 0 then redis.call('HINCRBY', KEYS[1], 'b' .. e, -cost) end
redis.call('PEXPIRE', KEYS[1], start_of(kind, e + BUCKETS[kind]) - now + 1000)
return e
`;

/** Calendar-month math alone, for a test that compares it with windows.ts. ARGV[1] ms → {month, start}. */
export const MONTH_CHECK_LUA = `${PRELUDE}
local e = month_of(tonumber(ARGV[1]))
return { e, month_start(e) }
`;
