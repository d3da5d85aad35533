/** proxy_define_metric, proxy_increment_metric, proxy_record_metric, proxy_get_metric. */

import { MetricType, Status, type MetricKind } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

const KINDS: Record<number, MetricKind> = {
  [MetricType.Counter]: 'counter',
  [MetricType.Gauge]: 'gauge',
  [MetricType.Histogram]: 'histogram',
};

export function metricImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;
  const sink = vm.deps.metrics;
  return {
    proxy_define_metric(type: number, nPtr: number, nLen: number, retId: number): number {
      const kind = KINDS[type];
      if (kind === undefined) return Status.BadArgument;
      const name = mem.string(nPtr, nLen);
      if (name === undefined || !mem.inBounds(retId, 4)) return Status.InvalidMemoryAccess;
      const id = sink.define(kind, name);
      if (id === 'bad_argument') return Status.BadArgument;
      if (id === 'full') return Status.InternalFailure;
      mem.writeU32(retId, id);
      return Status.Ok;
    },
    // i64 parameters arrive as BigInt (JS-BigInt integration).
    proxy_increment_metric(id: number, delta: bigint): number {
      const r = sink.increment(id >>> 0, BigInt.asIntN(64, delta));
      return r === 'ok' ? Status.Ok : r === 'not_found' ? Status.NotFound : Status.BadArgument;
    },
    proxy_record_metric(id: number, value: bigint): number {
      return sink.record(id >>> 0, BigInt.asUintN(64, value)) === 'ok' ? Status.Ok : Status.NotFound;
    },
    proxy_get_metric(id: number, retValue: number): number {
      const v = sink.get(id >>> 0);
      if (v === undefined) return Status.NotFound;
      return mem.writeU64(retValue, v) ? Status.Ok : Status.InvalidMemoryAccess;
    },
  };
}
