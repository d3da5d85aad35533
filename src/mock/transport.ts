/**
 * The mock model server in-process: a Transport whose "upstream" is the mock responder. The gateway
 * gets the same status, headers and body bytes the standalone server would send, with the same
 * timing, backpressure and faults, and no socket in between.
 */

import { GatewayError } from '../errors.js';
import type { Exchange, Transport, UpstreamHandler, UpstreamRequest } from '../providers/transport.js';
import type { MockOptions } from './options.js';
import { Playback, type ReplySink } from './playback.js';
import type { MockReply } from './reply.js';
import { MockResponder } from './responder.js';

const decoder = new TextDecoder();

export class MockTransport implements Transport {
  readonly responder: MockResponder;

  /** Pass a responder to share its request count (for `errorEvery`) with another front end. */
  constructor(options: Partial<MockOptions> | MockResponder = {}) {
    this.responder = options instanceof MockResponder ? options : new MockResponder(options);
  }

  send(request: UpstreamRequest, handler: UpstreamHandler): Exchange {
    const body = request.body === null ? '' : typeof request.body === 'string' ? request.body : decoder.decode(request.body);
    const reply = this.responder.respond({ method: request.method, path: request.path, headers: request.headers, body });
    return new MockExchange(reply, handler);
  }

  /** Nothing to release: there are no connections. Exchanges in flight finish on their own. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

class MockExchange implements Exchange, ReplySink {
  private readonly playback: Playback;

  constructor(
    reply: MockReply,
    private readonly handler: UpstreamHandler,
  ) {
    this.playback = new Playback(reply, this);
    this.playback.start(true);
  }

  abort(): void {
    this.playback.stop();
  }

  resume(): void {
    // Deferred so that a handler calling resume() is never re-entered from inside that call.
    setImmediate(() => this.playback.resume());
  }

  batch(writes: () => void): void {
    writes();
  }

  head(reply: MockReply): void {
    const headers: Record<string, string> = { ...reply.headers };
    const whole = !reply.streamed && reply.resetAfter === null;
    if (whole) headers['content-length'] = String(Buffer.byteLength(reply.parts[0] ?? ''));
    this.handler.onHeaders(reply.status, headers);
  }

  data(part: string): boolean {
    return this.handler.onData(Buffer.from(part, 'utf8'));
  }

  end(): void {
    this.handler.onEnd();
  }

  reset(): void {
    this.handler.onError(new GatewayError('upstream_unreachable', 'upstream connection reset'));
  }
}
