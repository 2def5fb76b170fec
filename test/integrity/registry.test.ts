import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { PinRegistry, fileLockSource, memoryLockSource } from '../../src/integrity/registry.js';
import { emptyLockfile, serializeLockfile, withPins } from '../../src/integrity/lockfile.js';
import { definitionHash, identityOf } from '../../src/integrity/canonical.js';
import { INTEGRITY_KEYS, type Pin } from '../../src/integrity/types.js';

const mk = (description: string, approvedAt: string, approvedBy = 'alice'): Pin => {
  const d = { name: 'echo', description };
  return { kind: 'tool', name: 'echo', hash: definitionHash('tool', d), definition: identityOf('tool', d), approvedAt, approvedBy };
};

test('effective pin: newest of lockfile and store wins; a newer revocation removes a lockfile pin', async () => {
  const store = new MemoryStateStore();
  const lock = memoryLockSource(withPins(emptyLockfile(), 'files', [mk('v1', '2026-01-01T00:00:00.000Z')]));
  const reg = new PinRegistry(store, lock);
  assert.equal((await reg.pinsFor('files')).get('tool:echo')!.definition.description, 'v1');
  await reg.approve('files', mk('v2', '2026-02-01T00:00:00.000Z'));
  assert.equal((await reg.pinsFor('files')).get('tool:echo')!.definition.description, 'v2');
  // The lockfile gets a newer approval (bastion pin approve): it wins over the older store pin.
  lock.set(withPins(emptyLockfile(), 'files', [mk('v3', '2026-03-01T00:00:00.000Z')]));
  assert.equal((await reg.pinsFor('files')).get('tool:echo')!.definition.description, 'v3');
  await reg.revoke('files', 'tool', 'echo', 'bob', new Date('2026-04-01T00:00:00.000Z'));
  assert.equal((await reg.pinsFor('files')).has('tool:echo'), false);
  await store.close();
});

test('approve publishes a change and clears the pending record; corrupt store entries approve nothing', async () => {
  const store = new MemoryStateStore();
  const reg = new PinRegistry(store, memoryLockSource());
  const got: string[] = [];
  await store.subscribe(INTEGRITY_KEYS.channel, (m) => got.push(m));
  const p = mk('v1', '2026-01-01T00:00:00.000Z');
  await reg.recordPending({ server: 'files', kind: 'tool', name: 'echo', hash: p.hash, definition: p.definition, status: 'new', findings: [], seenAt: 'now' });
  assert.equal((await reg.pending('files')).length, 1);
  await reg.approve('files', p);
  assert.equal((await reg.pending('files')).length, 0);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['{"server":"files"}']);
  await store.set(INTEGRITY_KEYS.pin('files', 'tool', 'other'), '{"hash": 5');
  assert.equal((await reg.pinsFor('files')).has('tool:other'), false);
  await store.close();
});

test('manifest version: the highest of lockfile and store; never lowered', async () => {
  const store = new MemoryStateStore();
  const lock = emptyLockfile();
  lock.servers.files = { pins: {}, manifestVersion: '1.5.0' };
  const reg = new PinRegistry(store, memoryLockSource(lock));
  assert.equal(await reg.manifestVersion('files'), '1.5.0');
  await reg.recordManifestVersion('files', '1.4.0');
  assert.equal(await reg.manifestVersion('files'), '1.5.0');
  await reg.recordManifestVersion('files', '2.0');
  assert.equal(await reg.manifestVersion('files'), '2.0');
  await store.close();
});

test('file lock source re-reads the lockfile when it changes on disk; keeps the last good one if invalid', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  const path = join(dir, 'bastion.lock.json');
  let t = 0;
  const src = fileLockSource(path, { minRefreshMs: 10, now: () => t });
  assert.deepEqual(src.current(), emptyLockfile());
  writeFileSync(path, serializeLockfile(withPins(emptyLockfile(), 'files', [mk('v1', '2026-01-01T00:00:00.000Z')])));
  t += 20;
  await src.refresh();
  assert.ok(src.current().servers.files);
  writeFileSync(path, '{ broken');
  utimesSync(path, new Date(), new Date(Date.now() + 5000));
  t += 20;
  await src.refresh();
  assert.ok(src.current().servers.files, 'last good lockfile kept');
  await src.addPins!('mail', [mk('m', '2026-01-02T00:00:00.000Z')]).catch(() => undefined);
});

test('file lock source: addPins merges with what is on disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  const path = join(dir, 'bastion.lock.json');
  const src = fileLockSource(path);
  await src.addPins!('files', [mk('v1', '2026-01-01T00:00:00.000Z')]);
  await src.addPins!('mail', [mk('m', '2026-01-02T00:00:00.000Z')]);
  const again = fileLockSource(path);
  assert.deepEqual(Object.keys(again.current().servers).sort(), ['files', 'mail']);
});
