// Keyword blocker (ABI 0.2.1): answers 403 itself, without calling the model, when the request body
// contains one of the configured words (case-insensitive). Counts blocks in a metric.
// Configuration: { "keywords": ["..."], "status": 403, "message": "..." }

export * from "../sdk/exports";
import {
  Action, BufferType, HttpContext, LogLevel, MetricType, Pair, RootContext,
  defineMetric, getBufferString, incrementMetric, log, sendLocalResponse, setRootContextFactory,
} from "../sdk/proxy-wasm";
import { Json, Kind, parseJson, quote } from "../sdk/json";

let keywords = new Array<string>();
let status: u32 = 403;
let message = "the request contains blocked content";
let blockedMetric: u32 = 0;

class BlockerRoot extends RootContext {
  onConfigure(size: usize): bool {
    const text = getBufferString(BufferType.PluginConfiguration);
    let cfg: Json | null = null;
    if (text !== null) cfg = parseJson(text);
    if (cfg === null || cfg.kind != Kind.Object) {
      log(LogLevel.Error, "keyword-blocker: configuration must be a JSON object with `keywords`");
      return false;
    }
    const list = cfg.get("keywords");
    if (list !== null && list.kind == Kind.Array) {
      for (let i = 0; i < list.items.length; i++) {
        if (list.items[i].kind == Kind.String) keywords.push(list.items[i].str.toLowerCase());
      }
    }
    status = <u32>cfg.getNumber("status", 403);
    message = cfg.getString("message", message);
    blockedMetric = defineMetric(MetricType.Counter, "keyword_blocker_blocked_total");
    return true;
  }
  newHttpContext(id: u32): HttpContext {
    return new Blocker(id, this);
  }
}

class Blocker extends HttpContext {
  reusable(): bool { return true; }
  onRequestBody(size: usize, eos: bool): Action {
    if (!eos) return Action.Pause; // wait for the whole body
    const body = getBufferString(BufferType.RequestBody);
    if (body === null) return Action.Continue;
    const lower = body!.toLowerCase();
    for (let i = 0; i < keywords.length; i++) {
      if (lower.includes(keywords[i])) {
        incrementMetric(blockedMetric, 1);
        log(LogLevel.Warn, "keyword-blocker: blocked a request");
        const answer = "{\"error\":{\"message\":" + quote(message) + ",\"type\":\"invalid_request_error\",\"code\":\"content_blocked\"}}";
        const headers = new Array<Pair>();
        headers.push(new Pair("x-blocked-by", "keyword-blocker"));
        sendLocalResponse(status, "keyword_blocked", answer, headers);
        return Action.Pause;
      }
    }
    return Action.Continue;
  }
}

setRootContextFactory((id: u32): RootContext => new BlockerRoot(id));
