#!/usr/bin/env node
// Micro-benchmark of the Wasm host: CPU per request added by a plugin, measured through the filter
// contract (request headers, request body, response headers, done) with no network or server, so
// the number is the host's own cost. Run after `npm run build` and `node plugins/build.mjs`:
//
//   node plugins/bench.mjs [iterations] [--no-raw-body] [--cold]
//
// Prints one JSON object: microseconds of CPU per request for no plugin, the no-op plugin and the
// header rewriter, and the added cost of each plugin over no plugin.
//
// `--cold` reads 16 MiB between two requests, so each request starts with caches holding something
// else, as in a gateway worker, where uWS, undici and the codecs run between two plugin calls. Each
// request is then timed alone (wall clock: on a busy machine, preemption lands in it too).

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { RequestContext } = await import(join(root, 'dist/src/pipeline/context.js'));
const { createWasmPluginFilter, defaultHostDeps } = await import(join(root, 'dist/src/wasm/index.js'));

const iterations = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 200_000);
const deps = defaultHostDeps({ logger: () => {} });
const headers = {
  host: 'gateway.test',
  'content-type': 'application/json',
  authorization: 'Bearer sk-test',
  'user-agent': 'bench/1.0',
  accept: 'application/json',
};
const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hello in one short sentence, please.' }], max_tokens: 32 };

function request(filters) {
  const ctx = new RequestContext('r', 'POST', '/v1/chat/completions', headers, 'openai-chat', 'chat');
  ctx.body = body;
  ctx.model = 'gpt-4o';
  for (const f of filters) f.onRequestHeaders?.(ctx);
  for (const f of filters) f.onRequestBody?.(ctx);
  ctx.status = 200;
  ctx.responseHeaders['x-request-id'] = 'r';
  for (const f of filters) f.onResponseHeaders?.(ctx);
  for (const f of filters) f.onDone?.(ctx);
  return ctx;
}

const cold = process.argv.includes('--cold');
const junk = new Float64Array(2 * 1024 * 1024);
let sink = 0;

function measureCold(filters) {
  const n = Math.min(iterations, 5_000);
  for (let i = 0; i < 1_000; i++) request(filters);
  let ms = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < junk.length; j += 8) sink += junk[j];
    const t0 = performance.now();
    request(filters);
    ms += performance.now() - t0;
  }
  return (ms * 1000) / n;
}

function measure(filters) {
  if (cold) return measureCold(filters);
  for (let i = 0; i < Math.min(20_000, iterations); i++) request(filters);
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) request(filters);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
}

// The gateway hands the host the body bytes it read (RequestFacts.rawBody), so an unchanged body is
// not re-serialized for the plugin; `--no-raw-body` measures the JSON.stringify fallback instead.
const rawBytes = Buffer.from(JSON.stringify(body));
const facts = process.argv.includes('--no-raw-body') ? {} : { rawBody: () => rawBytes };
const noop = await createWasmPluginFilter({ name: 'noop', path: join(root, 'plugins/dist/noop.wasm') }, deps, { facts });
const rewriter = await createWasmPluginFilter(
  {
    name: 'header-rewriter',
    path: join(root, 'plugins/dist/header-rewriter.wasm'),
    config: { request: { set: { 'x-team': 'ml' }, remove: ['user-agent'] }, response: { set: { 'x-served-by': 'sluice' } } },
  },
  deps,
  { facts },
);

// Interleave rounds so drift (turbo, other load) hits every variant alike; keep each variant's best.
const best = { none: Infinity, noop: Infinity, rewriter: Infinity };
for (let round = 0; round < 5; round++) {
  best.none = Math.min(best.none, measure([]));
  best.noop = Math.min(best.noop, measure([noop]));
  best.rewriter = Math.min(best.rewriter, measure([rewriter]));
}
const check = request([rewriter]);
if (check.upstreamHeaderEdits.set['x-team'] !== 'ml' || check.responseHeaders['x-served-by'] !== 'sluice') {
  throw new Error('the header rewriter did not run');
}
const round = (n) => Math.round(n * 1000) / 1000;
process.stdout.write(
  JSON.stringify(
    {
      iterations,
      raw_body: 'rawBody' in facts,
      cold_caches: cold,
      node: process.version,
      cpu_us_per_request: { none: round(best.none), noop: round(best.noop), header_rewriter: round(best.rewriter) },
      added_cpu_us: { noop: round(best.noop - best.none), header_rewriter: round(best.rewriter - best.none) },
      target_us: 5,
    },
    null,
    2,
  ) + '\n',
);
