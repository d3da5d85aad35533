/**
 * The admin API, on its own port (loopback by default). Served by the supervisor with node:http: it
 * is low-traffic, must stay up while workers restart, and the supervisor holds the authoritative
 * config and worker table.
 *
 *   GET  /admin/workers   pid, uptime, restarts, in-flight per worker
 *   GET  /admin/config    the running config, secrets redacted
 *   PUT  /admin/config    replace the running config (YAML or JSON body); validated first
 *   POST /admin/reload    re-read the config file
 *
 * Every answer carries the config generation (`generation` in the JSON and the
 * `x-sluice-config-generation` header). With a token configured, every request needs
 * `Authorization: Bearer <token>`; without one the API refuses to listen beyond loopback.
 */

import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError, parseConfig, type Env } from '../config/load.js';
import { redactConfig } from '../config/redact.js';
import type { Config } from '../config/schema.js';
import { describeError, log } from '../observability/logger.js';
import type { RuntimeKey } from '../governance/consumers.js';
import { KeyStoreError } from '../governance/key-store.js';
import { METRICS_CONTENT_TYPE } from '../observability/metrics.js';

export interface AdminBackend {
  readonly generation: number;
  readonly config: Config;
  workers(): Promise<unknown[]>;
  /** Validate and apply; throws ConfigError (→ 400) when invalid. Resolves to the new generation. */
  apply(config: Config, reason: string): Promise<number>;
  reload(reason: string): Promise<number>;
  /** Consumer quotas: read, reset, top up (absent: those routes answer 404). */
  quotas?: {
    read(consumer: string): Promise<unknown[] | undefined>;
    reset(consumer: string, period: string | undefined): Promise<boolean>;
    topUp(consumer: string, period: string | undefined, tokens: number | undefined, cost: number | undefined): Promise<boolean>;
  };
  /** Prometheus text of the node's metrics (absent: /metrics answers 404). */
  metrics?(): Promise<string>;
  /** Consumer keys made at run time (absent: those routes answer 404). */
  keys?: {
    list(): RuntimeKey[];
    create(consumer: string): Promise<{ key: string; record: RuntimeKey }>;
    revoke(id: string): Promise<boolean>;
  };
}

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** A runtime key as the admin API shows it: never the hash, only a hint of the key's end. */
function publicKey(k: RuntimeKey): Record<string, unknown> {
  return { id: k.id, consumer: k.consumer, created_at: k.createdAt, hint: k.hint };
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function parseJsonObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * The admin API may listen beyond loopback only with a token. `sluice start` checks this before it
 * forks any worker; `startAdminServer` checks it again for any other caller.
 */
export function assertAdminExposure(host: string, token: string | undefined): void {
  if (!token && !isLoopback(host)) {
    throw new Error(
      `the admin API would listen on ${host} without a token; set SLUICE_ADMIN_TOKEN or admin.token, or keep admin.host on loopback`,
    );
  }
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(
  backend: AdminBackend,
  opts: { host: string; port: number; token: string | undefined; env: Env },
): Promise<AdminServer> {
  assertAdminExposure(opts.host, opts.token);
  const expected = opts.token ? Buffer.from(`Bearer ${opts.token}`) : undefined;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log.error('admin request failed', describeError(err));
      reply(res, 500, { error: { message: 'internal error' } });
    });
  });

  function reply(res: ServerResponse, status: number, body: Record<string, unknown>): void {
    const generation = backend.generation;
    const text = JSON.stringify({ generation, ...body });
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-sluice-config-generation': String(generation),
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  function authorized(req: IncomingMessage): boolean {
    if (!expected) return true;
    const got = Buffer.from(req.headers.authorization ?? '');
    return got.length === expected.length && timingSafeEqual(got, expected);
  }

  async function readBody(req: IncomingMessage): Promise<string | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_CONFIG_BYTES) return undefined;
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function applyOrExplain(res: ServerResponse, run: () => Promise<number>): Promise<void> {
    try {
      const generation = await run();
      reply(res, 200, { status: 'applied', applied_generation: generation });
    } catch (err) {
      if (err instanceof ConfigError) {
        reply(res, 400, { error: { message: 'invalid configuration; the running config is unchanged', issues: err.issues } });
      } else {
        reply(res, 409, { error: { message: (err as Error).message } });
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (!authorized(req)) {
      reply(res, 401, { error: { message: 'missing or wrong admin token (Authorization: Bearer …)' } });
      return;
    }
    const route = `${req.method} ${url}`;
    switch (route) {
      case 'GET /admin/workers':
        reply(res, 200, { workers: await backend.workers() });
        return;
      case 'GET /admin/config':
        reply(res, 200, { config: redactConfig(backend.config) as Record<string, unknown> });
        return;
      case 'PUT /admin/config': {
        const text = await readBody(req);
        if (text === undefined) {
          reply(res, 413, { error: { message: `config larger than ${MAX_CONFIG_BYTES} bytes` } });
          return;
        }
        await applyOrExplain(res, () => backend.apply(parseConfig(text, 'PUT /admin/config', opts.env), 'admin api'));
        return;
      }
      case 'POST /admin/reload':
        await applyOrExplain(res, () => backend.reload('admin api'));
        return;
      case 'GET /metrics': {
        if (!backend.metrics) break;
        const text = await backend.metrics();
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      case 'GET /admin/keys':
        if (!backend.keys) break;
        reply(res, 200, { keys: backend.keys.list().map(publicKey) });
        return;
      case 'POST /admin/keys': {
        if (!backend.keys) break;
        const body = parseJsonObject(await readBody(req));
        const consumer = body?.consumer;
        if (typeof consumer !== 'string') {
          reply(res, 400, { error: { message: 'send {"consumer": "NAME"}' } });
          return;
        }
        if (!backend.config.consumers.some((c) => c.name === consumer)) {
          reply(res, 404, { error: { message: `no consumer "${consumer.slice(0, 64)}" in the config` } });
          return;
        }
        await keyCall(res, async () => {
          const made = await backend.keys!.create(consumer);
          // The key itself is shown this once; only its hash is kept anywhere.
          reply(res, 201, { key: made.key, ...publicKey(made.record) });
        });
        return;
      }
      default:
        if (url?.startsWith('/admin/quotas/') && backend.quotas) {
          await quotaCall(req, res, url.slice('/admin/quotas/'.length));
          return;
        }
        if (req.method === 'DELETE' && url?.startsWith('/admin/keys/') && backend.keys) {
          const id = safeDecode(url.slice('/admin/keys/'.length)) ?? '';
          await keyCall(res, async () => {
            if (await backend.keys!.revoke(id)) reply(res, 200, { revoked: id });
            else reply(res, 404, { error: { message: `no key ${id.slice(0, 64)}` } });
          });
          return;
        }
    }
    reply(res, url?.startsWith('/admin/') ? 405 : 404, { error: { message: `no admin route ${route}` } });
  }

  /** `GET /admin/quotas/NAME`, `POST /admin/quotas/NAME/reset`, `POST /admin/quotas/NAME/top-up`. */
  async function quotaCall(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const quotas = backend.quotas!;
    const [rawName, action] = rest.split('/');
    const consumer = safeDecode(rawName ?? '');
    if (consumer === undefined || consumer === '') {
      reply(res, 400, { error: { message: 'name a consumer: /admin/quotas/NAME' } });
      return;
    }
    const unknown = (): void => reply(res, 404, { error: { message: `consumer "${consumer.slice(0, 64)}" has no quotas in the config` } });
    if (req.method === 'GET' && action === undefined) {
      const usage = await quotas.read(consumer);
      if (usage === undefined) unknown();
      else reply(res, 200, { consumer, quotas: usage });
      return;
    }
    if (req.method !== 'POST' || (action !== 'reset' && action !== 'top-up')) {
      reply(res, 405, { error: { message: 'GET /admin/quotas/NAME, POST /admin/quotas/NAME/reset or /top-up' } });
      return;
    }
    const body = parseJsonObject((await readBody(req)) || '{}') ?? {};
    const period = typeof body.period === 'string' ? body.period : undefined;
    if (period !== undefined && period !== 'day' && period !== 'month') {
      reply(res, 400, { error: { message: 'period must be "day" or "month" (or absent: every quota of the consumer)' } });
      return;
    }
    if (action === 'reset') {
      if (await quotas.reset(consumer, period)) reply(res, 200, { consumer, reset: period ?? 'all', quotas: await quotas.read(consumer) });
      else unknown();
      return;
    }
    const tokens = body.tokens;
    const cost = body.cost;
    const valid = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v > 0);
    if (!valid(tokens) || !valid(cost) || (tokens === undefined && cost === undefined)) {
      reply(res, 400, { error: { message: 'send {"tokens": N} and/or {"cost": USD}, positive numbers, and optionally "period"' } });
      return;
    }
    if (await quotas.topUp(consumer, period, tokens as number | undefined, cost as number | undefined)) {
      reply(res, 200, { consumer, quotas: await quotas.read(consumer) });
    } else unknown();
  }

  async function keyCall(res: ServerResponse, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      reply(res, err instanceof KeyStoreError ? err.status : 500, { error: { message: (err as Error).message } });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `admin port ${opts.port} on ${opts.host} is already in use; set admin.port or --admin-port`
            : `cannot listen on ${opts.host}:${opts.port} for the admin API (${err.code ?? err.message})`,
        ),
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
