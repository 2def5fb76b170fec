/**
 * The identity layer through the real gateway (startGateway + createIdentityLayer) with a real
 * issuer stand-in (JWKS over HTTP) and a spy upstream that records every header it receives:
 * challenges and metadata on the wire, a valid token end to end with the SDK client, the
 * client's Authorization/DPoP/Cookie never reaching the upstream, sessions bound to their
 * principal, DPoP proofs (and a replay) over HTTP, and a token for another mount refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, createHash } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint } from 'jose';
import { parseConfig } from '../../../src/config/load.js';
import { startGateway, type Gateway } from '../../../src/server.js';
import { createIdentityLayer, type IdentityLayer } from '../../../src/stages/identity/layer.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createLogger } from '../../../src/logger.js';
import { startSpyUpstream, type SpyUpstream } from '../../fixtures/spy-upstream.js';
import { makeKey, memoryAudit, startIssuer, type TestIssuer } from '../../identity/fixtures.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const silentLogger = () => createLogger('silent');
const INIT = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

async function connectClient(url: string, headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'bastion-identity-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

/** A raw JSON-RPC POST; the body may come back as JSON or as one SSE event. */
async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('identity through the gateway', () => {
  let iss: TestIssuer;
  let spy: SpyUpstream;
  let gw: Gateway;
  let layer: IdentityLayer;
  const audit = memoryAudit();

  before(async () => {
    iss = await startIssuer();
    spy = await startSpyUpstream();
    const loaded = parseConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        log: { level: 'silent' },
        servers: {
          spy: { http: { url: spy.url }, auth: { scopes: ['mcp:read'] } },
          other: { http: { url: spy.url } },
        },
        auth: { issuers: [{ issuer: iss.url, jwksUri: iss.jwksUri }] },
      },
      '(e2e)',
      ROOT,
    );
    layer = createIdentityLayer(loaded);
    gw = await startGateway(loaded, {
      logger: silentLogger(),
      store: new MemoryStateStore(),
      audit,
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
  });

  const mountUrl = (name = 'spy'): string => `${gw.url}/mcp/${name}`;
  const token = (claims: Record<string, unknown> = {}): Promise<string> => iss.mint({ aud: mountUrl(), ...claims });

  test('no token: 401 with the challenge; the metadata it points to is served', async () => {
    const r = await post(mountUrl(), INIT);
    assert.equal(r.status, 401);
    const challenge = r.headers.get('www-authenticate')!;
    const meta = `${gw.url}/.well-known/oauth-protected-resource/mcp/spy`;
    assert.ok(challenge.startsWith(`Bearer scope="mcp:read", resource_metadata="${meta}"`), challenge);
    const doc = (await (await fetch(meta)).json()) as Record<string, unknown>;
    assert.equal(doc['resource'], mountUrl());
    assert.deepEqual(doc['authorization_servers'], [iss.url]);
    assert.deepEqual(doc['scopes_supported'], ['mcp:read']);
  });

  test('a valid token works with the SDK client; the upstream never sees Authorization, DPoP or Cookie', async () => {
    const t = await token();
    const before = spy.requests.length;
    const client = await connectClient(mountUrl(), { authorization: `Bearer ${t}`, cookie: 'session=client-secret-cookie', dpop: 'not-a-proof' });
    try {
      const r = await client.callTool({ name: 'headers_seen', arguments: {} });
      const seen = JSON.parse((r.content as Array<{ text: string }>)[0]!.text) as Record<string, string>;
      assert.equal(seen['authorization'], undefined);
      assert.equal(seen['dpop'], undefined);
      assert.equal(seen['cookie'], undefined);
    } finally {
      await client.close();
    }
    const recorded = JSON.stringify(spy.requests.slice(before).map((x) => x.headers));
    assert.ok(spy.requests.length > before);
    assert.ok(!recorded.includes(t), 'token never forwarded');
    assert.ok(!recorded.includes('client-secret-cookie'), 'cookie never forwarded');
    assert.ok(audit.events.some((e) => e.type === 'auth.succeeded'));
  });

  test('a session created by one principal is refused (404) to another', async () => {
    const alice = await token({ sub: 'alice' });
    const bob = await token({ sub: 'bob' });
    const init = await post(mountUrl(), INIT, { authorization: `Bearer ${alice}` });
    assert.equal(init.status, 200);
    const sid = init.headers.get('mcp-session-id')!;
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    assert.equal((await post(mountUrl(), { jsonrpc: '2.0', method: 'notifications/initialized' }, { ...h, authorization: `Bearer ${alice}` })).status, 202);
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    assert.equal((await post(mountUrl(), list, { ...h, authorization: `Bearer ${alice}` })).status, 200);
    assert.equal((await post(mountUrl(), list, { ...h, authorization: `Bearer ${bob}` })).status, 404);
    assert.equal((await post(mountUrl(), list, h)).status, 401);
  });

  test('a token for another mount, an expired token and a token in the query string are refused', async () => {
    const forOther = await iss.mint({ aud: mountUrl('other') });
    const r = await post(mountUrl(), INIT, { authorization: `Bearer ${forOther}` });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
    assert.equal((await post(mountUrl('other'), INIT, { authorization: `Bearer ${forOther}` })).status, 200);
    const now = Math.floor(Date.now() / 1000);
    const expired = await token({ iat: now - 7200, exp: now - 3600 });
    assert.equal((await post(mountUrl(), INIT, { authorization: `Bearer ${expired}` })).status, 401);
    const q = await post(`${mountUrl()}?access_token=${await token()}`, INIT);
    assert.equal(q.status, 400);
    assert.match(q.headers.get('www-authenticate')!, /error="invalid_request"/);
  });

  test('DPoP over the gateway: a fresh proof works, the same proof replayed is refused', async () => {
    const client = await makeKey('ES256', 'dpop-client');
    const { kid: _k, ...jwk } = client.publicJwk;
    const t = await token({ cnf: { jkt: await calculateJwkThumbprint(client.publicJwk) } });
    const proof = (): Promise<string> =>
      new SignJWT({ htm: 'POST', htu: mountUrl(), iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ath: createHash('sha256').update(t).digest('base64url') })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
        .sign(client.privateKey);
    const p = await proof();
    const ok = await post(mountUrl(), INIT, { authorization: `DPoP ${t}`, dpop: p });
    assert.equal(ok.status, 200);
    const replay = await post(mountUrl(), INIT, { authorization: `DPoP ${t}`, dpop: p });
    assert.equal(replay.status, 401);
    assert.match(replay.headers.get('www-authenticate')!, /DPoP error="invalid_dpop_proof"/);
    const asBearer = await post(mountUrl(), INIT, { authorization: `Bearer ${t}` });
    assert.equal(asBearer.status, 401);
  });
});
