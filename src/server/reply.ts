/** Replies the gateway writes itself: errors in the client's protocol, and plain JSON. */

import { clock } from '../clock.js';
import type { GatewayError } from '../errors.js';
import type { FilterChain } from '../pipeline/chain.js';
import type { RequestContext } from '../pipeline/context.js';
import type { LocalReply } from '../pipeline/filter.js';
import type { ChatResponse } from '../protocol/canonical.js';
import { inboundCodec } from '../protocol/index.js';
import { responseToEvents } from '../protocol/replay.js';
import { describeError, log } from '../observability/logger.js';
import type { ClientResponse } from './client-response.js';

export function sendError(out: ClientResponse, ctx: RequestContext, error: GatewayError): void {
  ctx.status = error.status;
  ctx.errorCode = error.code;
  const headers = ctx.responseHeaders;
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = ctx.id;
  out.send(error.status, headers, JSON.stringify(inboundCodec(ctx.protocol).encodeError(error)));
}

/** `chain`: the response filters an answer given in the canonical model (`reply.response`) goes through. */
export function sendLocalReply(out: ClientResponse, ctx: RequestContext, reply: LocalReply, chain?: FilterChain): void {
  if (reply.headers) Object.assign(ctx.responseHeaders, reply.headers);
  if (reply.error) {
    sendError(out, ctx, reply.error);
    return;
  }
  if (reply.response) {
    sendResponse(out, ctx, reply.status, reply.response, chain);
    return;
  }
  ctx.status = reply.status;
  const headers = ctx.responseHeaders;
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = ctx.id;
  out.send(reply.status, headers, JSON.stringify(reply.body ?? {}));
}

/**
 * A whole canonical answer given by the gateway itself, encoded the way a translated upstream answer
 * is: JSON, or, for a client that asked for a stream, its events replayed (text in word-sized pieces,
 * tool calls, finish reason, usage) and framed by the client's stream encoder. Nothing is waited for,
 * so the events leave in one write: still a stream of several events to the client's parser.
 */
function sendResponse(out: ClientResponse, ctx: RequestContext, status: number, response: ChatResponse, chain: FilterChain | undefined): void {
  const client = inboundCodec(ctx.protocol);
  const headers = ctx.responseHeaders;
  headers['x-request-id'] = ctx.id;
  ctx.status = status;
  if (!ctx.stream) {
    const stop = chain?.runResponseEvent(ctx, { type: 'response', response });
    if (stop !== undefined) {
      sendError(out, ctx, stop);
      return;
    }
    chain?.runResponseHeaders(ctx);
    headers['content-type'] = 'application/json';
    ctx.firstByteMs = clock.monotonicMs();
    out.send(status, headers, JSON.stringify(client.encodeResponse(response)));
    return;
  }
  headers['content-type'] = 'text/event-stream; charset=utf-8';
  headers['cache-control'] = 'no-cache';
  chain?.runResponseHeaders(ctx);
  const so = ctx.body.stream_options as { include_usage?: unknown } | undefined;
  const encoder = client.createStreamEncoder({
    id: response.id,
    model: response.model,
    created: response.created,
    includeUsage: typeof so === 'object' && so !== null && so.include_usage === true,
  });
  let text = '';
  let stopped = false;
  for (const ev of responseToEvents(response)) {
    const stop = chain?.runResponseEvent(ctx, ev);
    if (stop !== undefined) {
      text += encoder.encode({ type: 'error', error: stop });
      stopped = true;
      break;
    }
    text += encoder.encode(ev);
  }
  if (!stopped) text += encoder.end();
  ctx.firstByteMs = clock.monotonicMs();
  out.send(status, headers, text);
}

/** onDone hooks must not fail a request that is already answered: log and go on. */
export function onDoneFailed(filter: string, err: unknown): void {
  log.error('filter onDone failed', { filter, ...describeError(err) });
}
