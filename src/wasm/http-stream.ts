/**
 * The host's state for one request seen by one plugin: the proxy-wasm "HTTP context". It holds the
 * plugin's view of the request (header maps built lazily from the RequestContext, body bytes) and the
 * pause/resume handshake between an async filter hook and the plugin.
 */

import type { RequestContext } from '../pipeline/context.js';
import type { FilterResult, LocalReply } from '../pipeline/filter.js';
import { HeaderMap, type HeaderPairs } from './header-map.js';

export type StreamPhase = 'request' | 'response';

export class HttpStream {
  private reqHeaders: HeaderMap | undefined;
  private resHeaders: HeaderMap | undefined;
  private reqTrailers: HeaderMap | undefined;
  private resTrailers: HeaderMap | undefined;
  private props: Map<string, Uint8Array> | undefined;

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
  /** proxy_on_done returned false: on_log/on_delete wait for proxy_done. */
  awaitingDone = false;
  deleted = false;

  constructor(
    readonly id: number,
    readonly ctx: RequestContext,
  ) {}

  /** The request's fields plus the pseudo-headers Envoy plugins read (`:path`, `:method`, …). */
  get requestHeaders(): HeaderMap {
    if (this.reqHeaders === undefined) {
      const ctx = this.ctx;
      const pseudo: HeaderPairs = [
        [':method', ctx.method],
        [':path', ctx.path],
        [':authority', ctx.headers['host'] ?? ''],
        [':scheme', 'http'],
      ];
      this.reqHeaders = HeaderMap.fromRecord(ctx.headers, pseudo);
    }
    return this.reqHeaders;
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

  /** Counted without building the map: the common plugin never asks for the pairs. */
  requestHeaderCount(): number {
    if (this.reqHeaders !== undefined) return this.reqHeaders.size;
    let n = 4;
    for (const _ in this.ctx.headers) n++;
    return n;
  }

  responseHeaderCount(): number {
    if (this.resHeaders !== undefined) return this.resHeaders.size;
    let n = this.ctx.status ? 1 : 0;
    for (const _ in this.ctx.responseHeaders) n++;
    return n;
  }

  /** Rebuilt per response-headers phase, because other filters write ctx.responseHeaders too. */
  get responseHeaders(): HeaderMap {
    if (this.resHeaders === undefined) {
      const status = this.ctx.status;
      this.resHeaders = HeaderMap.fromRecord(this.ctx.responseHeaders, status ? [[':status', String(status)]] : []);
    }
    return this.resHeaders;
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
