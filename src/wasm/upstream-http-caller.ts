/**
 * An HttpCaller over undici for upstreams named in config: a plugin names the upstream, never an
 * address, so it can reach only what the operator listed. `:path` is appended to the upstream's URL,
 * `:method` is the method, `:authority` becomes the Host header.
 */

import { request } from 'undici';
import type { HeaderPairs } from './header-map.js';
import type { HttpCallRequest, HttpCallResponse, HttpCaller } from './seams.js';

export interface UpstreamTarget {
  /** Base URL, e.g. `http://127.0.0.1:9000` or `https://auth.internal/v1`. */
  url: string;
  /** Largest answer body read; beyond it the call fails. */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

export class UpstreamHttpCaller implements HttpCaller {
  private readonly upstreams: Map<string, { base: URL; maxBody: number }>;

  constructor(upstreams: Readonly<Record<string, UpstreamTarget>>) {
    this.upstreams = new Map(
      Object.entries(upstreams).map(([name, t]) => [name, { base: new URL(t.url), maxBody: t.maxBodyBytes ?? DEFAULT_MAX_BODY }]),
    );
  }

  has(upstream: string): boolean {
    return this.upstreams.has(upstream);
  }

  async call(req: HttpCallRequest): Promise<HttpCallResponse> {
    const target = this.upstreams.get(req.upstream);
    if (target === undefined) throw new Error(`unknown upstream ${req.upstream}`);
    let method = 'GET';
    let path = '/';
    let authority: string | undefined;
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) {
      if (k === ':method') method = v;
      else if (k === ':path') path = v;
      else if (k === ':authority') authority = v;
      else if (!k.startsWith(':')) headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    if (authority) headers['host'] = authority;
    const base = target.base;
    const url = new URL(base.pathname.replace(/\/$/, '') + path, base.origin);
    const res = await request(url, {
      method: method as 'GET',
      headers,
      body: req.body.byteLength > 0 ? req.body : null,
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).byteLength;
      if (size > target.maxBody) {
        res.body.destroy();
        throw new Error(`answer from ${req.upstream} is larger than ${target.maxBody} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return {
      status: res.statusCode,
      headers: toPairs(res.headers),
      body: Buffer.concat(chunks),
      trailers: toPairs(res.trailers),
    };
  }
}

function toPairs(record: Record<string, string | string[] | undefined>): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [k, v] of Object.entries(record)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, v]);
  }
  return out;
}
