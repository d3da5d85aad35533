/**
 * THE layout of Sluice's shared-memory segment: one versioned table of regions, and the field tables
 * of the records inside them. Every offset any process uses is computed here from the table, so a
 * change is made in one place and every process of one build agrees on it.
 *
 * Segment = header | workers | endpointKeys | endpointStats | endpointInFlight | limitKeys |
 * limitWindows | limitConcurrency | prefixIndex | prefixEndpoints, each region starting
 * on a 64-byte boundary (a cache line: a region written by every worker never shares a line with its
 * neighbour, and every BigInt64 field is 8-byte aligned as Atomics requires). Sizes depend on two
 * parameters fixed at creation and stored in the header, so a process that opens the segment
 * recomputes the same offsets without being told them.
 *
 * Adding a region (a prefix-index hash table is next; limitKeys/limitWindows/limitConcurrency were
 * added this way in v3):
 *   1. append one entry to REGIONS, e.g.
 *        { name: 'rateLimitBuckets', summary: 'token buckets, one 64-byte record each',
 *          bytes: (p) => p.rateLimitBuckets * RATE_LIMIT_RECORD_BYTES },
 *      with its record's field table beside the others below;
 *   2. if a new parameter sizes it, add it to LayoutParams and give it a header field (the header
 *      keeps reserved bytes for exactly this); make it optional with a default and store 0 for
 *      "absent", as limitKeyCapacity does, so callers that never heard of it see the same params;
 *   3. bump LAYOUT_VERSION. A segment made by another build is then refused on open with a clear
 *      error instead of being misread.
 * Regions are appended, never reordered, so existing offsets stay put and diffs stay readable.
 */

/** "SLCE" in ASCII: the first four bytes of every Sluice segment once its header is complete. */
export const LAYOUT_MAGIC = 0x534c4345;

/** Bump on any change to REGIONS, a record's fields or the header. Readers accept only their own. */
export const LAYOUT_VERSION = 4;

/** Alignment of every region and record stride: one x86-64/arm64 cache line. */
export const CACHE_LINE_BYTES = 64;

/** The segment is sized in whole pages: tmpfs allocates pages anyway, and mmap maps whole pages. */
export const PAGE_BYTES = 4096;

/** The parameters that size the regions. Fixed for the segment's life; stored in its header. */
export interface LayoutParams {
  /**
   * Worker processes that can hold a row at once (indexes 0..workerSlots-1). A restarted worker
   * reuses the index of the one it replaces, so this is the configured worker count, not a total.
   */
  readonly workerSlots: number;
  /** Endpoint slots (provider + URL + key index) that can be tracked. */
  readonly endpointCapacity: number;
  /**
   * Limiter keys (a rate-limit key such as `c:alice|m:gpt-4o`, or one quota of a key) that can be
   * tracked; DEFAULT_LIMIT_KEY_CAPACITY when absent. Optional so that layouts made without it keep
   * their shape; the header stores 0 for "absent" (see writeHeader).
   */
  readonly limitKeyCapacity?: number;
  /**
   * Entries of the prefix-cache index ((block hash, endpoint) pairs the prefix balancer believes a
   * replica holds); DEFAULT_PREFIX_INDEX_ENTRIES when absent, rounded up to whole buckets. Optional
   * for the same reason as limitKeyCapacity; the header stores 0 for "absent".
   */
  readonly prefixIndexEntries?: number;
}

export const DEFAULT_LAYOUT_PARAMS: LayoutParams = { workerSlots: 64, endpointCapacity: 1024 };

/** Limiter keys when LayoutParams.limitKeyCapacity is absent: 4096 × ~1.3 KiB ≈ 5 MiB at 64 workers. */
export const DEFAULT_LIMIT_KEY_CAPACITY = 4096;

/** The limiter key capacity these parameters give. */
export function limitKeyCapacity(params: LayoutParams): number {
  return params.limitKeyCapacity ?? DEFAULT_LIMIT_KEY_CAPACITY;
}

/**
 * Prefix-index entries when LayoutParams.prefixIndexEntries is absent: 2^18 × 32 B = 8 MiB, about
 * 4 M tokens of KV cache at 16 tokens a block spread over every prefix-balanced replica. tmpfs (and a
 * private ArrayBuffer) only backs pages once written, so a gateway without a prefix balancer pays
 * nothing for it.
 */
export const DEFAULT_PREFIX_INDEX_ENTRIES = 1 << 18;

/** The prefix-index entries these parameters give, before rounding to whole buckets. */
export function prefixIndexEntries(params: LayoutParams): number {
  return params.prefixIndexEntries ?? DEFAULT_PREFIX_INDEX_ENTRIES;
}

/** Bounds on the parameters: beyond them a value is a configuration mistake, not a need. */
export const LAYOUT_LIMITS = {
  workerSlots: { min: 1, max: 1024 },
  endpointCapacity: { min: 1, max: 65536 },
  limitKeyCapacity: { min: 1, max: 65536 },
  prefixIndexEntries: { min: 64, max: 1 << 24 },
} as const satisfies Record<keyof LayoutParams, { min: number; max: number }>;

/** A field inside a record: its byte offset from the record's start and its width. */
export interface FieldSpec {
  readonly offset: number;
  readonly type: 'i32' | 'i64';
}

export const FIELD_BYTES = { i32: 4, i64: 8 } as const;

/**
 * The header region. `magic` is written last (see writeHeader), so a reader that sees it sees the
 * rest. Bytes 56..127 are reserved for parameters of regions added later.
 */
export const HEADER_FIELDS = {
  magic: { offset: 0, type: 'i32' },
  layoutVersion: { offset: 4, type: 'i32' },
  totalBytes: { offset: 8, type: 'i64' },
  /** Bumped by the supervisor when it fans out a new config snapshot; workers compare it. */
  configGeneration: { offset: 16, type: 'i64' },
  workerSlots: { offset: 24, type: 'i32' },
  endpointCapacity: { offset: 28, type: 'i32' },
  supervisorPid: { offset: 32, type: 'i32' },
  /** Wall-clock ms at creation, for diagnostics only (which segment is this, how old is it). */
  createdAtMs: { offset: 40, type: 'i64' },
  /** LayoutParams.limitKeyCapacity; 0 = absent (the default capacity). Layout v3. */
  limitKeyCapacity: { offset: 48, type: 'i32' },
  /** LayoutParams.prefixIndexEntries; 0 = absent (the default). Layout v4. */
  prefixIndexEntries: { offset: 52, type: 'i32' },
} as const satisfies Record<string, FieldSpec>;
export const HEADER_BYTES = 128;

/**
 * One record per worker slot, written by that worker (heartbeat) and by the supervisor (register,
 * clear). A record per cache line, so one worker's heartbeat never invalidates another's line.
 */
export const WORKER_FIELDS = {
  /** The worker's pid; 0 when the slot is free. Written last on register, first on clear. */
  pid: { offset: 0, type: 'i32' },
  /** How many processes have held this slot: tells a restarted worker from the one it replaced. */
  incarnation: { offset: 4, type: 'i32' },
  /** Last heartbeat, shared-clock ms (see shared-clock.ts). */
  heartbeatMs: { offset: 8, type: 'i64' },
  /** When the current holder registered, shared-clock ms. */
  startedAtMs: { offset: 16, type: 'i64' },
} as const satisfies Record<string, FieldSpec>;
export const WORKER_RECORD_BYTES = 64;

/**
 * One record per endpoint slot, written by every worker. These counters are shared, not per-worker:
 * a request count or a failure streak lost with a killed worker's last few requests is harmless,
 * unlike an in-flight count that would stay high forever (that one gets per-worker rows, below).
 */
export const ENDPOINT_FIELDS = {
  /** Requests sent to the endpoint (counted on acquire). */
  totalRequests: { offset: 0, type: 'i64' },
  /** Requests that failed (counted by recordFailure). */
  totalFailures: { offset: 8, type: 'i64' },
  /** Ejected until this shared-clock ms; 0 = never ejected. */
  ejectedUntilMs: { offset: 16, type: 'i64' },
  /** Failures since the last success: what outlier detection compares with its threshold. */
  consecutiveFailures: { offset: 24, type: 'i32' },
  /**
   * Requests in flight to the endpoint on other gateway nodes, as they last reported through Redis
   * (global least-request): written by this node's supervisor, read by every worker's balancer.
   */
  remoteInFlight: { offset: 28, type: 'i32' },
  /** 1 while the active health check finds the endpoint down: balancers skip it, like an ejection. */
  unhealthy: { offset: 32, type: 'i32' },
} as const satisfies Record<string, FieldSpec>;
export const ENDPOINT_RECORD_BYTES = 64;

/** One 64-bit key hash per endpoint slot; 0 = free. The bucket index is the slot (endpoint-slots.ts). */
export const ENDPOINT_KEY_BYTES = 8;

/**
 * Bytes between two workers' in-flight rows: one Int32 per endpoint slot, rounded up to a cache line
 * so two workers' rows never share one.
 */
export function inFlightRowBytes(params: LayoutParams): number {
  return alignUp(params.endpointCapacity * FIELD_BYTES.i32, CACHE_LINE_BYTES);
}

/** One 64-bit key hash per limiter slot; 0 = free (limit-keys.ts). */
export const LIMIT_KEY_BYTES = 8;

/**
 * One record per limiter slot (limit-windows.ts): two windows, A and B. A rate-limit key counts
 * requests in A and tokens in B; a quota key counts tokens in A and cost (micros) in B.
 *
 * A window is a head word (the newest bucket) and a ring of LIMIT_RING_SLOTS older buckets, each a
 * 64-bit word packing (epoch, biased count): epoch in the high bits, count + 2^(countBits−1) in the
 * low countBits bits, so that a zeroed word reads as "epoch 0, empty". Rate windows use 32/32 bits
 * (epoch = shared-clock second + 1), quota windows 22/42 (epoch = UTC hour, day or month index).
 * Only the head is charged, by CAS; a bucket moves to the ring (ring[epoch % buckets]) before the
 * head moves on, so every check-and-charge is one CAS on one word.
 */
export const LIMIT_RECORD_BYTES = 1024;
export const LIMIT_RING_SLOTS = 60;
export const LIMIT_WINDOW_FIELDS = {
  /** Window A's newest bucket. */
  headA: { offset: 0, type: 'i64' },
  /** Window A's ring: LIMIT_RING_SLOTS i64 words from here. */
  ringA: { offset: 8, type: 'i64' },
  headB: { offset: 8 + LIMIT_RING_SLOTS * 8, type: 'i64' },
  ringB: { offset: 16 + LIMIT_RING_SLOTS * 8, type: 'i64' },
  /** Bumped by an admin reset, so a ticket charged before it does not refund into charges made after. */
  generation: { offset: 16 + 2 * LIMIT_RING_SLOTS * 8, type: 'i32' },
} as const satisfies Record<string, FieldSpec>;

/**
 * Bytes of one limiter slot's concurrency block: one Int32 per worker slot (worker w writes only
 * element w), rounded up to a cache line. Key-major, so a reader sums one block of adjacent words.
 */
export function limitConcurrencyBlockBytes(params: LayoutParams): number {
  return alignUp(params.workerSlots * FIELD_BYTES.i32, CACHE_LINE_BYTES);
}

/**
 * The prefix index (prefix-index.ts): a set-associative table of PREFIX_INDEX_WAYS entries per bucket,
 * each entry one (block hash, endpoint slot) pair the prefix balancer recorded. The bucket is chosen
 * by a hash of both; an insert replaces an empty way, else one whose endpoint has evicted it, else
 * the least recently touched. 8 ways × 32 bytes = one 256-byte bucket, 4 cache lines.
 */
export const PREFIX_INDEX_WAYS = 8;
export const PREFIX_ENTRY_BYTES = 32;
export const PREFIX_ENTRY_FIELDS = {
  /** The block's chain hash (53 bits, prompt-blocks.ts): low 32 bits. */
  hashLow: { offset: 0, type: 'i32' },
  /** High 21 bits. */
  hashHigh: { offset: 4, type: 'i32' },
  /** Endpoint slot + 1; 0 = empty way. */
  owner: { offset: 8, type: 'i32' },
  /** The owner's eviction clock (prefixEndpoints.clock) at the entry's last touch. */
  seq: { offset: 12, type: 'i32' },
  /** Shared-clock time of the last touch, in PREFIX_TICK_MS units (wraps; compared by difference). */
  tick: { offset: 16, type: 'i32' },
  /** Bit 0: learned on this node and not yet shared with other nodes (prefix sharing, Redis). */
  flags: { offset: 20, type: 'i32' },
} as const satisfies Record<string, FieldSpec>;

/** Resolution of prefix-index entry times: coarse enough that 32 bits cover years, fine enough for any TTL. */
export const PREFIX_TICK_MS = 64;

/** Buckets of the prefix index for these parameters. */
export function prefixIndexBuckets(params: LayoutParams): number {
  return Math.ceil(prefixIndexEntries(params) / PREFIX_INDEX_WAYS);
}

/**
 * One record per endpoint slot for prefix-aware balancing: the replica's modelled KV cache (eviction
 * clock, capacity, TTL; written by workers) and what its /metrics last said (written by the
 * supervisor's scraper). One cache line per endpoint.
 */
export const PREFIX_ENDPOINT_RECORD_BYTES = 64;
export const PREFIX_ENDPOINT_FIELDS = {
  /** Blocks newly recorded on the endpoint, ever (wraps): an entry older than `capacity` of them is evicted. */
  clock: { offset: 0, type: 'i32' },
  /** KV blocks (of the balancer's block size) the replica is modelled to hold; 0 = not indexed. */
  capacity: { offset: 4, type: 'i32' },
  /** Entries untouched for longer than this (PREFIX_TICK_MS units) are treated as gone. */
  ttlTicks: { offset: 8, type: 'i32' },
  /** KV-cache size in tokens as the replica's /metrics reported it; 0 = unknown. */
  kvTokens: { offset: 12, type: 'i32' },
  /** Scraped: requests queued on the replica. */
  waiting: { offset: 16, type: 'i32' },
  /** Scraped: requests in the replica's running batch. */
  running: { offset: 20, type: 'i32' },
  /** Scraped: share of KV-cache blocks in use, in millionths. */
  kvUsagePpm: { offset: 24, type: 'i32' },
  /** Scrapes failed in a row. */
  scrapeFailures: { offset: 28, type: 'i32' },
  /** Shared-clock ms of the last successful scrape; 0 = never. */
  scrapedAtMs: { offset: 32, type: 'i64' },
} as const satisfies Record<string, FieldSpec>;

export interface RegionSpec {
  readonly name: string;
  readonly summary: string;
  /** Bytes the region needs for these parameters; the layout adds alignment padding. */
  readonly bytes: (params: LayoutParams) => number;
}

/** THE table of regions, in segment order. See the top of this file before changing it. */
export const REGIONS = [
  {
    name: 'header',
    summary: 'magic, layout version, total bytes, config generation, parameters, supervisor pid',
    bytes: () => HEADER_BYTES,
  },
  {
    name: 'workers',
    summary: 'one record per worker slot: pid, incarnation, heartbeat',
    bytes: (p) => p.workerSlots * WORKER_RECORD_BYTES,
  },
  {
    name: 'endpointKeys',
    summary: 'slot-allocation table: 64-bit hash of (provider, URL, key index) per slot, claimed by CAS',
    bytes: (p) => p.endpointCapacity * ENDPOINT_KEY_BYTES,
  },
  {
    name: 'endpointStats',
    summary: 'one record per endpoint slot: requests, failures, failure streak, ejected-until',
    bytes: (p) => p.endpointCapacity * ENDPOINT_RECORD_BYTES,
  },
  {
    name: 'endpointInFlight',
    summary: 'per-worker rows of Int32 in-flight counts, one per endpoint slot; readers sum the rows',
    bytes: (p) => p.workerSlots * inFlightRowBytes(p),
  },
  {
    name: 'limitKeys',
    summary: 'limiter slot-allocation table: 64-bit hash of a limit or quota key per slot, claimed by CAS',
    bytes: (p) => limitKeyCapacity(p) * LIMIT_KEY_BYTES,
  },
  {
    name: 'limitWindows',
    summary: 'one record per limiter slot: two sliding windows (head + ring of packed epoch/count words)',
    bytes: (p) => limitKeyCapacity(p) * LIMIT_RECORD_BYTES,
  },
  {
    name: 'limitConcurrency',
    summary: 'per limiter slot, one Int32 per worker: requests that worker holds; readers sum them',
    bytes: (p) => limitKeyCapacity(p) * limitConcurrencyBlockBytes(p),
  },
  {
    name: 'prefixIndex',
    summary: 'prefix-cache index: buckets of 8 × 32-byte (block hash, endpoint, eviction seq, time) entries',
    bytes: (p) => prefixIndexBuckets(p) * PREFIX_INDEX_WAYS * PREFIX_ENTRY_BYTES,
  },
  {
    name: 'prefixEndpoints',
    summary: 'one record per endpoint slot: modelled KV cache (eviction clock, capacity, TTL) and scraped replica metrics',
    bytes: (p) => p.endpointCapacity * PREFIX_ENDPOINT_RECORD_BYTES,
  },
] as const satisfies readonly RegionSpec[];

export type RegionName = (typeof REGIONS)[number]['name'];

export interface RegionExtent {
  readonly offset: number;
  readonly bytes: number;
}

/** Where everything is, for one set of parameters. */
export interface Layout {
  readonly version: number;
  readonly params: LayoutParams;
  readonly totalBytes: number;
  readonly regions: Readonly<Record<RegionName, RegionExtent>>;
}

/** The segment is not one this build can use: wrong magic, version or size. */
export class LayoutError extends Error {
  override readonly name = 'LayoutError';
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

function checkParams(params: LayoutParams): void {
  for (const key of Object.keys(LAYOUT_LIMITS) as (keyof LayoutParams)[]) {
    const value = params[key];
    // Optional parameters (added after v2) may be absent: their default applies.
    if (value === undefined && (key === 'limitKeyCapacity' || key === 'prefixIndexEntries')) continue;
    const { min, max } = LAYOUT_LIMITS[key];
    if (value === undefined || !Number.isInteger(value) || value < min || value > max) {
      throw new LayoutError(`shared-memory layout: ${key} must be an integer in [${min}, ${max}], got ${value}`);
    }
  }
}

/** Computes every region's offset from the table. Pure: same parameters, same layout, any process. */
export function computeLayout(partial: Partial<LayoutParams> = {}): Layout {
  const params: LayoutParams = { ...DEFAULT_LAYOUT_PARAMS, ...partial };
  checkParams(params);
  const regions = {} as Record<RegionName, RegionExtent>;
  let offset = 0;
  for (const region of REGIONS) {
    offset = alignUp(offset, CACHE_LINE_BYTES);
    const bytes = region.bytes(params);
    regions[region.name] = { offset, bytes };
    offset += bytes;
  }
  return { version: LAYOUT_VERSION, params, totalBytes: alignUp(offset, PAGE_BYTES), regions };
}

/** Index of a header field in an Int32Array / BigInt64Array over the whole buffer. */
function i32(field: FieldSpec): number {
  return field.offset / FIELD_BYTES.i32;
}
function i64(field: FieldSpec): number {
  return field.offset / FIELD_BYTES.i64;
}

export interface HeaderInit {
  readonly supervisorPid: number;
  readonly createdAtMs: number;
}

/**
 * Fills the header of a freshly created (zero-filled) segment. Everything else first, magic last with
 * a sequentially consistent store: a reader that loads the magic with Atomics also sees the fields
 * written before it, so "magic present" means "header complete".
 */
export function writeHeader(buffer: ArrayBuffer, layout: Layout, init: HeaderInit): void {
  if (buffer.byteLength !== layout.totalBytes) {
    throw new LayoutError(`shared-memory segment is ${buffer.byteLength} bytes, layout needs ${layout.totalBytes}`);
  }
  const h32 = new Int32Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i32);
  const h64 = new BigInt64Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i64);
  Atomics.store(h32, i32(HEADER_FIELDS.layoutVersion), layout.version);
  Atomics.store(h64, i64(HEADER_FIELDS.totalBytes), BigInt(layout.totalBytes));
  Atomics.store(h64, i64(HEADER_FIELDS.configGeneration), 0n);
  Atomics.store(h32, i32(HEADER_FIELDS.workerSlots), layout.params.workerSlots);
  Atomics.store(h32, i32(HEADER_FIELDS.endpointCapacity), layout.params.endpointCapacity);
  Atomics.store(h32, i32(HEADER_FIELDS.limitKeyCapacity), layout.params.limitKeyCapacity ?? 0);
  Atomics.store(h32, i32(HEADER_FIELDS.prefixIndexEntries), layout.params.prefixIndexEntries ?? 0);
  Atomics.store(h32, i32(HEADER_FIELDS.supervisorPid), init.supervisorPid);
  Atomics.store(h64, i64(HEADER_FIELDS.createdAtMs), BigInt(Math.trunc(init.createdAtMs)));
  Atomics.store(h32, i32(HEADER_FIELDS.magic), LAYOUT_MAGIC);
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/**
 * Reads and checks the header of an opened segment and returns its layout. Every mismatch is a
 * LayoutError saying what differs and what to do, because the usual cause is operational (a segment
 * left by another Sluice version, or a name pointing at something else), not a bug.
 */
export function readLayout(buffer: ArrayBuffer, name = 'segment'): Layout {
  if (buffer.byteLength < HEADER_BYTES) {
    throw new LayoutError(`${name} is ${buffer.byteLength} bytes, smaller than a Sluice header: not a Sluice segment`);
  }
  const h32 = new Int32Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i32);
  const h64 = new BigInt64Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i64);
  const magic = Atomics.load(h32, i32(HEADER_FIELDS.magic));
  if (magic !== LAYOUT_MAGIC) {
    throw new LayoutError(
      `${name} has magic ${hex(magic)}, expected ${hex(LAYOUT_MAGIC)}: not a Sluice segment, or its creator has not finished initialising it`,
    );
  }
  const version = Atomics.load(h32, i32(HEADER_FIELDS.layoutVersion));
  if (version !== LAYOUT_VERSION) {
    throw new LayoutError(
      `${name} has layout version ${version}, this Sluice build uses ${LAYOUT_VERSION}: it was made by a different Sluice version; stop that gateway (or remove the stale segment) and start again`,
    );
  }
  const storedLimitKeys = Atomics.load(h32, i32(HEADER_FIELDS.limitKeyCapacity));
  const storedPrefixEntries = Atomics.load(h32, i32(HEADER_FIELDS.prefixIndexEntries));
  const params: LayoutParams = {
    workerSlots: Atomics.load(h32, i32(HEADER_FIELDS.workerSlots)),
    endpointCapacity: Atomics.load(h32, i32(HEADER_FIELDS.endpointCapacity)),
    ...(storedLimitKeys === 0 ? {} : { limitKeyCapacity: storedLimitKeys }),
    ...(storedPrefixEntries === 0 ? {} : { prefixIndexEntries: storedPrefixEntries }),
  };
  let layout: Layout;
  try {
    layout = computeLayout(params);
  } catch (err) {
    throw new LayoutError(`${name} has a corrupt header: ${(err as Error).message}`);
  }
  const recorded = Atomics.load(h64, i64(HEADER_FIELDS.totalBytes));
  if (recorded !== BigInt(layout.totalBytes) || buffer.byteLength !== layout.totalBytes) {
    throw new LayoutError(
      `${name} size mismatch: header says ${recorded} bytes, mapping is ${buffer.byteLength}, layout v${LAYOUT_VERSION} needs ${layout.totalBytes}`,
    );
  }
  return layout;
}

/** The header's config generation and supervisor pid, with views made once. */
export class SegmentHeader {
  private readonly h32: Int32Array;
  private readonly h64: BigInt64Array;

  constructor(buffer: ArrayBuffer) {
    this.h32 = new Int32Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i32);
    this.h64 = new BigInt64Array(buffer, 0, HEADER_BYTES / FIELD_BYTES.i64);
  }

  get configGeneration(): bigint {
    return Atomics.load(this.h64, i64(HEADER_FIELDS.configGeneration));
  }

  set configGeneration(value: bigint) {
    Atomics.store(this.h64, i64(HEADER_FIELDS.configGeneration), value);
  }

  /** Adds one and returns the new generation; safe even if two processes bump at once. */
  bumpConfigGeneration(): bigint {
    return Atomics.add(this.h64, i64(HEADER_FIELDS.configGeneration), 1n) + 1n;
  }

  get supervisorPid(): number {
    return Atomics.load(this.h32, i32(HEADER_FIELDS.supervisorPid));
  }

  get createdAtMs(): number {
    return Number(Atomics.load(this.h64, i64(HEADER_FIELDS.createdAtMs)));
  }
}
