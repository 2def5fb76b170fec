import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { compareVersions, coverageKey, privateKeyFromPem, publicKeyFromPem, signManifest, verifyManifest } from '../../src/integrity/manifest.js';
import { definitionHash } from '../../src/integrity/canonical.js';

const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    priv: privateKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    pub: publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
  };
};
const publisher = pair();
const other = pair();
const tool = { name: 'echo', description: 'Echo back' };
const hash = definitionHash('tool', tool);
const sign = (version = '1.2.0', server = 'files', key = publisher.priv) =>
  signManifest({ server, version, signer: 'acme', definitions: [{ kind: 'tool', name: 'echo', hash }], issuedAt: new Date('2026-01-01T00:00:00Z') }, key);

test('a manifest signed by a trusted key verifies and covers its hashes', async () => {
  const jws = await sign();
  const r = await verifyManifest(jws, { server: 'files', trustedKeys: [other.pub, publisher.pub] });
  assert.equal(r.ok, true);
  if (!r.ok) return;
  assert.equal(r.manifest.version, '1.2.0');
  assert.equal(r.manifest.signer, 'acme');
  assert.equal(r.keyIndex, 1);
  assert.ok(r.covered.has(coverageKey('tool', 'echo', hash)));
  assert.ok(!r.covered.has(coverageKey('tool', 'echo', definitionHash('tool', { ...tool, description: 'changed' }))));
});

test('tampered payload is refused (bad-signature)', async () => {
  const jws = await sign();
  const [h, p, s] = jws.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as { definitions: Array<{ hash: string }> };
  payload.definitions[0]!.hash = definitionHash('tool', { name: 'echo', description: 'evil' });
  const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
  const r = await verifyManifest(forged, { server: 'files', trustedKeys: [publisher.pub] });
  assert.deepEqual(r.ok ? 'ok' : r.failure, 'bad-signature');
  // A flipped signature byte too.
  const sig = Buffer.from(s!, 'base64url');
  sig[0]! ^= 1;
  const r2 = await verifyManifest(`${h}.${p}.${sig.toString('base64url')}`, { server: 'files', trustedKeys: [publisher.pub] });
  assert.equal(r2.ok, false);
});

test('signed with an untrusted key is refused', async () => {
  const r = await verifyManifest(await sign('1.2.0', 'files', other.priv), { server: 'files', trustedKeys: [publisher.pub] });
  assert.deepEqual(r.ok ? 'ok' : r.failure, 'bad-signature');
  const none = await verifyManifest(await sign(), { server: 'files', trustedKeys: [] });
  assert.deepEqual(none.ok ? 'ok' : none.failure, 'no-trusted-keys');
});

test('downgrade below the accepted version is refused; equal and higher pass', async () => {
  const old = await sign('1.1.9');
  const r = await verifyManifest(old, { server: 'files', trustedKeys: [publisher.pub], minVersion: '1.2.0' });
  assert.deepEqual(r.ok ? 'ok' : r.failure, 'downgrade');
  assert.equal((await verifyManifest(await sign('1.2.0'), { server: 'files', trustedKeys: [publisher.pub], minVersion: '1.2.0' })).ok, true);
  assert.equal((await verifyManifest(await sign('1.10.0'), { server: 'files', trustedKeys: [publisher.pub], minVersion: '1.9' })).ok, true);
  assert.ok(compareVersions('1.10', '1.9') > 0);
  assert.equal(compareVersions('2', '2.0.0'), 0);
});

test('a manifest for another server, a non-JWS, or a wrong typ is refused', async () => {
  const r = await verifyManifest(await sign('1.0.0', 'mail'), { server: 'files', trustedKeys: [publisher.pub] });
  assert.deepEqual(r.ok ? 'ok' : r.failure, 'wrong-server');
  const g = await verifyManifest('not a jws', { server: 'files', trustedKeys: [publisher.pub] });
  assert.deepEqual(g.ok ? 'ok' : g.failure, 'malformed');
  await assert.rejects(sign('one.two'), /dotted numbers/);
});

test('only Ed25519 keys are accepted', () => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(() => publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()), /Ed25519/);
});
