// Usage meter (ABI 0.2.1): counts requests per model across workers in shared data (with
// compare-and-swap), reports each request's duration through a shared queue that the plugin drains on
// a tick or when the queue signals, and exports counters, a gauge and a histogram as metrics.
// Adds `x-usage-count` (this model's count so far) to the response. Configuration:
// { "tick_ms": 1000 }

export * from "../sdk/exports";
import {
  Action, BufferType, HttpContext, LogLevel, MapType, MetricType, RootContext, Status,
  defineMetric, dequeue, enqueue, getBufferString, getLogLevel, getMetric, getPropertyString,
  getSharedData, incrementMetric, lastCas, lastStatus, log, nowNanos, recordMetric, registerQueue,
  replaceHeader, resolveQueue, setRootContextFactory, setSharedData, setTickPeriod,
} from "../sdk/proxy-wasm";
import { Json, Kind, parseJson } from "../sdk/json";

let queueId: u32 = 0;
let requests: u32 = 0;
let inFlight: u32 = 0;
let durations: u32 = 0;
let drained: u32 = 0;

/** Adds 1 to a counter in shared data; retries when another worker won the race. */
function bump(key: string): u64 {
  for (let attempt = 0; attempt < 16; attempt++) {
    const current = getSharedData(key);
    const cas = current === null ? 0 : lastCas;
    const next: u64 = current === null ? 1 : U64.parseInt(current) + 1;
    if (setSharedData(key, next.toString(), cas) == Status.Ok) return next;
  }
  log(LogLevel.Warn, "usage-meter: gave up after 16 CAS conflicts on " + key);
  return 0;
}

function drain(): void {
  for (;;) {
    const item = dequeue(queueId);
    if (item === null) break;
    recordMetric(durations, U64.parseInt(item));
    drained++;
  }
}

class MeterRoot extends RootContext {
  onConfigure(size: usize): bool {
    let tick: u32 = 1000;
    const text = getBufferString(BufferType.PluginConfiguration);
    if (text !== null && text.length > 0) {
      const cfg = parseJson(text);
      if (cfg !== null && cfg.kind == Kind.Object) tick = <u32>cfg.getNumber("tick_ms", 1000);
    }
    queueId = registerQueue("durations");
    if (resolveQueue("", "durations") != queueId) log(LogLevel.Error, "usage-meter: queue did not resolve");
    requests = defineMetric(MetricType.Counter, "usage_meter_requests_total");
    inFlight = defineMetric(MetricType.Gauge, "usage_meter_in_flight");
    durations = defineMetric(MetricType.Histogram, "usage_meter_duration_us");
    setTickPeriod(tick);
    if (getLogLevel() <= <u32>LogLevel.Debug) log(LogLevel.Debug, "usage-meter: configured");
    return true;
  }
  onTick(): void {
    drain();
  }
  onQueueReady(id: u32): void {
    if (id == queueId) drain();
  }
  newHttpContext(id: u32): HttpContext {
    return new Meter(id, this);
  }
}

class Meter extends HttpContext {
  started: u64 = 0;
  count: u64 = 0;

  reusable(): bool { return true; }
  reset(): void {
    this.started = 0;
    this.count = 0;
  }

  onRequestHeaders(n: u32, eos: bool): Action {
    this.started = nowNanos();
    incrementMetric(inFlight, 1);
    return Action.Continue;
  }

  onRequestBody(size: usize, eos: bool): Action {
    const model = getPropertyString("model");
    this.count = bump("requests:" + (model === null ? "unknown" : model));
    incrementMetric(requests, 1);
    return Action.Continue;
  }

  onResponseHeaders(n: u32, eos: bool): Action {
    replaceHeader(MapType.ResponseHeaders, "x-usage-count", this.count.toString());
    replaceHeader(MapType.ResponseHeaders, "x-usage-requests", getMetric(requests).toString());
    return Action.Continue;
  }

  onDone(): bool {
    incrementMetric(inFlight, -1);
    const elapsed = (nowNanos() - this.started) / 1000;
    enqueue(queueId, elapsed.toString());
    return true;
  }
}

setRootContextFactory((id: u32): RootContext => new MeterRoot(id));
