import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BastionError, ERROR_CODES, toWire } from '../src/errors.js';

test('docs/errors.md lists every code once, with its status and JSON-RPC code, and nothing else', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `(ERR_BASTION_[A-Z_]+)` \| (\d+) \| (-?\d+) \|/gm)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
  const codes = Object.entries(ERROR_CODES).map(([c, v]) => [c, v.status, v.rpc]);
  assert.deepEqual(rows.sort(), codes.sort());
});

test('toWire never sends the message of an unknown error', () => {
  const w = toWire(new Error('secret material: eyJhbGciOi...'), 7);
  assert.equal(w.status, 500);
  assert.equal(w.body.id, 7);
  assert.doesNotMatch(JSON.stringify(w), /secret material/);
});

test('toWire carries the headers the specs require and never the cause', () => {
  const e = new BastionError('ERR_BASTION_RATE_LIMITED', 'Rate limit exceeded', { headers: { 'retry-after': '3' }, cause: new Error('token=abc') });
  const w = toWire(e, 'x');
  assert.equal(w.status, 429);
  assert.equal(w.headers['retry-after'], '3');
  assert.doesNotMatch(JSON.stringify(w), /token=abc/);
});
