/**
 * `bastion scan server` as a real process against real third-party servers from npm:
 * server-everything over stdio and Streamable HTTP, server-filesystem over stdio (temp dir).
 * Also: the scan subcommands coexist, the JSON contract, --fail-on, --output, SARIF validated
 * against the SARIF 2.1.0 schema, the HTML report rendered in headless Chromium.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Ajv } from 'ajv';
import * as ajvFormats from 'ajv-formats';
import { everythingHttp, ROOT, stopProcess } from '../helpers/gateway.js';

const run = promisify(execFile);
const EVERYTHING = resolve(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = resolve(ROOT, 'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
const CHROMIUM = '/usr/bin/chromium';

async function bastion(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface JsonReport {
  target: string;
  grade: string;
  layers: Record<string, { grade: string; findings: Array<{ id: string; severity: string; title: string; control: string; evidence: string; fix: string }> }>;
}

let dir: string;
let http: { url: string; child: ChildProcess };
let everythingStdioJson: JsonReport;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bastion-scan-cli-'));
  http = await everythingHttp();
});

after(async () => {
  if (http) await stopProcess(http.child);
  rmSync(dir, { recursive: true, force: true });
});

function ids(r: JsonReport): string[] {
  return Object.values(r.layers).flatMap((l) => l.findings.map((f) => f.id));
}

test('the scan subcommands coexist: tools, text and server all have help', async () => {
  for (const sub of ['tools', 'text', 'server']) {
    const r = await bastion(['scan', sub, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Usage: bastion scan ${sub}`));
  }
});

test('server-everything over stdio: the JSON contract, get-env as credential access, the toxic flow with the URL-fetching gzip tool', async () => {
  const r = await bastion(['scan', 'server', '--format', 'json', '--stdio', '--', process.execPath, EVERYTHING, 'stdio']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as JsonReport;
  everythingStdioJson = j;
  // Exactly the contract's keys.
  assert.deepEqual(Object.keys(j).sort(), ['grade', 'layers', 'target']);
  assert.deepEqual(Object.keys(j.layers).sort(), ['authorization', 'identity', 'tools', 'transport']);
  assert.match(j.grade, /^[A-F]$/);
  for (const l of Object.values(j.layers)) {
    assert.deepEqual(Object.keys(l).sort(), ['findings', 'grade']);
    for (const f of l.findings) {
      assert.deepEqual(Object.keys(f).sort(), ['control', 'evidence', 'fix', 'id', 'severity', 'title']);
      assert.ok(['critical', 'high', 'medium', 'low', 'info'].includes(f.severity));
    }
  }
  const tools = j.layers.tools!.findings;
  const env = tools.find((f) => f.id === 'tools.capability.credential-access');
  assert.match(env!.evidence, /get-env/);
  const flow = tools.find((f) => f.id === 'tools.toxic-flow.exfiltration');
  assert.match(flow!.evidence, /get-env[\s\S]*gzip-file-as-resource/);
  // Nothing about echo or get-sum: findings are specific.
  assert.ok(!tools.some((f) => /"(echo|get-sum)"/.test(f.evidence)), JSON.stringify(tools));
  assert.equal(j.grade, 'E');
});

test('--fail-on high exits 1 on server-everything (its high findings); the threshold logic per severity', async () => {
  const hi = await bastion(['scan', 'server', '--format', 'json', '--fail-on', 'high', '--stdio', '--', process.execPath, EVERYTHING, 'stdio']);
  assert.equal(hi.code, 1);
  const { exitCodeFor } = await import('../../src/cli/scan-server.js');
  const { buildReport } = await import('../../src/scan/grade.js');
  const empty = { findings: [], passed: [] };
  const one = buildReport('t', { transport: empty, identity: empty, authorization: empty, tools: { findings: [{ id: 'x', severity: 'high', title: 't', control: 'c', evidence: 'e', fix: 'f' }], passed: [] } });
  assert.equal(exitCodeFor(one, 'critical'), 0);
  assert.equal(exitCodeFor(one, 'high'), 1);
  assert.equal(exitCodeFor(one, 'medium'), 1);
  assert.equal(exitCodeFor(one, 'never'), 0);
});

test('server-filesystem over stdio: the four writing tools and nothing invented', async () => {
  const data = join(dir, 'data');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(data);
  const r = await bastion(['scan', 'server', '--format', 'json', '--stdio', '--', process.execPath, FILESYSTEM, data]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as JsonReport;
  const writers = j.layers.tools!.findings.filter((f) => f.id === 'tools.capability.file-write').map((f) => /tool "([^"]+)"/.exec(f.evidence)![1]).sort();
  assert.deepEqual(writers, ['create_directory', 'edit_file', 'move_file', 'write_file']);
  // No network sink on this server, so no exfiltration flow.
  assert.ok(!ids(j).includes('tools.toxic-flow.exfiltration'));
  assert.ok(!ids(j).some((i) => i.startsWith('tools.poisoning.')));
});

test('server-everything over Streamable HTTP: open server, no Origin/Host checks, no TLS; SARIF validates against the 2.1.0 schema', async () => {
  const r = await bastion(['scan', 'server', http.url, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as JsonReport;
  assert.equal(j.target, http.url);
  const got = ids(j);
  for (const id of ['transport.no-tls', 'transport.origin-not-validated', 'transport.host-not-validated', 'identity.no-authentication', 'authorization.all-tools-anonymous', 'tools.capability.credential-access']) assert.ok(got.includes(id), `${id}: ${got.join(', ')}`);
  // True negatives: its SDK transport refuses a bad protocol version, its session ids are UUIDv4.
  assert.ok(!got.includes('transport.protocol-version-not-validated'));
  assert.ok(!got.includes('identity.weak-session-id'));

  const out = join(dir, 'everything.sarif');
  const s = await bastion(['scan', 'server', http.url, '--format', 'sarif', '--output', out]);
  assert.equal(s.code, 0, s.stderr);
  const sarif = JSON.parse(readFileSync(out, 'utf8')) as Record<string, any>;
  const schema = JSON.parse(readFileSync(resolve(ROOT, 'test/fixtures/scan/sarif-2.1.0-rtm.5.json'), 'utf8')) as Record<string, unknown>;
  delete schema.id; // draft-04 id; the schema uses no other draft-04-only keyword
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false }) // the schema's language pattern is not valid with the u flag;
  const addFormats = ((ajvFormats as unknown as { default: unknown }).default as { default?: unknown }).default ?? (ajvFormats as unknown as { default: unknown }).default;
  (addFormats as (a: Ajv) => void)(ajv);
  const validate = ajv.compile(schema);
  assert.ok(validate(sarif), JSON.stringify(validate.errors?.slice(0, 5)));
  assert.equal(sarif.version, '2.1.0');
  assert.equal(sarif.runs[0].results.length, got.length);
  // A broken log must fail the same validator (the check has teeth).
  assert.equal(validate({ ...sarif, runs: [{ ...sarif.runs[0], results: [{ level: 'fatal' }] }] }), false);
});

test('the HTML report renders in headless Chromium: grade, four layers, findings, escaped server text', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium)` }, async () => {
  const html = join(dir, 'report.html');
  const r = await bastion(['scan', 'server', '--format', 'html', '--output', html, '--stdio', '--', process.execPath, EVERYTHING, 'stdio']);
  assert.equal(r.code, 0, r.stderr);
  const page = readFileSync(html, 'utf8');
  assert.ok(!/<script|<link|src=|@import|url\(/i.test(page), 'self-contained: no script, no external resource');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const p = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
    const requests: string[] = [];
    p.on('request', (req) => {
      if (!req.url().startsWith('file:')) requests.push(req.url());
    });
    await p.goto(`file://${html}`);
    assert.equal(await p.locator('#overall .grade').innerText(), everythingStdioJson?.grade ?? 'E');
    assert.equal(await p.locator('nav.cards a.card').count(), 4);
    for (const l of ['transport', 'identity', 'authorization', 'tools']) assert.equal(await p.locator(`#layer-${l}`).count(), 1);
    assert.ok((await p.locator('#layer-tools article.finding').count()) >= 3);
    assert.match(await p.locator('#layer-tools').innerText(), /get-env/);
    const shot = join(dir, 'report.png');
    await p.screenshot({ path: shot, fullPage: false });
    assert.ok(statSync(shot).size > 10_000, 'a real screenshot');
    assert.deepEqual(requests, [], 'no network request from the report');
  } finally {
    await browser.close();
  }
});

test('a bad target fails with exit code 2 and a message that says what to do', async () => {
  const r = await bastion(['scan', 'server', 'not a url']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not a URL.*--stdio/);
  const ca = await bastion(['scan', 'server', 'https://127.0.0.1:9/mcp', '--ca', join(dir, 'missing-ca.pem')]);
  assert.notEqual(ca.code, 0);
  assert.match(ca.stderr, /--ca \S*missing-ca\.pem: cannot read it \(ENOENT\)/);
  const s = await bastion(['scan', 'server', '--format', 'json', '--stdio', '--', process.execPath, '-e', 'process.exit(3)'], { BASTION_SCAN_TOKEN: 'tok-must-not-leak' });
  assert.equal(s.code, 2);
  assert.match(s.stderr, /the scan could not run/);
  assert.ok(!s.stderr.includes('tok-must-not-leak'));
});
