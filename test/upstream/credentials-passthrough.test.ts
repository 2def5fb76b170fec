/**
 * No token passthrough, through the running gateway: a spy upstream records every HTTP request
 * the gateway makes. The client's Authorization, DPoP proof, cookies and session id never
 * arrive; each credential mode sends what it should instead.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startSpyUpstream, type SpyUpstream } from '../fixtures/spy-upstream.js';
import { parseConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/server.js';
import { identityStage } from '../../src/stages/identity/authenticate.js';
import type { TokenVerifier } from '../../src/identity/verifier.js';
import { createLogger } from '../../src/logger.js';


const CLIENT_TOKEN = 'client-access-token-must-never-reach-upstream';
const DPOP_PROOF = 'eyJhbGciOiJFUzI1NiJ9.client-dpop-proof.sig';
const COOKIE = 'sid=client-cookie-value';
const API_KEY = 'upstream-api-key-1234567890';
const CLIENT_SECRET = 'gateway-client-secret-abcdef';

let spy: SpyUpstream;
let as: Server;
let tokenUrl = '';
const asForms: URLSearchParams[] = [];
let gateway: Gateway | undefined;

before(async () => {
  spy = await startSpyUpstream();
  as = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      asForms.push(form);
      const ok = req.headers.authorization === `Basic ${Buffer.from(`gateway:${CLIENT_SECRET}`).toString('base64')}`;
      const send = (s: number, b: unknown): void => void res.writeHead(s, { 'content-type': 'application/json' }).end(JSON.stringify(b));
      if (!ok) return send(401, { error: 'invalid_client' });
      if (form.get('grant_type') === 'client_credentials') return send(200, { access_token: 'gateway-own-cc-token', token_type: 'Bearer', expires_in: 3600 });
      if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange' && form.get('subject_token') === CLIENT_TOKEN) {
        return send(200, { access_token: 'exchanged-token-for-upstream', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 600 });
      }
      return send(400, { error: 'invalid_grant' });
    });
  });
  await new Promise<void>((r) => as.listen(0, '127.0.0.1', r));
  tokenUrl = `http://127.0.0.1:${(as.address() as AddressInfo).port}/token`;

  const open = { defaultTool: 'allow', defaultResource: 'allow', defaultPrompt: 'allow' } as const;
  const clientSecret = { env: 'PASSTHROUGH_TEST_CLIENT_SECRET' };
  process.env.PASSTHROUGH_TEST_CLIENT_SECRET = CLIENT_SECRET;
  process.env.PASSTHROUGH_TEST_API_KEY = API_KEY;
  const loaded = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    servers: {
      plain: { http: { url: spy.url }, ...open },
      header: { http: { url: spy.url, credentials: { type: 'header', name: 'X-Api-Key', env: 'PASSTHROUGH_TEST_API_KEY' } }, ...open },
      cc: { http: { url: spy.url, credentials: { type: 'client_credentials', tokenUrl, clientId: 'gateway', clientSecret } }, ...open },
      tx: {
        http: { url: spy.url, credentials: { type: 'token_exchange', tokenUrl, clientId: 'gateway', clientSecret, audience: 'spy' } },
        auth: { required: true },
        ...open,
      },
    },
  });
  // A verifier that accepts exactly CLIENT_TOKEN for any mount (the identity layer has its own tests).
  const verifier: TokenVerifier = {
    verify: async (token: string, resource: string) => {
      if (token !== CLIENT_TOKEN) throw new Error('unknown token');
      return {
        kind: 'opaque' as const, issuer: 'https://as.test', claims: { sub: 'alice' }, audiences: [resource], extraAudiences: [], scopes: [],
        subject: 'alice', clientId: 'client', tokenId: undefined, expiresAt: undefined, issuedAt: undefined, jkt: undefined, x5t: undefined, tokenHash: 'h',
      };
    },
  };
  gateway = await startGateway(loaded, {
    logger: createLogger('silent'),
    stages: (env) => [identityStage({ config: env.config, store: env.store, audit: env.audit, verifier })],
  });
});

after(async () => {
  await gateway?.close();
  await spy?.close();
  if (as) await new Promise<void>((r) => as.close(() => r()));
});

/** Connect as a client that sends its own token, a DPoP header and a cookie, and call headers_seen. */
async function callThrough(mount: string): Promise<{ seen: Record<string, string>; downstreamSession: string | undefined }> {
  const headers: Record<string, string> = { authorization: `Bearer ${CLIENT_TOKEN}`, dpop: DPOP_PROOF, cookie: COOKIE };
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway!.url}/mcp/${mount}`), { requestInit: { headers } });
  const client = new Client({ name: 'passthrough-test', version: '0' });
  await client.connect(transport);
  try {
    const r = await client.callTool({ name: 'headers_seen', arguments: {} });
    const text = (r.content as { type: string; text: string }[])[0]!.text;
    return { seen: JSON.parse(text) as Record<string, string>, downstreamSession: transport.sessionId };
  } finally {
    await client.close();
  }
}

function assertNoClientCredentials(label: string, downstreamSession: string | undefined): void {
  assert.ok(spy.requests.length > 0, `${label}: the spy saw no requests`);
  for (const r of spy.requests) {
    const all = JSON.stringify(r.headers);
    assert.ok(!all.includes(CLIENT_TOKEN), `${label}: the client's token reached the upstream (${r.method} ${r.rpc.join(',')})`);
    assert.equal(r.headers.dpop, undefined, `${label}: a DPoP header reached the upstream`);
    assert.ok(!all.includes(DPOP_PROOF), `${label}: the DPoP proof reached the upstream`);
    assert.equal(r.headers.cookie, undefined, `${label}: a cookie reached the upstream`);
    if (downstreamSession) assert.notEqual(r.headers['mcp-session-id'], downstreamSession, `${label}: the downstream session id reached the upstream`);
  }
}

test('no credentials configured: nothing of the client reaches the upstream, and no Authorization at all', async () => {
  spy.requests.length = 0;
  const { seen, downstreamSession } = await callThrough('plain');
  assertNoClientCredentials('plain', downstreamSession);
  assert.equal(seen.authorization, undefined);
  for (const r of spy.requests) assert.equal(r.headers.authorization, undefined);
});

test('header credential: the upstream gets its API key, not the client token', async () => {
  spy.requests.length = 0;
  const { seen, downstreamSession } = await callThrough('header');
  assertNoClientCredentials('header', downstreamSession);
  assert.equal(seen['x-api-key'], API_KEY);
  for (const r of spy.requests) assert.equal(r.headers['x-api-key'], API_KEY, `${r.method} ${r.rpc.join(',')} lacks the API key`);
});

test("client_credentials: the upstream gets the gateway's own token", async () => {
  spy.requests.length = 0;
  const { seen, downstreamSession } = await callThrough('cc');
  assertNoClientCredentials('cc', downstreamSession);
  assert.equal(seen.authorization, 'Bearer gateway-own-cc-token');
  for (const r of spy.requests) assert.equal(r.headers.authorization, 'Bearer gateway-own-cc-token');
});

test("token exchange: the client's verified token is exchanged; only the exchanged token reaches the upstream", async () => {
  spy.requests.length = 0;
  asForms.length = 0;
  const { seen, downstreamSession } = await callThrough('tx');
  assertNoClientCredentials('tx', downstreamSession);
  assert.equal(seen.authorization, 'Bearer exchanged-token-for-upstream');
  const exchange = asForms.find((f) => f.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange');
  assert.ok(exchange, 'the gateway asked the authorization server for a token exchange');
  assert.equal(exchange.get('subject_token'), CLIENT_TOKEN);
  assert.equal(exchange.get('audience'), 'spy');
});
