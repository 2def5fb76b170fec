/** Unit checks of the posture scanner, and a deliberately weak HTTP server each check must catch. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gradeFindings } from '../../src/scan/grade.js';
import { idEntropyBits, looksSequential, parseChallenge } from '../../src/scan/identity.js';
import { classifyTool } from '../../src/scan/capabilities.js';
import { toxicFlows } from '../../src/scan/tools.js';
import { renderHtml } from '../../src/scan/report/html.js';
import { renderText } from '../../src/scan/report/text.js';
import { toJson } from '../../src/scan/report/json.js';
import { scanServer, CONTROLS } from '../../src/scan/index.js';
import type { PostureFinding } from '../../src/scan/types.js';

const f = (severity: PostureFinding['severity']): PostureFinding => ({ id: 'x', severity, title: 't', control: 'c', evidence: 'e', fix: 'f' });

test('grades: A info only, B low, C medium, D one high, E two highs, F critical', () => {
  assert.equal(gradeFindings([]), 'A');
  assert.equal(gradeFindings([f('info')]), 'A');
  assert.equal(gradeFindings([f('low')]), 'B');
  assert.equal(gradeFindings([f('medium'), f('low')]), 'C');
  assert.equal(gradeFindings([f('high'), f('medium')]), 'D');
  assert.equal(gradeFindings([f('high'), f('high')]), 'E');
  assert.equal(gradeFindings([f('critical')]), 'F');
});

test('controls: ids and names are unique', () => {
  assert.equal(new Set(CONTROLS.map((c) => c.id)).size, CONTROLS.length);
  assert.equal(new Set(CONTROLS.map((c) => c.name)).size, CONTROLS.length);
});

test('challenge parsing, session id entropy and sequences', () => {
  const c = parseChallenge('Bearer error="invalid_token", resource_metadata="https://x/.well-known/oauth-protected-resource/mcp"');
  assert.equal(c.scheme, 'Bearer');
  assert.equal(c.params.resource_metadata, 'https://x/.well-known/oauth-protected-resource/mcp');
  assert.equal(idEntropyBits('3f2b8c1e-9a4d-4e2f-8b1c-0d9e8f7a6b5c'), 122);
  assert.ok(idEntropyBits('1234') < 64);
  assert.ok(idEntropyBits('a1b2c3d4') < 64);
  assert.ok(looksSequential(['1001', '1002', '1003']));
  assert.ok(looksSequential(['sess-aaaa-0001', 'sess-aaaa-0002', 'sess-aaaa-0003']));
  assert.ok(!looksSequential([crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]));
});

test('capabilities: specific classes with reasons, benign tools unclassified', () => {
  assert.ok(classifyTool({ name: 'run_shell', description: 'Execute a shell command', inputSchema: { type: 'object', properties: { command: { type: 'string' } } } }).capabilities['code-execution']);
  assert.ok(classifyTool({ name: 'send_email', description: 'Send an email', inputSchema: { type: 'object', properties: { to: {}, body: {} } } }).capabilities['network-send']);
  assert.ok(classifyTool({ name: 'write_file', description: 'Write a file', inputSchema: { type: 'object', properties: { path: {} } } }).capabilities['file-write']);
  assert.ok(classifyTool({ name: 'get-env', description: 'Returns all environment variables' }).capabilities['credential-access']);
  for (const benign of [{ name: 'echo', description: 'Echoes back the input string' }, { name: 'get-sum', description: 'Returns the sum of two numbers' }, { name: 'get-annotated-message', description: 'Demonstrates how annotations can be used' }]) {
    assert.deepEqual(classifyTool(benign).capabilities, {}, benign.name);
  }
  const flows = toxicFlows([classifyTool({ name: 'read_inbox', description: 'Read emails from the inbox' }), classifyTool({ name: 'http_post', description: 'Send an HTTP request', inputSchema: { type: 'object', properties: { url: {} } } })]);
  assert.ok(flows.some((x) => x.id === 'tools.toxic-flow.exfiltration'));
  assert.deepEqual(toxicFlows([classifyTool({ name: 'echo' })]), []);
});

test('renderers: JSON has exactly the contract keys; HTML and text neutralize hostile server text', () => {
  const hostile: PostureFinding = { id: 'tools.poisoning.x', severity: 'high', title: '<script>alert(1)</script>', control: 'Tools: definitions free of poisoning', evidence: '\u001b[2J<img src=x onerror=alert(1)>', fix: 'fix' };
  const empty = { grade: 'A' as const, findings: [], passed: [] };
  const report = { target: 'http://x/mcp', grade: 'D' as const, layers: { transport: empty, identity: empty, authorization: empty, tools: { grade: 'D' as const, findings: [hostile], passed: ['ok'] } } };
  const j = toJson(report) as any;
  assert.deepEqual(Object.keys(j.layers.tools), ['grade', 'findings']);
  assert.deepEqual(Object.keys(j.layers.tools.findings[0]).sort(), ['control', 'evidence', 'fix', 'id', 'severity', 'title']);
  const html = renderHtml(report);
  assert.ok(!html.includes('<script>alert'));
  assert.ok(!html.includes('<img src=x'));
  assert.ok(html.includes('&lt;script&gt;'));
  assert.ok(!renderText(report).includes('\u001b'));
});

test('a weak server: any bearer accepted, sequential session ids, a session id alone grants access, PRM resource mismatch', async () => {
  let n = 1000;
  const sessions = new Set<string>();
  const srv = createServer(async (req, res) => {
    for await (const _ of req) void _;
    if (req.url?.startsWith('/.well-known/oauth-protected-resource')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: 'https://other.example/mcp', authorization_servers: ['http://127.0.0.1:9/'] }));
      return;
    }
    const sid = req.headers['mcp-session-id'];
    if (!req.headers.authorization && !(typeof sid === 'string' && sessions.has(sid))) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    const id = String(++n);
    sessions.add(id);
    res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': id }).end(JSON.stringify({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'weak', version: '1' } } }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const url = new URL(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/mcp`);
    const r = await scanServer({ kind: 'http', url }, { token: 'anything', timeoutMs: 3000 });
    const ids = Object.values(r.layers).flatMap((l) => l.findings.map((x) => x.id));
    for (const id of ['identity.any-bearer-accepted', 'identity.weak-session-id', 'identity.session-as-credential', 'identity.prm-resource-mismatch', 'identity.challenge-no-metadata', 'transport.protocol-version-not-validated']) assert.ok(ids.includes(id), `${id}: ${ids.join(', ')}`);
    assert.ok(!ids.includes('identity.query-token-accepted'), 'a query token is not accepted by this server');
    assert.equal(r.layers.identity.grade, 'F');
    assert.ok(!JSON.stringify(r).includes('anything'), 'the token never appears in the report');
  } finally {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

test('a server that echoes the Authorization header back: the token is hidden in every finding and passed check, even where evidence cuts it short', async () => {
  // Long like a real JWT, so that evidence truncated to a few hundred characters would keep only a piece of it.
  const token = `echoed-token-${'x'.repeat(400)}-end`;
  const srv = createServer(async (req, res) => {
    for await (const _ of req) void _;
    // Every request is refused, and the refusal quotes the credential it got (in the body and as a JSON-RPC error).
    const got = req.headers.authorization ?? '(none)';
    if (req.url?.startsWith('/.well-known/')) res.writeHead(404).end(`no metadata for ${got}`);
    else res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(JSON.stringify({ jsonrpc: '2.0', id: 0, error: { code: -32001, message: `invalid token: ${got}` } }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const url = new URL(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/mcp`);
    const r = await scanServer({ kind: 'http', url }, { token, timeoutMs: 3000 });
    const all = JSON.stringify(r);
    assert.ok(all.includes('invalid token: Bearer <token>'), 'the echo reached the report, with the token hidden');
    assert.ok(!all.includes('echoed-token'), 'no piece of the token appears in the report');
  } finally {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

test('TLS: a listener that accepts TLS 1.0/1.1 with a self-signed certificate and no HSTS is reported for each', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createServer: createHttps } = await import('node:https');
  const dir = mkdtempSync(join(tmpdir(), 'bastion-scan-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
  const body = JSON.stringify({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'legacy', version: '1' } } });
  const srv = createHttps({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')), minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const url = new URL(`https://127.0.0.1:${(srv.address() as AddressInfo).port}/mcp`);
    const { checkTransport } = await import('../../src/scan/transport.js');
    const { probe, initializeBody, MCP_HEADERS } = await import('../../src/scan/http.js');
    const first = await probe(url, { method: 'POST', headers: { ...MCP_HEADERS }, body: initializeBody() });
    const t = await checkTransport(url, { timeoutMs: 3000 }, {}, first);
    const ids = t.layer.findings.map((x) => x.id);
    const passed = t.layer.passed.join('\n');
    // Where this machine's OpenSSL cannot offer TLS 1.0/1.1 at all, the report says so instead.
    if (!/could not be offered/.test(passed)) assert.ok(ids.includes('transport.tls-legacy'), ids.join(', '));
    for (const id of ['transport.cert-self-signed', 'transport.cert-expiring', 'transport.hsts-missing', 'transport.origin-not-validated', 'transport.host-not-validated']) assert.ok(ids.includes(id), `${id}: ${ids.join(', ')}`);
    assert.equal(t.certValid, false);
  } finally {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
