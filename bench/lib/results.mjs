/**
 * What the benches share about results: merging repeated rounds of one cell, and where a run's JSON
 * goes.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './stats.mjs';

/** Several rounds' autocannon summaries → per-metric medians, with counts summed over the rounds. */
export function combineAutocannon(summaries) {
  const med = (pick) => median(summaries.map(pick));
  const sum = (pick) => summaries.reduce((acc, s) => acc + (pick(s) ?? 0), 0);
  return {
    responses: sum((s) => s.responses),
    ok: sum((s) => s.ok),
    non2xx: sum((s) => s.non2xx),
    errors: sum((s) => s.errors),
    timeouts: sum((s) => s.timeouts),
    durationSeconds: sum((s) => s.durationSeconds),
    rps: med((s) => s.rps),
    latencyMs: Object.fromEntries(['mean', 'p50', 'p90', 'p99'].map((k) => [k, med((s) => s.latencyMs[k])])),
  };
}

/**
 * Write a run's report to `DIR/NAME-2026-11-22T06-08-31Z.json` (colons are not portable in file
 * names) and return the path.
 */
export function writeResult(dir, name, startedAt, report) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  return file;
}
