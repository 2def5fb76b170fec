/**
 * `stdio.shared: true`: one child serves every session of a mount. Sessions keep their own ids
 * (the same JSON-RPC id in two sessions gets each its own answer), share the process, and all
 * recover when it crashes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import type { Gateway } from '../../src/server.js';
import { gateway, post, rawSession, ROOT } from '../helpers/gateway.js';

const faulty = { command: process.execPath, args: ['--import', 'tsx', resolve(ROOT, 'test/fixtures/faulty-server.ts')], cwd: ROOT };
const V = { 'mcp-protocol-version': '2025-11-25' };
const echo = (text: string, id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } });
const pidOf = (r: { json: any }) => /pid (\d+)/.exec(r.json.result.content[0].text)![1];

let gw: Gateway;
let url: string;
before(async () => {
  gw = await gateway({ servers: { f: { stdio: { ...faulty, shared: true, restart: { initialDelayMs: 20, maxDelayMs: 200 } } } } }, { bare: true });
  url = `${gw.url}/mcp/f`;
});
after(() => gw?.close());

test('two sessions share one child; the same request id in each gets its own answer', async () => {
  const a = await rawSession(url);
  const b = await rawSession(url);
  const [ra, rb] = await Promise.all([post(url, echo('for a', 7), { ...V, 'mcp-session-id': a }), post(url, echo('for b', 7), { ...V, 'mcp-session-id': b })]);
  assert.match(ra.json.result.content[0].text, /^for a/);
  assert.match(rb.json.result.content[0].text, /^for b/);
  assert.equal(ra.json.id, 7);
  assert.equal(rb.json.id, 7);
  assert.equal(pidOf(ra), pidOf(rb));
  // a third session is answered from the cached handshake, by the same process
  const c = await rawSession(url);
  assert.equal(pidOf(await post(url, echo('c'), { ...V, 'mcp-session-id': c })), pidOf(ra));
});

test('a crash ends the child for every session; each goes on with a new one', async () => {
  const a = await rawSession(url);
  const b = await rawSession(url);
  const before = pidOf(await post(url, echo('x'), { ...V, 'mcp-session-id': a }));
  const crashed = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'crash', arguments: {} } }, { ...V, 'mcp-session-id': a });
  assert.match(crashed.json.error.message, /stopped before answering/);
  const rb = await post(url, echo('b after', 3), { ...V, 'mcp-session-id': b });
  assert.equal(rb.status, 200, rb.text);
  const ra = await post(url, echo('a after', 4), { ...V, 'mcp-session-id': a });
  assert.notEqual(pidOf(rb), before);
  assert.equal(pidOf(ra), pidOf(rb));
});

test('a message the shared child sends on its own reaches only the session it belongs to, or none', async () => {
  const a = await rawSession(url);
  const b = await rawSession(url);
  // Only A has a request in flight: A gets the log message, on its request stream.
  const alone = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'log_then_wait', arguments: { text: 'for-a-only', ms: 50 } } }, { ...V, 'mcp-session-id': a });
  assert.match(alone.text, /for-a-only/);
  // Both busy: the child's log cannot be attributed, so neither session sees it.
  // B's call is in flight first (it sleeps 2 s), then A's sends its log.
  const pb = post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: { ms: 2000 } } }, { ...V, 'mcp-session-id': b });
  await new Promise((r) => setTimeout(r, 500));
  const ra = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'log_then_wait', arguments: { text: 'ambiguous-secret', ms: 50 } } }, { ...V, 'mcp-session-id': a });
  const rb = await pb;
  assert.doesNotMatch(ra.text, /ambiguous-secret/);
  assert.doesNotMatch(rb.text, /ambiguous-secret/);
  assert.match(rb.text, /slept 2000/);
});
