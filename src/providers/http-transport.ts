/**
 * The transport of every real provider: HTTP/1.1 over an undici Agent with keep-alive.
 *
 * One exchange is one object that is both the undici dispatch handler and the `Exchange` handed back
 * to the caller, so a request allocates that object and its dispatch options and nothing else: no
 * closures, no promise, no stream. Body chunks are undici's own Buffers, passed on without copying,
 * and backpressure is undici's controller: `onData` returning false pauses the socket's parser.
 *
 * Failures become GatewayErrors whose messages carry at most a stable error code: never the URL (it
 * may name an internal host), a header or a key.
 */

import { Agent, type Dispatcher } from 'undici';
import { GatewayError } from '../errors.js';
import type { Exchange, Transport, UpstreamHandler, UpstreamRequest } from './transport.js';

export interface HttpTransportOptions {
  /** Most connections kept open to one origin (the provider's `max_connections`). */
  connections: number;
  /** TCP+TLS connect timeout. undici sets it per agent, so the per-request `connectMs` is not read. */
  connectTimeoutMs: number;
}

type ResponseHeaders = Record<string, string | string[] | undefined>;

/** The reason given to undici for an abort; never reaches a handler, so one instance serves all. */
const ABORTED = new GatewayError('upstream_unreachable', 'aborted');

export class HttpTransport implements Transport {
  private readonly agent: Agent;

  constructor(options: HttpTransportOptions) {
    this.agent = new Agent({
      connections: options.connections,
      connect: { timeout: options.connectTimeoutMs },
      // One request per connection at a time: LLM responses are long, and a pipelined request
      // queued behind a stream would wait for the whole stream.
      pipelining: 1,
    });
  }

  send(request: UpstreamRequest, handler: UpstreamHandler): Exchange {
    const exchange = new HttpExchange(handler);
    exchange.dispatching = true;
    this.agent.dispatch(
      {
        origin: request.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: request.body,
        headersTimeout: request.timeouts.firstByteMs,
        bodyTimeout: request.timeouts.idleMs,
      },
      exchange,
    );
    exchange.dispatching = false;
    return exchange;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** One request in flight: undici's handler on one side, the gateway's Exchange on the other. */
class HttpExchange implements Exchange, Dispatcher.DispatchHandler {
  /** True while `agent.dispatch` runs: an error reported then is delivered a tick later. */
  dispatching = false;
  private controller: Dispatcher.DispatchController | null = null;
  private headersSeen = false;
  /** Ended, failed or aborted: no handler callback follows. */
  private done = false;

  constructor(private readonly handler: UpstreamHandler) {}

  abort(): void {
    if (this.done) return;
    this.done = true;
    // Before onRequestStart there is no controller yet; onRequestStart aborts when it arrives.
    this.controller?.abort(ABORTED);
  }

  resume(): void {
    if (!this.done) this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(ABORTED);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void {
    // 1xx heads (103 Early Hints) precede the real one; the contract promises onHeaders once.
    if (this.done || status < 200) return;
    this.headersSeen = true;
    this.handler.onHeaders(status, flattenHeaders(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    if (this.handler.onData(chunk) === false && !this.done) controller.pause();
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.done = true;
    this.handler.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.done) return;
    if (this.dispatching) {
      // undici reports a request it refuses (closed agent, invalid header) from inside dispatch();
      // the caller has no Exchange yet, so hold the error until send() has returned.
      queueMicrotask(() => this.fail(error));
      return;
    }
    this.fail(error);
  }

  private fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.handler.onError(upstreamError(error, this.headersSeen));
  }
}

function flattenHeaders(headers: ResponseHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    // Assigning `__proto__` would replace the object's prototype instead of adding a header.
    if (value === undefined || name === '__proto__') continue;
    out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  return out;
}

const TIMEOUT_CODES: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'upstream connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'upstream sent no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'upstream response stalled',
  ETIMEDOUT: 'upstream connection timed out',
};

/** A stable code is safe to show; a message may quote a host name or an address. */
const SAFE_CODE = /^[A-Z][A-Z0-9_]{1,40}$/;

function upstreamError(error: Error, headersSeen: boolean): GatewayError {
  if (error instanceof GatewayError) return error;
  const raw = (error as { code?: unknown }).code;
  const code = typeof raw === 'string' ? raw : '';
  const timeout = TIMEOUT_CODES[code];
  if (timeout !== undefined) return new GatewayError('upstream_timeout', timeout);
  // Every undici and system error has a code; an error without one was thrown by the handler.
  if (code === '') return new GatewayError('internal_error', 'internal error');
  if (code.startsWith('HPE_')) return new GatewayError('upstream_protocol_error', 'upstream sent a malformed HTTP response');
  if (code === 'UND_ERR_HEADERS_OVERFLOW') {
    return new GatewayError('upstream_protocol_error', 'upstream response headers too large');
  }
  if (code === 'UND_ERR_INVALID_ARG') return new GatewayError('internal_error', 'invalid upstream request');
  if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return new GatewayError('upstream_unreachable', 'upstream connection pool closed');
  }
  if (headersSeen) return new GatewayError('upstream_unreachable', 'upstream connection reset');
  if (code === 'UND_ERR_SOCKET') return new GatewayError('upstream_unreachable', 'upstream closed the connection before responding');
  if (SAFE_CODE.test(code)) return new GatewayError('upstream_unreachable', `upstream connection failed (${code})`);
  return new GatewayError('upstream_unreachable', 'upstream connection failed');
}
