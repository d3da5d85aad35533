/**
 * Window geometry: how a time maps to a bucket number (epoch), how many buckets a window spans, and
 * when a bucket starts. The shared-memory and Redis backends use the same geometry (the Lua scripts
 * mirror it, see redis-scripts.ts), so a limit means the same thing on either.
 *
 * A window of `buckets` buckets at epoch e counts the buckets (e − buckets, e]. A charge in bucket j
 * stops counting when bucket j + buckets begins.
 */

import type { QuotaMode, QuotaPeriod } from './types.js';

export interface WindowGeometry {
  /** Short code, also used by the Lua scripts. */
  readonly code: 'r' | 'cd' | 'cm' | 'rd' | 'rm';
  readonly buckets: number;
  /** The bucket holding time `ms`; always ≥ 1 (0 marks an empty word in shared memory). */
  epochOf(ms: number): number;
  /** The first ms of bucket `epoch`. */
  startOf(epoch: number): number;
}

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

function fixed(code: WindowGeometry['code'], bucketMs: number, buckets: number): WindowGeometry {
  return {
    code,
    buckets,
    // +1 keeps epochs ≥ 1 even for a monotonic clock read in the first second after boot.
    epochOf: (ms) => Math.floor(ms / bucketMs) + 1,
    startOf: (epoch) => (epoch - 1) * bucketMs,
  };
}

/** Rate limits (rpm, tpm): one minute in 60 one-second buckets. */
export const RATE_WINDOW = fixed('r', SECOND, 60);
export const RATE_WINDOW_MS = 60 * SECOND;

/** Calendar month number: months since January 1970, plus 1. */
function monthOf(ms: number): number {
  const date = new Date(ms);
  return (date.getUTCFullYear() - 1970) * 12 + date.getUTCMonth() + 1;
}

function monthStart(epoch: number): number {
  const months = epoch - 1;
  return Date.UTC(1970 + Math.floor(months / 12), ((months % 12) + 12) % 12, 1);
}

export const CALENDAR_DAY = fixed('cd', DAY, 1);
export const CALENDAR_MONTH: WindowGeometry = { code: 'cm', buckets: 1, epochOf: monthOf, startOf: monthStart };
/** The last 24 hours, in hourly buckets. */
export const ROLLING_DAY = fixed('rd', HOUR, 24);
/** The last 30 days, in daily buckets (UTC days). */
export const ROLLING_MONTH = fixed('rm', DAY, 30);

export function quotaWindow(period: QuotaPeriod, mode: QuotaMode): WindowGeometry {
  if (mode === 'calendar') return period === 'day' ? CALENDAR_DAY : CALENDAR_MONTH;
  return period === 'day' ? ROLLING_DAY : ROLLING_MONTH;
}
