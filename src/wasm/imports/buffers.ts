/**
 * Buffer functions: the body in flight, an HTTP call's answer, the configuration. Bodies are whole
 * (the gateway reads bounded bodies before filters run), so `start`/`size` address one contiguous
 * byte range.
 */

import { BufferType, Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

function bufferFor(vm: PluginVm, type: number): Uint8Array | 'none' | undefined {
  const s = vm.effective;
  switch (type) {
    case BufferType.RequestBody:
      return s?.requestBody ?? 'none';
    case BufferType.ResponseBody:
      return s?.responseBody ?? 'none';
    case BufferType.HttpCallResponseBody:
    case BufferType.VmConfiguration:
    case BufferType.PluginConfiguration:
    case BufferType.ForeignFunctionArguments:
      return vm.callbackBuffers.get(type) ?? (type === BufferType.PluginConfiguration ? vm.pluginConfig : 'none');
    case BufferType.DownstreamData:
    case BufferType.UpstreamData:
    case BufferType.GrpcMessage:
      return 'none';
    default:
      return undefined;
  }
}

export function bufferImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  return {
    proxy_get_buffer_status(type: number, retSize: number, retFlags: number): number {
      const buf = bufferFor(vm, type);
      if (buf === undefined) return Status.BadArgument;
      if (buf === 'none') return Status.NotFound;
      if (!mem.writeU32(retSize, buf.byteLength) || !mem.writeU32(retFlags, 0)) return Status.InvalidMemoryAccess;
      return Status.Ok;
    },
    proxy_get_buffer_bytes(type: number, start: number, maxSize: number, retData: number, retSize: number): number {
      const buf = bufferFor(vm, type);
      if (buf === undefined) return Status.BadArgument;
      if (buf === 'none') return Status.NotFound;
      const from = start >>> 0;
      if (from > buf.byteLength) return Status.BadArgument;
      const to = Math.min(buf.byteLength, from + (maxSize >>> 0));
      return mem.returnBytes(buf.subarray(from, to), retData, retSize);
    },
    proxy_set_buffer_bytes(type: number, start: number, size: number, ptr: number, len: number): number {
      const s = vm.effective;
      if (type !== BufferType.RequestBody && type !== BufferType.ResponseBody) {
        return bufferFor(vm, type) === undefined ? Status.BadArgument : Status.NotFound;
      }
      const current = type === BufferType.RequestBody ? s?.requestBody : s?.responseBody;
      if (s === undefined || current === undefined) return Status.NotFound;
      const value = mem.view8(ptr, len);
      if (value === undefined) return Status.InvalidMemoryAccess;
      // start ≥ length appends, (0,0) prepends, otherwise replace `size` bytes at `start`.
      const from = Math.min(start >>> 0, current.byteLength);
      const to = Math.min(current.byteLength, from + (size >>> 0));
      const next = new Uint8Array(current.byteLength - (to - from) + value.byteLength);
      next.set(current.subarray(0, from), 0);
      next.set(value, from);
      next.set(current.subarray(to), from + value.byteLength);
      if (type === BufferType.RequestBody) {
        s.requestBody = next;
        s.requestBodyEdited = true;
      } else {
        s.responseBody = next;
        s.responseBodyEdited = true;
      }
      return Status.Ok;
    },
    /** ABI 0.1.0's way to read the plugin configuration. */
    proxy_get_configuration(retData: number, retSize: number): number {
      return mem.returnBytes(vm.pluginConfig, retData, retSize);
    },
  };
}
