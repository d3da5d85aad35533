/**
 * The `env` functions AssemblyScript's runtime imports (abort, trace, seed). Plugins built with
 * AssemblyScript need them whatever proxy-wasm SDK they use.
 */

import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

/** AssemblyScript strings are UTF-16LE with their byte length stored just before the pointer. */
function asString(vm: PluginVm, ptr: number): string {
  if (ptr === 0) return '';
  const len = vm.mem.readU32(ptr - 4);
  if (len === undefined) return '';
  const bytes = vm.mem.view8(ptr, len);
  return bytes === undefined ? '' : Buffer.from(bytes).toString('utf16le');
}

export function assemblyScriptImports(vm: PluginVm): HostFunctions {
  return {
    abort(msg: number, file: number, line: number, column: number): void {
      throw new Error(`abort: ${asString(vm, msg)} at ${asString(vm, file)}:${line}:${column}`);
    },
    trace(msg: number, n: number, ...args: number[]): void {
      vm.deps.logger(vm.identity.name, 1, `trace: ${asString(vm, msg)} ${args.slice(0, n).join(', ')}`);
    },
    seed(): number {
      return Math.random() * Number.MAX_SAFE_INTEGER;
    },
  };
}
