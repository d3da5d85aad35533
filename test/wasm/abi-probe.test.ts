import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InProcessSharedData, type HttpCaller } from '../../src/wasm/index.js';
import { chatContext, finishResponse, plugin, recordingDeps, runRequest } from './helpers.js';

const probeCaller: HttpCaller = {
  has: (u) => u === 'probe',
  call: async () => ({ status: 200, headers: [], body: new Uint8Array(0), trailers: [] }),
};

describe('status codes the spec defines, through the abi-probe plugin', () => {
  it('answers each error case with the spec status', async () => {
    const f = await plugin('abi-probe', { log_level: 'warn' }, recordingDeps({ httpCaller: probeCaller }));
    const ctx = chatContext({ headers: { 'x-probe': 'statuses' } });
    assert.equal(await runRequest(f, ctx), undefined);
    const got = ctx.upstreamHeaderEdits.set;
    const expected: Record<string, string> = {
      'x-probe-count-matches': '1', // num_headers equals the map proxy_get_header_map_pairs returns
      'x-probe-map-size-nonzero': '1',
      'x-probe-grpc': '12', // Unimplemented
      'x-probe-foreign': '1', // NotFound: no such foreign function
      'x-probe-bad-map': '2', // BadArgument: unknown map type
      'x-probe-body-before-body': '1', // NotFound: the body is not there in on_request_headers
      'x-probe-continue-downstream': '12', // Unimplemented: TCP streams
      'x-probe-continue-bad': '2', // BadArgument: unknown stream type
      'x-probe-log-level': '3', // warn, from log_level
      'x-probe-set-readonly-property': '2',
      'x-probe-set-property': '0',
      'x-probe-property-roundtrip': '1',
      'x-probe-missing-property': '1',
      'x-probe-status-outside-call': '1',
      'x-probe-done-outside': '1',
      'x-probe-effective-bad': '2',
      'x-probe-dequeue-empty': '7', // Empty
      'x-probe-enqueue-missing': '1',
      'x-probe-cas-mismatch': '8', // CasMismatch
      'x-probe-shared-missing': '1',
      'x-probe-time-nonzero': '1',
      'x-probe-http-call-unknown': '2', // BadArgument: unknown upstream
      'x-probe-http-call-missing-headers': '2', // BadArgument: no :path/:authority
      'x-probe-effective-root': '0',
      'x-probe-root-headers': '1', // NotFound: the root context has no request headers
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(got[k], v, k);
    finishResponse(f, ctx);
  });

  it('proxy_done: on_done may return false and finish later; on_log runs after proxy_done', async () => {
    const sharedData = new InProcessSharedData();
    const f = await plugin('abi-probe', {}, recordingDeps({ httpCaller: probeCaller, sharedData }));
    const ctx = chatContext({ headers: { 'x-probe': 'defer-done' } });
    await runRequest(f, ctx);
    finishResponse(f, ctx);
    assert.equal(sharedData.get('abi-probe', 'probe-logged'), undefined, 'on_log waits for proxy_done');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(Buffer.from(sharedData.get('abi-probe', 'probe-deferred-done')!.value).toString(), '0');
    assert.equal(Buffer.from(sharedData.get('abi-probe', 'probe-logged')!.value).toString(), 'yes');
  });

  it('proxy_close_stream ends the request with a 502', async () => {
    const f = await plugin('abi-probe');
    const ctx = chatContext({ headers: { 'x-probe': 'close' } });
    const reply = await runRequest(f, ctx);
    assert.equal(reply?.status, 502);
    f.onDone?.(ctx);
  });

  it('a local response after the upstream answered is ignored (and logged)', async () => {
    const deps = recordingDeps();
    const f = await plugin('abi-probe', {}, deps);
    const ctx = chatContext({ headers: { 'x-probe': 'late-reply' } });
    await runRequest(f, ctx);
    finishResponse(f, ctx);
    assert.ok(deps.lines.some((l) => l.message.includes('after the upstream answered')));
  });
});
