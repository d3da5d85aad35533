/**
 * The response path of one exchange: upstream bytes in, client bytes out.
 *
 * Two ways through:
 * - pass-through (client and upstream speak the same protocol and no filter inspects answers): bytes
 *   are forwarded untouched. Streams are forwarded up to the last complete SSE event of each chunk,
 *   so anything the gateway itself must add (a keep-alive comment, an error event after an upstream
 *   failure) lands between events, never inside one.
 * - translation: the upstream's codec decodes into canonical events, filters see each event, and the
 *   client's codec encodes it at once. Nothing waits for the whole answer.
 *
 * Upstream errors before anything reached the client become a plain error reply in the client's
 * protocol; after that, a protocol-correct error event ends the stream.
 */

import { clock } from '../clock.js';
import { GatewayError, toGatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import type { FilterChain } from '../pipeline/chain.js';
import type { ChatResponse, StreamEvent } from '../protocol/canonical.js';
import type { InboundCodec, StreamDecoder, StreamEncoder } from '../protocol/codec.js';
import { responseToEvents } from '../protocol/replay.js';
import { SSE_KEEPALIVE } from '../protocol/sse.js';
import { usageOfBody, type UsageScan } from '../protocol/usage-scan.js';
import type { Provider } from '../providers/provider.js';
import type { Exchange, UpstreamHandler } from '../providers/transport.js';
import { log } from '../observability/logger.js';
import type { ClientResponse } from './client-response.js';
import { onDoneFailed, sendError } from './reply.js';

type Mode = 'pending' | 'sse-pass' | 'sse-translate' | 'body' | 'error-body' | 'finished';

/** Upstream response headers worth relaying to clients: rate-limit state and upstream request ids. */
function relayedHeader(name: string): string | undefined {
  if (name === 'retry-after' || name === 'openai-processing-ms') return name;
  if (name.startsWith('x-ratelimit-') || name.startsWith('anthropic-ratelimit-')) return name;
  if (name === 'x-request-id' || name === 'request-id') return 'x-upstream-request-id';
  return undefined;
}

/** Largest non-streamed upstream answer accepted; beyond it the exchange fails instead of eating memory. */
const MAX_UPSTREAM_BODY = 64 * 1024 * 1024;

export interface RelayInit {
  ctx: RequestContext;
  out: ClientResponse;
  chain: FilterChain;
  provider: Provider;
  client: InboundCodec;
  /** Client and upstream speak the same protocol. */
  sameProtocol: boolean;
  /** Decode and re-encode answers (protocols differ, or a filter inspects answers). */
  translate: boolean;
  /** The client asked for a usage chunk (OpenAI stream_options.include_usage). */
  includeUsage: boolean;
  /**
   * Pass-through: read token usage from the upstream's answer (parsing only what carries it), and
   * drop the usage-only chunk the gateway asked for on the client's behalf when it did not.
   */
  usage?: UsageScan | undefined;
  /** The attempt this relay serves: told about the response head and failures, offered retries. */
  attempt?: RelayAttempt | undefined;
  /**
   * Called once when this relay is done: `final` when the request ended here, false when another
   * attempt took it over.
   */
  onFinish: (relay: ResponseRelay, final: boolean) => void;
}

/** What the relay tells the attempt loop (src/server/attempt-loop.ts). */
export interface RelayAttempt {
  onHead(status: number, headers: Record<string, string>): void;
  onTransportError(error: GatewayError): void;
  /**
   * Offered a failure while nothing has reached the client: true when another attempt took over the
   * request (this relay then ends quietly).
   */
  retry(error: GatewayError): boolean;
}

export class ResponseRelay implements UpstreamHandler {
  exchange: Exchange | undefined;
  readonly startedMs = clock.monotonicMs();
  private mode: Mode = 'pending';
  private status = 0;
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  /** Pass-through: bytes of an SSE event not yet complete. */
  private tail: Buffer | undefined;
  /** Pass-through: chunks received since the last flush (copies: undici may reuse its buffers). */
  private held: Buffer[] = [];
  /** A flush is queued for the end of the current upstream read. */
  private flushQueued = false;
  /** The client stopped taking data; the next chunk pauses the upstream until it drains. */
  private backpressured = false;
  private readonly flushBound = (): void => this.flush();
  private decoder: StreamDecoder | undefined;
  private encoder: StreamEncoder | undefined;
  /** Translation: client bytes produced while decoding one upstream chunk. */
  private pendingOut = '';
  /** Translation: the upstream sent an error event; the stream ends after it. */
  private upstreamFailed: GatewayError | undefined;
  /** The transport failed (connect, timeout, reset). */
  private transportFailed = false;

  constructor(private readonly init: RelayInit) {}

  get provider(): Provider {
    return this.init.provider;
  }

  /**
   * How the upstream did, for its health counters: `failed` when it could not be reached, timed
   * out, reset, or answered 5xx; `unknown` when the client left first (says nothing about it).
   */
  get upstreamOutcome(): 'ok' | 'failed' | 'unknown' {
    if (this.transportFailed || this.status >= 500) return 'failed';
    if (this.init.ctx.aborted || this.status === 0) return 'unknown';
    return 'ok';
  }

  get streaming(): boolean {
    return this.mode === 'sse-pass' || this.mode === 'sse-translate';
  }

  // ── UpstreamHandler ────────────────────────────────────────────────────────────────────────

  onHeaders(status: number, headers: Record<string, string>): void {
    if (this.mode === 'finished') return;
    const { ctx } = this.init;
    this.status = status;
    this.init.attempt?.onHead(status, headers);
    const rh = ctx.responseHeaders;
    for (const name in headers) {
      const as = relayedHeader(name);
      if (as !== undefined) rh[as] = headers[name] as string;
    }
    this.identify();

    if (status >= 400) {
      this.mode = 'error-body';
      return;
    }
    const isSse = (headers['content-type'] ?? '').includes('text/event-stream');
    if (ctx.stream && isSse) {
      this.mode = this.init.translate ? 'sse-translate' : 'sse-pass';
      // A keep-alive may have sent the head already (see keepAlive); it stays as sent.
      if (!this.init.out.committed) this.startSse();
      if (this.mode === 'sse-translate') {
        this.encoder = this.clientEncoder();
        this.decoder = this.init.provider.codec.createStreamDecoder((ev) => this.onEvent(ev));
      }
      return;
    }
    // A whole body: a non-streamed answer, or an upstream that ignored `stream` (handled at the end).
    this.mode = 'body';
  }

  onData(chunk: Uint8Array): boolean {
    switch (this.mode) {
      case 'sse-pass':
        this.held.push(Buffer.from(chunk));
        return this.queueFlush();
      case 'sse-translate':
        try {
          this.decoder!.push(chunk);
        } catch (err) {
          this.fail(toUpstreamError(err));
          return true;
        }
        return this.queueFlush();
      case 'body':
      case 'error-body':
        this.bodyBytes += chunk.byteLength;
        if (this.bodyBytes > MAX_UPSTREAM_BODY) {
          this.fail(new GatewayError('upstream_protocol_error', 'upstream answer too large'));
          return true;
        }
        // undici may hand out views of a reused buffer: keep a copy.
        this.chunks.push(Buffer.from(chunk));
        return true;
      default:
        return true;
    }
  }

  onEnd(): void {
    switch (this.mode) {
      case 'sse-pass':
        this.endPassThrough();
        return;
      case 'sse-translate':
        this.endTranslated();
        return;
      case 'body':
        this.endBody();
        return;
      case 'error-body':
        this.endErrorBody();
        return;
      default:
        return;
    }
  }

  onError(error: GatewayError): void {
    if (this.mode === 'finished') return;
    this.transportFailed = true;
    this.init.attempt?.onTransportError(error);
    this.fail(error);
  }

  /** The request's total time limit ran out: end like a failed exchange, with no retry. */
  expire(error: GatewayError): void {
    if (this.mode === 'finished') return;
    this.fail(error, false);
  }

  // ── client side events ─────────────────────────────────────────────────────────────────────

  clientGone(): void {
    if (this.mode === 'finished') return;
    this.init.ctx.aborted = true;
    this.exchange?.abort();
    this.finish();
  }

  /** SSE keep-alive: called periodically; writes a comment after `idleMs` of silence. */
  keepAlive(nowMs: number, idleMs: number): void {
    const out = this.init.out;
    if (out.done) return;
    if (this.mode === 'pending') {
      // The upstream has not answered yet (a long prompt still prefilling, a slow server): silence
      // the client's proxies may cut just as well. A client that asked for a stream gets its head
      // and a comment now; from then on a failure reaches it as an error event, not a status.
      if (!this.init.ctx.stream || nowMs - this.startedMs < idleMs) return;
      this.identify();
      this.startSse();
      this.write(SSE_KEEPALIVE);
      return;
    }
    if (!this.streaming) return;
    const last = out.lastWriteMs || this.startedMs;
    if (nowMs - last >= idleMs) this.write(SSE_KEEPALIVE);
  }

  /** The gateway's own response headers: which request, provider and model this was. */
  private identify(): void {
    const { ctx } = this.init;
    const rh = ctx.responseHeaders;
    rh['x-request-id'] = ctx.id;
    rh['x-sluice-provider'] = ctx.provider;
    rh['x-sluice-model'] = ctx.upstreamModel;
    rh['x-sluice-attempts'] = String(ctx.attempts);
    if (ctx.route !== undefined) rh['x-sluice-route'] = ctx.route.plan.name;
  }

  /** Record the head of an SSE answer (sent with the first write); response filters run here. */
  private startSse(): void {
    const { ctx, chain } = this.init;
    const rh = ctx.responseHeaders;
    rh['content-type'] = 'text/event-stream; charset=utf-8';
    rh['cache-control'] = 'no-cache';
    rh['x-accel-buffering'] = 'no';
    // Before the filters: a plugin reads it as `:status` / `response.code`.
    ctx.status = 200;
    chain.runResponseHeaders(ctx);
    this.init.out.startStream(200, rh);
  }

  // ── pass-through ───────────────────────────────────────────────────────────────────────────

  /**
   * undici hands over each HTTP chunk separately, even when one socket read brought dozens: writing
   * each at once would cost one syscall per SSE event. Everything that arrives during one upstream
   * read is written once, in a microtask, which runs before any other I/O: no latency is added.
   */
  private queueFlush(): boolean {
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushBound);
    }
    return !this.backpressured;
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.mode === 'sse-pass') this.flushPassThrough();
    else if (this.mode === 'sse-translate') this.flushTranslated();
  }

  /** Write the complete events held so far; an incomplete last event stays as the tail. */
  private flushPassThrough(): void {
    const complete = this.takeCompleteEvents();
    if (complete !== undefined) this.write(this.scanned(complete));
  }

  /** The bytes to relay after the usage scan took what it needs (and maybe a usage-only chunk). */
  private scanned(events: Buffer): Buffer {
    const scan = this.init.usage;
    if (scan === undefined) return events;
    const out = scan.scan(events);
    if (scan.usage !== undefined) this.init.ctx.usage = scan.usage;
    return out;
  }

  private takeCompleteEvents(): Buffer | undefined {
    if (this.held.length === 0) return undefined;
    const parts = this.tail === undefined ? this.held : [this.tail, ...this.held];
    const buf = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    this.held = [];
    this.tail = undefined;
    const boundary = lastEventBoundary(buf);
    if (boundary < buf.length) this.tail = buf.subarray(boundary);
    return boundary === 0 ? undefined : buf.subarray(0, boundary);
  }

  private endPassThrough(): void {
    // A last event without its blank line is still delivered: the client's parser decides.
    const complete = this.takeCompleteEvents();
    const rest = this.tail;
    this.tail = undefined;
    const whole = complete === undefined ? rest : rest === undefined ? complete : Buffer.concat([complete, rest]);
    const last = whole === undefined ? undefined : this.scanned(whole);
    this.init.out.end(last);
    this.finish();
  }

  // ── translation ────────────────────────────────────────────────────────────────────────────

  private clientEncoder(): StreamEncoder {
    const { ctx } = this.init;
    return this.init.client.createStreamEncoder({
      id: `chatcmpl-${ctx.id}`,
      model: ctx.model,
      created: clock.unixSeconds(),
      includeUsage: this.init.includeUsage,
    });
  }

  private onEvent(ev: StreamEvent): void {
    if (this.upstreamFailed) return;
    const { ctx } = this.init;
    if (ev.type === 'usage') ctx.usage = ev.usage;
    else if (ev.type === 'error') this.upstreamFailed = ev.error;
    const stop = this.init.chain.runResponseEvent(ctx, ev);
    if (stop !== undefined) {
      // A filter ended the answer: what was sent stays, an error event closes the stream.
      this.upstreamFailed = stop;
      this.pendingOut += this.encoder!.encode({ type: 'error', error: stop });
      return;
    }
    this.pendingOut += this.encoder!.encode(ev);
  }

  private flushTranslated(): void {
    if (this.upstreamFailed) {
      const out = this.pendingOut;
      this.pendingOut = '';
      this.exchange?.abort();
      this.init.out.end(out);
      this.finish();
      return;
    }
    if (this.pendingOut.length === 0) return;
    const out = this.pendingOut;
    this.pendingOut = '';
    this.write(out);
  }

  private endTranslated(): void {
    try {
      this.decoder!.end();
    } catch (err) {
      this.fail(toUpstreamError(err));
      return;
    }
    if (this.upstreamFailed) {
      this.flushTranslated();
      return;
    }
    this.endStream();
  }

  // ── whole bodies ───────────────────────────────────────────────────────────────────────────

  private takeBody(): Buffer {
    const body = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks = [];
    return body;
  }

  private endBody(): void {
    const { ctx, out, chain, client } = this.init;
    const body = this.takeBody();
    if (!this.init.translate && !ctx.stream) {
      if (this.init.usage !== undefined && this.status < 300) ctx.usage = usageOfBody(this.init.provider.protocol, body);
      this.sendWhole(body);
      return;
    }
    if (ctx.op !== 'chat') {
      this.fail(new GatewayError('upstream_protocol_error', 'upstream answer could not be relayed'));
      return;
    }
    let response: ChatResponse;
    try {
      response = this.init.provider.codec.decodeResponse(JSON.parse(body.toString('utf8')));
    } catch (err) {
      this.fail(toUpstreamError(err));
      return;
    }
    ctx.usage = response.usage;
    if (ctx.stream) {
      // The upstream ignored `stream`: replay its answer as the stream the client asked for.
      if (!out.committed) this.startSse();
      this.mode = 'sse-translate';
      this.encoder = this.clientEncoder();
      for (const ev of responseToEvents(response)) this.onEvent(ev);
      this.endStream();
      return;
    }
    const stop = chain.runResponseEvent(ctx, { type: 'response', response });
    if (stop !== undefined) {
      this.fail(stop, false);
      return;
    }
    this.sendWhole(JSON.stringify(client.encodeResponse(response)));
  }

  /** A whole JSON answer with the upstream's status; response-header filters run first. */
  private sendWhole(body: string | Uint8Array): void {
    const { ctx, out, chain } = this.init;
    ctx.status = this.status;
    chain.runResponseHeaders(ctx);
    ctx.responseHeaders['content-type'] = 'application/json';
    if (ctx.firstByteMs === 0) ctx.firstByteMs = clock.monotonicMs();
    out.send(this.status, ctx.responseHeaders, body);
    this.finish();
  }

  /** Translated or replayed stream: what is pending, the protocol's closing bytes unless it failed. */
  private endStream(): void {
    const out = this.pendingOut + (this.upstreamFailed ? '' : this.encoder!.end());
    this.pendingOut = '';
    this.init.out.end(out);
    this.finish();
  }

  private endErrorBody(): void {
    const body = this.takeBody();
    const error = this.init.provider.codec.decodeError(this.status, body);
    const { out, attempt } = this.init;
    if (!out.committed && attempt?.retry(error)) {
      this.finish(false);
      return;
    }
    // Once a keep-alive sent the head, the error can only be an event in the stream.
    if (this.init.sameProtocol && !out.committed) {
      // Same protocol: the upstream's own error, byte for byte, is the most faithful relay.
      this.sendWhole(body);
      return;
    }
    this.fail(error, false);
  }

  // ── common ─────────────────────────────────────────────────────────────────────────────────

  private write(chunk: string | Uint8Array): void {
    const out = this.init.out;
    if (this.init.ctx.firstByteMs === 0 && chunk.length > 0 && chunk !== SSE_KEEPALIVE) this.init.ctx.firstByteMs = clock.monotonicMs();
    if (out.write(chunk) || this.backpressured) return;
    this.backpressured = true;
    out.onWritable(() => {
      this.backpressured = false;
      this.exchange?.resume();
    });
  }

  /**
   * End the exchange with an error, in whatever form the client can still receive; `offerRetry`
   * false when the attempt loop has already declined this failure.
   */
  private fail(error: GatewayError, offerRetry = true): void {
    if (this.mode === 'finished') return;
    const { ctx, out } = this.init;
    this.exchange?.abort();
    if (offerRetry && !out.committed && this.init.attempt?.retry(error)) {
      // Another attempt took the exchange over (transports never call back synchronously, so it
      // has not started talking yet); this one only releases what it held.
      this.finish(false);
      return;
    }
    if (!out.committed) {
      // Nothing reached the client yet: a plain error reply, whatever mode we were in.
      sendError(out, ctx, error);
    } else {
      const encoder = this.encoder ?? this.clientEncoder();
      // Complete events still held go out first; a half-received one is dropped, so the error event
      // never lands inside it.
      const complete = this.takeCompleteEvents();
      this.tail = undefined;
      if (complete !== undefined) out.write(complete);
      out.end(this.pendingOut + encoder.encode({ type: 'error', error }));
      this.pendingOut = '';
    }
    if (error.status >= 500) log.warn('upstream failed', { request_id: ctx.id, provider: ctx.provider, code: error.code, status: error.status });
    this.finish();
  }

  /** `final`: the request ends here (not handed to another attempt), so its onDone hooks run. */
  private finish(final = true): void {
    if (this.mode === 'finished') return;
    this.mode = 'finished';
    if (!final) {
      this.init.onFinish(this, false);
      return;
    }
    const { ctx, chain } = this.init;
    // 499: the client closed the connection first (nginx's convention).
    if (ctx.aborted && ctx.status === 0) ctx.status = 499;
    chain.runDone(ctx, onDoneFailed);
    this.init.onFinish(this, true);
  }
}

function toUpstreamError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof SyntaxError) return new GatewayError('upstream_protocol_error', 'upstream returned invalid JSON');
  return toGatewayError(err);
}

/**
 * Index just past the last blank line (`\n\n`, `\r\n\r\n` or `\r\r`) in `buf`, or 0 when the chunk
 * holds no complete event.
 */
export function lastEventBoundary(buf: Uint8Array): number {
  for (let i = buf.length - 1; i > 0; i--) {
    const c = buf[i];
    if (c === 10) {
      const p = buf[i - 1];
      if (p === 10) return i + 1;
      if (p === 13 && i >= 3 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
    } else if (c === 13 && buf[i - 1] === 13) {
      // `\r\r`, unless the second `\r` starts a `\r\n` that the next chunk completes.
      if (i + 1 < buf.length) return i + 1;
    }
  }
  return 0;
}
