import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { generateKey, hashKey, isKeyHash, presentedKey } from '../../src/governance/keys.js';

/** What the hand-written parser replaced: the reference for every input below. */
function byRegex(headers: Record<string, string>): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const key = headers['x-api-key']?.trim();
  return key ? key : undefined;
}

describe('presentedKey', () => {
  it('reads Authorization: Bearer and x-api-key as the regular expression did', () => {
    const key = generateKey();
    const cases = [
      `Bearer ${key}`,
      `bearer ${key}`,
      `BEARER\t${key}`,
      `Bearer    ${key}   `,
      `Bearer\u00a0${key}`,
      `Bearer ${key}\r`,
      `Bearer ${key} extra`,
      `Bearer`,
      `Bearer `,
      `Bearer  \t `,
      `Bearerx ${key}`,
      `Basic ${key}`,
      ` Bearer ${key}`,
      `Bearer\u2003${key}\u3000`,
      `B\u00e9arer ${key}`,
      `bearer ${key}\u00e9`,
      '',
    ];
    for (const authorization of cases) {
      for (const extra of [{}, { 'x-api-key': ` ${key}-x ` }, { 'x-api-key': '  ' }] as Record<string, string>[]) {
        const headers = { authorization, ...extra };
        assert.equal(presentedKey(headers), byRegex(headers), JSON.stringify(headers));
      }
    }
    assert.equal(presentedKey({}), undefined);
    assert.equal(presentedKey({ 'x-api-key': key }), key);
  });

  it('agrees with the regular expression on random header values', () => {
    const alphabet = ['B', 'b', 'e', 'E', 'a', 'r', 'R', ' ', '\t', '\u00a0', 'k', '-', '\u2028', 'x'];
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 20_000; i++) {
      let value = i % 3 === 0 ? 'Bearer' : '';
      const length = next() % 12;
      for (let j = 0; j < length; j++) value += alphabet[next() % alphabet.length];
      const headers = { authorization: value };
      assert.equal(presentedKey(headers), byRegex(headers), JSON.stringify(value));
    }
  });
});

describe('hashKey', () => {
  it('stores sha256:<hex>, the same for the same key', () => {
    const key = generateKey();
    assert.match(key, /^sk-sluice-[A-Za-z0-9]{32}$/);
    assert.ok(isKeyHash(hashKey(key)));
    assert.equal(hashKey(key), hashKey(key));
    assert.notEqual(hashKey(key), hashKey(`${key}x`));
    assert.equal(hashKey('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
