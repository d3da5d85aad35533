/**
 * Piscina task file: embeds question texts for the semantic cache. Each pool thread loads the
 * configured embedder once, at thread start (piscina loads this module before the thread takes
 * tasks), and keeps it for its lifetime.
 *
 * A load failure is not thrown: a thread that died at start would be restarted by the pool and die
 * again, forever. It is remembered and reported by the `info` task, and the client gives up on the
 * semantic layer.
 */

import { workerData } from 'piscina';
import { createEmbedder, type Embedder } from '../src/cache/embedder.js';
import { type EmbedInfo, type EmbedReply, type EmbedTask, type EmbedWorkerData, epochMs } from '../src/cache/pool-protocol.js';

const data = workerData as EmbedWorkerData;

let embedder: Embedder | undefined;
let failure: string | undefined;
let loadMs = 0;
let warmEmbedMs = 0;

try {
  const t0 = performance.now();
  const e = await createEmbedder(data.embedder);
  await e.init();
  loadMs = performance.now() - t0;
  const t1 = performance.now();
  await e.embed(['How do I measure how long one embedding takes?']);
  warmEmbedMs = performance.now() - t1;
  embedder = e;
} catch (err) {
  failure = (err as Error).message;
}

export default async function embedTask(task: EmbedTask): Promise<EmbedInfo | EmbedReply> {
  if (task.op === 'info') {
    return embedder ? { ok: true, id: embedder.id, dimensions: embedder.dimensions, loadMs, warmEmbedMs } : { ok: false, error: failure ?? 'embedder not loaded' };
  }
  if (!embedder) throw new Error(failure ?? 'embedder not loaded');
  // Waited in the queue past its budget: the caller has already moved on.
  if (epochMs() > task.deadline) return { expired: true };
  const t0 = performance.now();
  const vectors = await embedder.embed(task.texts);
  return { expired: false, vectors, ms: performance.now() - t0 };
}
