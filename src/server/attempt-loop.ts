/**
 * The attempts of one request: asks the planner (src/routing/attempt-planner.ts) where to send
 * each one, encodes the request for that provider, sends it, and hands the response to a relay. A
 * relay offers its failure back while nothing has reached the client; the planner decides whether
 * another attempt follows (another endpoint, key or target, possibly after a back-off) or the error
 * is the answer. After the first byte there is no second attempt: the stream ends with an error
 * event instead.
 *
 * It also keeps the shared counters true: every attempt holds its endpoint's and key's in-flight
 * slot for exactly as long as its exchange lasts, and every response head or transport failure is
 * recorded for outlier detection and the key pool.
 */

import { clock } from '../clock.js';
import { GatewayError } from '../errors.js';
import { describeError, log } from '../observability/logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { JsonObject } from '../protocol/codec.js';
import { inboundCodec } from '../protocol/index.js';
import { UsageScan } from '../protocol/usage-scan.js';
import type { Provider } from '../providers/provider.js';
import type { UpstreamRequest, UpstreamTimeouts } from '../providers/transport.js';
import { AttemptPlanner, type SendStep } from '../routing/attempt-planner.js';
import { targetModel, type ResolvedRoute } from '../routing/model-router.js';
import { failureKindOf, type FailureKind } from '../routing/retry-policy.js';
import type { Snapshot } from '../runtime/snapshot.js';
import type { ClientResponse } from './client-response.js';
import type { ProxyHost } from './proxy.js';
import { ResponseRelay } from './relay.js';
import { onDoneFailed, sendError } from './reply.js';

export class AttemptLoop {
  private readonly planner: AttemptPlanner;
  private relay: ResponseRelay | undefined;
  private step: SendStep | undefined;
  /** The current attempt's response head, once it arrived. */
  private status = 0;
  private headers: Record<string, string> | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Monotonic ms by which the whole request must be over; Infinity without total_ms. */
  private deadline = Infinity;
  private expired = false;
  /** Response headers filters set before the first attempt; each attempt starts from these. */
  private readonly baseHeaders: Record<string, string>;

  constructor(
    private readonly raw: Buffer,
    private readonly ctx: RequestContext,
    private readonly out: ClientResponse,
    private readonly snapshot: Snapshot,
    private readonly host: ProxyHost,
    route: ResolvedRoute,
  ) {
    // ctx carries the prompt for prefix-balanced groups; nothing is computed for the others.
    this.planner = new AttemptPlanner(route, snapshot.groups, undefined, undefined, ctx);
    this.baseHeaders = { ...ctx.responseHeaders };
    out.onAbort(() => {
      ctx.aborted = true;
      if (this.relay !== undefined) this.relay.clientGone();
      else this.end();
    });
  }

  start(): void {
    const plan = this.planner.route.plan;
    const first = plan.targets[0]?.provider;
    const totalMs = plan.timeouts?.totalMs ?? first?.timeouts.totalMs;
    if (totalMs !== undefined) {
      this.deadline = this.ctx.startMs + totalMs;
      this.deadlineTimer = setTimeout(() => this.expire(), Math.max(0, this.deadline - clock.monotonicMs()));
    }
    this.next();
  }

  private next(): void {
    if (this.ctx.aborted) {
      this.end();
      return;
    }
    const step = this.planner.next();
    switch (step.kind) {
      case 'send':
        this.send(step);
        return;
      case 'wait':
        this.waitTimer = setTimeout(() => {
          this.waitTimer = undefined;
          this.next();
        }, step.ms);
        return;
      case 'fail':
        if (step.retryAfterMs !== undefined) this.ctx.responseHeaders['retry-after'] = String(Math.max(1, Math.ceil(step.retryAfterMs / 1000)));
        this.answer(step.error);
        return;
    }
  }

  private send(step: SendStep): void {
    const { ctx, snapshot } = this;
    const provider = step.group.provider;
    if (!provider.supports(ctx.op)) {
      this.answer(new GatewayError('unsupported_operation', `provider ${provider.name} does not support ${ctx.path}`));
      return;
    }
    const model = targetModel(step.target, this.planner.route);
    ctx.provider = provider.name;
    ctx.providerType = provider.type;
    ctx.fallback = this.planner.onFallback;
    ctx.upstreamModel = model;
    ctx.endpoint = step.group.url(step.endpoint);
    if (ctx.attempts > 0) {
      // A failed attempt may have left its upstream's headers: start again from the filters' ones.
      for (const k of Object.keys(ctx.responseHeaders)) delete ctx.responseHeaders[k];
      Object.assign(ctx.responseHeaders, this.baseHeaders);
    }
    ctx.attempts++;

    const sameProtocol = provider.protocol === ctx.protocol;
    const client = inboundCodec(ctx.protocol);
    let upstream: UpstreamRequest;
    try {
      upstream = provider.buildRequest({
        op: ctx.op,
        model,
        stream: ctx.stream,
        body: this.encodeBody(provider, sameProtocol, model),
        clientHeaders: ctx.headers,
        inbound: ctx.protocol,
        endpoint: step.endpoint,
        key: step.key,
      });
    } catch (err) {
      this.answer(err);
      return;
    }
    this.applyTimeouts(upstream);
    applyHeaderEdits(upstream, ctx);

    this.step = step;
    this.status = 0;
    this.headers = undefined;
    const clientWantsUsage = hasIncludeUsage(ctx.body);
    const translate = ctx.op === 'chat' && (!sameProtocol || snapshot.chain.inspectsResponses);
    const relay = new ResponseRelay({
      ctx,
      out: this.out,
      chain: snapshot.chain,
      provider,
      client,
      sameProtocol,
      translate,
      includeUsage: clientWantsUsage,
      usage: translate ? undefined : new UsageScan(provider.protocol, !clientWantsUsage),
      attempt: this,
      onFinish: (r, final) => this.finished(r, step, final),
    });
    this.relay = relay;
    step.group.acquire(step.endpoint, step.key);
    this.host.relayStarted(relay);
    relay.exchange = provider.transport.send(upstream, relay);
  }

  /** The body for this attempt's provider: the client's bytes when nothing changed, else re-encoded. */
  private encodeBody(provider: Provider, sameProtocol: boolean, model: string): string | Uint8Array {
    const { ctx } = this;
    if (sameProtocol || ctx.op !== 'chat') {
      const askUsage = ctx.stream && provider.protocol === 'openai-chat' && !hasIncludeUsage(ctx.body);
      if (!ctx.bodyChanged && ctx.body.model === model) return askUsage ? withIncludeUsage(this.raw, ctx.body) : this.raw;
      ctx.body.model = model;
      return askUsage ? JSON.stringify(withUsageOption(ctx.body)) : JSON.stringify(ctx.body);
    }
    const canonical = inboundCodec(ctx.protocol).decodeRequest(ctx.body);
    const encoded = provider.codec.encodeRequest(canonical, model);
    provider.adaptTranslatedBody?.(encoded, model);
    return JSON.stringify(encoded);
  }

  /** Route timeouts replace the provider's; a total limit caps what is left of it. */
  private applyTimeouts(upstream: UpstreamRequest): void {
    const route = this.planner.route.plan.timeouts;
    if (route === undefined && this.deadline === Infinity) return;
    const t: UpstreamTimeouts = { ...upstream.timeouts };
    if (route?.firstByteMs !== undefined) t.firstByteMs = route.firstByteMs;
    if (route?.idleMs !== undefined) t.idleMs = route.idleMs;
    if (this.deadline !== Infinity) {
      const left = Math.max(1, Math.ceil(this.deadline - clock.monotonicMs()));
      t.firstByteMs = Math.min(t.firstByteMs, left);
      t.idleMs = Math.min(t.idleMs, left);
    }
    upstream.timeouts = t;
  }

  // ── called by the relay ────────────────────────────────────────────────────────────────────

  /** The response head: what it says about the endpoint and the key is recorded at once. */
  onHead(status: number, headers: Record<string, string>): void {
    this.status = status;
    this.headers = headers;
    const step = this.step!;
    if (step.group.record(step.endpoint, step.key, 'status', status, headers)) this.logEjection(step);
  }

  /** The exchange failed in transport (connect, timeout, reset): the endpoint's failure. */
  onTransportError(error: GatewayError): void {
    // A client that left or a total limit that ran out says nothing about the endpoint.
    if (this.ctx.aborted || this.expired) return;
    const step = this.step!;
    if (step.group.record(step.endpoint, step.key, failureKindOf(error) ?? 'connect', 0, undefined)) this.logEjection(step);
  }

  /**
   * Offered a failure while nothing has reached the client: true when another attempt takes over
   * (this relay then ends quietly), false when the error is the answer.
   */
  retry(error: GatewayError): boolean {
    if (this.ctx.aborted || this.expired || this.out.committed) return false;
    const kind: FailureKind | undefined = this.status !== 0 ? 'status' : failureKindOf(error);
    if (kind === undefined) return false;
    const step = this.step!;
    (this.ctx.upstreamErrors ??= []).push({ provider: step.group.provider.name, status: this.status, code: error.code });
    if (!this.planner.failed(step, error, kind, this.status, this.headers)) return false;
    log.info('retrying', {
      request_id: this.ctx.id,
      failed_provider: step.group.provider.name,
      endpoint: step.group.url(step.endpoint),
      code: error.code,
      status: error.status,
      attempt: this.ctx.attempts,
    });
    // The relay finishes this attempt (releasing its slots) when this returns; the next one starts
    // after that, so at most one attempt per request ever holds a slot.
    queueMicrotask(() => {
      if (this.ctx.aborted) this.end();
      else this.next();
    });
    return true;
  }

  private finished(relay: ResponseRelay, step: SendStep, final: boolean): void {
    step.group.release(step.endpoint, step.key);
    if (this.relay === relay) this.relay = undefined;
    this.host.relayFinished(relay);
    if (final) this.done();
  }

  // ── ending ─────────────────────────────────────────────────────────────────────────────────

  /** The total time limit ran out: the attempt in flight fails, and no other one follows. */
  private expire(): void {
    this.deadlineTimer = undefined;
    this.expired = true;
    const error = new GatewayError('upstream_timeout', 'the request took longer than its total time limit (total_ms)');
    if (this.relay !== undefined) {
      this.relay.expire(error);
      return;
    }
    if (this.waitTimer !== undefined) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
      this.answer(error);
    }
  }

  /** Answer with an error without a relay (nothing left to try, or a request that cannot be sent). */
  private answer(err: unknown): void {
    const error = err instanceof GatewayError ? err : new GatewayError('internal_error', 'internal error');
    if (!(err instanceof GatewayError)) log.error('request failed', { request_id: this.ctx.id, ...describeError(err) });
    sendError(this.out, this.ctx, error);
    this.end();
  }

  /** The request ends without a relay to end it (answered here, or the client left while waiting). */
  private end(): void {
    if (this.ctx.aborted && this.ctx.status === 0) this.ctx.status = 499;
    this.snapshot.chain.runDone(this.ctx, onDoneFailed);
    this.done();
  }

  private done(): void {
    if (this.waitTimer !== undefined) clearTimeout(this.waitTimer);
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.waitTimer = undefined;
    this.deadlineTimer = undefined;
    this.host.requestEnded(this.ctx);
  }

  private logEjection(step: SendStep): void {
    log.warn('endpoint ejected', {
      provider: step.group.provider.name,
      endpoint: step.group.url(step.endpoint),
      for_ms: step.group.ejectedForMs(step.endpoint),
    });
  }
}

function hasIncludeUsage(body: JsonObject): boolean {
  const so = body.stream_options;
  return so !== null && typeof so === 'object' && !Array.isArray(so) && (so as JsonObject).include_usage === true;
}

/**
 * An OpenAI stream carries token usage only when asked (`stream_options.include_usage`); the gateway
 * needs it for accounting whether or not the client asked, and hides the chunk from a client that did
 * not (UsageScan). The client's bytes get the field spliced in front rather than a parse and
 * re-serialisation of the whole prompt; a client that sent `stream_options` of its own gets it merged.
 */
function withIncludeUsage(raw: Buffer, body: JsonObject): Buffer | string {
  if (body.stream_options === undefined) {
    const open = raw.indexOf(0x7b); // '{'
    if (open >= 0) return Buffer.concat([raw.subarray(0, open + 1), INCLUDE_USAGE_FIELD, raw.subarray(open + 1)]);
  }
  return JSON.stringify(withUsageOption(body));
}

/** A shallow copy: `ctx.body` stays what the client sent, which is what decides whether it sees usage. */
function withUsageOption(body: JsonObject): JsonObject {
  return { ...body, stream_options: { ...(body.stream_options as JsonObject | undefined), include_usage: true } };
}

const INCLUDE_USAGE_FIELD = Buffer.from('"stream_options":{"include_usage":true},');

function applyHeaderEdits(upstream: UpstreamRequest, ctx: RequestContext): void {
  const edits = ctx.upstreamHeaderEdits;
  for (const k of edits.remove) delete upstream.headers[k];
  for (const k in edits.set) upstream.headers[k] = edits.set[k] as string;
}
