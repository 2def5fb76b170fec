/**
 * Redis lost mid-test, through a running gateway: a PRIVATE redis-server started by this test
 * on a free port (the shared one at 6379 is never touched), persisted with AOF so a kill and
 * restart keep the deny-list, as a production Redis must.
 *
 * - store methods throw ERR_BASTION_STATE_UNAVAILABLE at once (no hang);
 * - a revoked token never gets through (401 before, 401 or 503 during, 401 after);
 * - rate-limited and revocation-checked requests get 503 while Redis is away (fail closed);
 * - Redis back: service resumes without restarting the gateway.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStateStore } from '../../src/stores/redis.js';
import type { FullGateway } from '../../src/gateway.js';
import { startIssuer, type TestIssuer } from '../identity/fixtures.js';
import { admin, base, notesClient, startNotesGateway, until } from '../admin/fixture.js';
import { freePort, PrivateRedis, testPrefix } from './helpers.js';

let redis: PrivateRedis;
let dir: string;
let issuer: TestIssuer;
let gw: FullGateway;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bastion-redis-'));
  redis = new PrivateRedis(await freePort(), dir);
  await redis.start();
  issuer = await startIssuer();
  gw = await startNotesGateway(issuer, {
    state: { type: 'redis', url: redis.url, keyPrefix: testPrefix('failure'), commandTimeoutMs: 500, cacheStaleAfterMs: 300 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    rateLimit: { perSubject: { rate: '1000/second', burst: 1000 } },
  });
});

after(async () => {
  await gw?.close();
  await issuer?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('store methods fail fast with ERR_BASTION_STATE_UNAVAILABLE when Redis is away, and work again when it returns', async () => {
  const port = await freePort();
  const own = new PrivateRedis(port);
  await own.start();
  const s = new RedisStateStore({ url: own.url, keyPrefix: testPrefix('fast'), commandTimeoutMs: 500 });
  try {
    assert.equal(await s.waitReady(5000), true);
    await s.set('k', 'v');
    await own.stop();
    const isDown = (e: { code?: string }) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE';
    await assert.rejects(s.get('k'), isDown);
    await assert.rejects(s.set('k', 'w'), isDown);
    await assert.rejects(s.delete('k'), isDown);
    await assert.rejects(s.putIfAbsent('j', 1000), isDown);
    await assert.rejects(s.getOrCreate('g', 'v'), isDown);
    await assert.rejects(s.takeToken('b', { ratePerSecond: 1, burst: 1 }), isDown);
    await assert.rejects(s.increment('n', 1, 1000), isDown);
    await assert.rejects(s.keys(''), isDown);
    await assert.rejects(s.publish('c', 'm'), isDown);
    await own.start();
    await until(() => s.get('k').then((v) => v ?? 'absent', () => 'down'), (v) => v === 'absent', 'reconnect');
    assert.equal(await s.putIfAbsent('j', 1000), true);
  } finally {
    await s.close();
    await own.stop();
  }
});

test('Redis killed mid-test: fail closed (503, a revoked token never passes), then recovery without a gateway restart', async () => {
  const good = await notesClient(base(gw), issuer, { sub: 'good' });
  const bad = await notesClient(base(gw), issuer, { sub: 'bad' });
  assert.equal((await good.list()).status, 200);
  assert.equal((await admin(gw.admin!.url, 'POST', '/revoke', { token: bad.token })).status, 200);
  await until(() => bad.list(), (r) => r.status === 401, 'revocation effective');
  assert.equal((await admin(gw.admin!.url, 'POST', '/quarantine', { server: 'notes', tool: 'echo' })).status, 200);

  await redis.stop();
  // Every request while Redis is away: the good client gets 503 (rate limits go to Redis; the
  // deny-list cache stops being trusted after 300 ms); the revoked token is never let through.
  const r = await until(() => good.list(), (x) => x.status === 503, '503 for the good client');
  assert.equal(r.status, 503);
  assert.equal(r.json.error.code, -32603);
  assert.match(r.json.error.message, /state store|shared state/);
  for (let i = 0; i < 5; i++) {
    const b = await bad.list();
    assert.ok(b.status === 401 || b.status === 503, `revoked token during the outage: ${b.status}`);
    const g = await good.call('echo', { text: 'x' });
    assert.notEqual(g.status, 200, 'no call goes through while Redis is away');
  }
  // the admin API refuses changes it cannot record
  assert.equal((await admin(gw.admin!.url, 'POST', '/quarantine', { server: 'notes', tool: 'read_note' })).status, 503);

  await redis.start();
  await until(() => good.list(), (x) => x.status === 200, 'service resumes after Redis returns');
  // state kept across the restart (AOF): still revoked, still quarantined
  assert.equal((await bad.list()).status, 401);
  const l = await good.list();
  assert.ok(!l.names.includes('echo') && l.names.includes('list_notes'), JSON.stringify(l.names));
});
