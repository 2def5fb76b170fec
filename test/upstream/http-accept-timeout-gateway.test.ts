/**
 * `servers.NAME.http.acceptTimeoutMs` end to end: an upstream that completes initialize and
 * accepts notifications/initialized but never answers the standalone GET's head holds the
 * client's notifications/initialized (and so every later request of the session) for that long
 * only; the GET connection is closed and the session goes on without the server → client stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { gateway, post, rawSession } from '../helpers/gateway.js';
import { listenLoopback, until } from '../helpers/raw-http.js';
import { createLogger } from '../../src/logger.js';

interface Seen {
  method: string;
  /** The request's connection closed (by the gateway: this server never closes one). */
  closed: boolean;
}

/** An MCP upstream over node:http that answers POSTs but never a GET, not even its head. */
async function noGetHeadUpstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      const s: Seen = { method: 'GET', closed: false };
      seen.push(s);
      res.once('close', () => (s.closed = true));
      return; // never answered
    }
    if (req.method === 'DELETE') return void res.writeHead(200, { 'content-length': 0 }).end();
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const m = JSON.parse(body) as { id?: number | string; method: string };
      seen.push({ method: m.method, closed: false });
      if (m.method === 'notifications/initialized') return void res.writeHead(202, { 'content-length': 0 }).end();
      const result =
        m.method === 'initialize'
          ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'no-get', version: '1' } }
          : { tools: [{ name: 'echo', description: 'echo', inputSchema: { type: 'object' } }] };
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'up-1' }).end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
    });
  });
  const { port, close } = await listenLoopback(server);
  return { url: `http://127.0.0.1:${port}/mcp`, seen, close };
}

/** `p`, or a rejection naming `what` if it has not settled within `ms` (a hang fails the test). */
async function within<T>(p: Promise<T>, what: string, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

test('servers.NAME.http.acceptTimeoutMs reaches the HTTP upstream: a standalone GET whose head never comes holds the session for that long only, its connection is closed, the operator is told, and tools/list is answered', async () => {
  const up = await noGetHeadUpstream();
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger('info', sink);
  const gw = await gateway({ transport: { shutdownGraceMs: 0 }, servers: { noget: { http: { url: up.url, acceptTimeoutMs: 300 } } } }, { bare: true, logger });
  try {
    const url = `${gw.url}/mcp/noget`;
    const t0 = performance.now();
    // initialize, then notifications/initialized: its 202 waits for the GET's head, or 300 ms.
    const sid = await within(rawSession(url), 'the session (initialize and notifications/initialized)', 5000);
    const took = performance.now() - t0;
    assert.ok(took >= 280, `the session was ready after ${Math.round(took)} ms, before acceptTimeoutMs`);
    const get = up.seen.find((s) => s.method === 'GET');
    assert.ok(get, 'the upstream got the standalone GET');
    await until(() => get.closed, 'the GET connection closed by the gateway', 2000);

    const r = await within(
      post(url, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }, { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid }),
      'tools/list',
      5000,
    );
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, 2);
    assert.deepEqual(
      (r.json.result.tools as { name: string }[]).map((t) => t.name),
      ['echo'],
    );
    assert.deepEqual(
      up.seen.filter((s) => s.method !== 'GET').map((s) => s.method),
      ['initialize', 'notifications/initialized', 'tools/list'],
    );
    // The operational log says what happened and when the stream is tried again.
    const warned = logs.find((l) => /upstream GET stream failed/.test(String(l.msg)));
    assert.ok(warned, `a warning about the GET stream, got ${JSON.stringify(logs.map((l) => l.msg))}`);
    assert.equal(warned.level, 40);
    assert.equal(warned.mount, 'noget');
    assert.equal(warned.reason, 'head_timeout');
    assert.equal(warned.retryInMs, 1000);
  } finally {
    await gw.close();
    await up.close();
  }
});
