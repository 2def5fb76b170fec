/**
 * Detectors that recognise a secret by what surrounds it rather than by its own format:
 * - `gcp-service-account`: a Google service-account key file (`"type": "service_account"`), its
 *   key id and key material.
 * Each has positives and the hard benign cases that a looser rule would touch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSecrets, redactSecrets } from '../../src/sanitizer/secrets.js';
import { FAKE, privateKeyPem, rand } from './fakes.js';

const HEX = '0123456789abcdef';

function typesIn(text: string): string[] {
  return findSecrets(text).map((m) => m.type);
}

// ---------------------------------------------------------------------------- gcp-service-account

const keyId = rand(40, 81, HEX);
const saKey = {
  type: 'service_account',
  project_id: 'demo-project-271828',
  private_key_id: keyId,
  private_key: privateKeyPem('PRIVATE KEY') + '\n',
  client_email: 'ci-deployer@demo-project-271828.iam.gserviceaccount.com',
  client_id: '104857600000000000001',
  auth_uri: 'https://accounts.google.com/o/oauth2/auth',
  token_uri: 'https://oauth2.googleapis.com/token',
  universe_domain: 'googleapis.com',
};

test('gcp-service-account: a key file has its marker, key id and private key redacted; the account stays readable', () => {
  const text = JSON.stringify(saKey, null, 2);
  const r = redactSecrets(text);
  assert.ok(!r.text.includes(keyId), 'private_key_id redacted');
  assert.ok(!r.text.includes(FAKE.pemBody.slice(0, 64)), 'private key redacted');
  assert.match(r.text, /"type": "\[REDACTED:gcp-service-account\]"/);
  assert.match(r.text, /"private_key_id": "\[REDACTED:gcp-service-account\]"/);
  assert.match(r.text, /"private_key": "\[REDACTED:private-key\]/);
  // Who to rotate stays visible: these are not credentials.
  assert.ok(r.text.includes(saKey.client_email) && r.text.includes(saKey.project_id) && r.text.includes(saKey.client_id));
  const marker = r.matches.find((m) => m.type === 'gcp-service-account' && text.slice(m.start, m.end) === 'service_account');
  assert.equal(marker?.severity, 'high', 'a key file with key material is high');
  for (const f of r.findings) assert.ok(!f.evidence.includes(keyId.slice(0, 8)));
});

test('gcp-service-account: keys in any order (jq -S puts "type" last), and a key file cut off before its end', () => {
  const sorted = Object.fromEntries(Object.entries(saKey).sort(([a], [b]) => a.localeCompare(b)));
  const s = redactSecrets(JSON.stringify(sorted));
  assert.ok(!s.text.includes(keyId));
  assert.ok(s.text.includes('"type":"[REDACTED:gcp-service-account]"'));
  const cut = JSON.stringify(saKey, null, 2).slice(0, 200);
  assert.ok(cut.includes(keyId.slice(0, 20)), 'the cut keeps part of the key id');
  const c = redactSecrets(cut);
  assert.ok(!c.text.includes(keyId.slice(0, 20)), 'the cut key id is redacted');
});

test('gcp-service-account: a key file held as a JSON string inside JSON (an env var, a secret manifest)', () => {
  const text = JSON.stringify({ env: { GOOGLE_CREDENTIALS: JSON.stringify(saKey) } });
  const r = redactSecrets(text);
  assert.ok(!r.text.includes(keyId));
  assert.ok(!r.text.includes(FAKE.pemBody.slice(0, 64)));
  assert.ok(r.text.includes('\\"type\\":\\"[REDACTED:gcp-service-account]\\"'));
  assert.doesNotThrow(() => JSON.parse(r.text), 'redaction keeps the JSON valid');
});

test('gcp-service-account: the marker alone (a grep hit in a key file) is reported, at medium', () => {
  const text = 'keys/ci.json:2:  "type": "service_account",';
  const r = redactSecrets(text);
  assert.deepEqual(r.matches.map((m) => [m.type, m.severity]), [['gcp-service-account', 'medium']]);
  assert.equal(r.text, 'keys/ci.json:2:  "type": "[REDACTED:gcp-service-account]",');
  assert.deepEqual(typesIn(`{'type': 'service_account'}`), ['gcp-service-account'], 'Python dict repr');
});

test('gcp-service-account: look-alikes are left alone', () => {
  const docs = JSON.stringify({
    type: 'service_account',
    project_id: 'your-project-id',
    private_key_id: 'your-private-key-id',
    private_key: '-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n',
    client_email: 'your-sa@your-project-id.iam.gserviceaccount.com',
  }, null, 2);
  const cases = [
    docs, // a documentation template: every key field is a placeholder
    '{"member": {"type": "SERVICE_ACCOUNT", "id": "ci@demo.iam.gserviceaccount.com"}}', // Cloud Identity principal kind
    '{"account_type": "service_account", "name": "ci"}',
    '"type": "impersonated_service_account"',
    'type: service_account',
    'Create a service_account key with `gcloud iam service-accounts keys create`.',
    `{"kind": "ServiceAccount", "metadata": {"name": "builder", "uid": "${rand(8, 90, HEX)}"}}`,
  ];
  for (const text of cases) assert.deepEqual(typesIn(text), [], text.slice(0, 60));
});

test('pathological inputs finish (no catastrophic backtracking)', { timeout: 60_000 }, () => {
  const inputs = [
    '"type": "service_account" '.repeat(40_000),
    '{"type": "service_account", "private_key": "' + 'A'.repeat(500_000),
    '{"type": "service_account", ' + '"private_key_id": "abc", '.repeat(40_000),
    '{"type": "service_account", "private_key": "' + '\\n'.repeat(300_000),
  ];
  for (const s of inputs) findSecrets(s);
});
