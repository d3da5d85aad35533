/**
 * Reads a running gateway's per-endpoint counters straight from its shared-memory segment: requests
 * in flight (summed over all workers, exactly what least-request compares), requests sent and
 * failures. Read-only (no worker row), so it changes nothing the gateway sees, and it costs the
 * gateway nothing: no admin round trip, no extra hop in front of the upstreams.
 *
 * `sample()` on a timer gives time-averaged and peak in-flight per endpoint; `snapshot()` before and
 * after a run gives requests and failures per endpoint in between.
 */

import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './sluice.mjs';

const SHM_MODULE = new URL('dist/src/shm/index.js', pathToFileURL(REPO_ROOT)).href;
const BALANCER_MODULE = new URL('dist/src/routing/balancer.js', pathToFileURL(REPO_ROOT)).href;

export class EndpointSampler {
  /**
   * @param {{ port: number, supervisorPid: number, provider: string, endpoints: { name: string, url: string }[] }} target
   *   `port` and `supervisorPid` name the segment (`/sluice-PORT-PID`); `url` is each endpoint's
   *   configured base URL, which with the provider name is its shared-memory identity.
   */
  static async open({ port, supervisorPid, provider, endpoints }) {
    const shmModule = await import(SHM_MODULE);
    const { endpointSlotIdentity } = await import(BALANCER_MODULE);
    const shm = shmModule.SharedMemory.open(shmModule.segmentName(port, supervisorPid));
    const slots = endpoints.map((e) => {
      const slot = shm.slots.find(endpointSlotIdentity(provider, e.url));
      if (slot < 0) throw new Error(`endpoint ${e.url} has no shared-memory slot yet: has the gateway built its routes?`);
      return slot;
    });
    return new EndpointSampler(shm, endpoints, slots);
  }

  constructor(shm, endpoints, slots) {
    this.shm = shm;
    this.endpoints = endpoints;
    this.slots = slots;
    this.reset();
  }

  reset() {
    this.samples = 0;
    this.sums = this.slots.map(() => 0);
    this.peaks = this.slots.map(() => 0);
  }

  sample() {
    this.samples++;
    for (let i = 0; i < this.slots.length; i++) {
      const n = this.shm.endpoints.inFlight(this.slots[i]);
      this.sums[i] += n;
      if (n > this.peaks[i]) this.peaks[i] = n;
    }
  }

  /** Samples every `intervalMs` until the returned function is called. */
  every(intervalMs) {
    const timer = setInterval(() => this.sample(), intervalMs);
    return () => clearInterval(timer);
  }

  /** Requests and failures counted so far per endpoint (BigInt counters as numbers). */
  snapshot() {
    return this.slots.map((slot) => ({
      requests: Number(this.shm.endpoints.totalRequests(slot)),
      failures: Number(this.shm.endpoints.totalFailures(slot)),
    }));
  }

  /**
   * Per endpoint between `before` and `after` snapshots: requests, failures, share of requests,
   * mean and peak in-flight over the samples taken since the last reset.
   */
  report(before, after) {
    const rows = this.endpoints.map((e, i) => ({
      name: e.name,
      requests: after[i].requests - before[i].requests,
      failures: after[i].failures - before[i].failures,
      meanInFlight: this.samples ? this.sums[i] / this.samples : NaN,
      peakInFlight: this.peaks[i],
    }));
    const total = rows.reduce((s, r) => s + r.requests, 0);
    for (const r of rows) r.sharePercent = total ? (100 * r.requests) / total : NaN;
    const means = rows.map((r) => r.meanInFlight);
    const max = Math.max(...means);
    const min = Math.min(...means);
    return { samples: this.samples, endpoints: rows, inFlightMaxMinRatio: min > 0 ? max / min : Infinity };
  }
}
