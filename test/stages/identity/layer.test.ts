import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../../../src/config/load.js';
import { createIdentityLayer } from '../../../src/stages/identity/layer.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import { memoryAudit } from '../../identity/fixtures.js';
import { makePki } from '../../tls/certs.js';

test('identity layer: metadata routes over HTTP, HSTS header, stage, unsafe config refused', async () => {
  const pki = makePki();
  try {
    const loaded = parseConfig({
      publicUrl: 'https://gw.example.com',
      servers: { files: { stdio: { command: 'x' }, auth: { scopes: ['mcp:read'] } } },
      auth: { issuers: [{ issuer: 'https://as.example', jwksUri: 'https://as.example/jwks' }] },
      tls: { cert: pki.serverCert, key: pki.serverKey },
    });
    const layer = createIdentityLayer(loaded, { watchTls: false });
    assert.deepEqual(layer.responseHeaders, { 'Strict-Transport-Security': 'max-age=31536000; includeSubDomains' });
    assert.equal(layer.tls!.serverOptions.minVersion, 'TLSv1.3');
    const stage = layer.stage({ config: loaded.config, store: new MemoryStateStore(), audit: memoryAudit(), publicUrl: 'https://gw.example.com' });
    assert.equal(stage.name, 'identity.authenticate');
    assert.equal(stage.phase, 'identity');

    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (!layer.routes(req, res, path, { publicUrl: 'https://gw.example.com' })) res.writeHead(404).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const p of ['/.well-known/oauth-protected-resource/mcp/files', '/.well-known/oauth-protected-resource']) {
        const r = await fetch(base + p);
        assert.equal(r.status, 200);
        const doc = (await r.json()) as Record<string, unknown>;
        assert.equal(doc['resource'], 'https://gw.example.com/mcp/files');
        assert.deepEqual(doc['authorization_servers'], ['https://as.example']);
        assert.deepEqual(doc['bearer_methods_supported'], ['header']);
      }
      assert.equal((await fetch(`${base}/.well-known/oauth-protected-resource/mcp/nope`)).status, 404);
      assert.equal((await fetch(`${base}/.well-known/oauth-protected-resource/mcp/files`, { method: 'POST' })).status, 404);
    } finally {
      server.close();
      layer.close();
    }

    assert.throws(
      () => createIdentityLayer(parseConfig({ listen: { host: '0.0.0.0', port: 0 }, publicUrl: 'https://gw', servers: { a: { stdio: { command: 'x' } } } })),
      /allowUnauthenticated/,
    );
  } finally {
    pki.cleanup();
  }
});
