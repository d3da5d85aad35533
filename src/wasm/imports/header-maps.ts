/**
 * The header/trailer map functions. Which map a `map_type` means depends on the effective context:
 * request and response maps belong to the stream, HTTP-call maps exist only while
 * proxy_on_http_call_response runs.
 */

import { MapType, Status } from '../abi-constants.js';
import { parseHeaderPairs, serializedSize, writeHeaderPairs, type HeaderMap } from '../header-map.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

/** The map, 'none' when the type is valid but absent here (NotFound), undefined for a bad type. */
function mapFor(vm: PluginVm, mapType: number): HeaderMap | 'none' | undefined {
  const s = vm.effective;
  switch (mapType) {
    case MapType.RequestHeaders:
      return s ? s.requestHeaders : 'none';
    case MapType.RequestTrailers:
      return s ? s.requestTrailers : 'none';
    case MapType.ResponseHeaders:
      return s ? s.responseHeaders : 'none';
    case MapType.ResponseTrailers:
      return s ? s.responseTrailers : 'none';
    case MapType.HttpCallResponseHeaders:
      return vm.callResponse?.headers ?? 'none';
    case MapType.HttpCallResponseTrailers:
      return vm.callResponse?.trailers ?? 'none';
    case MapType.GrpcInitialMetadata:
    case MapType.GrpcTrailingMetadata:
      return 'none';
    default:
      return undefined;
  }
}

// Made once: these run several times per request, and a closure per call is garbage per call.
type Edit = (map: HeaderMap, key: string, value: string) => void;
const ADD: Edit = (m, k, v) => m.add(k, v);
const REPLACE: Edit = (m, k, v) => m.replace(k, v);
const REMOVE: Edit = (m, k) => m.remove(k);

/** Writes may not touch the answer of an HTTP call: it is the host's, not the plugin's. */
function writable(mapType: number): boolean {
  return mapType <= MapType.ResponseTrailers;
}

export function headerMapImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  return {
    proxy_get_header_map_size(mapType: number, retSize: number): number {
      const map = mapFor(vm, mapType);
      if (map === undefined) return Status.BadArgument;
      if (map === 'none') return Status.NotFound;
      return mem.writeU32(retSize, serializedSize(map.pairs)) ? Status.Ok : Status.InvalidMemoryAccess;
    },
    proxy_get_header_map_pairs(mapType: number, retData: number, retSize: number): number {
      const map = mapFor(vm, mapType);
      if (map === undefined) return Status.BadArgument;
      if (map === 'none') return Status.NotFound;
      const pairs = map.pairs;
      return mem.returnFilled(serializedSize(pairs), (buf, at) => writeHeaderPairs(pairs, buf, at), retData, retSize);
    },
    proxy_set_header_map_pairs(mapType: number, ptr: number, len: number): number {
      const map = mapFor(vm, mapType);
      if (map === undefined || !writable(mapType)) return Status.BadArgument;
      if (map === 'none') return Status.NotFound;
      const bytes = mem.view8(ptr, len);
      if (bytes === undefined) return Status.InvalidMemoryAccess;
      const pairs = parseHeaderPairs(bytes);
      if (pairs === undefined) return Status.BadArgument;
      map.setAll(pairs);
      return Status.Ok;
    },
    proxy_get_header_map_value(mapType: number, kPtr: number, kLen: number, retData: number, retSize: number): number {
      const map = mapFor(vm, mapType);
      if (map === undefined) return Status.BadArgument;
      if (map === 'none') return Status.NotFound;
      let key = mem.fieldName(kPtr, kLen);
      if (key === undefined) return Status.InvalidMemoryAccess;
      // Not a token: only a whole-map replace can have put such a name in.
      if (key === null) key = mem.string(kPtr, kLen)!.toLowerCase();
      const value = map.get(key);
      if (value === undefined) return Status.NotFound;
      return mem.returnString(value, retData, retSize);
    },
    proxy_add_header_map_value(mapType: number, kPtr: number, kLen: number, vPtr: number, vLen: number): number {
      return edit(vm, mapType, kPtr, kLen, vPtr, vLen, ADD);
    },
    proxy_replace_header_map_value(mapType: number, kPtr: number, kLen: number, vPtr: number, vLen: number): number {
      return edit(vm, mapType, kPtr, kLen, vPtr, vLen, REPLACE);
    },
    proxy_remove_header_map_value(mapType: number, kPtr: number, kLen: number): number {
      return edit(vm, mapType, kPtr, kLen, 0, 0, REMOVE);
    },
  };
}

function edit(
  vm: PluginVm,
  mapType: number,
  kPtr: number,
  kLen: number,
  vPtr: number,
  vLen: number,
  apply: (map: HeaderMap, key: string, value: string) => void,
): number {
  const map = mapFor(vm, mapType);
  if (map === undefined || !writable(mapType)) return Status.BadArgument;
  if (map === 'none') return Status.NotFound;
  const key = vm.mem.fieldName(kPtr, kLen);
  const value = vm.mem.fieldValue(vPtr, vLen);
  if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
  // A name must be an HTTP token (or a pseudo-header); CR/LF/NUL in a value would let a plugin
  // smuggle a second header line upstream.
  if (key === null || value === null) return Status.BadArgument;
  apply(map, key, value);
  return Status.Ok;
}
