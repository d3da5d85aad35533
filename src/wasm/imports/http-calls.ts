/** proxy_http_call (also exported as proxy_dispatch_http_call, the name some SDKs document). */

import { Status } from '../abi-constants.js';
import { parseHeaderPairs } from '../header-map.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function httpCallImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  const call = (
    upPtr: number,
    upLen: number,
    hPtr: number,
    hLen: number,
    bPtr: number,
    bLen: number,
    tPtr: number,
    tLen: number,
    timeoutMs: number,
    retToken: number,
  ): number => {
    const upstream = mem.string(upPtr, upLen);
    const hBytes = mem.view8(hPtr, hLen);
    const body = mem.copy(bPtr, bLen);
    const tBytes = mem.view8(tPtr, tLen);
    if (upstream === undefined || hBytes === undefined || body === undefined || tBytes === undefined) {
      return Status.InvalidMemoryAccess;
    }
    if (!mem.inBounds(retToken, 4)) return Status.InvalidMemoryAccess;
    const headers = parseHeaderPairs(hBytes);
    const trailers = parseHeaderPairs(tBytes);
    if (headers === undefined || trailers === undefined) return Status.BadArgument;
    if (!vm.deps.httpCaller.has(upstream)) return Status.BadArgument;
    const has = (name: string) => headers.some(([k]) => k === name);
    if (!has(':method') || !has(':path') || !has(':authority')) return Status.BadArgument;
    const token = vm.startHttpCall(vm.effective, {
      upstream,
      headers,
      body,
      trailers,
      timeoutMs: timeoutMs >>> 0 || 5000,
    });
    mem.writeU32(retToken, token);
    return Status.Ok;
  };
  return { proxy_http_call: call, proxy_dispatch_http_call: call };
}
