/**
 * Active health checks: the supervisor probes each endpoint's health URL on a timer and publishes
 * the verdict in shared memory (`unhealthy`), which every worker's balancer reads like an ejection.
 *
 * Why in the supervisor and not the workers: one prober per node, whatever the worker count, so a
 * replica receives one probe per interval per gateway node, and the verdict is one shm word that
 * every worker sees at once.
 *
 * Passive ejection (outlier.ts) learns from real traffic; active checks cover what traffic cannot
 * tell: a replica that receives nothing yet (at start, or while ejected) and one that is down while
 * idle. Both apply; either takes the endpoint out of rotation.
 *
 * Per target:
 *   - a probe is `GET url`, judged healthy when the status matches `expectStatus` (any 2xx by default)
 *     and the body arrives in full within `timeoutMs`; a connect error, a reset, a timeout or another
 *     status is a failure;
 *   - `unhealthyThreshold` failures in a row mark a healthy endpoint unhealthy, `healthyThreshold`
 *     successes in a row mark it healthy again (Envoy's unhealthy_threshold / healthy_threshold);
 *   - every target starts healthy: a gateway that starts or reloads must not drop traffic until a
 *     first probe answers; a dead replica is marked after `unhealthyThreshold` probes;
 *   - the first probe runs at a random point in the first interval and each later one a jittered
 *     interval after the previous one started, so targets with the same interval do not probe in
 *     lockstep; the next probe is only scheduled when the current one has finished, so probes of one
 *     target never overlap even when a timeout exceeds the interval.
 *
 * Logs name the target by origin and path only: user info and the query string are where URL
 * credentials live. Credentials in the URL's user info are sent as Basic auth.
 */

import { Agent, request } from 'undici';

import { clock } from '../clock.js';
import { log } from '../observability/logger.js';
import type { EndpointCounters } from '../shm/index.js';

export const HEALTH_CHECK_DEFAULTS = {
  intervalMs: 5000,
  timeoutMs: 2000,
  unhealthyThreshold: 2,
  healthyThreshold: 1,
  /** Each interval is drawn from ±this fraction around the configured one. */
  jitter: 0.1,
} as const;

/** A body larger than this is not read further: a health answer is small, and reading on costs the probe its socket anyway. */
const MAX_BODY_BYTES = 64 * 1024;

export interface HealthCheckTarget {
  /** The endpoint's shm slot (the balancer's slot for the endpoint, not a key slot). */
  readonly slot: number;
  /** The full URL to GET, e.g. `http://gpu-1:8000/health`. */
  readonly url: string;
  /** Default 5000 ms. */
  readonly intervalMs?: number;
  /** Whole probe, connect to last body byte. Default 2000 ms. */
  readonly timeoutMs?: number;
  /** Failures in a row that mark the endpoint unhealthy. Default 2. */
  readonly unhealthyThreshold?: number;
  /** Successes in a row that mark it healthy again. Default 1. */
  readonly healthyThreshold?: number;
  /** Statuses that mean healthy. Default: any 2xx. */
  readonly expectStatus?: number | readonly number[];
}

/** What the checker needs of shared memory; `shm.endpoints` is one. */
export type HealthCheckCounters = Pick<EndpointCounters, 'setUnhealthy'>;

export interface HealthCheckerOptions {
  readonly endpoints: HealthCheckCounters;
  readonly targets?: readonly HealthCheckTarget[];
  /** A uniform random number in [0, 1), for the jitter; injectable for tests. */
  readonly random?: () => number;
}

export interface HealthTargetStatus {
  readonly slot: number;
  /** Origin and path only. */
  readonly url: string;
  readonly healthy: boolean;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  readonly probes: number;
  /** Why the last probe failed; null when it succeeded or none ran yet. */
  readonly lastError: string | null;
  /** Milliseconds the last probe took; null before the first. */
  readonly lastProbeMs: number | null;
}

/** Origin and path of a URL: no user info, no query, no fragment. */
export function redactProbeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(unparseable url)';
  }
}

interface Settings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly expect: ((status: number) => boolean);
  /** The URL without user info, and the Basic auth header it implied. */
  readonly requestUrl: string;
  readonly authorization: string | undefined;
}

function positiveInt(name: string, value: number, url: string): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`health check ${redactProbeUrl(url)}: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function settingsOf(target: HealthCheckTarget): Settings {
  const { url } = target;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError(`health check for slot ${target.slot}: "${redactProbeUrl(url)}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new RangeError(`health check ${redactProbeUrl(url)}: only http and https URLs can be probed`);
  }
  let authorization: string | undefined;
  if (parsed.username !== '' || parsed.password !== '') {
    const user = decodeURIComponent(parsed.username);
    const password = decodeURIComponent(parsed.password);
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    parsed.username = '';
    parsed.password = '';
  }
  const expected = target.expectStatus;
  let expect: (status: number) => boolean;
  if (expected === undefined) expect = (s) => s >= 200 && s < 300;
  else {
    const list = typeof expected === 'number' ? [expected] : [...expected];
    if (list.length === 0 || list.some((s) => !(Number.isInteger(s) && s >= 100 && s <= 599))) {
      throw new RangeError(`health check ${redactProbeUrl(url)}: expectStatus must list HTTP statuses`);
    }
    const set = new Set(list);
    expect = (s) => set.has(s);
  }
  return {
    intervalMs: positiveInt('intervalMs', target.intervalMs ?? HEALTH_CHECK_DEFAULTS.intervalMs, url),
    timeoutMs: positiveInt('timeoutMs', target.timeoutMs ?? HEALTH_CHECK_DEFAULTS.timeoutMs, url),
    unhealthyThreshold: positiveInt('unhealthyThreshold', target.unhealthyThreshold ?? HEALTH_CHECK_DEFAULTS.unhealthyThreshold, url),
    healthyThreshold: positiveInt('healthyThreshold', target.healthyThreshold ?? HEALTH_CHECK_DEFAULTS.healthyThreshold, url),
    expect,
    requestUrl: parsed.toString(),
    authorization,
  };
}

/** One target's schedule and streaks. */
class Probe {
  settings: Settings;
  healthy = true;
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  probes = 0;
  lastError: string | null = null;
  lastProbeMs: number | null = null;
  timer: NodeJS.Timeout | undefined;
  /** Aborts the probe in flight when the target is removed or the checker stops. */
  abort: AbortController | null = null;
  running: Promise<void> | null = null;
  retired = false;

  constructor(
    readonly slot: number,
    readonly url: string,
    settings: Settings,
  ) {
    this.settings = settings;
  }
}

const keyOf = (target: { readonly slot: number; readonly url: string }): string => `${target.slot}\n${target.url}`;

export class HealthChecker {
  private readonly endpoints: HealthCheckCounters;
  private readonly random: () => number;
  private readonly dispatcher: Agent;
  private readonly probes = new Map<string, Probe>();
  private stopped = false;

  constructor(options: HealthCheckerOptions) {
    this.endpoints = options.endpoints;
    this.random = options.random ?? Math.random;
    // Its own connection pool: probes reuse connections (a replica is not asked for a TCP handshake
    // every interval) and never queue behind, or hold, the traffic's pools.
    this.dispatcher = new Agent({ connections: 2, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
    if (options.targets) this.update(options.targets);
  }

  /**
   * Replaces the target list (on a config reload). A target whose slot and URL are unchanged keeps
   * its streaks, verdict and schedule and takes the new settings from its next probe; a removed
   * target's probe is stopped and its endpoint marked healthy (nobody would clear the mark later);
   * a new target starts healthy with its first probe somewhere in its first interval. Throws, and
   * changes nothing, on an invalid target or two targets for one slot.
   */
  update(targets: readonly HealthCheckTarget[]): void {
    if (this.stopped) throw new Error('health checker is stopped');
    const next = new Map<string, { target: HealthCheckTarget; settings: Settings }>();
    const slots = new Set<number>();
    for (const target of targets) {
      if (slots.has(target.slot)) throw new RangeError(`health check: two targets for endpoint slot ${target.slot}`);
      slots.add(target.slot);
      next.set(keyOf(target), { target, settings: settingsOf(target) });
    }
    for (const [key, probe] of this.probes) {
      if (next.has(key)) continue;
      this.retire(probe);
      this.probes.delete(key);
      // Another target may take over the slot below; it starts healthy either way.
      this.endpoints.setUnhealthy(probe.slot, false);
    }
    for (const [key, { target, settings }] of next) {
      const existing = this.probes.get(key);
      if (existing) {
        existing.settings = settings;
        continue;
      }
      const probe = new Probe(target.slot, target.url, settings);
      this.probes.set(key, probe);
      this.endpoints.setUnhealthy(probe.slot, false);
      this.schedule(probe, this.random() * settings.intervalMs);
    }
  }

  private schedule(probe: Probe, delayMs: number): void {
    if (probe.retired) return;
    probe.timer = setTimeout(() => {
      probe.timer = undefined;
      probe.running = this.probeOnce(probe).finally(() => {
        probe.running = null;
      });
    }, delayMs);
    // The supervisor's servers keep the process alive; a health check must not.
    probe.timer.unref();
  }

  private jittered(intervalMs: number): number {
    const spread = HEALTH_CHECK_DEFAULTS.jitter;
    return intervalMs * (1 - spread + 2 * spread * this.random());
  }

  private async probeOnce(probe: Probe): Promise<void> {
    const settings = probe.settings;
    const began = clock.monotonicMs();
    const abort = new AbortController();
    probe.abort = abort;
    const deadline = setTimeout(() => abort.abort(new Error(`no complete answer within ${settings.timeoutMs} ms`)), settings.timeoutMs);
    let failure: string | null = null;
    try {
      const response = await request(settings.requestUrl, {
        method: 'GET',
        dispatcher: this.dispatcher,
        headers: {
          'user-agent': 'sluice-health-check',
          ...(settings.authorization ? { authorization: settings.authorization } : {}),
        },
        headersTimeout: settings.timeoutMs,
        bodyTimeout: settings.timeoutMs,
        signal: abort.signal,
      });
      // Drained even when the status already failed: an unread body would hold the connection.
      await response.body.dump({ limit: MAX_BODY_BYTES });
      if (!settings.expect(response.statusCode)) failure = `status ${response.statusCode}`;
    } catch (err) {
      failure = abort.signal.aborted && !probe.retired ? `timeout: ${describeAbort(abort.signal)}` : describeProbeError(err);
    } finally {
      clearTimeout(deadline);
      probe.abort = null;
    }
    if (probe.retired || this.stopped) return;
    probe.probes++;
    probe.lastProbeMs = clock.monotonicMs() - began;
    probe.lastError = failure;
    if (failure === null) this.recordSuccess(probe);
    else this.recordFailure(probe, failure);
    const elapsed = clock.monotonicMs() - began;
    this.schedule(probe, Math.max(0, this.jittered(probe.settings.intervalMs) - elapsed));
  }

  private recordSuccess(probe: Probe): void {
    probe.consecutiveFailures = 0;
    probe.consecutiveSuccesses++;
    if (probe.healthy || probe.consecutiveSuccesses < probe.settings.healthyThreshold) return;
    probe.healthy = true;
    this.endpoints.setUnhealthy(probe.slot, false);
    log.info('health check: endpoint healthy again', {
      slot: probe.slot,
      url: redactProbeUrl(probe.url),
      successes: probe.consecutiveSuccesses,
    });
  }

  private recordFailure(probe: Probe, reason: string): void {
    probe.consecutiveSuccesses = 0;
    probe.consecutiveFailures++;
    if (!probe.healthy || probe.consecutiveFailures < probe.settings.unhealthyThreshold) return;
    probe.healthy = false;
    this.endpoints.setUnhealthy(probe.slot, true);
    log.warn('health check: endpoint unhealthy; balancers skip it', {
      slot: probe.slot,
      url: redactProbeUrl(probe.url),
      failures: probe.consecutiveFailures,
      reason,
    });
  }

  private retire(probe: Probe): void {
    probe.retired = true;
    clearTimeout(probe.timer);
    probe.timer = undefined;
    probe.abort?.abort(new Error('health check target removed'));
  }

  status(): HealthTargetStatus[] {
    return [...this.probes.values()].map((p) => ({
      slot: p.slot,
      url: redactProbeUrl(p.url),
      healthy: p.healthy,
      consecutiveFailures: p.consecutiveFailures,
      consecutiveSuccesses: p.consecutiveSuccesses,
      probes: p.probes,
      lastError: p.lastError,
      lastProbeMs: p.lastProbeMs,
    }));
  }

  /**
   * Stops every probe (aborting those in flight), marks every target's endpoint healthy again
   * (a mark nobody maintains would keep the endpoint out of rotation for good) and closes the
   * connections.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const running: Promise<void>[] = [];
    for (const probe of this.probes.values()) {
      this.retire(probe);
      if (probe.running) running.push(probe.running);
      this.endpoints.setUnhealthy(probe.slot, false);
    }
    this.probes.clear();
    await Promise.allSettled(running);
    await this.dispatcher.close().catch(() => undefined);
  }
}

function describeAbort(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : 'aborted';
}

/** A probe error as a short reason; undici's errors carry a stable code. */
function describeProbeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    // Messages can quote the URL; the code and the error class say what happened without it.
    if (code) return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' ? `timeout: ${code}` : code;
    return err.name;
  }
  return String(err);
}
