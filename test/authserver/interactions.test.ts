/**
 * Login and consent pages (no auto-login): what a person sees, CSRF, clickjacking headers,
 * escaping; plus the loopback-only rule and the state folder.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { BastionError } from '../../src/errors.js';
import { isLoopbackHost, startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { tempDir } from './helpers.js';

const RESOURCE = 'http://127.0.0.1:8080/mcp/notes';
const REDIRECT = 'http://127.0.0.1:9/callback';

/** A minimal cookie-keeping user agent that does not follow redirects by itself. */
class Browser {
  jar = new Map<string, string>();
  private keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }
  private cookie(): Record<string, string> {
    return this.jar.size ? { cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
  }
  async get(url: string | URL): Promise<Response> {
    const res = await fetch(url, { redirect: 'manual', headers: this.cookie() });
    this.keep(res);
    return res;
  }
  async post(url: string | URL, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...this.cookie(), ...headers },
      body: new URLSearchParams(form),
    });
    this.keep(res);
    return res;
  }
  /** Follows redirects on the AS until a page (200/4xx) or the client's redirect_uri. */
  async follow(res: Response, base: string): Promise<{ res: Response; url: URL }> {
    let url = new URL(res.url || base);
    while (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location')!, url);
      if (url.href.startsWith(REDIRECT)) return { res, url };
      await res.body?.cancel();
      res = await this.get(url);
    }
    return { res, url };
  }
}

function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  assert.ok(m, 'the page carries a CSRF token');
  return m[1]!.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));
}

function assertPageHeaders(res: Response): void {
  assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal(res.headers.get('cache-control'), 'no-store');
}

describe('development authorization server: login and consent pages', () => {
  let as: DevAuthServer;
  let cleanup: () => Promise<void>;
  let clientId: string;
  const prevEnv = process.env.BASTION_DEV_AUTO_LOGIN;

  before(async () => {
    delete process.env.BASTION_DEV_AUTO_LOGIN;
    const tmp = await tempDir('bastion-as-ui-');
    cleanup = tmp.cleanup;
    as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [{ resource: RESOURCE, scopes: ['notes:read', 'notes:write'] }],
      users: [
        { id: 'bob', password: 'correct horse', roles: ['reader'] },
        { id: 'nopass' },
      ],
    });
    const reg = await fetch(as.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Notes <script>alert(1)</script> App',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
      }),
    });
    clientId = ((await reg.json()) as { client_id: string }).client_id;
  });
  after(async () => {
    await as?.close();
    await cleanup?.();
    if (prevEnv !== undefined) process.env.BASTION_DEV_AUTO_LOGIN = prevEnv;
  });

  function authUrl(verifier: string): URL {
    const u = new URL(`${as.issuer}/auth`);
    u.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'notes:read notes:write',
      resource: RESOURCE,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      state: 'st',
    }).toString();
    return u;
  }

  test('login page, CSRF-checked login, consent page naming client, redirect host and scopes, then a code', async () => {
    const b = new Browser();
    const verifier = randomBytes(32).toString('base64url');
    const { res: loginRes, url: loginUrl } = await b.follow(await b.get(authUrl(verifier)), as.issuer);
    assert.equal(loginRes.status, 200);
    assertPageHeaders(loginRes);
    const loginHtml = await loginRes.text();
    assert.match(loginHtml, /Sign in/);
    assert.ok(!loginHtml.includes('<script>alert(1)</script>'), 'client name is escaped');
    const csrf = csrfOf(loginHtml);
    const loginAction = new URL(`${loginUrl.pathname}/login`, as.issuer);

    // Missing or wrong CSRF token: refused before the password is even looked at.
    const noCsrf = await b.post(loginAction, { login: 'bob', password: 'correct horse' });
    assert.equal(noCsrf.status, 403);
    assertPageHeaders(noCsrf);
    const badCsrf = await b.post(loginAction, { login: 'bob', password: 'correct horse', csrf: `${csrf}x` });
    assert.equal(badCsrf.status, 403);
    const crossOrigin = await b.post(loginAction, { login: 'bob', password: 'correct horse', csrf }, { origin: 'http://evil.example' });
    assert.equal(crossOrigin.status, 403);
    // Wrong password and password-less user: refused, same message.
    const wrong = await b.post(loginAction, { login: 'bob', password: 'nope', csrf });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /Unknown user or wrong password/);
    const nopass = await b.post(loginAction, { login: 'nopass', password: '', csrf });
    assert.equal(nopass.status, 401);

    const ok = await b.post(loginAction, { login: 'bob', password: 'correct horse', csrf });
    assert.equal(ok.status, 303);
    const { res: consentRes, url: consentUrl } = await b.follow(ok, as.issuer);
    assert.equal(consentRes.status, 200);
    assertPageHeaders(consentRes);
    const consentHtml = await consentRes.text();
    assert.match(consentHtml, /Allow access\?/);
    assert.match(consentHtml, /Notes &#60;script&#62;alert\(1\)&#60;&#47;script&#62; App/, 'names the client, escaped');
    assert.ok(consentHtml.includes(escape(clientId)), 'shows the client id');
    assert.match(consentHtml, /127\.0\.0\.1:9/, 'names the redirect host');
    assert.match(consentHtml, /notes:read/);
    assert.match(consentHtml, /notes:write/);
    assert.ok(!consentHtml.includes('(your identity)'), 'mount scopes are not shown as identity scopes');
    assert.match(consentHtml, new RegExp(escape(RESOURCE).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const consentCsrf = csrfOf(consentHtml);
    const confirm = new URL(`${consentUrl.pathname}/confirm`, as.issuer);

    const forged = await b.post(confirm, {});
    assert.equal(forged.status, 403, 'consent without the CSRF token is refused');
    const forgedOrigin = await b.post(confirm, { csrf: consentCsrf }, { origin: 'http://evil.example' });
    assert.equal(forgedOrigin.status, 403);
    // A token from another interaction does not work either.
    assert.notEqual(consentCsrf, csrf);
    const otherToken = await b.post(confirm, { csrf });
    assert.equal(otherToken.status, 403);

    const allowed = await b.post(confirm, { csrf: consentCsrf });
    const { url: back } = await b.follow(allowed, as.issuer);
    assert.equal(back.searchParams.get('state'), 'st');
    const code = back.searchParams.get('code');
    assert.ok(code);
    const tok = await fetch(as.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: RESOURCE }),
    });
    const body = (await tok.json()) as { access_token: string };
    const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(as.jwksUri)), { audience: RESOURCE, issuer: as.issuer });
    assert.equal(payload.sub, 'bob');
    assert.deepEqual(payload.roles, ['reader']);
  });

  test('deny sends access_denied back to the client', async () => {
    const b = new Browser();
    const { res, url } = await b.follow(await b.get(authUrl(randomBytes(32).toString('base64url'))), as.issuer);
    const csrf = csrfOf(await res.text());
    const ok = await b.post(new URL(`${url.pathname}/login`, as.issuer), { login: 'bob', password: 'correct horse', csrf });
    const { res: consentRes, url: consentUrl } = await b.follow(ok, as.issuer);
    const consentCsrf = csrfOf(await consentRes.text());
    const denied = await b.post(new URL(`${consentUrl.pathname}/abort`, as.issuer), { csrf: consentCsrf });
    const { url: back } = await b.follow(denied, as.issuer);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('code'), null);
  });

  test('without auto-login a headless client stops at the login page with a clear error', async () => {
    const { followAuthorizationRedirects } = await import('../../src/authserver/headless.js');
    await assert.rejects(followAuthorizationRedirects(authUrl('x'.repeat(43)), REDIRECT), /--auto-login/);
  });

  test('an interaction page without its cookie is refused', async () => {
    const b = new Browser();
    const { url } = await b.follow(await b.get(authUrl(randomBytes(32).toString('base64url'))), as.issuer);
    const stranger = await fetch(new URL(url.pathname, as.issuer));
    assert.equal(stranger.status, 400);
    assertPageHeaders(stranger);
  });
});

function escape(s: string): string {
  return String(s).replace(/[&<>"'`=/]/g, (c) => `&#${c.charCodeAt(0)};`);
}

describe('development authorization server: listen address and state folder', () => {
  test('isLoopbackHost', () => {
    for (const h of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '128.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  });

  test('binding beyond loopback is refused unless unsafeExpose, and the error says why', async () => {
    const tmp = await tempDir('bastion-as-bind-');
    try {
      for (const host of ['0.0.0.0', '::']) {
        await assert.rejects(
          startDevAuthServer({ host, stateDir: tmp.dir, resources: [{ resource: RESOURCE, scopes: ['a'] }], users: [] }),
          (err: unknown) => {
            assert.ok(err instanceof BastionError);
            assert.equal(err.code, 'ERR_BASTION_CONFIG_INVALID');
            assert.match(err.message, /not a loopback address/);
            assert.match(err.message, /--unsafe-expose/);
            return true;
          },
        );
      }
    } finally {
      await tmp.cleanup();
    }
  });

  test('an auto-login user that does not exist is refused at start', async () => {
    const tmp = await tempDir('bastion-as-al-');
    try {
      await assert.rejects(
        startDevAuthServer({ stateDir: tmp.dir, resources: [{ resource: RESOURCE, scopes: ['a'] }], users: [{ id: 'alice' }], autoLogin: 'mallory' }),
        /auto-login user "mallory" is not one of the dev users/,
      );
    } finally {
      await tmp.cleanup();
    }
  });

  test('DNS rebinding: a request for another Host name is refused (421)', async () => {
    const tmp = await tempDir('bastion-as-host-');
    const as = await startDevAuthServer({ stateDir: tmp.dir, resources: [{ resource: RESOURCE, scopes: ['a'] }], users: [{ id: 'alice' }], autoLogin: 'alice' });
    try {
      const status = (host: string) =>
        new Promise<number>((resolve, reject) => {
          request({ host: '127.0.0.1', port: as.port, path: '/.well-known/oauth-authorization-server', headers: { host } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
            .on('error', reject)
            .end();
        });
      assert.equal(await status(`evil.example:${as.port}`), 421);
      assert.equal(await status('127.0.0.1'), 421, 'port must match');
      assert.equal(await status(`127.0.0.1:${as.port}`), 200);
      assert.equal(await status(`localhost:${as.port}`), 200);
    } finally {
      await as.close();
      await tmp.cleanup();
    }
  });

  test('a tls_client_auth client without https + ca is refused at start, saying what to set', async () => {
    const tmp = await tempDir('bastion-as-tls-');
    try {
      await assert.rejects(
        startDevAuthServer({
          stateDir: tmp.dir,
          resources: [{ resource: RESOURCE, scopes: ['a'] }],
          users: [],
          clients: [{ clientId: 'bot', auth: { method: 'tls_client_auth', subjectDn: 'CN=bot' } }],
        }),
        /bot uses tls_client_auth.*set https \{cert, key, ca\}/,
      );
    } finally {
      await tmp.cleanup();
    }
  });

  test('keys are generated once, kept 0600 in a 0700 folder, and reused on restart', async () => {
    const tmp = await tempDir('bastion-as-state-');
    const stateDir = join(tmp.dir, 'authserver');
    try {
      const opts = { stateDir, resources: [{ resource: RESOURCE, scopes: ['a'] }], users: [] };
      const first = await startDevAuthServer(opts);
      const jwks1 = await (await fetch(first.jwksUri)).json();
      await first.close();
      assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
      for (const f of ['jwks.json', 'secrets.json', 'dev-client.json']) {
        assert.equal((await stat(join(stateDir, f))).mode & 0o777, 0o600, f);
      }
      const stored = JSON.parse(await readFile(join(stateDir, 'jwks.json'), 'utf8')) as { keys: { d?: string }[] };
      assert.ok(stored.keys.every((k) => typeof k.d === 'string'), 'private keys are kept');
      const second = await startDevAuthServer(opts);
      const jwks2 = (await (await fetch(second.jwksUri)).json()) as { keys: { d?: string }[] };
      await second.close();
      assert.deepEqual(jwks2, jwks1, 'same keys after restart');
      assert.ok(jwks2.keys.every((k) => k.d === undefined), 'the JWKS endpoint publishes public keys only');
    } finally {
      await tmp.cleanup();
    }
  });
});
