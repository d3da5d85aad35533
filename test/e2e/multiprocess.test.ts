/**
 * The supervisor and its worker processes (`sluice start --workers 2`): both workers serve the one
 * port, a worker killed under load is replaced with few and only connection-level failures, repeated
 * crashes back off, a worker restarted during a reload runs the new config, and a second gateway
 * cannot start on a port one already serves.
 */

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import {
  admin,
  answerContent,
  chatBody,
  cleanupE2E,
  onFreshConnections,
  statusAndModel,
  isWorkerAlive,
  listWorkers,
  postJson,
  runSluice,
  startGateway,
  waitFor,
  type GatewayProcess,
  type WorkerRow,
} from '../helpers/index.js';

after(cleanupE2E);

const MOCK_ONLY = { providers: [{ name: 'mock', type: 'mock' }], log: { level: 'info' } };
const TWO_WORKERS = ['--port', '0', '--workers', '2'];

/** The worker table once every slot is `ready` (and, if given, `check` holds). */
async function readyWorkers(gw: GatewayProcess, what: string, check: (ws: WorkerRow[]) => boolean = () => true, timeoutMs = 20_000): Promise<WorkerRow[]> {
  try {
    return await waitFor(
      what,
      async () => {
        const ws = await listWorkers(gw.adminUrl);
        return ws.every((w) => w.state === 'ready' && w.pid !== undefined) && check(ws) ? ws : undefined;
      },
      { timeoutMs },
    );
  } catch (err) {
    // What the supervisor said is the first thing to read when this fails.
    const state = gw.hasExited() ? `exited: ${JSON.stringify(await gw.exited)}` : 'running';
    throw new Error(`${(err as Error).message}\nsupervisor ${state}; its stderr:\n${gw.stderr().slice(-4000)}`);
  }
}

describe('workers share the port', () => {
  it('both workers take connections', async () => {
    const gw = await startGateway({ config: MOCK_ONLY, args: TWO_WORKERS });
    const workers = await listWorkers(gw.adminUrl);
    assert.equal(workers.length, 2);
    assert.equal(new Set(workers.map((w) => w.pid)).size, 2, 'two distinct worker pids');
    assert.deepEqual(new Set(workers.map((w) => w.pid)), new Set(gw.workerPids()), '/admin/workers names the processes /proc shows');

    // Which worker answered is not in the response (no header exposes it). Instead: hold N requests
    // open at once on N fresh connections (the mock waits 1.5 s before answering), then ask each
    // worker, over IPC, how many exchanges it has in flight. The kernel spreads new connections over
    // the SO_REUSEPORT listeners by a hash of the 4-tuple, so with N = 24 the chance that one worker
    // got them all is 2·2⁻²⁴; a worker counting > 0 proves that process itself took traffic.
    const n = 24;
    const pending = Array.from({ length: n }, (_, i) =>
      postJson(gw.url, '/v1/chat/completions', chatBody(`spread ${i}`), { 'x-mock-ttft-ms': '1500' }),
    );
    const spread = await waitFor(
      `all ${n} requests in flight`,
      async () => {
        const ws = await listWorkers(gw.adminUrl);
        const total = ws.reduce((sum, w) => sum + (w.inFlight ?? 0), 0);
        return total === n ? ws : undefined;
      },
      { timeoutMs: 1_400 },
    );
    for (const w of spread) assert.ok((w.inFlight ?? 0) > 0, `worker ${w.index} (pid ${w.pid}) has requests in flight: ${JSON.stringify(spread)}`);
    const answers = await Promise.all(pending);
    answers.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(answerContent(r.text), `Echo: spread ${i}`);
    });
    await gw.stop();
  });
});

describe('a worker killed under load', () => {
  it('is replaced; only requests on its connections fail, and only with connection errors', async () => {
    const gw = await startGateway({ config: MOCK_ONLY, args: TWO_WORKERS });
    const before = await listWorkers(gw.adminUrl);
    const victim = before[0]!;
    const connections = 8;
    const pool = new Pool(gw.url, { connections, pipelining: 1 });
    const outcome = { ok: 0, okAfterKill: 0, wrong: [] as string[], errors: [] as string[] };
    let killed = false;
    let stop = false;
    let seq = 0;
    // Each request waits 20 ms in the mock, so every connection almost always has one in flight:
    // the kill is sure to catch requests mid-way on the victim's connections.
    const loop = async (): Promise<void> => {
      while (!stop) {
        const id = `load ${seq++}`;
        try {
          const res = await pool.request({
            path: '/v1/chat/completions',
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-mock-ttft-ms': '20' },
            body: JSON.stringify(chatBody(id)),
          });
          const text = await res.body.text();
          // A wrong answer (another request's content, an error status, a cut body that parsed) is
          // never acceptable, kill or no kill.
          if (res.statusCode !== 200 || answerContent(text) !== `Echo: ${id}`) outcome.wrong.push(`${res.statusCode} ${text.slice(0, 200)}`);
          else {
            outcome.ok++;
            if (killed) outcome.okAfterKill++;
          }
        } catch (err) {
          const e = err as Error & { code?: string };
          outcome.errors.push(`${e.code ?? e.name}: ${e.message}`);
        }
      }
    };
    const loops = Array.from({ length: connections }, loop);
    try {
      await waitFor('load running', () => outcome.ok >= 50, { timeoutMs: 3_000 });
      process.kill(victim.pid!, 'SIGKILL');
      killed = true;
      const replaced = await readyWorkers(gw, 'a replacement worker', (ws) => ws[0]!.pid !== victim.pid && ws[0]!.restarts === 1);
      assert.equal(replaced[1]!.pid, before[1]!.pid, 'the other worker was left alone');
      assert.equal(replaced[1]!.restarts, 0);
      assert.ok(!isWorkerAlive(victim.pid!), 'the killed worker is gone');
      // Keep the load on after the replacement joined the port, so it serves too.
      const okAtReplace = outcome.ok;
      await waitFor('load served after the replacement', () => outcome.ok >= okAtReplace + 200, { timeoutMs: 3_000 });
    } finally {
      stop = true;
      await Promise.all(loops);
      await pool.close();
    }
    assert.deepEqual(outcome.wrong, [], 'no wrong answers');
    // At most one request per pool connection was on the victim when it died (pipelining 1).
    assert.ok(outcome.errors.length <= connections, `at most ${connections} failures, got ${outcome.errors.length}:\n${outcome.errors.join('\n')}`);
    for (const e of outcome.errors) assert.match(e, /^(ECONNRESET|UND_ERR_SOCKET|EPIPE)\b/, `a connection-level error: ${e}`);
    assert.ok(outcome.okAfterKill > 200, `the gateway kept serving (${outcome.okAfterKill} answers after the kill)`);
    assert.match(gw.stderr(), new RegExp(`"msg":"worker exited; restarting".*"worker_pid":${victim.pid}.*"signal":"SIGKILL"`));
    await gw.stop();
  });
});

describe('crash back-off', () => {
  it('a slot killed again and again restarts with a doubling delay and counts its restarts', async () => {
    const gw = await startGateway({ config: MOCK_ONLY, args: TWO_WORKERS });
    const other = (await listWorkers(gw.adminUrl))[1]!;
    const killedPids: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const slot = (await listWorkers(gw.adminUrl))[0]!;
      process.kill(slot.pid!, 'SIGKILL');
      killedPids.push(slot.pid!);
      const ws = await readyWorkers(gw, `restart ${round}`, (w) => w[0]!.restarts === round && !killedPids.includes(w[0]!.pid!));
      assert.equal(ws[1]!.pid, other.pid);
      assert.equal(ws[1]!.restarts, 0, 'the other slot never restarted');
    }
    // One log line per crash, naming the signal; each quick crash doubles the wait (100, 200, 400 ms).
    const lines = gw
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"msg":"worker exited; restarting"'))
      .map((l) => JSON.parse(l) as { worker: number; worker_pid: number; signal: string | null; restart_in_ms: number });
    assert.deepEqual(
      lines.map((l) => [l.worker, l.worker_pid, l.signal, l.restart_in_ms]),
      killedPids.map((pid, i) => [0, pid, 'SIGKILL', 100 * 2 ** i]),
    );
    const res = await postJson(gw.url, '/v1/chat/completions', chatBody('still here'));
    assert.equal(res.status, 200);
    await gw.stop();
  });
});

describe('reload while a worker restarts', () => {
  it('a worker still starting when a new config is pushed runs the new config', async () => {
    const gw = await startGateway({ config: MOCK_ONLY, args: TWO_WORKERS });
    const victim = (await listWorkers(gw.adminUrl))[0]!;
    process.kill(victim.pid!, 'SIGKILL');
    // The replacement is forked after 100 ms and takes a few hundred ms to load: catch it starting.
    await waitFor('the replacement to be starting', async () => (await listWorkers(gw.adminUrl))[0]!.state === 'starting', { timeoutMs: 3_000, intervalMs: 5 });
    const put = await admin(gw.adminUrl, {
      path: '/admin/config',
      body: { ...MOCK_ONLY, models: [{ name: 'fresh', targets: [{ provider: 'mock', model: 'mock-large' }] }] },
    });
    assert.equal(put.status, 200, put.text);
    await readyWorkers(gw, 'the replacement ready', (ws) => ws[0]!.pid !== victim.pid);
    const answers = statusAndModel(await onFreshConnections(gw.url, 'fresh'));
    assert.deepEqual(answers, answers.map(() => [200, 'mock-large']), 'every worker serves the new route');
    await gw.stop();
  });
});

describe('port already served', () => {
  it('a second sluice start on the port of a running gateway fails fast and says so', async () => {
    const gw = await startGateway({ config: MOCK_ONLY, args: TWO_WORKERS });
    const started = performance.now();
    const second = await runSluice(['start', '--host', '127.0.0.1', '--port', String(gw.port), '--workers', '2', '--admin-port', '0'], { timeoutMs: 5_000 });
    const ms = performance.now() - started;
    assert.notEqual(second.code, 0);
    assert.equal(second.signal, null, 'it exited by itself');
    assert.match(second.stderr, new RegExp(`port ${gw.port} on 127\\.0\\.0\\.1 is already in use`));
    assert.doesNotMatch(second.stdout, /listening/);
    assert.ok(ms < 3_000, `failed fast (${Math.round(ms)} ms)`);
    // The first gateway is untouched: same workers, still serving.
    const ws = await listWorkers(gw.adminUrl);
    assert.ok(ws.every((w) => w.state === 'ready' && w.restarts === 0));
    assert.equal((await postJson(gw.url, '/v1/chat/completions', chatBody('first'))).status, 200);
    await gw.stop();
  });
});
