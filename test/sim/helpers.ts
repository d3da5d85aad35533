/** Helpers for the vLLM simulator's tests: a sim per test, closed whatever happens, and /metrics reading. */

import OpenAI from 'openai';

import { startVllmSim, type VllmSim } from '../../bench/vllm-sim/server.js';
import type { VllmSimOptions } from '../../bench/vllm-sim/options.js';

/** Fast defaults for tests: short steps, free port, no banner. */
export const FAST: Partial<VllmSimOptions> = { port: 0, quiet: true, decodeMs: 1, decodeMsPerSeq: 0, prefillUsPerToken: 1 };

/** Runs `fn` against a fresh simulator and always closes it. */
export async function withSim<T>(options: Partial<VllmSimOptions>, fn: (sim: VllmSim, client: OpenAI) => Promise<T>): Promise<T> {
  const sim = await startVllmSim({ ...FAST, ...options });
  try {
    return await fn(sim, new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 }));
  } finally {
    await sim.close();
  }
}

/** One sample's value from Prometheus text, matched by name and (optionally) a label fragment. */
export function metric(text: string, name: string, labelFragment = ''): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const series = line.slice(0, space);
    const brace = series.indexOf('{');
    const seriesName = brace < 0 ? series : series.slice(0, brace);
    if (seriesName === name && series.includes(labelFragment)) return Number(line.slice(space + 1));
  }
  throw new Error(`metric ${name}${labelFragment ? ` with ${labelFragment}` : ''} not found`);
}

export async function scrape(sim: VllmSim): Promise<string> {
  const res = await fetch(`${sim.url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** Polls until `check` holds (or fails after `timeoutMs`). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A prompt of exactly `n` token ids, distinct per seed (for /v1/completions). */
export function tokenPrompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((seed * 7919 + i * 104729) % 50000));
}
