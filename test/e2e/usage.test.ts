/**
 * Token usage of passed-through answers: the gateway asks an OpenAI upstream for the usage chunk,
 * records it, and shows it only to a client that asked; whole answers and Anthropic streams too.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanupE2E, postJson, sseJson, startGateway, tempDir } from '../helpers/index.js';

after(cleanupE2E);

describe('usage in pass-through', () => {
  it('is recorded for every answer and shown only to clients that asked', async () => {
    const logPath = join(tempDir(), 'usage-access.log');
    const gw = await startGateway({
      config: {
        providers: [
          { name: 'mock', type: 'mock' },
          { name: 'anth', type: 'mock', mock: { protocol: 'anthropic' } },
        ],
        models: [{ name: 'claude-like', targets: [{ provider: 'anth', model: 'mock' }] }],
        access_log: { enabled: true, path: logPath, include_prompts: true },
      },
      args: ['--port', '0', '--workers', '1'],
    });
    const messages = [{ role: 'user', content: 'count these five words' }];
    const quiet = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages, stream: true });
    const quietChunks = sseJson(quiet.text);
    assert.ok(quietChunks.length > 2);
    assert.ok(!quietChunks.some((c) => c.usage), 'no usage chunk for a client that did not ask');
    const asked = await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages, stream: true, stream_options: { include_usage: true } });
    assert.ok(sseJson(asked.text).some((c) => c.usage), 'usage chunk for a client that asked');
    await postJson(gw.url, '/v1/chat/completions', { model: 'mock', messages });
    await postJson(gw.url, '/v1/messages', { model: 'claude-like', max_tokens: 50, messages, stream: true });
    await new Promise((r) => setTimeout(r, 200));
    const lines = readFileSync(logPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 4);
    assert.match(String(lines[0]!.prompt), /count these five words/, 'prompts logged when enabled');
    for (const line of lines) {
      assert.ok(typeof line.input_tokens === 'number' && line.input_tokens > 0, JSON.stringify(line));
      assert.ok(typeof line.output_tokens === 'number' && line.output_tokens > 0, JSON.stringify(line));
    }
  });
});
