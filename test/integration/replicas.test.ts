/**
 * Two gateway PROCESSES (`bastion serve`, each with its own config directory and lockfile) and
 * the real local Redis at 127.0.0.1:6379 with a key prefix unique to this run: state is shared
 * only through Redis.
 *
 * - a tool rate limit of 3 is 3 across both replicas;
 * - a DPoP proof used on A is refused on B;
 * - a session made on A works on B, and is refused to another principal;
 * - a token revoked through A's admin API is refused on B (within 1 s: polled, bounded at 1 s);
 * - a tool quarantined through A disappears from B's tools/list and its call is refused there;
 * - a pin approved on A (a runtime approval in the store) is honoured on B.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { SignJWT, calculateJwkThumbprint } from 'jose';
import { ROOT, post, rawSession, startProcess, stopProcess, INIT } from '../helpers/gateway.js';
import { compileFixture } from '../fixtures/compile-fixture.js';
import { makeKey, startIssuer, type TestIssuer } from '../identity/fixtures.js';
import { freePort, requireLocalRedis, testPrefix, LOCAL_REDIS } from '../stores/helpers.js';
import { RedisStateStore } from '../../src/stores/redis.js';
import { canonicalResource } from '../../src/identity/resource.js';
import { PinRegistry, memoryLockSource } from '../../src/integrity/registry.js';
import { admin, mint, NOTES_RESOURCE, notesClient, PUBLIC_URL, until } from '../admin/fixture.js';

interface Replica {
  child: ChildProcess;
  base: string;
  admin: string;
}

describe('two replicas sharing Redis', () => {
  let issuer: TestIssuer;
  let dir: string;
  let prefix: string;
  let a: Replica;
  let b: Replica;
  let store: RedisStateStore;

  async function startReplica(name: string): Promise<Replica> {
    const port = await freePort();
    const adminPort = await freePort();
    const notes = { command: process.execPath, args: [compileFixture(resolve(ROOT, 'src/demo/notes-server.ts'))], cwd: ROOT };
    const config = {
      listen: { host: '127.0.0.1', port },
      publicUrl: PUBLIC_URL,
      log: { level: 'warn' },
      audit: { sinks: [] },
      auth: { issuers: [{ issuer: issuer.url, jwksUri: issuer.jwksUri }] },
      state: { type: 'redis', url: LOCAL_REDIS, keyPrefix: prefix },
      admin: { listen: { host: '127.0.0.1', port: adminPort } },
      servers: {
        notes: { stdio: notes, defaultTool: 'allow', tools: { echo: { rateLimit: { rate: '3/hour', burst: 3 } } } },
        strict: { stdio: notes, defaultTool: 'allow', integrity: { mode: 'strict' } },
      },
    };
    const d = join(dir, name);
    mkdirSync(d);
    const file = join(d, 'bastion.yaml');
    writeFileSync(file, stringify(config));
    const child = await startProcess(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli/main.ts'), 'serve', '--config', file], { ready: /listening on/ });
    return { child, base: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}` };
  }

  before(async () => {
    await requireLocalRedis();
    issuer = await startIssuer();
    dir = mkdtempSync(join(tmpdir(), 'bastion-replicas-'));
    prefix = testPrefix('replicas');
    [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    store = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    await store.waitReady();
  });

  after(async () => {
    await Promise.all([a && stopProcess(a.child), b && stopProcess(b.child)]);
    await store?.close();
    await issuer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a tool rate limit of 3 is 3 across both replicas', async () => {
    const token = await mint(issuer, { sub: 'rate-user' });
    const ca = await notesClient(a.base, issuer, {}, token);
    const cb = await notesClient(b.base, issuer, {}, token);
    const statuses: number[] = [];
    for (const c of [ca, cb, ca, cb, ca, cb]) statuses.push((await c.call('echo', { text: 'x' })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429]);
  });

  test('a DPoP proof used on A is refused on B', async () => {
    const key = await makeKey('ES256', 'dpop-client');
    const { kid: _k, ...jwk } = key.publicJwk;
    const t = await mint(issuer, { sub: 'dpop-user', cnf: { jkt: await calculateJwkThumbprint(key.publicJwk) } });
    const proof = await new SignJWT({ htm: 'POST', htu: NOTES_RESOURCE, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath: createHash('sha256').update(t).digest('base64url') })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(key.privateKey);
    const onA = await post(`${a.base}/mcp/notes`, INIT, { authorization: `DPoP ${t}`, dpop: proof });
    assert.equal(onA.status, 200, onA.text);
    const onB = await post(`${b.base}/mcp/notes`, INIT, { authorization: `DPoP ${t}`, dpop: proof });
    assert.equal(onB.status, 401);
    assert.match(onB.headers.get('www-authenticate') ?? '', /invalid_dpop_proof/);
  });

  test('a session made on A works on B and is refused to another principal', async () => {
    const token = await mint(issuer, { sub: 'roamer' });
    const sid = await rawSession(`${a.base}/mcp/notes`, { authorization: `Bearer ${token}` });
    const h = { authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const onB = await post(`${b.base}/mcp/notes`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, h);
    assert.equal(onB.status, 200, onB.text);
    assert.ok(onB.json.result.tools.length > 0);
    const other = await mint(issuer, { sub: 'intruder' });
    const stolen = await post(`${b.base}/mcp/notes`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...h, authorization: `Bearer ${other}` });
    assert.equal(stolen.status, 404);
  });

  test('a token revoked through A is refused on B within 1 s', async () => {
    const cb = await notesClient(b.base, issuer, { sub: 'victim' });
    assert.equal((await cb.list()).status, 200);
    const r = await admin(a.admin, 'POST', '/revoke', { token: cb.token });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const t0 = Date.now();
    await until(() => cb.list(), (x) => x.status === 401, 'revocation on B', 1000);
    // the bound is the until() deadline above (1 s); the figure is for the report
    process.stderr.write(`# revocation seen on B after ${Date.now() - t0} ms\n`);
  });

  test('a tool quarantined through A disappears from B and its call is refused there', async () => {
    const cb = await notesClient(b.base, issuer, { sub: 'q-user' });
    assert.ok((await cb.list()).names.includes('read_note'));
    assert.equal((await admin(a.admin, 'POST', '/quarantine', { server: 'notes', tool: 'read_note' })).status, 200);
    await until(() => cb.list(), (x) => x.status === 200 && !x.names.includes('read_note'), 'quarantine on B', 1000);
    assert.match((await cb.call('read_note', { title: 'x' })).json.error.message, /quarantined/);
    assert.equal((await admin(a.admin, 'POST', '/release', { server: 'notes', tool: 'read_note' })).status, 200);
    await until(() => cb.list(), (x) => x.names.includes('read_note'), 'release on B', 1000);
  });

  test('a pin approved on A is honoured on B', async () => {
    // strict mode: nothing is pinned, so B lists no tools and records them as pending
    const token = await issuer.mint({ aud: canonicalResource(PUBLIC_URL, 'strict'), sub: 'pin-user', scope: 'notes:read' });
    const sb = await rawSession(`${b.base}/mcp/strict`, { authorization: `Bearer ${token}` });
    const hb = { authorization: `Bearer ${token}`, 'mcp-session-id': sb, 'mcp-protocol-version': '2025-11-25' };
    const list = () => post(`${b.base}/mcp/strict`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, hb);
    assert.deepEqual((await list()).json.result.tools, []);
    // approve on A's side: the runtime approval goes to the shared store (as `bastion pin approve`
    // against the store, or A's integrity registry, would write it) and is announced on pub/sub
    const registry = new PinRegistry(store, memoryLockSource());
    const pending = await until(() => registry.pending('strict'), (p) => p.some((x) => x.name === 'echo'), 'pending echo');
    const echo = pending.find((x) => x.name === 'echo')!;
    await registry.approve('strict', { kind: echo.kind, name: echo.name, hash: echo.hash, definition: echo.definition, approvedAt: new Date().toISOString(), approvedBy: 'replicas-test' });
    const names = await until(
      () => list().then((r) => (r.json.result.tools as { name: string }[]).map((x) => x.name)),
      (n) => n.includes('echo'),
      'approved pin honoured on B',
    );
    assert.deepEqual(names, ['echo']);
    const call = await post(`${b.base}/mcp/strict`, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } }, hb);
    assert.equal(call.json.error, undefined, call.text);
  });
});
