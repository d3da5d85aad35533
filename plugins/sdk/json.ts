// A small JSON reader/writer for plugin configuration and request bodies (AssemblyScript has none
// built in). Values keep object key order, so a body that is parsed and written back only changes
// where the plugin changed it.

export const enum Kind { Null, Bool, Number, String, Array, Object }

export class Json {
  kind: Kind = Kind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Array<Json> = new Array<Json>();
  keys: Array<string> = new Array<string>();

  static ofString(s: string): Json { const j = new Json(); j.kind = Kind.String; j.str = s; return j; }
  static ofNumber(n: f64): Json { const j = new Json(); j.kind = Kind.Number; j.num = n; return j; }
  static ofBool(b: bool): Json { const j = new Json(); j.kind = Kind.Bool; j.bool = b; return j; }
  static object(): Json { const j = new Json(); j.kind = Kind.Object; return j; }
  static array(): Json { const j = new Json(); j.kind = Kind.Array; return j; }

  get(key: string): Json | null {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return null;
  }

  set(key: string, value: Json): void {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) { this.items[i] = value; return; }
    }
    this.keys.push(key);
    this.items.push(value);
  }

  getString(key: string, fallback: string): string {
    const v = this.get(key);
    return v !== null && v.kind == Kind.String ? v.str : fallback;
  }

  getNumber(key: string, fallback: f64): f64 {
    const v = this.get(key);
    return v !== null && v.kind == Kind.Number ? v.num : fallback;
  }

  stringify(): string {
    switch (this.kind) {
      case Kind.Null: return "null";
      case Kind.Bool: return this.bool ? "true" : "false";
      case Kind.Number: {
        const n = this.num;
        return n == Math.floor(n) && Math.abs(n) < 9e15 ? (<i64>n).toString() : n.toString();
      }
      case Kind.String: return quote(this.str);
      case Kind.Array: {
        const parts = new Array<string>();
        for (let i = 0; i < this.items.length; i++) parts.push(this.items[i].stringify());
        return "[" + parts.join(",") + "]";
      }
      default: {
        const parts = new Array<string>();
        for (let i = 0; i < this.keys.length; i++) parts.push(quote(this.keys[i]) + ":" + this.items[i].stringify());
        return "{" + parts.join(",") + "}";
      }
    }
  }
}

export function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u" + (<u32>c).toString(16).padStart(4, "0");
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

class Parser {
  pos: i32 = 0;
  ok: bool = true;
  constructor(public s: string) {}

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) this.pos++;
      else break;
    }
  }

  value(): Json {
    this.ws();
    if (this.pos >= this.s.length) { this.ok = false; return new Json(); }
    const c = this.s.charCodeAt(this.pos);
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) return Json.ofString(this.string());
    if (this.s.startsWith("true", this.pos)) { this.pos += 4; return Json.ofBool(true); }
    if (this.s.startsWith("false", this.pos)) { this.pos += 5; return Json.ofBool(false); }
    if (this.s.startsWith("null", this.pos)) { this.pos += 4; return new Json(); }
    return this.number();
  }

  object(): Json {
    const o = Json.object();
    this.pos++;
    this.ws();
    if (this.s.charCodeAt(this.pos) == 0x7d) { this.pos++; return o; }
    while (this.ok) {
      this.ws();
      if (this.s.charCodeAt(this.pos) != 0x22) { this.ok = false; break; }
      const k = this.string();
      this.ws();
      if (this.s.charCodeAt(this.pos) != 0x3a) { this.ok = false; break; }
      this.pos++;
      o.keys.push(k);
      o.items.push(this.value());
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c == 0x7d) break;
      if (c != 0x2c) { this.ok = false; break; }
    }
    return o;
  }

  array(): Json {
    const a = Json.array();
    this.pos++;
    this.ws();
    if (this.s.charCodeAt(this.pos) == 0x5d) { this.pos++; return a; }
    while (this.ok) {
      a.items.push(this.value());
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c == 0x5d) break;
      if (c != 0x2c) { this.ok = false; break; }
    }
    return a;
  }

  string(): string {
    this.pos++;
    let out = "";
    let start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 0x22) {
        out += this.s.substring(start, this.pos);
        this.pos++;
        return out;
      }
      if (c == 0x5c) {
        out += this.s.substring(start, this.pos);
        const e = this.s.charCodeAt(this.pos + 1);
        this.pos += 2;
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x75) {
          out += String.fromCharCode(<i32>parseInt(this.s.substring(this.pos, this.pos + 4), 16));
          this.pos += 4;
        } else out += String.fromCharCode(e);
        start = this.pos;
        continue;
      }
      this.pos++;
    }
    this.ok = false;
    return out;
  }

  number(): Json {
    const start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if ((c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x65 || c == 0x45) this.pos++;
      else break;
    }
    if (this.pos == start) { this.ok = false; return new Json(); }
    return Json.ofNumber(parseFloat(this.s.substring(start, this.pos)));
  }
}

/** null when `s` is not valid JSON. */
export function parseJson(s: string): Json | null {
  const p = new Parser(s);
  const v = p.value();
  p.ws();
  return p.ok && p.pos == s.length ? v : null;
}
