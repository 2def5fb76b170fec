/**
 * The README's first command: `bastion dev` brings up the authorization server, the gateway with
 * authentication required and the demo upstream, and the recipe it prints works: a token from
 * `bastion token`, then MCP calls with it; without it, the 401 challenge points at the metadata.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { post, ROOT } from '../helpers/gateway.js';
import { freePort } from '../helpers/raw-http.js';

const run = promisify(execFile);
const CLI = resolve(ROOT, 'src/cli/main.ts');

test('bastion dev: authentication required, the printed recipe works, dev.json has the facts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-dev-'));
  const port = await freePort();
  const asPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'dev', '--port', String(port), '--as-port', String(asPort), '--state-dir', dir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  try {
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        if (out.includes('Ctrl-C stops everything')) {
          clearInterval(t);
          res();
        }
      }, 100);
      child.once('exit', (code) => {
        clearInterval(t);
        rej(new Error(`bastion dev exited ${code}: ${err.slice(-2000)}`));
      });
    });
    const url = `http://127.0.0.1:${port}/mcp/notes`;
    assert.match(out, new RegExp(url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    assert.match(out, /bastion token --subject alice/);

    const facts = JSON.parse(readFileSync(join(dir, 'dev.json'), 'utf8'));
    assert.equal(facts.mcpUrls.notes, url);
    assert.equal(facts.issuer, `http://127.0.0.1:${asPort}`);

    // Without a token: 401 with the resource metadata the client needs to find the AS.
    const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
    const anon = await post(url, init);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp\/notes"/);
    const prm: any = await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp/notes`)).json();
    assert.deepEqual(prm.authorization_servers, [facts.issuer]);

    // The recipe: a token from the dev helper, then MCP with it.
    const { stdout: token } = await run(process.execPath, ['--import', 'tsx', CLI, 'token', '--subject', 'alice', '--scope', 'notes:read notes:write', '--mount', 'notes', '--raw', '--dev-json', join(dir, 'dev.json'), '--state-dir', join(dir, 'authserver')], { cwd: ROOT });
    const auth = { authorization: `Bearer ${token.trim()}` };
    const ok = await post(url, init, auth);
    assert.equal(ok.status, 200, ok.text);
    const sid = ok.headers.get('mcp-session-id')!;
    const h = { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    assert.equal((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status, 202);
    const w = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'write_note', arguments: { title: 'hello', body: 'from the recipe' } } }, h);
    assert.equal(w.status, 200, w.text);
    assert.equal(w.json.result.isError ?? false, false);
    // A tool needing a scope the token lacks: step-up challenge, not a silent refusal.
    const del = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_note', arguments: { title: 'hello' } } }, h);
    assert.equal(del.status, 403);
    assert.match(del.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    // The audit trail is there. Records are written after the answer, off the request path:
    // wait for them (bounded) rather than read the file the moment the answer arrives.
    const auditFile = join(dir, 'audit.jsonl');
    const deadline = Date.now() + 10_000;
    while (!/tool\.call\.completed[\s\S]*tool\.call\.denied|tool\.call\.denied[\s\S]*tool\.call\.completed/.test(readFileSync(auditFile, 'utf8')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const trail = readFileSync(auditFile, 'utf8');
    assert.match(trail, /tool\.call\.completed/);
    assert.match(trail, /tool\.call\.denied/);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
