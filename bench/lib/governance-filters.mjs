/**
 * The filter chain of a gateway config, run in this process without a server: what a request costs
 * in the filters alone (auth, limits, the model router), at CPU-time resolution and without the
 * network, the upstream or other processes. The cross-check of bench/governance.mjs, whose
 * end-to-end numbers carry the noise of a shared machine.
 *
 * Per request, in the order the server runs them (src/server/proxy.ts, relay.ts, gateway.ts):
 * a new RequestContext, the header filters, the body parsed, the body filters, the response-header
 * filters, the usage of the answer, the done filters and the cost accounting. The limiter is the
 * shared-memory one on a private segment (one process: the cost of the code, not of cache lines
 * shared with other workers). Not included: reading the request and writing the response (the
 * rate-limit headers a limited request adds are counted in the end-to-end run only).
 */

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './sluice.mjs';

const dist = (path) => import(pathToFileURL(join(REPO_ROOT, 'dist', 'src', path)).href);

/**
 * Builds a snapshot of each config (YAML text) and returns a function running one request through it.
 * @param {Record<string, string>} yamls config name → YAML
 * @returns {Promise<Record<string, { run: (n: number) => void, close: () => Promise<void> }>>}
 */
export async function filterRunners(yamls, { headers, body, path = '/v1/chat/completions' }) {
  const [{ parseConfig }, { buildSnapshot, createProviders, closeProviders }, { SharedMemory }, { KeyRing }, { LimiterHolder }, { RequestContext }, { accountCost }] =
    await Promise.all([
      dist('config/load.js'),
      dist('runtime/snapshot.js'),
      dist('shm/index.js'),
      dist('governance/consumers.js'),
      dist('governance/limiter-holder.js'),
      dist('pipeline/context.js'),
      dist('governance/accounting.js'),
    ]);
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const usage = { inputTokens: 45, outputTokens: 64 };
  const onError = (filter, err) => {
    throw new Error(`filter ${filter} failed in onDone: ${err instanceof Error ? err.message : String(err)}`);
  };
  const runners = {};
  for (const [name, yaml] of Object.entries(yamls)) {
    const config = parseConfig(yaml, `${name}.yaml`, {});
    const shm = SharedMemory.private();
    const limiters = new LimiterHolder(shm);
    const providers = createProviders(config.providers, { env: {} });
    const snapshot = buildSnapshot(config, 1, providers, new Map(), { shm, keys: new KeyRing(), limiters });
    const chain = snapshot.chain;
    let seq = 0;
    const one = () => {
      const ctx = new RequestContext(`bench-${seq++}`, 'POST', path, lower, 'openai-chat', 'chat');
      if (chain.runRequestHeaders(ctx) !== undefined) throw new Error(`${name}: a header filter answered or waited`);
      ctx.rawBody = body;
      ctx.body = JSON.parse(body.toString('utf8'));
      ctx.model = ctx.body.model;
      ctx.stream = ctx.body.stream === true;
      if (chain.runRequestBody(ctx) !== undefined) throw new Error(`${name}: a body filter answered or waited`);
      if (ctx.route === undefined) throw new Error(`${name}: no route for ${ctx.model}`);
      ctx.attempts = 1;
      ctx.provider = 'up';
      ctx.providerType = 'openai-compatible';
      ctx.upstreamModel = ctx.model;
      ctx.status = 200;
      chain.runResponseHeaders(ctx);
      ctx.usage = usage;
      chain.runDone(ctx, onError);
      accountCost(ctx, snapshot.prices);
    };
    runners[name] = {
      run(n) {
        for (let i = 0; i < n; i++) one();
      },
      async close() {
        await limiters.close();
        await closeProviders(providers.values());
      },
    };
  }
  return runners;
}

/**
 * CPU µs per request of each runner: `reps` passes of `n` requests, the runners interleaved in each
 * pass (so a slow phase of the machine hits them alike), after a warm-up pass; per runner the median
 * pass, and per pass the differences. CPU time (process.cpuUsage), not wall time.
 */
export function measureRunners(runners, { n = 20_000, reps = 7, warmup = 20_000 } = {}) {
  const names = Object.keys(runners);
  for (const name of names) runners[name].run(warmup);
  const passes = [];
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    const pass = {};
    for (const name of order) {
      const before = process.cpuUsage();
      runners[name].run(n);
      const used = process.cpuUsage(before);
      pass[name] = (used.user + used.system) / n;
    }
    passes.push(pass);
  }
  return passes;
}
