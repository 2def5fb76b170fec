/**
 * Admin API over mTLS: a client without a certificate from admin.tls.clientCa never gets an
 * answer (the TLS handshake is refused); one with such a certificate does. And the config
 * accepts a non-loopback admin listener when mTLS is configured.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { startAdminServer, type AdminServer } from '../../src/admin/server.js';
import { Containment } from '../../src/containment/containment.js';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { createLogger } from '../../src/logger.js';
import { parseConfig } from '../../src/config/load.js';
import { makePki, type TestPki } from '../tls/certs.js';
import { RecordingAudit } from '../stages/authorization/helpers.js';

let pki: TestPki;
let server: AdminServer;
let containment: Containment;

before(async () => {
  pki = makePki();
  containment = new Containment(new MemoryStateStore(), { pollMs: 60_000 });
  await containment.start();
  const { config } = parseConfig({
    servers: { x: { stdio: { command: 'node' } } },
    admin: { listen: { host: '0.0.0.0', port: 0 }, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } },
  });
  // accepted beyond loopback because mTLS is on; bound to loopback for the test
  server = await startAdminServer({
    config: { ...config.admin!, listen: { host: '127.0.0.1', port: 0 } },
    baseDir: process.cwd(),
    containment,
    audit: new RecordingAudit(),
    logger: createLogger('silent'),
  });
});
after(async () => {
  await server?.close();
  await containment?.close();
  pki?.cleanup();
});

function get(path: string, withCert: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1',
      port: server.port,
      path,
      method: 'GET',
      ca: readFileSync(pki.caCert),
      ...(withCert ? { cert: readFileSync(pki.client1Cert), key: readFileSync(pki.client1Key) } : {}),
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('mTLS admin: no client certificate, no answer; a certificate from clientCa gets in', async () => {
  await assert.rejects(get('/quarantine', false));
  assert.equal(await get('/quarantine', true), 200);
  assert.match(server.url, /^https:/);
});
