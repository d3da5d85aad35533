// Header rewriter (ABI 0.2.1). Configuration:
//   { "request":  { "set": {name: value}, "add": {name: value}, "remove": [names], "rename": {from: to} },
//     "response": { "set": {...}, "add": {...}, "remove": [...] } }
// `rename` reads the whole request map and writes it back in one call (whole-map replace).

export * from "../sdk/exports";
import {
  Action, HttpContext, LogLevel, MapType, Pair, RootContext, BufferType,
  addHeaderBytes, getBufferString, getHeaderPairs, log, removeHeaderBytes, replaceHeaderBytes, setHeaderPairs,
  setRootContextFactory,
} from "../sdk/proxy-wasm";
import { Json, Kind, parseJson } from "../sdk/json";

/** A name and value encoded once, at configure time, so requests pay no string encoding. */
class Encoded {
  key: ArrayBuffer;
  value: ArrayBuffer;
  constructor(p: Pair) {
    this.key = String.UTF8.encode(p.key);
    this.value = String.UTF8.encode(p.value);
  }
}

class Edits {
  replace: Array<Encoded> = new Array<Encoded>();
  append: Array<Encoded> = new Array<Encoded>();
  remove: Array<ArrayBuffer> = new Array<ArrayBuffer>();
  rename: Array<Pair> = new Array<Pair>();
}

function encodeAll(pairs: Array<Pair>): Array<Encoded> {
  const out = new Array<Encoded>();
  for (let i = 0; i < pairs.length; i++) out.push(new Encoded(pairs[i]));
  return out;
}

function pairsOf(o: Json | null): Array<Pair> {
  const out = new Array<Pair>();
  if (o === null || o.kind != Kind.Object) return out;
  for (let i = 0; i < o.keys.length; i++) {
    const v = o.items[i];
    if (v.kind == Kind.String) out.push(new Pair(o.keys[i], v.str));
  }
  return out;
}

function editsOf(o: Json | null): Edits {
  const e = new Edits();
  if (o === null || o.kind != Kind.Object) return e;
  e.replace = encodeAll(pairsOf(o.get("set")));
  e.append = encodeAll(pairsOf(o.get("add")));
  e.rename = pairsOf(o.get("rename"));
  const r = o.get("remove");
  if (r !== null && r.kind == Kind.Array) {
    for (let i = 0; i < r.items.length; i++) if (r.items[i].kind == Kind.String) e.remove.push(String.UTF8.encode(r.items[i].str));
  }
  return e;
}

function apply(map: MapType, e: Edits): void {
  for (let i = 0; i < e.remove.length; i++) removeHeaderBytes(map, e.remove[i]);
  for (let i = 0; i < e.replace.length; i++) replaceHeaderBytes(map, e.replace[i].key, e.replace[i].value);
  for (let i = 0; i < e.append.length; i++) addHeaderBytes(map, e.append[i].key, e.append[i].value);
  if (e.rename.length > 0) {
    const pairs = getHeaderPairs(map);
    let changed = false;
    for (let i = 0; i < pairs.length; i++) {
      for (let j = 0; j < e.rename.length; j++) {
        if (pairs[i].key == e.rename[j].key) {
          pairs[i].key = e.rename[j].value;
          changed = true;
        }
      }
    }
    if (changed) setHeaderPairs(map, pairs);
  }
}

let requestEdits = new Edits();
let responseEdits = new Edits();

class RewriterRoot extends RootContext {
  onConfigure(size: usize): bool {
    const text = getBufferString(BufferType.PluginConfiguration);
    if (text === null) return true;
    if (text.length == 0) return true;
    const cfg = parseJson(text);
    if (cfg === null || cfg.kind != Kind.Object) {
      log(LogLevel.Error, "header-rewriter: configuration is not a JSON object");
      return false;
    }
    requestEdits = editsOf(cfg.get("request"));
    responseEdits = editsOf(cfg.get("response"));
    return true;
  }
  newHttpContext(id: u32): HttpContext {
    return new Rewriter(id, this);
  }
}

class Rewriter extends HttpContext {
  reusable(): bool { return true; }
  onRequestHeaders(n: u32, eos: bool): Action {
    apply(MapType.RequestHeaders, requestEdits);
    return Action.Continue;
  }
  onResponseHeaders(n: u32, eos: bool): Action {
    apply(MapType.ResponseHeaders, responseEdits);
    return Action.Continue;
  }
}

setRootContextFactory((id: u32): RootContext => new RewriterRoot(id));
