/**
 * `bastion scan server` against mcp-bastion in its hardened example config (examples/hardened:
 * TLS 1.3 with a certificate from a test CA made by openssl, tokens from the embedded dev
 * authorization server, the demo upstream) → grade A; and against the same upstream exposed
 * without the gateway → each missing control reported.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startGatewayFromConfig } from '../../src/gateway.js';
import type { Gateway } from '../../src/server.js';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { scanServer, type PostureReport } from '../../src/scan/index.js';
import { demoStdio, ROOT, silentLogger } from '../helpers/gateway.js';
import { startBareNotes } from './bare-notes.js';

let dir: string;
let as: DevAuthServer;
let gw: Gateway;
let mcpUrl: string;
let ca: Buffer;
let token: string;
const SECRET = 'scanner-secret-for-tests-only-0123456789';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function makeCerts(d: string): void {
  const o = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: d, stdio: 'ignore' });
  };
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bastion scan test CA']);
  o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(d, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  o(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '90', '-extfile', 'ext.cnf']);
}

function show(r: PostureReport): string {
  return JSON.stringify(Object.fromEntries(Object.entries(r.layers).map(([k, v]) => [k, { grade: v.grade, findings: v.findings.map((f) => `${f.severity} ${f.id}: ${f.evidence}`) }])), null, 2);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bastion-scan-'));
  makeCerts(dir);
  ca = readFileSync(join(dir, 'ca.pem'));
  const port = await freePort();
  const publicUrl = `https://127.0.0.1:${port}`;
  mcpUrl = `${publicUrl}/mcp/notes`;
  as = await startDevAuthServer({
    port: 0,
    stateDir: join(dir, 'as'),
    resources: [{ resource: mcpUrl, scopes: ['notes:read', 'notes:write'], name: 'notes' }],
    users: [],
    clients: [{ clientId: 'scanner', auth: { method: 'client_secret_basic', secret: SECRET }, grantTypes: ['client_credentials'], scope: 'notes:read' }],
    onWarning: () => undefined,
  });
  const doc = parse(readFileSync(resolve(ROOT, 'examples/hardened/bastion.yaml'), 'utf8')) as Record<string, any>;
  doc.listen.port = port;
  doc.servers.notes.stdio = demoStdio();
  doc.log = { level: 'silent' };
  const loaded = parseConfig(doc, 'examples/hardened/bastion.yaml', ROOT, { ...process.env, BASTION_PUBLIC_URL: publicUrl, BASTION_TLS_DIR: dir, BASTION_ISSUER: as.issuer, BASTION_STATE_DIR: dir });
  gw = await startGatewayFromConfig(loaded, { logger: silentLogger() });
  const res = await fetch(as.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`scanner:${SECRET}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'notes:read', resource: mcpUrl }),
  });
  const body = (await res.json()) as { access_token?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  token = body.access_token!;
});

after(async () => {
  await gw?.close();
  await as?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the hardened example config of mcp-bastion gets grade A on every layer', async () => {
  const r = await scanServer({ kind: 'http', url: new URL(mcpUrl) }, { token, ca });
  assert.equal(r.grade, 'A', show(r));
  for (const l of Object.values(r.layers)) assert.equal(l.grade, 'A', show(r));
  const passed = Object.values(r.layers).flatMap((l) => l.passed).join('\n');
  // The checks really ran (a report of A because nothing was tested would be worthless).
  for (const p of [/TLS 1\.3 only/, /certificate trusted/, /HSTS: max-age=31536000/, /foreign Origin refused with 403/, /foreign Host header refused/, /MCP-Protocol-Version refused with 400/, /refused with 401/, /resource matches/, /PKCE S256/, /query string does not grant access/, /random bearer string is refused/, /session ids look random/, /session id without credentials is refused/, /scopes advertised/, /no poisoning in \d+ tools/]) {
    assert.match(passed, p);
  }
  // The scan never printed the token anywhere in the report.
  assert.ok(!JSON.stringify(r).includes(token));
});

test('without the CA the hardened gateway is reported for an untrusted certificate, and the token is not sent', async () => {
  const r = await scanServer({ kind: 'http', url: new URL(mcpUrl) }, { token });
  const ids = r.layers.transport.findings.map((f) => f.id);
  assert.ok(ids.includes('transport.cert-untrusted') || ids.includes('transport.cert-self-signed'), show(r));
  assert.match(r.layers.transport.passed.join('\n'), /token was NOT sent/);
  assert.ok(r.layers.tools.findings.some((f) => f.id === 'tools.not-listed'));
});

test('the same upstream exposed without the gateway: each missing control is reported', async () => {
  const bare = await startBareNotes();
  try {
    const r = await scanServer({ kind: 'http', url: new URL(bare.url) }, {});
    const ids = new Set(Object.values(r.layers).flatMap((l) => l.findings.map((f) => f.id)));
    for (const id of ['transport.no-tls', 'transport.origin-not-validated', 'transport.host-not-validated', 'identity.no-authentication', 'authorization.all-tools-anonymous', 'tools.capability.network-send', 'tools.toxic-flow.exfiltration']) {
      assert.ok(ids.has(id), `${id} missing: ${show(r)}`);
    }
    const controls = new Set(Object.values(r.layers).flatMap((l) => l.findings.map((f) => f.control)));
    for (const c of ['Transport: TLS required', 'Transport: Origin validation', 'Transport: Host validation (DNS rebinding)', 'Identity: authentication required', 'Authorization: least privilege per tool', 'Tools: no toxic flows']) assert.ok(controls.has(c), c);
    assert.ok(['E', 'F'].includes(r.grade), r.grade);
    // The finding names the real tool: fetch_page takes a URL (network), read_file reads files.
    const flow = r.layers.tools.findings.find((f) => f.id === 'tools.toxic-flow.exfiltration')!;
    assert.match(flow.evidence, /fetch_page/);
  } finally {
    await bare.close();
  }
});
