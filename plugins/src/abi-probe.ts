// ABI probe (ABI 0.2.1): a test plugin, not an example to copy. The request header `x-probe` selects
// a behaviour, so the host's tests can drive every corner of the ABI through a real module:
//   statuses        report, as request headers, the status codes of calls the spec defines errors for
//   trap            execute `unreachable`
//   grow            allocate until memory runs out
//   spin:<ms>       busy-wait that long inside the callback
//   spin-log:<ms>   busy-wait that long in on_log (after the request)
//   close           proxy_close_stream on the request
//   pause           return Pause and never resume
//   bad-body        replace the request body with bytes that are not JSON
//   late-reply      try proxy_send_local_response from the response-headers callback
//   defer-done      return false from on_done and call proxy_done after an HTTP call answers

export * from "../sdk/exports";
import {
  Action, BufferType, HttpContext, MapType, Pair, RootContext, Status, StreamType,
  closeStream, continueStream, dequeue, done, enqueue, getBufferSize, getHeader, getHeaderMapSize,
  getHeaderPairs, getLogLevel, getPropertyString, getSharedData, getStatus, httpCall, lastStatus,
  nowNanos, registerQueue, replaceHeader, sendLocalResponse, setBuffer, setEffectiveContext,
  setProperty, setRootContextFactory, setSharedData, tryForeignFunction, tryGrpcCall,
} from "../sdk/proxy-wasm";

let hoard = new Array<ArrayBuffer>();

function spin(ms: string): void {
  const until = nowNanos() + <u64>I32.parseInt(ms) * 1000000;
  while (nowNanos() < until) {}
}

class Probe extends HttpContext {
  mode: string = "";

  report(name: string, status: u32): void {
    replaceHeader(MapType.RequestHeaders, "x-probe-" + name, status.toString());
  }

  onRequestHeaders(n: u32, eos: bool): Action {
    const m = getHeader(MapType.RequestHeaders, "x-probe");
    this.mode = m === null ? "" : m;
    const mode = this.mode;
    if (mode == "trap") unreachable();
    if (mode == "grow") {
      for (;;) hoard.push(new ArrayBuffer(1 << 20));
    }
    if (mode.startsWith("spin:")) spin(mode.substring(5));
    if (mode == "close") {
      closeStream(StreamType.Request);
      return Action.Pause;
    }
    if (mode == "pause") return Action.Pause;
    if (mode == "statuses") this.statuses(n);
    return Action.Continue;
  }

  statuses(n: u32): void {
    this.report("count-matches", getHeaderPairs(MapType.RequestHeaders).length == <i32>n ? 1 : 0);
    this.report("map-size-nonzero", getHeaderMapSize(MapType.RequestHeaders) > 4 ? 1 : 0);
    this.report("grpc", tryGrpcCall());
    this.report("foreign", tryForeignFunction("no_such_function"));
    getHeader(99, "x");
    this.report("bad-map", lastStatus);
    getBufferSize(BufferType.RequestBody);
    this.report("body-before-body", lastStatus);
    this.report("continue-downstream", continueStream(2));
    this.report("continue-bad", continueStream(9));
    this.report("log-level", getLogLevel());
    this.report("set-readonly-property", setProperty("request.path", "/x"));
    this.report("set-property", setProperty("probe.note", "hello"));
    const note = getPropertyString("probe.note");
    this.report("property-roundtrip", note !== null && note == "hello" ? 1 : 0);
    getPropertyString("no.such.property");
    this.report("missing-property", lastStatus);
    getStatus();
    this.report("status-outside-call", lastStatus);
    this.report("done-outside", done());
    this.report("effective-bad", setEffectiveContext(999999));
    const q = registerQueue("probe");
    dequeue(q);
    this.report("dequeue-empty", lastStatus);
    this.report("enqueue-missing", enqueue(999999, "x"));
    setSharedData("probe-key", "1", 0);
    getSharedData("probe-key");
    this.report("cas-mismatch", setSharedData("probe-key", "2", 123456789));
    getSharedData("no-such-key");
    this.report("shared-missing", lastStatus);
    this.report("time-nonzero", nowNanos() > 1600000000000000000 ? 1 : 0);
    this.report("http-call-unknown", httpCall("no-such-upstream", new Array<Pair>(), "", 100) == 0 ? lastStatus : 0);
    const h = new Array<Pair>();
    h.push(new Pair(":method", "GET"));
    this.report("http-call-missing-headers", httpCall("probe", h, "", 100) == 0 ? lastStatus : 0);
    // Switching the effective context to the root: request headers are then not available.
    const switched = setEffectiveContext(this.root.id);
    getHeader(MapType.RequestHeaders, "x-probe");
    const rootSees = lastStatus;
    setEffectiveContext(this.id);
    this.report("effective-root", switched);
    this.report("root-headers", rootSees);
  }

  onRequestBody(size: usize, eos: bool): Action {
    if (this.mode == "bad-body") setBuffer(BufferType.RequestBody, 0, <u32>size, "not json");
    return Action.Continue;
  }

  onResponseHeaders(n: u32, eos: bool): Action {
    if (this.mode == "late-reply") sendLocalResponse(418, "late", "too late", new Array<Pair>());
    return Action.Continue;
  }

  onDone(): bool {
    if (this.mode != "defer-done") return true;
    const h = new Array<Pair>();
    h.push(new Pair(":method", "GET"));
    h.push(new Pair(":path", "/done"));
    h.push(new Pair(":authority", "probe"));
    httpCall("probe", h, "", 1000);
    return false;
  }

  onHttpCallResponse(token: u32, headers: u32, bodySize: usize, trailers: u32): void {
    if (this.mode == "defer-done") {
      setSharedData("probe-deferred-done", done().toString(), 0);
    }
  }

  onLog(): void {
    if (this.mode == "defer-done") setSharedData("probe-logged", "yes", 0);
    if (this.mode.startsWith("spin-log:")) spin(this.mode.substring(9));
  }
}

class ProbeRoot extends RootContext {
  newHttpContext(id: u32): HttpContext {
    return new Probe(id, this);
  }
}

setRootContextFactory((id: u32): RootContext => new ProbeRoot(id));
