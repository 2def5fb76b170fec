import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';

test('schema/config.json is generated from the zod schema (run `npm run schema` when this fails)', () => {
  const committed = JSON.parse(readFileSync(new URL('../../schema/config.json', import.meta.url), 'utf8'));
  assert.deepEqual(committed, JSON.parse(JSON.stringify(configJsonSchema())));
});

test('a bad config names the key and the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-cfg-'));
  const f = join(dir, 'bastion.yaml');
  writeFileSync(f, 'listen: {port: "eighty"}\nservers:\n  notes:\n    stdio: {command: node}\n    htttp: {url: x}\n');
  assert.throws(() => loadConfigFile(f), (err: Error) => {
    assert.match(err.message, new RegExp(f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    assert.match(err.message, /listen\.port/);
    assert.match(err.message, /servers\.notes\.htttp: unknown key/);
    return true;
  });
});

test('a server needs exactly one upstream; names are restricted', () => {
  assert.throws(() => parseConfig({ servers: { a: {} } }), /exactly one of `stdio` or `http`/);
  assert.throws(() => parseConfig({ servers: { a: { stdio: { command: 'x' }, http: { url: 'http://x' } } } }), /exactly one/);
  assert.throws(() => parseConfig({ servers: { 'Bad/Name': { stdio: { command: 'x' } } } }), /lowercase/);
});

test('environment references expand; a missing one is named', () => {
  const c = parseConfig({ publicUrl: 'https://${GW_HOST}', servers: { a: { stdio: { command: 'x' } } } }, 'f.yaml', '/', { GW_HOST: 'mcp.example.com' });
  assert.equal(c.config.publicUrl, 'https://mcp.example.com');
  assert.throws(() => parseConfig({ publicUrl: 'https://${NOPE}', servers: {} }, 'f.yaml', '/', {}), /publicUrl: refers to environment variable NOPE/);
});

test('the loaded config is frozen', () => {
  const c = parseConfig({ servers: { a: { stdio: { command: 'x' } } } });
  assert.ok(Object.isFrozen(c.config));
  assert.ok(Object.isFrozen(c.config.servers.a));
  assert.throws(() => {
    (c.config.listen as { port: number }).port = 1;
  });
});

test('a missing file says how to fix it', () => {
  assert.throws(() => loadConfigFile('/nonexistent/bastion.yaml'), /does not exist .*bastion dev/);
});

test('servers.NAME.http.acceptTimeoutMs: 30000 by default; a whole number of milliseconds above 0 and at most 2147483647, else the key is named', () => {
  const http = (extra: Record<string, unknown>) => parseConfig({ servers: { a: { http: { url: 'http://127.0.0.1:9/mcp', ...extra } } } }).config.servers.a!.http!;
  assert.equal(http({}).acceptTimeoutMs, 30_000);
  assert.equal(http({ acceptTimeoutMs: 250 }).acceptTimeoutMs, 250);
  assert.equal(http({ acceptTimeoutMs: 1 }).acceptTimeoutMs, 1);
  assert.equal(http({ acceptTimeoutMs: 2_147_483_647 }).acceptTimeoutMs, 2_147_483_647);
  for (const bad of [0, -1, 1.5, 2_147_483_648, '100', null]) {
    assert.throws(() => http({ acceptTimeoutMs: bad }), /servers\.a\.http\.acceptTimeoutMs/, String(bad));
  }
  // Only under http: a stdio server has no such key.
  assert.throws(() => parseConfig({ servers: { a: { stdio: { command: 'x', acceptTimeoutMs: 100 } } } }), /servers\.a\.stdio\.acceptTimeoutMs: unknown key/);
});
