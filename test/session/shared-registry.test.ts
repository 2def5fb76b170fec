/**
 * Sessions across replicas (shared state store): a session made on one gateway is served by
 * another (which replays the handshake to its own upstream), ended everywhere by DELETE, and
 * unknown ids stay 404. The two gateways share nothing but the store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStateStore } from '../../src/stores/memory.js';
import type { StateStore } from '../../src/stores/types.js';
import { demoStdio, gateway, post, rawSession } from '../helpers/gateway.js';

/** One in-process store both gateways reach, declared shared (as Redis is). */
function sharedStore(): StateStore {
  const m = new MemoryStateStore();
  return new Proxy(m, {
    get(target, prop, recv) {
      if (prop === 'shared') return true;
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

test('a session created on replica A is served by replica B and ended everywhere', async () => {
  const store = sharedStore();
  const cfg = { servers: { notes: { stdio: demoStdio() } } };
  const a = await gateway(cfg, { bare: true, store });
  const b = await gateway(cfg, { bare: true, store });
  try {
    const V = { 'mcp-protocol-version': '2025-11-25' };
    const sid = await rawSession(`${a.url}/mcp/notes`);
    const onB = await post(`${b.url}/mcp/notes`, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'from B' } } }, { ...V, 'mcp-session-id': sid });
    assert.equal(onB.status, 200, onB.text);
    assert.equal(onB.json.result.content[0].text, 'from B');
    assert.equal(b.sessions.size, 1);
    // unknown everywhere
    const unknown = await post(`${b.url}/mcp/notes`, { jsonrpc: '2.0', id: 2, method: 'ping' }, { ...V, 'mcp-session-id': 'x'.repeat(43) });
    assert.equal(unknown.status, 404);
    // DELETE on B ends it on A too
    const del = await fetch(`${b.url}/mcp/notes`, { method: 'DELETE', headers: { ...V, 'mcp-session-id': sid } });
    assert.equal(del.status, 200);
    for (let i = 0; i < 50 && a.sessions.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(a.sessions.size, 0);
    const after = await post(`${a.url}/mcp/notes`, { jsonrpc: '2.0', id: 3, method: 'ping' }, { ...V, 'mcp-session-id': sid });
    assert.equal(after.status, 404);
  } finally {
    await a.close();
    await b.close();
  }
});

test('without a shared store, another replica answers 404 for a session it does not hold', async () => {
  const cfg = { servers: { notes: { stdio: demoStdio() } } };
  const a = await gateway(cfg, { bare: true });
  const b = await gateway(cfg, { bare: true });
  try {
    const sid = await rawSession(`${a.url}/mcp/notes`);
    const r = await post(`${b.url}/mcp/notes`, { jsonrpc: '2.0', id: 1, method: 'ping' }, { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid });
    assert.equal(r.status, 404);
  } finally {
    await a.close();
    await b.close();
  }
});
