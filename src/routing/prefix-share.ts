/**
 * Sharing the prefix index between gateway nodes through Redis (`prefix.share`), off the request
 * path: each node's supervisor runs one PrefixShareAgent that every `intervalMs`
 *   1. collects what this node's workers recorded since the last round (entries the index marked
 *      for export; at most `maxBatch`, the rest waits for the next round) and appends it to one
 *      Redis stream as a single entry: this node's id and a packed list of (endpoint identity hash,
 *      block hash) pairs, 16 bytes each;
 *   2. reads the entries appended since its last read and teaches this node's index every pair
 *      another node published (PrefixIndex.learn: inserted, counted on the replica's eviction clock,
 *      never re-exported).
 * Both in one pipelined round trip. Endpoints are named by their identity hash (provider + URL),
 * which every node computes alike; slot numbers differ between nodes.
 *
 * Bounded: the stream is trimmed to about `maxStreamEntries` entries on every append (MAXLEN ~) and
 * expires `ttlMs` after the last append; a node that starts (or reconnects after a long outage) reads
 * only the last `ttlMs` of it, measured on Redis's clock.
 *
 * Consistency: eventual and approximate, like the index itself. Another node's decision reaches this
 * node's balancer after up to one interval plus a round trip, so two nodes that receive the first
 * turns of one conversation within that window may each send it to a different replica (after that
 * they agree). Pairs are not ordered across nodes, and a node that falls further behind than the
 * stream's bound loses the oldest pairs. Every loss or delay costs cache hits, never correctness:
 * the balancer only prefers replicas, and every replica can serve every request. When Redis is down
 * each node keeps balancing on what it learned itself; one log line per change of state.
 */

import type { Redis } from 'ioredis';

import { log } from '../observability/logger.js';
import { sharedClockMs } from '../shm/shared-clock.js';
import { backgroundRedisClient, redactRedisUrl } from '../runtime/redis-client.js';

/** Bytes per published pair: endpoint identity hash (int64) + block hash (float64, an exact 53-bit integer). */
const PAIR_BYTES = 16;
/** Stream entries read per XREAD; a tick reads a few pages at most, then continues next tick. */
const READ_COUNT = 256;
const MAX_PAGES_PER_TICK = 8;

/** What the agent needs of the shm PrefixIndex. */
export interface ShareableIndex {
  drainExports(accept: (slot: number) => boolean, visit: (slot: number, hash: number) => void, max: number, nowMs: number): number;
  learn(slot: number, hash: number, nowMs: number): boolean;
}

export interface PrefixShareOptions {
  /** An ioredis client owned by the caller (not closed by stop), or a URL for one the agent owns. */
  readonly redis: Redis | string;
  readonly keyPrefix: string;
  readonly nodeId: string;
  readonly index: ShareableIndex;
  /** The shared endpoints: identity hash → this node's slot; read every round (follows reloads). */
  readonly endpoints: () => ReadonlyMap<bigint, number>;
  readonly intervalMs: number;
  readonly maxBatch: number;
  readonly maxStreamEntries: number;
  readonly ttlMs: number;
  readonly commandTimeoutMs: number;
}

export interface PrefixShareStatus {
  readonly state: 'starting' | 'ok' | 'failing' | 'stopped';
  readonly published: number;
  readonly learned: number;
  readonly rounds: number;
  readonly failures: number;
}

type BufferCaller = (command: string, ...args: (string | Buffer | number)[]) => Promise<unknown>;

export class PrefixShareAgent {
  readonly streamKey: string;
  private readonly redis: Redis;
  private readonly ownsRedis: boolean;
  private readonly redisLabel: string;
  private readonly callBuffer: BufferCaller;
  private readonly nodeIdBytes: Buffer;
  private lastId: string | null = null;
  private state: PrefixShareStatus['state'] = 'starting';
  private published = 0;
  private learned = 0;
  private rounds = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | null = null;
  private stopped = false;
  /** Pairs drained but not yet accepted by Redis: sent again next round rather than lost to one failure. */
  private pending: Buffer | null = null;

  constructor(private readonly options: PrefixShareOptions) {
    if (options.nodeId.length === 0) throw new RangeError('prefix sharing: nodeId must not be empty');
    this.streamKey = `${options.keyPrefix}prefix:blocks`;
    this.nodeIdBytes = Buffer.from(options.nodeId);
    if (typeof options.redis === 'string') {
      this.redisLabel = redactRedisUrl(options.redis);
      this.redis = backgroundRedisClient(options.redis, options.commandTimeoutMs);
      this.ownsRedis = true;
    } else {
      this.redisLabel = "(caller's client)";
      this.redis = options.redis;
      this.ownsRedis = false;
    }
    const call = (this.redis as unknown as { callBuffer: BufferCaller }).callBuffer;
    this.callBuffer = call.bind(this.redis);
  }

  /** Rounds every intervalMs, the first now. The timer does not keep the process alive. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    const loop = async (): Promise<void> => {
      const began = Date.now();
      await this.round();
      if (this.stopped) return;
      this.timer = setTimeout(loop, Math.max(0, this.options.intervalMs - (Date.now() - began)));
      this.timer.unref();
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  /** One publish-and-read round; never throws, resolves true when Redis answered. Exposed for tests. */
  round(): Promise<boolean> {
    const run = this.exchange();
    this.running = run;
    return run;
  }

  private async exchange(): Promise<boolean> {
    if (this.stopped) return false;
    this.rounds++;
    const o = this.options;
    const byHash = o.endpoints();
    const hashOf = new Map<number, bigint>();
    for (const [hash, slot] of byHash) hashOf.set(slot, hash);
    const nowMs = sharedClockMs();

    let batch = this.pending;
    if (batch === null) {
      const out = Buffer.allocUnsafe(o.maxBatch * PAIR_BYTES);
      let n = 0;
      o.index.drainExports(
        (slot) => hashOf.has(slot),
        (slot, hash) => {
          out.writeBigInt64LE(BigInt.asIntN(64, hashOf.get(slot)!), n * PAIR_BYTES);
          out.writeDoubleLE(hash, n * PAIR_BYTES + 8);
          n++;
        },
        o.maxBatch,
        nowMs,
      );
      batch = n > 0 ? out.subarray(0, n * PAIR_BYTES) : null;
    }

    try {
      if (this.lastId === null) this.lastId = await this.startId();
      if (batch !== null) {
        await this.timed(
          this.callBuffer('XADD', this.streamKey, 'MAXLEN', '~', o.maxStreamEntries, '*', 'n', this.nodeIdBytes, 'b', batch),
        );
        await this.timed(this.callBuffer('PEXPIRE', this.streamKey, o.ttlMs));
        this.published += batch.length / PAIR_BYTES;
        this.pending = null;
      }
      for (let page = 0; page < MAX_PAGES_PER_TICK; page++) {
        const reply = await this.timed(this.callBuffer('XREAD', 'COUNT', READ_COUNT, 'STREAMS', this.streamKey, this.lastId));
        const entries = streamEntries(reply);
        for (const [id, fields] of entries) {
          this.lastId = id;
          this.learnFrom(fields, byHash, nowMs);
        }
        if (entries.length < READ_COUNT) break;
      }
    } catch (err) {
      // Keep what could not be published for the next round (bounded: one batch).
      this.pending = batch;
      this.fail(err);
      return false;
    }
    if (this.state !== 'ok') {
      if (this.state === 'failing') log.info('prefix sharing: Redis answers again', { redis: this.redisLabel });
      this.state = 'ok';
    }
    return true;
  }

  /** The id to read from first: `ttlMs` before now on Redis's clock, so a new node learns only what is still fresh. */
  private async startId(): Promise<string> {
    const time = (await this.timed(this.callBuffer('TIME'))) as Buffer[];
    const nowMs = Number(time[0]!.toString()) * 1000 + Math.floor(Number(time[1]!.toString()) / 1000);
    return `${Math.max(0, nowMs - this.options.ttlMs)}-0`;
  }

  private learnFrom(fields: Buffer[], byHash: ReadonlyMap<bigint, number>, nowMs: number): void {
    let node: Buffer | undefined;
    let pairs: Buffer | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]!.toString();
      if (name === 'n') node = fields[i + 1];
      else if (name === 'b') pairs = fields[i + 1];
    }
    if (node === undefined || pairs === undefined || node.equals(this.nodeIdBytes)) return;
    for (let at = 0; at + PAIR_BYTES <= pairs.length; at += PAIR_BYTES) {
      const slot = byHash.get(pairs.readBigInt64LE(at));
      if (slot === undefined) continue;
      const hash = pairs.readDoubleLE(at + 8);
      if (!(Number.isInteger(hash) && hash >= 0)) continue;
      if (this.options.index.learn(slot, hash, nowMs)) this.learned++;
    }
  }

  private timed<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.options.commandTimeoutMs} ms`)), this.options.commandTimeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  private fail(err: unknown): void {
    this.failures++;
    if (this.stopped || this.state === 'failing') return;
    this.state = 'failing';
    log.warn('prefix sharing: Redis failed; each node routes on what it learned itself until it answers', {
      redis: this.redisLabel,
      reason: err instanceof Error ? err.message : String(err),
    });
  }

  status(): PrefixShareStatus {
    return { state: this.state, published: this.published, learned: this.learned, rounds: this.rounds, failures: this.failures };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.state = 'stopped';
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    if (this.ownsRedis) this.redis.disconnect();
  }
}

/**
 * XREAD's reply for one stream as [id, fields] pairs; [] for none (nil reply). RESP2 answers
 * [[key, entries]], RESP3 a map that ioredis flattens to [key, entries].
 */
function streamEntries(reply: unknown): [string, Buffer[]][] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const first: unknown = reply[0];
  const entries: unknown = Array.isArray(first) ? first[1] : reply[1];
  if (!Array.isArray(entries)) return [];
  const out: [string, Buffer[]][] = [];
  for (const item of entries as unknown[]) {
    if (!Array.isArray(item) || item.length < 2 || !Array.isArray(item[1])) continue;
    out.push([String(item[0]), (item[1] as unknown[]).filter((f): f is Buffer => Buffer.isBuffer(f))]);
  }
  return out;
}
