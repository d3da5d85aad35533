/**
 * Just enough of the Prometheus text exposition format (version 0.0.4) for the simulator's
 * /metrics: counters, gauges and fixed-bucket histograms sharing one label set. Hand-written rather
 * than prom-client because several simulators share a process in tests and benches, each with its
 * own values, and the names must be vLLM's exactly (colons included).
 */

export type Labels = Readonly<Record<string, string>>;

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return Number.isNaN(value) ? 'NaN' : String(value);
}

/** Appends one metric family with a single sample. */
export function writeSample(out: string[], name: string, type: 'counter' | 'gauge', help: string, labels: string, value: number): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${formatValue(value)}`);
}

/** Cumulative buckets as Prometheus wants them; observe() is a short scan over the bounds. */
export class Histogram {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= this.bounds[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  get observations(): number {
    return this.count;
  }

  write(out: string[], labels: Labels): void {
    const base = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    const withLe = (le: string): string => `{${[...base, `le="${le}"`].join(',')}}`;
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      out.push(`${this.name}_bucket${withLe(formatValue(this.bounds[i]!))} ${cumulative}`);
    }
    out.push(`${this.name}_bucket${withLe('+Inf')} ${this.count}`);
    const plain = formatLabels(labels);
    out.push(`${this.name}_sum${plain} ${formatValue(this.sum)}`, `${this.name}_count${plain} ${this.count}`);
  }
}
