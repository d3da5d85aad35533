/**
 * How many tokens to reserve for a request before it is sent: its prompt, estimated, plus the most
 * it may generate. The reservation is reconciled with the real usage when the response ends, so it
 * has to be close and, above all, rarely low: an under-reservation lets concurrent requests overrun
 * a token budget, an over-reservation only holds budget back until the reconciliation.
 *
 * Prompt tokens
 * - Text is counted with the `o200k_base` vocabulary (GPT-4o and later). Other vendors' tokenizers
 *   differ, so their counts get a margin (`tokenMarginFor`): rough factors that err high.
 * - Framing follows OpenAI's chat format: 3 tokens per message, 1 more for a `name`, 3 to prime
 *   the reply. Tool definitions and a JSON schema are counted as their JSON text (more than the
 *   compact form vendors render them in), tool calls as name + arguments + a few tokens.
 * - An image is 85 tokens at `detail: low`, else 1,600 (about a full-size image for GPT-4o, Claude
 *   and Gemini; the true count depends on its size, which is not known without decoding it).
 *
 * Cost and its bounds
 * - Exact counting is a regex pre-tokenizer plus byte-pair merges: about 0.55 ms for a 2k-token
 *   prompt seen for the first time (docs/costs.md has the measurements). Conversations resend their whole
 *   history every turn, so counts of texts seen before are remembered (bounded), and only the new
 *   turn is tokenized.
 * - Per request at most `exactCharBudget` characters (default 16,384, ≈ 4k tokens) are tokenized;
 *   beyond that, texts are estimated from their characters in one pass (`approximateTextTokens`).
 *   Measured against o200k that rule gives 0.94–1.47× the true count on prose in 13 languages,
 *   code, JSON, numbers and CSV, and 0.75× on random base64 (which chats rarely carry as text).
 *   A plain chars/4 rule would give 0.34–0.6× on CJK, JSON and numbers: too low to reserve with.
 * - The vocabulary is loaded on first use (a few hundred ms). Servers call `warmUpTokenEstimator()`
 *   at start so that no request pays it, and only when some limit counts tokens.
 *
 * Only the ranks file comes from js-tiktoken: its `Tiktoken` class keys its rank map by
 * comma-joined byte lists, which costs 68 MB of heap per process and a string join per merge
 * candidate. Here the vocabulary is a RankTable (typed arrays, ~5 MB, nothing for the garbage
 * collector to trace) looked up by byte range, and remembered counts are keyed by hashes, so counting
 * keeps no JS objects alive: a worker's collector does not pay for the estimator on every request.
 * The counts are checked against js-tiktoken in the tests.
 */

import { createRequire } from 'node:module';
import type { ChatRequest, ContentPart, Message, ToolDefinition } from '../protocol/canonical.js';
import { RankTable } from './rank-table.js';

export interface EstimateOptions {
  /** The model the request will be sent as (picks the margin); default: the request's model. */
  readonly model?: string;
  /** Factor applied to the o200k count; default `tokenMarginFor(model)`. */
  readonly margin?: number;
  /** Completion tokens to reserve when the request sets no maximum. Default 4,096. */
  readonly defaultCompletionTokens?: number;
  /** Characters tokenized exactly per request (texts seen before are free). Default 16,384. */
  readonly exactCharBudget?: number;
}

export interface TokenReservation {
  /** Estimated prompt tokens, margin included. */
  promptTokens: number;
  /** The most the answer may use: max tokens (or the default) × choices. */
  completionTokens: number;
  total: number;
  /** False when part of the prompt was estimated from characters instead of tokenized. */
  tokenized: boolean;
}

export const DEFAULT_COMPLETION_TOKENS = 4096;
export const DEFAULT_EXACT_CHAR_BUDGET = 16_384;

const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_NAME = 1;
const REPLY_PRIMING_TOKENS = 3;
const TOKENS_PER_TOOL_CALL = 6;
const TOKENS_PER_TOOL_DEFINITION = 8;
const TOOLS_PREAMBLE_TOKENS = 12;
const IMAGE_TOKENS_LOW = 85;
const IMAGE_TOKENS = 1_600;

// ── margins ───────────────────────────────────────────────────────────────────────────────────

/** Models tokenized with o200k itself: no margin. */
const O200K_MODELS = /^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss|openai\/gpt-oss)/;

/**
 * How much more a model's own tokenizer may count than o200k. Rough factors chosen to err high:
 * Claude's tokenizers count noticeably more than o200k on English and code; cl100k (GPT-4, 3.5),
 * Llama, Mistral, Qwen and DeepSeek vocabularies are smaller than o200k, most of all outside English.
 */
export function tokenMarginFor(model: string): number {
  const m = model.toLowerCase();
  const base = m.includes('/') && !m.startsWith('openai/') ? m.slice(m.lastIndexOf('/') + 1) : m;
  if (O200K_MODELS.test(base) || O200K_MODELS.test(m)) return 1;
  if (base.startsWith('claude')) return 1.25;
  if (base.startsWith('gemini') || base.startsWith('gemma')) return 1.1;
  return 1.15;
}

// ── the tokenizer ─────────────────────────────────────────────────────────────────────────────

interface RanksFile {
  pat_str: string;
  bpe_ranks: string;
}

/** Pieces longer than this are merged in chunks: BPE is quadratic in a piece's length. */
const MAX_PIECE_BYTES = 256;
/** No rank: a pair that is not in the vocabulary. */
const NO_RANK = 0x7fffffff;

class O200kCounter {
  private readonly ranks: RankTable;
  private readonly splitter: RegExp;
  private readonly encoder = new TextEncoder();
  /** The current piece's UTF-8 bytes; grown for longer pieces. */
  private scratch = new Uint8Array(1024);
  /** merge(): part boundaries and the ranks of adjacent pairs, reused across calls. */
  private readonly starts = new Int32Array(MAX_PIECE_BYTES + 1);
  private readonly pair = new Int32Array(MAX_PIECE_BYTES);

  constructor(file: RanksFile) {
    this.splitter = new RegExp(file.pat_str, 'gu');
    this.ranks = RankTable.fromTiktoken(file.bpe_ranks);
  }

  count(text: string): number {
    const splitter = this.splitter;
    splitter.lastIndex = 0;
    let n = 0;
    let match: RegExpExecArray | null;
    while ((match = splitter.exec(text)) !== null) n += this.countPiece(match[0]);
    return n;
  }

  /** Tokens of one pre-token piece. */
  private countPiece(piece: string): number {
    const len = this.encode(piece);
    const bytes = this.scratch;
    // Most pieces are one token: a single lookup.
    if (this.ranks.rank(bytes, 0, len) >= 0) return 1;
    if (len <= MAX_PIECE_BYTES) return this.merge(0, len);
    // Merging chunk by chunk is not merging the whole: a boundary usually prevents a merge (one
    // token more), but it can also change which merges happen next and end one token lower. One
    // token per boundary keeps the sum from ever being low (random hex pieces, measured against
    // tiktoken: up to one low per boundary without it).
    let n = 0;
    for (let i = 0; i < len; ) {
      let end = Math.min(len, i + MAX_PIECE_BYTES);
      // Cut between characters, not inside one: a split character could merge with neither side.
      while (end < len && end > i + 1 && (bytes[end]! & 0xc0) === 0x80) end--;
      n += this.merge(i, end);
      if (end < len) n++;
      i = end;
    }
    return n;
  }

  /** Writes the piece's UTF-8 bytes to `scratch`; returns their count. */
  private encode(piece: string): number {
    const length = piece.length;
    if (length * 3 > this.scratch.length) this.scratch = new Uint8Array(length * 3);
    const out = this.scratch;
    for (let i = 0; i < length; i++) {
      const c = piece.charCodeAt(i);
      if (c >= 0x80) return this.encoder.encodeInto(piece, out).written;
      out[i] = c;
    }
    return length;
  }

  /**
   * Byte-pair merging of scratch[from, to) as tiktoken does it: repeatedly join the adjacent pair
   * whose joined bytes have the lowest rank (the leftmost on ties) until no joined pair is in the
   * vocabulary. Returns the number of parts left.
   */
  private merge(from: number, to: number): number {
    const len = to - from;
    if (len <= 1) return len;
    const bytes = this.scratch;
    const ranks = this.ranks;
    // starts[i]: first byte of part i (starts[parts] = to); pair[i]: rank of parts i and i+1 joined.
    const starts = this.starts;
    const pair = this.pair;
    for (let i = 0; i <= len; i++) starts[i] = from + i;
    for (let i = 0; i < len - 1; i++) {
      const r = ranks.rank(bytes, from + i, from + i + 2);
      pair[i] = r < 0 ? NO_RANK : r;
    }
    let pairs = len - 1;
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i < pairs; i++) {
        if (pair[i]! < best) {
          best = pair[i]!;
          at = i;
        }
      }
      if (at < 0) break;
      // Parts at and at + 1 become one: drop the boundary between them and their pair.
      starts.copyWithin(at + 1, at + 2, pairs + 2);
      pair.copyWithin(at, at + 1, pairs);
      pairs--;
      if (at < pairs) {
        const r = ranks.rank(bytes, starts[at]!, starts[at + 2]!);
        pair[at] = r < 0 ? NO_RANK : r;
      }
      if (at > 0) {
        const r = ranks.rank(bytes, starts[at - 1]!, starts[at + 1]!);
        pair[at - 1] = r < 0 ? NO_RANK : r;
      }
    }
    return pairs + 1;
  }
}

let counter: O200kCounter | undefined;

function getCounter(): O200kCounter {
  if (counter === undefined) {
    // Synchronous on purpose: the ranks file is a plain module, and an estimate cannot wait.
    const require = createRequire(import.meta.url);
    counter = new O200kCounter(require('js-tiktoken/ranks/o200k_base') as RanksFile);
  }
  return counter;
}

/** Loads the vocabulary now rather than on the first request. */
export function warmUpTokenEstimator(): void {
  getCounter();
}

// ── remembered texts ──────────────────────────────────────────────────────────────────────────

/** Shorter texts cost less to tokenize than to remember. */
const MIN_MEMO_CHARS = 48;
/** Remembered texts: sets of MEMO_WAYS entries, (hash, hash, length, count) each, in one typed array. */
const MEMO_SETS = 16_384;
const MEMO_WAYS = 4;
const MEMO_FIELDS = 4;

/**
 * Token counts of texts seen before, by a 64-bit hash of the text (and its length) instead of the
 * text: nothing is kept alive for the collector, a hit needs no comparison of the whole text, and the
 * memory is fixed (1 MiB for 64k texts). Two texts of equal length whose two 32-bit hashes both
 * collide would share a count: at worst a reservation that is off until it is reconciled.
 * Replacement is round robin within a set of four.
 */
const memo = new Uint32Array(MEMO_SETS * MEMO_WAYS * MEMO_FIELDS);
const memoNext = new Uint8Array(MEMO_SETS);
let hashA = 0;
let hashB = 0;

/**
 * Sets hashA and hashB for `text`: FNV-1a and a multiplicative hash with another seed, two UTF-16
 * units per step (half the multiplications of one unit per step; this runs on every request).
 */
function hashText(text: string): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const c = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b + c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  if (i < n) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b + c, 0x5bd1e995);
  }
  hashA = a >>> 0;
  hashB = (b ^ (b >>> 15)) >>> 0;
}

function remember(text: string, tokens: number): void {
  hashText(text);
  const set = hashA & (MEMO_SETS - 1);
  const way = memoNext[set]!;
  memoNext[set] = (way + 1) % MEMO_WAYS;
  const at = (set * MEMO_WAYS + way) * MEMO_FIELDS;
  memo[at] = hashA;
  memo[at + 1] = hashB;
  memo[at + 2] = text.length;
  memo[at + 3] = tokens;
}

/** A remembered count, or undefined. */
function recall(text: string): number | undefined {
  if (text.length < MIN_MEMO_CHARS) return undefined;
  hashText(text);
  const base = (hashA & (MEMO_SETS - 1)) * MEMO_WAYS * MEMO_FIELDS;
  for (let at = base; at < base + MEMO_WAYS * MEMO_FIELDS; at += MEMO_FIELDS) {
    if (memo[at] === hashA && memo[at + 1] === hashB && memo[at + 2] === text.length) return memo[at + 3];
  }
  return undefined;
}

function tokenize(text: string): number {
  const n = getCounter().count(text);
  if (text.length >= MIN_MEMO_CHARS) remember(text, n);
  return n;
}

/** The exact o200k token count of `text` (no framing, no margin). */
export function countTextTokens(text: string): number {
  return recall(text) ?? tokenize(text);
}

// ── the character rule ────────────────────────────────────────────────────────────────────────

const enum Run {
  None,
  Lower,
  Upper,
  Digit,
  Symbol,
  Space,
}

/**
 * A one-pass estimate of o200k tokens from character classes, shaped by how o200k pre-tokenizes:
 * letter runs (split where camelCase turns upper) at ~4 letters a token, digits in groups of 3, a
 * symbol token per 2 symbols, a token per whitespace run that is more than one space (a lone space
 * joins the next word, except before a digit), one per CJK character, two per astral character.
 */
export function approximateTextTokens(text: string): number {
  let tokens = 0;
  let run = Run.None;
  let length = 0;
  let newline = false;
  const flush = (): void => {
    if (length === 0) return;
    if (run === Run.Lower || run === Run.Upper) tokens += Math.ceil(length / 4);
    else if (run === Run.Digit) tokens += Math.ceil(length / 3);
    else if (run === Run.Symbol) tokens += Math.ceil(length / 2);
    else if (run === Run.Space && (length > 1 || newline)) tokens += 1;
    length = 0;
    newline = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let kind: Run;
    if (c >= 97 && c <= 122) kind = Run.Lower;
    else if (c >= 65 && c <= 90) kind = Run.Upper;
    else if (c >= 48 && c <= 57) kind = Run.Digit;
    else if (c === 32 || c === 9 || c === 10 || c === 13) kind = Run.Space;
    else if (c < 128) kind = Run.Symbol;
    else if (c >= 0xd800 && c <= 0xdbff) {
      flush();
      run = Run.None;
      tokens += 2;
      i++;
      continue;
    } else if ((c >= 0x2e80 && c <= 0xd7ff) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xff00 && c <= 0xffef)) {
      flush();
      run = Run.None;
      tokens += 1;
      continue;
    } else if (c >= 0x0300 && c <= 0x036f) continue; // combining marks ride on their letter
    else if (c >= 0x2000 && c <= 0x2bff) kind = Run.Symbol; // punctuation, arrows, box drawing
    else kind = Run.Lower; // other scripts' letters: accented Latin, Cyrillic, Greek, …
    if (c === 10 || c === 13) newline = true;
    if (kind !== run) {
      // Upper then lower continues one piece ("Word"); lower then upper starts another ("camelCase").
      if (!(run === Run.Upper && kind === Run.Lower)) {
        if (run === Run.Space && length === 1 && !newline && kind === Run.Digit) tokens += 1;
        flush();
      }
      run = kind;
    }
    length++;
  }
  flush();
  return tokens;
}

// ── requests ──────────────────────────────────────────────────────────────────────────────────

/** One request's counting: exact while the budget lasts, by characters after. */
class Tally {
  tokens = 0;
  tokenized = true;

  constructor(private budget: number) {}

  text(text: string): void {
    if (text === '') return;
    const known = recall(text);
    if (known !== undefined) {
      this.tokens += known;
    } else if (text.length <= this.budget) {
      this.budget -= text.length;
      this.tokens += tokenize(text);
    } else {
      this.tokenized = false;
      this.tokens += approximateTextTokens(text);
    }
  }

  fixed(n: number): void {
    this.tokens += n;
  }
}

function countParts(parts: readonly ContentPart[], tally: Tally): void {
  for (const p of parts) {
    if (p.type === 'text' || p.type === 'reasoning') tally.text(p.text);
    else if (p.type === 'image') tally.fixed(p.detail === 'low' ? IMAGE_TOKENS_LOW : IMAGE_TOKENS);
  }
}

function countMessage(m: Message, tally: Tally): void {
  tally.fixed(TOKENS_PER_MESSAGE + 1); // the role's name is one token
  countParts(m.content, tally);
  if (m.role === 'user' && m.name !== undefined) {
    tally.fixed(TOKENS_PER_NAME);
    tally.text(m.name);
  }
  if (m.role === 'assistant' && m.toolCalls) {
    for (const call of m.toolCalls) {
      tally.fixed(TOKENS_PER_TOOL_CALL);
      tally.text(call.name);
      tally.text(call.arguments);
    }
  }
  if (m.role === 'tool') tally.text(m.toolCallId);
}

function toolText(tool: ToolDefinition): string {
  return JSON.stringify({ name: tool.name, description: tool.description, parameters: tool.parameters });
}

/** Estimated prompt tokens of `req`, before any margin. */
function promptTally(req: ChatRequest, budget: number): Tally {
  const tally = new Tally(budget);
  for (const m of req.messages) countMessage(m, tally);
  if (req.tools && req.tools.length > 0) {
    tally.fixed(TOOLS_PREAMBLE_TOKENS);
    for (const t of req.tools) {
      tally.fixed(TOKENS_PER_TOOL_DEFINITION);
      tally.text(toolText(t));
    }
  }
  if (req.responseFormat?.type === 'json_schema') tally.text(JSON.stringify(req.responseFormat.schema));
  tally.fixed(REPLY_PRIMING_TOKENS);
  return tally;
}

/** Prompt tokens of `req` as its model would count them (margin included), and whether all was tokenized. */
export function estimatePromptTokens(req: ChatRequest, opts: EstimateOptions = {}): { tokens: number; tokenized: boolean } {
  const tally = promptTally(req, opts.exactCharBudget ?? DEFAULT_EXACT_CHAR_BUDGET);
  const margin = opts.margin ?? tokenMarginFor(opts.model ?? req.model);
  return { tokens: Math.ceil(tally.tokens * margin), tokenized: tally.tokenized };
}

/**
 * The most the answer may use: `max_tokens` / `max_completion_tokens` (the canonical `maxTokens`),
 * or the default plus any reasoning budget, times the number of choices.
 */
export function completionReservation(req: ChatRequest, defaultTokens = DEFAULT_COMPLETION_TOKENS): number {
  const perChoice = req.maxTokens ?? defaultTokens + (req.reasoningBudget ?? 0);
  return perChoice * Math.max(1, req.n ?? 1);
}

/** What to reserve at admission for `req`. */
export function reserveTokens(req: ChatRequest, opts: EstimateOptions = {}): TokenReservation {
  const prompt = estimatePromptTokens(req, opts);
  const completionTokens = completionReservation(req, opts.defaultCompletionTokens);
  return { promptTokens: prompt.tokens, completionTokens, total: prompt.tokens + completionTokens, tokenized: prompt.tokenized };
}
