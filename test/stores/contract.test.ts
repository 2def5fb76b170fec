/**
 * The StateStore contract, run against BOTH implementations: MemoryStateStore and
 * RedisStateStore (the real local Redis at 127.0.0.1:6379, a unique key prefix per run).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../src/stores/memory.js';
import type { StateStore } from '../../src/stores/types.js';
import { RedisStateStore, parseRedisUrl } from '../../src/stores/redis.js';
import { localStore, testPrefix, LOCAL_REDIS } from './helpers.js';

const impls: Array<{ name: string; make: () => Promise<StateStore>; shared: boolean }> = [
  { name: 'MemoryStateStore', make: async () => new MemoryStateStore(), shared: false },
  { name: 'RedisStateStore', make: () => localStore('contract'), shared: true },
];

for (const impl of impls) {
  describe(`StateStore contract: ${impl.name}`, () => {
    const stores: StateStore[] = [];
    const make = async (): Promise<StateStore> => {
      const s = await impl.make();
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });

    test('kind and shared', async () => {
      const s = await make();
      assert.equal(s.shared, impl.shared);
      assert.equal(s.kind, impl.shared ? 'redis' : 'memory');
    });

    test('putIfAbsent: first sight true, then false until the TTL passes', async () => {
      const s = await make();
      assert.equal(await s.putIfAbsent('jti:a', 60_000), true);
      assert.equal(await s.putIfAbsent('jti:a', 60_000), false);
      assert.equal(await s.putIfAbsent('jti:b', 60_000), true);
    });

    test('putIfAbsent is atomic under concurrency: exactly one winner', async () => {
      const s = await make();
      const r = await Promise.all(Array.from({ length: 50 }, () => s.putIfAbsent('race', 60_000)));
      assert.equal(r.filter(Boolean).length, 1);
    });

    test('getOrCreate: the first value wins and is kept (no expiry); later callers get it', async () => {
      const s = await make();
      assert.equal(await s.getOrCreate('once', 'first'), 'first');
      assert.equal(await s.getOrCreate('once', 'second'), 'first');
      assert.equal(await s.get('once'), 'first');
      await s.set('there', 'already');
      assert.equal(await s.getOrCreate('there', 'new'), 'already');
      assert.deepEqual(await s.keys('once'), ['once']);
    });

    test('getOrCreate is atomic under concurrency: 20 callers with different values all get one', async () => {
      const s = await make();
      const r = await Promise.all(Array.from({ length: 20 }, (_, i) => s.getOrCreate('race-goc', `v${i}`)));
      assert.equal(new Set(r).size, 1);
      assert.equal(await s.get('race-goc'), r[0]);
    });

    test('takeToken: burst then refusal with a retry time; concurrent takes never over-admit', async () => {
      const s = await make();
      const limit = { ratePerSecond: 0.001, burst: 5 };
      const r = await Promise.all(Array.from({ length: 20 }, () => s.takeToken('bucket', limit)));
      assert.equal(r.filter((x) => x.allowed).length, 5);
      const denied = r.find((x) => !x.allowed)!;
      assert.equal(denied.remaining, 0);
      assert.ok(denied.retryAfterMs > 0);
      // cost
      const c = await s.takeToken('bucket-cost', { ratePerSecond: 0.001, burst: 5 }, 3);
      assert.deepEqual([c.allowed, c.remaining], [true, 2]);
      assert.equal((await s.takeToken('bucket-cost', { ratePerSecond: 0.001, burst: 5 }, 3)).allowed, false);
      // a zero rate never refills
      await s.takeToken('zero', { ratePerSecond: 0, burst: 1 });
      assert.equal((await s.takeToken('zero', { ratePerSecond: 0, burst: 1 })).retryAfterMs, Number.POSITIVE_INFINITY);
    });

    test('increment: created at 0, adds, returns the new value', async () => {
      const s = await make();
      assert.equal(await s.increment('n', 1, 60_000), 1);
      assert.equal(await s.increment('n', 2, 60_000), 3);
      const all = await Promise.all(Array.from({ length: 20 }, () => s.increment('m', 1, 60_000)));
      assert.equal(Math.max(...all), 20);
    });

    test('get / set / delete / keys by prefix', async () => {
      const s = await make();
      assert.equal(await s.get('nope'), undefined);
      await s.set('pin:srv:tool:a', 'A');
      await s.set('pin:srv:tool:b', 'B', 60_000);
      await s.set('pin:other:tool:c', 'C');
      await s.set('odd*[key]?', 'glob');
      assert.equal(await s.get('pin:srv:tool:a'), 'A');
      assert.deepEqual((await s.keys('pin:srv:')).sort(), ['pin:srv:tool:a', 'pin:srv:tool:b']);
      assert.deepEqual(await s.keys('odd*['), ['odd*[key]?']);
      await s.delete('pin:srv:tool:a');
      assert.equal(await s.get('pin:srv:tool:a'), undefined);
      assert.deepEqual(await s.keys('pin:srv:'), ['pin:srv:tool:b']);
      // buckets are not entries, and delete clears a bucket too
      await s.takeToken('pin:srv:bucket', { ratePerSecond: 0.001, burst: 1 });
      assert.deepEqual(await s.keys('pin:srv:'), ['pin:srv:tool:b']);
      assert.equal((await s.takeToken('pin:srv:bucket', { ratePerSecond: 0.001, burst: 1 })).allowed, false);
      await s.delete('pin:srv:bucket');
      assert.equal((await s.takeToken('pin:srv:bucket', { ratePerSecond: 0.001, burst: 1 })).allowed, true);
    });

    test('TTL expiry (short TTL, polled: no fixed sleep in the assertion)', async () => {
      const s = await make();
      await s.set('short', 'x', 30);
      assert.equal(await s.putIfAbsent('short-p', 30), true);
      const deadline = Date.now() + 5000;
      while ((await s.get('short')) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await s.get('short'), undefined);
      while (!(await s.putIfAbsent('short-p', 30)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(Date.now() < deadline, 'putIfAbsent succeeds again once its TTL passed');
    });

    test('publish reaches every subscriber (including this one); unsubscribe stops it', async () => {
      const s = await make();
      const got: string[] = [];
      let notify: () => void = () => {};
      const un = await s.subscribe('chan', (m) => {
        got.push(m);
        notify();
      });
      const arrived = new Promise<void>((r) => (notify = r));
      await s.publish('chan', 'hello');
      await arrived;
      assert.deepEqual(got, ['hello']);
      await un();
      await s.publish('chan', 'after');
      await s.publish('other', 'x');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got, ['hello']);
    });
  });
}

describe('RedisStateStore specifics', () => {
  test('two instances with the same prefix share state and messages; another prefix is isolated', async () => {
    const prefix = testPrefix('share');
    const a = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    const b = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    const c = await localStore('isolated');
    try {
      await a.waitReady();
      await b.waitReady();
      assert.equal(await a.putIfAbsent('jti', 60_000), true);
      assert.equal(await b.putIfAbsent('jti', 60_000), false);
      assert.equal(await c.putIfAbsent('jti', 60_000), true);
      const lim = { ratePerSecond: 0.001, burst: 4 };
      const r = await Promise.all([...Array.from({ length: 5 }, () => a.takeToken('rl', lim)), ...Array.from({ length: 5 }, () => b.takeToken('rl', lim))]);
      assert.equal(r.filter((x) => x.allowed).length, 4);
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  });

  test('getOrCreate across instances sharing a prefix: 20 concurrent callers on two instances agree', async () => {
    const prefix = testPrefix('goc');
    const a = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    const b = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    try {
      await a.waitReady();
      await b.waitReady();
      const r = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).getOrCreate('shared-key', `v${i}`)));
      assert.equal(new Set(r).size, 1);
      assert.equal(await b.get('shared-key'), r[0]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('pub/sub across instances', async () => {
    const prefix = testPrefix('pubsub');
    const a = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    const b = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
    try {
      await a.waitReady();
      let resolve!: (m: string) => void;
      const got = new Promise<string>((r) => (resolve = r));
      await b.subscribe('news', resolve);
      await a.publish('news', 'from a');
      assert.equal(await got, 'from a');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('URL forms: single, TLS, sentinel, cluster', () => {
    assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6380/2').hosts, [{ host: '127.0.0.1', port: 6380 }]);
    assert.equal(parseRedisUrl('redis://127.0.0.1:6380/2').db, 2);
    assert.equal(parseRedisUrl('rediss://u:p%40ss@r.example:6379').password, 'p@ss');
    assert.equal(parseRedisUrl('rediss://r.example').tls, true);
    const s = parseRedisUrl('redis+sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/1');
    assert.deepEqual([s.mode, s.name, s.db, s.password], ['sentinel', 'mymaster', 1, 'pw']);
    assert.deepEqual(s.hosts, [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }, { host: '::1', port: 26380 }]);
    const c = parseRedisUrl('redis+cluster://n1:7000,n2:7001');
    assert.deepEqual([c.mode, c.hosts.length], ['cluster', 2]);
    assert.throws(() => parseRedisUrl('http://x'), /not a Redis URL/);
  });

  test('a closed store throws ERR_BASTION_STATE_UNAVAILABLE', async () => {
    const s = await localStore('closed');
    await s.close();
    await assert.rejects(s.get('x'), (e: { code?: string }) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
  });
});
