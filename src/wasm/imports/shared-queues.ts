/** Shared queues: register/resolve by name, enqueue/dequeue by id, proxy_on_queue_ready on enqueue. */

import { Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

export function sharedQueueImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  const queues = vm.deps.sharedQueues;
  return {
    proxy_register_shared_queue(nPtr: number, nLen: number, retId: number): number {
      const name = mem.string(nPtr, nLen);
      if (name === undefined || !mem.inBounds(retId, 4)) return Status.InvalidMemoryAccess;
      const id = queues.register(vm.identity.vmId, name);
      if (id === undefined) return Status.InternalFailure;
      // The registering plugin is the consumer: it gets proxy_on_queue_ready for this queue.
      vm.subscribeQueue(id);
      mem.writeU32(retId, id);
      return Status.Ok;
    },
    proxy_resolve_shared_queue(vPtr: number, vLen: number, nPtr: number, nLen: number, retId: number): number {
      const vmId = mem.string(vPtr, vLen);
      const name = mem.string(nPtr, nLen);
      if (vmId === undefined || name === undefined || !mem.inBounds(retId, 4)) return Status.InvalidMemoryAccess;
      const id = queues.resolve(vmId === '' ? vm.identity.vmId : vmId, name);
      if (id === undefined) return Status.NotFound;
      mem.writeU32(retId, id);
      return Status.Ok;
    },
    proxy_enqueue_shared_queue(id: number, vPtr: number, vLen: number): number {
      const value = mem.copy(vPtr, vLen);
      if (value === undefined) return Status.InvalidMemoryAccess;
      const r = queues.enqueue(id >>> 0, value);
      return r === 'ok' ? Status.Ok : r === 'not_found' ? Status.NotFound : Status.InternalFailure;
    },
    proxy_dequeue_shared_queue(id: number, retData: number, retSize: number): number {
      if (!mem.inBounds(retData, 4) || !mem.inBounds(retSize, 4)) return Status.InvalidMemoryAccess;
      const item = queues.dequeue(id >>> 0);
      if (item === 'not_found') return Status.NotFound;
      if (item === 'empty') return Status.Empty;
      return mem.returnBytes(item, retData, retSize);
    },
  };
}
