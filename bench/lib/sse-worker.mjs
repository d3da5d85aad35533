/**
 * Worker thread: a closed-loop streaming client (undici Pool, one request in flight per
 * connection) that times each stream's first event.
 *
 * TTFT = request dispatched → first body chunk that contains a `data:` line (bytes as they arrive,
 * no SSE parsing on the hot path). A stream counts as complete when it ends with `data: [DONE]`.
 *
 * workerData: { origin, path, headers, body, connections, warmupSeconds, durationSeconds }
 * result: { streams, ok, non2xx, errors, incomplete, durationSeconds, rps, ttftMs, latencyMs, firstError }
 */

import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { SampleBuffer, summarize } from './stats.mjs';

const { origin, path, headers, body, connections, warmupSeconds = 1, durationSeconds } = workerData;

const DATA = Buffer.from('data:');
const DONE = Buffer.from('[DONE]');
/** Bytes kept between chunks, so a marker split across two chunks is still found. */
const CARRY = 16;

/** One streamed exchange, as an undici dispatch handler. */
class StreamTimer {
  constructor(startedAt, done) {
    this.startedAt = startedAt;
    this.done = done;
    this.status = 0;
    this.ttft = -1;
    /** The last bytes seen: where the next marker search starts, and where [DONE] is looked for. */
    this.tail = Buffer.alloc(0);
  }

  onRequestStart() {}

  onResponseStart(_controller, statusCode) {
    this.status = statusCode;
  }

  onResponseData(_controller, chunk) {
    if (this.ttft < 0) {
      const joined = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
      if (joined.indexOf(DATA) !== -1) this.ttft = performance.now() - this.startedAt;
    }
    // A copy: the chunk's memory may be reused once this callback returns.
    const last = chunk.length >= CARRY ? chunk.subarray(chunk.length - CARRY) : Buffer.concat([this.tail, chunk]).subarray(-CARRY);
    this.tail = Buffer.from(last);
  }

  onResponseEnd() {
    this.done(null, this);
  }

  onResponseError(_controller, err) {
    this.done(err, this);
  }
}

function oneStream(pool) {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const timer = new StreamTimer(startedAt, (err, t) => resolve({ err, t, latency: performance.now() - startedAt }));
    pool.dispatch({ origin, path, method: 'POST', headers, body }, timer);
  });
}

async function phase(pool, seconds, record) {
  const stats = { streams: 0, ok: 0, non2xx: 0, errors: 0, incomplete: 0, firstError: null };
  const ttft = new SampleBuffer(1 << 14);
  const latency = new SampleBuffer(1 << 14);
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const user = async () => {
    while (performance.now() < deadline) {
      const { err, t, latency: ms } = await oneStream(pool);
      stats.streams++;
      if (err) {
        stats.errors++;
        stats.firstError ??= err.message;
        continue;
      }
      if (t.status < 200 || t.status >= 300) {
        stats.non2xx++;
        stats.firstError ??= `HTTP ${t.status}`;
        continue;
      }
      if (t.ttft < 0 || t.tail.indexOf(DONE) === -1) {
        stats.incomplete++;
        stats.firstError ??= 'stream ended without data: [DONE]';
        continue;
      }
      stats.ok++;
      if (record) {
        ttft.push(t.ttft);
        latency.push(ms);
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, user));
  const wall = (performance.now() - started) / 1000;
  return { ...stats, durationSeconds: wall, rps: stats.ok / wall, ttftMs: summarize(ttft.values()), latencyMs: summarize(latency.values()) };
}

const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
try {
  if (warmupSeconds > 0) await phase(pool, warmupSeconds, false);
  parentPort.postMessage({ type: 'measure-start' });
  const result = await phase(pool, durationSeconds, true);
  parentPort.postMessage({ type: 'result', result });
} catch (err) {
  parentPort.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
} finally {
  await pool.close().catch(() => undefined);
}
