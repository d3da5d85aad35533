/**
 * Shared by the limiter tests: segments and child processes removed in `after`, a barrier so that
 * children race for real, Redis key prefixes deleted after, and a settable clock.
 */

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';

import { Redis } from 'ioredis';

import { createSegment, type LayoutParams, listSegments, segmentName, SharedMemory, unlinkSegment } from '../../src/shm/index.js';

export const REDIS_URL = process.env.SLUICE_TEST_REDIS ?? 'redis://127.0.0.1:6379';

const RUN = `lim${process.pid}x${randomBytes(3).toString('hex')}`;
let serial = 0;
const segments = new Set<string>();
const children = new Set<ChildProcess>();
const prefixes = new Set<string>();

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const name of segments) unlinkSegment(name);
  assert.deepEqual(listSegments(`/sluice-${RUN}`), [], 'every segment of this run is removed');
  if (prefixes.size > 0) {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      for (const prefix of prefixes) {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
      }
    } finally {
      redis.disconnect();
    }
  }
});

/** A fresh segment name owned by this run. */
export function freshSegmentName(): string {
  const name = segmentName(`${RUN}.${++serial}`);
  segments.add(name);
  return name;
}

/** A fresh segment as worker 0, plus views of it as workers 1, 2, … (separate processes in production). */
export function freshSegment(extraWorkers = 0, params: Partial<LayoutParams> = { workerSlots: 4, endpointCapacity: 8, limitKeyCapacity: 64 }): SharedMemory[] {
  const name = freshSegmentName();
  const views = [SharedMemory.create(name, params, { workerIndex: 0 })];
  for (let w = 1; w <= extraWorkers; w++) views.push(SharedMemory.open(name, { workerIndex: w }));
  return views;
}

/** A Redis key prefix unique to this test, whose keys are deleted after the run. */
export function freshPrefix(): string {
  const prefix = `sluice-test:${RUN}:${++serial}:`;
  prefixes.add(prefix);
  return prefix;
}

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** A barrier in its own segment: children add to [0], then spin until [1] is set. */
export function makeBarrier(): { name: string; flags: Int32Array } {
  const name = freshSegmentName();
  return { name, flags: new Int32Array(createSegment(name, 4096), 0, 2) };
}

export async function releaseBarrier(flags: Int32Array, count: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(flags, 0) < count) {
    if (Date.now() > deadline) throw new Error(`only ${Atomics.load(flags, 0)} of ${count} children reached the barrier`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  Atomics.store(flags, 1, 1);
}

export interface Child {
  readonly process: ChildProcess;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** The first stdout line (children report as one JSON line). */
  readonly firstLine: Promise<string>;
}

/** The compiled child script (dist/test/governance/limiter-child.js), run with `env`. */
export function runLimiterChild(env: Record<string, string>): Child {
  const script = new URL('./limiter-child.js', import.meta.url);
  const child = spawn(process.execPath, [script.pathname], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve(out.slice(0, newline));
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      err += chunk;
    });
    void exited.then(([code, signal]) => reject(new Error(`child exited (${code ?? signal}) before a line; stderr: ${err}`)));
  });
  firstLine.catch(() => undefined);
  return { process: child, exited, firstLine };
}

export async function expectCleanExit(child: Child): Promise<void> {
  const [code, signal] = await child.exited;
  assert.equal(code, 0, `child failed with ${code ?? signal}`);
}
