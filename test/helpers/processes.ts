/**
 * Processes seen through /proc (Linux): the children of a gateway supervisor, whether a pid still
 * runs, and `waitFor`, which polls a condition instead of sleeping a fixed time.
 */

import { readdirSync, readFileSync } from 'node:fs';

/** Fields of /proc/PID/stat: state and parent pid, or undefined when there is no such process. */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may hold spaces: the fields after it follow the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '', ppid: Number(rest[1]) };
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * The pid runs a Sluice worker. A zombie (exited, not yet reaped) does not count: it serves nothing.
 * The command line is checked so that a pid the kernel reused for something else is not mistaken
 * for a worker that outlived its gateway.
 */
export function isWorkerAlive(pid: number): boolean {
  const stat = procStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return false;
  return cmdline(pid).includes('worker-main.js');
}

/** Worker processes whose parent is `supervisorPid` (one scan of /proc). */
export function workerChildren(supervisorPid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (procStat(pid)?.ppid === supervisorPid && isWorkerAlive(pid)) out.push(pid);
  }
  return out;
}

/**
 * Polls `probe` every `intervalMs` until it returns something other than undefined/false, and
 * returns that. Fails after `timeoutMs` with `what` and the last value seen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5_000, intervalMs = 20 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
