import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';

import { CacheSchema, DEFAULT_SEMANTIC_THRESHOLD } from '../../src/cache/config.js';

describe('cache config schema', () => {
  it('has safe defaults', () => {
    const c = CacheSchema.parse({});
    assert.equal(c.namespace, 'consumer');
    assert.equal(c.semantic.threshold, DEFAULT_SEMANTIC_THRESHOLD);
    assert.equal(c.semantic.verifier.enabled, true);
    assert.equal(c.semantic.embedder.type, 'use-lite');
    assert.equal(c.semantic.judge, undefined);
    assert.equal(c.skip.multiple_choices, true);
    assert.equal(c.skip.tool_results, true);
    assert.equal(c.semantic.with_tools, false);
    assert.ok(c.semantic.lookup_budget_ms <= 100);
  });

  it('describes every option', () => {
    const undocumented: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as { properties?: Record<string, { description?: string }>; anyOf?: unknown[]; oneOf?: unknown[]; items?: unknown };
      for (const [k, v] of Object.entries(n.properties ?? {})) {
        if (!v.description) undocumented.push(`${path}.${k}`);
        walk(v, `${path}.${k}`);
      }
      for (const alt of [...(n.anyOf ?? []), ...(n.oneOf ?? [])]) walk(alt, path);
    };
    walk(z.toJSONSchema(CacheSchema, { io: 'input' }), 'cache');
    assert.deepEqual(undocumented, []);
  });

  it('rejects misspelt keys and bad values', () => {
    assert.throws(() => CacheSchema.parse({ ttl: 5 }));
    assert.throws(() => CacheSchema.parse({ semantic: { threshold: 1.5 } }));
    assert.throws(() => CacheSchema.parse({ semantic: { embedder: { type: 'openai' } } }), 'openai needs base_url and model');
    assert.throws(() => CacheSchema.parse({ namespace: 'everyone' }));
    const ok = CacheSchema.parse({ semantic: { embedder: { type: 'openai', base_url: 'http://127.0.0.1:8000/v1', model: 'bge-m3' } } });
    assert.equal(ok.semantic.embedder.type, 'openai');
  });
});
