/** Shared memory across gateway processes: the segment, its one layout table, typed accessors. */

export {
  createSegment,
  listSegments,
  openSegment,
  pidIsAlive,
  removeStaleSegments,
  SEGMENT_PREFIX,
  segmentName,
  segmentOwnerPid,
  unlinkSegment,
} from './segment.js';
export {
  CACHE_LINE_BYTES,
  inFlightRowBytes,
  computeLayout,
  DEFAULT_LAYOUT_PARAMS,
  ENDPOINT_FIELDS,
  ENDPOINT_RECORD_BYTES,
  HEADER_BYTES,
  HEADER_FIELDS,
  LAYOUT_LIMITS,
  LAYOUT_MAGIC,
  LAYOUT_VERSION,
  LayoutError,
  readLayout,
  REGIONS,
  SegmentHeader,
  WORKER_FIELDS,
  WORKER_RECORD_BYTES,
  writeHeader,
  type FieldSpec,
  type Layout,
  type LayoutParams,
  type RegionExtent,
  type RegionName,
  type RegionSpec,
} from './layout.js';
export { sharedClockMs } from './shared-clock.js';
export { EndpointCounters } from './endpoint-counters.js';
export { EndpointSlots, endpointKeyHash, type EndpointIdentity } from './endpoint-slots.js';
export { WorkerSlots, type WorkerSlotState } from './worker-slots.js';
export { SharedMemory, type OpenOptions } from './shared-memory.js';
export {
  DEFAULT_LIMIT_KEY_CAPACITY,
  LIMIT_KEY_BYTES,
  LIMIT_RECORD_BYTES,
  LIMIT_RING_SLOTS,
  LIMIT_WINDOW_FIELDS,
  limitConcurrencyBlockBytes,
  limitKeyCapacity,
} from './layout.js';
export { LimitKeys, limitKeyHash } from './limit-keys.js';
export {
  LimitWindows,
  QUOTA_PACKING,
  RATE_PACKING,
  type WindowBucket,
  type WindowMetric,
  type WindowPacking,
} from './limit-windows.js';
export { LimitConcurrency } from './limit-concurrency.js';
export {
  DEFAULT_PREFIX_INDEX_ENTRIES,
  PREFIX_ENDPOINT_FIELDS,
  PREFIX_ENDPOINT_RECORD_BYTES,
  PREFIX_ENTRY_BYTES,
  PREFIX_ENTRY_FIELDS,
  PREFIX_INDEX_WAYS,
  PREFIX_TICK_MS,
  prefixIndexBuckets,
  prefixIndexEntries,
} from './layout.js';
export { MAX_PREFIX_CAPACITY, PrefixIndex } from './prefix-index.js';
export { ReplicaMetrics, type ReplicaSample } from './replica-metrics.js';
