/**
 * The simulator over HTTP (node:http): vLLM's OpenAI-compatible routes plus its operational ones.
 *
 *   POST /v1/chat/completions, /v1/completions   generation, streaming or not
 *   GET  /v1/models                               the one served model
 *   GET  /health                                  200, empty body (as vLLM)
 *   GET  /metrics                                 Prometheus text, vLLM metric names
 *   POST /reset_prefix_cache                      forget cached blocks nobody holds (vLLM dev route)
 *   GET  /sim/stats                               the engine's counters as JSON (simulator only)
 *
 * node:http rather than uWebSockets.js: a replica answers a few thousand requests a second at most,
 * node:http reaches that on one core, and its streams give SSE and disconnect handling for free.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { warmUpTokenizer } from '../../src/routing/prompt-blocks.js';
import { SimEngine, type SimStats } from './engine.js';
import { runGeneration } from './generation.js';
import { type GenerationRequest, parseChatRequest, parseCompletionRequest, parseJsonBody, type RequestLimits, SimRequestError } from './openai-requests.js';
import { errorBody } from './openai-responses.js';
import { resolveOptions, type VllmSimOptions } from './options.js';

export interface VllmSim {
  /** Base URL without a path, e.g. `http://127.0.0.1:41234`; SDKs take `${url}/v1`. */
  readonly url: string;
  readonly port: number;
  /** The settings in force, defaults filled in. */
  readonly options: Readonly<VllmSimOptions>;
  /** A snapshot of the engine's counters (running, waiting, KV blocks, prefix-cache tokens, …). */
  stats(): SimStats;
  /** Stops listening, aborts every sequence and closes every connection. */
  close(): Promise<void>;
}

/** Bodies beyond this are refused; a long-context prompt is far below it. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: ServerResponse, err: SimRequestError): void {
  send(res, err.status, 'application/json', errorBody(err.status, err.type, err.message, err.param));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new SimRequestError(413, 'BadRequestError', `request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startVllmSim(partial: Partial<VllmSimOptions> = {}): Promise<VllmSim> {
  const options = Object.freeze(resolveOptions(partial));
  // Tokenizer tables take ~300 ms to build: pay it before listening, not on the first request.
  warmUpTokenizer();
  const engine = new SimEngine(options);
  const limits: RequestLimits = { model: options.model, maxModelLen: options.maxModelLen, maxTokensDefault: options.maxTokensDefault };
  const createdAt = Math.floor(Date.now() / 1000);
  const modelsBody = JSON.stringify({
    object: 'list',
    data: [{ id: options.model, object: 'model', created: createdAt, owned_by: 'vllm', root: options.model, parent: null, max_model_len: options.maxModelLen }],
  });

  const generate = async (req: IncomingMessage, res: ServerResponse, parse: (body: Record<string, unknown>, limits: RequestLimits) => GenerationRequest): Promise<void> => {
    const request = parse(parseJsonBody(await readBody(req)), limits);
    if (res.destroyed) return;
    runGeneration(engine, options.model, request, res);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const method = req.method ?? 'GET';
    const allow = (expected: string): boolean => {
      if (method === expected) return true;
      res.setHeader('allow', expected);
      sendError(res, new SimRequestError(405, 'MethodNotAllowed', `${method} is not allowed on ${path}`));
      return false;
    };
    switch (path) {
      case '/v1/chat/completions':
        if (allow('POST')) await generate(req, res, parseChatRequest);
        return;
      case '/v1/completions':
        if (allow('POST')) await generate(req, res, parseCompletionRequest);
        return;
      case '/v1/models':
        if (allow('GET')) send(res, 200, 'application/json', modelsBody);
        return;
      case '/health':
        if (allow('GET')) send(res, 200, 'text/plain', '');
        return;
      case '/metrics':
        if (allow('GET')) send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', engine.renderMetrics());
        return;
      case '/reset_prefix_cache':
        if (allow('POST')) {
          engine.resetPrefixCache();
          send(res, 200, 'text/plain', '');
        }
        return;
      case '/sim/stats':
        if (allow('GET')) send(res, 200, 'application/json', JSON.stringify(engine.stats()));
        return;
      default:
        sendError(res, new SimRequestError(404, 'NotFoundError', `no route ${method} ${path}`));
    }
  };

  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      if (err instanceof SimRequestError) sendError(res, err);
      else sendError(res, new SimRequestError(500, 'InternalServerError', err instanceof Error ? err.message : String(err)));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    options,
    stats: () => engine.stats(),
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        engine.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
