import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerCredential, safeEqual } from '../../src/identity/util.js';

test('bearerCredential: only `Bearer <one token>` yields a token (scheme case-insensitive); any other scheme or shape yields none', () => {
  assert.equal(bearerCredential('Bearer abc.def-1'), 'abc.def-1');
  assert.equal(bearerCredential('bearer abc'), 'abc');
  assert.equal(bearerCredential('BEARER   abc  '), 'abc');
  for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Bearerabc', 'Basic abc', 'DPoP abc', 'Token abc', 'Bearer a b', ' Bearer abc', 'Bearer\tabc']) {
    assert.equal(bearerCredential(h), undefined, JSON.stringify(h));
  }
});

test('safeEqual compares whole strings, whatever their lengths', () => {
  assert.equal(safeEqual('secret', 'secret'), true);
  assert.equal(safeEqual('secret', 'secreT'), false);
  assert.equal(safeEqual('secret', 'secret-longer'), false);
  assert.equal(safeEqual('', ''), true);
});
