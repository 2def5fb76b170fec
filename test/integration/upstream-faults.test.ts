/**
 * Upstream faults (issue 2): an upstream that crashes, speaks garbage, floods or hangs yields
 * JSON-RPC errors to the affected requests only; other mounts keep serving; stdio upstreams
 * restart (with backoff) and the session goes on. SIGTERM drains in-flight requests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Gateway } from '../../src/server.js';
import { demoStdio, gateway, post, rawSession, ROOT } from '../helpers/gateway.js';
import { freePort } from '../helpers/raw-http.js';

const faulty = { command: process.execPath, args: ['--import', 'tsx', resolve(ROOT, 'test/fixtures/faulty-server.ts')], cwd: ROOT };
const V = { 'mcp-protocol-version': '2025-11-25' };
const call = (name: string, args: Record<string, unknown> = {}, id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('upstream faults', () => {
  let gw: Gateway;
  let url: string;

  before(async () => {
    gw = await gateway(
      {
        servers: {
          faulty: { stdio: { ...faulty, restart: { initialDelayMs: 50, maxDelayMs: 400 } }, requestTimeoutMs: 1500 },
          notes: { stdio: demoStdio() },
        },
      },
      { bare: true },
    );
    url = `${gw.url}/mcp/faulty`;
  });
  after(() => gw?.close());

  test('a crash mid-call answers that request with a JSON-RPC error; the next call restarts the upstream', async () => {
    const sid = await rawSession(url);
    const h = { ...V, 'mcp-session-id': sid };
    const before = await post(url, call('echo', { text: 'a' }), h);
    const pid1 = /pid (\d+)/.exec(before.json.result.content[0].text)![1];
    const crashed = await post(url, call('crash', {}, 2), h);
    assert.equal(crashed.status, 200);
    assert.equal(crashed.json.id, 2);
    assert.equal(crashed.json.error.code, -32603);
    assert.match(crashed.json.error.message, /stopped before answering/);
    // other mounts are unaffected
    const other = await rawSession(`${gw.url}/mcp/notes`);
    const ok = await post(`${gw.url}/mcp/notes`, call('echo', { text: 'still here' }), { ...V, 'mcp-session-id': other });
    assert.equal(ok.json.result.content[0].text, 'still here');
    // same session, new process (re-initialized by the gateway)
    const again = await post(url, call('echo', { text: 'b' }, 3), h);
    assert.equal(again.status, 200, again.text);
    const pid2 = /pid (\d+)/.exec(again.json.result.content[0].text)![1];
    assert.notEqual(pid1, pid2);
  });

  test('garbage on stdout ends the upstream: the request gets an error, not the garbage', async () => {
    const sid = await rawSession(url);
    const r = await post(url, call('garbage'), { ...V, 'mcp-session-id': sid });
    assert.equal(r.json.error.code, -32603);
    assert.match(r.json.error.message, /broke the protocol/);
    assert.doesNotMatch(r.text, /this is not json/);
  });

  test('a message over the size limit ends the upstream', async () => {
    const sid = await rawSession(url);
    const r = await post(url, call('huge'), { ...V, 'mcp-session-id': sid });
    assert.match(r.json.error.message, /broke the protocol/);
    assert.ok(r.text.length < 10_000);
  });

  test('a hanging call times out with an error; the session still works', async () => {
    const sid = await rawSession(url);
    const h = { ...V, 'mcp-session-id': sid };
    const r = await post(url, call('hang', {}, 'h1'), h);
    assert.equal(r.json.id, 'h1');
    assert.match(r.json.error.message, /did not answer within 1500 ms/);
    const ok = await post(url, call('echo', { text: 'after' }, 'h2'), h);
    assert.match(ok.json.result.content[0].text, /^after/);
  });

  test('an upstream that cannot start yields 502 at initialize and /readyz reports it', async () => {
    const gw2 = await gateway({ servers: { broken: { stdio: { command: '/nonexistent/binary', args: [] } } } }, { bare: true });
    try {
      const r = await post(`${gw2.url}/mcp/broken`, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
      assert.equal(r.status, 502);
      assert.match(r.json.error.message, /unavailable/);
      assert.doesNotMatch(r.text, /nonexistent/); // operator detail stays in the log
      const ready = await fetch(`${gw2.url}/readyz`);
      assert.equal(ready.status, 503);
    } finally {
      await gw2.close();
    }
  });
});

describe('SIGTERM', () => {
  test('drains in-flight requests, then exits 0; new requests during the drain get 503', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bastion-drain-'));
    const port = await freePort();
    const cfg = join(dir, 'bastion.yaml');
    writeFileSync(
      cfg,
      `listen: {host: 127.0.0.1, port: ${port}}\nlog: {level: warn}\nservers:\n  faulty:\n    stdio: {command: ${JSON.stringify(process.execPath)}, args: ["--import", "tsx", ${JSON.stringify(faulty.args[2])}], cwd: ${JSON.stringify(ROOT)}}\n    defaultTool: allow\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src/cli/main.ts'), 'serve', '--config', cfg], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await new Promise<void>((res, rej) => {
        const t = setInterval(() => {
          if (out.includes('listening on')) {
            clearInterval(t);
            res();
          }
        }, 50);
        child.once('exit', () => rej(new Error(out)));
      });
      const url = `http://127.0.0.1:${port}/mcp/faulty`;
      const sid = await rawSession(url);
      const inflight = post(url, call('slow', { ms: 1200 }), { ...V, 'mcp-session-id': sid });
      await new Promise((r) => setTimeout(r, 400));
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 150));
      const late = await post(url, call('echo', { text: 'late' }, 2), { ...V, 'mcp-session-id': sid }).catch(() => ({ status: 0 }));
      assert.ok(late.status === 503 || late.status === 0, `new request during drain: ${late.status}`);
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.json.result.content[0].text, 'slept 1200');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
