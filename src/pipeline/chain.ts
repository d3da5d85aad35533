/**
 * The filter chain runner. Hook lists are computed once per chain (per config snapshot), so a
 * request only visits filters that implement a hook, and a synchronous chain never allocates a
 * promise.
 */

import type { GatewayError } from '../errors.js';
import type { Filter, FilterResult, LocalReply, ResponseEvent } from './filter.js';
import type { RequestContext } from './context.js';

type RequestHook = 'onRequestHeaders' | 'onRequestBody';

function isPromise(v: unknown): v is Promise<FilterResult> {
  return typeof v === 'object' && v !== null && typeof (v as Promise<unknown>).then === 'function';
}

export class FilterChain {
  private readonly requestHeaders: Filter[];
  private readonly requestBody: Filter[];
  private readonly responseHeaders: Filter[];
  private readonly responseEvent: Filter[];
  private readonly done: Filter[];

  constructor(readonly filters: readonly Filter[]) {
    this.requestHeaders = filters.filter((f) => f.onRequestHeaders);
    this.requestBody = filters.filter((f) => f.onRequestBody);
    this.responseHeaders = filters.filter((f) => f.onResponseHeaders);
    this.responseEvent = filters.filter((f) => f.onResponseEvent);
    this.done = filters.filter((f) => f.onDone);
  }

  /** True when some filter must see decoded answers, which rules out byte pass-through. */
  get inspectsResponses(): boolean {
    return this.responseEvent.length > 0;
  }

  runRequestHeaders(ctx: RequestContext): LocalReply | undefined | Promise<LocalReply | undefined> {
    return this.runRequest(this.requestHeaders, 'onRequestHeaders', ctx, 0);
  }

  runRequestBody(ctx: RequestContext): LocalReply | undefined | Promise<LocalReply | undefined> {
    return this.runRequest(this.requestBody, 'onRequestBody', ctx, 0);
  }

  private runRequest(
    list: Filter[],
    hook: RequestHook,
    ctx: RequestContext,
    from: number,
  ): LocalReply | undefined | Promise<LocalReply | undefined> {
    for (let i = from; i < list.length; i++) {
      const r = (list[i] as Required<Filter>)[hook](ctx);
      if (isPromise(r)) return this.continueAsync(list, hook, ctx, i, r);
      if (r) return r;
    }
    return undefined;
  }

  private async continueAsync(
    list: Filter[],
    hook: RequestHook,
    ctx: RequestContext,
    at: number,
    pending: Promise<FilterResult>,
  ): Promise<LocalReply | undefined> {
    const r = await pending;
    if (r) return r;
    return this.runRequest(list, hook, ctx, at + 1);
  }

  runResponseHeaders(ctx: RequestContext): void {
    for (const f of this.responseHeaders) f.onResponseHeaders!(ctx);
  }

  /** The first error a filter returned (the answer ends there), else undefined. */
  runResponseEvent(ctx: RequestContext, event: ResponseEvent): GatewayError | undefined {
    for (const f of this.responseEvent) {
      const stop = f.onResponseEvent!(ctx, event);
      if (stop !== undefined) return stop;
    }
    return undefined;
  }

  /** Never throws: a failing onDone hook must not disturb other filters or the server. */
  runDone(ctx: RequestContext, onError: (filter: string, err: unknown) => void): void {
    for (const f of this.done) {
      try {
        f.onDone!(ctx);
      } catch (err) {
        onError(f.name, err);
      }
    }
  }
}
