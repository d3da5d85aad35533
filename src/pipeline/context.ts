/**
 * Per-request state shared by the filters, the router and the server. Small on purpose: a filter's
 * own configuration lives in the filter (built once per config snapshot), not here.
 */

import { clock } from '../clock.js';
import type { Usage } from '../protocol/canonical.js';
import type { JsonObject, WireProtocol } from '../protocol/codec.js';
import type { Operation } from '../providers/provider.js';
import type { ResolvedRoute } from '../routing/model-router.js';

export interface HeaderEdits {
  set: Record<string, string>;
  remove: string[];
}

export class RequestContext {
  /** Monotonic start time, ms. */
  readonly startMs: number = clock.monotonicMs();
  /** The body as the client sent it, parsed. Filters that edit it must set `bodyChanged`. */
  body: JsonObject = {};
  /** The body's bytes as the client sent them (a plugin reads these instead of re-serialising `body`). */
  rawBody: Uint8Array | undefined = undefined;
  bodyChanged = false;
  /** The model the client asked for. */
  model = '';
  stream = false;
  /** The consumer the key belongs to (auth filter); undefined when unauthenticated. */
  consumer: string | undefined = undefined;
  /** Set by the model filter. */
  route: ResolvedRoute | undefined = undefined;
  /** Edits to apply to the upstream request's headers, after the provider set its own. */
  readonly upstreamHeaderEdits: HeaderEdits = { set: {}, remove: [] };
  /** Extra headers for the client's response; filters may edit them in onResponseHeaders. */
  readonly responseHeaders: Record<string, string> = {};
  /** What served the request, once known. */
  provider = '';
  upstreamModel = '';
  /** The endpoint (base URL) of the last attempt. */
  endpoint = '';
  /** The type of the last attempt's provider (openai, anthropic, vllm, …), for metrics and prices. */
  providerType = '';
  /** A fallback (not one of the route's weighted targets) served or last tried the request. */
  fallback = false;
  /** Each failed attempt: provider and error kind (metrics), in order; undefined when none failed. */
  upstreamErrors: { provider: string; status: number; code: string }[] | undefined = undefined;
  /** The error code answered when the request failed. */
  errorCode = '';
  /** Cost of the real usage in micro-USD, once computed (accounting); -1 = not yet. */
  costMicros = -1;
  /** False when the served model had no known price. */
  priced = true;
  /** Which gateway limit refused the request, when one did. */
  rateLimited: string | undefined = undefined;
  /** What the limits filter holds for this request between admission and its end (limits-filter.ts). */
  limitHold: object | undefined = undefined;
  /**
   * The Wasm plugins' HTTP contexts of this request, one per plugin filter (src/wasm/plugin-filter.ts).
   * A short list scanned by owner: a WeakMap per filter cost an ephemeron per request and plugin.
   */
  pluginStreams: { readonly owner: object | undefined }[] | undefined = undefined;
  attempts = 0;
  /** HTTP status sent to the client, once sent. */
  status = 0;
  /** Monotonic time of the first body byte sent to the client. */
  firstByteMs = 0;
  usage: Usage | undefined = undefined;
  /**
   * What the response cache did (its `x-sluice-cache` status); undefined when no cache looked. On a
   * hit nothing was bought upstream: `usage` is the replayed answer's, all input marked cached, and
   * accounting must book it as cached tokens at zero spend (docs/cache.md, usage rule).
   */
  cache: 'hit' | 'semantic-hit' | 'miss' | 'bypass' | undefined = undefined;
  /** True once the client went away. */
  aborted = false;

  constructor(
    readonly id: string,
    readonly method: string,
    readonly path: string,
    /** Lower-case names. */
    readonly headers: Readonly<Record<string, string>>,
    /** The protocol the client speaks: errors and answers are rendered in it. */
    readonly protocol: WireProtocol,
    readonly op: Operation,
  ) {}
}
