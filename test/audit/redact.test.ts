import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { scrub, summarize, cleanForAudit, isSecretStringKey, REDACTED, SECRET_SHAPES } from '../../src/audit/redact.js';
import { createAuditLog } from '../../src/audit/log.js';
import { StdoutAuditSink } from '../../src/audit/sinks/stdout.js';
import { SECRETS, assertNoSecrets, secretLadenEvent } from './helpers.js';

test('the scrubber removes credentials by key and by shape, and keeps ordinary text', () => {
  const out = scrub({
    Authorization: 'Bearer abc.def.ghi',
    'X-Api-Key': 'k',
    refresh_token: 'rt',
    clientSecret: 'cs',
    tokenHash: 'hash-is-a-handle-not-a-secret',
    text: `see ${SECRETS.jwt} and Bearer ${SECRETS.opaque} and ${SECRETS.aws}`,
    url: `https://x.example/cb?code=abc&access_token=${SECRETS.opaque}&state=s`,
    dsn: `postgres://app:${SECRETS.urlPassword}@db:5432/x`,
    env: `OPENAI=${SECRETS.openai}\nGITHUB=${SECRETS.github}`,
    plain: 'list the files in /tmp please',
    n: 42,
  }) as Record<string, string>;
  assert.equal(out.Authorization, REDACTED);
  assert.equal(out['X-Api-Key'], REDACTED);
  assert.equal(out.refresh_token, REDACTED);
  assert.equal(out.clientSecret, REDACTED);
  assert.equal(out.tokenHash, 'hash-is-a-handle-not-a-secret');
  assert.equal(out.text, `see ${REDACTED} and Bearer ${REDACTED} and ${REDACTED}`);
  assert.equal(out.url, `https://x.example/cb?code=abc&access_token=${REDACTED}&state=s`);
  assert.equal(out.dsn, `postgres://app:${REDACTED}@db:5432/x`);
  assert.equal(out.plain, 'list the files in /tmp please');
  assert.equal(out.n, 42 as unknown as string);
  assertNoSecrets(JSON.stringify(out), 'scrub');
});

test('summarize bounds strings, arrays, objects and depth', () => {
  const s = summarize({ long: 'a'.repeat(600), arr: Array.from({ length: 40 }, (_, i) => i), deep: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } }) as Record<string, unknown>;
  assert.deepEqual(Object.keys(s.long as object).sort(), ['$summary', 'head', 'length', 'sha256']);
  assert.equal((s.long as { length: number }).length, 600);
  assert.equal((s.arr as unknown[]).length, 33);
  assert.deepEqual((s.arr as unknown[])[32], { $summary: 'truncated', length: 40 });
  assert.match(JSON.stringify(s.deep), /"\$summary":"depth"/);
});

test('stdout sink writes one JSON line per event, scrubbed', async () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const log = createAuditLog({ sinks: [new StdoutAuditSink({ stream })] });
  for (let i = 0; i < 5; i++) log.emit(secretLadenEvent(i));
  await log.close();
  const lines = text.trim().split('\n');
  assert.equal(lines.length, 5);
  assert.deepEqual(lines.map((l) => JSON.parse(l).requestId), ['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
  assertNoSecrets(text, 'stdout');
});

test('cleanForAudit cuts before it scrubs: a huge argument costs its summary, and a secret at the head of a long string is still removed', async () => {
  const { cleanForAudit } = await import('../../src/audit/redact.js');
  const huge = {
    arr: Array.from({ length: 200_000 }, (_, i) => ({ i, token: SECRETS.opaque })),
    long: `Authorization: Bearer ${SECRETS.opaque} ${SECRETS.jwt} ${'x'.repeat(5_000_000)}`,
    wide: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, SECRETS.aws])),
  };
  const out = cleanForAudit(huge) as Record<string, unknown>;
  const text = JSON.stringify(out);
  assert.ok(text.length < 20_000, `bounded: ${text.length}`);
  assert.deepEqual((out.arr as unknown[]).at(-1), { $summary: 'truncated', length: 200_000 });
  assert.equal((out.long as { length: number }).length, huge.long.length);
  assert.match((out.long as { head: string }).head, /^Authorization: Bearer \[redacted\]/);
  assert.equal((out.wide as Record<string, unknown>).$truncatedKeys, 10_000 - 64);
  assertNoSecrets(text, 'cleanForAudit');
});

test('prose about tokens stays readable: no false positives on ordinary words', () => {
  const text = ['Token introspection failed', 'Bearer authentication required', 'the token expired', 'Basic auth is disabled', 'password reset requested', 'secret santa list'];
  assert.deepEqual(scrub(text), text);
  assert.equal(scrub('Authorization: bearer abcdefghijklmnopqrstuvwxyz'), `Authorization: bearer ${REDACTED}`);
  assert.equal(scrub('DPoP Kz~8qAe-1'), `DPoP ${REDACTED}`);
});

/** What scrubbing a string must give: every shape applied directly, no first test, no cache. */
function direct(s: string): string {
  if (s.length < 8) return s;
  let out = s;
  for (const { re, replacement } of SECRET_SHAPES) out = out.replace(new RegExp(re.source, re.flags), replacement);
  return out;
}

/** Examples of every secret shape, one per alternative the shape allows. */
const SHAPE_EXAMPLES: Record<string, string[]> = {
  pem: [
    `-----BEGIN PRIVATE KEY-----\n${SECRETS.pemBody}\n-----END PRIVATE KEY-----`,
    `-----BEGIN RSA PRIVATE KEY-----\n${SECRETS.pemBody}`,
    `key: -----BEGIN EC PRIVATE KEY-----\n${SECRETS.pemBody}\n-----END EC PRIVATE KEY----- done`,
  ],
  jwt: [SECRETS.jwt, 'see eyJabcde.fg. here', `id_token ${SECRETS.jwt}.extra.more`],
  'auth-scheme': [
    `Bearer ${SECRETS.opaque}`,
    'BEARER abcdefgh1',
    'bearer abcdefghijklmnopqrstuvwxyz',
    'DPoP Kz~8qAe-1',
    'dpop abcdefgh+1',
    'Dpop abcdefgh+1',
    'DPOP abcdefgh=1',
    'Basic dXNlcjpwYXNzd29yZA==',
    'basic dXNlcjpwYXNzd29yZA==',
    'BASIC dXNlcjpwYXNzd29yZA==',
    'Authorization:\tBearer\tabc.def.ghi1',
  ],
  aws: [SECRETS.aws, 'ASIAIOSFODNN7EXAMPLE'],
  github: ['p', 'o', 'u', 's', 'r'].map((c) => `gh${c}_abcdefghijklmnopqrstuvwxyz0123456789`),
  'github-pat': ['github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz_0123'],
  slack: ['a', 'b', 'p', 'o', 's', 'r'].map((c) => `xox${c}-1234567890-abcdef`),
  stripe: ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_'].map((p) => `${p}abcdefghijklmnop1234`),
  sk: [SECRETS.openai, 'sk-ant-api03-abcdefghijklmnopqrstuvwx', 'sk-abcdefghijklmnopqrstuvwx'],
  google: ['AIzaSyA1234567890abcdefghijklmnopqrstuv'],
  'key-value': [
    'access_token=abcdef12',
    'accesstoken: abcdef12',
    'refresh_token=abcdef12',
    'refreshToken=abcdef12',
    'id_token=abcdef12',
    'idtoken = abcdef12',
    'api_key=abcdef12',
    'apikey=abcdef12',
    'API_KEY="abcdef12"',
    'token: abcdef',
    'TOKEN=ABCDEF',
    'secret = abcdef',
    'password=hunter22',
    "passwd='abcdef12'",
    'client_secret=abcdef12',
    'sig=abcdef12',
    'Signature=abcdef12',
    `https://x.example/cb?code=abc&access_token=${SECRETS.opaque}&state=s`,
  ],
  'url-credentials': [`postgres://app:${SECRETS.urlPassword}@db:5432/x`, 'https://bob:pa55w0rd@db.example', 'redis://u:p@h', 'HTTPS://Bob:Pw@Host'],
};

test('every secret shape has examples, its hint holds in each match, and each example is redacted, the first time and again (cached)', async () => {
  const { cleanForAudit } = await import('../../src/audit/redact.js');
  assert.deepEqual(Object.keys(SHAPE_EXAMPLES).sort(), SECRET_SHAPES.map((s) => s.name).sort(), 'a new shape needs examples here (and a hint that holds for all of its matches)');
  for (const shape of SECRET_SHAPES) {
    const hint = new RegExp(shape.hint, 'i');
    for (const example of SHAPE_EXAMPLES[shape.name]!) {
      const matches = [...example.matchAll(new RegExp(shape.re.source, shape.re.flags))];
      assert.ok(matches.length > 0, `${shape.name}: the example "${example}" is one of its matches`);
      for (const m of matches) assert.match(m[0], hint, `${shape.name}: its hint is in the match "${m[0]}"`);
      for (const round of ['first', 'again']) {
        const out = scrub(example) as string;
        assert.notEqual(out, example, `${shape.name} (${round}): "${example}" is changed`);
        assert.ok(out.includes(REDACTED), `${shape.name} (${round}): "${example}" -> "${out}"`);
        for (const m of matches) assert.ok(!out.includes(m[0]), `${shape.name} (${round}): the match is gone from "${out}"`);
        assert.equal(JSON.stringify(cleanForAudit({ v: example })), JSON.stringify({ v: out }), `${shape.name} (${round}): cleanForAudit agrees`);
      }
    }
  }
});

test('the cheap first test never lets through a string that a shape would change (randomized, against the shapes applied directly)', async () => {
  const fragments = [
    ...Object.values(SHAPE_EXAMPLES).flat(),
    ...['Bearer ', 'dpop ', 'Basic\t', 'token', '=', ':', ' ', '"', "'", '://', '@', 'u', 'p', '-', '_', '.', '/', 'sk', 'eyJ', 'AKIA', 'ASIA', 'AIza', 'gh', 'xox', 'k_live_', 'abcdefgh', '12345678', 'ABCDEFGHIJKLMNOP', '\n', '-----BEGIN ', 'PRIVATE KEY-----'],
  ];
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let changed = 0;
  for (let i = 0; i < 20_000; i++) {
    let s = '';
    for (let j = rnd(6); j >= 0; j--) {
      const f = fragments[rnd(fragments.length)]!;
      s += rnd(3) === 0 ? f.slice(rnd(f.length)) : f;
    }
    const expected = direct(s);
    if (expected !== s) changed++;
    assert.equal(scrub(s), expected, JSON.stringify(s));
  }
  assert.ok(changed > 5_000, `the sample holds many secrets (${changed})`);
});

test('hex-and-hyphen strings (request ids, trace ids, digests) pass unchanged without entering the scrub cache; no secret shape can match one', async () => {
  const { scrubCacheSize } = await import('../../src/audit/redact.js');
  const { randomUUID } = await import('node:crypto');
  const { prng } = await import('../helpers/prng.js');
  // Fresh ids, one per request in a gateway: nothing to find in them, and no cache entry each.
  scrub('warm-the-cache-up-first');
  const before = scrubCacheSize();
  for (let i = 0; i < 500; i++) {
    const ids = [randomUUID(), randomUUID().toUpperCase(), randomUUID().replace(/-/g, ''), 'deadbeef'.repeat(i % 9 + 1)];
    for (const id of ids) assert.equal(scrub(id), id);
  }
  assert.equal(scrubCacheSize(), before, 'ids seen once do not fill the cache');
  // The shortcut is sound only while no shape can match a string made of 0-9, a-f, A-F and '-':
  // a new shape whose hint or pattern can fails here.
  const rand = prng(0x5eed);
  const alphabet = '0123456789abcdefABCDEF-';
  const samples: string[] = ['-----', '-'.repeat(80), 'BEEF-----BEEF', 'aBcDeF-'.repeat(20)];
  for (let i = 0; i < 5000; i++) {
    let t = '';
    const n = 1 + Math.floor(rand() * 96);
    for (let k = 0; k < n; k++) t += rand() < 0.2 ? '-----'.slice(0, 1 + Math.floor(rand() * 5)) : alphabet[Math.floor(rand() * alphabet.length)];
    samples.push(t);
  }
  for (const shape of SECRET_SHAPES) {
    const hint = new RegExp(shape.hint, 'i');
    const re = new RegExp(shape.re.source, shape.re.flags.replace('g', ''));
    for (const t of samples) {
      assert.ok(!hint.test(t), `${shape.name}: its hint matches the hex string "${t}"`);
      assert.ok(!re.test(t), `${shape.name}: it matches the hex string "${t}"`);
    }
  }
});

test('scrub cache: an answer is never reused for a different string, a secret is redacted every time, and the cache stays bounded', async () => {
  const { scrubCacheSize, cleanForAudit } = await import('../../src/audit/redact.js');
  // Near neighbours, in both orders: the clean one must not take the secret one's answer or back.
  const pairs: Array<[string, string]> = [
    ['token=abcdef', 'token=abcde'],
    ['password=hunter22', 'password hunter22'],
    [SECRETS.aws, SECRETS.aws.toLowerCase()],
    ['Bearer abcdefgh1', 'Bearer abcdefgh'],
  ];
  for (const [secret, clean] of pairs) {
    for (const order of [[secret, clean], [clean, secret], [secret, clean]]) {
      for (const s of order) {
        const out = scrub(s) as string;
        if (s === secret) assert.ok(out.includes(REDACTED) && out !== s, `"${s}" is redacted`);
        else assert.equal(out, s, `"${s}" is left as it is`);
      }
    }
  }
  // Every prefix and suffix of secrets, short to long and long to short: strings that share most
  // of their text each get their own answer.
  for (const secret of ['password=hunter22-battery', `x ${SECRETS.github} y`, 'https://bob:pa55w0rd@db.example/x', `Bearer ${SECRETS.opaque}`]) {
    const parts: string[] = [];
    for (let n = 1; n <= secret.length; n++) parts.push(secret.slice(0, n), secret.slice(-n));
    for (const list of [parts, [...parts].reverse(), parts]) for (const s of list) assert.equal(scrub(s), direct(s), JSON.stringify(s));
  }
  // Strings that are property names on ordinary objects are plain cache entries.
  for (const s of ['__proto__', 'constructor', 'hasOwnProperty', 'toString=abcdefgh', '__proto__=token=abcdefgh']) {
    const first = scrub(s);
    assert.equal(scrub(s), first, s);
    assert.equal(typeof first, 'string');
  }
  assert.equal(scrub('token=__proto__x'), `token=${REDACTED}`);
  // Bounded: far more distinct strings than the cache holds; secrets still redacted after it is dropped.
  for (let i = 0; i < 25_000; i++) {
    const s = `value-${i}-padding`;
    assert.equal(scrub(s), s);
    assert.ok(scrubCacheSize() <= 10_000, `cache size ${scrubCacheSize()}`);
  }
  for (let i = 0; i < 3; i++) assert.equal(scrub(`password=${SECRETS.password}`), `password=${REDACTED}`);
  // Keys: a secret key name or a secret-shaped key is redacted every time it is seen.
  for (let i = 0; i < 3; i++) {
    const out = cleanForAudit({ Password: 'x', [`Bearer ${SECRETS.opaque}`]: 'v', ['k'.repeat(130) + SECRETS.aws]: 1 }) as Record<string, unknown>;
    assert.equal(out.Password, REDACTED);
    assert.equal(out[`Bearer ${REDACTED}`], 'v');
    assertNoSecrets(JSON.stringify(out), `keys, round ${i}`);
  }
});

test('keys ending in token, secret, password or api key are redacted whatever their prefix; look-alike keys stay', () => {
  for (const k of ['github_token', 'slackToken', 'GITLAB-TOKEN', 'db_password', 'stripe_api_key', 'aws_secret', 'my_private_key', 'csrf_token', 'vault_credentials']) {
    assert.ok(isSecretStringKey(k), k);
    for (const out of [cleanForAudit({ [k]: 'zQ8v1mN3pL5rT7wY9aB2' }), scrub({ [k]: 'zQ8v1mN3pL5rT7wY9aB2' })] as Record<string, unknown>[]) assert.equal(out[k], REDACTED, k);
  }
  for (const k of ['max_tokens', 'token_type', 'tokenCount', 'tokens', 'secretary', 'password_policy', 'api_key_id_hint']) assert.ok(!isSecretStringKey(k), k);
  // Only string values: a stage timing whose name ends in "token" is a number and stays.
  const d = cleanForAudit({ durations: { 'identity.bearer-token': 0.5, total: 1 } }) as { durations: Record<string, unknown> };
  assert.equal(d.durations['identity.bearer-token'], 0.5);
});

test('a __proto__ key stays a field of the audit record (it is not turned into a prototype, nor dropped)', () => {
  const args = JSON.parse('{"a":1,"__proto__":{"polluted":true,"password":"hunter2hunter2"}}') as Record<string, unknown>;
  for (const out of [cleanForAudit(args), scrub(args)] as Record<string, unknown>[]) {
    assert.ok(Object.hasOwn(out, '__proto__'), 'kept as an own field');
    assert.equal(Object.getPrototypeOf(out), Object.prototype, 'the prototype is untouched');
    assert.equal((out as { polluted?: unknown }).polluted, undefined);
    const text = JSON.stringify(out);
    assert.match(text, /"__proto__":\{"polluted":true,"password":"\[redacted\]"\}/);
  }
});
