/**
 * mTLS through the real gateway over HTTPS (startGateway with the identity layer's TLS options):
 * a mount requiring a client certificate, a certificate-bound token used with the right and the
 * wrong certificate, an untrusted certificate, and HSTS on responses.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { parseConfig } from '../../../src/config/load.js';
import { startGateway, type Gateway } from '../../../src/server.js';
import { startGatewayFromConfig } from '../../../src/gateway.js';
import { createIdentityLayer, type IdentityLayer } from '../../../src/stages/identity/layer.js';
import { certificateThumbprint } from '../../../src/identity/certificate.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import { createLogger } from '../../../src/logger.js';
import { startSpyUpstream, type SpyUpstream } from '../../fixtures/spy-upstream.js';
import { memoryAudit, startIssuer, type TestIssuer } from '../../identity/fixtures.js';
import { makePki, type TestPki } from '../../tls/certs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const INIT = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

describe('mTLS through the gateway', () => {
  let iss: TestIssuer;
  let spy: SpyUpstream;
  let pki: TestPki;
  let gw: Gateway;
  let layer: IdentityLayer;

  before(async () => {
    iss = await startIssuer();
    spy = await startSpyUpstream();
    pki = makePki();
    const loaded = parseConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        log: { level: 'silent' },
        servers: {
          certs: { http: { url: spy.url }, auth: { mtls: 'required' } },
          tokens: { http: { url: spy.url } },
        },
        auth: { issuers: [{ issuer: iss.url, jwksUri: iss.jwksUri }] },
        tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert, crl: pki.crl, requestClientCert: true },
      },
      '(e2e)',
      ROOT,
    );
    layer = createIdentityLayer(loaded, { watchTls: false });
    gw = await startGateway(loaded, {
      logger: createLogger('silent'),
      store: new MemoryStateStore(),
      audit: memoryAudit(),
      tls: layer.tls!.serverOptions,
      stages: (env) => [layer.stage(env)],
      routes: (req, res, path, env) => layer.routes(req, res, path, env),
      responseHeaders: layer.responseHeaders,
    });
  });
  after(async () => {
    await gw?.close();
    layer?.close();
    await spy?.close();
    await iss?.close();
    pki?.cleanup();
  });

  function call(mount: string, headers: Record<string, string>, cert?: { cert: string; key: string }): Promise<{ status: number; headers: Record<string, unknown> }> {
    const u = new URL(`${gw.url}/mcp/${mount}`);
    return new Promise((resolveP, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
          ca: readFileSync(pki.caCert),
          ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolveP({ status: res.statusCode!, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(INIT);
    });
  }

  const c1 = (): { cert: string; key: string } => ({ cert: pki.client1Cert, key: pki.client1Key });
  const c2 = (): { cert: string; key: string } => ({ cert: pki.client2Cert, key: pki.client2Key });

  test('HTTPS listener, HSTS, and a mount requiring a client certificate', async () => {
    assert.ok(gw.url.startsWith('https://'));
    const none = await call('certs', {});
    assert.equal(none.status, 401);
    assert.equal(none.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    const ok = await call('certs', {}, c1());
    assert.equal(ok.status, 200);
  });

  test('certificate-bound token: right certificate works, another certificate or none is refused', async () => {
    const thumb = certificateThumbprint(new X509Certificate(readFileSync(pki.client1Cert)).raw);
    const t = await iss.mint({ aud: `${gw.url}/mcp/tokens`, cnf: { 'x5t#S256': thumb } });
    assert.equal((await call('tokens', { authorization: `Bearer ${t}` }, c1())).status, 200);
    const wrong = await call('tokens', { authorization: `Bearer ${t}` }, c2());
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /^Bearer error="invalid_token"/);
    assert.equal((await call('tokens', { authorization: `Bearer ${t}` })).status, 401);
  });

  test('a certificate from an unknown CA does not authenticate', async () => {
    const other = makePki();
    try {
      // Without TlsManager.attach() on the gateway's server the connection is not closed, but the
      // certificate is unverified, so the request is treated as having none.
      const r = await call('certs', {}, { cert: other.client1Cert, key: other.client1Key }).catch(() => ({ status: 0, headers: {} }));
      assert.ok(r.status === 401 || r.status === 0, `status ${r.status}`);
    } finally {
      other.cleanup();
    }
  });
});

describe('mTLS through startGatewayFromConfig (TLS manager attached to the server)', () => {
  let spy: SpyUpstream;
  let pki: TestPki;
  let gw: Gateway;

  before(async () => {
    spy = await startSpyUpstream();
    pki = makePki();
    const loaded = parseConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        log: { level: 'silent' },
        servers: { certs: { http: { url: spy.url }, auth: { mtls: 'required' } } },
        tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert, crl: pki.crl, requestClientCert: true, reloadIntervalMs: 100 },
      },
      '(e2e)',
      ROOT,
    );
    gw = await startGatewayFromConfig(loaded, { logger: createLogger('silent'), audit: memoryAudit(), store: new MemoryStateStore() });
  });
  after(async () => {
    await gw?.close();
    await spy?.close();
    pki?.cleanup();
  });

  function status(cert: { cert: string; key: string } | undefined): Promise<number> {
    const u = new URL(`${gw.url}/mcp/certs`);
    return new Promise((resolveP) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          ca: readFileSync(pki.caCert),
          ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolveP(res.statusCode!));
        },
      );
      req.on('error', () => resolveP(0)); // connection refused or closed by the server
      req.end(INIT);
    });
  }

  test('a certificate from an unknown CA gets its connection closed (not downgraded to anonymous)', async () => {
    const other = makePki();
    try {
      assert.equal(await status({ cert: other.client1Cert, key: other.client1Key }), 0);
      assert.equal(await status(undefined), 401);
      assert.equal(await status({ cert: pki.client1Cert, key: pki.client1Key }), 200);
    } finally {
      other.cleanup();
    }
  });

  test('a client certificate revoked while the gateway runs is refused on a later connection', async () => {
    const c2 = { cert: pki.client2Cert, key: pki.client2Key };
    assert.equal(await status(c2), 200);
    pki.revoke(pki.client2Cert);
    // The CRL file is polled (100 ms here); bounded wait for the new CRL to be in force.
    let s = 200;
    for (let i = 0; i < 100 && s !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await status(c2);
    }
    assert.equal(s, 0, 'revoked certificate refused');
    assert.equal(await status({ cert: pki.client1Cert, key: pki.client1Key }), 200, 'other certificates still work');
  });
});
