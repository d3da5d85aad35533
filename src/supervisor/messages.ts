/** The IPC protocol between the supervisor and its workers (Node's child_process channel). */

import type { ConfigInput } from '../config/schema.js';
import type { RuntimeKey } from '../governance/consumers.js';

export type ToWorker =
  | {
      type: 'start';
      index: number;
      config: ConfigInput;
      generation: number;
      host: string;
      port: number;
      shm: string;
      keys: RuntimeKey[];
      /** The Wasm plugins' segment (shared data, queues, metrics). */
      pluginShm?: string;
      /** Relative plugin paths are resolved against it (the config file's directory). */
      baseDir?: string;
    }
  /** The whole set of runtime keys, after any change. */
  | { type: 'keys'; keys: RuntimeKey[] }
  | { type: 'config'; config: ConfigInput; generation: number }
  | { type: 'drain'; graceMs: number }
  | { type: 'stats'; id: number };

export type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'fatal'; message: string; configError?: boolean }
  | { type: 'config-applied'; generation: number }
  | { type: 'config-failed'; generation: number; message: string }
  | { type: 'stats'; id: number; inFlight: number };
