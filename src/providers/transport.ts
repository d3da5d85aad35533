/**
 * How bytes reach an upstream. The HTTP transport (undici) serves every real provider; the mock
 * transport answers in-process with the same wire bytes a real server would send, so the rest of
 * the gateway cannot tell them apart.
 *
 * The handler is callback-based, modelled on undici's dispatcher handlers: data streams through
 * without buffering and `onData` returning false pauses the upstream until `resume()` is called.
 */

import type { GatewayError } from '../errors.js';

export interface UpstreamTimeouts {
  /** TCP/TLS connect. */
  connectMs: number;
  /** From request sent to response headers (time to first byte). */
  firstByteMs: number;
  /** Longest silence between two body chunks. */
  idleMs: number;
  /** Longest whole request, all attempts included: enforced by the attempt loop, not the transport. */
  totalMs?: number | undefined;
}

export interface UpstreamRequest {
  /** Scheme, host and port, e.g. `https://api.openai.com`. */
  origin: string;
  /** Path with query, e.g. `/v1/chat/completions`. */
  path: string;
  method: 'GET' | 'POST';
  /** Lower-case names. */
  headers: Record<string, string>;
  body: Uint8Array | string | null;
  timeouts: UpstreamTimeouts;
}

export interface UpstreamHandler {
  /** Response status and headers (names lower-case). Called once, before any data. */
  onHeaders(status: number, headers: Record<string, string>): void;
  /** A body chunk. Return false to pause the upstream until `Exchange.resume()`. */
  onData(chunk: Uint8Array): boolean;
  /** The body ended normally. */
  onEnd(): void;
  /** The exchange failed (connect error, timeout, reset). Called at most once, and never after onEnd. */
  onError(error: GatewayError): void;
}

/** A request in flight. */
export interface Exchange {
  /** Stop the exchange; no handler callback follows. Safe to call more than once. */
  abort(): void;
  /** Resume a body paused by `onData` returning false. */
  resume(): void;
}

export interface Transport {
  send(request: UpstreamRequest, handler: UpstreamHandler): Exchange;
  /** Release connections (at shutdown or when a config snapshot is retired). */
  close(): Promise<void>;
}
