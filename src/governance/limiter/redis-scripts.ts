/**
 * The Lua scripts of the Redis limiter. Each runs atomically in Redis, so one admission checks and
 * charges every rule and quota of a request in one round trip, all or nothing, exactly, whatever
 * the number of gateway nodes.
 *
 * Keys (P = key prefix; a limit key is e.g. `c:alice|m:gpt-4o`):
 *   P lim:nodes                      ZSET  node id → lease expiry (Redis ms); a node renews it on
 *                                          every admission with a concurrency limit and every tick
 *   P lim:r:<key>                    HASH  rate windows: field a<epoch> = requests, b<epoch> = tokens
 *                                          in that one-second bucket, sa/sb their sums, lo/hi the
 *                                          oldest and newest epochs held; PEXPIRE ≈ one window
 *   P lim:c:<key>                    HASH  concurrency: field <node id> = places that node holds;
 *                                          fields of nodes whose lease expired are ignored and deleted
 *   P lim:q:<cd|cm|rd|rm>:<key>      HASH  quota windows: field a<epoch> = tokens, b<epoch> = cost
 *                                          (micros) in that hour / day / month bucket; sa, sb, lo, hi
 *                                          as for rate windows
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
-- A window hash holds bucket fields a<epoch>, b<epoch>, their running sums sa, sb, the lowest epoch
-- whose buckets may still be there (lo) and the newest epoch charged (hi). Buckets leave by being
-- subtracted from the sums and deleted, lo..e-k at a time, so a read costs O(buckets that left
-- since the last read), not O(buckets in the window), and a charge is one HMGET and one HSET.
--
-- window_read returns the window at epoch e as a table: sa, sb (usage), ba, bb (bucket e's counts),
-- lo, hi (nil for an empty window).
local function window_read(key, e, k)
  local v = redis.call('HMGET', key, 'sa', 'sb', 'lo', 'hi', 'a' .. e, 'b' .. e)
  local w = { sa = tonumber(v[1]) or 0, sb = tonumber(v[2]) or 0, lo = tonumber(v[3]), hi = tonumber(v[4]),
              ba = tonumber(v[5]) or 0, bb = tonumber(v[6]) or 0 }
  if w.lo == nil or w.hi == nil then return { sa = 0, sb = 0, ba = 0, bb = 0 } end
  local edge = e - k
  if w.hi <= edge then
    redis.call('DEL', key)
    return { sa = 0, sb = 0, ba = 0, bb = 0 }
  end
  if w.lo > edge then return w end
  if edge - w.lo >= 4 * k then
    -- Cannot happen while every write goes through these functions; rebuild rather than loop long.
    local flat = redis.call('HGETALL', key)
    w.sa, w.sb = 0, 0
    for i = 1, #flat, 2 do
      local m, ep = string.sub(flat[i], 1, 1), tonumber(string.sub(flat[i], 2))
      if ep ~= nil and (m == 'a' or m == 'b') then
        if ep <= edge then
          redis.call('HDEL', key, flat[i])
        elseif m == 'a' then
          w.sa = w.sa + tonumber(flat[i + 1])
        else
          w.sb = w.sb + tonumber(flat[i + 1])
        end
      end
    end
  else
    local fields = {}
    for ep = w.lo, edge do
      fields[#fields + 1] = 'a' .. ep
      fields[#fields + 1] = 'b' .. ep
    end
    local gone = redis.call('HMGET', key, unpack(fields))
    for i = 1, #fields, 2 do
      w.sa = w.sa - (tonumber(gone[i]) or 0)
      w.sb = w.sb - (tonumber(gone[i + 1]) or 0)
    end
    redis.call('HDEL', key, unpack(fields))
  end
  w.lo = edge + 1
  redis.call('HSET', key, 'sa', w.sa, 'sb', w.sb, 'lo', w.lo)
  return w
end
-- Adds ca to metric a and cb to metric b of bucket e, w being window_read(key, e, ...) of this script.
local function window_charge(kind, key, w, e, ca, cb, now)
  if ca == 0 and cb == 0 then return end
  local k = BUCKETS[kind]
  local hi = w.hi
  if hi == nil or hi < e then hi = e end
  local args = { 'sa', w.sa + ca, 'sb', w.sb + cb, 'lo', w.lo or (e - k + 1), 'hi', hi }
  if ca ~= 0 then
    args[#args + 1] = 'a' .. e
    args[#args + 1] = w.ba + ca
  end
  if cb ~= 0 then
    args[#args + 1] = 'b' .. e
    args[#args + 1] = w.bb + cb
  end
  redis.call('HSET', key, unpack(args))
  -- The first charge of a bucket sets the TTL past the bucket's end; later ones need not (every
  -- redis.call costs a few microseconds of the single Redis thread).
  if w.ba == 0 and w.bb == 0 then redis.call('PEXPIRE', key, start_of(kind, e + k) - now + 1000) end
end
-- Buckets of metric m in the window at e, oldest first, as {epoch, count} (for retry times and admin).
local function window_buckets(key, m, e, k)
  local fields = {}
  for ep = e - k + 1, e do fields[#fields + 1] = m .. ep end
  local counts = redis.call('HMGET', key, unpack(fields))
  local list = {}
  for i = 1, #fields do
    local count = tonumber(counts[i])
    if count ~= nil and count ~= 0 then list[#list + 1] = { e - k + i, count } end
  end
  return list
end
-- The epoch whose bucket, leaving the window, frees at least need of metric m; -1 if none does.
local function freeing_epoch(key, m, e, k, need)
  local freed = 0
  for _, bucket in ipairs(window_buckets(key, m, e, k)) do
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
-- Settlements of finished requests, ARGV[from..to] in items of 5:
--   window kinds: kind, key index, epoch charged, delta a, delta b. A negative delta goes back to
--   the bucket charged if that bucket still exists; a positive one is charged to the current bucket.
--   'c': kind, key index, -, -, -: one concurrency place released.
-- Returns the number of items.
local function apply_settlements(now, node, from, to)
  local items = 0
  for base = from, to, 5 do
    items = items + 1
    local kind, key = ARGV[base], KEYS[tonumber(ARGV[base + 1])]
    if kind == 'c' then
      if redis.call('HINCRBY', key, node, -1) <= 0 then redis.call('HDEL', key, node) end
    else
      local charged = ARGV[base + 2]
      local da, db = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
      if da < 0 or db < 0 then
        -- A bucket still in the hash still counts (buckets leave by deletion), so it takes the refund.
        local v = redis.call('HMGET', key, 'a' .. charged, 'b' .. charged, 'sa', 'sb')
        local args = {}
        if da < 0 and v[1] then
          args[#args + 1] = 'a' .. charged
          args[#args + 1] = tonumber(v[1]) + da
          args[#args + 1] = 'sa'
          args[#args + 1] = (tonumber(v[3]) or 0) + da
        end
        if db < 0 and v[2] then
          args[#args + 1] = 'b' .. charged
          args[#args + 1] = tonumber(v[2]) + db
          args[#args + 1] = 'sb'
          args[#args + 1] = (tonumber(v[4]) or 0) + db
        end
        if #args > 0 then redis.call('HSET', key, unpack(args)) end
      end
      if da > 0 or db > 0 then
        local e = epoch_of(kind, now)
        window_charge(kind, key, window_read(key, e, BUCKETS[kind]), e, math.max(da, 0), math.max(db, 0), now)
      end
    end
  end
  return items
end
`;

/**
 * KEYS[1] node registry, KEYS[2..] the keys items and settlements name.
 * ARGV[1] time override, ARGV[2] node id, ARGV[3] lease TTL ms, ARGV[4] reserved tokens,
 * ARGV[5] reserved cost, ARGV[6] '1' to renew this node's lease (else the tick does),
 * ARGV[7] S, the number of settlement items that ride along (queued by this node since its last
 * call), ARGV[8 .. 7 + 5S] those items (apply_settlements), applied first, so this admission
 * already sees the places and tokens they give back; then items of 4: kind, key index, limit a,
 * limit b (-1 = none):
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
local register = ARGV[6]
local first = 8 + 5 * tonumber(ARGV[7])
if first > 8 then apply_settlements(now, node, 8, first - 1) end
local n = (#ARGV - first + 1) / 4
local out = { 1, now }
local windows, pending, charged = {}, {}, {}
for i = 1, n do
  local base = first + (i - 1) * 4
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
    local w = window_read(key, e, k)
    local ca, cb = cost, cost
    if kind == 'r' then ca, cb = 1, tokens else ca = tokens end
    -- The same key twice (two rules naming it): the second sees the first's charge.
    local ua, ub, p = w.sa, w.sb, pending[key]
    if p then ua, ub = ua + p[1], ub + p[2] end
    if la >= 0 and ua + math.max(ca, 1) > la then
      return { 0, now, i, 'a', ua, e, freeing_epoch(key, 'a', e, k, ua + math.max(ca, 1) - la) }
    end
    if lb >= 0 and ub + math.max(cb, 1) > lb then
      return { 0, now, i, 'b', ub, e, freeing_epoch(key, 'b', e, k, ub + math.max(cb, 1) - lb) }
    end
    local qa, qb = la >= 0 and ca or 0, lb >= 0 and cb or 0
    if p then p[1], p[2] = p[1] + qa, p[2] + qb else pending[key] = { qa, qb } end
    windows[i] = w
    out[#out + 1] = e
    out[#out + 1] = ua
    out[#out + 1] = ub
  end
end
-- Register this node's lease only when the client asks (no lease tick answered lately): otherwise
-- the tick keeps it alive, and admissions save two calls.
local registered = register ~= '1'
for i = 1, n do
  local base = first + (i - 1) * 4
  local kind, key = ARGV[base], KEYS[tonumber(ARGV[base + 1])]
  local la, lb = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  if kind == 'c' then
    if not registered then
      redis.call('ZADD', KEYS[1], now + ttl, node)
      redis.call('PEXPIRE', KEYS[1], ttl * 3)
      registered = true
    end
    -- A hash left by a dead cluster expires; the lease tick renews the TTL of hashes in use.
    if redis.call('HINCRBY', key, node, 1) == 1 then redis.call('PEXPIRE', key, ttl * 3) end
  else
    local ca, cb = cost, cost
    if kind == 'r' then ca, cb = 1, tokens else ca = tokens end
    local e, w = out[3 + (i - 1) * 3], windows[i]
    if charged[key] then w = window_read(key, e, BUCKETS[kind]) end
    charged[key] = true
    window_charge(kind, key, w, e, la >= 0 and ca or 0, lb >= 0 and cb or 0, now)
  end
end
return out
`;

/**
 * KEYS the keys items name. ARGV[1] time override, ARGV[2] node id, ARGV[3..] settlement items of 5
 * (see apply_settlements). Many tickets' settlements travel in one call. Returns the number of items.
 */
export const SETTLE_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
return apply_settlements(now, ARGV[2], 3, #ARGV)
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
local w = window_read(KEYS[1], e, k)
local oldest = -1
for _, m in ipairs({ 'a', 'b' }) do
  local first = window_buckets(KEYS[1], m, e, k)[1]
  if first ~= nil and (oldest < 0 or first[1] < oldest) then oldest = first[1] end
end
local places = 0
if KEYS[2] ~= '' then places = concurrency_used(KEYS[2], KEYS[3], ARGV[3], now) end
return { now, e, w.sa, w.sb, oldest, places }
`;

/**
 * A top-up: the current bucket's usage goes down by the amounts (credit when below zero).
 * KEYS[1] quota hash. ARGV[1] time override, ARGV[2] kind, ARGV[3] tokens, ARGV[4] cost.
 */
export const TOP_UP_LUA = `${PRELUDE}
local now = now_ms(ARGV[1])
local kind = ARGV[2]
local e = epoch_of(kind, now)
window_charge(kind, KEYS[1], window_read(KEYS[1], e, BUCKETS[kind]), e, -tonumber(ARGV[3]), -tonumber(ARGV[4]), now)
return e
`;

/** Calendar-month math alone, for a test that compares it with windows.ts. ARGV[1] ms → {month, start}. */
export const MONTH_CHECK_LUA = `${PRELUDE}
local e = month_of(tonumber(ARGV[1]))
return { e, month_start(e) }
`;
