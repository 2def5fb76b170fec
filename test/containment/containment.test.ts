/**
 * Containment state: deny-list and quarantine in the store, the local cache (pub/sub + version
 * poll), fail closed when the cache cannot be trusted (injected time), sessions ended on every
 * replica through pub/sub.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { Containment, sessionMatches, type LocalSession } from '../../src/containment/containment.js';
import { failOpenRateLimits } from '../../src/containment/fail-open.js';
import { BastionError } from '../../src/errors.js';
import { ANONYMOUS, type Principal } from '../../src/identity/types.js';
import type { StateStore } from '../../src/stores/types.js';

function principal(over: Partial<Principal> = {}): Principal {
  return { ...ANONYMOUS, subject: 'alice', issuer: 'https://as.example', clientId: 'client-a', authMethod: 'bearer', tokenId: 'jti-1', tokenHash: 'hash-1', ...over };
}

/** A store that can be switched off: every call throws ERR_BASTION_STATE_UNAVAILABLE. */
function switchable(inner: StateStore): StateStore & { down: boolean } {
  const s = Object.create(inner) as StateStore & { down: boolean };
  s.down = false;
  for (const m of ['putIfAbsent', 'takeToken', 'increment', 'get', 'set', 'delete', 'keys', 'publish'] as const) {
    (s as unknown as Record<string, unknown>)[m] = async (...args: unknown[]) => {
      if (s.down) throw new BastionError('ERR_BASTION_STATE_UNAVAILABLE', 'down');
      return (inner[m] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    };
  }
  return s;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Two replicas sharing one memory store (no poll unless `bPollMs`), closed after `fn`. */
async function withReplicas(fn: (a: Containment, b: Containment, store: MemoryStateStore) => Promise<void>, bPollMs = 60_000): Promise<void> {
  const store = new MemoryStateStore();
  const a = new Containment(store, { pollMs: 60_000 });
  const b = new Containment(store, { pollMs: bPollMs });
  await a.start();
  await b.start();
  try {
    await fn(a, b, store);
  } finally {
    await a.close();
    await b.close();
    await store.close();
  }
}

test('revocations by every kind reach another replica through the store', () =>
  withReplicas(async (a, b) => {
    const p = principal({ certificate: { subject: 'CN=x', uris: [], dnsNames: [], thumbprint: 'thumb-1', serialNumber: '1', issuer: 'CN=ca' } });
    assert.equal(b.revocationOf(p), undefined);
    for (const [kind, value] of [
      ['jti', 'jti-1'],
      ['token', 'hash-1'],
      ['subject', 'alice'],
      ['client', 'client-a'],
      ['cert', 'thumb-1'],
    ] as const) {
      await a.revoke(kind, value, { by: 'test' });
      // pub/sub, no poll: the other replica re-reads when it hears the change
      await until(() => b.revocationOf(p)?.kind === kind, `${kind} revocation on b`);
      assert.equal(b.revocationOf(principal({ tokenId: 'other', tokenHash: 'other', subject: 'bob', clientId: 'other' })), undefined, 'others unaffected');
      await a.unrevoke(kind, value);
      await until(() => b.revocationOf(p) === undefined, `${kind} reinstated on b`);
    }
    // an entry past its expiry no longer applies
    await a.revoke('jti', 'jti-1', { by: 'test', expiresAt: Date.now() - 1 });
    await until(() => true, '');
    assert.equal(a.revocationOf(p), undefined);
    // anonymous is never matched by subject
    await a.revoke('subject', 'anonymous', { by: 'test' });
    assert.equal(a.revocationOf(ANONYMOUS), undefined);
  }));

test('quarantine of a tool and of a whole server, released again', () =>
  withReplicas(async (a, b) => {
    await a.quarantine('notes', 'echo', { by: 'test' });
    await until(() => b.quarantineOf('notes', 'echo') !== undefined, 'tool quarantine on b');
    assert.equal(b.quarantineOf('notes', 'read_note'), undefined);
    assert.equal(b.quarantineOf('other', 'echo'), undefined);
    await a.quarantine('files', undefined, { by: 'test' });
    await until(() => b.quarantineOf('files', 'anything') !== undefined, 'server quarantine on b');
    assert.deepEqual((await b.listQuarantine()).map((q) => `${q.server}:${q.tool ?? '*'}`), ['files:*', 'notes:echo']);
    await a.release('notes', 'echo');
    await until(() => b.quarantineOf('notes', 'echo') === undefined, 'release on b');
  }));

test('fail closed: a cache not confirmed for staleAfterMs answers 503; recovers when the store returns', async () => {
  let now = 1_000_000;
  const store = switchable(new MemoryStateStore());
  const c = new Containment(store, { now: () => now, staleAfterMs: 1000, pollMs: 60_000 });
  await c.start();
  try {
    assert.equal(c.revocationOf(principal()), undefined);
    store.down = true;
    now += 500;
    await c.sync(false); // fails: the cache is still within its window
    assert.equal(c.revocationOf(principal()), undefined);
    now += 600;
    assert.throws(() => c.revocationOf(principal()), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE' && e.status === 503);
    assert.throws(() => c.quarantineOf('notes', 'echo'), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
    assert.throws(() => c.quarantineFor('notes'), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
    store.down = false;
    await c.sync(false);
    assert.equal(c.revocationOf(principal()), undefined);
    // never trusted before the first successful load
    const d = new Containment(switchable(new MemoryStateStore()), { now: () => now, pollMs: 60_000 });
    (d.store as StateStore & { down: boolean }).down = true;
    await d.start();
    assert.throws(() => d.revocationOf(principal()), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
    await d.close();
  } finally {
    await c.close();
  }
});

test('a missed message is caught by the version poll', () =>
  withReplicas(async (_a, b, store) => {
    // Write behind pub/sub's back, as if the message had been lost.
    await store.set('containment:revoked:subject:x', JSON.stringify({ kind: 'subject', value: 'mallory', at: new Date().toISOString(), by: 't' }));
    await store.increment('containment:version', 1, 1e9);
    await until(() => b.revocationOf(principal({ subject: 'mallory' })) !== undefined, 'poll picks up the change');
  }, 20));

test('ending sessions: every replica closes its matching sessions and reports', () =>
  withReplicas(async (a, b) => {
    const closed: string[] = [];
    const mk = (id: string, subject: string, client = 'c'): LocalSession => ({
      id,
      mount: 'notes',
      owner: `https://as\u0000${subject}\u0000${client}`,
      createdAt: Date.now(),
      lastSeen: Date.now(),
      close: async () => void closed.push(id),
      announce: () => {},
    });
    const onA = [mk('s1', 'alice'), mk('s2', 'bob')];
    const onB = [mk('s3', 'alice', 'd'), mk('s4', 'carol')];
    a.attachSessions({ all: () => onA });
    b.attachSessions({ all: () => onB });
    const r = await a.endSessions({ subject: 'alice' }, 'test', 200);
    assert.deepEqual(closed.sort(), ['s1', 's3']);
    assert.equal(r.ended, 2);
    assert.equal(r.replicas, 2);
    await a.endSessions({ id: 's4' }, 'test', 100);
    assert.ok(closed.includes('s4'));
    // listing: this replica live, the other from its snapshot
    const all = await a.allSessions();
    assert.deepEqual(all.map((s) => s.id).sort(), ['s1', 's2', 's3', 's4']);
    assert.equal(all.find((s) => s.id === 's3')!.clientId, 'd');
    // an empty selector matches nothing
    assert.equal(sessionMatches(mk('x', 'alice'), {}), false);
  }));

test('quarantine changes are announced to the sessions of that server on every replica: tools list for a tool, every list for the server', () =>
  withReplicas(async (a, b) => {
    const heard: Array<[string, string]> = [];
    const mk = (id: string, mount: string): LocalSession => ({
      id,
      mount,
      owner: undefined,
      createdAt: Date.now(),
      lastSeen: Date.now(),
      close: async () => {},
      announce: (method) => void heard.push([id, method]),
    });
    a.attachSessions({ all: () => [mk('a-notes', 'notes'), mk('a-crm', 'crm')] });
    b.attachSessions({ all: () => [mk('b-notes', 'notes')] });
    await a.quarantine('notes', 'delete_note', { by: 'test' });
    await until(() => heard.filter(([, m]) => m === 'notifications/tools/list_changed').length === 2, 'both replicas announce');
    assert.deepEqual(heard.sort(), [
      ['a-notes', 'notifications/tools/list_changed'],
      ['b-notes', 'notifications/tools/list_changed'],
    ]);
    heard.length = 0;
    await a.quarantine('crm', undefined, { by: 'test' });
    await until(() => heard.length === 3, 'the crm session hears about every list');
    assert.deepEqual(heard.map(([, m]) => m).sort(), ['notifications/prompts/list_changed', 'notifications/resources/list_changed', 'notifications/tools/list_changed']);
    assert.ok(heard.every(([id]) => id === 'a-crm'));
    heard.length = 0;
    // A refresh that changes nothing says nothing; a release is announced like a quarantine.
    await a.sync(true);
    assert.deepEqual(heard, []);
    await b.release('notes', 'delete_note');
    await until(() => heard.length === 2, 'the release is announced on both replicas');
  }));

test('failOpenRateLimits: lets takeToken through only on ERR_BASTION_STATE_UNAVAILABLE; the default view fails closed', async () => {
  const store = switchable(new MemoryStateStore());
  const warnings: string[] = [];
  const open = failOpenRateLimits(store, (m) => warnings.push(m));
  store.down = true;
  assert.equal((await open.takeToken('k', { ratePerSecond: 1, burst: 1 })).allowed, true);
  assert.equal(warnings.length, 1);
  await assert.rejects(store.takeToken('k', { ratePerSecond: 1, burst: 1 }), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
  // other methods of the view still fail closed
  await assert.rejects(open.putIfAbsent('j', 1000), (e: BastionError) => e.code === 'ERR_BASTION_STATE_UNAVAILABLE');
  store.down = false;
  assert.equal((await open.takeToken('k2', { ratePerSecond: 1, burst: 1 })).allowed, true);
  assert.equal((await open.takeToken('k2', { ratePerSecond: 0.001, burst: 1 })).allowed, false);
});
