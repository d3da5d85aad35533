/**
 * ABI functions Sluice does not provide, answering with the status the spec defines for that case:
 * gRPC (the gateway has no gRPC upstreams) → Unimplemented; foreign functions → NotFound (no function
 * is registered). Listed in docs/plugins.md.
 */

import { Status } from '../abi-constants.js';
import type { HostFunctions } from './types.js';

const unimplemented = (): number => Status.Unimplemented;

export const UNIMPLEMENTED_FUNCTIONS = [
  'proxy_grpc_call',
  'proxy_grpc_stream',
  'proxy_grpc_send',
  'proxy_grpc_cancel',
  'proxy_grpc_close',
] as const;

export function unimplementedImports(): HostFunctions {
  const out: HostFunctions = {};
  for (const name of UNIMPLEMENTED_FUNCTIONS) out[name] = unimplemented;
  out['proxy_call_foreign_function'] = () => Status.NotFound;
  return out;
}
