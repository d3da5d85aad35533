/**
 * CPU time of a process tree, read from /proc (Linux only).
 *
 * utime + stime in /proc/PID/stat cover every thread of the process (the event loop, GC helpers,
 * the libuv pool). A tree is the process and all its descendants, so a server that forks workers
 * (nginx master + workers, a gateway supervisor + workers) is measured whole.
 */

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Kernel clock ticks per second (USER_HZ), the unit of utime/stime. */
export const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** { ppid, ticks } of one process, or null when it is gone (or this is not Linux). */
export function readProcStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): field N is rest[N - 3].
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { ppid, ticks: utime + stime };
}

/** `pid` and all its descendants (one scan of /proc). */
export function processTree(pid) {
  const children = new Map();
  let entries = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(name);
    if (stat === null) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(Number(name));
    else children.set(stat.ppid, [Number(name)]);
  }
  const out = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** Ticks used so far by each process of the tree rooted at `pid`. */
export function treeTicks(pid) {
  const ticks = new Map();
  for (const p of processTree(pid)) {
    const stat = readProcStat(p);
    if (stat !== null) ticks.set(p, stat.ticks);
  }
  return ticks;
}

/**
 * Measures the CPU seconds a process tree uses between `start()` and `stop()`.
 * A process born inside the window counts whole; one that exits inside it is lost (rare for servers).
 */
export class CpuMeter {
  constructor(rootPid) {
    this.rootPid = rootPid;
    this.before = null;
    this.startedAt = 0;
  }

  start() {
    this.before = treeTicks(this.rootPid);
    this.startedAt = performance.now();
  }

  /** @returns {{ cpuSeconds: number, wallSeconds: number, utilization: number, pids: number[] }} */
  stop() {
    const after = treeTicks(this.rootPid);
    const wallSeconds = (performance.now() - this.startedAt) / 1000;
    let ticks = 0;
    for (const [pid, t] of after) ticks += t - (this.before?.get(pid) ?? 0);
    const cpuSeconds = ticks / CLOCK_TICKS_PER_SECOND;
    return { cpuSeconds, wallSeconds, utilization: wallSeconds > 0 ? cpuSeconds / wallSeconds : 0, pids: [...after.keys()] };
  }
}
