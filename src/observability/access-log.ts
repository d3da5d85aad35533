/**
 * The access log: one JSON line per request once it is over, to stdout or appended to a file. It
 * says what was asked, what served it and how it went; never a header, a key or a prompt.
 *
 * Every worker process appends to the same file: the file is opened with O_APPEND and each line is
 * one write(2), so lines of different workers never interleave.
 */

import { createWriteStream, type WriteStream } from 'node:fs';
import { clock } from '../clock.js';
import type { AccessLogConfig } from '../config/schema.js';
import type { RequestContext } from '../pipeline/context.js';
import { describeError, log } from './logger.js';

export class AccessLog {
  private constructor(
    readonly path: string,
    private readonly out: WriteStream | NodeJS.WriteStream,
    private readonly includePrompts: boolean,
  ) {}

  /** Null when the log is disabled. */
  static open(config: AccessLogConfig): AccessLog | null {
    if (!config.enabled) return null;
    if (config.path === 'stdout') return new AccessLog('stdout', process.stdout, config.include_prompts);
    const stream = createWriteStream(config.path, { flags: 'a' });
    stream.on('error', (err) => log.error('access log write failed', { path: config.path, ...describeError(err) }));
    return new AccessLog(config.path, stream, config.include_prompts);
  }

  write(ctx: RequestContext): void {
    const now = clock.monotonicMs();
    const usage = ctx.usage;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      request_id: ctx.id,
      consumer: ctx.consumer,
      method: ctx.method,
      path: ctx.path,
      model: ctx.model || undefined,
      route: ctx.route?.plan.name,
      provider: ctx.provider || undefined,
      upstream_model: ctx.upstreamModel || undefined,
      endpoint: ctx.endpoint || undefined,
      attempts: ctx.attempts,
      status: ctx.status,
      stream: ctx.stream,
      duration_ms: round(now - ctx.startMs),
      ttft_ms: ctx.firstByteMs > 0 ? round(ctx.firstByteMs - ctx.startMs) : undefined,
      input_tokens: usage?.inputTokens,
      output_tokens: usage?.outputTokens,
      cost_usd: ctx.costMicros > 0 ? ctx.costMicros / 1e6 : undefined,
      prompt: this.includePrompts ? promptOf(ctx) : undefined,
      cache: ctx.cache,
    });
    this.out.write(line + '\n');
  }

  close(): Promise<void> {
    if (this.out === process.stdout) return Promise.resolve();
    return new Promise((resolve) => (this.out as WriteStream).end(() => resolve()));
  }
}

const MAX_PROMPT_CHARS = 64 * 1024;

/** What the client sent that makes up the prompt, as JSON text cut to a bound. */
function promptOf(ctx: RequestContext): string | undefined {
  const b = ctx.body;
  const parts: Record<string, unknown> = {};
  for (const k of ['system', 'messages', 'prompt', 'input']) if (b[k] !== undefined) parts[k] = b[k];
  if (Object.keys(parts).length === 0) return undefined;
  const text = JSON.stringify(parts);
  return text.length > MAX_PROMPT_CHARS ? `${text.slice(0, MAX_PROMPT_CHARS)}…` : text;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
