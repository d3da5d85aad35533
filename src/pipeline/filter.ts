/**
 * The filter contract, modelled on Envoy's HTTP filters and proxy-wasm. A filter implements only the
 * hooks it needs. A request hook returns nothing to continue, or a LocalReply to answer at once
 * without calling the upstream. Hooks are synchronous unless they must wait (a Redis call, a pool
 * task): the runner only pays for a promise when a hook returns one.
 *
 * Phases, in order (see docs/filters.md for the diagram):
 *   onRequestHeaders  headers known, body not read yet (auth rejects here without reading a body)
 *   onRequestBody     body parsed (ctx.body); model resolution, limits, cache lookup, body edits
 *   ── the router picks a target and the provider adapter calls the upstream ──
 *   onResponseHeaders upstream answered; edit ctx.responseHeaders
 *   onResponseEvent   each canonical stream event, or the whole answer once
 *   onDone            the exchange is over (success, error or client gone); never fails the request
 */

import type { GatewayError } from '../errors.js';
import type { ChatResponse, StreamEvent } from '../protocol/canonical.js';
import type { JsonObject } from '../protocol/codec.js';
import type { RequestContext } from './context.js';

/** An answer given by a filter instead of the upstream's. */
export interface LocalReply {
  status: number;
  /** Rendered in the client's protocol. When set, `body` is ignored. */
  error?: GatewayError;
  /**
   * A whole answer in the canonical model, given as if the upstream had sent it: JSON in the client's
   * protocol, or replayed as a stream of events when the client asked for one (a cache hit). Response
   * filters see it like an upstream answer. When set (and `error` is not), `body` is ignored.
   */
  response?: ChatResponse;
  body?: JsonObject;
  headers?: Record<string, string>;
}

/** `undefined` (continue with the next filter) or a reply that ends the request. */
export type FilterResult = LocalReply | undefined | void;

type MaybeAsync<T> = T | Promise<T>;

/** What `onResponseEvent` sees: one stream event, or a whole non-streamed answer. */
export type ResponseEvent = StreamEvent | { type: 'response'; response: ChatResponse };

export interface Filter {
  /** For logs and metrics; e.g. `headers`, `model`. */
  readonly name: string;
  onRequestHeaders?(ctx: RequestContext): MaybeAsync<FilterResult>;
  onRequestBody?(ctx: RequestContext): MaybeAsync<FilterResult>;
  onResponseHeaders?(ctx: RequestContext): void;
  /**
   * Declaring this hook makes the gateway decode upstream answers even when it could have passed
   * the bytes through, so declare it only when the filter needs to see the content.
   */
  /**
   * Returning an error ends the answer there: the event is not sent; a stream ends with an error
   * event after what was already sent, a whole answer is replaced by the error (e.g. a budget spent
   * mid-stream, content that must not reach the client).
   */
  onResponseEvent?(ctx: RequestContext, event: ResponseEvent): void | GatewayError;
  onDone?(ctx: RequestContext): void;
}

export function localError(error: GatewayError): LocalReply {
  return { status: error.status, error };
}
