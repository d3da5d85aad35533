/**
 * proxy_get_property: the values a plugin can read about the request and itself. Paths arrive as
 * NUL-separated segments (`request\0path`) and are looked up here joined with dots. Encodings follow
 * Envoy, because that is what SDK helpers decode: strings as UTF-8, integers as 8-byte little-endian,
 * booleans as one byte, header maps in the ABI's map serialization.
 */

import type { RequestContext } from '../pipeline/context.js';
import { serializeHeaderPairs, type HeaderPairs } from './header-map.js';

export interface PluginIdentity {
  name: string;
  rootId: string;
  vmId: string;
}

/** A value source for one property path; undefined means "not found". */
export type PropertyGetter = (ctx: RequestContext | undefined, plugin: PluginIdentity) => Uint8Array | undefined;

export function encodeString(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

export function encodeInt(n: number | bigint): Uint8Array {
  const out = Buffer.alloc(8);
  out.writeBigInt64LE(BigInt(n));
  return out;
}

export function encodeBool(b: boolean): Uint8Array {
  return Uint8Array.of(b ? 1 : 0);
}

function str(f: (ctx: RequestContext) => string | undefined): PropertyGetter {
  return (ctx) => {
    if (ctx === undefined) return undefined;
    const v = f(ctx);
    return v === undefined || v === '' ? undefined : encodeString(v);
  };
}

function queryOf(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? '' : path.slice(q + 1);
}

function urlPath(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/**
 * The built-in table. The gateway may add entries (consumer, …) by passing extra getters to the host;
 * they take precedence over these.
 */
export const DEFAULT_PROPERTIES: Readonly<Record<string, PropertyGetter>> = {
  plugin_name: (_ctx, p) => encodeString(p.name),
  plugin_root_id: (_ctx, p) => encodeString(p.rootId),
  plugin_vm_id: (_ctx, p) => encodeString(p.vmId),
  'request.path': str((c) => c.path),
  'request.url_path': str((c) => urlPath(c.path)),
  'request.query': str((c) => queryOf(c.path)),
  'request.method': str((c) => c.method),
  'request.host': str((c) => c.headers['host']),
  'request.scheme': str(() => 'http'),
  'request.protocol': str(() => 'HTTP/1.1'),
  'request.id': str((c) => c.id),
  'request.useragent': str((c) => c.headers['user-agent']),
  'request.referer': str((c) => c.headers['referer']),
  'request.headers': (ctx) => {
    if (ctx === undefined) return undefined;
    const pairs: HeaderPairs = Object.entries(ctx.headers);
    return serializeHeaderPairs(pairs);
  },
  'request.size': (ctx) => (ctx === undefined ? undefined : encodeInt(Number(ctx.headers['content-length'] ?? 0))),
  'response.code': (ctx) => (ctx === undefined || ctx.status === 0 ? undefined : encodeInt(ctx.status)),
  // Sluice's own request facts, under the names Higress plugins use where one exists.
  route_name: str((c) => c.route?.plan.name),
  cluster_name: str((c) => c.provider),
  model: str((c) => c.model),
  'sluice.model': str((c) => c.model),
  'sluice.upstream_model': str((c) => c.upstreamModel),
  'sluice.provider': str((c) => c.provider),
  'sluice.protocol': str((c) => c.protocol),
  'sluice.operation': str((c) => c.op),
  'sluice.stream': (ctx) => (ctx === undefined ? undefined : encodeBool(ctx.stream)),
};

/** NUL-separated segments → dotted key; a trailing NUL (some SDKs add one) is ignored. */
export function propertyKey(path: Uint8Array): string {
  let end = path.byteLength;
  while (end > 0 && path[end - 1] === 0) end--;
  return Buffer.from(path.buffer, path.byteOffset, end).toString('utf8').split('\0').join('.');
}
