/**
 * Machine clients of the development authorization server: client_credentials with
 * private_key_jwt, DPoP-bound tokens (cnf.jkt), and mTLS tls_client_auth with
 * certificate-bound tokens (cnf x5t#S256), over real HTTPS with certificates made by openssl.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, X509Certificate, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { makeCerts, postForm, startResourceMetadataServer, tempDir } from './helpers.js';

const NOTES = 'http://127.0.0.1:8080/mcp/notes';
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

async function clientAssertion(clientId: string, key: PrivateKey, kid: string, audience: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(key);
}

async function dpopProof(key: PrivateKey, jwk: JWK, htu: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
    .setIssuedAt()
    .sign(key);
}

describe('development authorization server: client_credentials, private_key_jwt, DPoP', () => {
  let as: DevAuthServer;
  let cleanup: () => Promise<void>;
  let key: PrivateKey;
  let otherKey: PrivateKey;
  let publicJwk: JWK;

  before(async () => {
    const tmp = await tempDir('bastion-as-m-');
    cleanup = tmp.cleanup;
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    otherKey = (await generateKeyPair('ES256')).privateKey;
    publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'reporter-1', alg: 'ES256', use: 'sig' };
    as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [
        { resource: NOTES, scopes: ['notes:read', 'notes:write'] },
        { resource: 'http://127.0.0.1:8080/mcp/files', scopes: ['files:read'] },
      ],
      users: [],
      clients: [
        {
          clientId: 'reporter',
          auth: { method: 'private_key_jwt', jwks: { keys: [publicJwk] } },
          scope: 'notes:read files:read',
          roles: ['bot'],
        },
      ],
    });
  });
  after(async () => {
    await as?.close();
    await cleanup?.();
  });

  test('client_credentials + private_key_jwt -> JWT for the mount, scopes limited to client and mount', async () => {
    const r = await postForm(as.tokenEndpoint, {
      grant_type: 'client_credentials',
      scope: 'notes:read notes:write files:read',
      resource: NOTES,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion('reporter', key, 'reporter-1', as.issuer),
    });
    // notes:write is outside the client's registered scope: refused as a whole (invalid_scope)
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error, 'invalid_scope');

    const ok = await postForm(as.tokenEndpoint, {
      grant_type: 'client_credentials',
      scope: 'notes:read files:read',
      resource: NOTES,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion('reporter', key, 'reporter-1', as.issuer),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.token_type, 'Bearer');
    const { payload, protectedHeader } = await jwtVerify(String(ok.body.access_token), createRemoteJWKSet(new URL(as.jwksUri)), {
      issuer: as.issuer,
      audience: NOTES,
    });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.sub, 'reporter');
    assert.equal(payload.client_id, 'reporter');
    assert.equal(payload.scope, 'notes:read', 'scopes of another mount are dropped');
    assert.deepEqual(payload.roles, ['bot']);
    assert.equal(payload.cnf, undefined, 'not sender-constrained without DPoP or mTLS');
  });

  test('a client assertion signed by another key is refused', async () => {
    const r = await postForm(as.tokenEndpoint, {
      grant_type: 'client_credentials',
      scope: 'notes:read',
      resource: NOTES,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion('reporter', otherKey, 'reporter-1', as.issuer),
    });
    assert.equal(r.status, 401);
    assert.equal(r.body.error, 'invalid_client');
  });

  test('a dynamically registered client cannot get client_credentials (refused at registration)', async () => {
    const reg = await fetch(as.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none', grant_types: ['client_credentials'], response_types: [] }),
    });
    const body = (await reg.json()) as { error?: string; error_description?: string };
    assert.equal(reg.status, 400);
    assert.equal(body.error, 'invalid_client_metadata');
    assert.match(body.error_description ?? '', /pre-registered/);
  });

  test('DPoP: the token is bound to the proof key (cnf.jkt) and typed DPoP', async () => {
    const dpop = await generateKeyPair('ES256', { extractable: true });
    const dpopJwk = await exportJWK(dpop.publicKey);
    const r = await postForm(
      as.tokenEndpoint,
      {
        grant_type: 'client_credentials',
        scope: 'notes:read',
        resource: NOTES,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await clientAssertion('reporter', key, 'reporter-1', as.issuer),
      },
      { dpop: await dpopProof(dpop.privateKey, dpopJwk, as.tokenEndpoint) },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.token_type, 'DPoP');
    const claims = decodeJwt(String(r.body.access_token));
    assert.deepEqual(claims.cnf, { jkt: await calculateJwkThumbprint(dpopJwk) });

    // A proof for another URL is refused.
    const bad = await postForm(
      as.tokenEndpoint,
      {
        grant_type: 'client_credentials',
        scope: 'notes:read',
        resource: NOTES,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await clientAssertion('reporter', key, 'reporter-1', as.issuer),
      },
      { dpop: await dpopProof(dpop.privateKey, dpopJwk, `${as.issuer}/elsewhere`) },
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'invalid_dpop_proof');
  });
});

function httpsPost(
  url: string,
  form: Record<string, string>,
  tls: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams(form).toString();
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        ca: tls.ca,
        ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('development authorization server: mTLS tls_client_auth and certificate-bound tokens', () => {
  let as: DevAuthServer;
  let cleanup: () => Promise<void>;
  let dir: string;
  const file = (n: string) => readFile(join(dir, n));

  before(async () => {
    const tmp = await tempDir('bastion-as-tls-');
    dir = tmp.dir;
    cleanup = tmp.cleanup;
    makeCerts(dir);
    as = await startDevAuthServer({
      stateDir: join(dir, 'state'),
      resources: [{ resource: NOTES, scopes: ['notes:read'] }],
      users: [],
      https: { cert: await file('server.pem'), key: await file('server.key'), ca: await file('ca.pem') },
      clients: [{ clientId: 'billing-bot', auth: { method: 'tls_client_auth', subjectDn: 'CN=billing-bot,O=Example' } }],
    });
  });
  after(async () => {
    await as?.close();
    await cleanup?.();
  });

  test('metadata advertises tls_client_auth and certificate-bound tokens', async () => {
    const res = await new Promise<Record<string, unknown>>((resolve, reject) => {
      void file('ca.pem').then((ca) =>
        request(as.metadataUrl, { ca }, (r) => {
          let t = '';
          r.on('data', (c: Buffer) => (t += c.toString()));
          r.on('end', () => resolve(JSON.parse(t) as Record<string, unknown>));
        })
          .on('error', reject)
          .end(),
      );
    });
    assert.ok((res.token_endpoint_auth_methods_supported as string[]).includes('tls_client_auth'));
    assert.equal(res.tls_client_certificate_bound_access_tokens, true);
    assert.ok(as.issuer.startsWith('https://127.0.0.1:'));
  });

  test('the right certificate gets a token bound to it (cnf x5t#S256)', async () => {
    const cert = await file('bot.pem');
    const r = await httpsPost(
      as.tokenEndpoint,
      { grant_type: 'client_credentials', client_id: 'billing-bot', scope: 'notes:read', resource: NOTES },
      { ca: await file('ca.pem'), cert, key: await file('bot.key') },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const claims = decodeJwt(String(r.body.access_token));
    const thumb = createHash('sha256').update(new X509Certificate(cert).raw).digest('base64url');
    assert.deepEqual(claims.cnf, { 'x5t#S256': thumb });
    assert.equal(claims.aud, NOTES);
    assert.equal(claims.sub, 'billing-bot');
  });

  test('no certificate, a certificate with another subject, or one from an untrusted CA: invalid_client', async () => {
    const ca = await file('ca.pem');
    const form = { grant_type: 'client_credentials', client_id: 'billing-bot', scope: 'notes:read', resource: NOTES };
    const none = await httpsPost(as.tokenEndpoint, form, { ca });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'invalid_client');
    const other = await httpsPost(as.tokenEndpoint, form, { ca, cert: await file('bot2.pem'), key: await file('bot2.key') });
    assert.equal(other.status, 401);
    assert.equal(other.body.error, 'invalid_client');
    const rogue = await httpsPost(as.tokenEndpoint, form, { ca, cert: await file('rogue.pem'), key: await file('rogue.key') });
    assert.equal(rogue.status, 401, 'same subject, untrusted issuer');
    assert.equal(rogue.body.error, 'invalid_client');
  });
});

describe('development authorization server: Client ID Metadata Documents', () => {
  test('an https client_id is fetched as the client metadata; the SDK uses it instead of registering', async () => {
    const { auth } = await import('@modelcontextprotocol/sdk/client/auth.js');
    const { HeadlessOAuthProvider } = await import('./helpers.js');
    const tmp = await tempDir('bastion-as-cimd-');
    const rs = await startResourceMetadataServer({ notes: ['notes:read'] });
    const CLIENT_ID = 'https://client.example/oauth/client.json';
    const REDIRECT = 'http://127.0.0.1:9/cimd-callback';
    const fetched: string[] = [];
    const docs: Record<string, unknown> = {
      [CLIENT_ID]: {
        client_id: CLIENT_ID,
        client_name: 'CIMD client',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      'https://client.example/oauth/liar.json': {
        client_id: 'https://client.example/oauth/someone-else.json',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
      },
    };
    const as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [{ resource: rs.url('notes'), scopes: ['notes:read'] }],
      users: [{ id: 'alice' }],
      autoLogin: 'alice',
      clientMetadataFetch: async (input) => {
        const url = String(input instanceof Request ? input.url : input);
        fetched.push(url);
        const doc = docs[url];
        if (!doc) return new Response('not found', { status: 404 });
        return new Response(JSON.stringify(doc), { status: 200, headers: { 'content-type': 'application/json' } });
      },
    });
    rs.setIssuer(as.issuer);
    try {
      const p = new HeadlessOAuthProvider(REDIRECT, { redirect_uris: [REDIRECT], client_name: 'CIMD client' }, { clientMetadataUrl: CLIENT_ID });
      assert.equal(await auth(p, { serverUrl: rs.url('notes') }), 'REDIRECT');
      assert.equal(await auth(p, { serverUrl: rs.url('notes'), authorizationCode: p.code() }), 'AUTHORIZED');
      assert.equal(p.clientInfo?.client_id, CLIENT_ID, 'no registration: the URL is the client_id');
      assert.ok(fetched.includes(CLIENT_ID));
      const claims = decodeJwt(p.savedTokens!.access_token);
      assert.equal(claims.client_id, CLIENT_ID);
      assert.equal(claims.aud, rs.url('notes'));

      // A document whose client_id is not its own URL is refused.
      const liar = new URL(`${as.issuer}/auth`);
      liar.search = new URLSearchParams({
        client_id: 'https://client.example/oauth/liar.json',
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'notes:read',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString();
      const res = await fetch(liar, { redirect: 'manual' });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('location'), null);
      assert.match(await res.text(), /invalid_client/);
    } finally {
      await as.close();
      await rs.close();
      await tmp.cleanup();
    }
  });
});
