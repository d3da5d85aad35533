/**
 * The host's state for one request seen by one plugin: the proxy-wasm "HTTP context". It holds the
 * plugin's view of the request (header maps over the RequestContext's records, body bytes), the
 * instance the request is bound to, and the pause/resume handshake between an async filter hook and
 * the plugin.
 *
 * One object per request and plugin, and nothing else unless the plugin asks for it: in a gateway
 * worker every request meets the plugin with cold caches, so each extra object or map costs more in
 * cache misses than in instructions.
 */

import type { RequestContext } from '../pipeline/context.js';
import type { FilterResult, LocalReply } from '../pipeline/filter.js';
import { HeaderMap, type HeaderPairs } from './header-map.js';
import type { PluginVm } from './plugin-vm.js';

function requestPseudoFields(ctx: RequestContext): HeaderPairs {
  return [
    [':method', ctx.method],
    [':path', ctx.path],
    [':authority', ctx.headers['host'] ?? ''],
    [':scheme', 'http'],
  ];
}
const REQUEST_PSEUDO_COUNT = 4;

function responsePseudoFields(ctx: RequestContext): HeaderPairs {
  return ctx.status ? [[':status', String(ctx.status)]] : [];
}

export class HttpStream {
  private reqHeaders: HeaderMap | undefined = undefined;
  private resHeaders: HeaderMap | undefined = undefined;
  private reqTrailers: HeaderMap | undefined = undefined;
  private resTrailers: HeaderMap | undefined = undefined;
  private props: Map<string, Uint8Array> | undefined = undefined;

  /**
   * The request body as the plugin sees it. Set as a string or bytes by the filter; encoded to bytes
   * only when the plugin reads or edits it, since most plugins never do.
   */
  private reqBody: Uint8Array | undefined = undefined;
  private reqBodyText: string | undefined = undefined;
  private reqBodySize = 0;
  requestBodyEdited = false;
  responseBody: Uint8Array | undefined = undefined;
  responseBodyEdited = false;

  /** Set by proxy_send_local_response. */
  localReply: LocalReply | undefined = undefined;
  /** Header versions the host last wrote back to the RequestContext. */
  appliedRequestHeaders = 0;
  appliedResponseHeaders = 0;
  /** Upstream header names this plugin put into ctx.upstreamHeaderEdits.set. */
  setKeys: string[] | undefined = undefined;

  /** While a filter hook waits for the plugin: the function that ends the wait. */
  private waiter: ((result: FilterResult) => void) | undefined = undefined;
  /** proxy_continue_stream came before the callback returned Pause (legal, if unusual). */
  resumeRequested = false;
  /** HTTP calls started from this context and not answered yet. */
  pendingCalls = 0;

  /** The plugin trapped or broke a limit while handling this request; skip it from now on. */
  failed = false;
  requestHeadersDelivered = false;
  responseHeadersDelivered = false;
  /** The last response body callback had end_of_stream set. */
  responseEos = false;
  /** proxy_on_done returned false: on_log/on_delete wait for proxy_done. */
  awaitingDone = false;
  deleted = false;
  /** The filter this stream belongs to: a request's streams are found by it (RequestContext.pluginStreams). */
  owner: object | undefined = undefined;

  constructor(
    readonly id: number,
    readonly ctx: RequestContext,
    /** The instance this request started on; it finishes there even if a reload or trap replaces it. */
    readonly vm: PluginVm,
  ) {}

  /** The request's fields plus the pseudo-headers Envoy plugins read (`:path`, `:method`, …). */
  get requestHeaders(): HeaderMap {
    return (this.reqHeaders ??= HeaderMap.over(this.ctx.headers, requestPseudoFields, this.ctx));
  }

  /** True when the plugin changed the request headers since the host last wrote them back. */
  get requestHeadersChanged(): boolean {
    return this.reqHeaders !== undefined && this.reqHeaders.version !== this.appliedRequestHeaders;
  }

  get requestTrailers(): HeaderMap {
    return (this.reqTrailers ??= new HeaderMap());
  }

  get responseTrailers(): HeaderMap {
    return (this.resTrailers ??= new HeaderMap());
  }

  /** Values written by proxy_set_property, keyed by the dotted path. */
  get properties(): Map<string, Uint8Array> {
    return (this.props ??= new Map());
  }

  ownProperty(key: string): Uint8Array | undefined {
    return this.props?.get(key);
  }

  setRequestBodyText(text: string): void {
    this.reqBodyText = text;
    this.reqBody = undefined;
    this.reqBodySize = Buffer.byteLength(text, 'utf8');
  }

  setRequestBodyBytes(bytes: Uint8Array): void {
    this.reqBodyText = undefined;
    this.reqBody = bytes;
    this.reqBodySize = bytes.byteLength;
  }

  get requestBodySize(): number {
    return this.reqBodySize;
  }

  get requestBody(): Uint8Array | undefined {
    if (this.reqBody === undefined && this.reqBodyText !== undefined) {
      this.reqBody = Buffer.from(this.reqBodyText, 'utf8');
      this.reqBodyText = undefined;
    }
    return this.reqBody;
  }

  set requestBody(bytes: Uint8Array | undefined) {
    this.reqBodyText = undefined;
    this.reqBody = bytes;
    this.reqBodySize = bytes?.byteLength ?? 0;
  }

  /** Counted without a map: the common plugin never asks for the pairs. */
  requestHeaderCount(): number {
    if (this.reqHeaders !== undefined) return this.reqHeaders.size;
    let n = REQUEST_PSEUDO_COUNT;
    for (const _ in this.ctx.headers) n++;
    return n;
  }

  responseHeaderCount(): number {
    if (this.resHeaders !== undefined) return this.resHeaders.size;
    let n = this.ctx.status ? 1 : 0;
    for (const _ in this.ctx.responseHeaders) n++;
    return n;
  }

  /**
   * A view over ctx.responseHeaders, made again for each response-headers phase because other
   * filters write that record too.
   */
  get responseHeaders(): HeaderMap {
    return (this.resHeaders ??= HeaderMap.over(this.ctx.responseHeaders, responsePseudoFields, this.ctx));
  }

  resetResponseHeaders(): void {
    this.resHeaders = undefined;
    this.appliedResponseHeaders = 0;
  }

  get responseHeadersChanged(): boolean {
    return this.resHeaders !== undefined && this.resHeaders.version !== this.appliedResponseHeaders;
  }

  get paused(): boolean {
    return this.waiter !== undefined;
  }

  /** Called by the filter when a callback returned Pause. */
  wait(): Promise<FilterResult> {
    return new Promise<FilterResult>((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Ends a wait (continue, local reply or failure); false when nothing was waiting. */
  resume(result: FilterResult): boolean {
    const w = this.waiter;
    if (w === undefined) return false;
    this.waiter = undefined;
    w(result);
    return true;
  }
}
