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
import { until } from '../helpers/raw-http.js';

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

test('the hub forgets a request when it is answered or cancelled: routes and progress tokens do not outlive their request', async () => {
  const { SharedStdioHub } = await import('../../src/upstream/shared-stdio.js');
  const hub = new SharedStdioHub({ spec: { ...faulty, env: {} } as never, maxMessageBytes: 1 << 20 });
  const got: any[] = [];
  const conn = hub.connect({ onMessage: (m) => void got.push(m), onClose: () => {} });
  try {
    await conn.start();
    await conn.send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
    await until(() => got.some((m) => m.id === 1), 'initialized');
    await conn.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    // Answered, with a progress token: nothing left once the answer is delivered.
    await conn.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' }, _meta: { progressToken: 'tok-2' } } });
    await until(() => got.some((m) => m.id === 2), 'echo answered');
    assert.deepEqual(hub.tracked, { routes: 0, tokens: 0 });
    // Never answered, then cancelled: forgotten at the cancellation.
    await conn.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'hang', arguments: {}, _meta: { progressToken: 'tok-3' } } });
    assert.deepEqual(hub.tracked, { routes: 1, tokens: 1 });
    await conn.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 3, reason: 'test' } });
    assert.deepEqual(hub.tracked, { routes: 0, tokens: 0 });
  } finally {
    await conn.close();
    await hub.close();
  }
});

test('a client cancellation ends its call at once: the open POST closes without an answer, the call is audited as cancelled, nothing stays in flight', async () => {
  const events: any[] = [];
  const audit = { emit: (e: any) => void events.push(e), flush: async () => {}, close: async () => {} };
  const g = await gateway({ servers: { f: { stdio: { ...faulty, shared: true } } } }, { bare: true, audit } as never);
  const u = `${g.url}/mcp/f`;
  try {
    const sid = await rawSession(u);
    const call = post(u, { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'hang', arguments: {} } }, { ...V, 'mcp-session-id': sid });
    await until(() => g.sessions.get(sid)?.inFlight === 1, 'call in flight');
    const t0 = Date.now();
    const cancel = await post(u, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1', reason: 'user' } }, { ...V, 'mcp-session-id': sid });
    assert.equal(cancel.status, 202);
    const r = await Promise.race([call, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the cancelled call was still open after 5 s')), 5_000).unref())]);
    assert.ok(Date.now() - t0 < 2_000, 'the cancelled call did not wait for a timeout');
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.text, /"id"/, 'no JSON-RPC answer for a cancelled request');
    assert.equal(g.sessions.get(sid)?.inFlight, 0);
    const rec = events.find((e) => e.type === 'tool.call.completed' && e.tool === 'hang');
    assert.equal(rec?.status, 'cancelled');
    assert.equal(rec?.reason, 'client_cancelled');
    // The session goes on.
    assert.match((await post(u, echo('after'), { ...V, 'mcp-session-id': sid })).json.result.content[0].text, /^after/);
  } finally {
    await g.close();
  }
});

test('progress for a request that is no longer in flight (cancelled) is dropped, never given to another request of the session', async () => {
  // Per-session child (not shared): the session relates progress by the client's own token.
  const g = await gateway({ servers: { f: { stdio: { ...faulty } } } }, { bare: true });
  const u = `${g.url}/mcp/f`;
  try {
    const sid = await rawSession(u);
    const h = { ...V, 'mcp-session-id': sid };
    const a = post(u, { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'progress_later', arguments: { ms: 300 }, _meta: { progressToken: 'tok-a' } } }, h);
    await until(() => g.sessions.get(sid)?.inFlight === 1, 'a in flight');
    assert.equal((await post(u, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'a' } }, h)).status, 202);
    await a;
    // b is the only request in flight when a's late progress arrives.
    const b = await post(u, { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'slow', arguments: { ms: 800 } } }, h);
    assert.equal(b.status, 200);
    assert.match(b.text, /slept 800/);
    assert.doesNotMatch(b.text, /tok-a|late progress/, "a's progress did not reach b's stream");
  } finally {
    await g.close();
  }
});
