/** proxy_get_shared_data / proxy_set_shared_data, scoped by the plugin's VM id. */

import { Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function sharedDataImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  const store = vm.deps.sharedData;
  const vmId = vm.identity.vmId;
  return {
    proxy_get_shared_data(kPtr: number, kLen: number, retData: number, retSize: number, retCas: number): number {
      const key = mem.string(kPtr, kLen);
      if (key === undefined || !mem.inBounds(retCas, 4)) return Status.InvalidMemoryAccess;
      const entry = store.get(vmId, key);
      if (entry === undefined) return Status.NotFound;
      const st = mem.returnBytes(entry.value, retData, retSize);
      if (st !== Status.Ok) return st;
      mem.writeU32(retCas, entry.cas);
      return Status.Ok;
    },
    proxy_set_shared_data(kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number): number {
      const key = mem.string(kPtr, kLen);
      const value = mem.copy(vPtr, vLen);
      if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
      const r = store.set(vmId, key, value, cas >>> 0);
      return r === 'ok' ? Status.Ok : r === 'cas_mismatch' ? Status.CasMismatch : Status.InternalFailure;
    },
  };
}
