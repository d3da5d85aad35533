// Request-body transformer (ABI 0.2.1): adds a system prompt to chat requests. For OpenAI-style
// bodies it inserts a system message first in `messages`; for Anthropic Messages (read from the
// `sluice.protocol` property) it prepends to `system`. Configuration: { "prompt": "..." }

export * from "../sdk/exports";
import {
  Action, BufferType, HttpContext, LogLevel, RootContext,
  getBufferSize, getBufferString, getPropertyString, log, setBuffer, setRootContextFactory, setProperty,
} from "../sdk/proxy-wasm";
import { Json, Kind, parseJson } from "../sdk/json";

let prompt = "";

class PromptRoot extends RootContext {
  onConfigure(size: usize): bool {
    const text = getBufferString(BufferType.PluginConfiguration);
    let cfg: Json | null = null;
    if (text !== null) cfg = parseJson(text);
    if (cfg === null || cfg.kind != Kind.Object || cfg.getString("prompt", "") == "") {
      log(LogLevel.Error, "system-prompt: configuration needs a non-empty `prompt`");
      return false;
    }
    prompt = cfg.getString("prompt", "");
    return true;
  }
  newHttpContext(id: u32): HttpContext {
    return new PromptAdder(id, this);
  }
}

class PromptAdder extends HttpContext {
  reusable(): bool { return true; }
  onRequestBody(size: usize, eos: bool): Action {
    if (!eos) return Action.Pause;
    const text = getBufferString(BufferType.RequestBody);
    if (text === null) return Action.Continue;
    const body = parseJson(text!);
    if (body === null || body.kind != Kind.Object) return Action.Continue;
    const protocol = getPropertyString("sluice.protocol");
    if (protocol !== null && protocol! == "anthropic-messages") {
      const existing = body.getString("system", "");
      body.set("system", Json.ofString(existing == "" ? prompt : prompt + "\n\n" + existing));
    } else {
      const messages = body.get("messages");
      if (messages === null || messages.kind != Kind.Array) return Action.Continue;
      const sys = Json.object();
      sys.set("role", Json.ofString("system"));
      sys.set("content", Json.ofString(prompt));
      messages.items.unshift(sys);
    }
    // Replace the whole body: start 0, size = its current length.
    setBuffer(BufferType.RequestBody, 0, getBufferSize(BufferType.RequestBody), body.stringify());
    setProperty("system_prompt.added", "true");
    return Action.Continue;
  }
}

setRootContextFactory((id: u32): RootContext => new PromptRoot(id));
