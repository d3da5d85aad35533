/**
 * Reading V8 `.cpuprofile` files (what `node --cpu-prof` writes): self time per function and per
 * source file, the way a profiler's "bottom-up" view sums them.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Pseudo-functions V8 records for time outside JavaScript. */
const VM_ENTRIES = new Set(['(program)', '(garbage collector)', '(idle)', '(root)']);

/** Newest `*.cpuprofile` in `dir` whose name carries `pid` (node names them CPU.date.time.PID.tid.seq). */
export function findCpuProfile(dir, pid) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && (pid === undefined || f.split('.').includes(String(pid))))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return files[0] ?? null;
}

/** Where a frame's code lives, short: `dist/src/server/relay.js`, `node_modules/undici`, `node:internal/…`. */
export function codeArea(url) {
  if (!url) return '(native / VM)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    return `node_modules/${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const dist = path.indexOf('/dist/');
  if (dist !== -1) return path.slice(dist + 1);
  return path;
}

/**
 * Self time by function and by code area.
 * @returns {{ totalMs, idleMs, busyMs, functions: Array<{ name, where, selfMs, pct }>, areas: Array<{ area, selfMs, pct }> }}
 * `pct` is of busy time (everything but `(idle)`).
 */
export function summarizeCpuProfile(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples = [], timeDeltas = [] } = profile;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample: charge it to the sample it ends at.
    const dt = Math.max(0, timeDeltas[i] ?? 0);
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
  }
  const byFunction = new Map();
  const byArea = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)?.callFrame ?? {};
    const name = frame.functionName || '(anonymous)';
    totalUs += us;
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = frame.url ? `${codeArea(frame.url)}:${(frame.lineNumber ?? 0) + 1}` : '';
    const key = `${name}\u0000${where}`;
    const entry = byFunction.get(key) ?? { name, where, selfUs: 0 };
    entry.selfUs += us;
    byFunction.set(key, entry);
    const area = VM_ENTRIES.has(name) ? name : codeArea(frame.url);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...byFunction.values()]
      .sort((a, b) => b.selfUs - a.selfUs)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.selfUs / 1000, pct: pct(f.selfUs) })),
    areas: [...byArea.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfMs: us / 1000, pct: pct(us) })),
  };
}

/**
 * Of the `*.cpuprofile` files in `dir`, the one whose process was busiest, with its summary: with
 * `--cpu-prof` the supervisor and every worker write one, and the request path is in a worker.
 * @returns {{ file: string, summary: ReturnType<typeof summarizeCpuProfile> } | null}
 */
export function busiestCpuProfile(dir) {
  let best = null;
  for (const f of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
    const file = join(dir, f);
    const summary = summarizeCpuProfile(readCpuProfile(file));
    if (!best || summary.busyMs > best.summary.busyMs) best = { file, summary };
  }
  return best;
}

export function readCpuProfile(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}
