/** Helpers for end-to-end tests of the real gateway process. See each module for details. */

import { assertNoLiveChildren, stopAllGateways } from './gateway.js';
import { closeUpstreams } from './upstreams.js';
import { removeTempDir } from './temp.js';

export * from './gateway.js';
export * from './gemini-fake.js';
export * from './http.js';
export * from './admin.js';
export * from './chat.js';
export * from './processes.js';
export * from './temp.js';
export * from './upstreams.js';

/**
 * The last `after` of an e2e file: stop every gateway and one-shot CLI child, close every upstream,
 * remove temp files, then fail if any child process is still alive.
 */
export async function cleanupE2E(): Promise<void> {
  await stopAllGateways();
  await closeUpstreams();
  removeTempDir();
  assertNoLiveChildren();
}
