/**
 * One model request, end to end: headers → request filters → body → request filters → route →
 * provider adapter → upstream → relay. The snapshot taken at the start serves the whole request, so
 * a reload never changes a request mid-flight.
 */

import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import { GatewayError, toGatewayError } from '../errors.js';
import { RequestContext } from '../pipeline/context.js';
import type { LocalReply } from '../pipeline/filter.js';
import type { JsonObject, WireProtocol } from '../protocol/codec.js';
import { inboundCodec } from '../protocol/index.js';
import type { Operation } from '../providers/provider.js';
import type { UpstreamRequest } from '../providers/transport.js';
import { describeError, log } from '../observability/logger.js';
import type { ResolvedTarget } from '../routing/model-router.js';
import type { Snapshot } from '../runtime/snapshot.js';
import { ClientResponse } from './client-response.js';
import { ResponseRelay } from './relay.js';
import { onDoneFailed, sendError, sendLocalReply } from './reply.js';
import { readHeaders, requestId } from './request.js';

export interface ProxyHost {
  /** The snapshot new requests start with. */
  readonly snapshot: Snapshot;
  relayStarted(relay: ResponseRelay): void;
  relayFinished(relay: ResponseRelay): void;
}

const MAX_MODEL_NAME = 256;

export function handleModelRequest(
  res: HttpResponse,
  req: HttpRequest,
  protocol: WireProtocol,
  op: Operation,
  host: ProxyHost,
): void {
  const snapshot = host.snapshot;
  const headers = readHeaders(req);
  const ctx = new RequestContext(requestId(headers['x-request-id']), 'POST', req.getUrl(), headers, protocol, op);
  const out = new ClientResponse(res);
  out.onAbort(() => {
    ctx.aborted = true;
  });

  const limit = snapshot.config.server.max_body_bytes;
  const declared = headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    fail(out, ctx, snapshot, tooLarge(limit));
    return;
  }

  let headerPhase: LocalReply | undefined | Promise<LocalReply | undefined>;
  try {
    headerPhase = snapshot.chain.runRequestHeaders(ctx);
  } catch (err) {
    fail(out, ctx, snapshot, err);
    return;
  }

  // uWS delivers the body only to a handler attached now, so read it while header filters run.
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((ab, isLast) => {
    if (out.done) return;
    size += ab.byteLength;
    if (size > limit) {
      fail(out, ctx, snapshot, tooLarge(limit));
      return;
    }
    // uWS reuses the ArrayBuffer after this callback returns: copy (once).
    chunks.push(Buffer.from(ab.slice(0)));
    if (!isLast) return;
    const raw = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    afterPhase(headerPhase, ctx, out, snapshot, () => {
      readModelRequest(raw, ctx);
      afterPhase(snapshot.chain.runRequestBody(ctx), ctx, out, snapshot, () => forward(raw, ctx, out, snapshot, host));
    });
  });
}

/**
 * Continue after a filter phase, which may have answered (a LocalReply) or be still running (a
 * promise, only when a filter had to wait). `next` throwing a GatewayError answers with it.
 */
function afterPhase(
  phase: LocalReply | undefined | Promise<LocalReply | undefined>,
  ctx: RequestContext,
  out: ClientResponse,
  snapshot: Snapshot,
  next: () => void,
): void {
  const go = (reply: LocalReply | undefined): void => {
    if (out.done) return;
    if (reply) {
      replyLocally(out, ctx, snapshot, reply);
      return;
    }
    try {
      next();
    } catch (err) {
      fail(out, ctx, snapshot, err);
    }
  };
  if (phase instanceof Promise) phase.then(go, (err) => fail(out, ctx, snapshot, err));
  else go(phase);
}

/** Parse the body and the fields every model request needs. Throws a 400 GatewayError. */
function readModelRequest(raw: Buffer, ctx: RequestContext): void {
  ctx.body = parseBody(raw);
  const model = ctx.body.model;
  if (typeof model !== 'string' || model.length === 0) {
    throw new GatewayError('invalid_request', 'you must provide a model parameter', { param: 'model' });
  }
  if (model.length > MAX_MODEL_NAME) {
    throw new GatewayError('invalid_request', `model name longer than ${MAX_MODEL_NAME} characters`, { param: 'model' });
  }
  ctx.model = model;
  ctx.stream = ctx.op === 'embeddings' ? false : ctx.body.stream === true;
}

function forward(raw: Buffer, ctx: RequestContext, out: ClientResponse, snapshot: Snapshot, host: ProxyHost): void {
  const targets = ctx.route?.targets;
  if (!targets || targets.length === 0) {
    throw new GatewayError('model_not_found', `The model \`${ctx.model}\` is not served by this gateway.`);
  }
  // Headers filters put there before any attempt; each attempt starts from these again.
  const baseHeaders = { ...ctx.responseHeaders };
  let next = 0;
  const startNext = (): void => {
    const target = targets[next++] as ResolvedTarget;
    for (const k of Object.keys(ctx.responseHeaders)) delete ctx.responseHeaders[k];
    Object.assign(ctx.responseHeaders, baseHeaders);
    attempt(raw, target, ctx, out, snapshot, host, next < targets.length ? retry : undefined);
  };
  /**
   * The route's next target, when the failure is one another upstream may not have (unreachable,
   * timeout, 429, 5xx) and nothing has reached the client yet: after the first byte there is no
   * silent retry, the stream ends with an error event instead.
   */
  const retry = (error: GatewayError): boolean => {
    if (out.done || !isFallbackError(error)) return false;
    log.info('falling back to the next target', {
      request_id: ctx.id,
      failed_provider: ctx.provider,
      code: error.code,
      status: error.status,
      attempt: ctx.attempts,
    });
    try {
      startNext();
    } catch (err) {
      fail(out, ctx, snapshot, err);
    }
    return true;
  };
  startNext();
}

/** Failures another target may not share. Client errors (400, 401, 404, 413…) would repeat anywhere. */
function isFallbackError(error: GatewayError): boolean {
  if (error.code === 'upstream_unreachable' || error.code === 'upstream_timeout') return true;
  return error.code === 'upstream_error' && (error.status === 429 || error.status >= 500);
}

function attempt(
  raw: Buffer,
  target: ResolvedTarget,
  ctx: RequestContext,
  out: ClientResponse,
  snapshot: Snapshot,
  host: ProxyHost,
  retry: ((error: GatewayError) => boolean) | undefined,
): void {
  const provider = target.provider;
  if (!provider.supports(ctx.op)) {
    throw new GatewayError('unsupported_operation', `provider ${provider.name} does not support ${ctx.path}`);
  }
  ctx.provider = provider.name;
  ctx.upstreamModel = target.model;
  ctx.attempts++;

  const sameProtocol = provider.protocol === ctx.protocol;
  const client = inboundCodec(ctx.protocol);
  let body: string | Uint8Array;
  if (sameProtocol || ctx.op !== 'chat') {
    // Same protocol: forward the client's own JSON; untouched bytes when nothing changed.
    if (!ctx.bodyChanged && ctx.body.model === target.model) {
      body = raw;
    } else {
      ctx.body.model = target.model;
      body = JSON.stringify(ctx.body);
    }
  } else {
    const canonical = client.decodeRequest(ctx.body);
    const encoded = provider.codec.encodeRequest(canonical, target.model);
    provider.adaptTranslatedBody?.(encoded, target.model);
    body = JSON.stringify(encoded);
  }

  const upstream = provider.buildRequest({
    op: ctx.op,
    model: target.model,
    stream: ctx.stream,
    body,
    clientHeaders: ctx.headers,
    inbound: ctx.protocol,
  });
  applyHeaderEdits(upstream, ctx);

  const streamOptions = ctx.body.stream_options as JsonObject | undefined;
  const relay = new ResponseRelay({
    ctx,
    out,
    chain: snapshot.chain,
    provider,
    client,
    sameProtocol,
    translate: ctx.op === 'chat' && (!sameProtocol || snapshot.chain.inspectsResponses),
    includeUsage: streamOptions?.include_usage === true,
    retry,
    onFinish: (r) => host.relayFinished(r),
  });
  out.onAbort(() => relay.clientGone());
  host.relayStarted(relay);
  relay.exchange = provider.transport.send(upstream, relay);
}

function applyHeaderEdits(upstream: UpstreamRequest, ctx: RequestContext): void {
  const edits = ctx.upstreamHeaderEdits;
  for (const k of edits.remove) delete upstream.headers[k];
  for (const k in edits.set) upstream.headers[k] = edits.set[k] as string;
}

function parseBody(raw: Buffer): JsonObject {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new GatewayError('invalid_json', 'the request body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('invalid_request', 'the request body must be a JSON object');
  }
  return body as JsonObject;
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('body_too_large', `request body larger than ${limit} bytes`);
}

/** Requests answered by the gateway itself still end with onDone, like every other. */
function replyLocally(out: ClientResponse, ctx: RequestContext, snapshot: Snapshot, reply: LocalReply): void {
  sendLocalReply(out, ctx, reply);
  snapshot.chain.runDone(ctx, onDoneFailed);
}

function fail(out: ClientResponse, ctx: RequestContext, snapshot: Snapshot, err: unknown): void {
  const error = toGatewayError(err);
  if (!(err instanceof GatewayError)) log.error('request failed', { request_id: ctx.id, ...describeError(err) });
  sendError(out, ctx, error);
  snapshot.chain.runDone(ctx, onDoneFailed);
}
