/**
 * Which proxy-wasm ABI a module was built for. Every SDK exports an empty marker function named after
 * the version (`proxy_abi_version_0_2_1`, …); the host reads it from the module's export list before
 * instantiating, because callback signatures and some host function names differ between versions.
 */

import { Wasm, type WasmModule } from './wasm-api.js';

export type AbiVersion = '0.1.0' | '0.2.0' | '0.2.1';

/** Newest first: a module that (oddly) exports several markers gets the newest it claims. */
const MARKERS: readonly [string, AbiVersion][] = [
  ['proxy_abi_version_0_2_1', '0.2.1'],
  ['proxy_abi_version_0_2_0', '0.2.0'],
  ['proxy_abi_version_0_1_0', '0.1.0'],
];

export class UnsupportedAbiError extends Error {
  readonly code = 'wasm_unsupported_abi';
  constructor(found: readonly string[]) {
    super(
      found.length === 0
        ? 'module exports no proxy_abi_version_* marker; is it a proxy-wasm plugin?'
        : `module declares only unsupported ABI versions: ${found.join(', ')}`,
    );
    this.name = 'UnsupportedAbiError';
  }
}

export function detectAbiVersion(module: WasmModule): AbiVersion {
  const names = new Set<string>();
  for (const e of Wasm.Module.exports(module)) if (e.kind === 'function') names.add(e.name);
  for (const [marker, version] of MARKERS) if (names.has(marker)) return version;
  throw new UnsupportedAbiError([...names].filter((n) => n.startsWith('proxy_abi_version_')));
}

/** 0.1.0 predates `end_of_stream` on header callbacks and `proxy_continue_stream`. */
export function isLegacyAbi(version: AbiVersion): boolean {
  return version === '0.1.0';
}
