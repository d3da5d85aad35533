/** The thread behind checkPlugins (plugin-check.ts): start each plugin once, report, exit. */

import { parentPort, workerData } from 'node:worker_threads';
import { defaultHostDeps } from './factory.js';
import { pagesFor } from './memory-cap.js';
import { ModuleCache } from './module-loader.js';
import type { CheckInput, CheckMessage } from './plugin-check.js';
import { PluginRuntime } from './plugin-runtime.js';

const input = workerData as CheckInput;
const post = (m: CheckMessage): void => parentPort!.postMessage(m);
const cache = new ModuleCache();
const names = new Set(input.upstreams);

for (const [index, plugin] of input.plugins.entries()) {
  post({ type: 'checking', index });
  /** The plugin's own last complaint (e.g. why it rejected its configuration) makes the issue useful. */
  let complaint: string | undefined;
  const deps = defaultHostDeps({
    logger: (_plugin, level, message) => {
      if (level >= 3) complaint = message;
    },
    httpCaller: { has: (name) => names.has(name), call: () => Promise.reject(new Error('no HTTP calls while checking')) },
  });
  try {
    const compiled = await cache.load(plugin, pagesFor(plugin.limits.memory_mb * 1024 * 1024), input.baseDir);
    const runtime = new PluginRuntime(plugin, compiled, deps);
    try {
      runtime.start();
    } finally {
      runtime.dispose();
    }
    post({ type: 'result', index });
  } catch (err) {
    const message = (err as Error).message;
    post({ type: 'result', index, error: complaint !== undefined && !message.includes(complaint) ? `${message} (${complaint})` : message });
  }
}
post({ type: 'done' });
