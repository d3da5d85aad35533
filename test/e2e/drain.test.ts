/**
 * SIGTERM to the supervisor of a 2-worker gateway: the port stops taking connections at once, a
 * stream in flight finishes (or is cut when server.drain_grace_ms runs out), the process exits 0,
 * and no worker outlives it.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chatBody, cleanupE2E, isWorkerAlive, listWorkers, postJson, startGateway, startStream, summarizeStream, waitFor } from '../helpers/index.js';

after(cleanupE2E);

const TWO_WORKERS = ['--port', '0', '--workers', '2'];

/** Resolves true when a TCP connect to the port is refused, false when it is accepted. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('SIGTERM', () => {
  it('drains: the stream in flight completes, new connections are refused, exit 0, no worker left', async () => {
    const gw = await startGateway({ config: { providers: [{ name: 'mock', type: 'mock' }] }, args: TWO_WORKERS });
    const pids = (await listWorkers(gw.adminUrl)).map((w) => w.pid!);
    assert.equal(pids.length, 2);
    // 40 tokens at 20 per second: two seconds.
    const body = chatBody('drain me', 'mock', true);
    const shape = { 'x-mock-output-tokens': '40' };
    const reference = summarizeStream((await postJson(gw.url, '/v1/chat/completions', body, shape)).text);
    const live = await startStream(gw.url, body, { ...shape, 'x-mock-tps': '20' });
    await live.firstData;

    const termAt = performance.now();
    process.kill(gw.pid, 'SIGTERM');
    await waitFor('the port to refuse connections', () => refused(gw.port), { timeoutMs: 1_000, intervalMs: 10 });
    const refusedAfterMs = performance.now() - termAt;

    const ended = await live.ended;
    assert.equal(ended.cut, false);
    assert.deepEqual(summarizeStream(ended.text), reference, 'the whole stream, ending with [DONE]');
    assert.ok(ended.at - termAt > 1_000, 'the stream really was in flight for a while after SIGTERM');
    assert.equal(await refused(gw.port), true, 'still refused while draining');

    assert.deepEqual(await gw.exited, { code: 0, signal: null });
    const exitedAfterMs = performance.now() - termAt;
    // The default grace is 30 s; a drain with nothing left to wait for ends right after the stream.
    assert.ok(exitedAfterMs < ended.at - termAt + 2_000, `exited ${Math.round(exitedAfterMs)} ms after SIGTERM`);
    assert.ok(refusedAfterMs < 1_000);
    // The supervisor waits for (and reaps) every worker before it exits: none may be left, not even
    // as a zombie.
    assert.deepEqual(pids.filter(isWorkerAlive), [], 'no worker outlives the supervisor');
    assert.match(gw.stderr(), /"msg":"draining","signal":"SIGTERM"/);
  });

  it('with server.drain_grace_ms: 300, a long stream is cut after the grace and the exit is still 0', async () => {
    const gw = await startGateway({
      config: { server: { drain_grace_ms: 300 }, providers: [{ name: 'mock', type: 'mock' }] },
      args: TWO_WORKERS,
    });
    const pids = (await listWorkers(gw.adminUrl)).map((w) => w.pid!);
    // 100 tokens at 20 per second: five seconds, far beyond the grace.
    const live = await startStream(gw.url, chatBody('too long', 'mock', true), { 'x-mock-output-tokens': '100', 'x-mock-tps': '20' });
    await live.firstData;
    const termAt = performance.now();
    process.kill(gw.pid, 'SIGTERM');

    const ended = await live.ended;
    const cutAfterMs = ended.at - termAt;
    const stream = summarizeStream(ended.text);
    assert.equal(stream.done, false, 'no [DONE]: the stream was cut');
    assert.ok(stream.deltas.length > 0 && stream.deltas.length < 100, `cut part-way (${stream.deltas.length} tokens)`);
    assert.ok(cutAfterMs >= 280 && cutAfterMs < 1_500, `cut ${Math.round(cutAfterMs)} ms after SIGTERM (grace 300 ms)`);

    assert.deepEqual(await gw.exited, { code: 0, signal: null });
    assert.ok(performance.now() - termAt < 2_000, 'exited soon after the grace');
    assert.deepEqual(pids.filter(isWorkerAlive), [], 'no worker outlives the supervisor');
  });
});
