/**
 * The authorization layer over real HTTP, with real tokens (minted with jose, verified by the
 * identity layer against a JWKS on loopback) and a real upstream process (the demo notes
 * server): list and call agree, hidden == nonexistent on the wire, step-up, context rules,
 * argument validation and rate limits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { startGateway, type Gateway } from '../../../src/server.js';
import { createIdentityLayer } from '../../../src/stages/identity/layer.js';
import { loadPolicy } from '../../../src/policy/load.js';
import { policyStage } from '../../../src/stages/authorization/policy.js';
import { rateLimitStage } from '../../../src/stages/authorization/rate-limit.js';
import { argumentValidationStage } from '../../../src/stages/application/argument-validation.js';
import { join, resolve } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { post, rawSession, ROOT, silentLogger } from '../../helpers/gateway.js';
import { compileFixture } from '../../fixtures/compile-fixture.js';
import { startIssuer, type TestIssuer } from '../../identity/fixtures.js';
import { canonicalResource } from '../../../src/identity/resource.js';
import { RecordingAudit } from './helpers.js';

const PUBLIC_URL = 'https://gw.example.com';

describe('authorization over HTTP with real tokens', () => {
  let issuer: TestIssuer;
  let gw: Gateway;
  let url: string;
  let cedarDir: string;
  const audit = new RecordingAudit();

  before(async () => {
    issuer = await startIssuer();
    const input: ConfigInput = {
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl: PUBLIC_URL,
      log: { level: 'silent' },
      auth: { issuers: [{ issuer: issuer.url, jwksUri: issuer.jwksUri }] },
      servers: {
        notes: {
          // The demo notes server, transpiled once so each session's child starts with plain node.
          stdio: { command: process.execPath, args: [compileFixture(resolve(ROOT, 'src/demo/notes-server.ts'))], cwd: ROOT },
          auth: { scopes: ['notes:read'] },
          tools: {
            list_notes: { scopes: ['notes:read'] },
            read_note: { scopes: ['notes:read'], args: { title: { maxLength: 20 } } },
            write_note: { scopes: ['notes:write'], allow: { roles: ['editor'] }, rateLimit: { rate: '2/hour', burst: 2 } },
            delete_note: { scopes: ['notes:admin'], allow: { subjects: ['alice'] }, require: { sourceCidrs: ['10.0.0.0/8'] } },
            echo: { require: { sourceCidrs: ['127.0.0.0/8', '::1/128'] } },
            fetch_page: { require: { maxTokenAgeSeconds: 60 } },
            read_file: { require: { authMethod: ['mtls+bearer', 'dpop'] } },
          },
          defaultTool: 'deny',
          defaultResource: 'allow',
          resources: { 'notes://secret': { deny: { subjects: ['carol'] } } },
        },
      },
    } as ConfigInput;
    // Cedar in addition to the YAML rules: everything the YAML allows, except echoing "forbidden".
    cedarDir = mkdtempSync(join(tmpdir(), 'bastion-http-cedar-'));
    const cedarFile = join(cedarDir, 'p.cedar');
    writeFileSync(
      cedarFile,
      `permit(principal, action, resource);
forbid(principal, action == Action::"tools/call", resource == Tool::"notes/echo")
  when { context has arguments && context.arguments has text && context.arguments.text == "forbidden" };`,
    );
    (input as Record<string, unknown>).policy = { cedar: cedarFile };
    const loaded = parseConfig(input, '(test)', ROOT);
    const policy = await loadPolicy(loaded.config, loaded.baseDir);
    const identity = createIdentityLayer(loaded, { watchTls: false });
    gw = await startGateway(loaded, {
      logger: silentLogger(),
      audit,
      routes: (req, res, path, env) => identity.routes(req, res, path, env),
      stages: (env) => [
        identity.stage(env),
        rateLimitStage({ policy, store: env.store, audit: env.audit }),
        policyStage({ policy, audit: env.audit, config: env.config }),
        argumentValidationStage({ policy, audit: env.audit }),
      ],
    });
    // Clients reach the listener on loopback; tokens name the public resource URL.
    url = `http://127.0.0.1:${gw.port}/mcp/notes`;
  });
  after(async () => {
    await gw?.close();
    await issuer?.close();
    if (cedarDir) rmSync(cedarDir, { recursive: true, force: true });
  });

  async function client(claims: Record<string, unknown>) {
    const now = Math.floor(Date.now() / 1000);
    const token = await issuer.mint({ aud: canonicalResource(PUBLIC_URL, 'notes'), iat: now, exp: now + 300, ...claims });
    const auth = { authorization: `Bearer ${token}` };
    const sid = await rawSession(url, auth);
    const headers = { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    let id = 10;
    return {
      async list(): Promise<string[]> {
        const r = await post(url, { jsonrpc: '2.0', id: ++id, method: 'tools/list' }, headers);
        assert.equal(r.status, 200, r.text);
        return (r.json.result.tools as { name: string }[]).map((t) => t.name);
      },
      read(uri: string, callId = ++id) {
        return post(url, { jsonrpc: '2.0', id: callId, method: 'resources/read', params: { uri } }, headers);
      },
      call(name: string, args: Record<string, unknown> = {}, callId = ++id) {
        return post(url, { jsonrpc: '2.0', id: callId, method: 'tools/call', params: { name, arguments: args } }, headers);
      },
    };
  }

  const ALL = ['list_notes', 'read_note', 'write_note', 'delete_note', 'fetch_page', 'read_file', 'echo'];
  const ARGS: Record<string, Record<string, unknown>> = {
    read_note: { title: 'none' },
    write_note: { title: 't', body: 'b' },
    delete_note: { title: 't' },
    echo: { text: 'hi' },
    fetch_page: { url: 'https://example.com' },
    read_file: { path: '/x' },
  };

  test('list and call agree for each principal; hidden tools answer exactly like nonexistent ones', async () => {
    const principals: [string, Record<string, unknown>, string[], string[]][] = [
      // label, claims, expected listed, expected step-up (listed but 403)
      ['reader', { sub: 'carol', scope: 'notes:read' }, ['list_notes', 'read_note', 'fetch_page', 'echo'], []],
      ['editor without write scope', { sub: 'carol', scope: 'notes:read', roles: ['editor'] }, ['list_notes', 'read_note', 'write_note', 'fetch_page', 'echo'], ['write_note']],
      ['editor', { sub: 'dave', scope: 'notes:read notes:write', roles: ['editor'] }, ['list_notes', 'read_note', 'write_note', 'fetch_page', 'echo'], []],
      ['alice admin, not in 10/8', { sub: 'alice', scope: 'notes:read notes:admin' }, ['list_notes', 'read_note', 'fetch_page', 'echo'], []],
      ['bob admin', { sub: 'bob', scope: 'notes:read notes:admin notes:write' }, ['list_notes', 'read_note', 'fetch_page', 'echo'], []],
    ];
    for (const [label, claims, listed, stepUp] of principals) {
      const c = await client(claims);
      const visible = await c.list();
      assert.deepEqual(visible, ALL.filter((n) => listed.includes(n)), `${label}: tools/list`);
      for (const name of ALL) {
        const r = await c.call(name, ARGS[name] ?? {}, 77);
        if (!visible.includes(name)) {
          // Hidden: same status, headers that matter and body as a tool that does not exist.
          const ghost = `${name.slice(0, -1)}${name.endsWith('x') ? 'y' : 'x'}`;
          const g = await c.call(ghost, {}, 77);
          assert.equal(r.status, g.status, `${label} ${name}: status`);
          assert.equal(r.headers.get('content-type'), g.headers.get('content-type'));
          assert.equal(r.headers.get('www-authenticate'), g.headers.get('www-authenticate'));
          assert.equal(r.text.replace(name, 'NAME'), g.text.replace(ghost, 'NAME'), `${label} ${name}: body`);
          assert.deepEqual(r.json.error, { code: -32602, message: `Tool ${name} not found` });
        } else if (stepUp.includes(name)) {
          assert.equal(r.status, 403, `${label} ${name}: step-up status`);
          const h = r.headers.get('www-authenticate') ?? '';
          assert.match(h, /error="insufficient_scope"/);
          assert.match(h, /scope="notes:read notes:write"/);
          assert.match(h, /resource_metadata="https:\/\/gw\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/notes"/);
        } else {
          assert.equal(r.status, 200, `${label} ${name}: ${r.text}`);
          // SSE answers may carry notifications before the response.
          const events = Array.isArray(r.json) ? r.json : [r.json];
          const response = events.find((e: Record<string, unknown>) => 'result' in e || 'error' in e);
          assert.ok(response?.result, `${label} ${name}: a result (${r.text.slice(0, 200)})`);
        }
      }
    }
    const denied = audit.events.filter((e) => e.type === 'tool.call.denied' && e.tool === 'delete_note' && (e.principal as { subject: string }).subject === 'alice');
    assert.equal(denied[0]!.policy, 'servers.notes.tools.delete_note.require.sourceCidrs');
    assert.equal(denied[0]!.reason, 'source_ip_not_allowed');
  });

  test('a hidden resource is answered as MCP "Resource not found" (-32002)', async () => {
    const c = await client({ sub: 'carol', scope: 'notes:read' });
    const hidden = await c.read('notes://secret', 5);
    assert.equal(hidden.status, 200);
    assert.deepEqual(hidden.json, { jsonrpc: '2.0', id: 5, error: { code: -32002, message: 'Resource not found', data: { uri: 'notes://secret' } } });
    // Not hidden from another subject: the upstream answers (this demo server says -32603 for a
    // missing note, which the gateway does not rewrite: only -32002 and -32602 "not found" are).
    const other = await client({ sub: 'dave', scope: 'notes:read' });
    const r = await other.read('notes://secret', 5);
    assert.equal(r.json.error.code, -32603);
  });

  test('context rules over HTTP: token age and auth method; Cedar forbids as written', async () => {
    const now = Math.floor(Date.now() / 1000);
    const fresh = await client({ sub: 'gina', scope: 'notes:read' });
    assert.ok((await fresh.list()).includes('fetch_page'), 'fresh token: fetch_page listed');
    assert.equal((await fresh.call('fetch_page', { url: 'https://example.com' })).status, 200);
    // A bearer token is not one of the required methods: read_file is hidden and answers not found.
    assert.ok(!(await fresh.list()).includes('read_file'));
    assert.deepEqual((await fresh.call('read_file', { path: '/x' }, 3)).json.error, { code: -32602, message: 'Tool read_file not found' });
    const old = await client({ sub: 'gina', scope: 'notes:read', iat: now - 120, exp: now + 200 });
    assert.ok(!(await old.list()).includes('fetch_page'), 'token older than 60 s: fetch_page hidden');
    assert.deepEqual((await old.call('fetch_page', { url: 'https://example.com' }, 3)).json.error, { code: -32602, message: 'Tool fetch_page not found' });
    // Cedar: echo is allowed, except with the argument Cedar forbids.
    assert.equal((await fresh.call('echo', { text: 'fine' })).status, 200);
    const forbidden = await fresh.call('echo', { text: 'forbidden' }, 4);
    assert.deepEqual(forbidden.json.error, { code: -32602, message: 'Tool echo not found' });
    const ev = audit.events.filter((e) => e.type === 'tool.call.denied' && e.tool === 'echo').pop()!;
    assert.equal(ev.reason, 'cedar_denied');
    assert.equal(ev.policy, 'cedar:policy1');
  });

  test('argument validation over HTTP: -32602 naming the argument and the rule', async () => {
    const c = await client({ sub: 'erin', scope: 'notes:read' });
    const extra = await c.call('read_note', { title: 'a', sneaky: true });
    assert.equal(extra.status, 200);
    assert.equal(extra.json.error.code, -32602);
    assert.deepEqual(extra.json.error.data, { argument: 'sneaky', rule: 'unknownArguments' });
    const long = await c.call('read_note', { title: 'x'.repeat(21) });
    assert.deepEqual(long.json.error.data, { argument: 'title', rule: 'maxLength' });
    const type = await c.call('read_note', { title: 5 });
    assert.deepEqual(type.json.error.data, { argument: 'title', rule: 'type' });
  });

  test('rate limit over HTTP: 429 with Retry-After', async () => {
    const c = await client({ sub: 'frank', scope: 'notes:read notes:write', roles: ['editor'] });
    assert.equal((await c.call('write_note', { title: 'r1', body: 'b' })).status, 200);
    assert.equal((await c.call('write_note', { title: 'r2', body: 'b' })).status, 200);
    const r = await c.call('write_note', { title: 'r3', body: 'b' });
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.equal(r.json.error.code, -32029);
  });
});
