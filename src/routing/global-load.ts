/**
 * Global least-request: requests in flight per endpoint summed over several gateway nodes, through
 * Redis, without Redis on the request path.
 *
 * Each node's supervisor runs one GlobalLoadAgent. Every `reportIntervalMs` it reads this node's
 * in-flight count per endpoint slot from shared memory (already summed over the node's workers, and
 * already corrected by the supervisor when a worker dies) and publishes it as this node's **lease**;
 * in the same round trip it reads every other live node's lease, sums them per endpoint and writes
 * the sum into shared memory (`remoteInFlight`), where the workers' balancers add it to the local,
 * exact count. The balancer never waits on Redis: it reads a number at most one interval old.
 *
 * Why leases rather than a shared INCR/DECR counter per endpoint: a counter incremented by a worker
 * that then dies is never decremented, and the endpoint looks busy forever. A lease is this node's
 * whole current count, replaced on every tick and expiring on its own (PEXPIRE), so a dead node's
 * requests vanish from the sum within `leaseTtlMs` with nobody cleaning up after it.
 *
 * Redis keys (`P` = keyPrefix):
 *   P + 'lr:nodes'           ZSET  member = node id, score = lease expiry in ms of Redis server time
 *   P + 'lr:node:' + nodeId  HASH  field = endpoint identity hash (decimal), value = requests in flight
 *                                  on that node; only non-zero counts; PEXPIRE = leaseTtlMs
 * Endpoints are named by their identity hash (EndpointSlots.hashAt), the same on every node for the
 * same provider and URL, because slot numbers differ from node to node.
 *
 * One tick is ONE round trip: a Lua script replaces this node's hash, renews its registry entry,
 * drops registry members whose lease has expired, and returns the other live nodes' sums. Expiry uses
 * the Redis server's clock (`TIME`), so skew between node clocks cannot make a lease look alive or
 * dead. The script touches keys it was not given (the other nodes' hashes), which a single Redis and
 * Sentinel allow; on Redis Cluster put a hash tag in the prefix (`sluice:{lr}:`) so every key lives
 * in one slot.
 *
 * Failure: a report that errors or takes longer than `commandTimeoutMs` leaves the last sums in place
 * (they are still a good estimate for a while); once the last good exchange is older than the lease
 * TTL, which is also how long the other nodes' counts would take to vanish, the remote counts are set
 * to 0 and every node balances on its own exact counts (plain least-request) until Redis answers
 * again. One log line per change of state, never one per tick.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import type { Redis } from 'ioredis';
import { backgroundRedisClient, redactRedisUrl } from '../runtime/redis-client.js';

import { clock } from '../clock.js';
import { log } from '../observability/logger.js';
import type { EndpointCounters, EndpointSlots } from '../shm/index.js';

export const GLOBAL_LOAD_DEFAULTS = {
  reportIntervalMs: 250,
  /** A lease outlives this many missed reports: one slow tick must not make a node vanish. */
  leaseTtlIntervals: 3,
  minLeaseTtlMs: 1000,
  commandTimeoutMs: 200,
} as const;

/** What the agent needs of SharedMemory; a SharedMemory is one. */
export interface GlobalLoadShm {
  readonly endpoints: Pick<EndpointCounters, 'inFlight' | 'setRemoteInFlight'>;
  readonly slots: Pick<EndpointSlots, 'hashAt'>;
}

export interface GlobalLoadOptions {
  /**
   * An ioredis client owned by the caller (not closed by `stop()`), or a redis:// URL for a client
   * the agent makes and closes. A URL client gets short connect and retry times; a caller's client
   * keeps its own settings, and the agent bounds each tick with `commandTimeoutMs` regardless.
   */
  readonly redis: Redis | string;
  /** Prepended to every key, e.g. `sluice:`. Several gateways sharing one Redis use different ones. */
  readonly keyPrefix: string;
  /** Unique per node and per run (see `defaultNodeId`). Two nodes with one id would overwrite each other's lease. */
  readonly nodeId: string;
  readonly shm: GlobalLoadShm;
  /** The endpoint slots to report and receive, read on every tick (so it follows config reloads). */
  readonly slots: () => readonly number[];
  /** Default 250 ms. */
  readonly reportIntervalMs?: number;
  /** Default max(1 s, 3 × reportIntervalMs). */
  readonly leaseTtlMs?: number;
  /** Default 200 ms. */
  readonly commandTimeoutMs?: number;
}

/**
 * - `starting`: no exchange finished yet;
 * - `ok`: the last exchange succeeded;
 * - `degraded`: exchanges fail, remote counts are the last good ones (younger than the lease TTL);
 * - `failed`: exchanges fail and the last good one is older than the TTL: remote counts are 0;
 * - `stopped`.
 */
export type GlobalLoadState = 'starting' | 'ok' | 'degraded' | 'failed' | 'stopped';

export interface GlobalLoadStatus {
  readonly nodeId: string;
  readonly state: GlobalLoadState;
  /** Other nodes with a live lease at the last good exchange. */
  readonly otherNodes: number;
  /** Endpoint slots reported at the last tick. */
  readonly slots: number;
  /** Milliseconds since the last good exchange; null before the first. */
  readonly lastGoodAgeMs: number | null;
  readonly lastError: string | null;
  readonly ticks: number;
  readonly failures: number;
}

/** `host:pid:random`: unique across nodes, and a restarted node does not inherit its old lease. */
export function defaultNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export { redactRedisUrl };

const TICK_COMMAND = 'sluiceGlobalLoadTick';

/**
 * KEYS[1] registry ZSET, KEYS[2] this node's lease HASH.
 * ARGV[1] node id, ARGV[2] lease TTL ms, ARGV[3] prefix of lease keys (+ node id = key),
 * ARGV[4..] field, count pairs (this node's non-zero counts).
 * Returns { other live nodes, field, sum, field, sum, … } over the other nodes.
 */
const TICK_LUA = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('DEL', KEYS[2])
-- HSET in chunks: Lua's unpack has a stack limit of a few thousand values.
for i = 4, #ARGV, 1000 do
  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
local sums, order, live = {}, {}, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if member ~= ARGV[1] then
    live = live + 1
    local flat = redis.call('HGETALL', ARGV[3] .. member)
    for i = 1, #flat, 2 do
      local field = flat[i]
      if sums[field] == nil then
        sums[field] = 0
        order[#order + 1] = field
      end
      sums[field] = sums[field] + (tonumber(flat[i + 1]) or 0)
    end
  end
end
local out = { live }
for _, field in ipairs(order) do
  out[#out + 1] = field
  out[#out + 1] = sums[field]
end
return out
`;

type TickCommand = (registry: string, lease: string, nodeId: string, ttlMs: string, leasePrefix: string, ...pairs: string[]) => Promise<unknown>;

const INT32_MAX = 0x7fffffff;

function positiveInt(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new RangeError(`global load: ${name} must be a positive integer, got ${value}`);
  return value;
}

export class GlobalLoadAgent {
  readonly nodeId: string;
  readonly reportIntervalMs: number;
  readonly leaseTtlMs: number;
  readonly commandTimeoutMs: number;

  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  /** For logs: the URL without credentials, or "(caller's client)". */
  private readonly redisLabel: string;
  private readonly shm: GlobalLoadShm;
  private readonly slotsOf: () => readonly number[];
  private readonly registryKey: string;
  private readonly leaseKeyPrefix: string;
  private readonly leaseKey: string;
  private readonly runTick: TickCommand;

  private state: GlobalLoadState = 'starting';
  /** Slots of the last tick, by identity hash (decimal): where received sums are written. */
  private known = new Map<string, number>();
  private lastGoodAt = -Infinity;
  private lastError: string | null = null;
  private otherNodes = 0;
  private ticks = 0;
  private failures = 0;
  /** The Redis command of the last tick while it has not settled (it can outlive our timeout). */
  private outstanding: Promise<unknown> | null = null;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(options: GlobalLoadOptions) {
    this.nodeId = options.nodeId;
    if (this.nodeId.length === 0) throw new RangeError('global load: nodeId must not be empty');
    this.reportIntervalMs = positiveInt('reportIntervalMs', options.reportIntervalMs ?? GLOBAL_LOAD_DEFAULTS.reportIntervalMs);
    this.leaseTtlMs = positiveInt(
      'leaseTtlMs',
      options.leaseTtlMs ??
        Math.max(GLOBAL_LOAD_DEFAULTS.minLeaseTtlMs, GLOBAL_LOAD_DEFAULTS.leaseTtlIntervals * this.reportIntervalMs),
    );
    this.commandTimeoutMs = positiveInt('commandTimeoutMs', options.commandTimeoutMs ?? GLOBAL_LOAD_DEFAULTS.commandTimeoutMs);
    this.shm = options.shm;
    this.slotsOf = options.slots;
    this.registryKey = `${options.keyPrefix}lr:nodes`;
    this.leaseKeyPrefix = `${options.keyPrefix}lr:node:`;
    this.leaseKey = this.leaseKeyPrefix + this.nodeId;

    if (typeof options.redis === 'string') {
      this.redisLabel = redactRedisUrl(options.redis);
      this.redis = backgroundRedisClient(options.redis, this.commandTimeoutMs);
      this.ownsRedis = true;
    } else {
      this.redisLabel = "(caller's client)";
      this.redis = options.redis;
      this.ownsRedis = false;
    }
    this.redis.defineCommand(TICK_COMMAND, { numberOfKeys: 2, lua: TICK_LUA });
    const command = (this.redis as unknown as Record<string, TickCommand>)[TICK_COMMAND]!;
    this.runTick = command.bind(this.redis);
  }

  /** Starts reporting every `reportIntervalMs` (first tick now). The timer does not keep the process alive. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    const loop = async (): Promise<void> => {
      const began = clock.monotonicMs();
      await this.tick();
      if (this.stopped) return;
      this.timer = setTimeout(loop, Math.max(0, this.reportIntervalMs - (clock.monotonicMs() - began)));
      this.timer.unref();
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  /**
   * One report-and-read exchange. Never throws; resolves true when Redis answered. Exposed so tests
   * (and a supervisor that wants a report before it starts serving) can drive it.
   */
  tick(): Promise<boolean> {
    const run = this.exchange();
    const done = run.then(() => undefined);
    this.running = done;
    return run;
  }

  private async exchange(): Promise<boolean> {
    if (this.stopped) return false;
    this.ticks++;
    const slots = this.slotsOf();
    const current = new Map<string, number>();
    const pairs: string[] = [];
    for (const slot of slots) {
      const hash = this.shm.slots.hashAt(slot);
      if (hash === 0n) continue;
      const field = hash.toString();
      current.set(field, slot);
      const count = this.shm.endpoints.inFlight(slot);
      if (count > 0) pairs.push(field, String(count));
    }
    // A slot that left the configuration must not keep a remote count it will never receive again.
    for (const [field, slot] of this.known) if (!current.has(field)) this.shm.endpoints.setRemoteInFlight(slot, 0);
    this.known = current;

    let reply: unknown;
    try {
      if (this.outstanding !== null) throw new Error('the previous report has not been answered yet');
      const command = this.runTick(this.registryKey, this.leaseKey, this.nodeId, String(this.leaseTtlMs), this.leaseKeyPrefix, ...pairs);
      this.outstanding = command;
      command.then(
        () => this.clearOutstanding(command),
        () => this.clearOutstanding(command),
      );
      reply = await withTimeout(command, this.commandTimeoutMs);
    } catch (err) {
      this.fail(err);
      return false;
    }
    if (this.stopped) return false;

    const sums = parseReply(reply);
    if (sums === null) {
      this.fail(new Error('unexpected reply from the global-load script'));
      return false;
    }
    for (const [field, slot] of current) {
      this.shm.endpoints.setRemoteInFlight(slot, Math.min(INT32_MAX, sums.counts.get(field) ?? 0));
    }
    this.otherNodes = sums.otherNodes;
    this.lastGoodAt = clock.monotonicMs();
    this.lastError = null;
    this.transition('ok');
    return true;
  }

  private clearOutstanding(command: Promise<unknown>): void {
    if (this.outstanding === command) this.outstanding = null;
  }

  private fail(err: unknown): void {
    this.failures++;
    this.lastError = err instanceof Error ? err.message : String(err);
    if (this.stopped) return;
    if (clock.monotonicMs() - this.lastGoodAt > this.leaseTtlMs) {
      // Zeroed on every failed tick, not only on the transition: slots added since must start at 0.
      this.zeroRemote();
      this.transition('failed');
    } else {
      this.transition('degraded');
    }
  }

  private zeroRemote(): void {
    for (const slot of this.known.values()) this.shm.endpoints.setRemoteInFlight(slot, 0);
  }

  private transition(next: GlobalLoadState): void {
    const previous = this.state;
    if (previous === next) return;
    this.state = next;
    const fields = { node: this.nodeId, redis: this.redisLabel, from: previous, to: next };
    if (next === 'ok') {
      if (previous === 'starting') log.debug('global least-request: connected', fields);
      else log.info('global least-request: Redis answers again; remote in-flight counts restored', fields);
    } else if (next === 'degraded') {
      log.warn('global least-request: Redis report failed; keeping the last remote counts for now', {
        ...fields,
        reason: this.lastError,
        lease_ttl_ms: this.leaseTtlMs,
      });
    } else if (next === 'failed') {
      log.warn('global least-request: no Redis answer within the lease TTL; balancing on this node\'s counts only', {
        ...fields,
        reason: this.lastError,
      });
    }
  }

  status(): GlobalLoadStatus {
    return {
      nodeId: this.nodeId,
      state: this.state,
      otherNodes: this.otherNodes,
      slots: this.known.size,
      lastGoodAgeMs: Number.isFinite(this.lastGoodAt) ? clock.monotonicMs() - this.lastGoodAt : null,
      lastError: this.lastError,
      ticks: this.ticks,
      failures: this.failures,
    };
  }

  /**
   * Stops reporting, deletes this node's lease so the other nodes drop its counts at their next tick
   * rather than after the TTL, zeroes the remote counts this agent wrote, and closes the client if
   * the agent made it. A failed delete is logged; the lease then expires on its own.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    try {
      await withTimeout(this.redis.multi().del(this.leaseKey).zrem(this.registryKey, this.nodeId).exec(), Math.max(this.commandTimeoutMs, 1000));
    } catch (err) {
      log.warn('global least-request: could not delete this node\'s lease; it expires by itself', {
        node: this.nodeId,
        redis: this.redisLabel,
        reason: err instanceof Error ? err.message : String(err),
        lease_ttl_ms: this.leaseTtlMs,
      });
    }
    this.zeroRemote();
    this.state = 'stopped';
    if (this.ownsRedis) this.redis.disconnect();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function parseReply(reply: unknown): { otherNodes: number; counts: Map<string, number> } | null {
  if (!Array.isArray(reply) || reply.length % 2 !== 1) return null;
  const otherNodes = Number(reply[0]);
  if (!Number.isInteger(otherNodes) || otherNodes < 0) return null;
  const counts = new Map<string, number>();
  for (let i = 1; i < reply.length; i += 2) {
    const count = Number(reply[i + 1]);
    if (!Number.isFinite(count) || count < 0) return null;
    counts.set(String(reply[i]), Math.trunc(count));
  }
  return { otherNodes, counts };
}
