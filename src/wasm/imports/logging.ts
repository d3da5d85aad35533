/** proxy_log and proxy_get_log_level. */

import { Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function loggingImports(vm: PluginVm): HostFunctions {
  return {
    proxy_log(level: number, ptr: number, len: number): number {
      if (level < 0 || level > 5) return Status.BadArgument;
      if (level < vm.logLevel) return Status.Ok;
      const msg = vm.mem.string(ptr, len);
      if (msg === undefined) return Status.InvalidMemoryAccess;
      vm.deps.logger(vm.identity.name, level, msg);
      return Status.Ok;
    },
    proxy_get_log_level(retLevel: number): number {
      return vm.mem.writeU32(retLevel, vm.logLevel) ? Status.Ok : Status.InvalidMemoryAccess;
    },
  };
}
