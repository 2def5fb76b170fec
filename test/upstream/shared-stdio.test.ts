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
