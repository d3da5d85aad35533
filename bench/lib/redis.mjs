/**
 * Redis for benchmarks: a private `redis-server` (a child of the bench, killed with it, so nothing
 * else's traffic is counted), and what Redis itself says about the load: commands by name, read
 * events (one per batch of commands a client sent at once), and its CPU time.
 */

import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './ports.mjs';
import { spawnReady } from './processes.mjs';

/** The `redis-server` version line, or null when it is not installed. */
export function redisServerVersion(bin = 'redis-server') {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/**
 * A throwaway redis-server on a free loopback port: no persistence, in the foreground, in its own
 * process group like every bench child (stopped by `stopAll()` and `installCleanup()`).
 * @returns {Promise<{ proc, port: number, url: string }>}
 */
export async function startRedisServer({ bin = 'redis-server' } = {}) {
  const port = await freePort();
  const { proc } = await spawnReady(
    'redis-server',
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
    { probe: () => ping(port) },
  );
  return { proc, port, url: `redis://127.0.0.1:${port}` };
}

async function ping(port) {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** `INFO` text → { key: value } (numbers where they are numbers; every section flattened). */
export function parseInfo(text) {
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at < 0) continue;
    const value = line.slice(at + 1);
    out[line.slice(0, at)] = value !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
  }
  return out;
}

/** `cmdstat_evalsha:calls=3,usec=40,…` entries of a parsed INFO → { evalsha: { calls, usec } }. */
export function commandStats(info) {
  const out = {};
  for (const [key, value] of Object.entries(info)) {
    if (!key.startsWith('cmdstat_') || typeof value !== 'string') continue;
    const fields = Object.fromEntries(value.split(',').map((kv) => kv.split('=')));
    out[key.slice('cmdstat_'.length)] = { calls: Number(fields.calls ?? 0), usec: Number(fields.usec ?? 0) };
  }
  return out;
}

/**
 * A client for reading a Redis server's counters around a measured window. Its own INFO calls are
 * counted by Redis too: `delta()` takes them out.
 */
export class RedisCounters {
  constructor(url) {
    this.client = new Redis(url, { maxRetriesPerRequest: 1 });
    this.client.on('error', () => undefined);
  }

  /** Commands by name, totals, read events and CPU seconds of the server now. */
  async snapshot() {
    const info = parseInfo(await this.client.info('everything'));
    return {
      commands: commandStats(info),
      totalCommands: info.total_commands_processed ?? 0,
      reads: info.total_reads_processed ?? NaN,
      cpuSeconds: (info.used_cpu_sys ?? 0) + (info.used_cpu_user ?? 0),
      version: info.redis_version ?? null,
    };
  }

  /**
   * What happened between two snapshots: calls and µs per command name (the INFO of the `after`
   * snapshot excluded), script calls (eval, evalsha, fcall and their read-only variants) and the
   * µs Redis spent in them, all commands, read events and CPU seconds. Commands a script runs
   * (redis.call) are counted by name and in `allCommands` too, and their µs are part of the script's.
   */
  static delta(before, after) {
    const commands = {};
    for (const [name, s] of Object.entries(after.commands)) {
      const b = before.commands[name] ?? { calls: 0, usec: 0 };
      const calls = s.calls - b.calls - (name === 'info' ? 1 : 0);
      if (calls > 0) commands[name] = { calls, usec: s.usec - b.usec };
    }
    const scriptNames = ['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'];
    const scripts = scriptNames.reduce((n, c) => n + (commands[c]?.calls ?? 0), 0);
    const scriptUsec = scriptNames.reduce((n, c) => n + (commands[c]?.usec ?? 0), 0);
    return {
      commands,
      scriptCalls: scripts,
      // INFO itself is one command and one read event of this client.
      allCommands: after.totalCommands - before.totalCommands - 1,
      reads: after.reads - before.reads - 1,
      scriptUsec,
      cpuSeconds: after.cpuSeconds - before.cpuSeconds,
    };
  }

  /** Deletes every key that starts with `prefix` (SCAN + UNLINK); returns how many. */
  async deleteKeys(prefix) {
    let cursor = '0';
    let deleted = 0;
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await this.client.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  }

  close() {
    this.client.disconnect();
  }
}
