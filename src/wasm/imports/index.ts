/**
 * The import object for one instance: every area's host functions in `env`, WASI in
 * `wasi_snapshot_preview1`. Function imports the host does not know (another host's extensions) are
 * linked to stubs that answer Unimplemented (ENOSYS for WASI), so such a plugin still loads and fails
 * only if it depends on them.
 */

import { Wasm, type WasmImports, type WasmMemory, type WasmModule } from '../wasm-api.js';
import type { WASI } from 'node:wasi';
import { Status } from '../abi-constants.js';
import type { PluginVm } from '../plugin-vm.js';
import { assemblyScriptImports } from './assemblyscript.js';
import { bufferImports } from './buffers.js';
import { headerMapImports } from './header-maps.js';
import { httpCallImports } from './http-calls.js';
import { loggingImports } from './logging.js';
import { metricImports } from './metrics.js';
import { propertyImports } from './properties.js';
import { sharedDataImports } from './shared-data.js';
import { sharedQueueImports } from './shared-queues.js';
import { streamControlImports } from './stream-control.js';
import { timeImports } from './time.js';
import type { HostFunctions } from './types.js';
import { unimplementedImports } from './unimplemented.js';
import { wasiImports } from './wasi.js';

const WASI_ENOSYS = 52;

export function envImports(vm: PluginVm): HostFunctions {
  return {
    ...loggingImports(vm),
    ...timeImports(vm),
    ...headerMapImports(vm),
    ...bufferImports(vm),
    ...streamControlImports(vm),
    ...propertyImports(vm),
    ...httpCallImports(vm),
    ...sharedDataImports(vm),
    ...sharedQueueImports(vm),
    ...metricImports(vm),
    ...unimplementedImports(),
    ...assemblyScriptImports(vm),
  };
}

export function buildImports(
  vm: PluginVm,
  module: WasmModule,
  wasi: WASI | undefined,
  importedMemory: WasmMemory | undefined,
): WasmImports {
  const namespaces: WasmImports = { env: envImports(vm) };
  if (wasi) namespaces.wasi_snapshot_preview1 = wasiImports(vm, wasi);
  for (const imp of Wasm.Module.imports(module)) {
    const ns = (namespaces[imp.module] ??= {});
    if (imp.kind === 'memory' && importedMemory) {
      ns[imp.name] = importedMemory;
      continue;
    }
    if (imp.kind !== 'function' || imp.name in ns) continue;
    const label = `${imp.module}.${imp.name}`;
    const answer = imp.module === 'wasi_snapshot_preview1' ? WASI_ENOSYS : Status.Unimplemented;
    ns[imp.name] = () => {
      if (!vm.stubbedImports.has(label)) {
        vm.stubbedImports.add(label);
        vm.deps.logger(vm.identity.name, 3, `called ${label}, which Sluice does not provide`);
      }
      return answer;
    };
  }
  return namespaces;
}
