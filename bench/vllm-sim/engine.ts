/**
 * The simulated engine: vLLM v1's scheduler reduced to what decides latency and cache behaviour.
 *
 * Every sequence is a list of known tokens (prompt, then generated) and a count of tokens whose KV
 * is computed. A scheduler step gives each running sequence, oldest first, the tokens it still
 * lacks (a whole prefill, a chunk of one when the step's token budget runs out, or the one new token
 * of a decoding sequence), then admits waiting sequences in FIFO order while there is budget, a free
 * batch slot and KV room for their first chunk. Admission looks the prompt up in the prefix cache
 * first: cached blocks are shared, not computed. A sequence that reaches all its known tokens
 * samples the next one. When a running sequence needs a block and none is left, the most recently
 * admitted sequence is preempted: its blocks are freed and it returns to the head of the queue, to
 * be recomputed (vLLM's recompute preemption; its freed blocks usually still hit when it returns).
 *
 * A step lasts `decodeMs + decodeMsPerSeq × sequences in the batch + prefillUsPerToken × prefill
 * tokens`, on real timers. Each step is timed from the end of the previous one rather than from
 * when its timer fired, so timer lateness does not accumulate into a slower model.
 */

import { hashBlock, rootHash } from '../../src/routing/prompt-blocks.js';
import { KvBlockPool } from './kv-block-pool.js';
import { type OutputToken, outputSeed, outputToken } from './output-text.js';
import { type EngineCounters, VllmMetrics } from './vllm-metrics.js';

export type FinishReason = 'stop' | 'length';

/** Receives a sequence's tokens as the steps produce them; `finish` is set on the last one. */
export type TokenSink = (token: OutputToken, finish: FinishReason | null) => void;

export interface EngineOptions {
  readonly model: string;
  readonly kvBlocks: number;
  readonly blockSize: number;
  readonly maxRunning: number;
  readonly maxBatchedTokens: number;
  readonly maxModelLen: number;
  readonly prefillUsPerToken: number;
  readonly decodeMs: number;
  readonly decodeMsPerSeq: number;
  readonly prefixCaching: boolean;
}

export interface SequenceRequest {
  readonly promptTokens: readonly number[];
  /** Tokens to generate; the engine does not stop earlier. */
  readonly maxTokens: number;
  /** What the last token reports: `length` when the client's max_tokens ended it, `stop` otherwise. */
  readonly finishReason: FinishReason;
  /** vLLM's cache_salt: prompts with different salts share no cached blocks. */
  readonly salt?: string;
  readonly sink: TokenSink;
}

export interface SimStats extends EngineCounters {
  readonly kvBlocks: number;
  readonly kvBlocksUsed: number;
  /** Blocks that carry a hash (in use or free): what later prompts can hit. */
  readonly kvBlocksCached: number;
  readonly evictions: number;
  readonly steps: number;
  readonly requestsFinished: number;
}

type State = 'waiting' | 'running' | 'finished' | 'aborted';

export class Sequence {
  /** Prompt then generated tokens. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Chain hashes of the leading full blocks of `tokens`, extended on demand. */
  readonly chain: number[] = [];
  readonly blocks: number[] = [];
  readonly seed: number;
  state: State = 'waiting';
  numComputed = 0;
  generated = 0;
  /** Prompt tokens served from the prefix cache at first admission; -1 before it. */
  cachedTokens = -1;
  firstTokenAt = -1;
  lastTokenAt = -1;

  constructor(
    readonly request: SequenceRequest,
    readonly arrivedAt: number,
    private readonly root: number,
  ) {
    this.tokens = request.promptTokens.slice();
    this.promptLength = this.tokens.length;
    this.seed = outputSeed(this.tokens);
  }

  /** Hashes the leading `blocks` full blocks if not done yet. */
  extendChain(blocks: number, blockSize: number): void {
    for (let i = this.chain.length; i < blocks; i++) {
      this.chain.push(hashBlock(i === 0 ? this.root : this.chain[i - 1]!, this.tokens, i * blockSize, blockSize));
    }
  }
}

/** A FIFO with a cheap push-front (for preempted sequences) and lazy removal of aborted ones. */
class WaitQueue {
  private items: Sequence[] = [];
  private head = 0;
  live = 0;

  push(seq: Sequence): void {
    this.items.push(seq);
    this.live++;
  }

  pushFront(seq: Sequence): void {
    if (this.head > 0) this.items[--this.head] = seq;
    else this.items.unshift(seq);
    this.live++;
  }

  /** The oldest sequence still waiting. */
  peek(): Sequence | undefined {
    while (this.head < this.items.length && this.items[this.head]!.state !== 'waiting') this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  shift(): void {
    this.head++;
    this.live--;
  }

  drain(): Sequence[] {
    const rest = this.items.slice(this.head).filter((s) => s.state === 'waiting');
    this.items = [];
    this.head = 0;
    this.live = 0;
    return rest;
  }
}

/** A step's lateness made up by the next one at most: timer granularity, not a stalled process. */
const MAX_CATCH_UP_MS = 2;

export class SimEngine {
  readonly metrics: VllmMetrics;
  private readonly pool: KvBlockPool;
  /** Chain roots by cache_salt, so a salted prompt does not re-hash its salt per request. */
  private readonly roots = new Map<string, number>();
  private readonly running: Sequence[] = [];
  private readonly waiting = new WaitQueue();
  // The step in progress: parallel arrays, reused, so a step allocates nothing.
  private readonly batchSeqs: Sequence[] = [];
  private readonly batchTokens: number[] = [];
  private timer: { readonly kind: 'timeout'; readonly handle: NodeJS.Timeout } | { readonly kind: 'immediate'; readonly handle: NodeJS.Immediate } | undefined;
  /** True while finishStep hands out tokens: a sink that submits must not start a second loop. */
  private emitting = false;
  private stepEnd = 0;
  private closed = false;
  private readonly counters = {
    prefixQueryTokens: 0,
    prefixHitTokens: 0,
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
    finishedStop: 0,
    finishedLength: 0,
    finishedAbort: 0,
    steps: 0,
  };

  constructor(private readonly options: EngineOptions) {
    this.pool = new KvBlockPool(options.kvBlocks);
    this.metrics = new VllmMetrics(options.model, {
      blockSize: options.blockSize,
      numBlocks: options.kvBlocks,
      prefixCaching: options.prefixCaching,
    });
  }

  /** Queues a sequence; its tokens arrive through the sink from a later step. Throws RangeError if it can never fit. */
  submit(request: SequenceRequest): Sequence {
    if (this.closed) throw new Error('engine is closed');
    const total = request.promptTokens.length + request.maxTokens;
    if (request.promptTokens.length === 0) throw new RangeError('the prompt is empty');
    if (!(Number.isInteger(request.maxTokens) && request.maxTokens > 0)) throw new RangeError('max tokens must be a positive integer');
    if (total > this.options.maxModelLen) {
      throw new RangeError(`prompt (${request.promptTokens.length}) + max tokens (${request.maxTokens}) = ${total} tokens exceeds the maximum context length ${this.options.maxModelLen}`);
    }
    const seq = new Sequence(request, performance.now(), this.rootFor(request.salt));
    this.waiting.push(seq);
    this.wake();
    return seq;
  }

  /** Stops a sequence (the client went away): its blocks are freed at once. */
  abort(seq: Sequence): void {
    if (seq.state === 'waiting') {
      seq.state = 'aborted';
      this.waiting.live--;
    } else if (seq.state === 'running') {
      seq.state = 'aborted';
      this.pool.release(seq.blocks);
      seq.blocks.length = 0;
      this.running.splice(this.running.indexOf(seq), 1);
    } else {
      return;
    }
    this.counters.finishedAbort++;
  }

  /** Forgets cached blocks nobody holds; returns how many. */
  resetPrefixCache(): number {
    return this.pool.resetPrefixCache();
  }

  stats(): SimStats {
    const c = this.counters;
    return {
      running: this.running.length,
      waiting: this.waiting.live,
      kvUsage: this.pool.usage(),
      kvBlocks: this.pool.numBlocks,
      kvBlocksUsed: this.pool.usedBlocks,
      kvBlocksCached: this.pool.cachedBlocks,
      evictions: this.pool.evictions,
      prefixQueryTokens: c.prefixQueryTokens,
      prefixHitTokens: c.prefixHitTokens,
      promptTokens: c.promptTokens,
      generationTokens: c.generationTokens,
      preemptions: c.preemptions,
      finishedStop: c.finishedStop,
      finishedLength: c.finishedLength,
      finishedAbort: c.finishedAbort,
      requestsFinished: c.finishedStop + c.finishedLength,
      steps: c.steps,
    };
  }

  renderMetrics(): string {
    return this.metrics.render(this.stats());
  }

  /** Aborts everything and stops the step loop. */
  close(): void {
    this.closed = true;
    this.cancelTimer();
    for (const seq of [...this.running]) this.abort(seq);
    for (const seq of this.waiting.drain()) seq.state = 'aborted';
  }

  private rootFor(salt: string | undefined): number {
    if (salt === undefined) return rootHash();
    let root = this.roots.get(salt);
    if (root === undefined) {
      root = rootHash(salt);
      if (this.roots.size >= 4096) this.roots.clear();
      this.roots.set(salt, root);
    }
    return root;
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    if (this.timer.kind === 'timeout') clearTimeout(this.timer.handle);
    else clearImmediate(this.timer.handle);
    this.timer = undefined;
  }

  /** Starts the loop if idle; setImmediate lets requests arriving in the same tick share the first step. */
  private wake(): void {
    if (this.timer === undefined && !this.emitting) this.timer = { kind: 'immediate', handle: setImmediate(() => this.step(false)) };
  }

  /** `continued`: straight after a step, whose lateness this one may make up; else from idle. */
  private step(continued: boolean): void {
    this.timer = undefined;
    const o = this.options;
    const now = performance.now();
    const start = continued ? Math.max(now - MAX_CATCH_UP_MS, this.stepEnd) : now;
    const seqs = this.batchSeqs;
    const tokens = this.batchTokens;
    seqs.length = 0;
    tokens.length = 0;
    let budget = o.maxBatchedTokens;
    let prefillTokens = 0;
    let preempted = false;

    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!;
      const n = Math.min(seq.tokens.length - seq.numComputed, budget);
      while (!this.reserve(seq, n)) {
        this.preempt(this.running.pop()!);
        preempted = true;
        if (seq.state !== 'running') break;
      }
      if (seq.state !== 'running') break;
      seqs.push(seq);
      tokens.push(n);
      budget -= n;
      if (!(seq.generated > 0 && n === 1)) prefillTokens += n;
    }

    // As in vLLM, nothing new is admitted in a step that had to preempt: there is no room.
    while (!preempted && budget > 0 && this.running.length < o.maxRunning) {
      const seq = this.waiting.peek();
      if (seq === undefined) break;
      const n = this.admit(seq, budget);
      if (n === 0) break;
      this.waiting.shift();
      this.running.push(seq);
      seqs.push(seq);
      tokens.push(n);
      budget -= n;
      prefillTokens += n;
    }

    if (seqs.length === 0) return;
    this.counters.steps++;
    const duration = o.decodeMs + o.decodeMsPerSeq * seqs.length + (o.prefillUsPerToken * prefillTokens) / 1000;
    this.stepEnd = start + duration;
    const delay = this.stepEnd - performance.now();
    this.timer = delay > 0
      ? { kind: 'timeout', handle: setTimeout(() => this.finishStep(), delay) }
      : { kind: 'immediate', handle: setImmediate(() => this.finishStep()) };
  }

  /**
   * Admits the queue's head if its first chunk fits: looks its prompt up in the prefix cache, takes
   * the hits and allocates the rest. Returns the tokens scheduled, 0 when it does not fit.
   */
  private admit(seq: Sequence, budget: number): number {
    const o = this.options;
    const total = seq.tokens.length;
    let hitBlocks = 0;
    if (o.prefixCaching) {
      // At least one token is always computed (it produces the next token), so a prompt that is
      // an exact number of blocks never hits on its last block.
      const lookup = Math.floor((total - 1) / o.blockSize);
      seq.extendChain(lookup, o.blockSize);
      hitBlocks = this.pool.cachedPrefix(seq.chain, lookup);
    }
    const cached = hitBlocks * o.blockSize;
    const n = Math.min(total - cached, budget);
    const fresh = Math.ceil((cached + n) / o.blockSize) - hitBlocks;
    const reclaimed = hitBlocks > 0 ? this.pool.freeAmongCached(seq.chain, hitBlocks) : 0;
    if (this.pool.freeBlocks - reclaimed < fresh) return 0;
    this.pool.acquireCached(seq.chain, hitBlocks, seq.blocks);
    this.pool.allocate(fresh, seq.blocks);
    seq.numComputed = cached;
    this.cacheFullBlocks(seq, cached + n);
    if (o.prefixCaching) {
      this.counters.prefixQueryTokens += total;
      this.counters.prefixHitTokens += cached;
    }
    if (seq.cachedTokens < 0) {
      seq.cachedTokens = cached;
      this.metrics.queueTime.observe((performance.now() - seq.arrivedAt) / 1000);
    }
    seq.state = 'running';
    return n;
  }

  /** Makes sure a running sequence has blocks for `n` more tokens; false when the pool is out. */
  private reserve(seq: Sequence, n: number): boolean {
    const needed = Math.ceil((seq.numComputed + n) / this.options.blockSize) - seq.blocks.length;
    if (needed > 0 && !this.pool.allocate(needed, seq.blocks)) return false;
    this.cacheFullBlocks(seq, seq.numComputed + n);
    return true;
  }

  /**
   * Registers the hashes of blocks that are full once `upTo` tokens are computed, at allocation as
   * vLLM v1 does: a sequence admitted later in the same step already shares them.
   */
  private cacheFullBlocks(seq: Sequence, upTo: number): void {
    if (!this.options.prefixCaching) return;
    const full = Math.floor(upTo / this.options.blockSize);
    seq.extendChain(full, this.options.blockSize);
    for (let i = 0; i < full; i++) this.pool.cache(seq.blocks[i]!, seq.chain[i]!);
  }

  private preempt(seq: Sequence): void {
    this.pool.release(seq.blocks);
    seq.blocks.length = 0;
    seq.numComputed = 0;
    seq.state = 'waiting';
    this.waiting.pushFront(seq);
    this.counters.preemptions++;
  }

  private finishStep(): void {
    this.timer = undefined;
    const now = performance.now();
    const seqs = this.batchSeqs;
    const tokens = this.batchTokens;
    let finished = false;
    this.emitting = true;
    try {
      for (let k = 0; k < seqs.length; k++) {
        const seq = seqs[k]!;
        if (seq.state !== 'running') continue;
        seq.numComputed += tokens[k]!;
        if (seq.numComputed < seq.tokens.length) continue;
        if (this.emit(seq, now)) finished = true;
      }
    } finally {
      this.emitting = false;
    }
    if (finished) this.dropFinished();
    if (!this.closed && (this.running.length > 0 || this.waiting.live > 0)) this.step(true);
  }

  /** Samples the next token of a sequence and hands it to its sink; true when that was the last. */
  private emit(seq: Sequence, now: number): boolean {
    const position = seq.generated;
    const token = outputToken(seq.seed, position);
    seq.tokens.push(token.id);
    seq.generated++;
    this.counters.generationTokens++;
    if (position === 0) {
      seq.firstTokenAt = now;
      this.counters.promptTokens += seq.promptLength;
      this.metrics.timeToFirstToken.observe((now - seq.arrivedAt) / 1000);
    } else {
      this.metrics.timePerOutputToken.observe((now - seq.lastTokenAt) / 1000);
    }
    seq.lastTokenAt = now;
    const done = seq.generated >= seq.request.maxTokens;
    if (done) {
      seq.state = 'finished';
      this.pool.release(seq.blocks);
      seq.blocks.length = 0;
      if (seq.request.finishReason === 'stop') this.counters.finishedStop++;
      else this.counters.finishedLength++;
      this.metrics.e2eLatency.observe((now - seq.arrivedAt) / 1000);
    }
    try {
      seq.request.sink(token, done ? seq.request.finishReason : null);
    } catch (err) {
      // A broken sink is a bug to surface, but not inside the loop: the other sequences go on.
      queueMicrotask(() => {
        throw err;
      });
    }
    return done;
  }

  private dropFinished(): void {
    let kept = 0;
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i]!;
      if (seq.state === 'running') this.running[kept++] = seq;
    }
    this.running.length = kept;
  }
}
