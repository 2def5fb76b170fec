import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { httpCredentialsSchema } from '../../src/config/upstream-hygiene.js';
import { createCredentials } from '../../src/upstream/credentials.js';
import { isBastionError, toWire } from '../../src/errors.js';

const CLIENT_SECRET = 'cs-Very-Secret-0123456789';
const API_KEY = 'ak-Upstream-Key-9876543210';
const SUBJECT = 'client-access-token-AAAA';
const UPSTREAM = 'https://upstream.example/mcp';

/** A real local authorization server: records requests, answers per `mode`. */
interface AsRequest {
  auth: string | undefined;
  form: URLSearchParams;
}
let as: Server;
let tokenUrl = '';
const seen: AsRequest[] = [];
let mode: 'ok' | 'refuse' | 'echo-subject' | 'slow' = 'ok';
let issued = 0;
let release: (() => void) | undefined;

async function readBody(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += String(c);
  return s;
}

before(async () => {
  as = createServer((req, res) => {
    void (async () => {
      const form = new URLSearchParams(await readBody(req));
      seen.push({ auth: req.headers.authorization, form });
      const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      // Client authentication: Basic or post, with the right secret.
      const basicOk = req.headers.authorization === `Basic ${Buffer.from(`gateway:${CLIENT_SECRET}`).toString('base64')}`;
      const postOk = form.get('client_id') === 'gateway' && form.get('client_secret') === CLIENT_SECRET;
      if (mode === 'refuse' || !(basicOk || postOk)) {
        // A hostile or careless AS echoing what it got: none of this may reach an error message.
        return json(401, { error: 'invalid_client', error_description: `bad secret ${form.get('client_secret') ?? ''} ${req.headers.authorization ?? ''}` });
      }
      if (mode === 'slow') await new Promise<void>((r) => (release = r));
      const grant = form.get('grant_type');
      if (grant === 'client_credentials') {
        return json(200, { access_token: `cc-token-${++issued}`, token_type: 'Bearer', expires_in: 100 });
      }
      if (grant === 'urn:ietf:params:oauth:grant-type:token-exchange') {
        if (form.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:access_token' || !form.get('subject_token')) {
          return json(400, { error: 'invalid_request' });
        }
        const subject = form.get('subject_token')!;
        const token = mode === 'echo-subject' ? subject : `exchanged-for-${form.get('audience')}-${++issued}`;
        return json(200, { access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 600 });
      }
      return json(400, { error: 'unsupported_grant_type' });
    })();
  });
  await new Promise<void>((r) => as.listen(0, '127.0.0.1', r));
  tokenUrl = `http://127.0.0.1:${(as.address() as AddressInfo).port}/token`;
});

after(async () => {
  as.closeAllConnections();
  await new Promise<void>((r) => as.close(() => r()));
});

function reset(m: typeof mode = 'ok'): void {
  seen.length = 0;
  mode = m;
}

/** An error from the credential layer: right code, and no secret anywhere in what could be shown. */
async function rejectsWithout(p: Promise<unknown>, secrets: string[], pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(isBastionError(caught), `expected a BastionError, got ${inspect(caught)}`);
  assert.equal(caught.code, 'ERR_BASTION_UPSTREAM_CREDENTIALS');
  assert.match(caught.message, pattern);
  const shown = [caught.message, String(caught), inspect(caught, { depth: 10 }), JSON.stringify(toWire(caught, 1))].join('\n');
  for (const s of secrets) assert.ok(!shown.includes(s), `the error shows a secret: ${shown}`);
}

const parse = (c: unknown) => httpCredentialsSchema.parse(c);

test('header from an environment variable', async () => {
  const creds = createCredentials(parse({ type: 'header', name: 'X-Api-Key', env: 'UPSTREAM_KEY' }), { env: { UPSTREAM_KEY: API_KEY } });
  assert.deepEqual(await creds.headers({ subjectToken: SUBJECT }), { 'x-api-key': API_KEY });
});

test('header: a missing variable names the variable, not a value', async () => {
  const creds = createCredentials(parse({ type: 'header', name: 'X-Api-Key', env: 'UPSTREAM_KEY' }), { env: { OTHER: API_KEY } });
  await rejectsWithout(creds.headers({}), [API_KEY], /environment variable UPSTREAM_KEY, which is not set/);
});

test('header from a secret file, with prefix; re-read when the file changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'creds-'));
  writeFileSync(join(dir, 'key'), `${API_KEY}\n`);
  let t = 1_000_000;
  const creds = createCredentials(parse({ type: 'header', name: 'Authorization', file: 'key', prefix: 'Bearer ' }), { baseDir: dir, now: () => t });
  assert.deepEqual(await creds.headers({}), { authorization: `Bearer ${API_KEY}` });
  writeFileSync(join(dir, 'key'), 'rotated-key\n');
  utimesSync(join(dir, 'key'), new Date(), new Date(Date.now() + 5000));
  t += 2000;
  assert.deepEqual(await creds.headers({}), { authorization: 'Bearer rotated-key' });
});

test('header: a value with CR/LF is refused (no header injection) without showing it', async () => {
  const evil = `${API_KEY}\r\nX-Injected: 1`;
  const creds = createCredentials(parse({ type: 'header', name: 'X-Api-Key', env: 'K' }), { env: { K: evil } });
  await rejectsWithout(creds.headers({}), [API_KEY, 'X-Injected'], /not allowed in a header/);
});

test('client_credentials: Basic client auth, resource = upstream, token cached', async () => {
  reset();
  const creds = createCredentials(
    parse({ type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' }, scope: 'mcp:tools' }),
    { env: { CS: CLIENT_SECRET }, upstreamUrl: UPSTREAM, now: () => 0 },
  );
  const h1 = await creds.headers({ subjectToken: SUBJECT });
  assert.match(h1.authorization!, /^Bearer cc-token-\d+$/);
  assert.equal((await creds.headers({})).authorization, h1.authorization);
  assert.equal(seen.length, 1, 'second call served from the cache');
  const form = seen[0]!.form;
  assert.equal(form.get('grant_type'), 'client_credentials');
  assert.equal(form.get('resource'), UPSTREAM);
  assert.equal(form.get('scope'), 'mcp:tools');
  assert.equal(form.get('client_secret'), null, 'secret only in the Authorization header with client_secret_basic');
  assert.ok(!form.toString().includes(SUBJECT), "the client's token is never sent in client_credentials");
});

test('client_credentials: refreshed before expiry (skew capped at half the lifetime)', async () => {
  reset();
  let t = 0;
  const creds = createCredentials(
    parse({ type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' }, refreshSkewSeconds: 60, authMethod: 'client_secret_post' }),
    { env: { CS: CLIENT_SECRET }, now: () => t },
  );
  const first = (await creds.headers({})).authorization;
  t = 49_000; // lifetime 100 s, skew min(60, 50) = 50 s: still fresh
  assert.equal((await creds.headers({})).authorization, first);
  t = 50_000; // 50 s before expiry: replaced
  const second = (await creds.headers({})).authorization;
  assert.notEqual(second, first);
  assert.equal(seen.length, 2);
  assert.equal(seen[1]!.form.get('client_secret'), CLIENT_SECRET, 'client_secret_post sends the secret in the body');
});

test('client_credentials: concurrent callers share one token request (single flight)', async () => {
  reset('slow');
  const creds = createCredentials(parse({ type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } }), {
    env: { CS: CLIENT_SECRET },
  });
  const calls = Array.from({ length: 20 }, () => creds.headers({}));
  while (release === undefined) await new Promise((r) => setImmediate(r));
  release();
  release = undefined;
  const all = await Promise.all(calls);
  assert.equal(seen.length, 1);
  assert.equal(new Set(all.map((h) => h.authorization)).size, 1);
  mode = 'ok';
});

test('client_credentials: a refusal reports status and OAuth error code, never the secret or the response body', async () => {
  reset('refuse');
  const creds = createCredentials(parse({ type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } }), {
    env: { CS: CLIENT_SECRET },
    server: 'crm',
  });
  await rejectsWithout(creds.headers({}), [CLIENT_SECRET, Buffer.from(`gateway:${CLIENT_SECRET}`).toString('base64'), 'bad secret'], /"crm".*HTTP 401 \(error=invalid_client\)/);
  // Not cached: the next call asks again.
  mode = 'ok';
  assert.match((await creds.headers({})).authorization!, /^Bearer cc-token/);
});

test('client_credentials: an unreachable token endpoint fails closed with a useful message', async () => {
  const creds = createCredentials(
    parse({ type: 'client_credentials', tokenUrl: 'http://127.0.0.1:1/token', clientId: 'gateway', clientSecret: { env: 'CS' } }),
    { env: { CS: CLIENT_SECRET } },
  );
  await rejectsWithout(creds.headers({}), [CLIENT_SECRET], /token request to http:\/\/127\.0\.0\.1:1\/token failed: connection failed/);
});

test("token exchange: the client's token is the subject, the upstream the audience; only the exchanged token is sent", async () => {
  reset();
  const creds = createCredentials(parse({ type: 'token_exchange', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } }), {
    env: { CS: CLIENT_SECRET },
    upstreamUrl: UPSTREAM,
    now: () => 0,
  });
  const h = await creds.headers({ subjectToken: SUBJECT });
  assert.match(h.authorization!, new RegExp(`^Bearer exchanged-for-${UPSTREAM.replace(/[./]/g, '\\$&')}-\\d+$`));
  assert.ok(!JSON.stringify(h).includes(SUBJECT), 'the original token is never sent upstream');
  const form = seen[0]!.form;
  assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
  assert.equal(form.get('subject_token'), SUBJECT);
  assert.equal(form.get('subject_token_type'), 'urn:ietf:params:oauth:token-type:access_token');
  assert.equal(form.get('requested_token_type'), 'urn:ietf:params:oauth:token-type:access_token');
  assert.equal(form.get('audience'), UPSTREAM);
  assert.equal(form.get('resource'), UPSTREAM);

  // Cached per subject; another subject gets its own exchange.
  assert.deepEqual(await creds.headers({ subjectToken: SUBJECT }), h);
  assert.equal(seen.length, 1);
  const other = await creds.headers({ subjectToken: 'another-client-token' });
  assert.notEqual(other.authorization, h.authorization);
  assert.equal(seen.length, 2);
  // invalidate() forgets that subject's token.
  creds.invalidate({ subjectToken: SUBJECT });
  await creds.headers({ subjectToken: SUBJECT });
  assert.equal(seen.length, 3);
});

test('token exchange: no subject token is an error, not a token-less or passthrough request', async () => {
  reset();
  const creds = createCredentials(parse({ type: 'token_exchange', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' }, audience: 'crm' }), {
    env: { CS: CLIENT_SECRET },
  });
  await rejectsWithout(creds.headers({}), [CLIENT_SECRET], /needs the client's access token/);
  assert.equal(seen.length, 0);
});

test('token exchange: an AS that hands the subject token back is refused (never a passthrough)', async () => {
  reset('echo-subject');
  const creds = createCredentials(parse({ type: 'token_exchange', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } }), {
    env: { CS: CLIENT_SECRET },
  });
  await rejectsWithout(creds.headers({ subjectToken: SUBJECT }), [SUBJECT, CLIENT_SECRET], /unchanged/);
  mode = 'ok';
});

test('check() reads every configured secret up front, without any network request', async () => {
  reset();
  const env = { CS: CLIENT_SECRET };
  for (const c of [
    { type: 'header', name: 'X-Api-Key', env: 'CS' },
    { type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } },
    { type: 'token_exchange', tokenUrl, clientId: 'gateway', clientSecret: { env: 'CS' } },
  ]) {
    createCredentials(parse(c), { env }).check();
    await rejectsWithout(Promise.resolve().then(() => createCredentials(parse(c), { env: {} }).check()), [CLIENT_SECRET], /environment variable CS, which is not set/);
  }
  await rejectsWithout(
    Promise.resolve().then(() => createCredentials(parse({ type: 'header', name: 'X-Api-Key', file: '/nonexistent/secret' }), {}).check()),
    [],
    /file \/nonexistent\/secret cannot be read \(ENOENT\)/,
  );
  assert.equal(seen.length, 0);
});

test('no credentials configured: no headers', async () => {
  assert.deepEqual(await createCredentials(undefined).headers({ subjectToken: SUBJECT }), {});
});
