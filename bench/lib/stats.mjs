/**
 * Percentiles and summaries of samples (latencies in ms, sizes, …).
 */

/**
 * The p-th percentile (0–100) of ascending `sorted`, interpolating linearly between the two nearest
 * ranks. NaN for no samples.
 */
export function percentile(sorted, p) {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (p <= 0) return sorted[0];
  if (p >= 100) return sorted[n - 1];
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** count, mean, min, p50, p90, p99, p999, max of `values` (an array or typed array; not modified). */
export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  return {
    count: n,
    mean: n ? sum / n : NaN,
    min: n ? sorted[0] : NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: n ? sorted[n - 1] : NaN,
  };
}

/** A growable Float64 buffer: cheap to append to on a hot loop, no boxing. */
export class SampleBuffer {
  constructor(initial = 1 << 16) {
    this.data = new Float64Array(initial);
    this.length = 0;
  }

  push(v) {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  values() {
    return this.data.subarray(0, this.length);
  }

  clear() {
    this.length = 0;
  }
}

/** The median of finite numbers in `values`; NaN for none. */
export function median(values) {
  const finite = Float64Array.from(values.filter((v) => typeof v === 'number' && Number.isFinite(v))).sort();
  return percentile(finite, 50);
}
