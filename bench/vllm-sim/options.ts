/**
 * The simulator's settings: one table gives each its flag, type, default and help, so the CLI
 * parser, `--help` and validation cannot drift apart. Flag names follow `vllm serve` where vLLM has
 * the same knob (`--max-num-seqs`, `--max-num-batched-tokens`, `--max-model-len`, `--block-size`,
 * `--no-enable-prefix-caching`).
 */

export interface VllmSimOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  /** The one served model name. */
  model: string;
  /** KV-cache capacity in blocks. */
  kvBlocks: number;
  /** Tokens per KV block. */
  blockSize: number;
  /** Most sequences running (batched) at once; the rest wait in FIFO order. */
  maxRunning: number;
  /** Token budget of one scheduler step (prefill chunks plus one token per decoding sequence). */
  maxBatchedTokens: number;
  /** Longest prompt + output accepted; 0 = the whole KV cache. */
  maxModelLen: number;
  /** Prefill cost per prompt token not found in the prefix cache, in microseconds. */
  prefillUsPerToken: number;
  /** Fixed cost of every scheduler step (one forward pass), in milliseconds. */
  decodeMs: number;
  /** Added step cost per sequence in the batch, in milliseconds. */
  decodeMsPerSeq: number;
  /** Output length when a request names no max_tokens. */
  maxTokensDefault: number;
  /** Automatic prefix caching on (vLLM's default) or off. */
  prefixCaching: boolean;
  /** No banner or logs. */
  quiet: boolean;
}

type Kind = 'string' | 'int' | 'number' | 'bool';

interface OptionSpec {
  readonly key: keyof VllmSimOptions;
  readonly flag: string;
  readonly aliases?: readonly string[];
  readonly kind: Kind;
  /** Smallest accepted value for numbers. */
  readonly min?: number;
  readonly help: string;
}

export const DEFAULT_OPTIONS: Readonly<VllmSimOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  model: 'sim-model',
  kvBlocks: 4096,
  blockSize: 16,
  maxRunning: 256,
  maxBatchedTokens: 8192,
  maxModelLen: 0,
  prefillUsPerToken: 50,
  decodeMs: 8,
  decodeMsPerSeq: 0.1,
  maxTokensDefault: 64,
  prefixCaching: true,
  quiet: false,
});

export const OPTION_SPECS: readonly OptionSpec[] = [
  { key: 'host', flag: '--host', kind: 'string', help: 'address to listen on' },
  { key: 'port', flag: '--port', kind: 'int', min: 0, help: 'port to listen on; 0 picks a free one (printed in the banner)' },
  { key: 'model', flag: '--model', aliases: ['--served-model-name'], kind: 'string', help: 'the served model name' },
  { key: 'kvBlocks', flag: '--kv-blocks', aliases: ['--num-gpu-blocks-override'], kind: 'int', min: 1, help: 'KV-cache capacity in blocks' },
  { key: 'blockSize', flag: '--block-size', kind: 'int', min: 1, help: 'tokens per KV block' },
  { key: 'maxRunning', flag: '--max-running', aliases: ['--max-num-seqs'], kind: 'int', min: 1, help: 'most sequences batched at once' },
  { key: 'maxBatchedTokens', flag: '--max-batched-tokens', aliases: ['--max-num-batched-tokens'], kind: 'int', min: 1, help: 'token budget of one scheduler step (long prefills are chunked)' },
  { key: 'maxModelLen', flag: '--max-model-len', kind: 'int', min: 0, help: 'longest prompt + output accepted; 0 = kv-blocks x block-size' },
  { key: 'prefillUsPerToken', flag: '--prefill-us-per-token', kind: 'number', min: 0, help: 'prefill cost per uncached prompt token (us)' },
  { key: 'decodeMs', flag: '--decode-ms', kind: 'number', min: 0, help: 'fixed cost of each scheduler step (ms)' },
  { key: 'decodeMsPerSeq', flag: '--decode-ms-per-seq', kind: 'number', min: 0, help: 'added step cost per sequence in the batch (ms)' },
  { key: 'maxTokensDefault', flag: '--max-tokens-default', kind: 'int', min: 1, help: 'output tokens when a request names no max_tokens' },
  { key: 'prefixCaching', flag: '--enable-prefix-caching', kind: 'bool', help: 'automatic prefix caching (--no-enable-prefix-caching turns it off)' },
  { key: 'quiet', flag: '--quiet', kind: 'bool', help: 'print nothing but errors (the banner too)' },
];

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function parseValue(spec: OptionSpec, raw: string): string | number | boolean {
  switch (spec.kind) {
    case 'string':
      if (raw === '') throw new UsageError(`${spec.flag} needs a value`);
      return raw;
    case 'bool':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new UsageError(`${spec.flag} takes true or false, not "${raw}"`);
    case 'int':
    case 'number': {
      const value = raw.trim() === '' ? Number.NaN : Number(raw);
      if (!Number.isFinite(value) || (spec.kind === 'int' && !Number.isInteger(value))) {
        throw new UsageError(`${spec.flag} takes ${spec.kind === 'int' ? 'an integer' : 'a number'}, not "${raw}"`);
      }
      if (spec.min !== undefined && value < spec.min) throw new UsageError(`${spec.flag} must be at least ${spec.min}`);
      return value;
    }
  }
}

/** Fills defaults and checks what only makes sense together; throws UsageError. */
export function resolveOptions(partial: Partial<VllmSimOptions>): VllmSimOptions {
  const options: VllmSimOptions = { ...DEFAULT_OPTIONS };
  for (const [key, value] of Object.entries(partial) as [keyof VllmSimOptions, unknown][]) {
    if (value === undefined) continue;
    const spec = OPTION_SPECS.find((s) => s.key === key);
    if (!spec) throw new UsageError(`unknown option "${key}"`);
    const expected = spec.kind === 'int' || spec.kind === 'number' ? 'number' : spec.kind === 'bool' ? 'boolean' : 'string';
    if (typeof value !== expected) throw new UsageError(`option ${key} must be a ${expected}`);
    (options as unknown as Record<string, unknown>)[key] = parseValue(spec, String(value));
  }
  if (options.port > 65535) throw new UsageError('--port must be at most 65535');
  const capacity = options.kvBlocks * options.blockSize;
  if (options.maxModelLen === 0) options.maxModelLen = capacity;
  if (options.maxModelLen > capacity) {
    // vLLM refuses to start in this case too: a request of that length could never be admitted.
    throw new UsageError(`--max-model-len ${options.maxModelLen} exceeds the KV cache (${options.kvBlocks} blocks x ${options.blockSize} = ${capacity} tokens)`);
  }
  return options;
}

export type ParsedArgs = { help: true } | { help: false; options: VllmSimOptions };

/** `--flag value`, `--flag=value`, bare `--flag` / `--no-flag` for booleans; throws UsageError. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const partial: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const negated = name.startsWith('--no-') ? `--${name.slice(5)}` : undefined;
    const spec = OPTION_SPECS.find((s) => s.flag === name || s.aliases?.includes(name))
      ?? (negated ? OPTION_SPECS.find((s) => s.kind === 'bool' && (s.flag === negated || s.aliases?.includes(negated))) : undefined);
    if (!spec) throw new UsageError(`unknown option ${name} (see --help)`);
    if (spec.kind === 'bool') {
      if (eq >= 0 && negated) throw new UsageError(`${name} takes no value`);
      partial[spec.key] = eq >= 0 ? parseValue(spec, arg.slice(eq + 1)) : negated === undefined;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (i + 1 < argv.length) raw = argv[++i]!;
    else throw new UsageError(`${name} needs a value`);
    partial[spec.key] = parseValue(spec, raw);
  }
  return { help: false, options: resolveOptions(partial as Partial<VllmSimOptions>) };
}

export function helpText(): string {
  const rows = OPTION_SPECS.map((spec) => {
    const value = spec.kind === 'bool' ? '' : spec.kind === 'string' ? ' <text>' : ' <n>';
    const names = [spec.flag, ...(spec.aliases ?? [])].join(', ') + value;
    const fallback = DEFAULT_OPTIONS[spec.key];
    const shown = spec.key === 'maxModelLen' ? 'kv capacity' : String(fallback);
    return `  ${names.padEnd(52)} ${spec.help} (default: ${shown})`;
  });
  return [
    'vllm-sim: one simulated vLLM replica (OpenAI-compatible API, paged KV cache with prefix caching,',
    'continuous batching, vLLM metric names on /metrics).',
    '',
    'usage: node dist/bench/vllm-sim/main.js [options]',
    '',
    ...rows,
    '  --help, -h                                           this text',
    '',
  ].join('\n');
}
