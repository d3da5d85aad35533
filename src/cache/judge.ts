/**
 * The optional third stage: a small model, called through Sluice itself, asked whether a verified
 * candidate asks the same thing as the new question. It runs on the request path, so it has its own
 * time budget, and anything but a clear "yes" in time (a "no", an error, a timeout, an unexpected
 * answer) is a miss.
 *
 * The call carries `Cache-Control: no-store`: a judge request must not itself go through the
 * semantic cache (it would ask the judge about the judge's prompt, without end).
 */

import { Agent, request } from 'undici';
import type { JudgeConfig } from './config.js';

export interface CandidateJudge {
  /** True only when the judge confirms, within its budget, that both ask the same thing. */
  same(question: string, cached: string): Promise<boolean>;
  close(): Promise<void>;
}

const INSTRUCTIONS =
  'You decide whether a cached answer can be reused. Two user questions are given. Answer YES if any correct answer to the first is a correct answer to the second (same meaning, same numbers, names, units, direction and negation), otherwise NO. Reply with one word: YES or NO.';

export class HttpJudge implements CandidateJudge {
  private readonly url: string;
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });

  constructor(
    private readonly config: JudgeConfig,
    /** The gateway's own base URL (`http://127.0.0.1:8080/v1`) when `base_url` is not set. */
    selfBaseUrl: string,
  ) {
    this.url = (config.base_url ?? selfBaseUrl).replace(/\/+$/, '') + '/chat/completions';
  }

  async same(question: string, cached: string): Promise<boolean> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
    if (this.config.api_key) headers.authorization = `Bearer ${this.config.api_key}`;
    const body = {
      model: this.config.model,
      temperature: 0,
      max_tokens: 3,
      messages: [
        { role: 'system', content: INSTRUCTIONS },
        { role: 'user', content: `Question 1: ${question}\nQuestion 2: ${cached}` },
      ],
    };
    try {
      const res = await request(this.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.config.timeout_ms),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) return false;
      const answer = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
      return typeof answer === 'string' && /^\W*yes\b/i.test(answer.trim());
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
