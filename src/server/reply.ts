/** Replies the gateway writes itself: errors in the client's protocol, and plain JSON. */

import type { GatewayError } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import type { LocalReply } from '../pipeline/filter.js';
import { inboundCodec } from '../protocol/index.js';
import { describeError, log } from '../observability/logger.js';
import type { ClientResponse } from './client-response.js';

export function sendError(out: ClientResponse, ctx: RequestContext, error: GatewayError): void {
  ctx.status = error.status;
  const headers = ctx.responseHeaders;
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = ctx.id;
  out.send(error.status, headers, JSON.stringify(inboundCodec(ctx.protocol).encodeError(error)));
}

export function sendLocalReply(out: ClientResponse, ctx: RequestContext, reply: LocalReply): void {
  if (reply.headers) Object.assign(ctx.responseHeaders, reply.headers);
  if (reply.error) {
    sendError(out, ctx, reply.error);
    return;
  }
  ctx.status = reply.status;
  const headers = ctx.responseHeaders;
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = ctx.id;
  out.send(reply.status, headers, JSON.stringify(reply.body ?? {}));
}

/** onDone hooks must not fail a request that is already answered: log and go on. */
export function onDoneFailed(filter: string, err: unknown): void {
  log.error('filter onDone failed', { filter, ...describeError(err) });
}
