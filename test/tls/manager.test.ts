/**
 * Real TLS connections on 127.0.0.1: TLS 1.3 minimum, client certificates verified against the
 * CA, revoked certificates refused on their next connection after the CRL changes (even when
 * the client tries to resume its TLS session), certificate reload without restart, HSTS, and
 * certificate identity extraction.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, Agent, type Server } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createTlsManager, hstsHeaderValue, verifiedClientCertificate, type TlsManager } from '../../src/tls/manager.js';
import { certificateIdentity, certificateIdentityCache, parseSubjectAltName } from '../../src/identity/certificate.js';
import { parseConfig } from '../../src/config/load.js';
import type { TlsConfig } from '../../src/config/auth.js';
import { makePki, type TestPki } from './certs.js';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

function tlsConfig(patch: Record<string, unknown> = {}): TlsConfig {
  const c = parseConfig({ servers: { a: { stdio: { command: 'x' } } }, tls: { cert: pki.serverCert, key: pki.serverKey, ...patch } }).config;
  return c.tls!;
}

interface Running {
  server: Server;
  manager: TlsManager;
  port: number;
  close(): Promise<void>;
}

async function serve(cfg: TlsConfig, watch = false): Promise<Running> {
  const manager = createTlsManager(cfg, { watch });
  const server = createServer(manager.serverOptions, (req, res) => {
    const cert = verifiedClientCertificate(req.socket as TLSSocket);
    const id = cert ? certificateIdentity(cert) : undefined;
    res.writeHead(200, { 'content-type': 'application/json', ...(manager.hsts ? { 'strict-transport-security': manager.hsts } : {}) });
    res.end(JSON.stringify({ subject: id?.subject ?? null, uris: id?.uris ?? [], thumbprint: id?.thumbprint ?? null, protocol: (req.socket as TLSSocket).getProtocol() }));
  });
  manager.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    manager,
    port: (server.address() as AddressInfo).port,
    async close() {
      manager.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  peerCN: string | undefined;
}

function get(port: number, opts: { cert?: string; key?: string; agent?: Agent; maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        ca: readFileSync(pki.caCert),
        ...(opts.cert ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key!) } : {}),
        ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
        agent: opts.agent ?? false,
      },
      (res) => {
        const peerCN = (res.socket as TLSSocket).getPeerCertificate().subject?.CN as string | undefined;
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(data) as Record<string, unknown>, peerCN }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('HTTPS with TLS 1.3 minimum by default; TLS 1.2 clients are refused', async () => {
  const s = await serve(tlsConfig());
  try {
    const r = await get(s.port);
    assert.equal(r.body['protocol'], 'TLSv1.3');
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    await assert.rejects(get(s.port, { maxVersion: 'TLSv1.2' }));
  } finally {
    await s.close();
  }
});

test('minVersion TLSv1.2 and a cipher list are honoured', async () => {
  const s = await serve(tlsConfig({ minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }));
  try {
    const r = await get(s.port, { maxVersion: 'TLSv1.2' });
    assert.equal(r.body['protocol'], 'TLSv1.2');
  } finally {
    await s.close();
  }
  assert.throws(() => createTlsManager(tlsConfig({ ciphers: 'NO-SUCH-CIPHER' }), { watch: false }));
});

test('hsts header value', () => {
  assert.equal(hstsHeaderValue({ enabled: true, maxAgeSeconds: 600, includeSubDomains: false, preload: true }), 'max-age=600; preload');
  assert.equal(hstsHeaderValue({ enabled: false, maxAgeSeconds: 600, includeSubDomains: true, preload: false }), undefined);
});

test('optional client certificates: none is allowed, a valid one gives an identity, an untrusted one is refused', async () => {
  const s = await serve(tlsConfig({ clientCa: pki.caCert, requestClientCert: true, crl: pki.crl }));
  try {
    const anon = await get(s.port);
    assert.equal(anon.body['subject'], null);
    const r = await get(s.port, { cert: pki.client1Cert, key: pki.client1Key });
    assert.equal(r.body['subject'], 'CN=agent-one,O=Example');
    assert.deepEqual(r.body['uris'], ['spiffe://example.org/ns/prod/sa/agent-one']);
    const der = new X509Certificate(readFileSync(pki.client1Cert)).raw;
    const { createHash } = await import('node:crypto');
    assert.equal(r.body['thumbprint'], createHash('sha256').update(der).digest('base64url'));
    // A self-signed certificate from outside the CA: connection refused, not downgraded to anonymous.
    const other = makePki();
    try {
      await assert.rejects(get(s.port, { cert: other.client1Cert, key: other.client1Key }));
    } finally {
      other.cleanup();
    }
  } finally {
    await s.close();
  }
});

test('required client certificates: a client without one cannot connect', async () => {
  const s = await serve(tlsConfig({ clientCa: pki.caCert, requireClientCert: true }));
  try {
    await assert.rejects(get(s.port));
    const r = await get(s.port, { cert: pki.client2Cert, key: pki.client2Key });
    assert.equal(r.body['subject'], 'CN=agent-two,O=Example');
  } finally {
    await s.close();
  }
});

for (const mode of ['requestClientCert', 'requireClientCert'] as const) {
  test(`revoked client certificate is refused on its next connection after the CRL changes (${mode}, session resumption attempted)`, async () => {
    const local = makePki();
    const cfg = parseConfig({
      servers: { a: { stdio: { command: 'x' } } },
      tls: { cert: local.serverCert, key: local.serverKey, clientCa: local.caCert, crl: local.crl, [mode]: true, reloadIntervalMs: 100 },
    }).config.tls!;
    const s = await serve(cfg, true);
    // An agent that caches TLS sessions, as real clients do.
    const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    const ca = readFileSync(local.caCert);
    const call = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: s.port, path: '/', ca, cert: readFileSync(local.client2Cert), key: readFileSync(local.client2Key), agent },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal(await call(), 200);
      assert.equal(await call(), 200);
      const reloaded = once(s.manager, 'reloaded');
      local.revoke(local.client2Cert);
      await reloaded; // the watcher saw the new CRL
      await assert.rejects(call());
      await assert.rejects(call());
    } finally {
      agent.destroy();
      await s.close();
      local.cleanup();
    }
  });
}

test('certificate and key reload on file change without restart; a broken file keeps the old one', async () => {
  const local = makePki();
  const cfg = parseConfig({
    servers: { a: { stdio: { command: 'x' } } },
    tls: { cert: join(local.dir, 'live.pem'), key: join(local.dir, 'live.key'), reloadIntervalMs: 100 },
  }).config.tls!;
  copyFileSync(local.serverCert, join(local.dir, 'live.pem'));
  copyFileSync(local.serverKey, join(local.dir, 'live.key'));
  const s = await serve(cfg, true);
  const ca = readFileSync(local.caCert);
  const peerCN = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: s.port, path: '/', ca, agent: false }, (res) => {
        resolve((res.socket as TLSSocket).getPeerCertificate().subject.CN as string);
        res.resume();
      });
      req.on('error', reject);
      req.end();
    });
  try {
    assert.equal(await peerCN(), 'localhost');
    const [cert2, key2] = local.issueServer('server2', '127.0.0.1');
    const reloaded = once(s.manager, 'reloaded');
    // Key first then cert: the intermediate state (new key, old cert) fails validation and is skipped.
    copyFileSync(key2, join(local.dir, 'live.key'));
    copyFileSync(cert2, join(local.dir, 'live.pem'));
    await reloaded;
    // The watcher may have fired for the key alone first (mismatch, kept the old context); wait for a good reload.
    let cn = await peerCN();
    while (cn !== '127.0.0.1') {
      await once(s.manager, 'reloaded');
      cn = await peerCN();
    }
    assert.equal(cn, '127.0.0.1');
    // A garbage certificate: reload refused, the server keeps serving the last good one.
    writeFileSync(join(local.dir, 'live.pem'), 'not a certificate');
    assert.equal(s.manager.reload(), false);
    assert.equal(await peerCN(), '127.0.0.1');
  } finally {
    await s.close();
    local.cleanup();
  }
});

test('config: client certificates need a CA; TLS 1.3 is the default minimum', () => {
  assert.throws(() => tlsConfig({ requestClientCert: true }), /clientCa/);
  assert.throws(() => tlsConfig({ crl: pki.crl }), /clientCa/);
  assert.equal(tlsConfig().minVersion, 'TLSv1.3');
});

test('subjectAltName parsing handles quoted values', () => {
  assert.deepEqual(parseSubjectAltName('DNS:a.example, URI:spiffe://x/y, IP Address:127.0.0.1'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'URI', value: 'spiffe://x/y' },
    { type: 'IP Address', value: '127.0.0.1' },
  ]);
  assert.deepEqual(parseSubjectAltName('URI:"http://a/b, DNS:evil", DNS:ok'), [
    { type: 'URI', value: 'http://a/b, DNS:evil' },
    { type: 'DNS', value: 'ok' },
  ]);
});

test('certificate identity cache: each certificate keeps its own identity; a hit is the parsed answer, frozen', () => {
  const identity = certificateIdentityCache(1);
  const peer = (file: string) => ({ raw: new X509Certificate(readFileSync(file)).raw }) as unknown as Parameters<typeof certificateIdentity>[0];
  const one = identity(peer(pki.client1Cert));
  assert.deepEqual(one, certificateIdentity(peer(pki.client1Cert)));
  assert.equal(identity(peer(pki.client1Cert)), one, 'second request with the same certificate: cache hit');
  const two = identity(peer(pki.client2Cert));
  assert.deepEqual(two, certificateIdentity(peer(pki.client2Cert)));
  assert.notEqual(two.thumbprint, one.thumbprint);
  assert.notEqual(two.subject + two.uris.join(), one.subject + one.uris.join());
  // Bounded (1 entry): the first certificate is parsed again, still its own identity.
  assert.deepEqual(identity(peer(pki.client1Cert)), one);
  assert.ok(Object.isFrozen(one) && Object.isFrozen(one.uris) && Object.isFrozen(one.dnsNames));
});
