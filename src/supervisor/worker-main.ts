/**
 * A worker process: one uWS gateway on the shared port (SO_REUSEPORT), driven by the supervisor over
 * IPC. It never reads config files itself: the supervisor validated what it sends.
 */

import { ConfigError, validateConfig } from '../config/load.js';
import { describeError, log, setLogLevel } from '../observability/logger.js';
import { usesPrefixBalancer } from '../routing/prefix-balancer.js';
import { warmUpTokenizer } from '../routing/prompt-blocks.js';
import { Gateway } from '../server/gateway.js';
import { SharedMemory } from '../shm/shared-memory.js';
import type { FromWorker, ToWorker } from './messages.js';

let gateway: Gateway | undefined;
/** Settles once 'start' was handled: a config sent while the gateway starts waits for it. */
let started: Promise<void> | undefined;
let draining = false;
/** Response-cache entries per message when a sibling asks for all of them. */
const CACHE_DUMP_SLICE = 256;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'start':
      started = start(msg);
      return started;
    case 'config': {
      await started;
      if (!gateway) return;
      try {
        const next = validateConfig(msg.config, 'supervisor');
        // Before the new routes serve: the first prompt must not pay for loading the tokenizer.
        if (usesPrefixBalancer(next.providers)) warmUpTokenizer();
        await gateway.reload(next, msg.generation);
        send({ type: 'config-applied', generation: msg.generation });
      } catch (err) {
        send({ type: 'config-failed', generation: msg.generation, message: (err as Error).message });
      }
      return;
    }
    case 'keys':
      await started;
      gateway?.setRuntimeKeys(msg.keys);
      return;
    case 'cache-record':
      await started;
      gateway?.applyCacheRecord(msg.record);
      return;
    case 'cache-records':
      await started;
      for (const record of msg.records) gateway?.applyCacheRecord(record);
      return;
    case 'cache-dump': {
      await started;
      const records = gateway?.cacheRecords() ?? [];
      // In slices: one huge message would hold the IPC channel (and this event loop) for its length.
      for (let i = 0; i < records.length; i += CACHE_DUMP_SLICE) send({ type: 'cache-dump', to: msg.to, records: records.slice(i, i + CACHE_DUMP_SLICE) });
      return;
    }
    case 'drain': {
      if (draining) return;
      draining = true;
      await gateway?.close(msg.graceMs);
      process.exit(0);
    }
    // falls through never: drain exits
    case 'stats':
      send({ type: 'stats', id: msg.id, inFlight: gateway?.inFlight ?? 0 });
      return;
    case 'metrics':
      await started;
      if (gateway) send({ type: 'metrics', id: msg.id, snapshot: await gateway.metrics.workerSnapshot() });
      return;
  }
}

async function start(msg: Extract<ToWorker, { type: 'start' }>): Promise<void> {
  const config = validateConfig(msg.config, 'supervisor');
  setLogLevel(config.log.level);
  try {
    // Loading the tokenizer costs 300-800 ms: pay it before 'ready', not on the first request.
    if (usesPrefixBalancer(config.providers)) warmUpTokenizer();
    const shm = SharedMemory.open(msg.shm, { workerIndex: msg.index });
    gateway = await Gateway.start({
      config,
      env: process.env,
      host: msg.host,
      port: msg.port,
      generation: msg.generation,
      // The supervisor checked the port once; siblings share it through SO_REUSEPORT.
      probePort: false,
      shm,
      runtimeKeys: msg.keys,
      shareCacheRecord: (record) => send({ type: 'cache-record', record }),
      ...(msg.pluginShm !== undefined ? { pluginSegment: msg.pluginShm } : {}),
      ...(msg.baseDir !== undefined ? { baseDir: msg.baseDir } : {}),
    });
  } catch (err) {
    send({ type: 'fatal', message: (err as Error).message, configError: err instanceof ConfigError });
    process.exit(1);
  }
  send({ type: 'ready', port: gateway.port });
}

process.on('message', (msg: ToWorker) => {
  handle(msg).catch((err) => {
    log.error('worker failed', describeError(err));
    process.exit(1);
  });
});
// Signals go to the supervisor, which drains workers in order; a worker ignores them so that a
// terminal's Ctrl-C (sent to the whole process group) does not cut streams short.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
// The supervisor is gone (crashed or killed -9): nobody will send work or drain; stop serving.
process.on('disconnect', () => {
  if (draining) return;
  draining = true;
  log.warn('supervisor gone; draining');
  void (gateway?.close(5_000) ?? Promise.resolve()).then(() => process.exit(0));
});
