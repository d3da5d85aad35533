/**
 * The mock model server's one request handler: route, apply per-request options and faults, answer,
 * render. Both front ends (the in-process MockTransport and the uWS server) call it and only play
 * back the reply, so they send the same bytes for the same request.
 */

import { hash } from 'node:crypto';
import { clock } from '../clock.js';
import { GatewayError, kindForStatus, toGatewayError, type ErrorKind } from '../errors.js';
import { answer } from './answer.js';
import { anthropicErrorBody, parseMessagesRequest, renderMessages } from './anthropic-wire.js';
import { parseBody } from './json.js';
import {
  openAIErrorBody,
  parseChatRequest,
  parseCompletionRequest,
  renderChat,
  renderCompletion,
  renderEmbeddings,
  renderModels,
} from './openai-wire.js';
import {
  mockOptionsFromHeaders,
  resolveMockOptions,
  type MockHeaders,
  type MockOptions,
  type MockRequestOptions,
} from './options.js';
import { HANG_REPLY, jsonHeadersWith, jsonReply, type MockReply, type ReplyIdentity } from './reply.js';

export interface MockRequest {
  method: string;
  /** Path, optionally with a query (ignored). */
  path: string;
  /** Lower-case names; only `x-mock-*` ones are read. */
  headers: MockHeaders;
  /** The request body as text; '' when there is none. */
  body: string;
}

type Protocol = 'openai' | 'anthropic';

/** What routes may read besides the request: fixed for the responder's life. */
interface RouteContext {
  readonly options: MockOptions;
  readonly modelsBody: string;
}

interface Route {
  method: 'GET' | 'POST';
  protocol: Protocol;
  run(ctx: RouteContext, body: string, options: MockRequestOptions): MockReply;
}

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/v1/chat/completions', { method: 'POST', protocol: 'openai', run: chat }],
  ['/v1/completions', { method: 'POST', protocol: 'openai', run: completion }],
  ['/v1/embeddings', { method: 'POST', protocol: 'openai', run: embeddings }],
  ['/v1/models', { method: 'GET', protocol: 'openai', run: (ctx) => jsonReply(200, ctx.modelsBody) }],
  ['/v1/messages', { method: 'POST', protocol: 'anthropic', run: messages }],
]);

const HEALTH_REPLY = jsonReply(200, '{"status":"ok"}');

export class MockResponder {
  readonly options: MockOptions;
  private readonly ctx: RouteContext;
  /** Requests served, for `errorEvery`. */
  private served = 0;

  constructor(options: Partial<MockOptions> = {}) {
    this.options = resolveMockOptions(options);
    this.ctx = { options: this.options, modelsBody: renderModels(this.options.models) };
  }

  respond(req: MockRequest): MockReply {
    const q = req.path.indexOf('?');
    const path = q < 0 ? req.path : req.path.slice(0, q);
    if (path === '/health' && req.method === 'GET') return HEALTH_REPLY;
    const route = ROUTES.get(path);
    const protocol: Protocol = route?.protocol ?? (path.startsWith('/v1/messages') ? 'anthropic' : 'openai');
    try {
      if (route === undefined) throw new GatewayError('not_found', `no route for ${req.method} ${path}`);
      if (route.method !== req.method) throw new GatewayError('method_not_allowed', `${path} accepts ${route.method} only`);
      const options = mockOptionsFromHeaders(this.options, req.headers);
      const n = ++this.served;
      if (options.hang) return HANG_REPLY;
      const every = this.options.errorEvery;
      const status = options.status ?? (every > 0 && n % every === 0 ? this.options.errorStatus : null);
      if (status !== null) {
        const kind = kindForStatus(status);
        return errorReply(protocol, status, kind, `mock: injected ${status} error`, null, options.retryAfter);
      }
      const reply = route.run(this.ctx, req.body, options);
      return options.resetAfter === null ? reply : { ...reply, resetAfter: options.resetAfter };
    } catch (err) {
      // A bug in the mock answers 500 rather than taking a test run's upstream down with it.
      const e = toGatewayError(err);
      return errorReply(protocol, e.status, e.kind, e.message, e.param, null);
    }
  }
}

function chat(_ctx: RouteContext, text: string, o: MockRequestOptions): MockReply {
  const call = parseChatRequest(parseBody(text), o.outputTokens);
  return renderChat(call, answer(call.answer), identity('chatcmpl-mock-', text), o);
}

function completion(_ctx: RouteContext, text: string, o: MockRequestOptions): MockReply {
  const call = parseCompletionRequest(parseBody(text), o.outputTokens);
  return renderCompletion(call, answer(call.answer), identity('cmpl-mock-', text), o);
}

function embeddings(ctx: RouteContext, text: string, o: MockRequestOptions): MockReply {
  return renderEmbeddings(parseBody(text), ctx.options.embeddingDimensions, o.ttftMs);
}

function messages(_ctx: RouteContext, text: string, o: MockRequestOptions): MockReply {
  const call = parseMessagesRequest(parseBody(text), o.outputTokens);
  return renderMessages(call, answer(call.answer), identity('msg_mock_', text), o);
}

/** Ids derive from the request bytes, so a repeated request gets a byte-identical answer. */
function identity(prefix: string, body: string): ReplyIdentity {
  return { id: prefix + hash('sha1', body).slice(0, 24), created: clock.unixSeconds() };
}

function errorReply(
  protocol: Protocol,
  status: number,
  kind: ErrorKind,
  message: string,
  param: string | null,
  retryAfter: string | null,
): MockReply {
  const body = protocol === 'anthropic' ? anthropicErrorBody(kind, message) : openAIErrorBody(kind, message, param, null);
  return retryAfter === null ? jsonReply(status, body) : jsonReply(status, body, 0, jsonHeadersWith({ 'retry-after': retryAfter }));
}
