/** Shared by the routing tests: a seeded random source and shared-memory segments removed in `after`. */

import { after } from 'node:test';
import { randomBytes } from 'node:crypto';

import { segmentName, SharedMemory, unlinkSegment } from '../../src/shm/index.js';

/** mulberry32: a small deterministic PRNG, so statistical tests give the same numbers every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RUN = `routing${process.pid}x${randomBytes(3).toString('hex')}`;
let serial = 0;
const created = new Set<string>();

after(() => {
  for (const name of created) unlinkSegment(name);
});

/**
 * A fresh segment as worker 0 writes it, plus `extraWorkers` more views of the same segment as
 * workers 1, 2, … (each process in production; separate views of one mapping here).
 */
export function freshSegment(extraWorkers = 0): SharedMemory[] {
  const name = segmentName(`${RUN}.${++serial}`);
  created.add(name);
  const first = SharedMemory.create(name, { workerSlots: 4, endpointCapacity: 64 }, { workerIndex: 0 });
  const views = [first];
  for (let w = 1; w <= extraWorkers; w++) views.push(SharedMemory.open(name, { workerIndex: w }));
  return views;
}
