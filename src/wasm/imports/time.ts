/** proxy_get_current_time_nanoseconds and proxy_set_tick_period_milliseconds. */

import { clock } from '../../clock.js';
import { Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function timeImports(vm: PluginVm): HostFunctions {
  return {
    proxy_get_current_time_nanoseconds(retTime: number): number {
      // Wall time, as Envoy gives: plugins use it for timestamps and token expiry.
      const ns = BigInt(Math.round(clock.wallMs() * 1000)) * 1000n;
      return vm.mem.writeU64(retTime, ns) ? Status.Ok : Status.InvalidMemoryAccess;
    },
    proxy_set_tick_period_milliseconds(period: number): number {
      vm.setTickPeriod(period >>> 0);
      return Status.Ok;
    },
  };
}
