/**
 * Any OpenAI-compatible `/embeddings` endpoint, over undici with keep-alive. The dimension comes
 * from config or from a probe at init, and every answer is checked against it: a server that
 * switched models behind the same name must not feed the index vectors of another space.
 */

import { Agent, request } from 'undici';
import type { EmbedderConfig } from '../config.js';
import { type Embedder, EmbedderUnavailableError } from '../embedder.js';

type OpenAIConfig = Extract<EmbedderConfig, { type: 'openai' }>;

interface EmbeddingsAnswer {
  data?: { index?: number; embedding?: unknown }[];
}

export class OpenAIEmbedder implements Embedder {
  readonly id: string;
  private dims: number | undefined;
  private readonly url: string;
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 8 });

  constructor(private readonly config: OpenAIConfig) {
    this.id = config.id ?? `openai:${config.model}${config.dimensions ? `:${config.dimensions}` : ''}`;
    this.dims = config.dimensions;
    this.url = config.base_url.replace(/\/+$/, '') + '/embeddings';
  }

  get dimensions(): number {
    return this.dims ?? 0;
  }

  async init(): Promise<void> {
    if (this.dims !== undefined) return;
    const [probe] = await this.embed(['dimension probe']);
    this.dims = probe!.length;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    const body: Record<string, unknown> = { model: this.config.model, input: texts, encoding_format: 'float' };
    if (this.config.dimensions !== undefined) body.dimensions = this.config.dimensions;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.config.api_key) headers.authorization = `Bearer ${this.config.api_key}`;
    let res;
    try {
      res = await request(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        dispatcher: this.agent,
        headersTimeout: this.config.timeout_ms,
        bodyTimeout: this.config.timeout_ms,
        signal: AbortSignal.timeout(this.config.timeout_ms),
      });
    } catch (err) {
      throw new EmbedderUnavailableError(`embeddings endpoint unreachable: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      // The body may echo the request; only its start is kept, and never the key (not in it).
      throw new EmbedderUnavailableError(`embeddings endpoint answered ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    let answer: EmbeddingsAnswer;
    try {
      answer = JSON.parse(text) as EmbeddingsAnswer;
    } catch {
      throw new EmbedderUnavailableError('embeddings endpoint answered invalid JSON');
    }
    const data = answer.data;
    if (!Array.isArray(data) || data.length !== texts.length) {
      throw new EmbedderUnavailableError(`embeddings endpoint answered ${Array.isArray(data) ? data.length : 'no'} vectors for ${texts.length} texts`);
    }
    const out = new Array<Float32Array>(texts.length);
    data.forEach((d, i) => {
      const e = d.embedding;
      if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new EmbedderUnavailableError('embeddings endpoint answered a vector that is not an array of numbers');
      }
      if (this.dims !== undefined && e.length !== this.dims) {
        throw new EmbedderUnavailableError(`embeddings endpoint answered ${e.length} dimensions, expected ${this.dims}`);
      }
      out[typeof d.index === 'number' ? d.index : i] = Float32Array.from(e as number[]);
    });
    return out;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
