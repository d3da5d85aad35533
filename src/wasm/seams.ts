/**
 * What the Wasm host needs from the rest of the gateway, as interfaces injected at construction. The
 * in-process implementations (in-process-stores.ts) serve one worker; the gateway may replace them
 * with shared-memory ones so every worker sees the same data, queues and metrics.
 */

import type { MetricKind } from './abi-constants.js';
import type { HeaderPairs } from './header-map.js';

export interface SharedValue {
  value: Uint8Array;
  /** Non-zero; changes on every successful set. */
  cas: number;
}

/**
 * proxy_get_shared_data / proxy_set_shared_data: one key space per VM id. `full` (no room for the key
 * or the value) reaches the plugin as INTERNAL_FAILURE.
 */
export interface SharedDataStore {
  get(vmId: string, key: string): SharedValue | undefined;
  /**
   * `cas` 0 writes unconditionally; otherwise the write only happens when it equals the stored
   * value's cas (a missing key has none, so any non-zero cas then mismatches).
   */
  set(vmId: string, key: string, value: Uint8Array, cas: number): 'ok' | 'cas_mismatch' | 'full';
}

/** proxy_register/resolve/enqueue/dequeue_shared_queue; queue ids are unique across VM ids. */
export interface SharedQueueStore {
  /** Creates the queue or opens the existing one of that name; undefined when no room is left. */
  register(vmId: string, name: string): number | undefined;
  resolve(vmId: string, name: string): number | undefined;
  enqueue(queueId: number, value: Uint8Array): 'ok' | 'not_found' | 'full';
  dequeue(queueId: number): Uint8Array | 'empty' | 'not_found';
  /**
   * Calls `listener` after each enqueue on `queueId` (never synchronously inside `enqueue`, so a
   * plugin that enqueues is not re-entered). Returns the unsubscribe function.
   */
  onReady(queueId: number, listener: () => void): () => void;
}

export interface HttpCallRequest {
  /** The upstream's configured name, as the plugin passed it. */
  upstream: string;
  /** Include `:method`, `:path` and `:authority`. */
  headers: HeaderPairs;
  body: Uint8Array;
  trailers: HeaderPairs;
  timeoutMs: number;
}

export interface HttpCallResponse {
  status: number;
  headers: HeaderPairs;
  body: Uint8Array;
  trailers: HeaderPairs;
}

/** proxy_http_call: requests to named upstreams only, never to an address the plugin chose. */
export interface HttpCaller {
  /** Checked synchronously so the ABI call can return BadArgument for an unknown name. */
  has(upstream: string): boolean;
  /** Rejects on failure or timeout; the host then reports a failed call (0 headers) to the plugin. */
  call(request: HttpCallRequest): Promise<HttpCallResponse>;
}

/** proxy_define_metric and friends. Names are the plugin's; the sink may prefix or sanitize them. */
export interface MetricSink {
  /** The metric's id; `bad_argument` for a name the sink cannot hold, `full` when no room is left. */
  define(kind: MetricKind, name: string): number | 'bad_argument' | 'full';
  /** False when the id is unknown. */
  increment(id: number, delta: bigint): 'ok' | 'not_found' | 'bad_argument';
  record(id: number, value: bigint): 'ok' | 'not_found';
  get(id: number): bigint | undefined;
}

/** An HttpCaller with no upstreams: every proxy_http_call returns BadArgument. */
export const noHttpCaller: HttpCaller = {
  has: () => false,
  call: () => Promise.reject(new Error('no upstreams are configured for plugin HTTP calls')),
};
