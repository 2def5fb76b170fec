/**
 * An https upstream through the gateway's own HTTP/1.1 client: trusted through
 * `servers.NAME.http.caFile` (a private CA), with SNI, and refused (fail closed) when the
 * certificate is not trusted or names another host.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePki, type TestPki } from '../tls/certs.js';
import { startSpyUpstream, type SpyUpstream } from '../fixtures/spy-upstream.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connectClient, gateway, ROOT } from '../helpers/gateway.js';

let pki: TestPki;
let spy: SpyUpstream;

before(async () => {
  pki = makePki();
  spy = await startSpyUpstream({ tls: { cert: readFileSync(pki.serverCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') } });
});
after(async () => {
  await spy.close();
  pki.cleanup();
});

const port = (): string => new URL(spy.url).port;

test('caFile: the upstream certificate from a private CA is trusted; the call works and SNI names the host', async () => {
  const gw = await gateway({ servers: { s: { http: { url: `https://localhost:${port()}/mcp`, caFile: pki.caCert }, tools: { echo: {} } } } });
  try {
    const { client } = await connectClient(`${gw.url}/mcp/s`);
    const r = await client.callTool({ name: 'echo', arguments: { text: 'over tls' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'over tls' }]);
    await client.close();
    const posts = spy.requests.filter((q) => q.method === 'POST');
    assert.ok(posts.length > 0);
    for (const q of posts) assert.equal(q.servername, 'localhost');
  } finally {
    await gw.close();
  }
});

test('without caFile the private CA is not trusted: initialize fails, nothing reaches the tool', async () => {
  const before = spy.requests.length;
  const gw = await gateway({ servers: { s: { http: { url: `https://localhost:${port()}/mcp` }, tools: { echo: {} } } } });
  try {
    await assert.rejects(connectClient(`${gw.url}/mcp/s`));
    assert.equal(spy.requests.length, before, 'the TLS handshake must fail before any HTTP request');
  } finally {
    await gw.close();
  }
});

test('a certificate from the trusted CA for another name is refused (identity check)', async () => {
  const [cert, key] = pki.issueServer('other', 'other.example', 'DNS:other.example');
  const other = await startSpyUpstream({ tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } });
  const gw = await gateway({ servers: { s: { http: { url: `https://localhost:${new URL(other.url).port}/mcp`, caFile: pki.caCert }, tools: { echo: {} } } } });
  try {
    await assert.rejects(connectClient(`${gw.url}/mcp/s`));
    assert.equal(other.requests.length, 0, 'the TLS handshake must fail before any HTTP request');
  } finally {
    await gw.close();
    await other.close();
  }
});

test('caFile that cannot be read, or holds no certificate, stops the gateway naming the key', async () => {
  await assert.rejects(
    gateway({ servers: { s: { http: { url: `https://localhost:${port()}/mcp`, caFile: join(pki.dir, 'missing.pem') } } } }),
    (err: Error) => /servers\.s\.http\.caFile: cannot read .*missing\.pem \(ENOENT\)/.test(err.message),
  );
  const junk = join(pki.dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate\n');
  await assert.rejects(
    gateway({ servers: { s: { http: { url: `https://localhost:${port()}/mcp`, caFile: junk } } } }),
    (err: Error) => /servers\.s\.http\.caFile: .*junk\.pem holds no PEM certificate/.test(err.message),
  );
});

test('caFile adds to the default trust store: a CA from NODE_EXTRA_CA_CERTS stays trusted', async () => {
  // NODE_EXTRA_CA_CERTS is read when node starts, so the check runs in a child process: it
  // connects to the spy (certificate from `pki`) with the context a caFile of another CA builds.
  const other = makePki();
  try {
    const script = [
      "import tls from 'node:tls';",
      "import { readFileSync } from 'node:fs';",
      `import { secureContextWithCa } from ${JSON.stringify(join(ROOT, 'src/upstream/http1.ts'))};`,
      `const s = tls.connect({ host: '127.0.0.1', port: ${port()}, servername: 'localhost', secureContext: secureContextWithCa(readFileSync(${JSON.stringify(other.caCert)}, 'utf8')) }, () => { console.log('trusted'); s.end(); });`,
      "s.on('error', (e) => console.log('refused ' + e.code));",
    ].join('\n');
    const run = (env: NodeJS.ProcessEnv): Promise<{ stdout: string }> =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 20_000 });
    assert.equal((await run({ NODE_EXTRA_CA_CERTS: pki.caCert })).stdout.trim(), 'trusted');
    const without = { ...process.env };
    delete without.NODE_EXTRA_CA_CERTS;
    assert.match((await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: without, timeout: 20_000 })).stdout, /^refused /);
  } finally {
    other.cleanup();
  }
});
