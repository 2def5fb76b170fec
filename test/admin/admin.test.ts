/**
 * The admin API through a running gateway (memory store, one process): authentication of the
 * admin listener, revocation by every kind refused on the MCP listener with 401 invalid_token,
 * RFC 7009 call to the authorization server, quarantine hiding and refusing a tool, sessions
 * listed and ended, every action audited as incident.*; config refuses an unauthenticated
 * admin listener beyond loopback.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import { parseConfig } from '../../src/config/load.js';
import type { FullGateway } from '../../src/gateway.js';
import { startIssuer, type TestIssuer } from '../identity/fixtures.js';
import { RecordingAudit } from '../stages/authorization/helpers.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectClient } from '../helpers/gateway.js';
import { admin, base, mint, notesClient, notesConfig, startNotesGateway, until } from './fixture.js';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

describe('admin API and containment through the gateway', () => {
  let issuer: TestIssuer;
  let gw: FullGateway;
  let as: Server;
  const revokedAtAs: string[] = [];
  const audit = new RecordingAudit();
  let adminUrl: string;

  before(async () => {
    process.env.BASTION_TEST_ADMIN_TOKEN = ADMIN_TOKEN;
    process.env.BASTION_TEST_RFC7009_SECRET = 'rev-secret';
    issuer = await startIssuer();
    // RFC 7009 endpoint stand-in: records the token it was asked to revoke (client auth checked).
    as = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.headers.authorization !== `Basic ${Buffer.from('gateway:rev-secret').toString('base64')}`) return void res.writeHead(401).end();
        revokedAtAs.push(new URLSearchParams(body).get('token') ?? '');
        res.writeHead(200).end();
      });
    });
    as.listen(0, '127.0.0.1');
    await once(as, 'listening');
    const asUrl = `http://127.0.0.1:${(as.address() as { port: number }).port}/revoke`;
    gw = await startNotesGateway(
      issuer,
      {
        admin: {
          listen: { host: '127.0.0.1', port: 0 },
          token: { env: 'BASTION_TEST_ADMIN_TOKEN' },
          tokenRevocation: [{ issuer: issuer.url, endpoint: asUrl, clientId: 'gateway', clientSecret: { env: 'BASTION_TEST_RFC7009_SECRET' } }],
        },
      },
      { audit },
    );
    adminUrl = gw.admin!.url;
  });
  after(async () => {
    await gw?.close();
    await issuer?.close();
    as?.close();
  });

  test('the admin API needs the admin token (constant-time compare); health is open', async () => {
    assert.equal((await admin(adminUrl, 'GET', '/sessions')).status, 401);
    assert.equal((await admin(adminUrl, 'GET', '/sessions', undefined, 'wrong')).status, 401);
    assert.equal((await admin(adminUrl, 'POST', '/quarantine', { server: 'notes' }, 'wrong')).status, 401);
    // the whole token must match: not a prefix of it, not it with more after it
    assert.equal((await admin(adminUrl, 'GET', '/sessions', undefined, ADMIN_TOKEN.slice(0, -1))).status, 401);
    assert.equal((await admin(adminUrl, 'GET', '/sessions', undefined, `${ADMIN_TOKEN}x`)).status, 401);
    assert.equal((await admin(adminUrl, 'GET', '/sessions', undefined, ADMIN_TOKEN)).status, 200);
    assert.equal((await admin(adminUrl, 'GET', '/healthz')).status, 200);
    assert.equal((await admin(adminUrl, 'POST', '/revoke', {}, ADMIN_TOKEN)).status, 400);
    assert.equal((await admin(adminUrl, 'POST', '/revoke', { jti: 'a', subject: 'b' }, ADMIN_TOKEN)).status, 400);
    // the admin API is not on the MCP listener
    assert.equal((await admin(base(gw), 'GET', '/sessions', undefined, ADMIN_TOKEN)).status, 404);
  });

  test('revoke by token: refused with 401 invalid_token, token hashed, RFC 7009 called, audited', async () => {
    const c = await notesClient(base(gw), issuer, { sub: 'tok-user' });
    assert.equal((await c.list()).status, 200);
    const r = await admin(adminUrl, 'POST', '/revoke', { token: c.token, reason: 'leaked' }, ADMIN_TOKEN);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const hash = createHash('sha256').update(c.token).digest('base64url');
    assert.equal(r.json.revoked.value, hash);
    assert.equal(r.json.authorizationServer.ok, true);
    assert.deepEqual(revokedAtAs, [c.token]);
    const after = await c.list();
    assert.equal(after.status, 401);
    assert.match(JSON.stringify(after.json), /revoked/);
    const ev = audit.events.find((e) => e.type === 'incident.token.revoked')!;
    assert.equal(ev.target, hash);
    assert.ok(!JSON.stringify(audit.events).includes(c.token), 'the token itself is never audited');
    // another token of the same subject still works
    const other = await notesClient(base(gw), issuer, { sub: 'tok-user' });
    assert.equal((await other.list()).status, 200);
  });

  test('revoke by jti, subject, client: each refused on the next request; others unaffected', async () => {
    const cases: Array<[string, Record<string, unknown>, (t: string) => Record<string, unknown>]> = [
      ['jti', { sub: 'jti-user' }, (t) => ({ jti: decodeJwt(t).jti })],
      ['subject', { sub: 'mallory' }, () => ({ subject: 'mallory' })],
      ['client', { sub: 'client-user', client_id: 'evil-client' }, () => ({ client: 'evil-client' })],
    ];
    for (const [label, claims, body] of cases) {
      const c = await notesClient(base(gw), issuer, claims);
      const bystander = await notesClient(base(gw), issuer, { sub: 'bystander' });
      const r = await admin(adminUrl, 'POST', '/revoke', body(c.token), ADMIN_TOKEN);
      assert.equal(r.status, 200, `${label}: ${JSON.stringify(r.json)}`);
      const res = await c.list();
      assert.equal(res.status, 401, `${label}: status`);
      // a fresh session for the same principal: 401 invalid_token
      const fresh = await fetch(`${base(gw)}/mcp/notes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${c.token}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
      });
      assert.equal(fresh.status, 401, `${label}: new session refused`);
      assert.match(fresh.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal((await bystander.list()).status, 200, `${label}: bystander unaffected`);
    }
    const list = await admin(adminUrl, 'GET', '/revocations', undefined, ADMIN_TOKEN);
    assert.ok(list.json.revocations.some((e: { kind: string; value: string }) => e.kind === 'subject' && e.value === 'mallory'));
    // reinstate the subject
    assert.equal((await admin(adminUrl, 'DELETE', '/revocations', { kind: 'subject', value: 'mallory' }, ADMIN_TOKEN)).status, 200);
    await until(() => notesClient(base(gw), issuer, { sub: 'mallory' }).then((c) => c.list()), (r) => r.status === 200, 'reinstated subject works');
  });

  test('quarantine hides a tool from tools/list and refuses its call; release restores it; audited', async () => {
    const c = await notesClient(base(gw), issuer, { sub: 'q-user' });
    assert.ok((await c.list()).names.includes('echo'));
    assert.equal((await admin(adminUrl, 'POST', '/quarantine', { server: 'notes', tool: 'echo', reason: 'suspicious output' }, ADMIN_TOKEN)).status, 200);
    const l = await c.list();
    assert.equal(l.status, 200);
    assert.ok(!l.names.includes('echo'));
    assert.ok(l.names.includes('list_notes'));
    const call = await c.call('echo', { text: 'hi' });
    assert.equal(call.json.error?.code, -32603, call.text);
    assert.match(call.json.error.message, /quarantined/);
    assert.ok(audit.events.some((e) => e.type === 'incident.tool.quarantined' && e.tool === 'echo' && e.mount === 'notes'));
    // whole server
    assert.equal((await admin(adminUrl, 'POST', '/quarantine', { server: 'notes' }, ADMIN_TOKEN)).status, 200);
    assert.deepEqual((await c.list()).names, []);
    assert.match((await c.call('list_notes')).json.error.message, /quarantined/);
    assert.equal((await admin(adminUrl, 'POST', '/release', { server: 'notes' }, ADMIN_TOKEN)).status, 200);
    assert.equal((await admin(adminUrl, 'POST', '/release', { server: 'notes', tool: 'echo' }, ADMIN_TOKEN)).status, 200);
    assert.ok((await c.list()).names.includes('echo'));
    const echo = await c.call('echo', { text: 'hi' });
    assert.equal(echo.json.error, undefined, echo.text);
    assert.ok(audit.events.some((e) => e.type === 'incident.tool.released'));
    const q = await admin(adminUrl, 'GET', '/quarantine', undefined, ADMIN_TOKEN);
    assert.deepEqual(q.json.quarantine, []);
  });

  test('quarantine and release reach a connected SDK client as tools/list_changed; initialize declares listChanged', async () => {
    const { client } = await connectClient(`${base(gw)}/mcp/notes`, { headers: { authorization: `Bearer ${await mint(issuer, { sub: 'lc-user' })}` } });
    try {
      assert.equal(client.getServerCapabilities()?.tools?.listChanged, true);
      let heard = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        heard++;
      });
      assert.equal((await admin(adminUrl, 'POST', '/quarantine', { server: 'notes', tool: 'echo' }, ADMIN_TOKEN)).status, 200);
      await until(async () => heard, (n) => n === 1, 'list_changed after the quarantine');
      assert.ok(!(await client.listTools()).tools.some((t) => t.name === 'echo'));
      assert.equal((await admin(adminUrl, 'POST', '/release', { server: 'notes', tool: 'echo' }, ADMIN_TOKEN)).status, 200);
      await until(async () => heard, (n) => n === 2, 'list_changed after the release');
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'echo'));
    } finally {
      await client.close();
    }
  });

  test('sessions: listed with their principal, ended by id and by subject, audited', async () => {
    const a = await notesClient(base(gw), issuer, { sub: 'sess-a' });
    const b = await notesClient(base(gw), issuer, { sub: 'sess-b' });
    const list = await admin(adminUrl, 'GET', '/sessions', undefined, ADMIN_TOKEN);
    const mine = list.json.sessions.find((s: { id: string }) => s.id === a.sid);
    assert.equal(mine.subject, 'sess-a');
    assert.equal(mine.mount, 'notes');
    const r = await admin(adminUrl, 'DELETE', `/sessions/${encodeURIComponent(a.sid)}`, undefined, ADMIN_TOKEN);
    assert.equal(r.json.ended, 1);
    assert.equal((await a.list()).status, 404);
    assert.equal((await b.list()).status, 200);
    const r2 = await admin(adminUrl, 'DELETE', '/sessions?subject=sess-b', undefined, ADMIN_TOKEN);
    assert.equal(r2.json.ended, 1);
    assert.equal((await b.list()).status, 404);
    assert.ok(audit.events.some((e) => e.type === 'incident.session.terminated' && e.sessionId === a.sid));
    assert.equal((await admin(adminUrl, 'DELETE', '/sessions', undefined, ADMIN_TOKEN)).status, 400);
  });
});

test('config: an admin listener beyond loopback without token or mTLS is refused', () => {
  const fake = { url: 'http://127.0.0.1:1', jwksUri: 'http://127.0.0.1:1/jwks' } as TestIssuer;
  assert.throws(() => parseConfig(notesConfig(fake, { admin: { listen: { host: '0.0.0.0', port: 9091 } } })), /admin\.token|without authentication/);
  assert.doesNotThrow(() => parseConfig(notesConfig(fake, { admin: { listen: { host: '0.0.0.0', port: 9091 }, token: { env: 'X' } } })));
  assert.doesNotThrow(() => parseConfig(notesConfig(fake, { admin: { listen: { host: '127.0.0.1', port: 9091 } } })));
  assert.throws(() => parseConfig(notesConfig(fake, { state: { type: 'redis' } })), /state\.url is required/);
});
