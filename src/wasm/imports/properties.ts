/** proxy_get_property / proxy_set_property over the table in ../properties.ts. */

import { Status } from '../abi-constants.js';
import { DEFAULT_PROPERTIES, propertyKey } from '../properties.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function propertyImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  const table = { ...DEFAULT_PROPERTIES, ...vm.deps.properties };
  return {
    proxy_get_property(pathPtr: number, pathLen: number, retData: number, retSize: number): number {
      const path = mem.view8(pathPtr, pathLen);
      if (path === undefined) return Status.InvalidMemoryAccess;
      const key = propertyKey(path);
      const s = vm.effective;
      const own = s?.ownProperty(key);
      if (own !== undefined) return mem.returnBytes(own, retData, retSize);
      const getter = table[key];
      if (getter === undefined) return Status.NotFound;
      const value = getter(s?.ctx, vm.identity);
      if (value === undefined) return Status.NotFound;
      return mem.returnBytes(value, retData, retSize);
    },
    /** Only per-request values (Envoy's filter state); the gateway's own facts are read-only. */
    proxy_set_property(pathPtr: number, pathLen: number, valuePtr: number, valueLen: number): number {
      const path = mem.view8(pathPtr, pathLen);
      const value = mem.copy(valuePtr, valueLen);
      if (path === undefined || value === undefined) return Status.InvalidMemoryAccess;
      const s = vm.effective;
      if (s === undefined) return Status.NotFound;
      const key = propertyKey(path);
      if (key in table) return Status.BadArgument;
      s.properties.set(key, value);
      return Status.Ok;
    },
  };
}
