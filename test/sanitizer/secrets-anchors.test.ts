/**
 * The anchored search (rules tried only where a match can start, and the assignment gate for the
 * vendor-token and high-entropy rules) finds exactly what trying every rule at every position
 * finds. Seeded random texts built from the pieces secrets are made of, plus long texts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prng } from '../helpers/prng.js';
import { readFileSync } from 'node:fs';
import { findSecrets, findSecretsEveryPosition, HintScan, secretHintsPresent } from '../../src/sanitizer/secrets.js';


const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-.=~';

function token(rand: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

const WORDS = [
  'api_key', 'API-KEY', 'apikey', 'secret', 'client_secret', 'secretKey', 'token', 'AUTH_TOKEN', 'auth', 'password', 'passwd', 'pwd', 'pass',
  'credential', 'credentials', 'encryption_key', 'private.key', 'session-token', 'my_app', 'x', 'foo', 'bar.baz', 'public_key', 'next_token', 'id',
  'sourcegraph', 'GITHUB', 'github_token', 'slack', 'aws', 'AWS_SECRET_ACCESS_KEY', 'stripe', 'openai', 'export', 'const', 'set', '--', '-',
  'postgres', 'https', '://', 'user', 'host.example', '@', ':', '=', ':=', '=>', ' ', '  ', '\t', '\n', '\r\n', '"', "'", '`', '\\', '\\"', ',', ';',
  '{', '}', '[', ']', '(', ')', '<', '>', '?', '&', '/', '#', 'AKIAIOSFODNN7EXAMPLE', 'ghp_', 'xoxb-', 'AIza', 'sk-', 'Bearer', 'Authorization',
];

function randomText(rand: () => number): string {
  const n = 3 + Math.floor(rand() * 60);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.04) {
      // A credential URL with a scheme of 1 to 25 characters (the rule takes 2 to 21).
      const scheme = 'abcdefghijklmnopqrstuvwxyz+.-0123456789'.slice(0, 1 + Math.floor(rand() * 25));
      s += `${rand() < 0.5 ? ' ' : '_'}${scheme}://${token(rand, 3 + Math.floor(rand() * 8))}:${token(rand, 3 + Math.floor(rand() * 20))}@db.example`;
    } else if (r < 0.2) s += token(rand, 4 + Math.floor(rand() * 60));
    else if (r < 0.25) s += 'a'.repeat(35 + Math.floor(rand() * 20)); // names near the 40-character bound
    else s += WORDS[Math.floor(rand() * WORDS.length)];
  }
  return s;
}

test('anchored search = every-position search on 30,000 random texts', () => {
  const rand = prng(20261126);
  let withSecrets = 0;
  for (let i = 0; i < 30_000; i++) {
    const text = randomText(rand);
    const expected = findSecretsEveryPosition(text);
    assert.deepEqual(findSecrets(text), expected, `text #${i}: ${JSON.stringify(text)}`);
    if (expected.length > 0) withSecrets++;
  }
  // The texts must exercise the rules, or the comparison proves nothing.
  assert.ok(withSecrets > 3_000, `only ${withSecrets} texts had a secret`);
});

test('anchored search = every-position search on long texts (source files, a lockfile, concatenated random texts)', () => {
  const rand = prng(7);
  const texts = [readFileSync('README.md', 'utf8'), readFileSync('src/server.ts', 'utf8'), readFileSync('package-lock.json', 'utf8').slice(0, 200_000)];
  for (let i = 0; i < 20; i++) {
    let t = '';
    while (t.length < 20_000) t += randomText(rand);
    texts.push(t);
  }
  for (const text of texts) assert.deepEqual(findSecrets(text), findSecretsEveryPosition(text));
});

test('the gate skips nothing it must not: an assignment with a long value after backslashes and quotes is still found', () => {
  const value = 'q8Zr2Lk9Vx3Tn7Hw5Pj1Bc6Md4Fs0Ga';
  for (const text of [`{"config": "{\\\\"sourcegraph_token\\\\": \\\\"${value}0f3e\\\\"}"}`, `SOURCEGRAPH_TOKEN=${value}`, `my_setting = "${value}"`, `x:=${value}`, `y => '${value}'`]) {
    assert.deepEqual(findSecrets(text), findSecretsEveryPosition(text), text);
  }
  assert.ok(findSecrets(`SOURCEGRAPH_TOKEN=${value}`).length > 0);
  // JSON inside a JSON string: the colon is followed by a backslash, not a space or a quote.
  const nested = `{"cfg":"{\\"sourcegraph_token\\":\\"${value}0f3e\\"}"}`;
  assert.deepEqual(findSecrets(nested), findSecretsEveryPosition(nested));
  assert.ok(findSecrets(nested).some((m) => m.type === 'vendor-token'), nested);
});

test('the one-scan hint search finds exactly the hints `includes` finds, in random and long texts and past its stop budget', () => {
  const rand = prng(11);
  const texts: string[] = [readFileSync('README.md', 'utf8'), readFileSync('src/sanitizer/secrets.ts', 'utf8')];
  for (let i = 0; i < 3000; i++) texts.push(randomText(rand));
  // A short hint over and over (more stops than the budget), then the other hints.
  const all = secretHintsPresent('').all;
  texts.push(`${'gh '.repeat(100)}${all.cased.join(' ')}`, `${'s.'.repeat(200)}sk-ant-`, `${'sk-'.repeat(80)}sk-ant-x`);
  let many = 0;
  for (const text of texts) {
    const got = secretHintsPresent(text);
    const lower = text.toLowerCase();
    assert.deepEqual(got.cased, all.cased.filter((h) => text.includes(h)), JSON.stringify(text.slice(0, 200)));
    assert.deepEqual(got.lower, all.lower.filter((h) => lower.includes(h)), JSON.stringify(text.slice(0, 200)));
    if (got.cased.length + got.lower.length > 3) many++;
  }
  assert.ok(many > 500, `only ${many} texts held more than three hints`);
});

test('HintScan: hints that are prefixes of each other, overlapping occurrences, and the switch to one search per hint', () => {
  const rand = prng(5);
  for (const hints of [['a', 'ab', 'abc', 'b', 'bcd', 'cd', 'dd'], ['abc', 'ab', 'a', 'dd', 'cd', 'bcd', 'b'], ['x-', 'x-y-', 'y', '.', 'y.']]) {
    for (const maxStops of [0, 1, 3, 64]) {
      const scan = new HintScan(hints, maxStops);
      const chars = [...new Set(hints.join(''))].join('') + 'z';
      for (let i = 0; i < 2000; i++) {
        let t = '';
        for (let n = Math.floor(rand() * 30); n > 0; n--) t += chars[Math.floor(rand() * chars.length)];
        assert.deepEqual([...scan.present(t)].sort(), hints.filter((h) => t.includes(h)).sort(), `${JSON.stringify(hints)} stops ${maxStops}: ${JSON.stringify(t)}`);
      }
    }
  }
});
