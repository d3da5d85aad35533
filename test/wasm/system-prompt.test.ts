import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { chatContext, finishResponse, plugin, runRequest } from './helpers.js';

describe('system-prompt plugin: proxy_set_buffer_bytes on the request body, properties', () => {
  const config = { prompt: 'Answer in French.' };

  it('inserts a system message first in an OpenAI chat body', async () => {
    const f = await plugin('system-prompt', { config });
    const ctx = chatContext({ body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi "there"' }], temperature: 0.5 } });
    assert.equal(await runRequest(f, ctx), undefined);
    assert.equal(ctx.bodyChanged, true);
    assert.deepEqual(ctx.body, {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'Answer in French.' },
        { role: 'user', content: 'hi "there"' },
      ],
      temperature: 0.5,
    });
    finishResponse(f, ctx);
  });

  it('prepends to `system` for Anthropic Messages (read from the sluice.protocol property)', async () => {
    const f = await plugin('system-prompt', { config });
    const ctx = chatContext({
      protocol: 'anthropic-messages',
      body: { model: 'claude-x', system: 'Be brief.', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
    });
    await runRequest(f, ctx);
    assert.equal(ctx.body['system'], 'Answer in French.\n\nBe brief.');
    assert.deepEqual(ctx.body['messages'], [{ role: 'user', content: 'hi' }]);
    finishResponse(f, ctx);
  });

  it('refuses to start without a prompt', async () => {
    await assert.rejects(plugin('system-prompt', { config: {} }), /rejected its configuration/);
  });

  it('passes YAML/JSON config values verbatim: a string config is handed over as it is', async () => {
    const f = await plugin('system-prompt', { config: '{"prompt":"From a string."}' });
    const ctx = chatContext();
    await runRequest(f, ctx);
    assert.deepEqual((ctx.body['messages'] as unknown[])[0], { role: 'system', content: 'From a string.' });
  });
});
