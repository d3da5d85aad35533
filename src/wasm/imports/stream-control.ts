/**
 * Resuming, closing and answering a stream, and the context functions: proxy_continue_stream (and
 * 0.1.0's proxy_continue_request/response), proxy_close_stream, proxy_send_local_response,
 * proxy_done, proxy_set_effective_context, proxy_get_status.
 */

import { GatewayError, type ErrorCode } from '../../errors.js';
import type { LocalReply } from '../../pipeline/filter.js';
import { StreamType, Status } from '../abi-constants.js';
import { parseHeaderPairs } from '../header-map.js';
import type { PluginVm } from '../plugin-vm.js';
import type { HostFunctions } from './types.js';

function codeFor(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 413:
      return 'body_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'rate_limited';
    case 502:
      return 'upstream_error';
    case 503:
      return 'overloaded';
    case 504:
      return 'upstream_timeout';
    default:
      return status >= 500 ? 'internal_error' : 'invalid_request';
  }
}

/**
 * A JSON object body is sent as the plugin wrote it; anything else becomes an error in the client's
 * protocol carrying the body text as its message, since LocalReply cannot carry raw bytes.
 */
export function localReplyFrom(status: number, details: string, body: Uint8Array, headers: [string, string][]): LocalReply {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const hdrs: Record<string, string> = {};
  for (const [k, v] of headers) if (!k.startsWith(':') && k !== 'content-length') hdrs[k.toLowerCase()] = v;
  let json: unknown;
  if (text.length > 0 && (text[0] === '{' || text.trimStart()[0] === '{')) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    return { status, body: json as Record<string, unknown>, headers: hdrs };
  }
  const message = text || details || `request answered by a plugin with status ${status}`;
  return { status, error: new GatewayError(codeFor(status), message, { status }), headers: hdrs };
}

export function streamControlImports(vm: PluginVm): HostFunctions {
  const mem = vm.mem;

  const resume = (streamType: number): number => {
    const s = vm.effective;
    if (streamType !== StreamType.Request && streamType !== StreamType.Response) {
      return streamType === StreamType.Downstream || streamType === StreamType.Upstream
        ? Status.Unimplemented
        : Status.BadArgument;
    }
    if (s === undefined) return Status.NotFound;
    if (!s.resume(undefined)) s.resumeRequested = true;
    return Status.Ok;
  };

  return {
    proxy_continue_stream: resume,
    proxy_continue_request: () => resume(StreamType.Request),
    proxy_continue_response: () => resume(StreamType.Response),
    proxy_close_stream(streamType: number): number {
      const s = vm.effective;
      if (streamType > StreamType.Upstream) return Status.BadArgument;
      if (s === undefined) return Status.NotFound;
      // Resetting an HTTP stream from a gateway filter means ending the request: 502-style reply.
      const reply: LocalReply = {
        status: 502,
        error: new GatewayError('upstream_error', `request closed by plugin ${vm.identity.name}`),
      };
      s.localReply = reply;
      s.resume(reply);
      return Status.Ok;
    },
    proxy_send_local_response(
      status: number,
      detailsPtr: number,
      detailsLen: number,
      bodyPtr: number,
      bodyLen: number,
      headersPtr: number,
      headersLen: number,
      _grpcStatus: number,
    ): number {
      const s = vm.effective;
      if (s === undefined) return Status.NotFound;
      const details = mem.string(detailsPtr, detailsLen);
      const body = mem.copy(bodyPtr, bodyLen);
      const hdrBytes = mem.view8(headersPtr, headersLen);
      if (details === undefined || body === undefined || hdrBytes === undefined) return Status.InvalidMemoryAccess;
      const headers = parseHeaderPairs(hdrBytes);
      if (headers === undefined) return Status.BadArgument;
      if (status < 200 || status > 599) return Status.BadArgument;
      const reply = localReplyFrom(status, details, body, headers);
      s.localReply = reply;
      s.resume(reply);
      return Status.Ok;
    },
    /** 0.1.0: route selection is the router's; nothing is cached per request to clear. */
    proxy_clear_route_cache(): number {
      return Status.Ok;
    },
    proxy_done(): number {
      const s = vm.effective;
      if (s === undefined || !s.awaitingDone) return Status.NotFound;
      vm.streamDone(s);
      return Status.Ok;
    },
    proxy_set_effective_context(contextId: number): number {
      if (!vm.contextExists(contextId)) return Status.BadArgument;
      vm.effective = contextId === vm.rootContextId ? undefined : vm.streams.get(contextId);
      return Status.Ok;
    },
    proxy_get_status(retCode: number, retMsgData: number, retMsgSize: number): number {
      const r = vm.callResponse;
      if (r === undefined) return Status.NotFound;
      if (!mem.writeU32(retCode, r.status)) return Status.InvalidMemoryAccess;
      return mem.returnString(r.message, retMsgData, retMsgSize);
    },
  };
}
