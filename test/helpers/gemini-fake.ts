/**
 * A tiny deterministic fake of Google's Gemini API (generativelanguage.googleapis.com), written from
 * Google's documented wire shapes, because the mock model server has no Gemini side:
 *
 *   POST /v1beta/models/{model}:generateContent                → GenerateContentResponse
 *   POST /v1beta/models/{model}:streamGenerateContent?alt=sse  → `data: {GenerateContentResponse}\r\n\r\n` frames
 *
 * It answers like the mock model: after a functionResponse, `Tool result: <response>`; with
 * functionDeclarations named (as a whole word) in the last user text, or forced by toolConfig, a
 * functionCall per tool with arguments built from the schema's required properties; otherwise
 * `Echo: <last user text>`. A token is a word plus its trailing whitespace. Candidates after the
 * first (candidateCount) answer `Echo N: …`. maxOutputTokens cuts the answer (finishReason
 * MAX_TOKENS). With responseMimeType application/json the answer is `{"echo":"<text>"}`. With
 * responseLogprobs, every candidate carries a logprobsResult.
 *
 * Like the real API it is strict: unknown request fields are a 400 INVALID_ARGUMENT, the key must be
 * in `x-goog-api-key` (a `key=` query is refused), a stream without `alt=sse` is refused. Errors are
 * Google's `{error:{code,message,status}}`. The header `x-fake-status: N` injects an error.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttp } from './upstreams.js';

export interface GeminiFakeOptions {
  /** When set, requests must carry exactly this `x-goog-api-key`. */
  apiKey?: string;
  /** `modelVersion` reported in answers (default `gemini-fake-001`). */
  modelVersion?: string;
}

export interface GeminiRequest {
  /** `models/x` as addressed. */
  model: string;
  method: 'generateContent' | 'streamGenerateContent';
  query: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

export interface GeminiFake {
  port: number;
  url: string;
  requests: GeminiRequest[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

const TOP_LEVEL = new Set(['contents', 'systemInstruction', 'generationConfig', 'tools', 'toolConfig', 'safetySettings', 'cachedContent', 'labels']);
const GENERATION_CONFIG = new Set([
  'stopSequences', 'responseMimeType', 'responseSchema', 'responseJsonSchema', 'candidateCount', 'maxOutputTokens',
  'temperature', 'topP', 'topK', 'seed', 'presencePenalty', 'frequencyPenalty', 'responseLogprobs', 'logprobs',
  'thinkingConfig', 'responseModalities', 'speechConfig', 'mediaResolution',
]);
const PART_KEYS = new Set(['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse', 'thought', 'thoughtSignature', 'executableCode', 'codeExecutionResult']);

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

class FakeError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function geminiErrorBody(code: number, message: string): string {
  return JSON.stringify({ error: { code, message, status: STATUS_NAMES[code] ?? 'UNKNOWN' } });
}

export async function startGeminiFake(opts: GeminiFakeOptions = {}): Promise<GeminiFake> {
  const requests: GeminiRequest[] = [];
  const modelVersion = opts.modelVersion ?? 'gemini-fake-001';
  let served = 0;
  const { port, url, close } = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const record = parse(req, Buffer.concat(chunks), opts);
        requests.push(record);
        const fault = req.headers['x-fake-status'];
        if (typeof fault === 'string' && fault !== '') throw new FakeError(Number(fault), `fake: injected ${fault} error`);
        const id = `fake-response-${++served}`;
        if (record.method === 'streamGenerateContent') stream(res, record.body, modelVersion, id);
        else json(res, 200, JSON.stringify(respond(record.body, modelVersion, id)));
      } catch (err) {
        const e = err instanceof FakeError ? err : new FakeError(500, 'fake: internal error');
        json(res, e.code, geminiErrorBody(e.code, e.message));
      }
    });
  });
  return { port, url, requests, close };
}

function json(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const PATH = /^\/v1beta\/((?:models|tunedModels)\/[^/:]+):(generateContent|streamGenerateContent)$/;

function parse(req: IncomingMessage, raw: Buffer, opts: GeminiFakeOptions): GeminiRequest {
  const url = new URL(req.url ?? '/', 'http://fake');
  if (req.method !== 'POST') throw new FakeError(404, `Method ${req.method} not found`);
  const m = PATH.exec(url.pathname);
  if (!m) throw new FakeError(404, `The requested URL ${url.pathname} was not found on this server.`);
  if (url.searchParams.has('key')) throw new FakeError(400, 'fake: the key must travel in x-goog-api-key, not the query');
  const method = m[2] as GeminiRequest['method'];
  if (method === 'streamGenerateContent' && url.searchParams.get('alt') !== 'sse') {
    throw new FakeError(400, 'fake: streaming without alt=sse is a JSON array, which this fake does not speak');
  }
  if (opts.apiKey !== undefined && req.headers['x-goog-api-key'] !== opts.apiKey) {
    throw new FakeError(400, 'API key not valid. Please pass a valid API key.');
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new FakeError(400, 'Invalid JSON payload received.');
  }
  if (!isObject(body)) throw new FakeError(400, 'Invalid JSON payload received. Expected an object.');
  validate(body);
  return { model: m[1]!, method, query: url.search, headers: req.headers, body };
}

function unknownName(name: string, where: string): FakeError {
  return new FakeError(400, `Invalid JSON payload received. Unknown name "${name}" at '${where}': Cannot find field.`);
}

function validate(body: Json): void {
  for (const k of Object.keys(body)) if (!TOP_LEVEL.has(k)) throw unknownName(k, '');
  const contents = body.contents;
  if (!Array.isArray(contents) || contents.length === 0) throw new FakeError(400, '* GenerateContentRequest.contents: contents is not specified');
  contents.forEach((c, i) => {
    if (!isObject(c) || (c.role !== 'user' && c.role !== 'model')) {
      throw new FakeError(400, `Please use a valid role: user, model. (contents[${i}])`);
    }
    if (!Array.isArray(c.parts) || c.parts.length === 0) {
      throw new FakeError(400, `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`);
    }
    c.parts.forEach((p, j) => {
      if (!isObject(p)) throw new FakeError(400, `contents[${i}].parts[${j}] must be an object`);
      for (const k of Object.keys(p)) if (!PART_KEYS.has(k)) throw unknownName(k, `contents[${i}].parts[${j}]`);
      if (typeof p.text === 'string' && p.text === '') throw new FakeError(400, `contents[${i}].parts[${j}]: empty text parameter`);
    });
  });
  if (body.generationConfig !== undefined) {
    if (!isObject(body.generationConfig)) throw new FakeError(400, 'generationConfig must be an object');
    for (const k of Object.keys(body.generationConfig)) if (!GENERATION_CONFIG.has(k)) throw unknownName(k, 'generation_config');
  }
  if (body.systemInstruction !== undefined) {
    const si = body.systemInstruction;
    if (!isObject(si) || !Array.isArray(si.parts) || si.parts.length === 0) throw new FakeError(400, 'systemInstruction.parts must not be empty');
  }
}

// ── the "model" ────────────────────────────────────────────────────────────────────────────────

interface Declaration {
  name: string;
  parameters: unknown;
}

type Answer =
  | { kind: 'text'; candidates: { tokens: string[]; truncated: boolean }[] }
  | { kind: 'calls'; calls: { name: string; args: Json }[] };

function words(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

function partsOf(content: unknown): Json[] {
  return isObject(content) && Array.isArray(content.parts) ? content.parts.filter(isObject) : [];
}

function responseText(fr: Json): string {
  const r = fr.response;
  if (isObject(r) && typeof r.content === 'string') return r.content;
  return JSON.stringify(r ?? {});
}

function promptTokens(body: Json): number {
  let n = 0;
  for (const p of partsOf(body.systemInstruction)) if (typeof p.text === 'string') n += words(p.text).length;
  for (const c of body.contents as unknown[]) {
    for (const p of partsOf(c)) {
      if (typeof p.text === 'string') n += words(p.text).length;
      else if (isObject(p.functionResponse)) n += words(responseText(p.functionResponse)).length;
    }
  }
  return n;
}

function valueFromSchema(schema: unknown, depth = 0): unknown {
  if (!isObject(schema) || depth > 16) return 'mock';
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const type = typeof schema.type === 'string' ? schema.type.toLowerCase() : isObject(schema.properties) ? 'object' : 'string';
  switch (type) {
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object': {
      const out: Json = {};
      const props = isObject(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const name of required) if (typeof name === 'string') out[name] = valueFromSchema(props[name], depth + 1);
      return out;
    }
    default:
      return 'mock';
  }
}

function mentioned(decls: Declaration[], text: string): Declaration[] {
  const found: { d: Declaration; at: number }[] = [];
  for (const d of decls) {
    const re = new RegExp(`(^|[^A-Za-z0-9_-])${d.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^A-Za-z0-9_-])`);
    const m = re.exec(text);
    if (m) found.push({ d, at: m.index });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.d);
}

function answer(body: Json): Answer {
  const contents = body.contents as Json[];
  const last = contents[contents.length - 1]!;
  const lastParts = partsOf(last);
  const config = isObject(body.generationConfig) ? body.generationConfig : {};
  const max = typeof config.maxOutputTokens === 'number' ? config.maxOutputTokens : null;
  const n = typeof config.candidateCount === 'number' ? config.candidateCount : 1;
  const jsonMode = config.responseMimeType === 'application/json';

  const responses = lastParts.filter((p) => isObject(p.functionResponse)).map((p) => responseText(p.functionResponse as Json));
  let base: string;
  if (last.role === 'user' && responses.length > 0) {
    base = 'Tool result: ' + responses.join(' ');
  } else {
    const userText = last.role === 'user' ? lastParts.filter((p) => typeof p.text === 'string').map((p) => p.text).join(' ') : '';
    const decls: Declaration[] = [];
    if (Array.isArray(body.tools)) {
      for (const t of body.tools) {
        if (isObject(t) && Array.isArray(t.functionDeclarations)) {
          for (const d of t.functionDeclarations) if (isObject(d) && typeof d.name === 'string') decls.push({ name: d.name, parameters: d.parameters });
        }
      }
    }
    const fcc = isObject(body.toolConfig) && isObject(body.toolConfig.functionCallingConfig) ? body.toolConfig.functionCallingConfig : {};
    let chosen: Declaration[] = [];
    if (decls.length > 0 && fcc.mode !== 'NONE') {
      const allowed = Array.isArray(fcc.allowedFunctionNames) ? fcc.allowedFunctionNames : undefined;
      if (fcc.mode === 'ANY' && allowed) chosen = decls.filter((d) => allowed.includes(d.name));
      else chosen = mentioned(decls, userText);
      if (chosen.length === 0 && fcc.mode === 'ANY') chosen = decls.slice(0, 1);
    }
    if (chosen.length > 0) {
      return { kind: 'calls', calls: chosen.map((d) => ({ name: d.name, args: valueFromSchema({ type: 'object', ...(isObject(d.parameters) ? d.parameters : {}) }) as Json })) };
    }
    base = jsonMode ? JSON.stringify({ echo: userText }) : 'Echo: ' + userText;
  }
  const candidates = [];
  for (let i = 0; i < n; i++) {
    let tokens = words(i === 0 || jsonMode ? base : base.replace(/^Echo: /, `Echo ${i}: `));
    const truncated = max !== null && tokens.length > max;
    if (truncated) tokens = tokens.slice(0, max);
    candidates.push({ tokens, truncated });
  }
  return { kind: 'text', candidates };
}

function usage(body: Json, output: number): Json {
  const prompt = promptTokens(body);
  return { promptTokenCount: prompt, candidatesTokenCount: output, totalTokenCount: prompt + output };
}

function outputCount(a: Answer): number {
  if (a.kind === 'calls') return a.calls.length;
  return a.candidates.reduce((s, c) => s + c.tokens.length, 0);
}

function logprobs(tokens: string[]): Json {
  return {
    chosenCandidates: tokens.map((t) => ({ token: t, logProbability: -0.25 })),
    topCandidates: tokens.map((t) => ({ candidates: [{ token: t, logProbability: -0.25 }, { token: '?', logProbability: -3 }] })),
  };
}

/** Protobuf JSON leaves out fields at their default: index 0 is omitted. */
function withIndex(candidate: Json, index: number): Json {
  return index === 0 ? candidate : { ...candidate, index };
}

function respond(body: Json, modelVersion: string, responseId: string): Json {
  const a = answer(body);
  const wantLogprobs = isObject(body.generationConfig) && body.generationConfig.responseLogprobs === true;
  let candidates: Json[];
  if (a.kind === 'calls') {
    candidates = [{ content: { role: 'model', parts: a.calls.map((c) => ({ functionCall: { name: c.name, args: c.args } })) }, finishReason: 'STOP' }];
  } else {
    candidates = a.candidates.map((c, i) => {
      const cand: Json = { content: { role: 'model', parts: [{ text: c.tokens.join('') }] }, finishReason: c.truncated ? 'MAX_TOKENS' : 'STOP' };
      if (wantLogprobs) cand.logprobsResult = logprobs(c.tokens);
      return withIndex(cand, i);
    });
  }
  return { candidates, usageMetadata: usage(body, outputCount(a)), modelVersion, responseId };
}

function frame(obj: Json): string {
  return `data: ${JSON.stringify(obj)}\r\n\r\n`;
}

function stream(res: ServerResponse, body: Json, modelVersion: string, responseId: string): void {
  const a = answer(body);
  const wantLogprobs = isObject(body.generationConfig) && body.generationConfig.responseLogprobs === true;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const envelope = { modelVersion, responseId };
  if (a.kind === 'calls') {
    res.write(frame({
      candidates: [{ content: { role: 'model', parts: a.calls.map((c) => ({ functionCall: { name: c.name, args: c.args } })) }, finishReason: 'STOP' }],
      usageMetadata: usage(body, a.calls.length),
      ...envelope,
    }));
    res.end();
    return;
  }
  // One frame per step holding each candidate's next token; usageMetadata is cumulative so far.
  const steps = Math.max(1, ...a.candidates.map((c) => c.tokens.length));
  let produced = 0;
  for (let s = 0; s < steps; s++) {
    const candidates: Json[] = [];
    a.candidates.forEach((c, i) => {
      const token = c.tokens[s];
      const lastStep = s === Math.max(0, c.tokens.length - 1);
      if (token === undefined && !lastStep) return;
      const cand: Json = { content: { role: 'model', parts: token === undefined ? [] : [{ text: token }] } };
      if (token !== undefined) produced++;
      if (lastStep) cand.finishReason = c.truncated ? 'MAX_TOKENS' : 'STOP';
      if (wantLogprobs && token !== undefined) cand.logprobsResult = logprobs([token]);
      candidates.push(withIndex(cand, i));
    });
    res.write(frame({ candidates, usageMetadata: usage(body, produced), ...envelope }));
  }
  res.end();
}
