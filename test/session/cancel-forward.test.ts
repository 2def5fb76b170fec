/**
 * A client's notifications/cancelled is best effort: forwarded to the upstream, but an upstream
 * that never accepts it (given up after the HTTP upstream's cancelGraceMs, 1 s) is not an error
 * for the client, whose POST of the notification still gets 202 Accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gateway, post, rawSession } from '../helpers/gateway.js';
import { listenLoopback, until } from '../helpers/raw-http.js';

interface Seen {
  method: string;
  id?: number | string;
  params?: Record<string, unknown>;
  /** The request's connection closed (by the gateway: this server never closes one). */
  closed: boolean;
}

/** An MCP upstream over plain node:http that completes the handshake, then answers nothing. */
async function hungUpstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') return void res.writeHead(405, { 'content-length': 0 }).end();
    if (req.method === 'DELETE') return void res.writeHead(200, { 'content-length': 0 }).end();
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const m = JSON.parse(body) as { id?: number | string; method: string; params?: Record<string, unknown> };
      const s: Seen = { method: m.method, id: m.id, params: m.params, closed: false };
      seen.push(s);
      res.once('close', () => (s.closed = true));
      if (m.method === 'initialize') {
        const text = JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'hung', version: '1' } } });
        return void res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'up-1' }).end(text);
      }
      if (m.method === 'notifications/initialized') return void res.writeHead(202, { 'content-length': 0 }).end();
      // tools/call and notifications/cancelled: never answered, never accepted.
    });
  });
  const { port, close } = await listenLoopback(server);
  return { url: `http://127.0.0.1:${port}/mcp`, seen, close };
}

test('a cancellation the upstream never accepts: the client still gets 202 (after the grace, not an error), the upstream got it with its own id, the hung call is closed', async () => {
  const up = await hungUpstream();
  // No drain at close: the cancelled call stays pending in the session (no answer is due).
  const gw = await gateway({ transport: { shutdownGraceMs: 0 }, servers: { hung: { http: { url: up.url } } } }, { bare: true });
  const call = new AbortController();
  try {
    const url = `${gw.url}/mcp/hung`;
    const sid = await rawSession(url);
    const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid };
    const pending = fetch(url, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({ jsonrpc: '2.0', id: 'c-1', method: 'tools/call', params: { name: 'slow', arguments: {} } }),
      signal: call.signal,
    }).catch(() => undefined);
    await until(() => up.seen.some((s) => s.method === 'tools/call'), 'the call upstream', 3000);
    const upstreamCall = up.seen.find((s) => s.method === 'tools/call')!;

    const t0 = performance.now();
    const r = await post(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c-1', reason: 'user' } }, { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid });
    const took = performance.now() - t0;
    assert.equal(r.status, 202, `the cancellation got ${r.status}: ${r.text}`);
    assert.equal(r.text, '');
    assert.ok(took < 2500, `202 after ${Math.round(took)} ms`);

    const cancel = up.seen.find((s) => s.method === 'notifications/cancelled');
    assert.ok(cancel, 'the upstream got the cancellation');
    assert.equal(cancel.params?.requestId, upstreamCall.id, "with the upstream's id for the call, not the client's");
    await until(() => upstreamCall.closed && cancel.closed, 'the hung call and the unaccepted cancellation closed by the gateway', 2000);
    call.abort();
    await pending;
  } finally {
    call.abort();
    await gw.close();
    await up.close();
  }
});
