import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { DEFAULT_OPTIONS, helpText, parseArgs, resolveOptions, UsageError } from '../../bench/vllm-sim/options.js';

const MAIN = fileURLToPath(new URL('../../bench/vllm-sim/main.js', import.meta.url));

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): { child: ChildProcess; exited: Promise<Exited>; output: () => string } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exited>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { child, exited, output: () => stdout };
}

describe('vLLM simulator: options', () => {
  it('parses vLLM-style flags, aliases, = values and negated booleans', () => {
    const parsed = parseArgs(['--port', '0', '--model=m', '--max-num-seqs', '4', '--kv-blocks', '10', '--decode-ms', '2.5', '--no-enable-prefix-caching', '--quiet']);
    assert.equal(parsed.help, false);
    if (parsed.help) return;
    const o = parsed.options;
    assert.equal(o.port, 0);
    assert.equal(o.model, 'm');
    assert.equal(o.maxRunning, 4);
    assert.equal(o.decodeMs, 2.5);
    assert.equal(o.prefixCaching, false);
    assert.equal(o.quiet, true);
    assert.equal(o.maxModelLen, 160, 'defaults to the KV capacity');
    assert.equal(o.blockSize, DEFAULT_OPTIONS.blockSize);
    assert.deepEqual(parseArgs(['--help']), { help: true });
  });

  it('refuses unknown flags, bad numbers and a context longer than the KV cache', () => {
    assert.throws(() => parseArgs(['--bogus']), UsageError);
    assert.throws(() => parseArgs(['--kv-blocks', 'many']), UsageError);
    assert.throws(() => parseArgs(['--max-running', '0']), UsageError);
    assert.throws(() => parseArgs(['--block-size', '1.5']), UsageError);
    assert.throws(() => parseArgs(['--port']), UsageError);
    assert.throws(() => resolveOptions({ kvBlocks: 2, maxModelLen: 100 }), /exceeds the KV cache/);
  });

  it('documents every option in --help', () => {
    const text = helpText();
    for (const flag of ['--port', '--host', '--model', '--kv-blocks', '--block-size', '--max-running', '--prefill-us-per-token', '--decode-ms', '--decode-ms-per-seq', '--max-tokens-default', '--max-model-len', '--max-batched-tokens', '--enable-prefix-caching']) {
      assert.ok(text.includes(flag), flag);
    }
  });
});

describe('vLLM simulator: CLI', () => {
  it('prints the bound port in a one-line banner, serves, and exits 0 on SIGTERM', async () => {
    const sim = run(['--port', '0', '--model', 'cli-model', '--decode-ms', '1']);
    try {
      const deadline = performance.now() + 5000;
      let port = 0;
      while (port === 0) {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+) /.exec(sim.output());
        if (m) port = Number(m[1]);
        else if (performance.now() > deadline || sim.child.exitCode !== null) throw new Error(`no banner: ${sim.output()}`);
        else await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(sim.output().trim().split('\n').length, 1);
      const res = await fetch(`http://127.0.0.1:${port}/v1/models`);
      const models = (await res.json()) as { data: { id: string }[] };
      assert.equal(models.data[0]!.id, 'cli-model');
    } finally {
      sim.child.kill('SIGTERM');
    }
    const { code } = await sim.exited;
    assert.equal(code, 0);
  });

  it('exits 0 with --help and 2 on a usage error', async () => {
    const help = await run(['--help']).exited;
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--kv-blocks/);
    const bad = await run(['--kv-blocks', 'x']).exited;
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--kv-blocks takes an integer/);
  });
});
