/**
 * Checking a config's plugins before any worker sees them: each module is loaded (file or download,
 * sha256), compiled, instantiated and configured (proxy_on_vm_start, proxy_on_configure) once, then
 * thrown away. The supervisor runs this for every start and reload, so a missing file, a bad hash, a
 * module that is not proxy-wasm or a plugin that rejects its configuration is refused with the config
 * (400 from the admin API) instead of failing in the workers one by one.
 *
 * It runs on a worker thread with a time limit: plugin code that never returns from its start
 * callbacks cannot be interrupted on the calling thread (see docs/plugins.md), and the supervisor must
 * stay responsive. The thread's host services are throwaway in-process ones; HTTP calls fail.
 */

import { Worker } from 'node:worker_threads';
import type { PluginConfig, PluginUpstreams } from './config.js';

export interface PluginCheckOptions {
  baseDir?: string | undefined;
  upstreams?: PluginUpstreams | undefined;
  /** For all plugins together; default 20 s. */
  timeoutMs?: number;
}

export interface PluginIssue {
  /** Index in the config's `plugins`. */
  index: number;
  message: string;
}

/** What the thread posts: progress (which plugin it is on) and the result of each. */
export type CheckMessage = { type: 'checking'; index: number } | { type: 'result'; index: number; error?: string } | { type: 'done' };

export interface CheckInput {
  plugins: PluginConfig[];
  baseDir: string | undefined;
  upstreams: string[];
}

const THREAD = new URL('./plugin-check-thread.js', import.meta.url);

/** The issues found (empty when every plugin starts). Never rejects. */
export function checkPlugins(plugins: readonly PluginConfig[], options: PluginCheckOptions = {}): Promise<PluginIssue[]> {
  if (plugins.length === 0) return Promise.resolve([]);
  const input: CheckInput = { plugins: [...plugins], baseDir: options.baseDir, upstreams: Object.keys(options.upstreams ?? {}) };
  return new Promise((resolve) => {
    const issues: PluginIssue[] = [];
    let current = -1;
    let settled = false;
    const worker = new Worker(THREAD, { workerData: input, stdout: false, stderr: false });
    const finish = (extra?: PluginIssue): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (extra) issues.push(extra);
      void worker.terminate();
      resolve(issues);
    };
    const timer = setTimeout(() => {
      finish({
        index: Math.max(0, current),
        message: `did not finish starting within ${options.timeoutMs ?? 20_000} ms (a loop in proxy_on_vm_start or proxy_on_configure?)`,
      });
    }, options.timeoutMs ?? 20_000);
    worker.on('message', (m: CheckMessage) => {
      if (m.type === 'checking') current = m.index;
      else if (m.type === 'result' && m.error !== undefined) issues.push({ index: m.index, message: m.error });
      else if (m.type === 'done') finish();
    });
    worker.on('error', (err) => finish({ index: Math.max(0, current), message: `plugin check failed: ${err.message}` }));
    // After 'done' this is a no-op; before it, the thread died (out of memory, a crash in V8).
    worker.on('exit', (code) => finish({ index: Math.max(0, current), message: `plugin check ended early (exit code ${code})` }));
  });
}
