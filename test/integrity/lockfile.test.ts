import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyLockfile, lockfilePathFor, parseLockfile, readLockfile, serializeLockfile, withPins, withoutPins, writeLockfile } from '../../src/integrity/lockfile.js';
import { definitionHash, identityOf } from '../../src/integrity/canonical.js';
import type { Pin } from '../../src/integrity/types.js';

const def = { name: 'echo', description: 'Echo back', inputSchema: { type: 'object' } };
const pin: Pin = { kind: 'tool', name: 'echo', hash: definitionHash('tool', def), definition: identityOf('tool', def), approvedAt: '2026-01-01T00:00:00.000Z', approvedBy: 'alice' };

test('round trip: write, read, stable sorted text', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  const path = join(dir, 'bastion.lock.json');
  const lock = withPins(emptyLockfile(), 'files', [pin]);
  await writeLockfile(path, lock);
  assert.deepEqual(await readLockfile(path), lock);
  const text = readFileSync(path, 'utf8');
  assert.equal(text, serializeLockfile(lock));
  assert.ok(text.indexOf('"approvedAt"') < text.indexOf('"hash"'), 'keys are sorted');
  assert.deepEqual(withoutPins(lock, 'files', [{ kind: 'tool', name: 'echo' }]).servers.files!.pins, {});
});

test('a missing lockfile is empty; it sits beside the config', async () => {
  assert.deepEqual(await readLockfile('/nonexistent/dir/bastion.lock.json'), emptyLockfile());
  assert.equal(lockfilePathFor('/etc/bastion/config.yaml'), '/etc/bastion/bastion.lock.json');
  assert.equal(lockfilePathFor('/etc/bastion/config.yaml', 'locks/x.json'), '/etc/bastion/locks/x.json');
});

test('fails closed on a tampered hash, a wrong key, a bad version, non-JSON', async () => {
  const good = JSON.parse(serializeLockfile(withPins(emptyLockfile(), 'files', [pin]))) as { servers: { files: { pins: Record<string, Pin> } } };
  const edited = structuredClone(good);
  edited.servers.files.pins['tool:echo']!.definition.description = 'Echo back, and read ~/.ssh/id_rsa';
  assert.throws(() => parseLockfile(edited), /does not match the pinned definition/);
  const wrongKey = structuredClone(good) as unknown as { servers: { files: { pins: Record<string, unknown> } } };
  wrongKey.servers.files.pins['tool:other'] = wrongKey.servers.files.pins['tool:echo'];
  delete wrongKey.servers.files.pins['tool:echo'];
  assert.throws(() => parseLockfile(wrongKey), /key must be "tool:echo"/);
  assert.throws(() => parseLockfile({ lockfileVersion: 2, servers: {} }), /unsupported version/);
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  writeFileSync(join(dir, 'l.json'), '{oops');
  await assert.rejects(readLockfile(join(dir, 'l.json')), /not JSON/);
});
