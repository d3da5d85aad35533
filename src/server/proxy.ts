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
import type { Snapshot } from '../runtime/snapshot.js';
import { ClientResponse } from './client-response.js';
import { AttemptLoop } from './attempt-loop.js';
import type { ResponseRelay } from './relay.js';
import { onDoneFailed, sendError, sendLocalReply } from './reply.js';
import { readHeaders, requestId } from './request.js';

export interface ProxyHost {
  /** The snapshot new requests start with. */
  readonly snapshot: Snapshot;
  relayStarted(relay: ResponseRelay): void;
  relayFinished(relay: ResponseRelay): void;
  /** Once per request, after it was answered (or the client left) and its onDone hooks ran. */
  requestEnded(ctx: RequestContext): void;
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
    // Gone before the attempt loop took over (it installs its own handler): the request ends here.
    // onDone still runs, once, and releases a filter holding the request (a plugin waiting for its
    // HTTP call), whose pending phase then finds the response done and stops.
    endRequest(ctx, snapshot, host);
  });

  const limit = snapshot.config.server.max_body_bytes;
  const declared = headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    fail(out, ctx, snapshot, host, tooLarge(limit));
    return;
  }

  let headerPhase: LocalReply | undefined | Promise<LocalReply | undefined>;
  try {
    headerPhase = snapshot.chain.runRequestHeaders(ctx);
  } catch (err) {
    fail(out, ctx, snapshot, host, err);
    return;
  }

  // uWS delivers the body only to a handler attached now, so read it while header filters run.
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((ab, isLast) => {
    if (out.done) return;
    size += ab.byteLength;
    if (size > limit) {
      fail(out, ctx, snapshot, host, tooLarge(limit));
      return;
    }
    // uWS reuses the ArrayBuffer after this callback returns: copy (once).
    chunks.push(Buffer.from(ab.slice(0)));
    if (!isLast) return;
    const raw = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    ctx.rawBody = raw;
    afterPhase(headerPhase, ctx, out, snapshot, host, () => {
      readModelRequest(raw, ctx);
      afterPhase(snapshot.chain.runRequestBody(ctx), ctx, out, snapshot, host, () => forward(raw, ctx, out, snapshot, host));
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
  host: ProxyHost,
  next: () => void,
): void {
  const go = (reply: LocalReply | undefined): void => {
    if (out.done) return;
    if (reply) {
      replyLocally(out, ctx, snapshot, host, reply);
      return;
    }
    try {
      next();
    } catch (err) {
      fail(out, ctx, snapshot, host, err);
    }
  };
  if (phase instanceof Promise) phase.then(go, (err) => fail(out, ctx, snapshot, host, err));
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
  const route = ctx.route;
  if (route === undefined) {
    throw new GatewayError('model_not_found', `The model \`${ctx.model}\` is not served by this gateway.`);
  }
  new AttemptLoop(raw, ctx, out, snapshot, host, route).start();
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
function replyLocally(out: ClientResponse, ctx: RequestContext, snapshot: Snapshot, host: ProxyHost, reply: LocalReply): void {
  sendLocalReply(out, ctx, reply, snapshot.chain);
  endRequest(ctx, snapshot, host);
}

function fail(out: ClientResponse, ctx: RequestContext, snapshot: Snapshot, host: ProxyHost, err: unknown): void {
  const error = toGatewayError(err);
  if (!(err instanceof GatewayError)) log.error('request failed', { request_id: ctx.id, ...describeError(err) });
  sendError(out, ctx, error);
  endRequest(ctx, snapshot, host);
}

/** Requests that ended before the attempt loop: only these go through here, so the set stays small. */
const ended = new WeakSet<RequestContext>();

/** onDone and the end of the request, once, however it ended before reaching the attempt loop. */
function endRequest(ctx: RequestContext, snapshot: Snapshot, host: ProxyHost): void {
  if (ended.has(ctx)) return;
  ended.add(ctx);
  // 499: the client closed the connection first (nginx's convention).
  if (ctx.aborted && ctx.status === 0) ctx.status = 499;
  snapshot.chain.runDone(ctx, onDoneFailed);
  host.requestEnded(ctx);
}
