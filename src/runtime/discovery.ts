/**
 * Model discovery for self-hosted servers: `GET /v1/models` through the provider's own transport, so
 * users of vLLM, SGLang or Ollama need not repeat model names in config.
 */

import type { GatewayError } from '../errors.js';
import type { Provider } from '../providers/provider.js';

/** The ids a provider lists, or an error message. Never throws; bounded by `timeoutMs`. */
export function discoverModels(provider: Provider, timeoutMs: number): Promise<{ models: string[] } | { error: string }> {
  return new Promise((resolve) => {
    let status = 0;
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (v: { models: string[] } | { error: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const request = provider.buildRequest({
      op: 'models',
      model: '',
      stream: false,
      body: null,
      clientHeaders: {},
      inbound: 'openai-chat',
    });
    request.timeouts = {
      connectMs: Math.min(request.timeouts.connectMs, timeoutMs),
      firstByteMs: timeoutMs,
      idleMs: timeoutMs,
    };
    const exchange = provider.transport.send(request, {
      onHeaders: (s) => {
        status = s;
      },
      onData: (chunk) => {
        chunks.push(Buffer.from(chunk));
        return true;
      },
      onEnd: () => {
        if (status !== 200) return settle({ error: `status ${status}` });
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: unknown };
          if (!Array.isArray(body.data)) return settle({ error: 'no data array in the answer' });
          const models = body.data
            .map((m: unknown) => (m !== null && typeof m === 'object' ? (m as { id?: unknown }).id : undefined))
            .filter((id): id is string => typeof id === 'string' && id.length > 0);
          settle({ models });
        } catch {
          settle({ error: 'invalid JSON' });
        }
      },
      onError: (err: GatewayError) => settle({ error: err.message }),
    });
    const timer = setTimeout(() => {
      exchange.abort();
      settle({ error: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
  });
}
