import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { scrub, summarize, REDACTED } from '../../src/audit/redact.js';
import { createAuditLog } from '../../src/audit/log.js';
import { StdoutAuditSink } from '../../src/audit/sinks/stdout.js';
import { SECRETS, assertNoSecrets, secretLadenEvent } from './helpers.js';

test('the scrubber removes credentials by key and by shape, and keeps ordinary text', () => {
  const out = scrub({
    Authorization: 'Bearer abc.def.ghi',
    'X-Api-Key': 'k',
    refresh_token: 'rt',
    clientSecret: 'cs',
    tokenHash: 'hash-is-a-handle-not-a-secret',
    text: `see ${SECRETS.jwt} and Bearer ${SECRETS.opaque} and ${SECRETS.aws}`,
    url: `https://x.example/cb?code=abc&access_token=${SECRETS.opaque}&state=s`,
    dsn: `postgres://app:${SECRETS.urlPassword}@db:5432/x`,
    env: `OPENAI=${SECRETS.openai}\nGITHUB=${SECRETS.github}`,
    plain: 'list the files in /tmp please',
    n: 42,
  }) as Record<string, string>;
  assert.equal(out.Authorization, REDACTED);
  assert.equal(out['X-Api-Key'], REDACTED);
  assert.equal(out.refresh_token, REDACTED);
  assert.equal(out.clientSecret, REDACTED);
  assert.equal(out.tokenHash, 'hash-is-a-handle-not-a-secret');
  assert.equal(out.text, `see ${REDACTED} and Bearer ${REDACTED} and ${REDACTED}`);
  assert.equal(out.url, `https://x.example/cb?code=abc&access_token=${REDACTED}&state=s`);
  assert.equal(out.dsn, `postgres://app:${REDACTED}@db:5432/x`);
  assert.equal(out.plain, 'list the files in /tmp please');
  assert.equal(out.n, 42 as unknown as string);
  assertNoSecrets(JSON.stringify(out), 'scrub');
});

test('summarize bounds strings, arrays, objects and depth', () => {
  const s = summarize({ long: 'a'.repeat(600), arr: Array.from({ length: 40 }, (_, i) => i), deep: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } }) as Record<string, unknown>;
  assert.deepEqual(Object.keys(s.long as object).sort(), ['$summary', 'head', 'length', 'sha256']);
  assert.equal((s.long as { length: number }).length, 600);
  assert.equal((s.arr as unknown[]).length, 33);
  assert.deepEqual((s.arr as unknown[])[32], { $summary: 'truncated', length: 40 });
  assert.match(JSON.stringify(s.deep), /"\$summary":"depth"/);
});

test('stdout sink writes one JSON line per event, scrubbed', async () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const log = createAuditLog({ sinks: [new StdoutAuditSink({ stream })] });
  for (let i = 0; i < 5; i++) log.emit(secretLadenEvent(i));
  await log.close();
  const lines = text.trim().split('\n');
  assert.equal(lines.length, 5);
  assert.deepEqual(lines.map((l) => JSON.parse(l).requestId), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
  assertNoSecrets(text, 'stdout');
});

test('cleanForAudit cuts before it scrubs: a huge argument costs its summary, and a secret at the head of a long string is still removed', async () => {
  const { cleanForAudit } = await import('../../src/audit/redact.js');
  const huge = {
    arr: Array.from({ length: 200_000 }, (_, i) => ({ i, token: SECRETS.opaque })),
    long: `Authorization: Bearer ${SECRETS.opaque} ${SECRETS.jwt} ${'x'.repeat(5_000_000)}`,
    wide: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, SECRETS.aws])),
  };
  const out = cleanForAudit(huge) as Record<string, unknown>;
  const text = JSON.stringify(out);
  assert.ok(text.length < 20_000, `bounded: ${text.length}`);
  assert.deepEqual((out.arr as unknown[]).at(-1), { $summary: 'truncated', length: 200_000 });
  assert.equal((out.long as { length: number }).length, huge.long.length);
  assert.match((out.long as { head: string }).head, /^Authorization: Bearer \[redacted\]/);
  assert.equal((out.wide as Record<string, unknown>).$truncatedKeys, 10_000 - 64);
  assertNoSecrets(text, 'cleanForAudit');
});

test('prose about tokens stays readable: no false positives on ordinary words', () => {
  const text = ['Token introspection failed', 'Bearer authentication required', 'the token expired', 'Basic auth is disabled', 'password reset requested', 'secret santa list'];
  assert.deepEqual(scrub(text), text);
  assert.equal(scrub('Authorization: bearer abcdefghijklmnopqrstuvwxyz'), `Authorization: bearer ${REDACTED}`);
  assert.equal(scrub('DPoP Kz~8qAe-1'), `DPoP ${REDACTED}`);
});
