// External authorization via proxy_http_call (ABI 0.2.1). On request headers it asks a named
// upstream whether the caller may proceed, pausing the request until the answer arrives:
// 2xx → continue, copying the answer's `x-consumer` header onto the upstream request;
// anything else (or a failed call) → 403 answered by the plugin.
// Configuration: { "upstream": "authz", "path": "/check", "timeout_ms": 1000 }

export * from "../sdk/exports";
import {
  Action, BufferType, HttpContext, LogLevel, MapType, Pair, RootContext, StreamType,
  continueStream, getBufferString, getHeader, getStatus, httpCall, lastStatus, log, replaceHeader,
  sendLocalResponse, setRootContextFactory,
} from "../sdk/proxy-wasm";
import { Json, Kind, parseJson } from "../sdk/json";

let upstream = "authz";
let path = "/check";
let timeoutMs: u32 = 1000;

class AuthRoot extends RootContext {
  onConfigure(size: usize): bool {
    const text = getBufferString(BufferType.PluginConfiguration);
    let cfg: Json | null = null;
    if (text !== null) cfg = parseJson(text);
    if (cfg === null || cfg.kind != Kind.Object) {
      log(LogLevel.Error, "external-auth: configuration must be a JSON object");
      return false;
    }
    upstream = cfg.getString("upstream", upstream);
    path = cfg.getString("path", path);
    timeoutMs = <u32>cfg.getNumber("timeout_ms", 1000);
    return true;
  }
  newHttpContext(id: u32): HttpContext {
    return new Auth(id, this);
  }
}

function deny(reason: string): void {
  const headers = new Array<Pair>();
  headers.push(new Pair("x-auth-denied", reason));
  sendLocalResponse(403, "external_auth_denied", "access denied: " + reason, headers);
}

class Auth extends HttpContext {
  reusable(): bool { return true; }
  onRequestHeaders(n: u32, eos: bool): Action {
    const headers = new Array<Pair>();
    headers.push(new Pair(":method", "GET"));
    headers.push(new Pair(":path", path));
    headers.push(new Pair(":authority", upstream));
    const key = getHeader(MapType.RequestHeaders, "authorization");
    if (key !== null) headers.push(new Pair("authorization", key));
    const token = httpCall(upstream, headers, "", timeoutMs);
    if (token == 0) {
      log(LogLevel.Error, "external-auth: the host refused the call, status " + lastStatus.toString());
      deny("auth service not configured");
      return Action.Pause;
    }
    return Action.Pause;
  }

  onHttpCallResponse(token: u32, headers: u32, bodySize: usize, trailers: u32): void {
    if (headers == 0) {
      deny("auth service unreachable");
      return;
    }
    const status = getHeader(MapType.HttpCallResponseHeaders, ":status");
    if (status === null || !status.startsWith("2")) {
      const body = getBufferString(BufferType.HttpCallResponseBody);
      deny(body !== null && body.length > 0 ? body : "not allowed");
      return;
    }
    const consumer = getHeader(MapType.HttpCallResponseHeaders, "x-consumer");
    if (consumer !== null) replaceHeader(MapType.RequestHeaders, "x-consumer", consumer);
    const st = getStatus();
    replaceHeader(MapType.RequestHeaders, "x-auth-status", st.code.toString());
    continueStream(StreamType.Request);
  }
}

setRootContextFactory((id: u32): RootContext => new AuthRoot(id));
