import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { UpstreamHttpCaller, type HttpCallRequest, type HttpCaller } from '../../src/wasm/index.js';
import { chatContext, finishResponse, plugin, recordingDeps } from './helpers.js';

/** An auth service on loopback: key "good" is allowed as consumer "team-a". */
let server: Server;
let port = 0;
const seen: { path: string; authorization: string | undefined; host: string | undefined }[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization, host: req.headers.host });
    if (req.headers.authorization === 'Bearer good') {
      res.writeHead(200, { 'x-consumer': 'team-a' });
      res.end('ok');
    } else if (req.headers.authorization === 'Bearer slow') {
      setTimeout(() => res.end('late'), 500);
    } else {
      res.writeHead(401);
      res.end('unknown key');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

after(() => server.close());

describe('external-auth plugin: proxy_http_call, pause and resume', () => {
  const deps = () =>
    recordingDeps({ httpCaller: new UpstreamHttpCaller({ authz: { url: `http://127.0.0.1:${port}` } }) });

  it('pauses the request, calls the named upstream, then continues with the consumer header', async () => {
    const f = await plugin('external-auth', { config: { upstream: 'authz', path: '/check', timeout_ms: 2000 } }, deps());
    const ctx = chatContext({ headers: { authorization: 'Bearer good' } });
    const pending = f.onRequestHeaders!(ctx);
    assert.ok(pending instanceof Promise, 'the hook waits for the plugin');
    assert.equal(await pending, undefined);
    assert.equal(ctx.upstreamHeaderEdits.set['x-consumer'], 'team-a');
    assert.equal(ctx.upstreamHeaderEdits.set['x-auth-status'], '200', 'proxy_get_status gives the call status');
    const last = seen.at(-1)!;
    assert.equal(last.path, '/check');
    assert.equal(last.authorization, 'Bearer good');
    assert.equal(last.host, 'authz', ':authority becomes Host');
    assert.equal(await f.onRequestBody!(ctx), undefined);
    finishResponse(f, ctx);
  });

  it('answers 403 from on_http_call_response when the service says no', async () => {
    const f = await plugin('external-auth', { config: { upstream: 'authz', path: '/check' } }, deps());
    const ctx = chatContext({ headers: { authorization: 'Bearer bad' } });
    const reply = await f.onRequestHeaders!(ctx);
    assert.equal(reply?.status, 403);
    assert.match(reply?.error?.message ?? '', /unknown key/, 'the call body is readable');
    f.onDone?.(ctx);
  });

  it('reports a timed-out call to the plugin as failed (0 headers)', async () => {
    const f = await plugin('external-auth', { config: { upstream: 'authz', path: '/check', timeout_ms: 50 } }, deps());
    const ctx = chatContext({ headers: { authorization: 'Bearer slow' } });
    const reply = await f.onRequestHeaders!(ctx);
    assert.equal(reply?.status, 403);
    assert.equal(reply?.headers?.['x-auth-denied'], 'auth service unreachable');
  });

  it('an injected HttpCaller sees the pseudo-headers, body and timeout', async () => {
    const calls: HttpCallRequest[] = [];
    const caller: HttpCaller = {
      has: (u) => u === 'authz',
      call: async (req) => {
        calls.push(req);
        return { status: 204, headers: [['x-consumer', 'from-fake']], body: new Uint8Array(0), trailers: [] };
      },
    };
    const f = await plugin('external-auth', { config: { upstream: 'authz', path: '/v2/check', timeout_ms: 750 } }, recordingDeps({ httpCaller: caller }));
    const ctx = chatContext({ headers: { authorization: 'Bearer x' } });
    assert.equal(await f.onRequestHeaders!(ctx), undefined);
    assert.deepEqual(calls[0]!.headers.slice(0, 3), [
      [':method', 'GET'],
      [':path', '/v2/check'],
      [':authority', 'authz'],
    ]);
    assert.equal(calls[0]!.timeoutMs, 750);
    assert.equal(ctx.upstreamHeaderEdits.set['x-consumer'], 'from-fake');
  });

  it('a request whose client left before the answer is not resumed on a deleted context', async () => {
    let release: (() => void) | undefined;
    const caller: HttpCaller = {
      has: () => true,
      call: () =>
        new Promise((resolve) => {
          release = () => resolve({ status: 200, headers: [], body: new Uint8Array(0), trailers: [] });
        }),
    };
    const f = await plugin('external-auth', { config: { upstream: 'authz' } }, recordingDeps({ httpCaller: caller }));
    const ctx = chatContext({ headers: { authorization: 'Bearer x' } });
    const pending = f.onRequestHeaders!(ctx) as Promise<unknown>;
    ctx.aborted = true;
    f.onDone!(ctx);
    assert.equal(await pending, undefined, 'the waiting hook is released when the exchange ends');
    release!();
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(f.runtime.current?.usable, true, 'the instance is still healthy');
  });
});
