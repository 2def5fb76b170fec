/**
 * The DPoP nonce key (RFC 9449 §8) without auth.dpop.nonce.secret: replicas sharing a Redis state
 * store agree on one random key through it (and accept each other's nonces); with the memory
 * store the key stays per process; a configured secret always wins and is never stored; the
 * store unreachable means 503 (fail closed) until it returns; the start-up warning only where
 * it still applies. Redis: the local one at 127.0.0.1:6379, a unique key prefix per test.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { calculateJwkThumbprint, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { toWire, type BastionError } from '../../src/errors.js';
import { identityStage, IDENTITY_STAGE, type IdentityLocals } from '../../src/stages/identity/authenticate.js';
import { DPOP_NONCE_STORE_KEY, dpopNoncesLoader } from '../../src/identity/dpop.js';
import { checkIdentityConfig } from '../../src/identity/startup.js';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { RedisStateStore } from '../../src/stores/redis.js';
import type { StateStore } from '../../src/stores/types.js';
import type { Config } from '../../src/config/schema.js';
import { makeConfig, makeCtx, makeKey, memoryAudit, RESOURCE, startIssuer, type KeyPair, type TestIssuer } from './fixtures.js';
import { freePort, LOCAL_REDIS, requireLocalRedis, testPrefix } from '../stores/helpers.js';

let iss: TestIssuer;
let client: KeyPair;
let token: string;
const cleanup: Array<() => Promise<void>> = [];

before(async () => {
  await requireLocalRedis();
  iss = await startIssuer();
  client = await makeKey('ES256', 'client');
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const nowS = Math.floor(Date.now() / 1000);
  token = await iss.mint({ cnf: { jkt }, iat: nowS, exp: nowS + 600 });
});
after(async () => {
  for (const c of cleanup.reverse()) await c();
  await iss.close();
});

const SECRET_ENV = 'TEST_DPOP_NONCE_SECRET';

function config(opts: { secret?: boolean } = {}): Config {
  return makeConfig(iss, (c) => {
    c.auth.dpop = { nonce: { enabled: true, ...(opts.secret ? { secret: { env: SECRET_ENV } } : {}) } };
  });
}

/** One replica: the identity stage over `store`. */
function replica(store: StateStore, opts: { secret?: string } = {}) {
  const cfg = config({ secret: opts.secret !== undefined });
  const audit = memoryAudit();
  const env: NodeJS.ProcessEnv = { TEST_INTROSPECTION_SECRET: iss.clientSecret, ...(opts.secret !== undefined ? { [SECRET_ENV]: opts.secret } : {}) };
  return { config: cfg, audit, stage: identityStage({ config: cfg, store, audit, env }) };
}
type Replica = ReturnType<typeof replica>;

async function redisStore(prefix: string): Promise<RedisStateStore> {
  const s = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: prefix });
  cleanup.push(() => s.close());
  assert.equal(await s.waitReady(5000), true, 'local Redis ready');
  return s;
}

async function proof(nonce?: string): Promise<string> {
  const { kid: _k, ...jwk } = client.publicJwk;
  return new SignJWT({
    htm: 'POST',
    htu: RESOURCE,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    ath: createHash('sha256').update(token).digest('base64url'),
    ...(nonce !== undefined ? { nonce } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
    .sign(client.privateKey);
}

/** Send a DPoP request; `accepted` with the response nonce, or the refusal. */
async function send(r: Replica, nonce?: string): Promise<{ accepted: true; nonce: string } | { accepted: false; error: BastionError }> {
  const ctx = makeCtx(r.config, { headers: { authorization: `DPoP ${token}`, dpop: await proof(nonce) } });
  try {
    await r.stage.onRequest!(ctx);
  } catch (e) {
    return { accepted: false, error: e as BastionError };
  }
  assert.equal(ctx.principal!.authMethod, 'dpop');
  return { accepted: true, nonce: (ctx.locals[IDENTITY_STAGE] as IdentityLocals).responseHeaders['DPoP-Nonce']! };
}

/** The nonce a replica hands out (a proof without one is refused with use_dpop_nonce). */
async function nonceOf(r: Replica): Promise<string> {
  const res = await send(r);
  assert.equal(res.accepted, false);
  const e = (res as { error: BastionError }).error;
  assert.equal(e.reason, 'dpop_nonce_required');
  const n = toWire(e).headers['DPoP-Nonce'];
  assert.ok(n && n.length > 20);
  return n;
}

async function refusedForNonce(r: Replica, nonce: string): Promise<void> {
  const res = await send(r, nonce);
  assert.equal(res.accepted, false, 'a nonce made under another key must be refused');
  const e = (res as { error: BastionError }).error;
  assert.equal(e.reason, 'dpop_nonce_required');
  assert.match(toWire(e).headers['WWW-Authenticate'] ?? '', /DPoP error="use_dpop_nonce"/);
}

async function acceptedWith(r: Replica, nonce: string): Promise<void> {
  const res = await send(r, nonce);
  assert.ok(res.accepted, `nonce refused: ${res.accepted ? '' : res.error.reason}`);
  assert.equal(res.nonce, nonce);
}

test('shared Redis store, no secret: two replicas accept each other\'s nonces; one key, stored once, without expiry, never logged', async () => {
  const prefix = testPrefix('dpop-nonce');
  // Both start at once on a fresh prefix: both race to create the key, one wins.
  const [sa, sb] = await Promise.all([redisStore(prefix), redisStore(prefix)]);
  const a = replica(sa);
  const b = replica(sb);
  const na = await nonceOf(a);
  const nb = await nonceOf(b);
  assert.equal(na, nb, 'same key, same period: same nonce');
  await acceptedWith(b, na);
  await acceptedWith(a, nb);
  // A third replica started later reads the same key.
  const c = replica(await redisStore(prefix));
  await acceptedWith(c, na);

  const raw = new Redis(LOCAL_REDIS);
  cleanup.push(async () => void (await raw.quit()));
  const stored = await raw.get(`${prefix}k:${DPOP_NONCE_STORE_KEY}`);
  assert.ok(stored !== null);
  assert.equal(Buffer.from(stored, 'base64url').length, 32);
  assert.equal(await raw.pttl(`${prefix}k:${DPOP_NONCE_STORE_KEY}`), -1, 'stored without expiry');
  for (const r of [a, b, c]) assert.ok(!JSON.stringify(r.audit.events).includes(stored), 'the key never reaches the audit trail');
});

test('memory stores, no secret: the key is per process, so two of them refuse each other\'s nonces', async () => {
  const a = replica(new MemoryStateStore());
  const b = replica(new MemoryStateStore());
  const na = await nonceOf(a);
  await acceptedWith(a, na);
  await refusedForNonce(b, na);
  await refusedForNonce(a, await nonceOf(b));
});

test('a configured secret overrides the stored key and is never stored', async () => {
  // A Redis prefix that already holds a shared key.
  const prefix = testPrefix('dpop-nonce-secret');
  const shared = replica(await redisStore(prefix));
  const sharedNonce = await nonceOf(shared);
  const withSecret = replica(await redisStore(prefix), { secret: 'a-configured-nonce-secret-0123456789' });
  const secretNonce = await nonceOf(withSecret);
  assert.notEqual(secretNonce, sharedNonce);
  await refusedForNonce(withSecret, sharedNonce);
  await refusedForNonce(shared, secretNonce);
  // Any replica with the same secret accepts it, whatever its store.
  await acceptedWith(replica(new MemoryStateStore(), { secret: 'a-configured-nonce-secret-0123456789' }), secretNonce);

  // With a secret, a fresh shared store is never given a key.
  const fresh = await redisStore(testPrefix('dpop-nonce-nostore'));
  const r = replica(fresh, { secret: 'a-configured-nonce-secret-0123456789' });
  await acceptedWith(r, await nonceOf(r));
  assert.equal(await fresh.get(DPOP_NONCE_STORE_KEY), undefined);
});

test('store unreachable: DPoP requests get 503 (fail closed), no per-process fallback; served again with the shared key when it returns', async () => {
  const prefix = testPrefix('dpop-nonce-down');
  const inner = await redisStore(prefix);
  const down = { on: true };
  const flaky = Object.create(inner) as StateStore;
  const offered: string[] = [];
  flaky.getOrCreate = async (key, value) => {
    offered.push(value);
    // Like an ioredis error: the command and its arguments ride on it.
    if (down.on) throw Object.assign(new Error('Command timed out'), { command: { name: 'evalsha', args: ['sha', 1, key, value] } });
    return inner.getOrCreate(key, value);
  };
  const r = replica(flaky);
  for (let i = 0; i < 2; i++) {
    const res = await send(r);
    assert.equal(res.accepted, false);
    const e = (res as { error: BastionError }).error;
    assert.equal(e.code, 'ERR_BASTION_STATE_UNAVAILABLE');
    assert.equal(e.reason, 'dpop_nonce_key_unavailable');
    assert.equal(toWire(e).status, 503);
    assert.equal(toWire(e).headers['DPoP-Nonce'], undefined, 'no nonce from a key the other replicas do not share');
    assert.match(e.message, /DPoP nonce key .*\(fail closed\)/);
    const seen = inspect(e, { depth: 10, showHidden: true });
    assert.match(seen, /Command timed out/);
    for (const v of offered) assert.ok(!seen.includes(v), 'the offered key never rides on the error');
  }
  assert.equal(r.audit.events.at(-1)?.type, 'auth.failed');
  down.on = false;
  const n = await nonceOf(r);
  // The key it loaded is the shared one: another replica on the same store accepts its nonce.
  await acceptedWith(replica(await redisStore(prefix)), n);
});

test('a real unreachable Redis: 503 ERR_BASTION_STATE_UNAVAILABLE with a clear message', async () => {
  const s = new RedisStateStore({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: testPrefix('dpop-nonce-nothing'), commandTimeoutMs: 300 });
  cleanup.push(() => s.close());
  const res = await send(replica(s));
  assert.equal(res.accepted, false);
  const e = (res as { error: BastionError }).error;
  assert.equal(e.code, 'ERR_BASTION_STATE_UNAVAILABLE');
  assert.equal(toWire(e).status, 503);
  assert.match(e.message, /DPoP nonce key could not be read from the shared state store/);
});

test('a malformed stored key is refused (fail closed) without echoing it', async () => {
  const prefix = testPrefix('dpop-nonce-bad');
  const s = await redisStore(prefix);
  await s.set(DPOP_NONCE_STORE_KEY, 'short-and-not-a-key');
  const res = await send(replica(s));
  assert.equal(res.accepted, false);
  const e = (res as { error: BastionError }).error;
  assert.equal(e.reason, 'dpop_nonce_key_invalid');
  assert.match(e.message, /delete it and restart every replica, or set auth\.dpop\.nonce\.secret/);
  assert.ok(!e.message.includes('short-and-not-a-key'));
  assert.equal(await s.get(DPOP_NONCE_STORE_KEY), 'short-and-not-a-key', 'left alone');
});

test('start-up warning: only without a secret AND without a shared store', () => {
  const warned = (secret: boolean, state: 'memory' | 'redis'): boolean => {
    const c = makeConfig(undefined, (raw) => {
      raw.auth.dpop = { nonce: { enabled: true, ...(secret ? { secret: { env: 'HOME' } } : {}) } };
      raw.state = state === 'redis' ? { type: 'redis', url: LOCAL_REDIS } : { type: 'memory' };
    });
    return checkIdentityConfig(c).warnings.some((w) => w.includes('auth.dpop.nonce.secret'));
  };
  assert.equal(warned(false, 'memory'), true);
  assert.equal(warned(false, 'redis'), false);
  assert.equal(warned(true, 'memory'), false);
  assert.equal(warned(true, 'redis'), false);
  const off = makeConfig(undefined, (raw) => {
    raw.state = { type: 'memory' };
  });
  assert.ok(!checkIdentityConfig(off).warnings.some((w) => w.includes('nonce')), 'nonces off: no warning');
});

test('a key the store lost comes back from the replicas; a key that changed in the store is taken by every replica, the old nonces accepted for two periods', async () => {
  const prefix = testPrefix('dpop-nonce-resync');
  let t = Date.UTC(2026, 10, 27, 12, 0, 0);
  const now = (): number => t;
  const opts = { secret: undefined, rotateSeconds: 60, now, resyncMs: 1000 };
  /** A store whose getOrCreate calls are counted once they are answered (the checks run in the background). */
  const counted = async (): Promise<{ store: RedisStateStore; done: () => number }> => {
    const real = await redisStore(prefix);
    let n = 0;
    const store = Object.create(real) as RedisStateStore;
    store.getOrCreate = (k: string, v: string) => real.getOrCreate(k, v).finally(() => void n++);
    return { store, done: () => n };
  };
  const sa = await counted();
  const sb = await counted();
  const a = dpopNoncesLoader({ ...opts, store: sa.store });
  const b = dpopNoncesLoader({ ...opts, store: sb.store });
  const na = (await a()).current();
  assert.equal((await b()).current(), na);
  const raw = new Redis(LOCAL_REDIS);
  cleanup.push(async () => void (await raw.quit()));
  const redisKey = `${prefix}k:${DPOP_NONCE_STORE_KEY}`;
  const original = await raw.get(redisKey);
  assert.ok(original !== null);
  /** Call the loader until `cond` holds of what it gives (the check runs in the background). */
  const settle = async (load: typeof a, cond: (n: Awaited<ReturnType<typeof a>>) => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (cond(await load())) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  // 1. Redis lost the key (a restart without persistence): the first replica to check puts it back.
  await raw.del(redisKey);
  t += 1000;
  await a();
  for (let i = 0; i < 200 && (await raw.get(redisKey)) === null; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(await raw.get(redisKey), original, 'the replica put its key back');
  await b();
  await settle(b, () => sa.done() === 2 && sb.done() === 2, 'both replicas to have checked');
  assert.equal((await a()).current(), na);
  assert.equal((await b()).current(), na);

  // 2. Lost again, and a replica that starts meanwhile creates another key: the others take it.
  await raw.del(redisKey);
  const c = dpopNoncesLoader({ ...opts, store: await redisStore(prefix) });
  const nc = (await c()).current();
  assert.notEqual(nc, na, 'the new replica made its own key');
  assert.equal((await a()).isValid(nc), false, 'before the check, the old replicas refuse its nonces');
  t += 1000;
  await settle(a, (n) => n.isValid(nc), 'replica a to take the new key');
  await settle(b, (n) => n.isValid(nc), 'replica b to take the new key');
  assert.equal((await a()).current(), nc, 'a hands out nonces under the new key');
  assert.equal((await a()).isValid(na), true, 'nonces of the replaced key are still accepted for a while');
  assert.equal((await c()).isValid(na), false, 'the new replica never had the old key');
  t += 2 * 60_000 + 1;
  assert.equal((await a()).isValid(na), false, 'and no longer after two periods');
  assert.equal((await a()).isValid((await c()).current()), true);

  // 3. The store unreachable at a check: the key in hand stays in use, no refusal.
  const real = await redisStore(prefix);
  let down = false;
  let checks = 0;
  const flaky = Object.create(real) as RedisStateStore;
  flaky.getOrCreate = (k: string, v: string) => {
    checks++;
    return down ? Promise.reject(new Error('connection refused')) : real.getOrCreate(k, v);
  };
  const d = dpopNoncesLoader({ ...opts, store: flaky });
  const nd = (await d()).current();
  assert.equal(nd, (await c()).current());
  down = true;
  t += 1000;
  await d();
  await settle(d, () => checks === 2, 'the failed check');
  await new Promise((r) => setTimeout(r, 10));
  const after = await d();
  assert.equal(after.current(), nd, 'the key in hand stays in use');
  assert.equal(after.isValid(nd), true);
});
