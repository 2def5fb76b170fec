/**
 * The Streamable HTTP upstream (src/upstream/http.ts) over the gateway's own HTTP/1.1 pool,
 * against raw node:net servers written here (every response byte under the test's control):
 * JSON and SSE answers, 202 for a request, session expiry, an invalid session id, header
 * injection through the protocol version, the body size limit, SSE resumption with
 * Last-Event-ID, a connection that breaks mid-body, which headers the upstream gets, and
 * cancellation (notifications/cancelled closes the cancelled request's socket and silences it),
 * close() or a failure aborting every exchange still under way, and acceptTimeoutMs (a notification
 * or a response the upstream never accepts is aborted, and no longer holds later sends; a
 * standalone GET whose head never comes is aborted, afterInitialized() returns, and it is retried
 * like a failed connect).
 */
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { HttpUpstream, type GetStreamFailure, type HttpUpstreamOptions } from '../../src/upstream/http.js';
import { Http1Error, Http1Pool } from '../../src/upstream/http1.js';
import type { JsonRpcId, JsonRpcMessage } from '../../src/pipeline/messages.js';
import type { UpstreamCloseReason } from '../../src/upstream/connection.js';
import { delay, takeRequests, until } from '../helpers/raw-http.js';


// ---------------------------------------------------------------------------------------------
// A raw upstream: parses our client's requests, records them and every connection.

interface RawRequest {
  method: string;
  path: string;
  /** Header lines as received, in order, names lower-cased. */
  headers: [string, string][];
  body: string;
  raw: string;
  socket: net.Socket;
}

interface RawServer {
  url: string;
  requests: RawRequest[];
  sockets: { socket: net.Socket; closed: boolean }[];
  close(): Promise<void>;
}

const header = (r: RawRequest, name: string): string | undefined => r.headers.find(([n]) => n === name)?.[1];

async function rawServer(respond: (req: RawRequest) => void, path = '/mcp'): Promise<RawServer> {
  const requests: RawRequest[] = [];
  const sockets: RawServer['sockets'] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const rec = { socket, closed: false };
    sockets.push(rec);
    socket.once('close', () => (rec.closed = true));
    const buf = { data: '' };
    socket.on('data', (d: Buffer) => {
      buf.data += d.toString('latin1');
      takeRequests(buf, (r) => {
        const req: RawRequest = {
          ...r,
          headers: r.headers.map(([n, v]): [string, string] => [n.toLowerCase(), v]),
          body: Buffer.from(r.body, 'latin1').toString('utf8'),
          socket,
        };
        requests.push(req);
        respond(req);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}${path}`,
    requests,
    sockets,
    async close() {
      for (const s of sockets) s.socket.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const write = (s: net.Socket, text: string): void => {
  s.write(Buffer.from(text, 'utf8'));
};

function jsonResponse(body: unknown, extra = '', status = '200 OK'): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return `HTTP/1.1 ${status}\r\n${extra}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
}

/** An SSE response head (chunked) followed by one chunk per event text, then the last chunk. */
function sseResponse(events: string[], extra = ''): string {
  let out = `HTTP/1.1 200 OK\r\n${extra}Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n`;
  for (const e of events) out += `${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`;
  return `${out}0\r\n\r\n`;
}

const sseEvent = (msg: unknown, id?: string): string => `${id !== undefined ? `id: ${id}\n` : ''}event: message\ndata: ${JSON.stringify(msg)}\n\n`;

// ---------------------------------------------------------------------------------------------

interface Harness {
  up: HttpUpstream;
  pool: Http1Pool;
  messages: { msg: JsonRpcMessage; relatedTo: JsonRpcId | undefined }[];
  closes: UpstreamCloseReason[];
}

function harness(srv: RawServer, opts: Partial<HttpUpstreamOptions> = {}): Harness {
  const pool = new Http1Pool({ url: new URL(opts.url ?? srv.url), connectTimeoutMs: 1000 });
  const messages: Harness['messages'] = [];
  const closes: UpstreamCloseReason[] = [];
  const up = new HttpUpstream({
    url: srv.url,
    pool,
    headers: {},
    maxMessageBytes: 1 << 20,
    handlers: { onMessage: (msg, relatedTo) => messages.push({ msg, relatedTo }), onClose: (r) => closes.push(r) },
    ...opts,
  });
  return { up, pool, messages, closes };
}

async function run(respond: (req: RawRequest) => void, opts: Partial<HttpUpstreamOptions>, body: (h: Harness, srv: RawServer) => Promise<void>): Promise<void> {
  const srv = await rawServer(respond);
  const h = harness(srv, opts);
  try {
    await body(h, srv);
  } finally {
    h.pool.close();
    await srv.close();
  }
}

const req = (id: JsonRpcId, method = 'tools/list', params: Record<string, unknown> = {}): JsonRpcMessage => ({ jsonrpc: '2.0', id, method, params });
const result = (id: JsonRpcId, r: Record<string, unknown> = { ok: true }): JsonRpcMessage => ({ jsonrpc: '2.0', id, result: r });
const progress = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1 } };

function assertUpstreamError(h: Harness, id: JsonRpcId, detail: RegExp): void {
  const m = h.messages.find((x) => 'id' in x.msg && x.msg.id === id);
  assert.ok(m, `a message for request ${id}`);
  assert.equal(m.relatedTo, id);
  const msg = m.msg as { error?: { code: number; message: string } };
  assert.ok(msg.error, `an error for request ${id}, got ${JSON.stringify(m.msg)}`);
  assert.equal(msg.error.code, -32603);
  assert.match(msg.error.message, detail);
}

// =============================================================================================

test('a JSON answer is delivered through onMessage, related to the request; the POST is what the transport says', async () => {
  await run(
    (r) => write(r.socket, jsonResponse(result(1, { tools: [] }))),
    {},
    async (h, srv) => {
      await h.up.send(req(1));
      await until(() => h.messages.length === 1, 'the answer');
      assert.deepEqual(h.messages, [{ msg: result(1, { tools: [] }), relatedTo: 1 }]);
      const r = srv.requests[0]!;
      assert.equal(r.method, 'POST');
      assert.equal(r.path, '/mcp');
      assert.equal(header(r, 'content-type'), 'application/json');
      assert.equal(header(r, 'accept'), 'application/json, text/event-stream');
      assert.deepEqual(JSON.parse(r.body), req(1));
      assert.deepEqual(h.closes, []);
    },
  );
});

test('an SSE answer: the notification and the response on the stream, both related to the request', async () => {
  await run(
    (r) => write(r.socket, sseResponse([': comment\n\n', sseEvent(progress, 'e1'), sseEvent(result(7), 'e2')])),
    {},
    async (h) => {
      await h.up.send(req(7, 'tools/call', { name: 'x' }));
      await until(() => h.messages.length === 2, 'both messages');
      assert.deepEqual(h.messages, [
        { msg: progress, relatedTo: 7 },
        { msg: result(7), relatedTo: 7 },
      ]);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('202 for a request synthesizes a JSON-RPC error for it; 202 for a notification is just accepted', async () => {
  await run(
    (r) => write(r.socket, 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n'),
    {},
    async (h) => {
      await h.up.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      await h.up.send(req(3));
      await until(() => h.messages.length === 1, 'the synthesized error');
      assertUpstreamError(h, 3, /accepted a request without answering it/);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('404 once a session id was captured closes the upstream as expired; a 404 before that is an error answer', async () => {
  let n = 0;
  await run(
    (r) => {
      n++;
      if (n === 1) write(r.socket, 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      else if (n === 2) write(r.socket, jsonResponse(result(2, { protocolVersion: '2025-11-25' }), 'Mcp-Session-Id: sess-1\r\n'));
      else write(r.socket, 'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found');
    },
    {},
    async (h, srv) => {
      await h.up.send(req(1));
      await until(() => h.messages.length === 1, 'the first answer');
      assertUpstreamError(h, 1, /upstream answered HTTP 404/);
      assert.equal(h.closes.length, 0);
      await h.up.send(req(2, 'initialize'));
      await until(() => h.messages.length === 2, 'the initialize answer');
      await h.up.send(req(3));
      await until(() => h.closes.length === 1, 'the close');
      assert.equal(h.closes[0]!.kind, 'expired');
      assert.equal(h.up.alive, false);
      assert.equal(header(srv.requests[2]!, 'mcp-session-id'), 'sess-1', 'the session id was sent back');
      assert.equal(header(srv.requests[1]!, 'mcp-session-id'), undefined);
      await assert.rejects(h.up.send(req(4)), /closed/);
    },
  );
});

test('an invalid Mcp-Session-Id from the upstream (a space, too long, non-ASCII) fails the upstream with kind protocol', async () => {
  for (const sid of ['bad id', 'x'.repeat(257), 'caf\xe9', 'a\tb']) {
    await run(
      (r) => r.socket.write(Buffer.from(jsonResponse(result(1), `Mcp-Session-Id: ${sid}\r\n`), 'latin1')),
      {},
      async (h, srv) => {
        await h.up.send(req(1, 'initialize'));
        await until(() => h.closes.length === 1, 'the close');
        assert.equal(h.closes[0]!.kind, 'protocol');
        assert.match(h.closes[0]!.detail, /invalid Mcp-Session-Id/);
        assert.equal(h.up.alive, false);
        await delay(5);
        assert.deepEqual(h.messages, [], 'nothing from that response is delivered');
        assert.equal(srv.requests.length, 1);
      },
    );
  }
});

test('a session id with a control character is refused by the HTTP parser already: the request fails, nothing is captured', async () => {
  let n = 0;
  await run(
    (r) => r.socket.write(Buffer.from(jsonResponse(result(JSON.parse(r.body).id as number), n++ === 0 ? 'Mcp-Session-Id: bad\x01id\r\n' : ''), 'latin1')),
    {},
    async (h, srv) => {
      await assert.rejects(h.up.send(req(1, 'initialize')), /control characters/);
      assertUpstreamError(h, 1, /upstream request failed/);
      await h.up.send(req(2));
      await until(() => h.messages.length === 2, 'answer 2');
      assert.equal(header(srv.requests[1]!, 'mcp-session-id'), undefined);
    },
  );
});

test('a protocol version with CR/LF never reaches the upstream as a header', async () => {
  const bad = '2025-06-18\r\nx-injected: 1';
  // Set before the session id: refused at once and not kept, so the session id the first
  // response brings is still captured and sent.
  await run(
    (r) => write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number), 'Mcp-Session-Id: sess-9\r\n')),
    {},
    async (h, srv) => {
      assert.throws(() => h.up.setProtocolVersion(bad), Http1Error);
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'an answer for request 1');
      await h.up.send(req(2));
      await until(() => h.messages.length === 2, 'an answer for request 2');
      assert.equal(srv.requests.length, 2);
      assert.equal(header(srv.requests[1]!, 'mcp-session-id'), 'sess-9');
      for (const r of srv.requests) {
        assert.equal(header(r, 'x-injected'), undefined);
        assert.doesNotMatch(r.raw, /x-injected/i);
        const v = header(r, 'mcp-protocol-version');
        assert.ok(v === undefined || v === '2025-06-18', `protocol version sent: ${JSON.stringify(v)}`);
      }
    },
  );
  // Set after the session id was captured (and a good version was in use).
  await run(
    (r) => write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number), 'Mcp-Session-Id: sess-9\r\n')),
    {},
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'the initialize answer');
      h.up.setProtocolVersion('2025-06-18');
      assert.throws(() => h.up.setProtocolVersion(bad), Http1Error);
      await h.up.send(req(2)).catch(() => {});
      await delay(20);
      assert.equal(srv.requests.length, 2);
      for (const r of srv.requests) {
        assert.equal(header(r, 'x-injected'), undefined);
        assert.doesNotMatch(r.raw, /x-injected/i);
      }
      assert.equal(header(srv.requests[1]!, 'mcp-protocol-version'), '2025-06-18');
      assert.equal(header(srv.requests[1]!, 'mcp-session-id'), 'sess-9');
    },
  );
});

test('a JSON body over maxMessageBytes fails the upstream (protocol) and the socket is aborted', async () => {
  await run(
    (r) => write(r.socket, `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"jsonrpc":"2.0","id":1,"result":{"pad":"${'a'.repeat(2000)}`),
    { maxMessageBytes: 1000 },
    async (h, srv) => {
      await h.up.send(req(1));
      await until(() => h.closes.length === 1, 'the close');
      assert.equal(h.closes[0]!.kind, 'protocol');
      assert.match(h.closes[0]!.detail, /exceeds 1000 bytes/);
      await until(() => srv.sockets[0]!.closed, 'the server to see the socket closed');
      assert.equal(h.pool.size, 0);
      assert.deepEqual(h.messages, []);
      assert.equal(h.up.inflightCount, 0, 'the aborted exchange is no longer tracked');
    },
  );
});

test('an SSE stream that ends before the response, after an event id, is resumed with GET + Last-Event-ID', async () => {
  await run(
    (r) => {
      if (r.method === 'POST') write(r.socket, sseResponse(['retry: 10\n\n', sseEvent(progress, 'ev-1')], 'Mcp-Session-Id: s-1\r\n'));
      else write(r.socket, sseResponse([sseEvent(result(5), 'ev-2')]));
    },
    {},
    async (h, srv) => {
      const t0 = performance.now();
      await h.up.send(req(5, 'tools/call'));
      await until(() => h.messages.length === 2, 'the notification and the resumed response');
      assert.deepEqual(h.messages, [
        { msg: progress, relatedTo: 5 },
        { msg: result(5), relatedTo: 5 },
      ]);
      assert.ok(performance.now() - t0 < 900, 'the server retry (10 ms) was used, not the 1 s default');
      const get = srv.requests[1]!;
      assert.equal(get.method, 'GET');
      assert.equal(get.path, '/mcp');
      assert.equal(header(get, 'last-event-id'), 'ev-1');
      assert.equal(header(get, 'accept'), 'text/event-stream');
      assert.equal(header(get, 'mcp-session-id'), 's-1');
      assert.equal(header(get, 'content-length'), undefined);
      assert.equal(get.body, '');
      assert.equal(srv.requests.length, 2);
    },
  );
});

test('an SSE stream that ends before the response without an event id yields a JSON-RPC error, and no GET', async () => {
  await run(
    (r) => write(r.socket, sseResponse(['retry: 10\n\n', sseEvent(progress)])),
    {},
    async (h, srv) => {
      await h.up.send(req(6, 'tools/call'));
      await until(() => h.messages.length === 2, 'the error');
      assertUpstreamError(h, 6, /closed the response stream before answering/);
      await delay(30);
      assert.equal(srv.requests.length, 1);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('resumption is bounded: after maxResumeAttempts the request gets a JSON-RPC error', async () => {
  let n = 0;
  await run(
    (r) => write(r.socket, sseResponse(['retry: 5\n\n', sseEvent(progress, `ev-${n++}`)])),
    { maxResumeAttempts: 2 },
    async (h, srv) => {
      await h.up.send(req(8, 'tools/call'));
      await until(() => h.messages.some((m) => 'id' in m.msg), 'the error');
      assertUpstreamError(h, 8, /closed the response stream before answering/);
      assert.deepEqual(
        srv.requests.map((r) => `${r.method} ${header(r, 'last-event-id') ?? ''}`),
        ['POST ', 'GET ev-0', 'GET ev-1'],
      );
    },
  );
});

test('a connection reset mid-body of a JSON response yields a JSON-RPC error for that request', async () => {
  await run(
    (r) => {
      write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc":"2.0",');
      setTimeout(() => r.socket.resetAndDestroy(), 10);
    },
    {},
    async (h) => {
      await h.up.send(req(9));
      await until(() => h.messages.length === 1, 'the error');
      assertUpstreamError(h, 9, /connection failed before the response ended/);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('a connection reset before any response: the send rejects and the request gets a JSON-RPC error', async () => {
  await run(
    (r) => r.socket.resetAndDestroy(),
    {},
    async (h) => {
      await assert.rejects(h.up.send(req(10)));
      await until(() => h.messages.length === 1, 'the error');
      assertUpstreamError(h, 10, /upstream request failed/);
    },
  );
});

test('a connection closed (FIN) mid-body of a JSON response yields a JSON-RPC error for that request', async () => {
  await run(
    (r) => r.socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc":"2.0",'),
    {},
    async (h) => {
      await h.up.send(req(11));
      await until(() => h.messages.length === 1, 'the error', 300);
      assertUpstreamError(h, 11, /connection failed before the response ended/);
    },
  );
});

test('a connection closed (FIN) before any response: the request gets a JSON-RPC error', async () => {
  await run(
    (r) => r.socket.end(),
    {},
    async (h) => {
      const sent = h.up.send(req(12)).catch(() => {});
      await until(() => h.messages.length === 1, 'the error', 300);
      assertUpstreamError(h, 12, /upstream request failed/);
      await sent;
    },
  );
});

test("the upstream sees only the gateway's headers: config, credentials, its own; never the client's token", async () => {
  const calls: unknown[] = [];
  await run(
    (r) => write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number), 'Mcp-Session-Id: sid-1\r\n')),
    {
      headers: { 'X-Config': 'c1' },
      credentials: async (o) => {
        calls.push(o);
        return { authorization: 'Bearer gateway-token' };
      },
    },
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'), { subjectToken: 'client-secret-token' });
      await until(() => h.messages.length === 1, 'answer 1');
      h.up.setProtocolVersion('2025-11-25');
      await h.up.send(req(2), { subjectToken: 'client-secret-token' });
      await until(() => h.messages.length === 2, 'answer 2');
      const names = srv.requests.map((r) => r.headers.map(([n]) => n));
      assert.deepEqual(names[0], ['host', 'x-config', 'content-type', 'accept', 'authorization', 'content-length']);
      assert.deepEqual(names[1], ['host', 'x-config', 'mcp-session-id', 'mcp-protocol-version', 'content-type', 'accept', 'authorization', 'content-length']);
      for (const r of srv.requests) {
        assert.equal(header(r, 'authorization'), 'Bearer gateway-token');
        assert.doesNotMatch(r.raw, /client-secret-token/);
      }
      assert.equal(header(srv.requests[1]!, 'mcp-session-id'), 'sid-1');
      assert.deepEqual(calls, [{ subjectToken: 'client-secret-token' }, { subjectToken: 'client-secret-token' }], 'the token goes to the credential source only');
    },
  );
});

test('URL userinfo becomes Basic authorization (never part of the host header); configured headers with CR/LF are refused at construction', async () => {
  await run(
    (r) => write(r.socket, jsonResponse(result(1))),
    {},
    async (_h, srv) => {
      const pool = new Http1Pool({ url: new URL(srv.url), connectTimeoutMs: 1000 });
      const messages: JsonRpcMessage[] = [];
      const u = new URL(srv.url);
      u.username = 'user';
      u.password = 'p@ss';
      const up = new HttpUpstream({ url: u.toString(), pool, headers: {}, maxMessageBytes: 1 << 20, handlers: { onMessage: (m) => messages.push(m), onClose: () => {} } });
      try {
        await up.send(req(1));
        await until(() => messages.length === 1, 'the answer');
        const r = srv.requests[0]!;
        assert.equal(header(r, 'authorization'), `Basic ${Buffer.from('user:p@ss').toString('base64')}`);
        assert.equal(header(r, 'host'), new URL(srv.url).host);
        assert.doesNotMatch(r.raw, /p@ss|p%40ss/);
      } finally {
        pool.close();
      }
      assert.throws(() => new HttpUpstream({ url: srv.url, pool, headers: { 'x-a': 'a\r\nx-injected: 1' }, maxMessageBytes: 1, handlers: { onMessage() {}, onClose() {} } }), Http1Error);
    },
  );
});

test('headers: each name once on the wire; a configured Host replaces the URL host; credentials replace a same-named header (URL userinfo too); framing and transport headers are refused', async () => {
  await run(
    (r) => write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number))),
    {},
    async (_h, srv) => {
      const u = new URL(srv.url);
      u.username = 'user';
      u.password = 'pw';
      const pool = new Http1Pool({ url: new URL(srv.url), connectTimeoutMs: 1000, hostHeader: 'api.internal.example' });
      const messages: JsonRpcMessage[] = [];
      const up = new HttpUpstream({
        url: u.toString(),
        pool,
        headers: { Host: 'api.internal.example', 'X-Tenant': 't1' },
        credentials: async () => ({ Authorization: 'Bearer from-credentials' }),
        maxMessageBytes: 1 << 20,
        handlers: { onMessage: (m) => messages.push(m), onClose: () => {} },
      });
      try {
        await up.send(req(1));
        await until(() => messages.length === 1, 'the answer');
        const r = srv.requests[0]!;
        const names = r.headers.map(([n]) => n);
        assert.equal(new Set(names).size, names.length, `a header twice: ${names.join(', ')}`);
        assert.equal(header(r, 'host'), 'api.internal.example');
        assert.equal(header(r, 'authorization'), 'Bearer from-credentials');
        assert.equal(header(r, 'x-tenant'), 't1');
      } finally {
        pool.close();
      }
      const mk = (headers: Record<string, string>): HttpUpstream => new HttpUpstream({ url: srv.url, pool, headers, maxMessageBytes: 1, handlers: { onMessage() {}, onClose() {} } });
      for (const name of ['Transfer-Encoding', 'content-length', 'Connection', 'TE', 'Upgrade', 'Content-Type', 'mcp-session-id']) {
        assert.throws(() => mk({ [name]: 'x' }), Http1Error, name);
      }
    },
  );
});

test('a credential that names a framing header fails the request (no smuggled Transfer-Encoding on the wire)', async () => {
  await run(
    (r) => write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number))),
    { credentials: async () => ({ 'Transfer-Encoding': 'chunked' }) },
    async (h, srv) => {
      await h.up.send(req(1)).catch(() => {});
      await delay(30);
      assert.equal(srv.requests.length, 0);
    },
  );
});

/** An upstream that answers POSTs (session `sid`) and DELETE, and hands each GET to `onGet`. */
function withGet(sid: string, onGet: (r: RawRequest) => void): (r: RawRequest) => void {
  return (r) => {
    if (r.method === 'GET') return onGet(r);
    if (r.method === 'DELETE') return write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number), `Mcp-Session-Id: ${sid}\r\n`));
  };
}

test('a standalone GET stream that breaks before any event backs off and gives up; one that ends waits at least 500 ms even after retry: 0', async () => {
  let gets = 0;
  const failures: GetStreamFailure[] = [];
  await run(
    withGet('s-1', (r) => {
      gets++;
      // A head, retry: 0, then a broken chunk line: the stream breaks at once.
      write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nretry: 0\n\n\r\nzz\r\n');
    }),
    { onGetStreamFailed: (f) => failures.push(f) },
    async (h) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      await h.up.afterInitialized();
      await delay(400);
      assert.equal(gets, 1, 'no reconnect within the first backoff second');
      assert.deepEqual(failures, [{ reason: 'broken', failures: 1, retryInMs: 1000 }]);
    },
  );
  let cleanGets = 0;
  await run(
    withGet('s-2', (r) => {
      cleanGets++;
      write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 12\r\n\r\nretry: 0\n\n\n\n');
    }),
    {},
    async (h) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      await h.up.afterInitialized();
      await delay(300);
      assert.equal(cleanGets, 1, 'retry: 0 does not reconnect at once');
      await until(() => cleanGets === 2, 'the reconnect after 500 ms', 2000);
      await h.up.close();
    },
  );
});

test('a standalone GET the upstream drops without an answer is reported as a failed request and tried again after a second', async () => {
  let gets = 0;
  const failures: GetStreamFailure[] = [];
  await run(
    withGet('s-3', (r) => {
      gets++;
      r.socket.destroy();
    }),
    { onGetStreamFailed: (f) => failures.push(f) },
    async (h) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      await h.up.afterInitialized();
      await until(() => failures.length === 1, 'the failure reported');
      assert.deepEqual(failures, [{ reason: 'request_failed', failures: 1, retryInMs: 1000 }]);
      await until(() => gets === 2, 'the second attempt', 3000);
      await h.up.close();
    },
  );
});

test('an open standalone GET stream does not take a request socket: with one request socket, calls still go through', async () => {
  const srv = await rawServer((r) => {
    if (r.method === 'GET') return write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    if (r.method === 'DELETE') return write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    write(r.socket, jsonResponse(result(JSON.parse(r.body).id as number), 'Mcp-Session-Id: s-3\r\n'));
  });
  const pool = new Http1Pool({ url: new URL(srv.url), connectTimeoutMs: 1000, maxSockets: 1 });
  const streamPool = new Http1Pool({ url: new URL(srv.url), connectTimeoutMs: 1000 });
  const messages: JsonRpcMessage[] = [];
  const up = new HttpUpstream({ url: srv.url, pool, streamPool, headers: {}, maxMessageBytes: 1 << 20, handlers: { onMessage: (m) => messages.push(m), onClose: () => {} } });
  try {
    await up.send(req(1, 'initialize'));
    await until(() => messages.length === 1, 'initialize');
    await up.afterInitialized();
    assert.equal(streamPool.size, 1, 'the GET stream is open on the stream pool');
    await up.send(req(2));
    await until(() => messages.length === 2, 'a call while the stream is open');
  } finally {
    pool.close();
    streamPool.close();
    await srv.close();
  }
});

test('close() after a session: DELETE with the session id', async () => {
  await run(
    (r) => write(r.socket, r.method === 'DELETE' ? 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' : jsonResponse(result(1), 'Mcp-Session-Id: sid-del\r\n')),
    {},
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'the answer');
      await h.up.close();
      const del = srv.requests[1]!;
      assert.equal(del.method, 'DELETE');
      assert.equal(header(del, 'mcp-session-id'), 'sid-del');
      assert.equal(h.up.alive, false);
    },
  );
});

// =============================================================================================
// Cancellation: a notifications/cancelled for a request in flight silences its exchange at once
// and destroys its socket once the upstream accepted the notification (or after cancelGraceMs).

const cancel = (id: JsonRpcId): JsonRpcMessage => ({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'gateway timeout' } });
const ACCEPTED = 'HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n';
const rpc = (r: RawRequest): { id?: JsonRpcId; method?: string } => JSON.parse(r.body) as { id?: JsonRpcId; method?: string };
const isCancel = (r: RawRequest): boolean => r.method === 'POST' && rpc(r).method === 'notifications/cancelled';
/** `p`, or a rejection naming `what` if it has not settled within `ms` (a hang fails the test). */
async function within<T>(p: Promise<T>, what: string, ms = 1000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}
const socketOf = (srv: RawServer, s: net.Socket | undefined): RawServer['sockets'][number] => {
  const rec = srv.sockets.find((x) => x.socket === s);
  assert.ok(rec, 'the server socket');
  return rec;
};

test('cancel of a request in flight: the upstream hears the cancellation first, then the hung POST socket is destroyed (not after the grace), the send settles, the pool goes on', async () => {
  let hung: net.Socket | undefined;
  let hungOpenAtCancel: boolean | undefined;
  await run(
    (r) => {
      if (isCancel(r)) {
        hungOpenAtCancel = hung !== undefined && !hung.destroyed;
        return write(r.socket, ACCEPTED);
      }
      if (rpc(r).id === 1) return void (hung = r.socket); // never answered
      write(r.socket, jsonResponse(result(rpc(r).id!)));
    },
    { cancelGraceMs: 10_000 },
    async (h, srv) => {
      let settled = false;
      const sent = h.up.send(req(1, 'tools/call')).then(() => (settled = true));
      await until(() => hung !== undefined, 'the request');
      assert.equal(h.up.inflightCount, 1);
      await h.up.send(cancel(1));
      await until(() => socketOf(srv, hung).closed, 'the server to see the cancelled POST socket closed', 1000);
      assert.equal(hungOpenAtCancel, true, 'the cancellation arrived while the POST was still open');
      await within(sent, "the cancelled request's send()");
      assert.equal(settled, true);
      assert.equal(h.up.inflightCount, 0);
      // The next request goes out on another socket and is answered; nothing ever came for 1.
      await h.up.send(req(2));
      await until(() => h.messages.length === 1, 'the next answer');
      assert.deepEqual(h.messages, [{ msg: result(2), relatedTo: 2 }]);
      assert.notEqual(srv.requests.find((r) => rpc(r).id === 2)!.socket, hung);
      assert.equal(h.up.inflightCount, 0);
      await delay(20);
      assert.equal(h.messages.length, 1, 'no synthesized error for the cancelled request');
      assert.deepEqual(h.closes, []);
    },
  );
});

test('cancel with an upstream that accepts nothing: after cancelGraceMs the hung POST and the unaccepted notification are closed, the notification send rejects, later sends go through', async () => {
  await run(
    (r) => {
      if (rpc(r).id === 2) write(r.socket, jsonResponse(result(2)));
    },
    { cancelGraceMs: 100 },
    async (h, srv) => {
      const sent = h.up.send(req(1));
      await until(() => srv.requests.length === 1, 'the request');
      const t0 = performance.now();
      await assert.rejects(within(h.up.send(cancel(1)), 'the unaccepted cancellation'), /did not accept the message within 100 ms/);
      assert.ok(performance.now() - t0 >= 90, 'not before the grace');
      assert.equal(srv.requests.length, 2, 'the cancellation was sent');
      await until(() => srv.sockets.length === 2 && srv.sockets.every((s) => s.closed), 'both sockets closed', 1000);
      await within(sent, "the cancelled request's send()");
      assert.equal(h.pool.size, 0);
      assert.equal(h.up.inflightCount, 0);
      // Not stuck behind the notification that was never accepted.
      await h.up.send(req(2));
      await until(() => h.messages.length === 1, 'the next answer');
      assert.deepEqual(h.messages, [{ msg: result(2), relatedTo: 2 }]);
      assert.equal(srv.sockets.length, 3, 'on a new socket');
    },
  );
});

test('an answer arriving after the cancellation (before the upstream accepted it) is not delivered, nor is any error for the request', async () => {
  let stream: net.Socket | undefined;
  await run(
    (r) => {
      if (isCancel(r)) {
        // The answer first, on the request's stream, then (later) the 202 for the cancellation.
        const e = sseEvent(result(1), 'e2');
        write(stream!, `${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n0\r\n\r\n`);
        setTimeout(() => write(r.socket, ACCEPTED), 30);
        return;
      }
      stream = r.socket;
      const e = sseEvent(progress, 'e1');
      write(r.socket, `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`);
    },
    { cancelGraceMs: 10_000 },
    async (h) => {
      await h.up.send(req(1, 'tools/call'));
      await until(() => h.messages.length === 1, 'the progress notification');
      await h.up.send(cancel(1));
      await delay(30);
      assert.deepEqual(h.messages, [{ msg: progress, relatedTo: 1 }], 'only what came before the cancellation');
      assert.equal(h.up.inflightCount, 0);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('a cancellation for an unknown id (99, or "1" for the number 1) changes nothing: the request in flight keeps its socket and gets its answer', async () => {
  let held: net.Socket | undefined;
  await run(
    (r) => {
      if (isCancel(r)) return write(r.socket, ACCEPTED);
      held = r.socket;
    },
    { cancelGraceMs: 50 },
    async (h, srv) => {
      const sent = h.up.send(req(1));
      await until(() => held !== undefined, 'the request');
      await h.up.send(cancel(99));
      await h.up.send(cancel('1'));
      await delay(100); // past cancelGraceMs
      assert.equal(socketOf(srv, held).closed, false, 'the request socket is still open');
      assert.equal(h.up.inflightCount, 1);
      write(held!, jsonResponse(result(1)));
      await within(sent, 'the request send');
      await until(() => h.messages.length === 1, 'the answer');
      assert.deepEqual(h.messages, [{ msg: result(1), relatedTo: 1 }]);
      assert.equal(h.up.inflightCount, 0);
    },
  );
});

test('a cancellation while the request waits for its credentials: the request is never sent, its send resolves', async () => {
  await run(
    (r) => write(r.socket, ACCEPTED),
    {
      credentials: async () => {
        await delay(30);
        return {};
      },
    },
    async (h, srv) => {
      const sent = h.up.send(req(1));
      await h.up.send(cancel(1));
      await within(sent, "the cancelled request's send()");
      await delay(20);
      assert.deepEqual(
        srv.requests.map((r) => rpc(r).method),
        ['notifications/cancelled'],
      );
      assert.equal(h.up.inflightCount, 0);
      assert.deepEqual(h.messages, []);
    },
  );
});

test('a cancellation while the request waits behind an unaccepted notification: the request is never sent', async () => {
  let initialized: net.Socket | undefined;
  await run(
    (r) => {
      if (rpc(r).method === 'notifications/initialized') initialized = r.socket;
      else write(r.socket, ACCEPTED);
    },
    {},
    async (h, srv) => {
      const init = h.up.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      await until(() => initialized !== undefined, 'the initialized notification');
      const sent = h.up.send(req(1));
      const cancelled = h.up.send(cancel(1));
      write(initialized!, ACCEPTED);
      await within(Promise.all([init, sent, cancelled]), 'the three sends');
      assert.deepEqual(
        srv.requests.map((r) => rpc(r).method),
        ['notifications/initialized', 'notifications/cancelled'],
      );
      assert.equal(h.up.inflightCount, 0);
      assert.deepEqual(h.messages, []);
    },
  );
});

test('a cancellation while its stream is resumed: the GET socket is destroyed, no error, no further GET', async () => {
  let get: net.Socket | undefined;
  await run(
    (r) => {
      if (r.method === 'GET') {
        get = r.socket;
        return write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
      }
      if (isCancel(r)) return write(r.socket, ACCEPTED);
      write(r.socket, sseResponse(['retry: 10\n\n', sseEvent(progress, 'ev-1')]));
    },
    { cancelGraceMs: 10_000 },
    async (h, srv) => {
      await h.up.send(req(5, 'tools/call'));
      await until(() => get !== undefined, 'the resuming GET');
      assert.equal(h.up.inflightCount, 1);
      await h.up.send(cancel(5));
      await until(() => socketOf(srv, get).closed, 'the server to see the GET socket closed', 1000);
      await delay(40);
      assert.deepEqual(
        srv.requests.map((r) => r.method),
        ['POST', 'GET', 'POST'],
      );
      assert.deepEqual(h.messages, [{ msg: progress, relatedTo: 5 }]);
      assert.equal(h.up.inflightCount, 0);
    },
  );
});

test('a cancellation between two resumptions of a stream: no GET is made, no error', async () => {
  await run(
    (r) => write(r.socket, isCancel(r) ? ACCEPTED : sseResponse(['retry: 60\n\n', sseEvent(progress, 'ev-1')])),
    {},
    async (h, srv) => {
      await h.up.send(req(6, 'tools/call'));
      await until(() => h.messages.length === 1 && h.up.inflightCount === 0, 'the stream to end');
      await h.up.send(cancel(6));
      await delay(120);
      assert.deepEqual(
        srv.requests.map((r) => r.method),
        ['POST', 'POST'],
      );
      assert.deepEqual(h.messages, [{ msg: progress, relatedTo: 6 }]);
    },
  );
});

test('a cancellation stuck behind an unaccepted notification still closes the cancelled POST socket after cancelGraceMs', async () => {
  let hung: net.Socket | undefined;
  await run(
    (r) => {
      if (rpc(r).id === 1) hung = r.socket; // neither the request nor the notification is answered
    },
    { cancelGraceMs: 100 },
    async (h, srv) => {
      void h.up.send(req(1)).catch(() => {});
      await until(() => hung !== undefined, 'the request');
      void h.up.send({ jsonrpc: '2.0', method: 'notifications/initialized' }).catch(() => {});
      await until(() => srv.requests.length === 2, 'the notification');
      const t0 = performance.now();
      void h.up.send(cancel(1)).catch(() => {});
      await until(() => socketOf(srv, hung).closed, 'the server to see the cancelled POST socket closed', 1000);
      assert.ok(performance.now() - t0 >= 90, 'not before the grace');
      assert.equal(srv.requests.length, 2, 'the cancellation itself still waits its turn');
      assert.equal(h.up.inflightCount, 0);
      assert.deepEqual(h.messages, []);
    },
  );
});

// =============================================================================================
// close() and a failure that ends the connection abort every exchange still under way: sockets
// destroyed (never pooled again), every send() settled, nothing delivered afterwards.

const CLOSED = 'upstream connection is closed';
const outcome = (p: Promise<void>): Promise<string> =>
  p.then(
    () => 'resolved',
    (e: Error) => e.message,
  );

test('close() with a hung upstream: the POSTs in flight (a request, an unaccepted notification) and a resumed GET are closed, every send() settles, nothing is delivered, nothing is pooled', async () => {
  await run(
    (r) => {
      // Request 5 gets a stream that ends after an event id: its resuming GET hangs, like the rest.
      if (r.method === 'POST' && rpc(r).id === 5) write(r.socket, sseResponse(['retry: 10\n\n', sseEvent(progress, 'ev-1')]));
    },
    {},
    async (h, srv) => {
      await h.up.send(req(5, 'tools/call'));
      await until(() => srv.requests.some((r) => r.method === 'GET'), 'the resuming GET');
      const sends = [h.up.send(req(1, 'tools/call')), h.up.send({ jsonrpc: '2.0', method: 'notifications/initialized' })];
      await until(() => srv.requests.length === 4, 'the request and the notification');
      // Waits behind the unaccepted notification.
      sends.push(h.up.send(req(2)));
      const settled = sends.map(outcome);
      assert.equal(h.up.liveCount, 3);
      assert.equal(srv.sockets.length, 3);
      await h.up.close();
      await until(() => srv.sockets.every((s) => s.closed), 'the server to see every socket closed', 1000);
      assert.deepEqual(await within(Promise.all(settled), 'the sends'), [CLOSED, CLOSED, CLOSED]);
      assert.equal(srv.requests.length, 4, 'request 2 was never sent');
      assert.equal(h.pool.size, 0);
      assert.equal(h.up.liveCount, 0);
      assert.equal(h.up.inflightCount, 0);
      await delay(40);
      assert.deepEqual(h.messages, [{ msg: progress, relatedTo: 5 }], 'nothing after the close, no error made up for the requests');
      assert.deepEqual(h.closes, []);
      await assert.rejects(h.up.send(req(3)), /upstream connection is closed/);
    },
  );
});

test('close() while a request waits for its credentials: it is never sent, its send() rejects', async () => {
  await run(
    () => {},
    {
      credentials: async () => {
        await delay(50);
        return {};
      },
    },
    async (h, srv) => {
      const sent = outcome(h.up.send(req(1)));
      await delay(10);
      await h.up.close();
      assert.equal(await within(sent, 'the send'), CLOSED);
      await delay(80);
      assert.equal(srv.requests.length, 0);
      assert.equal(h.up.liveCount, 0);
    },
  );
});

test('a failure that ends the upstream (an answer that is not JSON) closes the hung POST of another request too: its send() settles, nothing more is delivered', async () => {
  let hung: net.Socket | undefined;
  await run(
    (r) => {
      if (rpc(r).id === 1) return void (hung = r.socket);
      write(r.socket, jsonResponse('this is not json'));
    },
    {},
    async (h, srv) => {
      const sent = outcome(h.up.send(req(1)));
      await until(() => hung !== undefined, 'the request');
      await h.up.send(req(2));
      await until(() => h.closes.length === 1, 'the failure');
      assert.equal(h.closes[0]!.kind, 'protocol');
      await until(() => socketOf(srv, hung).closed, 'the server to see the hung POST socket closed', 1000);
      assert.equal(await within(sent, "request 1's send()"), CLOSED);
      assert.equal(h.up.liveCount, 0);
      assert.equal(h.up.inflightCount, 0);
      await delay(20);
      assert.deepEqual(h.messages, []);
    },
  );
});

test('close() while the standalone GET stream waits for its head: afterInitialized() returns, the GET socket is closed, the DELETE still goes out', async () => {
  let get: net.Socket | undefined;
  await run(
    (r) => {
      if (r.method === 'GET') return void (get = r.socket); // never answered
      if (r.method === 'DELETE') return write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
      write(r.socket, jsonResponse(result(rpc(r).id!), 'Mcp-Session-Id: s-9\r\n'));
    },
    {},
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      const ready = h.up.afterInitialized();
      await until(() => get !== undefined, 'the GET');
      await within(h.up.close(), 'close()');
      await within(ready, 'afterInitialized()');
      await until(() => socketOf(srv, get).closed, 'the server to see the GET socket closed', 1000);
      assert.equal(srv.requests.at(-1)!.method, 'DELETE');
      assert.equal(h.up.liveCount, 0);
    },
  );
});

test('a cancellation with nothing in flight here (a repeated one) is given up after cancelGraceMs too: a hung upstream does not hold its send()', async () => {
  await run(
    () => {},
    { cancelGraceMs: 100 },
    async (h, srv) => {
      const t0 = performance.now();
      await assert.rejects(within(h.up.send(cancel(7)), 'the unaccepted cancellation'), /did not accept the message within 100 ms/);
      assert.ok(performance.now() - t0 >= 90, 'not before the grace');
      await until(() => srv.sockets.length === 1 && srv.sockets[0]!.closed, 'its socket closed', 1000);
      assert.equal(h.up.liveCount, 0);
    },
  );
});

// =============================================================================================
// acceptTimeoutMs: the POST of a notification or a response holds every later send of the session
// until the upstream accepts it (status line and headers); one never accepted is aborted after
// acceptTimeoutMs (socket destroyed, never pooled), its send() rejects, and later sends go on.
// A request's POST holds nothing and is left to the session's timeout and its cancellation.

const initialized: JsonRpcMessage = { jsonrpc: '2.0', method: 'notifications/initialized' };

test('a notification the upstream never accepts: after acceptTimeoutMs its POST socket is closed and send() rejects; the request queued behind it then goes out and is answered', async () => {
  let hung: net.Socket | undefined;
  await run(
    (r) => {
      if (rpc(r).method === 'notifications/initialized') return void (hung = r.socket); // never accepted
      write(r.socket, jsonResponse(result(rpc(r).id!)));
    },
    { acceptTimeoutMs: 100 },
    async (h, srv) => {
      const t0 = performance.now();
      const sent = outcome(h.up.send(initialized));
      await until(() => hung !== undefined, 'the notification');
      const next = h.up.send(req(2));
      await delay(40);
      assert.equal(srv.requests.length, 1, 'the request waits behind the unaccepted notification');
      assert.match(await within(sent, 'the unaccepted notification'), /^upstream did not accept the message within 100 ms$/);
      assert.ok(performance.now() - t0 >= 90, 'not before acceptTimeoutMs');
      await until(() => socketOf(srv, hung).closed, 'the server to see the notification socket closed', 1000);
      await within(next, 'the request behind it');
      await until(() => h.messages.length === 1, 'the answer');
      assert.deepEqual(h.messages, [{ msg: result(2), relatedTo: 2 }]);
      assert.notEqual(srv.requests[1]!.socket, hung, 'the request went out on another socket');
      assert.equal(srv.sockets.length, 2);
      assert.equal(h.pool.size, 1, 'the aborted socket is not kept, only the answered one');
      assert.equal(h.up.liveCount, 0);
      assert.deepEqual(h.closes, [], 'the upstream connection itself goes on');
    },
  );
});

test("a client's response the upstream never accepts is aborted after acceptTimeoutMs too; a notification after it is sent and accepted", async () => {
  let hung: net.Socket | undefined;
  await run(
    (r) => {
      if ('result' in (JSON.parse(r.body) as object)) return void (hung = r.socket); // never accepted
      write(r.socket, ACCEPTED);
    },
    { acceptTimeoutMs: 60 },
    async (h, srv) => {
      const answered = outcome(h.up.send(result('s-1', { content: [] })));
      const then = h.up.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
      assert.match(await within(answered, 'the unaccepted response'), /did not accept the message within 60 ms/);
      await within(then, 'the notification behind it');
      await until(() => socketOf(srv, hung).closed, 'the server to see the response socket closed', 1000);
      assert.deepEqual(
        srv.requests.map((r) => (JSON.parse(r.body) as { method?: string }).method ?? 'response'),
        ['response', 'notifications/roots/list_changed'],
      );
      assert.equal(h.up.liveCount, 0);
    },
  );
});

test('a notification accepted within acceptTimeoutMs is unaffected: its send() resolves, its response body may end after the limit, its socket stays open and is reused', async () => {
  let first: net.Socket | undefined;
  await run(
    (r) => {
      if (rpc(r).method === 'notifications/initialized') {
        first = r.socket;
        // Accepted at 50 ms; the (chunked, empty) body ends only at 150 ms, past the limit.
        setTimeout(() => write(r.socket, 'HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n'), 50);
        return void setTimeout(() => write(r.socket, '0\r\n\r\n'), 150);
      }
      write(r.socket, jsonResponse(result(rpc(r).id!)));
    },
    { acceptTimeoutMs: 100 },
    async (h, srv) => {
      const t0 = performance.now();
      await within(h.up.send(initialized), 'the notification');
      assert.ok(performance.now() - t0 < 100, 'resolved when accepted');
      await delay(150); // the body has ended (150 ms), well past acceptTimeoutMs
      assert.equal(socketOf(srv, first).closed, false, 'its socket was not aborted');
      assert.equal(h.pool.size, 1, 'and is kept');
      await h.up.send(req(3));
      await until(() => h.messages.length === 1, 'the answer');
      assert.deepEqual(h.messages, [{ msg: result(3), relatedTo: 3 }]);
      assert.equal(srv.requests[1]!.socket, first, 'the request reused it');
      assert.equal(srv.sockets.length, 1);
    },
  );
});

test('acceptTimeoutMs does not apply to requests: a request POST whose head never comes holds no later send and keeps its socket; its cancellation closes it and the queue goes on', async () => {
  let hung: net.Socket | undefined;
  await run(
    (r) => {
      if (isCancel(r) || rpc(r).method === 'notifications/initialized') return write(r.socket, ACCEPTED);
      if (rpc(r).id === 1) return void (hung = r.socket); // never answered: no status line
      write(r.socket, jsonResponse(result(rpc(r).id!)));
    },
    { acceptTimeoutMs: 30, cancelGraceMs: 10_000 },
    async (h, srv) => {
      let settled = false;
      const sent = h.up.send(req(1, 'tools/call')).then(() => (settled = true));
      await until(() => hung !== undefined, 'the request');
      // Neither a request nor a notification after it waits for its head.
      await within(h.up.send(req(2)), 'a request behind the hung one');
      await within(h.up.send(initialized), 'a notification behind the hung one');
      await until(() => h.messages.length === 1, 'the answer to 2');
      await delay(60); // twice acceptTimeoutMs
      assert.equal(socketOf(srv, hung).closed, false, 'the request POST is not bounded by acceptTimeoutMs');
      assert.equal(settled, false);
      // The session's timeout cancels it: its socket is closed, its send() settles, sends go on.
      await within(h.up.send(cancel(1)), 'the cancellation');
      await until(() => socketOf(srv, hung).closed, 'the server to see the hung POST socket closed', 1000);
      await within(sent, "the cancelled request's send()");
      await within(h.up.send(initialized), 'a notification after the cancellation');
      await within(h.up.send(req(3)), 'a request after the cancellation');
      await until(() => h.messages.length === 2, 'the answer to 3');
      assert.deepEqual(h.messages, [
        { msg: result(2), relatedTo: 2 },
        { msg: result(3), relatedTo: 3 },
      ]);
      assert.equal(h.up.inflightCount, 0);
      assert.equal(h.up.liveCount, 0);
      assert.deepEqual(h.closes, []);
    },
  );
});

test('acceptTimeoutMs must be a positive number of milliseconds a timer can hold', async () => {
  const srv = await rawServer(() => {});
  try {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      assert.throws(() => harness(srv, { acceptTimeoutMs: bad }), (e: Error) => e instanceof RangeError && /acceptTimeoutMs must be/.test(e.message), String(bad));
    }
    harness(srv, { acceptTimeoutMs: 1 }).pool.close();
    harness(srv, { acceptTimeoutMs: 2 ** 31 - 1 }).pool.close();
  } finally {
    await srv.close();
  }
});

test('acceptTimeoutMs defaults to 30 s: an unaccepted notification is aborted at 30000 ms, not before', async () => {
  let hung: net.Socket | undefined;
  // Polling on setImmediate: setTimeout is mocked here.
  const settle = async (cond: () => boolean, what: string): Promise<void> => {
    for (let i = 0; !cond(); i++) {
      if (i > 100_000) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  await run(
    (r) => void (hung = r.socket), // never accepted
    {},
    async (h, srv) => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        let result: string | undefined;
        void outcome(h.up.send(initialized)).then((o) => (result = o));
        await settle(() => hung !== undefined, 'the notification');
        mock.timers.tick(29_999);
        for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
        assert.equal(result, undefined, 'still waiting at 29999 ms');
        assert.equal(socketOf(srv, hung).closed, false);
        mock.timers.tick(1);
        await settle(() => result !== undefined, 'the send to settle');
        assert.equal(result, 'upstream did not accept the message within 30000 ms');
        await settle(() => socketOf(srv, hung).closed, 'the server to see the socket closed');
      } finally {
        mock.timers.reset();
      }
    },
  );
});

// =============================================================================================
// acceptTimeoutMs bounds the standalone GET's head too: afterInitialized() (which the session's
// later requests wait on) returns by then, the GET is aborted (socket destroyed, never pooled),
// and the attempt counts as a failed connect (backed off, given up after 5 in a row).

test("the standalone GET whose head never comes: afterInitialized() returns after acceptTimeoutMs, the GET socket is closed, and a request after it is sent and answered", async () => {
  let get: net.Socket | undefined;
  await run(
    (r) => {
      if (r.method === 'GET') return void (get = r.socket); // never answered, not even a head
      if (rpc(r).method === 'notifications/initialized') return write(r.socket, ACCEPTED);
      write(r.socket, jsonResponse(result(rpc(r).id!), 'Mcp-Session-Id: s-g1\r\n'));
    },
    { acceptTimeoutMs: 100 },
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      await within(h.up.send(initialized), 'the initialized notification');
      const t0 = performance.now();
      let returned = false;
      const ready = h.up.afterInitialized().then(() => (returned = true));
      await until(() => get !== undefined, 'the GET');
      await delay(50);
      assert.equal(returned, false, 'not before acceptTimeoutMs');
      await within(ready, 'afterInitialized()');
      const took = performance.now() - t0;
      assert.ok(took >= 90 && took < 900, `afterInitialized() returned after ${Math.round(took)} ms`);
      await until(() => socketOf(srv, get).closed, 'the server to see the GET socket closed', 1000);
      assert.equal(h.up.liveCount, 0, 'the GET is no longer tracked');
      await within(h.up.send(req(2)), 'the request after it');
      await until(() => h.messages.length === 2, 'the answer');
      assert.deepEqual(h.messages[1], { msg: result(2), relatedTo: 2 });
      const post = srv.requests.at(-1)!;
      assert.equal(post.method, 'POST');
      assert.notEqual(post.socket, get, 'the request went out on another socket');
      assert.equal(header(post, 'mcp-session-id'), 's-g1');
      assert.deepEqual(h.closes, [], 'the upstream connection itself goes on');
    },
  );
});

test('a standalone GET whose head comes within acceptTimeoutMs is not aborted later: the open stream outlives the limit and delivers', async () => {
  let get: net.Socket | undefined;
  await run(
    (r) => {
      if (r.method !== 'GET') return write(r.socket, jsonResponse(result(rpc(r).id!), 'Mcp-Session-Id: s-g2\r\n'));
      get = r.socket;
      setTimeout(() => write(r.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n'), 40);
    },
    { acceptTimeoutMs: 100 },
    async (h, srv) => {
      await h.up.send(req(1, 'initialize'));
      await until(() => h.messages.length === 1, 'initialize');
      await within(h.up.afterInitialized(), 'afterInitialized()');
      await delay(200); // twice acceptTimeoutMs
      assert.equal(socketOf(srv, get).closed, false, 'the stream was not aborted');
      assert.equal(h.up.liveCount, 1, 'the stream is still under way');
      const ping = { jsonrpc: '2.0', id: 'srv-1', method: 'ping' };
      const e = sseEvent(ping, 'g1');
      write(get!, `${Buffer.byteLength(e).toString(16)}\r\n${e}\r\n`);
      await until(() => h.messages.length === 2, 'the server request on the stream');
      assert.deepEqual(h.messages[1], { msg: ping, relatedTo: undefined });
      assert.equal(srv.requests.filter((r) => r.method === 'GET').length, 1);
    },
  );
});

test('a standalone GET whose head never comes is retried like a failed connect: after 1, 2, 4, 8, 16 s, each attempt aborted after acceptTimeoutMs, then given up, each failure reported', async () => {
  const gets: net.Socket[] = [];
  const failures: GetStreamFailure[] = [];
  // Polling on setImmediate: setTimeout is mocked here.
  const settle = async (cond: () => boolean, what: string): Promise<void> => {
    for (let i = 0; !cond(); i++) {
      if (i > 100_000) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  const idle = async (): Promise<void> => {
    for (let i = 0; i < 50; i++) await new Promise<void>((r) => setImmediate(r));
  };
  await run(
    (r) => {
      if (r.method === 'GET') gets.push(r.socket); // never answered
    },
    { acceptTimeoutMs: 100, onGetStreamFailed: (f) => failures.push(f) },
    async (h, srv) => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        let returned = false;
        void h.up.afterInitialized().then(() => (returned = true));
        await settle(() => gets.length === 1, 'the first GET');
        mock.timers.tick(99);
        await idle();
        assert.equal(returned, false, 'still waiting at 99 ms');
        assert.equal(socketOf(srv, gets[0]).closed, false);
        mock.timers.tick(1);
        await settle(() => returned, 'afterInitialized() to return');
        await settle(() => socketOf(srv, gets[0]).closed, 'the first GET socket closed');
        for (const [i, backoff] of [1000, 2000, 4000, 8000, 16000].entries()) {
          mock.timers.tick(backoff - 1);
          await idle();
          assert.equal(gets.length, i + 1, `no attempt ${i + 2} before ${backoff} ms`);
          mock.timers.tick(1);
          await settle(() => gets.length === i + 2, `attempt ${i + 2}`);
          assert.equal(h.up.liveCount, 1);
          mock.timers.tick(100);
          await settle(() => socketOf(srv, gets[i + 1]).closed, `attempt ${i + 2} aborted`);
          assert.equal(h.up.liveCount, 0);
        }
        mock.timers.tick(10 * 60_000);
        await idle();
        assert.equal(gets.length, 6, 'given up after 5 failed attempts in a row');
        assert.deepEqual(
          failures,
          [1000, 2000, 4000, 8000, 16000, undefined].map((retryInMs, i) => ({ reason: 'head_timeout', failures: i + 1, retryInMs })),
          'each failed attempt is reported with its retry delay, the last as given up',
        );
        assert.equal(h.pool.size, 0, 'no aborted GET socket is kept');
        assert.deepEqual(h.closes, []);
      } finally {
        mock.timers.reset();
      }
    },
  );
});
