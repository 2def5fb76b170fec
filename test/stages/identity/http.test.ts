/**
 * The identity layer wired the way server.ts wires it, over real HTTPS with client certificates:
 * TLS manager options, verifiedClientCertificate() into ctx.http.peerCertificate, the identity
 * stage, toWire() for refusals, the metadata route, HSTS and DPoP-Nonce response headers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate, randomUUID, createHash } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint } from 'jose';
import { toWire } from '../../../src/errors.js';
import { identityStage, IDENTITY_STAGE, type IdentityLocals } from '../../../src/stages/identity/authenticate.js';
import { createMetadataRoute, canonicalResource } from '../../../src/identity/resource.js';
import { certificateThumbprint } from '../../../src/identity/certificate.js';
import { createTlsManager, verifiedClientCertificate, type TlsManager } from '../../../src/tls/manager.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import type { Config } from '../../../src/config/schema.js';
import type { HttpInfo, RequestContext } from '../../../src/pipeline/context.js';
import { makeConfig, makeKey, memoryAudit, startIssuer, type TestIssuer } from '../../identity/fixtures.js';
import { makePki, type TestPki } from '../../tls/certs.js';

let iss: TestIssuer;
let pki: TestPki;
let server: Server;
let manager: TlsManager;
let config: Config;
let port = 0;
let publicUrl = '';

before(async () => {
  iss = await startIssuer();
  pki = makePki();
  config = makeConfig(iss, (c) => {
    c.tls = { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert, crl: pki.crl, requestClientCert: true };
    c.auth.dpop = { nonce: { enabled: true } };
  });
  manager = createTlsManager(config.tls!, { watch: false });
  const stage = identityStage({ config, store: new MemoryStateStore(), audit: memoryAudit(), env: { TEST_INTROSPECTION_SECRET: iss.clientSecret } });
  server = createServer(manager.serverOptions, (req, res) => {
    void (async () => {
      const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
      const base: Record<string, string> = manager.hsts ? { 'strict-transport-security': manager.hsts } : {};
      const prm = req.method === 'GET' ? createMetadataRoute(config, publicUrl)(path) : undefined;
      if (prm) {
        res.writeHead(200, { ...base, ...prm.headers }).end(JSON.stringify(prm.body));
        return;
      }
      const name = path.replace(/^\/mcp\//, '');
      const ctx: RequestContext = {
        requestId: randomUUID(),
        startedAt: 0,
        mount: { name, config: config.servers[name]!, resource: canonicalResource(publicUrl, name) },
        http: {
          method: req.method!,
          path,
          query,
          headers: req.headers,
          remoteAddress: req.socket.remoteAddress ?? '',
          secure: true,
          peerCertificate: verifiedClientCertificate(req.socket as TLSSocket),
          readBody: async () => Buffer.alloc(0),
        } as HttpInfo,
        session: undefined,
        message: undefined,
        principal: undefined,
        decisions: [],
        timings: {},
        locals: {},
      };
      try {
        await stage.onRequest!(ctx);
        const locals = ctx.locals[IDENTITY_STAGE] as IdentityLocals;
        res.writeHead(200, { ...base, ...locals.responseHeaders, 'content-type': 'application/json' }).end(JSON.stringify({ subject: ctx.principal!.subject, authMethod: ctx.principal!.authMethod }));
      } catch (e) {
        const w = toWire(e);
        res.writeHead(w.status, { ...base, ...w.headers, 'content-type': 'application/json' }).end(JSON.stringify(w.body));
      }
    })();
  });
  manager.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  publicUrl = `https://127.0.0.1:${port}`;
});

after(async () => {
  manager.close();
  server.closeAllConnections();
  server.close();
  await iss.close();
  pki.cleanup();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

function call(path: string, headers: Record<string, string> = {}, client?: 'client1' | 'client2', method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        headers,
        ca: readFileSync(pki.caCert),
        ...(client ? { cert: readFileSync(client === 'client1' ? pki.client1Cert : pki.client2Cert), key: readFileSync(client === 'client1' ? pki.client1Key : pki.client2Key) } : {}),
        agent: false,
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(data || '{}') as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const resource = (name = 'files'): string => `${publicUrl}/mcp/${name}`;

test('protected resource metadata is served, and the 401 challenge points to it', async () => {
  const prm = await call('/.well-known/oauth-protected-resource/mcp/files', {}, undefined, 'GET');
  assert.equal(prm.status, 200);
  assert.equal(prm.body['resource'], resource());
  assert.equal(prm.body['tls_client_certificate_bound_access_tokens'], true);
  const r = await call('/mcp/files');
  assert.equal(r.status, 401);
  assert.equal(r.headers['www-authenticate'], `Bearer scope="mcp:read", resource_metadata="https://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp/files", DPoP scope="mcp:read", resource_metadata="https://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp/files", algs="ES256 EdDSA PS256 RS256"`);
  assert.equal(r.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
  assert.equal((r.body['error'] as { code: number }).code, -32001);
});

test('a valid token over HTTPS; mtls+bearer when a client certificate is presented', async () => {
  const t = await iss.mint({ aud: resource() });
  const r = await call('/mcp/files', { authorization: `Bearer ${t}` });
  assert.equal(r.status, 200);
  assert.equal(r.body['authMethod'], 'bearer');
  const m = await call('/mcp/files', { authorization: `Bearer ${t}` }, 'client1');
  assert.equal(m.body['authMethod'], 'mtls+bearer');
});

test('certificate-bound token: works with its certificate over real mTLS, refused with another', async () => {
  const thumb = certificateThumbprint(new X509Certificate(readFileSync(pki.client1Cert)).raw);
  const t = await iss.mint({ aud: resource(), cnf: { 'x5t#S256': thumb } });
  assert.equal((await call('/mcp/files', { authorization: `Bearer ${t}` }, 'client1')).status, 200);
  const other = await call('/mcp/files', { authorization: `Bearer ${t}` }, 'client2');
  assert.equal(other.status, 401);
  assert.match(String(other.headers['www-authenticate']), /^Bearer error="invalid_token"/);
  const none = await call('/mcp/files', { authorization: `Bearer ${t}` });
  assert.equal(none.status, 401);
});

test('token in the query string is refused with 400 invalid_request', async () => {
  const t = await iss.mint({ aud: resource() });
  const r = await call(`/mcp/files?access_token=${t}`);
  assert.equal(r.status, 400);
  assert.match(String(r.headers['www-authenticate']), /error="invalid_request"/);
  assert.ok(!JSON.stringify(r.body).includes(t));
});

test('DPoP over HTTP: nonce challenge, then success with a fresh DPoP-Nonce header', async () => {
  const client = await makeKey('ES256', 'c');
  const { kid: _k, ...jwk } = client.publicJwk;
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const t = await iss.mint({ aud: resource(), cnf: { jkt } });
  const ath = createHash('sha256').update(t).digest('base64url');
  const proof = (nonce?: string) =>
    new SignJWT({ htm: 'POST', htu: resource(), iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath, ...(nonce ? { nonce } : {}) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(client.privateKey);
  const first = await call('/mcp/files', { authorization: `DPoP ${t}`, dpop: await proof() });
  assert.equal(first.status, 401);
  assert.match(String(first.headers['www-authenticate']), /DPoP error="use_dpop_nonce"/);
  const nonce = String(first.headers['dpop-nonce']);
  const ok = await call('/mcp/files', { authorization: `DPoP ${t}`, dpop: await proof(nonce) });
  assert.equal(ok.status, 200);
  assert.equal(ok.body['authMethod'], 'dpop');
  assert.ok(ok.headers['dpop-nonce']);
});
