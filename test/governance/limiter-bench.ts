/**
 * Micro-benchmark of the limiter: added CPU per request, shared memory vs Redis.
 *
 *   npx tsc -p tsconfig.json && node dist/test/governance/limiter-bench.js [redis://127.0.0.1:6379]
 *
 * Shared memory: admit + settle in a loop on a private segment (one process: the cost of the code,
 * not of cache lines bouncing between workers). Redis: the client-side CPU per admit + settle with
 * 64 requests in flight, the latency of one admit + settle in a row, and the Redis calls per request
 * (admissions are one call each; settlements of one event-loop turn share one call).
 */

import { randomBytes } from 'node:crypto';

import { Redis } from 'ioredis';

import { type LimitRule, type QuotaRule, RedisLimiter, SharedMemoryLimiter } from '../../src/governance/limiter/index.js';
import { SharedMemory } from '../../src/shm/index.js';

const BIG = 1_000_000_000;
const THREE_RULES: LimitRule[] = [
  { key: 'c:bench', rpm: BIG, tpm: BIG, concurrent: 1_000_000 },
  { key: 'c:bench|m:gpt-4o', rpm: BIG, tpm: BIG },
  { key: 'm:gpt-4o', rpm: BIG, tpm: BIG },
];
const QUOTAS: QuotaRule[] = [
  { key: 'c:bench', period: 'day', mode: 'calendar', tokens: 1e12, costMicros: 1e12 },
  { key: 'c:bench', period: 'month', mode: 'rolling', tokens: 1e12 },
];

function local(rules: LimitRule[], quotas: QuotaRule[], label: string): void {
  const limiter = new SharedMemoryLimiter(SharedMemory.private({ workerSlots: 64 }));
  const rounds = 200_000;
  // CPU time, not wall time: on a shared machine the process is also descheduled, which is not the
  // limiter's cost.
  const run = (n: number): number => {
    const before = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const admission = limiter.admit(rules, quotas, 1200, 3000);
      if (!admission.ok) throw new Error(admission.reason);
      limiter.settle(admission.ticket, 700, 1500);
    }
    const used = process.cpuUsage(before);
    return (used.user + used.system) / n;
  };
  run(rounds); // warm up the JIT
  const samples = [run(rounds), run(rounds), run(rounds), run(rounds), run(rounds)].sort((a, b) => a - b);
  console.log(`shm   ${label.padEnd(44)} ${samples[0]!.toFixed(2)}–${samples[2]!.toFixed(2)} µs CPU per admit+settle (best–median of 5 × ${rounds})`);
}

async function redis(url: string): Promise<void> {
  const keyPrefix = `sluice-bench:${randomBytes(4).toString('hex')}:`;
  const limiter = new RedisLimiter({ redis: url, keyPrefix, onRedisError: 'closed', commandTimeoutMs: 5000 });
  const counter = new Redis(url);
  try {
    if (!(await limiter.ready())) throw new Error(`Redis at ${url} does not answer`);
    const calls = async (): Promise<number> => {
      const info = await counter.info('commandstats');
      const match = /cmdstat_evalsha:calls=(\d+)/.exec(info);
      return match ? Number(match[1]) : 0;
    };
    const one = async (): Promise<void> => {
      const admission = await limiter.admit(THREE_RULES, QUOTAS, 1200, 3000);
      if (!admission.ok || admission.ticket.unlimited) throw new Error('not admitted by Redis');
      void limiter.settle(admission.ticket, 700, 1500);
    };

    // Throughput: 64 in flight.
    const total = 20_000;
    for (let i = 0; i < 2000; i++) await one();
    const callsBefore = await calls();
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next++ < total) await one();
      }),
    );
    await limiter.settle(
      (await limiter.admit([], [], 0, 0) as { ok: true; ticket: Parameters<RedisLimiter['settle']>[0] }).ticket,
      0,
      0,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const wallUs = Number(process.hrtime.bigint() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const callsPerRequest = ((await calls()) - callsBefore) / total;
    console.log(
      `redis 3 rules + 2 quotas, 64 in flight             ${((cpu.user + cpu.system) / total).toFixed(1)} µs CPU per admit+settle, ` +
        `${Math.round((total / wallUs) * 1e6)} req/s, ${callsPerRequest.toFixed(2)} Redis calls per request (1 admit + shared settle batches)`,
    );

    // Latency on the request path: one admission at a time (its settlement is not awaited, as in
    // the gateway, where it happens after the response).
    const rounds = 2000;
    let admitNs = 0n;
    for (let i = 0; i < rounds; i++) {
      const t = process.hrtime.bigint();
      const admission = await limiter.admit(THREE_RULES, QUOTAS, 1200, 3000);
      admitNs += process.hrtime.bigint() - t;
      if (!admission.ok) throw new Error('refused');
      await limiter.settle(admission.ticket, 700, 1500);
    }
    const ping0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) await counter.ping();
    const pingUs = Number(process.hrtime.bigint() - ping0) / rounds / 1000;
    const scripts = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await counter.info('commandstats'));
    console.log(
      `redis 3 rules + 2 quotas, one at a time             ${(Number(admitNs) / rounds / 1000).toFixed(0)} µs per admission (one round trip; a PING round trip is ${pingUs.toFixed(0)} µs; ` +
        `Redis spends ${scripts ? (Number(scripts[2]) / Number(scripts[1])).toFixed(0) : '?'} µs per script on average since its last stats reset)`,
    );
  } finally {
    await limiter.close();
    const keys = await counter.keys(`${keyPrefix}*`);
    if (keys.length > 0) await counter.del(...keys);
    counter.disconnect();
  }
}

local([THREE_RULES[0]!], [], '1 rule (rpm, tpm, concurrent)');
local(THREE_RULES, [], '3 rules (consumer, consumer×model, model)');
local(THREE_RULES, QUOTAS, '3 rules + 2 quotas');
await redis(process.argv[2] ?? 'redis://127.0.0.1:6379');
