import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactArgumentsForLog, redactTreeForLog, isSecretKey } from '../../src/sanitizer/arguments.js';
import { FAKE } from './fakes.js';

test('values under secret-named keys are replaced whole', () => {
  const r = redactArgumentsForLog({ user: 'ann', password: 'hunter2', apiKey: 'short', nested: { client_secret: 'x1', authorization: 'Basic abc' } });
  assert.deepEqual(r.value, {
    user: 'ann',
    password: '[REDACTED:by-key]',
    apiKey: '[REDACTED:by-key]',
    nested: { client_secret: '[REDACTED:by-key]', authorization: '[REDACTED:by-key]' },
  });
  assert.equal(r.summary.redacted['by-key'], 4);
  assert.deepEqual(r.summary.keys, ['user', 'password', 'apiKey', 'nested']);
});

test('secrets inside ordinary strings get typed placeholders', () => {
  const r = redactArgumentsForLog({ query: `deploy with ${FAKE.githubToken}`, list: [`key ${FAKE.awsAccessKey}`] });
  const s = JSON.stringify(r.value);
  assert.ok(!s.includes(FAKE.githubToken) && !s.includes(FAKE.awsAccessKey));
  assert.ok(s.includes('[REDACTED:github-token]') && s.includes('[REDACTED:aws-access-key]'));
  assert.deepEqual(r.summary.redacted, { 'github-token': 1, 'aws-access-key': 1 });
});

test('a secret cut by the length limit is redacted before the cut', () => {
  const r = redactArgumentsForLog({ blob: 'x'.repeat(250) + FAKE.githubToken }, { maxString: 256 });
  assert.ok(!JSON.stringify(r.value).includes(FAKE.githubToken.slice(0, 10)));
  assert.equal(r.summary.truncated, true);
});

test('limits: depth, items, cycles, odd values', () => {
  const cyc: Record<string, unknown> = { a: 1 };
  cyc.self = cyc;
  const deep = { a: { b: { c: { d: 1 } } } };
  const r = redactArgumentsForLog({ cyc, deep, arr: Array.from({ length: 60 }, (_, i) => i), f: () => 1 }, { maxDepth: 3 });
  const v = r.value as Record<string, unknown>;
  assert.equal((v.cyc as Record<string, unknown>).self, '[cycle]');
  assert.deepEqual(v.deep, { a: { b: '[object]' } });
  assert.equal((v.arr as unknown[]).length, 51);
  assert.equal(v.f, '[function]');
  assert.equal(r.summary.truncated, true);
});

test('secret key names', () => {
  for (const k of ['password', 'db_password', 'dbPassword', 'API_KEY', 'x-api-key', 'accessToken', 'refresh_token', 'Cookie', 'privateKey']) assert.ok(isSecretKey(k), k);
  for (const k of ['path', 'query', 'tokens_used', 'keyword', 'author', 'passenger']) assert.ok(!isSecretKey(k), k);
});

test('redactTreeForLog gives redactArgumentsForLog\'s value for trees: keys, found secrets, limits', () => {
  const trees: unknown[] = [
    { text: 'hello', password: 'hunter2-correct', nested: { apiKey: 'k', list: [`token ${FAKE.githubPat}`, 3, null, true] } },
    [`Bearer ${FAKE.githubPat}`, { authorization: 'x' }, { x: 'y'.repeat(300) }],
    `a lone string with ${FAKE.githubPat}`,
    { deep: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } },
    Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, i])),
    { fn: () => 1, u: undefined, n: 1.5 },
  ];
  for (const limits of [{}, { maxString: Infinity, maxDepth: 9, maxItems: Infinity, keyPlaceholder: '[redacted]' }]) {
    for (const t of trees) assert.deepEqual(redactTreeForLog(t, limits), redactArgumentsForLog(t, limits).value);
  }
  assert.doesNotMatch(JSON.stringify(redactTreeForLog(trees[0])), new RegExp(FAKE.githubPat.slice(0, 12)));
});
