import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';

import { nativeWindows } from '../../src/shm/segment.js';
import {
  CACHE_LINE_BYTES,
  computeLayout,
  createSegment,
  ENDPOINT_FIELDS,
  ENDPOINT_RECORD_BYTES,
  type EndpointIdentity,
  type FieldSpec,
  HEADER_BYTES,
  HEADER_FIELDS,
  LAYOUT_MAGIC,
  LAYOUT_VERSION,
  LayoutError,
  listSegments,
  openSegment,
  REGIONS,
  removeStaleSegments,
  segmentName,
  segmentOwnerPid,
  sharedClockMs,
  SharedMemory,
  unlinkSegment,
  WORKER_FIELDS,
  WORKER_RECORD_BYTES,
} from '../../src/shm/index.js';

// ---------------------------------------------------------------------------------------------
// Helpers: every segment and child made here is tracked and removed in `after`, even on failure.

/** The compiled module children import: dist/test/shm/ → dist/src/shm/index.js. */
const SHM_MODULE = new URL('../../src/shm/index.js', import.meta.url).href;

/** A label unique to this run, so parallel runs and real gateways never see our segments. */
const RUN = `t${process.pid}x${randomBytes(3).toString('hex')}`;
let serial = 0;

const segments = new Set<string>();
const children = new Set<ChildProcess>();

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const name of segments) unlinkSegment(name);
  // Nothing of this run may be left in /dev/shm, whatever the tests did.
  assert.deepEqual(listSegments(`/sluice-${RUN}`), []);
});

/** A fresh segment name owned by this process. */
function freshName(): string {
  const name = segmentName(`${RUN}.${++serial}`);
  segments.add(name);
  return name;
}

interface Child {
  readonly process: ChildProcess;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Resolves with the first stdout line (children report readiness or results as one JSON line). */
  readonly firstLine: Promise<string>;
  output(): string;
}

/** Runs ESM `code` in a new node process with the shm module's URL in SHM_MODULE. */
function runChild(code: string, env: Record<string, string> = {}, execArgv: string[] = []): Child {
  const child = spawn(process.execPath, [...execArgv, '--input-type=module', '-e', code], {
    env: { ...process.env, SHM_MODULE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve(out.slice(0, newline));
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      err += chunk;
    });
    void exited.then(([code, signal]) => reject(new Error(`child exited (${code ?? signal}) before a line; stderr: ${err}`)));
  });
  firstLine.catch(() => {});
  return { process: child, exited, firstLine, output: () => out };
}

async function expectCleanExit(child: Child): Promise<void> {
  const [code, signal] = await child.exited;
  assert.equal(code, 0, `child failed with ${code ?? signal}`);
}

function identity(n: number): EndpointIdentity {
  return { provider: 'openai', url: `https://upstream-${n}.example/v1`, keyIndex: n % 3 };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// ---------------------------------------------------------------------------------------------

describe('native segment', () => {
  it('creates zero-filled, opens the same bytes, refuses duplicates, unlinks', () => {
    const name = freshName();
    const created = createSegment(name, 10_000);
    assert.ok(created instanceof ArrayBuffer);
    assert.equal(created.byteLength, 10_000);
    assert.ok(new Uint8Array(created).every((byte) => byte === 0));

    const opened = openSegment(name);
    assert.equal(opened.byteLength, 10_000, 'open takes the size from the segment');
    new Int32Array(created)[7] = 1234;
    assert.equal(new Int32Array(opened)[7], 1234, 'two mappings of one segment share memory');

    assert.throws(() => createSegment(name, 4096), (err: NodeJS.ErrnoException) => err.code === 'EEXIST' && /File exists/.test(err.message));
    assert.deepEqual(listSegments(name), [name]);

    assert.equal(unlinkSegment(name), true);
    assert.equal(unlinkSegment(name), false, 'a second unlink finds nothing');
    assert.throws(() => openSegment(name), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    assert.equal(new Int32Array(opened)[7], 1234, 'existing mappings outlive the name');
  });

  it('validates names and sizes', () => {
    for (const bad of ['sluice-x', '/', '/..', '/.hidden', '/a/b', '/a b', `/${'a'.repeat(201)}`]) {
      assert.throws(() => createSegment(bad, 4096), TypeError, bad);
    }
    const name = freshName();
    for (const bytes of [0, -1, 1.5, 2 ** 31]) {
      assert.throws(() => createSegment(name, bytes), TypeError, String(bytes));
    }
    assert.equal(listSegments(name).length, 0, 'a refused create leaves nothing');
  });

  it('unmaps when the ArrayBuffer is collected', async () => {
    const name = freshName();
    createSegment(name, 1 << 20);
    const child = runChild(
      `
      import { readFileSync } from 'node:fs';
      const { openSegment } = await import(process.env.SHM_MODULE);
      const mappings = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes(process.env.NAME)).length;
      for (let i = 0; i < 50; i++) openSegment(process.env.NAME);
      const before = mappings();
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log(JSON.stringify({ before, after: mappings() }));
      `,
      { NAME: name },
      ['--expose-gc'],
    );
    const { before, after: remaining } = JSON.parse(await child.firstLine) as { before: number; after: number };
    await expectCleanExit(child);
    assert.ok(before >= 40, `50 opens made ${before} mappings`);
    assert.equal(remaining, 0, 'every collected buffer was unmapped');
  });
});

describe('native window charges', () => {
  it('refuse a handle that is not theirs, a misaligned region and a window outside it', () => {
    const native = nativeWindows();
    const buffer = new ArrayBuffer(8 * 64);
    const out = new Float64Array(2);
    assert.throws(() => native.windowsAttach(buffer, 4, 64, out), RangeError, 'misaligned');
    assert.throws(() => native.windowsAttach(buffer, 0, 8 * 65, out), RangeError, 'past the buffer');
    assert.throws(() => native.windowsAttach(buffer, 0, 64, new Float64Array(1)), TypeError, 'out too short');
    const handle = native.windowsAttach(buffer, 64, 8 * 8, out); // 8 words: a head and a ring of up to 7
    assert.equal(native.windowsCharge(handle, 0, 0, 7, 5, 3, 10), 5);
    assert.deepEqual([...out], [0, 5], 'usage seen before the charge, and its epoch');
    assert.equal(native.windowsCharge(handle, 0, 0, 7, 5, 8, 10), -1, 'over the limit');
    assert.deepEqual([...out], [3, 5]);
    assert.equal(native.windowsRefund(handle, 0, 0, 7, 5, 5, 2), 1);
    assert.equal(native.windowsCharge(handle, 0, 0, 7, 5, 0, 10), 5);
    assert.equal(out[0], 1);
    assert.equal(new BigInt64Array(buffer)[0], 0n, 'the region starts at byteOffset');
    assert.throws(() => native.windowsCharge(handle, 1, 0, 7, 5, 1, 10), RangeError, 'ring past the region');
    assert.throws(() => native.windowsCharge(handle, -1, 0, 1, 5, 1, 10), RangeError, 'negative head');
    assert.throws(() => native.windowsCharge(handle, 0, 11, 1, 5, 1, 10), RangeError, 'unknown packing');
    assert.throws(() => native.windowsCharge(handle, 0, 0, 1, 5, 2 ** 40, Infinity), RangeError, 'count beyond 32 bits');
    assert.throws(() => native.windowsCharge({} as never, 0, 0, 1, 5, 1, 10), TypeError, 'not a handle');
    assert.throws(() => (native.windowsCharge as (...a: unknown[]) => number)(handle, 0, 0), TypeError, 'missing arguments');
  });
});

describe('layout', () => {
  const records: [string, Record<string, FieldSpec>, number][] = [
    ['header', HEADER_FIELDS, HEADER_BYTES],
    ['worker', WORKER_FIELDS, WORKER_RECORD_BYTES],
    ['endpoint', ENDPOINT_FIELDS, ENDPOINT_RECORD_BYTES],
  ];

  it('aligns every field to its width and keeps fields inside their record without overlap', () => {
    for (const [record, fields, bytes] of records) {
      const spans = Object.entries(fields)
        .map(([field, spec]) => ({ field, start: spec.offset, end: spec.offset + (spec.type === 'i64' ? 8 : 4), width: spec.type === 'i64' ? 8 : 4 }))
        .sort((a, b) => a.start - b.start);
      for (const [i, span] of spans.entries()) {
        assert.equal(span.start % span.width, 0, `${record}.${span.field} is aligned to ${span.width}`);
        assert.ok(span.end <= bytes, `${record}.${span.field} fits in ${bytes} bytes`);
        if (i > 0) assert.ok(spans[i - 1]!.end <= span.start, `${record}.${spans[i - 1]!.field} and ${span.field} overlap`);
      }
      assert.equal(bytes % CACHE_LINE_BYTES, 0, `${record} stride is whole cache lines`);
    }
  });

  it('places regions in table order, 64-byte aligned, non-overlapping, inside a whole-page segment', () => {
    const paramSets = [
      {},
      { workerSlots: 1, endpointCapacity: 1 },
      { workerSlots: 3, endpointCapacity: 17 },
      { workerSlots: 1024, endpointCapacity: 65536 },
    ];
    for (const params of paramSets) {
      const layout = computeLayout(params);
      assert.equal(layout.version, LAYOUT_VERSION);
      assert.equal(layout.totalBytes % 4096, 0);
      let end = 0;
      for (const spec of REGIONS) {
        const region = layout.regions[spec.name];
        assert.equal(region.offset % CACHE_LINE_BYTES, 0, `${spec.name} offset aligned`);
        assert.ok(region.offset >= end, `${spec.name} starts after the previous region`);
        assert.ok(region.bytes > 0);
        end = region.offset + region.bytes;
      }
      assert.ok(end <= layout.totalBytes);
    }
    const defaults = computeLayout();
    assert.deepEqual(defaults.params, { workerSlots: 64, endpointCapacity: 1024 });
    assert.equal(defaults.regions.endpointInFlight.bytes, 64 * 1024 * 4, 'one Int32 per worker per slot');
    assert.throws(() => computeLayout({ endpointCapacity: 0 }), LayoutError);
    assert.throws(() => computeLayout({ workerSlots: 1.5 }), LayoutError);
  });

  it('checks magic, version and size on open with a clear error', () => {
    const raw = freshName();
    createSegment(raw, 8192);
    const layoutError = (pattern: RegExp) => (err: Error) => err instanceof LayoutError && pattern.test(err.message);
    assert.throws(() => SharedMemory.open(raw), layoutError(/magic 0x00000000, expected 0x534c4345: not a Sluice segment/));

    const name = freshName();
    const shm = SharedMemory.create(name, { workerSlots: 2, endpointCapacity: 8 });
    const header = new Int32Array(shm.buffer, 0, 2);
    assert.equal(header[0], LAYOUT_MAGIC);
    const opened = SharedMemory.open(name);
    assert.deepEqual(opened.layout, shm.layout, 'open recomputes the creator\'s layout from the header');

    Atomics.store(header, 1, LAYOUT_VERSION + 1);
    assert.throws(() => SharedMemory.open(name), layoutError(new RegExp(`layout version ${LAYOUT_VERSION + 1}, this Sluice build uses ${LAYOUT_VERSION}`)));
    Atomics.store(header, 1, LAYOUT_VERSION);
    Atomics.store(new Int32Array(shm.buffer), HEADER_FIELDS.endpointCapacity.offset / 4, 1000);
    assert.throws(() => SharedMemory.open(name), layoutError(/size mismatch/));
    Atomics.store(new Int32Array(shm.buffer), HEADER_FIELDS.endpointCapacity.offset / 4, 0);
    assert.throws(() => SharedMemory.open(name), layoutError(/corrupt header: .*endpointCapacity/));

    assert.throws(() => SharedMemory.create(name), (err: NodeJS.ErrnoException) => err.code === 'EEXIST', 'create never reuses a name');
  });
});

describe('counters', () => {
  it('config generation, failure streaks and ejection are shared between mappings', () => {
    const name = freshName();
    const a = SharedMemory.create(name, { workerSlots: 2, endpointCapacity: 8 }, { workerIndex: 0 });
    const b = SharedMemory.open(name, { workerIndex: 1 });

    assert.equal(b.configGeneration, 0n);
    a.configGeneration = 41n;
    assert.equal(b.header.bumpConfigGeneration(), 42n);
    assert.equal(a.configGeneration, 42n);
    assert.equal(b.header.supervisorPid, process.pid);

    assert.equal(a.endpoints.recordFailure(3), 1);
    assert.equal(b.endpoints.recordFailure(3), 2);
    assert.equal(a.endpoints.consecutiveFailures(3), 2);
    b.endpoints.recordSuccess(3);
    assert.equal(a.endpoints.consecutiveFailures(3), 0);
    assert.equal(a.endpoints.totalFailures(3), 2n);

    assert.equal(a.endpoints.ejectedUntil(3), 0);
    assert.equal(a.endpoints.tryEject(3, 5_000, 1_000), true);
    assert.equal(b.endpoints.tryEject(3, 9_000, 1_000), false, 'only one worker ejects');
    assert.equal(b.endpoints.ejectedUntil(3), 5_000);
    assert.equal(b.endpoints.isEjected(3, 4_999), true);
    assert.equal(b.endpoints.isEjected(3, 5_000), false);
    b.endpoints.setEjectedUntil(3, 0);
    assert.equal(a.endpoints.isEjected(3), false);

    a.endpoints.acquire(5);
    assert.throws(() => a.endpoints.acquire(8), RangeError, 'a slot past the end would spill into the next row');
    assert.throws(() => b.endpoints.release(5), /without a matching acquire/);
    assert.equal(b.endpoints.inFlight(5), 1, 'a bad release is undone');
    a.endpoints.release(5);
    assert.equal(a.endpoints.totalRequests(5), 1n);
    assert.throws(() => SharedMemory.open(name).endpoints.acquire(0), /no worker row/);
    assert.throws(() => SharedMemory.open(name, { workerIndex: 2 }), RangeError);
  });

  it('maps endpoints to stable slots and reports a full table', () => {
    const name = freshName();
    const shm = SharedMemory.create(name, { workerSlots: 1, endpointCapacity: 4 });
    const slots = [0, 1, 2, 3].map((n) => shm.slots.slotFor(identity(n)));
    assert.deepEqual([...slots].sort(), [0, 1, 2, 3]);
    assert.equal(shm.slots.slotFor(identity(2)), slots[2]);
    assert.equal(SharedMemory.open(name).slots.find(identity(1)), slots[1]);
    assert.equal(shm.slots.find(identity(9)), -1);
    assert.throws(() => shm.slots.slotFor(identity(9)), (err: Error) => err instanceof LayoutError && /table is full \(4 slots\)/.test(err.message));
    assert.equal(shm.slots.used(), 4);
  });

  it('uses one clock across processes (CLOCK_MONOTONIC, not performance.now)', async () => {
    const before = sharedClockMs();
    const child = runChild(`const { sharedClockMs } = await import(process.env.SHM_MODULE); console.log(sharedClockMs());`);
    const childNow = Number(await child.firstLine);
    const afterMs = sharedClockMs();
    await expectCleanExit(child);
    assert.ok(before <= childNow && childNow <= afterMs, `${before} <= ${childNow} <= ${afterMs}`);
  });
});

describe('across processes', () => {
  /**
   * Children wait at a barrier in the segment so their loops overlap. Atomics.wait cannot sleep on the
   * segment (not a SharedArrayBuffer), so they poll it with a 1 ms sleep on a private one.
   */
  const BARRIER = `
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const barrier = new Int32Array((await import(process.env.SHM_MODULE)).openSegment(process.env.BARRIER), 0, 2);
    const arrive = () => { Atomics.add(barrier, 0, 1); while (Atomics.load(barrier, 1) === 0) Atomics.wait(nap, 0, 0, 1); };
  `;

  /** A segment of its own for the barrier: [arrived, go]. */
  function makeBarrier(): { name: string; flags: Int32Array } {
    const name = freshName();
    return { name, flags: new Int32Array(createSegment(name, 4096), 0, 2) };
  }

  async function releaseBarrier(flags: Int32Array, count: number): Promise<void> {
    await until(() => Atomics.load(flags, 0) === count, `${count} children at the barrier`);
    Atomics.store(flags, 1, 1);
  }

  it('4 processes × 1,000,000 Atomics.add on one counter total exactly 4,000,000', async () => {
    const name = freshName();
    const barrier = makeBarrier();
    const counter = new Int32Array(createSegment(name, 4096), CACHE_LINE_BYTES, 1);
    const workers = Array.from({ length: 4 }, () =>
      runChild(
        `${BARRIER}
        const { openSegment } = await import(process.env.SHM_MODULE);
        const buffer = openSegment(process.env.NAME);
        const counter = new Int32Array(buffer, ${CACHE_LINE_BYTES}, 1);
        arrive();
        for (let i = 0; i < 1_000_000; i++) Atomics.add(counter, 0, 1);
        `,
        { NAME: name, BARRIER: barrier.name },
      ),
    );
    await releaseBarrier(barrier.flags, 4);
    await Promise.all(workers.map(expectCleanExit));
    assert.equal(Atomics.load(counter, 0), 4_000_000);
  });

  it('per-worker in-flight rows sum across processes; concurrent slot claims agree', async () => {
    const name = freshName();
    const shm = SharedMemory.create(name, { workerSlots: 4, endpointCapacity: 64 });
    const barrier = makeBarrier();
    // Each worker claims the same 40 endpoints in its own order, then works on all of them.
    const workers = [0, 1, 2, 3].map((index) =>
      runChild(
        `${BARRIER}
        const { SharedMemory } = await import(process.env.SHM_MODULE);
        const index = Number(process.env.INDEX);
        const shm = SharedMemory.open(process.env.NAME, { workerIndex: index });
        arrive();
        const ids = Array.from({ length: 40 }, (_, n) => ({ provider: 'openai', url: 'https://upstream-' + n + '.example/v1', keyIndex: n % 3 }));
        const order = index % 2 === 0 ? ids : [...ids].reverse();
        const slots = order.map((id) => [id.url + '#' + id.keyIndex, shm.slots.slotFor(id)]);
        // Leave (index + 1) requests open on each endpoint; churn 5,000 acquire/release pairs meanwhile.
        for (const [, slot] of slots) for (let k = 0; k <= index; k++) shm.endpoints.acquire(slot);
        for (let i = 0; i < 5000; i++) { const slot = slots[i % slots.length][1]; shm.endpoints.acquire(slot); shm.endpoints.release(slot); }
        console.log(JSON.stringify(Object.fromEntries(slots)));
        `,
        { NAME: name, INDEX: String(index), BARRIER: barrier.name },
      ),
    );
    await releaseBarrier(barrier.flags, 4);
    const maps = await Promise.all(workers.map(async (child) => JSON.parse(await child.firstLine) as Record<string, number>));
    await Promise.all(workers.map(expectCleanExit));

    for (const map of maps.slice(1)) assert.deepEqual(map, maps[0], 'every process got the same slot for every endpoint');
    const slots = Object.values(maps[0]!);
    assert.equal(new Set(slots).size, 40, 'distinct endpoints, distinct slots');
    for (const slot of slots) {
      assert.equal(shm.endpoints.inFlight(slot), 1 + 2 + 3 + 4, `slot ${slot}: rows summed`);
      assert.equal(shm.endpoints.workerInFlight(3, slot), 4);
    }
    const total = slots.reduce((sum, slot) => sum + shm.endpoints.totalRequests(slot), 0n);
    assert.equal(total, 40n * 10n + 4n * 5000n, 'BigInt64 request totals are exact');
  });

  it('a worker killed with SIGKILL holding 10 requests is reclaimed to zero', async () => {
    const name = freshName();
    const supervisor = SharedMemory.create(name, { workerSlots: 4, endpointCapacity: 32 }, { workerIndex: 0 });
    const ids = Array.from({ length: 10 }, (_, n) => identity(n));
    const slots = ids.map((id) => supervisor.slots.slotFor(id));
    supervisor.endpoints.acquire(slots[0]!); // another worker's request, which reclaiming must not touch

    const victim = runChild(
      `
      const { SharedMemory } = await import(process.env.SHM_MODULE);
      const shm = SharedMemory.open(process.env.NAME, { workerIndex: 2 });
      shm.workers.register(2, process.pid);
      for (let n = 0; n < 10; n++) {
        const id = { provider: 'openai', url: 'https://upstream-' + n + '.example/v1', keyIndex: n % 3 };
        shm.endpoints.acquire(shm.slots.slotFor(id));
      }
      console.log('ready');
      setInterval(() => {}, 1000); // hold the requests until killed
      `,
      { NAME: name },
    );
    assert.equal(await victim.firstLine, 'ready');
    assert.equal(supervisor.workers.pid(2), victim.process.pid);
    assert.equal(slots.reduce((sum, slot) => sum + supervisor.endpoints.inFlight(slot), 0), 11);

    victim.process.kill('SIGKILL');
    const [, signal] = await victim.exited;
    assert.equal(signal, 'SIGKILL');
    assert.equal(supervisor.endpoints.inFlight(slots[3]!), 1, 'a dead worker\'s requests stay counted until reclaimed');

    assert.equal(supervisor.reclaimWorker(2), 10);
    assert.equal(supervisor.workers.pid(2), 0);
    assert.deepEqual(slots.map((slot) => supervisor.endpoints.inFlight(slot)), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    supervisor.endpoints.release(slots[0]!);
    assert.equal(slots.reduce((sum, slot) => sum + supervisor.endpoints.inFlight(slot), 0), 0);
  });
});

describe('stale segments', () => {
  it('parses names and rejects bad labels', () => {
    assert.equal(segmentName(8080, 1234), '/sluice-8080-1234');
    assert.equal(segmentOwnerPid('/sluice-8080-1234'), 1234);
    assert.equal(segmentOwnerPid('/sluice-8080-x'), undefined);
    assert.equal(segmentOwnerPid('/other-8080-1234'), undefined);
    assert.throws(() => segmentName('a-b'), /no "-"/);
    assert.throws(() => segmentName(8080, 0), /owner pid/);
  });

  it('removes a segment whose owner is dead and keeps one whose owner lives', async () => {
    const gone = runChild('');
    await expectCleanExit(gone);
    const deadPid = gone.process.pid!;
    const label = `${RUN}.stale`;
    const dead = segmentName(label, deadPid);
    const live = segmentName(label, process.pid);
    const foreign = `/sluice-${label}-notapid`;
    for (const name of [dead, live, foreign]) {
      segments.add(name);
      createSegment(name, 4096);
    }
    assert.deepEqual(removeStaleSegments(`/sluice-${label}-`), [dead]);
    assert.deepEqual(listSegments(`/sluice-${label}-`).sort(), [live, foreign].sort(), 'live and unparseable names stay');
    assert.throws(() => removeStaleSegments('/'), /only looks under \/sluice-/);
  });
});
