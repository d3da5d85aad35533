/**
 * Loading a plugin's module: read the file or download the URL, check its SHA-256, cap its memory,
 * compile. Compiled modules are cached by (hash, memory cap), so a reload that keeps a plugin, or two
 * plugins that use the same file, compile once; instances are made per worker from the cached module.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectAbiVersion, type AbiVersion } from './abi-version.js';
import { capModuleMemory } from './memory-cap.js';
import { Wasm, type WasmModule } from './wasm-api.js';

/** Larger modules are refused before hashing: no plugin SDK produces anything near this. */
const MAX_MODULE_BYTES = 64 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_MS = 30_000;

export class PluginLoadError extends Error {
  readonly code = 'wasm_plugin_load';
  constructor(
    readonly plugin: string,
    message: string,
  ) {
    super(`plugin ${plugin}: ${message}`);
    this.name = 'PluginLoadError';
  }
}

export interface ModuleSource {
  name: string;
  path?: string | undefined;
  url?: string | undefined;
  sha256?: string | undefined;
}

export interface CompiledPlugin {
  sha256: string;
  module: WasmModule;
  abi: AbiVersion;
  /** Set when the module imports its memory; the host must create it with this maximum. */
  importedMemoryMaxPages: number | undefined;
}

export class ModuleCache {
  private readonly compiled = new Map<string, Promise<CompiledPlugin>>();

  async load(source: ModuleSource, maxPages: number, baseDir: string = process.cwd()): Promise<CompiledPlugin> {
    // A pinned hash already compiled needs no read: a reload does not download a URL plugin again.
    if (source.sha256 !== undefined) {
      const hit = this.compiled.get(`${source.sha256}:${maxPages}`);
      if (hit !== undefined) return hit;
    }
    const bytes = await readSource(source, baseDir);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (source.sha256 !== undefined && source.sha256 !== sha256) {
      throw new PluginLoadError(source.name, `sha256 mismatch: expected ${source.sha256}, got ${sha256}`);
    }
    const key = `${sha256}:${maxPages}`;
    let entry = this.compiled.get(key);
    if (entry === undefined) {
      entry = compile(source.name, bytes, sha256, maxPages);
      this.compiled.set(key, entry);
      entry.catch(() => this.compiled.delete(key));
    }
    return entry;
  }

  /** Drops modules no plugin uses any more (after a reload). */
  retain(keep: Iterable<CompiledPlugin>): void {
    const live = new Set<string>();
    for (const c of keep) live.add(c.sha256);
    for (const key of this.compiled.keys()) if (!live.has(key.slice(0, 64))) this.compiled.delete(key);
  }

  get size(): number {
    return this.compiled.size;
  }
}

async function compile(name: string, bytes: Uint8Array, sha256: string, maxPages: number): Promise<CompiledPlugin> {
  let capped;
  try {
    capped = capModuleMemory(bytes, maxPages);
  } catch (err) {
    throw new PluginLoadError(name, (err as Error).message);
  }
  let module: WasmModule;
  try {
    module = await Wasm.compile(capped.bytes);
  } catch (err) {
    throw new PluginLoadError(name, `not a valid WebAssembly module: ${(err as Error).message}`);
  }
  let abi: AbiVersion;
  try {
    abi = detectAbiVersion(module);
  } catch (err) {
    throw new PluginLoadError(name, (err as Error).message);
  }
  return { sha256, module, abi, importedMemoryMaxPages: capped.importsMemory ? maxPages : undefined };
}

async function readSource(source: ModuleSource, baseDir: string): Promise<Uint8Array> {
  if (source.path !== undefined) {
    const file = isAbsolute(source.path) ? source.path : resolve(baseDir, source.path);
    return readLimited(source.name, file);
  }
  if (source.url === undefined) throw new PluginLoadError(source.name, 'neither path nor url is set');
  const url = new URL(source.url);
  if (url.protocol === 'file:') return readLimited(source.name, fileURLToPath(url));
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PluginLoadError(source.name, `unsupported URL scheme ${url.protocol}`);
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), redirect: 'follow' });
  } catch (err) {
    throw new PluginLoadError(source.name, `download failed: ${(err as Error).message}`);
  }
  if (!res.ok) throw new PluginLoadError(source.name, `download failed: HTTP ${res.status}`);
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > MAX_MODULE_BYTES) throw new PluginLoadError(source.name, 'module is larger than 64 MiB');
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.byteLength > MAX_MODULE_BYTES) throw new PluginLoadError(source.name, 'module is larger than 64 MiB');
  return body;
}

async function readLimited(name: string, file: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new PluginLoadError(name, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (bytes.byteLength > MAX_MODULE_BYTES) throw new PluginLoadError(name, 'module is larger than 64 MiB');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
