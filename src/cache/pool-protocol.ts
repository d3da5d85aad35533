/**
 * The messages between the cache pool client (request threads) and its task files in `workers/`.
 * Structured-clone data only; times are absolute (epoch ms) because every thread has its own
 * `performance.timeOrigin`.
 */

import type { EmbedderConfig, VerifierConfig } from './config.js';
import type { IndexItem, IndexSpec, SearchQuery, SearchResult, VectorSource } from './semantic-index.js';

/** Wall-clock ms with sub-ms precision, comparable across threads. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface EmbedWorkerData {
  embedder: EmbedderConfig;
}

export type EmbedTask =
  | { op: 'info' }
  /** `deadline`: epoch ms after which the result is useless; the worker skips the work. */
  | { op: 'embed'; texts: string[]; deadline: number };

export type EmbedInfo =
  | { ok: true; id: string; dimensions: number; loadMs: number; warmEmbedMs: number }
  | { ok: false; error: string };

export type EmbedReply = { expired: true } | { expired: false; vectors: Float32Array[]; ms: number };

export interface IndexWorkerData {
  spec: IndexSpec;
  maxNamespaces: number;
  /** Absent: no verifier (threshold only). */
  verifier: VerifierConfig | undefined;
}

export type IndexTask =
  | { op: 'add'; source: VectorSource; items: { namespace: string; item: IndexItem }[] }
  | { op: 'remove'; items: { namespace: string; entryKey: string }[] }
  | { op: 'search'; namespace: string; source: VectorSource; query: SearchQuery; deadline: number }
  | { op: 'purge'; nowMs: number }
  | { op: 'stats' }
  | { op: 'clear' };

/** Every index reply names the thread's index instance, so the client notices a replaced thread. */
export interface IndexReply<T> {
  instance: string;
  result: T;
}

export type IndexSearchReply = IndexReply<(SearchResult & { expired?: false }) | { expired: true }>;
