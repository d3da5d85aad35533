/**
 * CPU time of a process tree at nanosecond resolution, from /proc/PID/task/TID/schedstat (Linux).
 *
 * `proc-cpu.mjs` reads utime + stime from /proc/PID/stat, in clock ticks (10 ms at USER_HZ 100):
 * over a window of a few thousand requests one tick is several µs per request, too coarse to see a
 * difference of a few µs. The first field of schedstat is the time each thread has run, in ns.
 * Every thread of every process of the tree counts (event loop, GC helpers, the libuv pool).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { processTree } from './proc-cpu.mjs';

/** Nanoseconds each thread of `pid` has run so far, by thread id; an empty map once it is gone. */
export function processRuntimeNs(pid) {
  const ns = new Map();
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return ns;
  }
  for (const tid of tids) {
    try {
      ns.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // the thread ended in between
    }
  }
  return ns;
}

/** Per process of the tree rooted at `rootPid`: its threads' run times (ns). */
export function treeRuntimeNs(rootPid) {
  const byPid = new Map();
  for (const pid of processTree(rootPid)) byPid.set(pid, processRuntimeNs(pid));
  return byPid;
}

/**
 * CPU seconds a process tree uses between `start()` and `stop()`, in total and per process. Threads
 * and processes born inside the window count whole; one that ends inside it is lost (rare for servers).
 */
export class SchedMeter {
  constructor(rootPid) {
    this.rootPid = rootPid;
    this.before = new Map();
    this.startedAt = 0;
  }

  start() {
    this.before = treeRuntimeNs(this.rootPid);
    this.startedAt = performance.now();
  }

  /** @returns {{ cpuSeconds: number, wallSeconds: number, utilization: number, perProcess: Array<{ pid: number, cpuSeconds: number }> }} */
  stop() {
    const after = treeRuntimeNs(this.rootPid);
    const wallSeconds = (performance.now() - this.startedAt) / 1000;
    const perProcess = [];
    let total = 0;
    for (const [pid, threads] of after) {
      const was = this.before.get(pid) ?? new Map();
      let ns = 0;
      for (const [tid, t] of threads) ns += t - (was.get(tid) ?? 0);
      total += ns;
      perProcess.push({ pid, cpuSeconds: ns / 1e9 });
    }
    const cpuSeconds = total / 1e9;
    return { cpuSeconds, wallSeconds, utilization: wallSeconds > 0 ? cpuSeconds / wallSeconds : 0, perProcess };
  }
}
