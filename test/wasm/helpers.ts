/** Shared by the Wasm host tests: built example plugins, request contexts, a log that records. */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RequestContext } from '../../src/pipeline/context.js';
import type { JsonObject, WireProtocol } from '../../src/protocol/codec.js';
import {
  createWasmPluginFilter,
  defaultHostDeps,
  type HostDeps,
  type PluginConfigInput,
  type WasmPluginFilter,
} from '../../src/wasm/index.js';
import { ModuleCache } from '../../src/wasm/module-loader.js';

/** dist/test/wasm → repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIST = join(ROOT, 'plugins', 'dist');

let built = false;

/** The built plugin's path; builds the plugins once if the build step has not run. */
export function pluginPath(name: string): string {
  const file = join(DIST, `${name}.wasm`);
  if (!existsSync(file) && !built) {
    execFileSync(process.execPath, [join(ROOT, 'plugins', 'build.mjs')], { stdio: 'inherit' });
    built = true;
  }
  return file;
}

export interface LogLine {
  plugin: string;
  level: number;
  message: string;
}

export function recordingDeps(overrides: Partial<HostDeps> = {}): HostDeps & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const deps = defaultHostDeps({
    logger: (plugin, level, message) => lines.push({ plugin, level, message }),
    ...overrides,
  });
  return Object.assign(deps, { lines });
}

let seq = 0;

export function chatContext(
  opts: {
    headers?: Record<string, string>;
    body?: JsonObject;
    model?: string;
    protocol?: WireProtocol;
    path?: string;
  } = {},
): RequestContext {
  const protocol = opts.protocol ?? 'openai-chat';
  const path = opts.path ?? (protocol === 'anthropic-messages' ? '/v1/messages' : '/v1/chat/completions');
  const ctx = new RequestContext(
    `req-${++seq}`,
    'POST',
    path,
    { host: 'gateway.test', 'content-type': 'application/json', ...opts.headers },
    protocol,
    'chat',
  );
  ctx.body = opts.body ?? { model: opts.model ?? 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] };
  ctx.model = opts.model ?? (typeof ctx.body['model'] === 'string' ? (ctx.body['model'] as string) : 'gpt-4o');
  return ctx;
}

/** A fresh cache per test file keeps compile-cache assertions independent. */
export const testCache = new ModuleCache();

export async function plugin(
  name: string,
  config: Omit<PluginConfigInput, 'name' | 'path'> & { name?: string } = {},
  deps: HostDeps = recordingDeps(),
): Promise<WasmPluginFilter> {
  return createWasmPluginFilter({ name: config.name ?? name, path: pluginPath(name), ...config }, deps, { cache: testCache });
}

/** Runs the request phases the way the chain does (headers, then body unless answered). */
export async function runRequest(filter: WasmPluginFilter, ctx: RequestContext) {
  const h = await filter.onRequestHeaders?.(ctx);
  if (h) return h;
  return (await filter.onRequestBody?.(ctx)) ?? undefined;
}

/** The response side and the end, as the relay drives them for a non-streamed answer. */
export function finishResponse(filter: WasmPluginFilter, ctx: RequestContext, status = 200): void {
  ctx.status = status;
  filter.onResponseHeaders?.(ctx);
  filter.onDone?.(ctx);
}

interface BinaryenModule {
  validate(): number;
  emitBinary(): Uint8Array;
  dispose(): void;
}
type Binaryen = { parseText(text: string): BinaryenModule };

let binaryen: Binaryen | undefined;

/**
 * WebAssembly text → binary, with the Binaryen that AssemblyScript installs (the plugin build uses
 * it too). For test modules no SDK would produce: odd memories, missing markers, other ABI versions.
 */
export async function assemble(wat: string): Promise<Uint8Array> {
  // A variable specifier: binaryen ships no types that this project's compiler settings accept.
  const specifier = 'binaryen';
  binaryen ??= ((await import(specifier)) as { default: Binaryen }).default;
  const mod = binaryen.parseText(wat);
  try {
    if (!mod.validate()) throw new Error('test module does not validate');
    return mod.emitBinary();
  } finally {
    mod.dispose();
  }
}

/** Writes a module to a fresh temporary file and returns its path. */
export async function moduleFile(wat: string, name = 'test.wasm'): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-wasm-')), name);
  writeFileSync(file, await assemble(wat));
  return file;
}
