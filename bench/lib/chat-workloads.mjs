/**
 * The chat workloads the gateway benches share: one small, realistic request (system + user
 * message, ~330 bytes), streamed or not, at a few concurrencies.
 */

export const CHAT_PATH = '/v1/chat/completions';

/** The mock answers every request with this many tokens, one token per stream chunk. */
export const OUTPUT_TOKENS = 64;
export const CHUNK_TOKENS = 1;

export const REQUEST = Object.freeze({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are a concise assistant for an online bookshop. Answer in two sentences at most.' },
    {
      role: 'user',
      content: 'Is the paperback edition of "The Left Hand of Darkness" in stock, and how long does delivery to Lyon usually take?',
    },
  ],
  temperature: 0.2,
  max_tokens: 256,
});

export const CHAT_BODY = JSON.stringify(REQUEST);
export const STREAM_BODY = JSON.stringify({ ...REQUEST, stream: true });

/** Sent to every target; Portkey needs an Authorization header, the others ignore or forward it. */
export const BASE_HEADERS = Object.freeze({ 'content-type': 'application/json', authorization: 'Bearer x' });

/** `extra` workloads run only when asked for by id. */
export const WORKLOADS = Object.freeze([
  { id: 'chat c=1', stream: false, connections: 1 },
  { id: 'chat c=10', stream: false, connections: 10 },
  { id: 'chat c=50', stream: false, connections: 50 },
  { id: 'stream c=1', stream: true, connections: 1 },
  { id: 'stream c=10', stream: true, connections: 10 },
  { id: 'stream c=100', stream: true, connections: 100 },
]);

/** The workloads named in a comma list (null/empty: the standard ones); throws on an unknown id. */
export function selectWorkloads(list) {
  if (!list || list.length === 0) return WORKLOADS.filter((w) => !w.extra);
  return list.map((id) => {
    const w = WORKLOADS.find((x) => x.id === id);
    if (!w) throw new Error(`unknown workload "${id}" (known: ${WORKLOADS.map((x) => x.id).join(', ')})`);
    return w;
  });
}
