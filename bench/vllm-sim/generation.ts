/**
 * One chat or completions request carried through the engine: a sequence per choice, tokens
 * streamed as SSE or gathered into one JSON answer, and every sequence aborted if the client leaves
 * first (vLLM aborts on disconnect too, which frees the KV blocks for others).
 */

import type { ServerResponse } from 'node:http';
import type { FinishReason, Sequence, SimEngine } from './engine.js';
import type { GenerationRequest } from './openai-requests.js';
import { type ChoiceResult, ChunkFormatter, completeBody, type Usage, usage } from './openai-responses.js';

let lastId = 0;

/** Unique within the process, and ordered, which helps when reading logs of a bench run. */
function nextId(kind: GenerationRequest['kind']): string {
  lastId++;
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-sim${lastId.toString(16).padStart(8, '0')}`;
}

/** Prompt tokens once per prompt (not per choice), cached tokens as the first choice of each found them. */
function totals(request: GenerationRequest, seqs: readonly Sequence[]): Usage {
  let prompt = 0;
  let cached = 0;
  let completion = 0;
  for (const [p, plan] of request.prompts.entries()) {
    prompt += plan.tokens.length;
    cached += Math.max(0, seqs[p * request.n]!.cachedTokens);
  }
  for (const seq of seqs) completion += seq.generated;
  return usage(prompt, completion, cached);
}

export function runGeneration(engine: SimEngine, model: string, request: GenerationRequest, res: ServerResponse): void {
  const id = nextId(request.kind);
  const created = Math.floor(Date.now() / 1000);
  const choices = request.prompts.length * request.n;
  const seqs: Sequence[] = [];
  const texts: string[] = new Array<string>(choices).fill('');
  const reasons: (FinishReason | null)[] = new Array<FinishReason | null>(choices).fill(null);
  const sent = new Uint32Array(choices);
  let remaining = choices;
  let ended = false;
  const chunks = request.stream ? new ChunkFormatter(request.kind, id, created, model, request.includeUsage) : undefined;
  let corked = false;

  const finishAll = (): void => {
    ended = true;
    const sum = totals(request, seqs);
    if (chunks) {
      if (request.includeUsage) res.write(chunks.usage(sum));
      res.end(chunks.done());
      return;
    }
    const results: ChoiceResult[] = texts.map((text, index) => ({ index, text, finishReason: reasons[index]! }));
    const body = completeBody(request.kind, id, created, model, results, sum);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const sinkFor = (index: number) => (token: { readonly text: string }, finish: FinishReason | null): void => {
    if (ended) return;
    if (chunks) {
      // Every sequence of a step emits in the same tick: one cork, one syscall for all of them.
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(() => {
          corked = false;
          res.uncork();
        });
      }
      if (request.kind === 'chat' && sent[index] === 0) res.write(chunks.role(index));
      res.write(chunks.token(index, token.text, finish));
    }
    texts[index] += token.text;
    sent[index]!++;
    if (finish !== null) {
      reasons[index] = finish;
      if (--remaining === 0) finishAll();
    }
  };

  res.on('close', () => {
    if (ended) return;
    ended = true;
    for (const seq of seqs) engine.abort(seq);
  });

  for (const [p, plan] of request.prompts.entries()) {
    for (let j = 0; j < request.n; j++) {
      const index = p * request.n + j;
      seqs.push(
        engine.submit({
          promptTokens: plan.tokens,
          maxTokens: plan.maxTokens,
          finishReason: plan.finishReason,
          ...(request.salt === undefined ? {} : { salt: request.salt }),
          sink: sinkFor(index),
        }),
      );
    }
  }

  if (chunks) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
  }
}
