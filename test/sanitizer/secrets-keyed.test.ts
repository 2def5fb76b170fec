/**
 * Two detectors that recognise a secret by what surrounds it rather than by its own format:
 * - `gcp-service-account`: a Google service-account key file (`"type": "service_account"`), its
 *   key id and key material;
 * - `vendor-token`: a key naming a SaaS/cloud vendor (`sourcegraph:`, `DISCORD_BOT_TOKEN=`)
 *   assigned a token-shaped value (a legacy Sourcegraph token is 40 hex characters and nothing
 *   else).
 * Each has positives and the hard benign cases that a looser rule would touch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSecrets, redactSecrets } from '../../src/sanitizer/secrets.js';
import { FAKE, privateKeyPem, rand } from './fakes.js';

const HEX = '0123456789abcdef';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const hex40 = rand(40, 71, HEX);
const hex32 = rand(32, 72, HEX);
const token = rand(59, 73, B64URL);

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

// ---------------------------------------------------------------------------- vendor-token

const VENDOR_POSITIVES: Array<[text: string, secret: string]> = [
  [`sourcegraph: ${hex40}`, hex40],
  [`sourcegraph: ${hex40.toUpperCase().slice(0, 20)}${hex40.slice(20)}`, hex40.slice(20)], // mixed-case hex
  [`{"tokens": {"sourcegraph": "${hex40}", "other": 1}}`, hex40],
  [`tokens:\n  github: ${hex40}\n  gitlab: none\n`, hex40], // a legacy 40-hex GitHub token
  [`export MERAKI_API_KEY=${hex40}`, hex40],
  [`  DISCORD_BOT_TOKEN: "${token}"`, token],
  [`newRelicLicenseKey = "${hex40}";`, hex40],
  [`NEW_RELIC_LICENSE_KEY=${hex40}`, hex40], // a two-word vendor name, split
  [`HUGGING_FACE_HUB_TOKEN: ${token}`, token],
  [`datadog_app_key => '${hex40}'`, hex40],
  [`sourcegraph-cli --sourcegraph-token=${hex40} search x`, hex40],
  [`[default]\nmailgun_prod = ${hex32}`, hex32],
  [JSON.stringify({ config: JSON.stringify({ sourcegraph: hex40 }) }), hex40], // JSON inside a JSON string
];

for (const [text, secret] of VENDOR_POSITIVES) {
  test(`vendor-token: redacts ${text.slice(0, 48).replace(/\n/g, ' ')}…`, () => {
    const r = redactSecrets(text);
    assert.ok(r.matches.some((m) => m.type === 'vendor-token'), `expected vendor-token, got ${r.matches.map((m) => m.type).join(',') || 'nothing'}`);
    assert.ok(!r.text.includes(secret), 'the token must not survive');
    assert.ok(r.text.includes('[REDACTED:vendor-token]'));
    for (const f of r.findings) assert.ok(!f.evidence.includes(secret));
  });
}

test('vendor-token: a vendor format rule keeps its own type on the same span', () => {
  assert.deepEqual(typesIn(`GITHUB_TOKEN=${FAKE.githubToken}`), ['github-token']);
  assert.deepEqual(typesIn(`stripe: ${FAKE.stripeKey}`), ['stripe-key']);
});

const VENDOR_LOOK_ALIKES: string[] = [
  // git SHAs and digests, labelled as such or in prose
  `commit ${hex40}`,
  `github commit ${hex40}`,
  `Fixed upstream on GitHub: ${hex40} (merged last week).`,
  `github_sha: ${hex40}`,
  `GITHUB_SHA=${hex40}`,
  `sourcegraph_commit: ${hex40}`,
  `sourcegraph_version = "${hex40}"`,
  `"github": "sha512-${rand(86, 91)}=="`,
  `github: sha256:${rand(64, 92, HEX)}`,
  `slack_checksum: ${hex32}`,
  // identifiers that are not credentials
  'sourcegraph: 3f0f8c1e-2b9a-4c55-9d0e-7b1c2a3d4e5f',
  `github_run_id: ${rand(20, 93, '0123456789')}`,
  `slack_channel: C${rand(20, 94, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}`,
  `stripe_customer: cus_${rand(24, 95)}`,
  `github_url: https://github.com/acme/widgets/commit/${hex40}`,
  `laws: ${hex40}`,
  `mygithubthing: ${hex40}`,
  // placeholders, references, low-entropy and sequential test values (gitleaks' own look-alikes among them)
  'discord=00000000000000000000000000000000',
  'meraki: aaaaaaaaaa1111111111bbbbbbbbbb2222222222',
  'oktaKey = 00000000000000000000000000000000000TUVWXYZ',
  'sourcegraph: ${SOURCEGRAPH_TOKEN}',
  'sourcegraph: <your sourcegraph token>',
  'SOURCEGRAPH_TOKEN=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  'aws: 0123456789abcdef0123456789abcdef',
  'github: os.environ.get("GITHUB_TOKEN_VALUE")',
  'sourcegraph: short1234',
];

for (const text of VENDOR_LOOK_ALIKES) {
  test(`vendor-token: leaves alone ${text.slice(0, 56)}`, () => {
    assert.ok(!typesIn(text).includes('vendor-token'), `vendor-token fired on ${text}`);
  });
}

test('vendor-token: the vendor key must start a line or an object member, not sit in a sentence', () => {
  assert.deepEqual(typesIn(`\nsourcegraph: ${hex40}`), ['vendor-token']);
  assert.deepEqual(typesIn(`we asked sourcegraph: ${hex40}`), []);
});

test('pathological inputs for both detectors finish (no catastrophic backtracking)', { timeout: 60_000 }, () => {
  const inputs = [
    '"type": "service_account" '.repeat(40_000),
    '{"type": "service_account", "private_key": "' + 'A'.repeat(500_000),
    '{"type": "service_account", ' + '"private_key_id": "abc", '.repeat(40_000),
    '{"type": "service_account", "private_key": "' + '\\n'.repeat(300_000),
    'github: '.repeat(100_000),
    'github_token_prod_'.repeat(50_000),
    'sourcegraph' + 'a'.repeat(400_000),
    'x=' + 'githubA1'.repeat(100_000),
    '"github": '.repeat(100_000),
    `\nsourcegraph: ${hex40}`.repeat(20_000),
  ];
  for (const s of inputs) findSecrets(s);
});
