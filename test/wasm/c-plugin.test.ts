import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { chatContext, plugin, ROOT, runRequest } from './helpers.js';

// Built only where clang can target wasm32-wasi (Debian: clang-14, lld-14, wasi-libc,
// libclang-rt-14-dev-wasm32); the build skips it elsewhere, and so does this test.
const built = existsSync(join(ROOT, 'plugins', 'dist', 'model-allowlist.wasm'));

const skip = built ? false : 'not built: no clang with a wasm32-wasi target here';

describe('model-allowlist plugin (C, wasi-libc)', () => {
  it('continues for an allowed model and answers 403 for others', { skip }, async () => {
    const f = await plugin('model-allowlist', { config: 'gpt-4o-mini,claude-3-5-haiku' });
    const ok = chatContext({ model: 'gpt-4o-mini' });
    assert.equal(await runRequest(f, ok), undefined);
    f.onDone?.(ok);
    const denied = chatContext({ model: 'gpt-4o' });
    const reply = await runRequest(f, denied);
    assert.equal(reply?.status, 403);
    assert.deepEqual(reply?.body, { error: { message: 'model not allowed', type: 'permission_error' } });
    f.onDone?.(denied);
  });
});
