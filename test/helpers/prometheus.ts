/**
 * Reading Prometheus text in tests: exact series by their labels, or sums over series, from a
 * registry's output or the admin `/metrics` scrape of a running gateway.
 */

import assert from 'node:assert/strict';

/** Prometheus text → `name{a="x",b="y"}` (labels sorted) → value. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort() : [];
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

/** The value of the one series of `name` with exactly `labels` (any order); undefined when absent. */
export function seriesValue(samples: Map<string, number>, name: string, labels: Record<string, string | number> = {}): number | undefined {
  const key = `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',')}}`;
  return samples.get(key);
}

/** Sum of every series of `name` whose labels include `labels` (0 when none). */
export function seriesSum(samples: Map<string, number>, name: string, labels: Record<string, string | number> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const [key, v] of samples) {
    const brace = key.indexOf('{');
    if (key.slice(0, brace) !== name) continue;
    const have = key.slice(brace + 1, -1).split(',');
    if (wanted.every((w) => have.includes(w))) sum += v;
  }
  return sum;
}

/** A scrape read as sums: `(name, labels)` → the sum of the matching series. */
export type Samples = (name: string, labels?: Record<string, string | number>) => number;

/** The admin `/metrics` of a gateway (`adminUrl` = its admin origin), read as sums. */
export async function scrapeAdmin(adminUrl: string): Promise<Samples> {
  const res = await fetch(`${adminUrl}/metrics`);
  assert.equal(res.status, 200);
  const samples = parsePrometheus(await res.text());
  return (name, labels = {}) => seriesSum(samples, name, labels);
}
