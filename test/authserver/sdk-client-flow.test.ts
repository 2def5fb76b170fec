/**
 * The official MCP SDK Client + StreamableHTTPClientTransport + an OAuthClientProvider that
 * follows redirects headlessly, against a protected MCP endpoint made of the gateway's own
 * identity pieces (identity.authenticate stage, protected resource metadata route, toWire,
 * insufficientScopeError) in front of an SDK McpServer, with the development authorization
 * server as issuer. Not the gateway itself (server.ts wires the real pipeline), but the same
 * protocol path: 401 -> metadata discovery -> registration -> PKCE with resource -> token ->
 * tools -> 403 insufficient_scope -> re-authorization with the wider scope -> success.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { z } from 'zod';
import { toWire } from '../../src/errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import type { AuditLog } from '../../src/audit/types.js';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { identityStage } from '../../src/stages/identity/authenticate.js';
import { canonicalResource, createMetadataRoute, resourceMetadataUrl } from '../../src/identity/resource.js';
import { insufficientScopeError } from '../../src/identity/challenges.js';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { HeadlessOAuthProvider, tempDir } from './helpers.js';

const REDIRECT = 'http://127.0.0.1:9/sdk-callback';
const silentAudit: AuditLog = { emit: () => {} } as unknown as AuditLog;

/** A client that keeps no refresh token, so the SDK re-authorizes (step-up) instead of refreshing. */
class NoRefreshProvider extends HeadlessOAuthProvider {
  override saveTokens(tokens: OAuthTokens): void {
    const { refresh_token: _r, ...rest } = tokens;
    this.savedTokens = rest;
  }
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : undefined);
      } catch (e) {
        reject(e as Error);
      }
    });
    req.on('error', reject);
  });
}

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'notes', version: '1.0.0' });
  server.registerTool('read_note', { description: 'Read a note', inputSchema: { id: z.string() } }, async ({ id }) => ({
    content: [{ type: 'text', text: `note ${id}` }],
  }));
  server.registerTool('write_note', { description: 'Write a note', inputSchema: { id: z.string(), text: z.string() } }, async ({ id }) => ({
    content: [{ type: 'text', text: `wrote ${id}` }],
  }));
  return server;
}

describe('MCP SDK client through the identity layer with the development authorization server', () => {
  let as: DevAuthServer;
  let server: Server;
  let publicUrl = '';
  let config: Config;
  let cleanup: () => Promise<void>;
  const seen: { path: string; auth: boolean; status: number }[] = [];

  before(async () => {
    const tmp = await tempDir('bastion-sdk-');
    cleanup = tmp.cleanup;
    let handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void = (_q, r) => r.writeHead(503).end();
    server = createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    publicUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [
        { resource: `${publicUrl}/mcp/notes`, scopes: ['notes:read', 'notes:write'] },
        { resource: `${publicUrl}/mcp/other`, scopes: ['other:read'] },
      ],
      users: [{ id: 'alice', roles: ['editor'] }],
      autoLogin: 'alice',
    });
    config = parseConfig(
      {
        publicUrl,
        servers: {
          notes: { stdio: { command: 'node' }, auth: { scopes: ['notes:read'] } },
          other: { stdio: { command: 'node' }, auth: { scopes: ['other:read'] } },
        },
        auth: { issuers: [{ issuer: as.issuer, discovery: true, typ: 'at+jwt' }] },
      } as ConfigInput,
      '(test)',
    ).config as Config;
    const stage = identityStage({ config, store: new MemoryStateStore(), audit: silentAudit });
    const metadata = createMetadataRoute(config, publicUrl);

    handler = (req, res) => {
      void (async () => {
        const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
        const prm = req.method === 'GET' ? metadata(path) : undefined;
        if (prm) {
          res.writeHead(200, prm.headers).end(JSON.stringify(prm.body));
          return;
        }
        const name = /^\/mcp\/([a-z]+)$/.exec(path)?.[1];
        if (!name || !config.servers[name]) {
          res.writeHead(404).end();
          return;
        }
        const resource = canonicalResource(publicUrl, name);
        const ctx: RequestContext = {
          requestId: randomUUID(),
          startedAt: 0,
          mount: { name, config: config.servers[name]!, resource },
          http: { method: req.method!, path, query, headers: req.headers, remoteAddress: '127.0.0.1', secure: false, peerCertificate: undefined },
          session: undefined,
          message: undefined,
          principal: undefined,
          decisions: [],
          timings: {},
          locals: {},
        } as unknown as RequestContext;
        const record = { path, auth: Boolean(req.headers.authorization), status: 0 };
        seen.push(record);
        try {
          await stage.onRequest!(ctx);
          const body = (await readBody(req)) as { method?: string; params?: { name?: string } } | undefined;
          // What the authorization layer does for a tool needing a wider scope.
          if (body?.method === 'tools/call' && body.params?.name === 'write_note' && !ctx.principal!.scopes.has('notes:write')) {
            throw insufficientScopeError(resourceMetadataUrl(resource), ctx.principal!.scopes, ['notes:write']);
          }
          const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
          const mcp = mcpServer();
          res.on('close', () => {
            void transport.close();
            void mcp.close();
          });
          await mcp.connect(transport);
          record.status = 200;
          await transport.handleRequest(req, res, body);
        } catch (e) {
          const w = toWire(e);
          record.status = w.status;
          res.writeHead(w.status, { ...w.headers, 'content-type': 'application/json' }).end(JSON.stringify(w.body));
        }
      })();
    };
  });

  after(async () => {
    server?.closeAllConnections();
    server?.close();
    await as?.close();
    await cleanup?.();
  });

  async function connect(provider: HeadlessOAuthProvider, mount = 'notes'): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const url = new URL(`${publicUrl}/mcp/${mount}`);
    let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    let client = new Client({ name: 'sdk-test', version: '1.0.0' });
    try {
      await client.connect(transport);
    } catch (e) {
      assert.ok(e instanceof UnauthorizedError, `expected the SDK to need authorization, got ${String(e)}`);
      await transport.finishAuth(provider.code());
      transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
      client = new Client({ name: 'sdk-test', version: '1.0.0' });
      await client.connect(transport);
    }
    return { client, transport };
  }

  test('401 -> discovery -> DCR -> PKCE with resource -> token -> tools/list and tools/call', async () => {
    const provider = new HeadlessOAuthProvider(REDIRECT, {
      client_name: 'SDK flow',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const { client } = await connect(provider);
    assert.ok(seen.some((s) => s.path === '/mcp/notes' && !s.auth && s.status === 401), 'the first request was challenged');
    assert.ok(provider.clientInfo?.client_id, 'registered by DCR');
    const authUrl = provider.authorizationUrls[0]!;
    assert.equal(authUrl.searchParams.get('resource'), `${publicUrl}/mcp/notes`);
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authUrl.searchParams.get('scope'), 'notes:read', 'scope from the 401 challenge');
    const claims = decodeJwt(provider.savedTokens!.access_token);
    assert.equal(claims.aud, `${publicUrl}/mcp/notes`);

    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['read_note', 'write_note']);
    const r = await client.callTool({ name: 'read_note', arguments: { id: '7' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'note 7' }]);
    await client.close();

    // The same token at another mount is refused (audience).
    const other = await fetch(`${publicUrl}/mcp/other`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${provider.savedTokens!.access_token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(other.status, 401);
    assert.match(other.headers.get('www-authenticate') ?? '', /invalid_token/);
  });

  test('step-up: 403 insufficient_scope, the SDK re-authorizes with the wider scope, the call succeeds', async () => {
    const provider = new NoRefreshProvider(REDIRECT, {
      client_name: 'SDK step-up',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const { client, transport } = await connect(provider);
    assert.equal(decodeJwt(provider.savedTokens!.access_token).scope, 'notes:read');
    // The SDK sees 403 insufficient_scope, runs auth() with the challenge's scope; our provider
    // follows the redirect (auto-login consents to the missing scope) and the SDK asks us to finish.
    await assert.rejects(client.callTool({ name: 'write_note', arguments: { id: '1', text: 'x' } }), UnauthorizedError);
    assert.ok(seen.some((s) => s.status === 403), 'the gateway side answered 403');
    assert.equal(provider.authorizationUrls.at(-1)!.searchParams.get('scope'), 'notes:read notes:write');
    await transport.finishAuth(provider.code());
    assert.equal(decodeJwt(provider.savedTokens!.access_token).scope, 'notes:read notes:write');
    const r = await client.callTool({ name: 'write_note', arguments: { id: '1', text: 'x' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'wrote 1' }]);
    await client.close();
  });
});
