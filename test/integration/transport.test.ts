/**
 * Transport-level refusals (issue 2): each answered with the status and JSON-RPC error the
 * Streamable HTTP transport defines, before anything reaches the upstream.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Gateway } from '../../src/server.js';
import { demoStdio, gateway, INIT, post, rawSession } from '../helpers/gateway.js';

function rawRequest(url: string, opts: { method: string; headers: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method, headers: opts.headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('transport refusals', () => {
  let gw: Gateway;
  let url: string;
  let sid: string;
  const V = { 'mcp-protocol-version': '2025-11-25' };

  before(async () => {
    gw = await gateway({ servers: { notes: { stdio: demoStdio() } }, transport: { maxBodyBytes: 2048, allowedOrigins: ['https://app.example.com'] } }, { bare: true });
    url = `${gw.url}/mcp/notes`;
    sid = await rawSession(url);
  });
  after(() => gw?.close());

  test('an Origin that is not allowed gets 403; an allowed one passes', async () => {
    const r = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...V, 'mcp-session-id': sid, origin: 'https://evil.example.com' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, -32600);
    assert.match(r.json.error.message, /Origin/);
    const ok = await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { ...V, 'mcp-session-id': sid, origin: 'https://app.example.com' });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.result, {});
  });

  test('a Host header that does not name the gateway gets 403 (DNS rebinding)', async () => {
    const r = await rawRequest(url, {
      method: 'POST',
      headers: { host: 'evil.example.com', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(INIT),
    });
    assert.equal(r.status, 403);
    assert.match(r.body, /Host/);
    const ok = await rawRequest(url.replace('127.0.0.1', 'localhost'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...V, 'mcp-session-id': sid },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
    });
    assert.equal(ok.status, 200);
  });

  test('an unsupported MCP-Protocol-Version gets 400', async () => {
    const r = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { 'mcp-session-id': sid, 'mcp-protocol-version': '1999-01-01' });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /MCP-Protocol-Version/);
  });

  test('a body over the limit gets 413, declared or streamed', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(4000) } } });
    const r = await post(url, big, { ...V, 'mcp-session-id': sid });
    assert.equal(r.status, 413);
    // chunked, no content-length: the limit holds while streaming
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...V, 'mcp-session-id': sid, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(big.slice(0, 1000));
      req.end(big.slice(1000));
    });
    assert.equal(chunked, 413);
  });

  test('malformed JSON gets 400 with -32700; a non-message gets 400 with -32600; a batch is refused', async () => {
    const bad = await post(url, '{"jsonrpc": "2.0", "id": 1, "method": ', { ...V, 'mcp-session-id': sid });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, -32700);
    const notMsg = await post(url, { hello: 'world' }, { ...V, 'mcp-session-id': sid });
    assert.equal(notMsg.status, 400);
    assert.equal(notMsg.json.error.code, -32600);
    const batch = await post(url, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], { ...V, 'mcp-session-id': sid });
    assert.equal(batch.status, 400);
    assert.match(batch.json.error.message, /batch/);
  });

  test('an unknown session gets 404; a missing one 400; initialize with a session id 400', async () => {
    const unknown = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...V, 'mcp-session-id': 'not-a-session' });
    assert.equal(unknown.status, 404);
    const missing = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, V);
    assert.equal(missing.status, 400);
    const reinit = await post(url, INIT, { 'mcp-session-id': sid });
    assert.equal(reinit.status, 400);
  });

  test('Accept and Content-Type are enforced; other methods get 405', async () => {
    const noSse = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...V, 'mcp-session-id': sid, accept: 'application/json' });
    assert.equal(noSse.status, 406);
    const text = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain', accept: 'application/json, text/event-stream', 'mcp-session-id': sid }, body: '{}' });
    assert.equal(text.status, 415);
    const put = await fetch(url, { method: 'PUT', headers: { 'mcp-session-id': sid } });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'POST, GET, DELETE');
  });

  test('an answer to a server request that was never asked is refused', async () => {
    const r = await post(url, { jsonrpc: '2.0', id: 'forged', result: {} }, { ...V, 'mcp-session-id': sid });
    assert.equal(r.status, 400);
  });

  test('a request id already in flight in the session is refused', async () => {
    const slow = post(url, { jsonrpc: '2.0', id: 'dup', method: 'tools/call', params: { name: 'echo', arguments: { text: 'a' } } }, { ...V, 'mcp-session-id': sid });
    const second = await post(url, { jsonrpc: '2.0', id: 'dup', method: 'ping' }, { ...V, 'mcp-session-id': sid });
    const first = await slow;
    assert.equal(first.status, 200);
    // Either the first finished before the second arrived (then both succeed) or the second is refused.
    assert.ok(second.status === 200 || second.status === 400);
  });

  test('DELETE ends the session; it is then unknown', async () => {
    const s2 = await rawSession(url);
    const del = await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': s2, ...V } });
    assert.equal(del.status, 200);
    const after = await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...V, 'mcp-session-id': s2 });
    assert.equal(after.status, 404);
  });

  test('session ids are 256-bit, visible ASCII, unique', async () => {
    const ids = new Set([sid, await rawSession(url), await rawSession(url)]);
    assert.equal(ids.size, 3);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{43}$/);
  });

  test('an unknown mount and an unknown path get 404; health endpoints answer', async () => {
    assert.equal((await post(`${gw.url}/mcp/nope`, INIT)).status, 404);
    assert.equal((await fetch(`${gw.url}/elsewhere`)).status, 404);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
  });
});

test('/readyz is 503 while the state store cannot be reached', async () => {
  const { MemoryStateStore } = await import('../../src/stores/memory.js');
  const store = new MemoryStateStore();
  let down = false;
  const flaky = new Proxy(store, {
    get(target, prop, recv) {
      if (prop === 'get') return async (k: string) => {
        if (down) throw new Error('state store unreachable');
        return target.get(k);
      };
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const gw = await gateway({ servers: { notes: { stdio: demoStdio() } } }, { bare: true, store: flaky });
  try {
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
    down = true;
    const r = await fetch(`${gw.url}/readyz`);
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { state: string }).state, 'unavailable');
  } finally {
    await gw.close();
  }
});

test('a client that drops a streaming response resumes it with GET Last-Event-ID and loses nothing', async () => {
  const fixture = new URL('../fixtures/conformance-server.ts', import.meta.url).pathname;
  const gw = await gateway({ servers: { c: { stdio: { command: process.execPath, args: ['--import', 'tsx', fixture, '--stdio'] } } } }, { bare: true });
  try {
    const url = `${gw.url}/mcp/c`;
    const sid = await rawSession(url);
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid };
    const body = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'tok' } } });
    // Read the first SSE event (progress 0), then drop the connection mid-call.
    const firstId = await new Promise<string>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          const m = /^id: (\S+)$/m.exec(buf);
          if (m && buf.includes('\n\n')) {
            resolve(m[1]!);
            req.destroy();
          }
        });
      });
      req.on('error', () => {});
      req.on('close', () => reject(new Error('closed before the first event')));
      req.end(body);
    });
    await new Promise((r) => setTimeout(r, 300)); // the tool finishes while no one listens
    const replay = await new Promise<string>((resolve, reject) => {
      const req = http.request(url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream', 'last-event-id': firstId } }, (res) => {
        assert.equal(res.statusCode, 200);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    const events = replay
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { id?: number; method?: string; params?: { progress?: number }; result?: unknown });
    assert.deepEqual(
      events.filter((e) => e.method === 'notifications/progress').map((e) => e.params?.progress),
      [50, 100],
      'the progress sent after the drop is replayed',
    );
    const result = events.find((e) => e.id === 5);
    assert.ok(result?.result, 'the result sent after the drop is replayed');
  } finally {
    await gw.close();
  }
});

test('every transport refusal is on the audit record once, as request.rejected with its status and reason', async () => {
  const events: Array<Record<string, unknown>> = [];
  const audit = { emit: (e: Record<string, unknown>) => void events.push(e), flush: async () => {}, close: async () => {} };
  const gw = await gateway({ servers: { notes: { stdio: demoStdio() } }, transport: { maxBodyBytes: 2048 } }, { bare: true, audit: audit as never });
  try {
    const url = `${gw.url}/mcp/notes`;
    const sid = await rawSession(url);
    events.length = 0;
    const V = { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': sid };
    const cases: Array<[string, Promise<{ status: number }>, number]> = [
      ['origin', post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...V, origin: 'https://evil.example.com' }), 403],
      ['version', post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { ...V, 'mcp-protocol-version': '1999-01-01' }), 400],
      ['body', post(url, { jsonrpc: '2.0', id: 3, method: 'ping', params: { pad: 'x'.repeat(4096) } }, V), 413],
      ['json', post(url, '{not json', V), 400],
      ['session', post(url, { jsonrpc: '2.0', id: 4, method: 'ping' }, { ...V, 'mcp-session-id': 'no-such-session' }), 404],
    ];
    for (const [what, p, status] of cases) assert.equal((await p).status, status, what);
    const rejected = events.filter((e) => e.type === 'request.rejected');
    assert.equal(rejected.length, cases.length, 'one record per refusal');
    assert.deepEqual(
      rejected.map((e) => e.status).sort(),
      cases.map(([, , s]) => s).sort(),
    );
    for (const e of rejected) {
      assert.equal(e.outcome, 'denied');
      assert.equal(typeof e.reason, 'string');
      assert.equal(e.mount, 'notes');
    }
  } finally {
    await gw.close();
  }
});
