/**
 * OAuth end to end through the real gateway (startGateway, the identity layer and the policy
 * stage wired as src/stages/identity/layer.ts documents, the demo notes server as a stdio
 * upstream) with the embedded development authorization server as issuer, and the official MCP
 * SDK Client + StreamableHTTPClientTransport + an OAuthClientProvider that follows redirects
 * headlessly (auto-login):
 * - 401 -> protected resource metadata -> AS metadata -> DCR -> PKCE S256 with `resource` ->
 *   token -> tools/list and tools/call;
 * - step-up: write_note needs notes:write -> 403 insufficient_scope -> the SDK re-authorizes
 *   with the wider scope -> the call succeeds;
 * - a refreshed token works; a token for mount A is refused at mount B;
 * - an opaque (introspected) token works until revoked, then is refused;
 * - a machine client (client_credentials + private_key_jwt) calls tools;
 * - a machine client with mTLS (tls_client_auth) gets a certificate-bound token that works with
 *   its certificate and is refused with another one or none.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startGateway, type Gateway } from '../../src/server.js';
import { createIdentityLayer, type IdentityLayer } from '../../src/stages/identity/layer.js';
import { policyStage } from '../../src/stages/authorization/policy.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { HeadlessOAuthProvider, httpsRequest, makeCerts, postForm, tempDir } from '../authserver/helpers.js';
import { demoStdio, silentLogger } from '../helpers/gateway.js';

const REDIRECT = 'http://127.0.0.1:9/e2e-callback';
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Keeps no refresh token, so on 403 the SDK re-authorizes (a refresh cannot widen scopes). */
class StepUpProvider extends HeadlessOAuthProvider {
  override saveTokens(tokens: OAuthTokens): void {
    const { refresh_token: _r, ...rest } = tokens;
    this.savedTokens = rest;
  }
}

const clientMetadata = (name: string, grants = ['authorization_code', 'refresh_token']) => ({
  client_name: name,
  redirect_uris: [REDIRECT],
  grant_types: grants,
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
});

describe('OAuth end to end through the gateway with the development authorization server', () => {
  let as: DevAuthServer;
  let gw: Gateway;
  let identity: IdentityLayer;
  let cleanup: () => Promise<void>;
  let base = '';
  let reporterKey: PrivateKey;
  const introspectionSecret = randomBytes(32).toString('base64url');

  before(async () => {
    const tmp = await tempDir('bastion-e2e-');
    cleanup = tmp.cleanup;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const pair = await generateKeyPair('ES256', { extractable: true });
    reporterKey = pair.privateKey;
    const reporterJwk = { ...(await exportJWK(pair.publicKey)), kid: 'reporter-1', alg: 'ES256', use: 'sig' };
    as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [
        { resource: `${base}/mcp/notes`, scopes: ['notes:read', 'notes:write'] },
        { resource: `${base}/mcp/ledger`, scopes: ['ledger:read'], accessTokenFormat: 'opaque' },
      ],
      users: [{ id: 'alice', roles: ['editor'], groups: ['eng'] }],
      autoLogin: 'alice',
      clients: [
        { clientId: 'reporter', auth: { method: 'private_key_jwt', jwks: { keys: [reporterJwk] } }, scope: 'notes:read' },
        { clientId: 'gateway', auth: { method: 'client_secret_basic', secret: introspectionSecret }, grantTypes: [] },
      ],
    });
    const env = { ...process.env, BASTION_E2E_INTROSPECTION_SECRET: introspectionSecret };
    const loaded = parseConfig(
      {
        listen: { host: '127.0.0.1', port },
        log: { level: 'silent' },
        servers: {
          notes: {
            stdio: demoStdio(),
            defaultTool: 'allow',
            auth: { scopes: ['notes:read'] },
            tools: { write_note: { scopes: ['notes:write'] } },
          },
          ledger: { stdio: demoStdio(), defaultTool: 'allow', auth: { scopes: ['ledger:read'] } },
        },
        auth: {
          issuers: [
            {
              issuer: as.issuer,
              discovery: true,
              introspection: {
                endpoint: as.introspectionEndpoint,
                clientId: 'gateway',
                clientSecret: { env: 'BASTION_E2E_INTROSPECTION_SECRET' },
                cacheMaxSeconds: 0,
              },
            },
          ],
          tokenCache: { maxEntries: 0 },
        },
      },
      '(e2e)',
      process.cwd(),
      env,
    );
    identity = createIdentityLayer(loaded, { env, watchTls: false });
    gw = await startGateway(loaded, {
      logger: silentLogger(),
      routes: (req, res, path, e) => identity.routes(req, res, path, e),
      stages: (e) => [
        identity.stage(e),
        policyStage({ policy: compilePolicy(e.config as Config), audit: e.audit, config: e.config as Config }),
      ],
    });
    assert.equal(gw.url, base);
  });

  after(async () => {
    await gw?.close();
    identity?.close();
    await as?.close();
    await cleanup?.();
  });

  async function connect(provider: HeadlessOAuthProvider, mount = 'notes') {
    const url = new URL(`${base}/mcp/${mount}`);
    let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    let client = new Client({ name: 'e2e', version: '1.0.0' });
    try {
      await client.connect(transport);
    } catch (e) {
      assert.ok(e instanceof UnauthorizedError, `expected UnauthorizedError, got ${String(e)}`);
      await transport.finishAuth(provider.code());
      transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
      client = new Client({ name: 'e2e', version: '1.0.0' });
      await client.connect(transport);
    }
    return { client, transport };
  }

  /** tools/list with a raw bearer token (a fresh session): the status, and the names when 200. */
  async function listWith(mount: string, token: string): Promise<{ status: number; wwwAuthenticate: string | null }> {
    const res = await fetch(`${base}/mcp/${mount}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    });
    await res.body?.cancel();
    return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate') };
  }

  test('the SDK client discovers, registers, authorizes with resource, and calls tools', async () => {
    const provider = new HeadlessOAuthProvider(REDIRECT, clientMetadata('e2e client'));
    const { client } = await connect(provider);
    assert.ok(provider.clientInfo?.client_id, 'registered by DCR');
    const authUrl = provider.authorizationUrls[0]!;
    assert.equal(authUrl.searchParams.get('resource'), `${base}/mcp/notes`);
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    const claims = decodeJwt(provider.savedTokens!.access_token);
    assert.equal(claims.aud, `${base}/mcp/notes`);
    assert.equal(claims.sub, 'alice');

    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'read_note'));
    const list = await client.callTool({ name: 'list_notes', arguments: {} });
    assert.equal(list.isError, undefined);
    await client.close();

    // A refreshed token works too.
    const before = provider.savedTokens!.access_token;
    assert.equal(await auth(provider, { serverUrl: `${base}/mcp/notes` }), 'AUTHORIZED');
    assert.notEqual(provider.savedTokens!.access_token, before);
    assert.equal((await listWith('notes', provider.savedTokens!.access_token)).status, 200);

    // The token of mount notes is refused at mount ledger.
    const other = await listWith('ledger', provider.savedTokens!.access_token);
    assert.equal(other.status, 401);
    assert.match(other.wwwAuthenticate ?? '', /invalid_token/);
  });

  test('step-up: 403 insufficient_scope, re-authorization with the wider scope, then the call succeeds', async () => {
    const provider = new StepUpProvider(REDIRECT, clientMetadata('e2e step-up', ['authorization_code']));
    const { client, transport } = await connect(provider);
    assert.equal(decodeJwt(provider.savedTokens!.access_token).scope, 'notes:read');
    const call = () => client.callTool({ name: 'write_note', arguments: { title: 'e2e', body: 'hello' } });
    await assert.rejects(call(), UnauthorizedError, 'the SDK saw 403 insufficient_scope and started a new authorization');
    const stepUpUrl = provider.authorizationUrls.at(-1)!;
    assert.deepEqual(stepUpUrl.searchParams.get('scope')!.split(' ').sort(), ['notes:read', 'notes:write']);
    await transport.finishAuth(provider.code());
    assert.deepEqual(String(decodeJwt(provider.savedTokens!.access_token).scope).split(' ').sort(), ['notes:read', 'notes:write']);
    const r = await call();
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
    await client.close();
  });

  test('an opaque token is introspected by the gateway, and refused once revoked', async () => {
    const provider = new HeadlessOAuthProvider(REDIRECT, clientMetadata('e2e ledger'));
    const { client } = await connect(provider, 'ledger');
    assert.ok((await client.listTools()).tools.length > 0);
    await client.close();
    const token = provider.savedTokens!.access_token;
    assert.equal(token.split('.').length, 1, 'opaque');
    assert.equal((await listWith('ledger', token)).status, 200);
    const rev = await postForm(as.revocationEndpoint, { token, client_id: provider.clientInfo!.client_id });
    assert.equal(rev.status, 200);
    const after = await listWith('ledger', token);
    assert.equal(after.status, 401);
  });

  test('a machine client with client_credentials + private_key_jwt calls tools', async () => {
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'reporter-1' })
      .setIssuer('reporter')
      .setSubject('reporter')
      .setAudience(as.issuer)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(reporterKey);
    const tok = await postForm(as.tokenEndpoint, {
      grant_type: 'client_credentials',
      scope: 'notes:read',
      resource: `${base}/mcp/notes`,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    const token = String(tok.body.access_token);
    const client = new Client({ name: 'reporter', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp/notes`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const r = await client.callTool({ name: 'list_notes', arguments: {} });
    assert.notEqual(r.isError, true);
    // ...but not write_note (its scope was never granted to this client).
    await assert.rejects(client.callTool({ name: 'write_note', arguments: { title: 'x', body: 'y' } }), /403|insufficient/i);
    await client.close();
  });
});

describe('mTLS machine client with a certificate-bound token through the gateway', () => {
  let as: DevAuthServer;
  let gw: Gateway;
  let identity: IdentityLayer;
  let dir: string;
  let cleanup: () => Promise<void>;
  let base = '';
  const file = (n: string) => readFileSync(join(dir, n));

  before(async () => {
    const tmp = await tempDir('bastion-e2e-tls-');
    dir = tmp.dir;
    cleanup = tmp.cleanup;
    makeCerts(dir);
    const port = await freePort();
    base = `https://127.0.0.1:${port}`;
    as = await startDevAuthServer({
      stateDir: join(dir, 'as'),
      resources: [{ resource: `${base}/mcp/notes`, scopes: ['notes:read'] }],
      users: [],
      https: { cert: file('server.pem'), key: file('server.key'), ca: file('ca.pem') },
      clients: [{ clientId: 'billing-bot', auth: { method: 'tls_client_auth', subjectDn: 'CN=billing-bot,O=Example' }, scope: 'notes:read' }],
    });
    // The AS's certificate is from a private CA the gateway process does not trust (that would
    // take NODE_EXTRA_CA_CERTS at process start), so its public keys are given as a file.
    const jwks = await httpsRequest(as.jwksUri, { ca: file('ca.pem') });
    writeFileSync(join(dir, 'as-jwks.json'), jwks.text);
    const loaded = parseConfig(
      {
        listen: { host: '127.0.0.1', port },
        log: { level: 'silent' },
        tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCa: join(dir, 'ca.pem'), requestClientCert: true },
        servers: { notes: { stdio: demoStdio(), defaultTool: 'allow', auth: { scopes: ['notes:read'] } } },
        auth: { issuers: [{ issuer: as.issuer, jwksFile: join(dir, 'as-jwks.json'), typ: 'at+jwt' }] },
      },
      '(e2e-tls)',
    );
    identity = createIdentityLayer(loaded, { watchTls: false });
    gw = await startGateway(loaded, {
      logger: silentLogger(),
      tls: identity.tls!.serverOptions,
      responseHeaders: identity.responseHeaders,
      routes: (req, res, path, e) => identity.routes(req, res, path, e),
      stages: (e) => [identity.stage(e), policyStage({ policy: compilePolicy(e.config as Config), audit: e.audit, config: e.config as Config })],
    });
  });

  after(async () => {
    await gw?.close();
    identity?.close();
    await as?.close();
    await cleanup?.();
  });

  async function initialize(token: string, cert?: 'bot' | 'bot2'): Promise<{ status: number; sessionId: string | undefined }> {
    const r = await httpsRequest(`${base}/mcp/notes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bot', version: '1' } } }),
      ca: file('ca.pem'),
      ...(cert ? { cert: file(`${cert}.pem`), key: file(`${cert}.key`) } : {}),
    });
    return { status: r.status, sessionId: r.headers['mcp-session-id'] as string | undefined };
  }

  test('the certificate-bound token calls tools with its certificate, and is refused with another or none', async () => {
    const tok = await httpsRequest(as.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'billing-bot', scope: 'notes:read', resource: `${base}/mcp/notes` }).toString(),
      ca: file('ca.pem'),
      cert: file('bot.pem'),
      key: file('bot.key'),
    });
    assert.equal(tok.status, 200, tok.text);
    const token = (JSON.parse(tok.text) as { access_token: string }).access_token;
    assert.ok((decodeJwt(token).cnf as Record<string, string>)['x5t#S256']);

    const ok = await initialize(token, 'bot');
    assert.equal(ok.status, 200);
    const headers = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': ok.sessionId!,
      'mcp-protocol-version': '2025-11-25',
    };
    const tls = { ca: file('ca.pem'), cert: file('bot.pem'), key: file('bot.key') };
    const n = await httpsRequest(`${base}/mcp/notes`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), ...tls });
    assert.equal(n.status, 202);
    const call = await httpsRequest(`${base}/mcp/notes`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_notes', arguments: {} } }),
      ...tls,
    });
    assert.equal(call.status, 200, call.text);
    assert.match(call.text, /"result"/);

    assert.equal((await initialize(token, 'bot2')).status, 401, 'same token, another certificate');
    assert.equal((await initialize(token)).status, 401, 'same token, no certificate');
  });
});
