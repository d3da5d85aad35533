/**
 * The Redis clients the gateway makes for itself (node agents sharing state between nodes): one set
 * of options, chosen for background work that must neither pile up commands nor hold up shutdown
 * during an outage, and URLs logged without their credentials.
 */

import { Redis } from 'ioredis';

/** A client for `url` whose failures surface as failed commands, never as unhandled events. */
export function backgroundRedisClient(url: string, commandTimeoutMs: number): Redis {
  const redis = new Redis(url, {
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs),
    // Queued commands fail after one reconnect attempt instead of piling up during an outage.
    maxRetriesPerRequest: 1,
    // Reconnect quickly: every second without Redis is a second of node-local state.
    retryStrategy: (times) => Math.min(100 * times, 1000),
    // disconnect() of a socket that is already closed otherwise keeps a 2 s timer alive, which
    // would hold up the supervisor's exit.
    disconnectTimeout: 200,
  });
  // Callers log failures once per state change; without a listener ioredis prints every one.
  redis.on('error', () => undefined);
  return redis;
}

/** A Redis URL without its credentials, for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(unparseable redis url)';
  }
}
