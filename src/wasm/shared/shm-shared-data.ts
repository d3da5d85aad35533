/**
 * proxy_get/set_shared_data over the plugin segment: every worker of the gateway reads and writes the
 * same entries, and compare-and-swap is decided under the segment lock, so two workers racing on one
 * key see exactly one winner (the other gets CAS_MISMATCH and retries, as plugins are written to).
 */

import type { SharedDataStore, SharedValue } from '../seams.js';
import { DATA_MAX_KEYS, DATA_OFFSET, DATA_SLOTS, fnv1a, sameBytes, type PluginSegment } from './plugin-segment.js';

/** Entry fields as u32 indices from the entry's start. */
const E_HASH = 0;
const E_KEY = 1;
const E_VALUE = 2;
const E_CAS = 3;

export class ShmSharedData implements SharedDataStore {
  constructor(private readonly seg: PluginSegment) {}

  get(vmId: string, key: string): SharedValue | undefined {
    const k = keyBytes(vmId, key);
    const hash = fnv1a(k);
    const seg = this.seg;
    return seg.locked(() => {
      const e = this.find(k, hash);
      if (e < 0 || seg.u32[e + E_KEY] === 0) return undefined;
      // A copy: the block may be reused by another worker as soon as the lock is released.
      return { value: seg.payload(seg.u32[e + E_VALUE]!).slice(), cas: seg.u32[e + E_CAS]! };
    });
  }

  set(vmId: string, key: string, value: Uint8Array, cas: number): 'ok' | 'cas_mismatch' | 'full' {
    const k = keyBytes(vmId, key);
    const hash = fnv1a(k);
    const seg = this.seg;
    return seg.locked(() => {
      const e = this.find(k, hash);
      if (e < 0) return 'full';
      const exists = seg.u32[e + E_KEY] !== 0;
      if (cas !== 0 && (!exists || seg.u32[e + E_CAS] !== cas)) return 'cas_mismatch';
      if (!exists && seg.keyCount >= DATA_MAX_KEYS) return 'full';
      const valueBlock = seg.allocBytes(value);
      if (valueBlock === 0) return 'full';
      if (!exists) {
        const keyBlock = seg.allocBytes(k);
        if (keyBlock === 0) {
          seg.free(valueBlock);
          return 'full';
        }
        seg.u32[e + E_HASH] = hash;
        seg.u32[e + E_KEY] = keyBlock;
        seg.keyCount = seg.keyCount + 1;
      } else {
        seg.free(seg.u32[e + E_VALUE]!);
      }
      seg.u32[e + E_VALUE] = valueBlock;
      seg.u32[e + E_CAS] = seg.nextCas();
      return 'ok';
    });
  }

  /** The u32 index of the key's entry, or of the empty entry where it would go; -1 if neither. */
  private find(k: Uint8Array, hash: number): number {
    const seg = this.seg;
    const base = DATA_OFFSET >>> 2;
    for (let probe = 0, i = hash & (DATA_SLOTS - 1); probe < DATA_SLOTS; probe++, i = (i + 1) & (DATA_SLOTS - 1)) {
      const e = base + i * 4;
      const keyBlock = seg.u32[e + E_KEY]!;
      if (keyBlock === 0) return e;
      if (seg.u32[e + E_HASH] === hash && sameBytes(seg.payload(keyBlock), k)) return e;
    }
    return -1;
  }
}

function keyBytes(vmId: string, key: string): Uint8Array {
  return Buffer.from(`${vmId}\0${key}`, 'utf8');
}
