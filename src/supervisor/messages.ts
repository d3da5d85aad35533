/** The IPC protocol between the supervisor and its workers (Node's child_process channel). */

import type { ConfigInput } from '../config/schema.js';
import type { RuntimeKey } from '../governance/consumers.js';
import type { MetricsSnapshot } from '../observability/metrics.js';
import type { CacheRecord } from '../cache/cache-entry.js';

export type ToWorker =
  | {
      type: 'start';
      index: number;
      config: ConfigInput;
      generation: number;
      host: string;
      port: number;
      shm: string;
      keys: RuntimeKey[];
      /** The Wasm plugins' segment (shared data, queues, metrics). */
      pluginShm?: string;
      /** Relative plugin paths are resolved against it (the config file's directory). */
      baseDir?: string;
    }
  /** The whole set of runtime keys, after any change. */
  | { type: 'keys'; keys: RuntimeKey[] }
  | { type: 'config'; config: ConfigInput; generation: number }
  | { type: 'drain'; graceMs: number }
  | { type: 'stats'; id: number }
  /** This worker's metrics, for the supervisor's aggregated /metrics. */
  | { type: 'metrics'; id: number }
  /** A response-cache entry a sibling stored (one cache for all workers). */
  | { type: 'cache-record'; record: CacheRecord }
  /** Part of a sibling's entries, for a worker that just started. */
  | { type: 'cache-records'; records: CacheRecord[] }
  /** Send your entries for worker `to` (as `cache-dump` replies). */
  | { type: 'cache-dump'; to: number };

export type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'fatal'; message: string; configError?: boolean }
  | { type: 'config-applied'; generation: number }
  | { type: 'config-failed'; generation: number; message: string }
  | { type: 'stats'; id: number; inFlight: number }
  | { type: 'metrics'; id: number; snapshot: MetricsSnapshot }
  /** An entry this worker stored, for its siblings. */
  | { type: 'cache-record'; record: CacheRecord }
  /** Part of this worker's entries, for worker `to`. */
  | { type: 'cache-dump'; to: number; records: CacheRecord[] };
