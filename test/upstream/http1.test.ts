/**
 * The upstream's own HTTP/1.1 client (src/upstream/http1.ts) against raw node:net (and one
 * node:tls) servers written here, so every byte of every response is under the test's control.
 * Each promise of the module header has a test: the happy paths (framing, keep-alive reuse,
 * queueing, the request on the wire), every refusal of the strict parser (each ends in onError
 * with an Http1Error, never onEnd, and the client destroys the socket: the server, which never
 * closes a connection itself unless the test says so, sees it close), response desync (bytes
 * after a response are never read as the next one), header injection, abort, close, the
 * connect timeout and the idle timeout of pooled sockets, and that an idle pooled socket does not
 * keep the process alive (a child process, test/fixtures/pool-idle-exit.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Http1Error, Http1Pool, renderHeaders, type Http1Head, type Http1PoolOptions, type Http1Request } from '../../src/upstream/http1.js';
import { makePki, type TestPki } from '../tls/certs.js';
import { delay, takeRequests, until, type ParsedRequest } from '../helpers/raw-http.js';


// ---------------------------------------------------------------------------------------------
// A raw server: parses the (simple, never pipelined) requests of our client, hands each to
// `respond`, records every connection, every request and every byte received.

type RawRequest = ParsedRequest;

interface ServerConn {
  index: number;
  socket: net.Socket;
  requests: RawRequest[];
  isClosed: boolean;
  closed: Promise<void>;
}

interface RawServer {
  port: number;
  conns: ServerConn[];
  requests: RawRequest[];
  close(): Promise<void>;
}

type Respond = (req: RawRequest, conn: ServerConn) => void;

async function rawServer(respond: Respond, options: { tls?: tls.TlsOptions; silent?: boolean } = {}): Promise<RawServer> {
  const conns: ServerConn[] = [];
  const requests: RawRequest[] = [];
  const onSocket = (socket: net.Socket): void => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    let closedResolve!: () => void;
    const conn: ServerConn = { index: conns.length, socket, requests: [], isClosed: false, closed: new Promise((r) => (closedResolve = r)) };
    socket.once('close', () => {
      conn.isClosed = true;
      closedResolve();
    });
    conns.push(conn);
    if (options.silent) {
      socket.resume();
      return;
    }
    const buf = { data: '' };
    socket.on('data', (d: Buffer) => {
      buf.data += d.toString('latin1');
      takeRequests(buf, (req) => {
        conn.requests.push(req);
        requests.push(req);
        respond(req, conn);
      });
    });
  };
  const server = options.tls ? tls.createServer(options.tls, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    requests,
    async close() {
      for (const c of conns) c.socket.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Write bytes exactly (latin1: one char, one byte). */
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const write = (socket: net.Socket, s: string): void => {
  socket.write(bytes(s));
};

/** One byte per TCP write, a millisecond apart, so the client parses every split point. */
async function dribble(socket: net.Socket, s: string): Promise<void> {
  for (const b of bytes(s)) {
    if (socket.destroyed) return;
    socket.write(Buffer.of(b));
    await delay(1);
  }
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\n${extra}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;

// ---------------------------------------------------------------------------------------------
// A client call that records every callback, and notices any callback after onEnd / onError.

interface Outcome {
  heads: Http1Head[];
  body: string;
  dataEvents: number;
  ended: boolean;
  error: Error | undefined;
  /** Every callback in order, including any (illegal) one after the end. */
  events: string[];
  /** Callbacks heard after onEnd or onError (must stay empty). */
  late: string[];
}

interface Call {
  req: Http1Request;
  out: Outcome;
  /** Resolves at onEnd or onError; rejects if neither comes in time (a hang). */
  done: Promise<Outcome>;
}

interface CallOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  onHead?: (head: Http1Head, req: Http1Request) => void;
}

function call(pool: Http1Pool, o: CallOptions = {}): Call {
  const out: Outcome = { heads: [], body: '', dataEvents: 0, ended: false, error: undefined, events: [], late: [] };
  let finished = false;
  let settle!: (o: Outcome) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<Outcome>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const note = (e: string): boolean => {
    out.events.push(e);
    if (finished) out.late.push(e);
    return !finished;
  };
  const timer = setTimeout(() => {
    if (!finished) fail(new Error(`no onEnd or onError within ${o.timeoutMs ?? 2000} ms (events: ${out.events.join(' | ')})`));
  }, o.timeoutMs ?? 2000);
  const c: Call = { req: undefined as unknown as Http1Request, out, done };
  // An aborted call never settles: stop waiting for it.
  const abort = (): void => {
    clearTimeout(timer);
    inner.abort();
  };
  c.req = { abort };
  const inner = pool.request(o.method ?? 'GET', o.path ?? '/', o.headers ? renderHeaders(o.headers) : '', o.body, {
    onHead(head) {
      if (note(`head:${head.status}`)) {
        out.heads.push(head);
        o.onHead?.(head, c.req);
      }
    },
    onData(chunk) {
      if (note(`data:${chunk.toString('latin1')}`)) {
        out.body += chunk.toString('latin1');
        out.dataEvents++;
      }
    },
    onEnd() {
      if (!note('end')) return;
      finished = true;
      out.ended = true;
      clearTimeout(timer);
      settle(out);
    },
    onError(err) {
      if (!note(`error:${err.message}`)) return;
      finished = true;
      out.error = err;
      clearTimeout(timer);
      settle(out);
    },
  });
  return c;
}

const poolFor = (srv: RawServer, opts: Partial<Http1PoolOptions> = {}): Http1Pool =>
  new Http1Pool({ url: new URL(`http://127.0.0.1:${srv.port}/`), connectTimeoutMs: 1000, ...opts });

/** Run `body` with a raw server and a pool on it; both are closed afterwards. */
async function withServer(respond: Respond, poolOpts: Partial<Http1PoolOptions>, body: (srv: RawServer, pool: Http1Pool) => Promise<void>): Promise<void> {
  const srv = await rawServer(respond);
  const pool = poolFor(srv, poolOpts);
  try {
    await body(srv, pool);
  } finally {
    pool.close();
    await srv.close();
  }
}

async function closedWithin(conn: ServerConn | undefined, what: string, ms = 1000): Promise<void> {
  assert.ok(conn, `no server connection for ${what}`);
  let t: NodeJS.Timeout | undefined;
  await Promise.race([
    conn.closed,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: the client did not close the connection within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** A completed call: onEnd, no error, nothing after the end. */
function assertOk(o: Outcome, status: number, body: string): void {
  assert.equal(o.error, undefined, `unexpected error: ${o.error?.message}`);
  assert.equal(o.ended, true);
  assert.equal(o.heads.length, 1, 'exactly one onHead');
  assert.equal(o.heads[0]!.status, status);
  assert.equal(o.body, body);
  assert.deepEqual(o.late, []);
}

/**
 * The response (written once the request arrived, the connection then left open by the server)
 * must end in onError with an Http1Error matching `message`, never onEnd; the client must close
 * the connection and keep no socket.
 */
async function assertRefused(
  response: string | ((socket: net.Socket) => void),
  message: RegExp,
  opts: { pool?: Partial<Http1PoolOptions>; headSeen?: boolean } = {},
): Promise<Outcome> {
  let out: Outcome | undefined;
  await withServer(
    (_req, conn) => (typeof response === 'string' ? write(conn.socket, response) : response(conn.socket)),
    opts.pool ?? {},
    async (srv, pool) => {
      const c = call(pool);
      out = await c.done;
      assert.equal(out.ended, false, `onEnd must not be called (events: ${out.events.join(' | ')})`);
      assert.ok(out.error instanceof Http1Error, `expected an Http1Error, got ${out.error}`);
      assert.match(out.error.message, message);
      if (opts.headSeen === true) assert.equal(out.heads.length, 1, 'the head itself was valid');
      else if (opts.headSeen === false || opts.headSeen === undefined) assert.equal(out.heads.length, 0, 'onHead must not be called');
      await closedWithin(srv.conns[0], 'a refused response');
      assert.equal(pool.size, 0, 'no socket kept');
      await delay(5);
      assert.deepEqual(out.late, [], 'nothing after onError');
    },
  );
  return out!;
}

// =============================================================================================

describe('happy paths', () => {
  test('Content-Length body; the head: lower-case names, repeated headers joined, values trimmed', async () => {
    const head = 'HTTP/1.1 200 OK\r\nX-Rep: a\r\nx-rep: b\r\nX-Pad: \t padded \t\r\n__proto__: polluted\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n';
    await withServer(
      (_r, c) => write(c.socket, `${head}hello`),
      {},
      async (_srv, pool) => {
        const o = await call(pool).done;
        assertOk(o, 200, 'hello');
        const h = o.heads[0]!.headers;
        assert.equal(h['x-rep'], 'a, b');
        assert.equal(h['x-pad'], 'padded');
        assert.equal(h['content-type'], 'text/plain');
        assert.equal(Object.getPrototypeOf(h), Object.prototype);
        assert.equal(Object.hasOwn(h, '__proto__'), false);
      },
    );
  });

  test('a status line without a reason phrase; Content-Length 0 ends at once', async () => {
    await withServer(
      (_r, c) => write(c.socket, 'HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n'),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 201, ''),
    );
  });

  test('chunked body written one byte per TCP write (extensions, BWS, upper-case hex, trailers); the socket is reused after it', async () => {
    const response = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="a b"\r\nhello\r\n1 \r\n,\r\nA\r\n world 123\r\n0\r\nX-Trailer: t\r\n\r\n';
    let n = 0;
    await withServer(
      (_r, c) => void (n++ === 0 ? dribble(c.socket, response) : write(c.socket, ok('second'))),
      {},
      async (srv, pool) => {
        const o = await call(pool).done;
        assertOk(o, 200, 'hello, world 123');
        assert.ok(o.dataEvents >= 10, `the body came in many pieces (${o.dataEvents})`);
        assert.equal(o.heads[0]!.headers['x-trailer'], undefined, 'trailers are ignored');
        assertOk(await call(pool).done, 200, 'second');
        assert.equal(srv.conns.length, 1, 'one connection for both');
      },
    );
  });

  test('Content-Length body written one byte per TCP write', async () => {
    await withServer(
      (_r, c) => void dribble(c.socket, ok('split body')),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'split body'),
    );
  });

  test('no framing: the body runs to the end of the connection, and that connection is not reused', async () => {
    await withServer(
      (_r, c) => {
        write(c.socket, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ');
        setTimeout(() => c.socket.end(bytes('part two')), 10);
      },
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'part one, part two');
        assertOk(await call(pool).done, 200, 'part one, part two');
        assert.equal(srv.conns.length, 2);
      },
    );
  });

  test('204 and 304 have no body even with Content-Length or Transfer-Encoding; the socket is reused', async () => {
    const answers = ['HTTP/1.1 204 No Content\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n', ok('after')];
    await withServer(
      (_r, c) => write(c.socket, answers.shift()!),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 204, '');
        assertOk(await call(pool).done, 304, '');
        assertOk(await call(pool).done, 204, '');
        assertOk(await call(pool).done, 200, 'after');
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('informational 100 and 103 are skipped: one onHead, for the 200, without the 1xx headers', async () => {
    await withServer(
      (_r, c) => write(c.socket, `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n${ok('final')}`),
      {},
      async (_srv, pool) => {
        const o = await call(pool).done;
        assertOk(o, 200, 'final');
        assert.equal(o.heads[0]!.headers['link'], undefined);
      },
    );
  });

  test('100 Continue in its own TCP write before the 200 is skipped too', async () => {
    await withServer(
      (_r, c) => {
        write(c.socket, 'HTTP/1.1 100 Continue\r\n\r\n');
        setTimeout(() => write(c.socket, ok('later')), 10);
      },
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'later'),
    );
  });

  test('more than 16 informational responses before the real one are refused (an upstream cannot stall a request with endless 1xx)', async () => {
    await assertRefused(`${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(17)}${ok('never')}`, /more than 16 informational responses/);
    await withServer(
      (_r, c) => write(c.socket, `${'HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(16)}${ok('fine')}`),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'fine'),
    );
  });

  test('a head and a chunked body sent a byte at a time parse the same as sent at once, and the socket is reused', async () => {
    const body = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Pad: ${'p'.repeat(300)}\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n`;
    await withServer(
      (_r, c) => void dribble(c.socket, body),
      {},
      async (srv, pool) => {
        assertOk(await call(pool, { timeoutMs: 10_000 }).done, 200, 'hello');
        assertOk(await call(pool, { timeoutMs: 10_000 }).done, 200, 'hello');
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('a handler that aborts on the last byte of a Content-Length body: no onEnd, the socket is dropped, the pool goes on', async () => {
    let n = 0;
    await withServer(
      (_r, c) => write(c.socket, ok(n++ === 0 ? 'abcde' : 'next')),
      {},
      async (_srv, pool) => {
        let ended = false;
        let data = '';
        const req: Http1Request = pool.request('GET', '/', '', undefined, {
          onHead() {},
          onData(chunk) {
            data += chunk.toString('latin1');
            if (data.length === 5) req.abort();
          },
          onEnd() {
            ended = true;
          },
          onError() {},
        });
        await until(() => data.length === 5, 'the body');
        await delay(20);
        assert.equal(ended, false);
        assertOk(await call(pool).done, 200, 'next');
      },
    );
  });

  test('keep-alive: sequential requests share one socket', async () => {
    await withServer(
      (r, c) => write(c.socket, ok(r.path)),
      {},
      async (srv, pool) => {
        for (const p of ['/1', '/2', '/3', '/4']) assertOk(await call(pool, { path: p }).done, 200, p);
        assert.equal(srv.conns.length, 1);
        assert.equal(srv.conns[0]!.requests.length, 4);
        assert.equal(pool.size, 1);
      },
    );
  });

  test('Connection: close is honoured: the client closes that socket and the next request opens another', async () => {
    await withServer(
      (r, c) => write(c.socket, ok(r.path, 'Connection: keep-alive, close\r\n')),
      {},
      async (srv, pool) => {
        assertOk(await call(pool, { path: '/1' }).done, 200, '/1');
        await closedWithin(srv.conns[0], 'Connection: close');
        assertOk(await call(pool, { path: '/2' }).done, 200, '/2');
        assert.equal(srv.conns.length, 2);
      },
    );
  });

  test('HTTP/1.0 is not reused unless it says Connection: keep-alive', async () => {
    await withServer(
      (_r, c) => write(c.socket, 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'ok');
        await closedWithin(srv.conns[0], 'HTTP/1.0');
        assertOk(await call(pool).done, 200, 'ok');
        assert.equal(srv.conns.length, 2);
      },
    );
    await withServer(
      (_r, c) => write(c.socket, 'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok'),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'ok');
        assertOk(await call(pool).done, 200, 'ok');
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('Keep-Alive: timeout=1 means the socket is not reused (the hint minus one second is 0); timeout=5 is', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x', 'Keep-Alive: timeout=1, max=100\r\n')),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        assertOk(await call(pool).done, 200, 'x');
        assert.equal(srv.conns.length, 2);
        await closedWithin(srv.conns[0], 'the stale socket');
      },
    );
    await withServer(
      (_r, c) => write(c.socket, ok('x', 'Keep-Alive: timeout=5\r\n')),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        assertOk(await call(pool).done, 200, 'x');
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('idleMs: a socket idle for longer is not reused (and is closed)', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x')),
      { idleMs: 30 },
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        assertOk(await call(pool).done, 200, 'x');
        assert.equal(srv.conns.length, 1, 'within idleMs: reused');
        await delay(60);
        assertOk(await call(pool).done, 200, 'x');
        assert.equal(srv.conns.length, 2, 'after idleMs: a new socket');
        await closedWithin(srv.conns[0], 'the stale socket');
      },
    );
  });

  test('maxSockets=1: later requests wait, in order, and go out on the same socket one at a time', async () => {
    const held: (() => void)[] = [];
    await withServer(
      (r, c) => held.push(() => write(c.socket, ok(`answer ${r.path}`))),
      { maxSockets: 1 },
      async (srv, pool) => {
        const calls = ['/a', '/b', '/c'].map((path) => call(pool, { path }));
        await until(() => srv.requests.length === 1, 'the first request');
        await delay(30);
        assert.equal(srv.requests.length, 1, 'b and c wait while a is in flight');
        assert.equal(pool.size, 1);
        for (let i = 0; i < 3; i++) {
          await until(() => held.length === 1, `request ${i}`);
          held.shift()!();
          const o = await calls[i]!.done;
          assertOk(o, 200, `answer ${['/a', '/b', '/c'][i]}`);
        }
        assert.deepEqual(
          srv.requests.map((r) => r.path),
          ['/a', '/b', '/c'],
        );
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('the request on the wire: method, path, host, the header block as given, content-length in bytes, the body', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('')),
      {},
      async (srv, pool) => {
        assertOk(await call(pool, { method: 'POST', path: '/mcp?x=1', headers: { 'x-one': '1', 'X-Two': 'two words' }, body: 'héllo!' }).done, 200, '');
        assertOk(await call(pool, { path: '/get' }).done, 200, '');
        const host = `127.0.0.1:${srv.port}`;
        assert.equal(srv.requests[0]!.raw, Buffer.from(`POST /mcp?x=1 HTTP/1.1\r\nhost: ${host}\r\nx-one: 1\r\nX-Two: two words\r\ncontent-length: 7\r\n\r\nhéllo!`).toString('latin1'));
        assert.equal(srv.requests[1]!.raw, `GET /get HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
      },
    );
  });
});

// =============================================================================================

describe('refusals: the parser fails closed and destroys the socket', () => {
  test('invalid status lines', async () => {
    for (const line of ['HTTP/1.1 2000 OK', 'HTTP/2 200 OK', 'HTTP/1.2 200 OK', 'http/1.1 200 OK', 'HTTP/1.1 200OK', 'HTTP/1.1  200 OK', 'HTTP/1.1 20 OK', 'HTTP/1.1 200 O\x01K', 'ICY 200 OK', '']) {
      await assertRefused(`${line}\r\nContent-Length: 0\r\n\r\n`, /invalid HTTP status line/);
    }
    // A response that starts with an empty line (a leftover CRLF) is not accepted either.
    await assertRefused('\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', /invalid HTTP status line/);
  });

  test('header names that are not tokens: a space, a space before the colon, no name, no colon, non-ASCII', async () => {
    for (const line of ['Bad Name: x', 'Content-Length : 0', ': x', 'NoColonHere', 'X-\xe9: x', 'X\x00: y', '"q": x']) {
      await assertRefused(`HTTP/1.1 200 OK\r\n${line}\r\nContent-Length: 0\r\n\r\n`, /invalid header (name|line)/);
    }
  });

  test('control characters in a header value: \\x01, NUL, DEL, a bare CR, a bare LF', async () => {
    for (const value of ['a\x01b', 'a\x00b', 'a\x7fb', 'a\rb', 'a\nb', 'a\x1bb']) {
      await assertRefused(`HTTP/1.1 200 OK\r\nX-Value: ${value}\r\nContent-Length: 0\r\n\r\n`, /control characters in a header value/);
    }
  });

  test('obs-fold (a header line starting with a space or a tab) is refused', async () => {
    await assertRefused('HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n', /invalid header name/);
    await assertRefused('HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\nContent-Length: 0\r\n\r\n', /invalid header name/);
    // A fold of the Content-Length itself, the classic desync, is refused too.
    await assertRefused('HTTP/1.1 200 OK\r\nContent-Length:\r\n 5\r\n\r\nhello', /invalid header name/);
  });

  test('a head larger than maxHeaderBytes: with its terminating CRLFCRLF, and without it (the server keeps sending)', async () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(1100)}\r\nContent-Length: 0\r\n\r\n`;
    await assertRefused(big, /head exceeds 1024 bytes/, { pool: { maxHeaderBytes: 1024 } });
    await assertRefused(big.slice(0, -4), /head exceeds 1024 bytes/, { pool: { maxHeaderBytes: 1024 } });
    // Without the terminator, in small pieces: refused once the buffer passes the limit.
    await assertRefused(
      (s) => void dribbleChunks(s, `HTTP/1.1 200 OK\r\n${'X-Many: abcdefgh\r\n'.repeat(100)}`, 100),
      /head exceeds 1024 bytes/,
      { pool: { maxHeaderBytes: 1024 } },
    );
  });

  test('maxHeaderBytes boundary: a head of exactly the limit is accepted, one byte more is refused', async () => {
    const headOf = (n: number): string => {
      const start = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ';
      return `${start}${'p'.repeat(n - start.length)}\r\n\r\n`;
    };
    assert.equal(headOf(1024).length, 1028);
    await withServer(
      (_r, c) => write(c.socket, headOf(1024)),
      { maxHeaderBytes: 1024 },
      async (_srv, pool) => assertOk(await call(pool).done, 200, ''),
    );
    await assertRefused(headOf(1025), /head exceeds 1024 bytes/, { pool: { maxHeaderBytes: 1024 } });
  });

  test('maxHeaderBytes defaults to 16 KiB', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x', `X-Big: ${'a'.repeat(15 * 1024)}\r\n`)),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'x'),
    );
    await assertRefused(ok('x', `X-Big: ${'a'.repeat(16 * 1024)}\r\n`), /head exceeds 16384 bytes/);
    await assertRefused(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(17 * 1024)}`, /head exceeds 16384 bytes/);
  });

  test('Content-Length together with Transfer-Encoding is refused (either order)', async () => {
    await assertRefused('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', /both Transfer-Encoding and Content-Length/);
    await assertRefused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n5\r\nhello\r\n0\r\n\r\n', /both Transfer-Encoding and Content-Length/);
  });

  test('Transfer-Encoding other than exactly chunked: "gzip, chunked", identity, chunked twice, chunked then gzip', async () => {
    const chunkedBody = '5\r\nhello\r\n0\r\n\r\n';
    for (const te of ['Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: identity', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', 'Transfer-Encoding: chunked, gzip', 'Transfer-Encoding: chunked;q=1']) {
      await assertRefused(`HTTP/1.1 200 OK\r\n${te}\r\n\r\n${chunkedBody}`, /transfer coding .* is not supported/);
    }
  });

  test('Transfer-Encoding: Chunked (any case) is chunked', async () => {
    await withServer(
      (_r, c) => write(c.socket, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'hello'),
    );
  });

  test('invalid Content-Length: non-numeric, negative, signed, hex, empty, too long, conflicting lists and repeats', async () => {
    for (const cl of ['Content-Length: abc', 'Content-Length: -1', 'Content-Length: +5', 'Content-Length: 0x5', 'Content-Length: 5.0', 'Content-Length: 1e3', 'Content-Length:', 'Content-Length: 5 5', 'Content-Length: 1234567890123456', 'Content-Length: 5, 6', 'Content-Length: 5,', 'Content-Length: 5\r\nContent-Length: 6']) {
      await assertRefused(`HTTP/1.1 200 OK\r\n${cl}\r\n\r\nhello`, /invalid Content-Length/);
    }
  });

  test('a list of equal Content-Length values is accepted (one header or repeated)', async () => {
    const answers = ['Content-Length: 5, 5', 'Content-Length: 5\r\nContent-Length: 5'];
    await withServer(
      (_r, c) => write(c.socket, `HTTP/1.1 200 OK\r\n${answers.shift()}\r\n\r\nhello`),
      {},
      async (_srv, pool) => {
        assertOk(await call(pool).done, 200, 'hello');
        assertOk(await call(pool).done, 200, 'hello');
      },
    );
  });

  const chunked = (body: string): string => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;

  test('invalid chunk-size lines', async () => {
    for (const line of ['zz', '-1', '+5', ' 5', '0x5', '5 junk', ';ext', '', '5\x01', '5;ext\x01']) {
      await assertRefused(chunked(`${line}\r\nhello\r\n0\r\n\r\n`), /invalid chunk-size line/, { headSeen: true });
    }
  });

  test('a chunk-size line over 4096 bytes (terminated or not) is refused; 4096 bytes exactly is accepted', async () => {
    await assertRefused(chunked(`5;${'e'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`), /chunk-size line too long/, { headSeen: true });
    await assertRefused(chunked(`5;${'e'.repeat(5000)}`), /chunk-size line too long/, { headSeen: true });
    await assertRefused(chunked(`5;${'e'.repeat(4095)}\r\nhello\r\n0\r\n\r\n`), /chunk-size line too long/, { headSeen: true });
    await withServer(
      (_r, c) => write(c.socket, chunked(`5;${'e'.repeat(4094)}\r\nhello\r\n0\r\n\r\n`)),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'hello'),
    );
  });

  test('chunk sizes: 17 hex digits are refused, 16 digits over 2^53 are out of range', async () => {
    await assertRefused(chunked('00000000000000005\r\nhello\r\n0\r\n\r\n'), /invalid chunk-size line/, { headSeen: true });
    await assertRefused(chunked('FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n'), /chunk size out of range/, { headSeen: true });
    // 16 digits within range are fine (leading zeros).
    await withServer(
      (_r, c) => write(c.socket, chunked('0000000000000005\r\nhello\r\n0\r\n\r\n')),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'hello'),
    );
  });

  test('chunk data not followed by CRLF is refused (a wrong chunk size cannot shift the framing)', async () => {
    const o = await assertRefused(chunked('5\r\nhelloXY0\r\n\r\n'), /chunk data not followed by CRLF/, { headSeen: true });
    assert.equal(o.body, 'hello');
    await assertRefused(chunked('3\r\nhello\r\n0\r\n\r\n'), /chunk data not followed by CRLF/, { headSeen: true });
    await assertRefused(chunked('5\r\nhello\n0\r\n\r\n'), /chunk data not followed by CRLF/, { headSeen: true });
  });

  test('trailers over 16 KiB are refused: one long line, many lines, unterminated', async () => {
    await assertRefused(chunked(`5\r\nhello\r\n0\r\nX-T: ${'t'.repeat(17 * 1024)}\r\n\r\n`), /trailers too large/, { headSeen: true });
    await assertRefused(chunked(`5\r\nhello\r\n0\r\n${'X-T: tttttttttttttttttttttttttt\r\n'.repeat(600)}\r\n`), /trailers too large/, { headSeen: true });
    await assertRefused(chunked(`5\r\nhello\r\n0\r\nX-T: ${'t'.repeat(17 * 1024)}`), /trailers too large/, { headSeen: true });
    // Trailers under the bound are read and ignored.
    await withServer(
      (_r, c) => write(c.socket, chunked(`5\r\nhello\r\n0\r\n${'X-T: tttttttttttttttttttttttttt\r\n'.repeat(100)}\r\n`)),
      {},
      async (_srv, pool) => assertOk(await call(pool).done, 200, 'hello'),
    );
  });

  test('101 Switching Protocols is refused (nothing asked to switch)', async () => {
    await assertRefused('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello', /switched protocols/);
  });

  test('connection reset mid-body (Content-Length not reached): onError, not onEnd', async () => {
    const o = await assertRefusedBy((s) => {
      write(s, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
      setTimeout(() => s.resetAndDestroy(), 10);
    });
    assert.equal(o.body, 'only part');
  });

  test('connection reset mid-chunked-body: onError, not onEnd', async () => {
    await assertRefusedBy((s) => {
      write(s, chunked('5\r\nhello\r\n'));
      setTimeout(() => s.resetAndDestroy(), 10);
    });
  });

  test('connection closed (FIN) mid-body, Content-Length not reached: onError, not onEnd', async () => {
    await assertRefusedBy((s) => s.end(bytes('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part')));
  });

  test('connection closed (FIN) mid-chunked-body: onError, not onEnd', async () => {
    await assertRefusedBy((s) => s.end(bytes(chunked('5\r\nhello\r\n'))));
  });

  test('connection closed (FIN) before any response: onError', async () => {
    await assertRefusedBy((s) => s.end());
  });

  test('connection closed (FIN) in the middle of the head: onError', async () => {
    await assertRefusedBy((s) => s.end(bytes('HTTP/1.1 200 OK\r\nContent-Le')));
  });
});

/** Write `s` in pieces of `size` bytes, a millisecond apart. */
async function dribbleChunks(socket: net.Socket, s: string, size: number): Promise<void> {
  const b = bytes(s);
  for (let i = 0; i < b.length; i += size) {
    if (socket.destroyed) return;
    socket.write(b.subarray(i, i + size));
    await delay(1);
  }
}

/** The server breaks the connection itself: the call must end in onError (quickly), never onEnd. */
async function assertRefusedBy(serve: (s: net.Socket) => void): Promise<Outcome> {
  let out: Outcome | undefined;
  await withServer(
    (_r, c) => serve(c.socket),
    {},
    async (_srv, pool) => {
      out = await call(pool, { timeoutMs: 300 }).done;
      assert.equal(out.ended, false, `onEnd must not be called (events: ${out.events.join(' | ')})`);
      assert.ok(out.error instanceof Error);
      await delay(5);
      assert.deepEqual(out.late, []);
      assert.equal(pool.size, 0);
    },
  );
  return out!;
}

// =============================================================================================

describe('response desync: bytes after a response are never read as the next one', () => {
  const fake = ok('INJECTED');

  for (const [name, first] of [
    ['Content-Length', ok('real one')],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nreal one\r\n0\r\n\r\n'],
    ['204 (with a Content-Length the client must ignore)', 'HTTP/1.1 204 No Content\r\nContent-Length: 37\r\n\r\n'],
  ] as const) {
    test(`a ${name} response followed in the same write by a second, fake response: the socket is dropped`, async () => {
      let n = 0;
      await withServer(
        (_r, c) => write(c.socket, n++ === 0 ? first + fake : ok('real two')),
        {},
        async (srv, pool) => {
          const one = await call(pool).done;
          assertOk(one, first.startsWith('HTTP/1.1 204') ? 204 : 200, first.startsWith('HTTP/1.1 204') ? '' : 'real one');
          await closedWithin(srv.conns[0], 'the desynchronized socket');
          const two = await call(pool).done;
          assertOk(two, 200, 'real two');
          assert.equal(srv.conns.length, 2, 'the second request went over a new connection');
          assert.equal(srv.conns[1]!.requests.length, 1);
        },
      );
    });
  }

  test('with a request waiting (maxSockets=1), it goes out on a new connection, not the desynchronized one', async () => {
    let n = 0;
    await withServer(
      (_r, c) => {
        if (n++ === 0) setTimeout(() => write(c.socket, ok('real one') + fake), 20);
        else write(c.socket, ok('real two'));
      },
      { maxSockets: 1 },
      async (srv, pool) => {
        const one = call(pool);
        const two = call(pool);
        assertOk(await one.done, 200, 'real one');
        assertOk(await two.done, 200, 'real two');
        assert.equal(srv.conns.length, 2);
        assert.equal(srv.conns[0]!.requests.length, 1, 'nothing more was sent on the first connection');
      },
    );
  });

  test('unsolicited bytes on an idle pooled socket: the socket is dropped; the next request uses a new connection', async () => {
    await withServer(
      (r, c) => write(c.socket, ok(`real ${r.path}`)),
      {},
      async (srv, pool) => {
        assertOk(await call(pool, { path: '/1' }).done, 200, 'real /1');
        assert.equal(pool.size, 1);
        write(srv.conns[0]!.socket, fake);
        await closedWithin(srv.conns[0], 'the idle socket that spoke');
        assert.equal(pool.size, 0);
        assertOk(await call(pool, { path: '/2' }).done, 200, 'real /2');
        assert.equal(srv.conns.length, 2);
      },
    );
  });

  test('an idle pooled socket the server closes is dropped, and the next request uses a new connection', async () => {
    await withServer(
      (r, c) => write(c.socket, ok(`real ${r.path}`)),
      {},
      async (srv, pool) => {
        assertOk(await call(pool, { path: '/1' }).done, 200, 'real /1');
        srv.conns[0]!.socket.end();
        await until(() => pool.size === 0, 'the pool to drop the closed socket');
        assertOk(await call(pool, { path: '/2' }).done, 200, 'real /2');
        assert.equal(srv.conns.length, 2);
      },
    );
  });
});

// =============================================================================================

describe('renderHeaders (request header injection)', () => {
  test('renders name: value lines and accepts tabs, empty values and obs-text', () => {
    assert.equal(renderHeaders({}), '');
    assert.equal(renderHeaders({ 'x-a': '1', Authorization: 'Bearer a.b-c_d~e+f/g=', 'x-empty': '', 'x-tab': 'a\tb', 'x-latin': 'caf\xe9' }), 'x-a: 1\r\nAuthorization: Bearer a.b-c_d~e+f/g=\r\nx-empty: \r\nx-tab: a\tb\r\nx-latin: caf\xe9\r\n');
  });

  test('refuses CR, LF, NUL and other controls in values (header injection)', () => {
    for (const value of ['a\r\nx-injected: 1', 'a\nx-injected: 1', 'a\rb', 'a\x00b', 'a\x01b', 'a\x7fb', '2025-06-18\r\n\r\nGET / HTTP/1.1', 'a\u2028b', 'a\u010ab']) {
      assert.throws(() => renderHeaders({ 'x-ok': 'fine', 'x-value': value }), (err: Error) => err instanceof Http1Error && /invalid characters in the value of header "x-value"/.test(err.message), JSON.stringify(value));
    }
  });

  test('refuses names that are not tokens', () => {
    for (const name of ['', 'bad name', 'a:b', 'x\r\ny', 'x\n', 'caf\xe9', '(x)', 'a/b', 'x\x00']) {
      assert.throws(() => renderHeaders({ [name]: 'v' }), (err: Error) => err instanceof Http1Error && /invalid header name/.test(err.message), JSON.stringify(name));
    }
  });
});

// =============================================================================================

describe('abort and close', () => {
  test('abort() in onHead: no onData/onEnd/onError after it, even as the server sends the rest; the socket is closed', async () => {
    await withServer(
      (_r, c) => {
        write(c.socket, 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
        setTimeout(() => write(c.socket, 'abcdefghij'), 20);
      },
      {},
      async (srv, pool) => {
        const c = call(pool, { onHead: (_h, req) => req.abort() });
        await until(() => c.out.events.length > 0, 'the head');
        await closedWithin(srv.conns[0], 'abort');
        await delay(40);
        assert.deepEqual(c.out.events, ['head:200']);
        assert.equal(pool.size, 0);
      },
    );
  });

  test('abort() before any answer: no callback at all', async () => {
    await withServer(
      (_r, c) => setTimeout(() => write(c.socket, ok('too late')), 10),
      {},
      async (srv, pool) => {
        const c = call(pool);
        await until(() => srv.requests.length === 1, 'the request');
        c.req.abort();
        await closedWithin(srv.conns[0], 'abort');
        await delay(30);
        assert.deepEqual(c.out.events, []);
      },
    );
  });

  test('a waiting request that is aborted is never sent, and hears nothing', async () => {
    const held: (() => void)[] = [];
    await withServer(
      (r, c) => held.push(() => write(c.socket, ok(r.path))),
      { maxSockets: 1 },
      async (srv, pool) => {
        const a = call(pool, { path: '/a' });
        const b = call(pool, { path: '/b' });
        const c = call(pool, { path: '/c' });
        assert.equal(pool.queued, 2);
        b.req.abort();
        assert.equal(pool.queued, 1, 'the aborted request left the queue (with its headers) at once');
        await until(() => held.length === 1, 'a');
        held.shift()!();
        assertOk(await a.done, 200, '/a');
        await until(() => held.length === 1, 'c');
        held.shift()!();
        assertOk(await c.done, 200, '/c');
        assert.deepEqual(
          srv.requests.map((r) => r.path),
          ['/a', '/c'],
        );
        assert.deepEqual(b.out.events, []);
        assert.equal(srv.conns.length, 1);
      },
    );
  });

  test('abort() of a finished request does not touch the next request on the reused socket', async () => {
    await withServer(
      (r, c) => (r.path === '/1' ? write(c.socket, ok('/1')) : setTimeout(() => write(c.socket, ok('/2')), 20)),
      {},
      async (srv, pool) => {
        const one = call(pool, { path: '/1' });
        assertOk(await one.done, 200, '/1');
        const two = call(pool, { path: '/2' });
        await until(() => srv.requests.length === 2, 'the second request');
        one.req.abort();
        assertOk(await two.done, 200, '/2');
        assert.equal(srv.conns.length, 1);
        assert.equal(srv.conns[0]!.isClosed, false);
      },
    );
  });

  test('close(): the in-flight and the waiting request get onError; the waiting one is never sent; sockets are closed', async () => {
    await withServer(
      () => {},
      { maxSockets: 1 },
      async (srv, pool) => {
        const a = call(pool, { path: '/a' });
        const b = call(pool, { path: '/b' });
        await until(() => srv.requests.length === 1, 'a');
        pool.close();
        const [oa, ob] = await Promise.all([a.done, b.done]);
        for (const o of [oa, ob]) {
          assert.ok(o.error instanceof Http1Error);
          assert.match(o.error.message, /pool closed/);
          assert.equal(o.ended, false);
        }
        await closedWithin(srv.conns[0], 'close()');
        await delay(20);
        assert.deepEqual(
          srv.requests.map((r) => r.path),
          ['/a'],
        );
        assert.equal(srv.conns.length, 1);
        assert.deepEqual(oa.late, []);
        assert.deepEqual(ob.late, []);
      },
    );
  });

  test('close() closes idle sockets; a request after close() gets onError (asynchronously) and opens nothing', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x')),
      {},
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        pool.close();
        await closedWithin(srv.conns[0], 'close() of an idle socket');
        const c = call(pool);
        assert.deepEqual(c.out.events, [], 'not called synchronously');
        const o = await c.done;
        assert.ok(o.error instanceof Http1Error);
        assert.match(o.error.message, /pool is closed/);
        await delay(20);
        assert.equal(srv.conns.length, 1);
        assert.equal(pool.size, 0);
      },
    );
  });
});

// =============================================================================================

describe('TLS and connect timeout', () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.cleanup());

  test('https: the CA passed as tls.ca is trusted, SNI names the host, the socket is reused; without the CA, nothing is sent', async () => {
    const srv = await rawServer((r, c) => write(c.socket, ok(`tls ${r.path}`)), { tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
    const url = new URL(`https://localhost:${srv.port}/`);
    const pool = new Http1Pool({ url, connectTimeoutMs: 2000, tls: { ca: readFileSync(pki.caCert) } });
    const untrusting = new Http1Pool({ url, connectTimeoutMs: 2000 });
    try {
      assertOk(await call(pool, { path: '/1' }).done, 200, 'tls /1');
      assertOk(await call(pool, { path: '/2' }).done, 200, 'tls /2');
      assert.equal(srv.conns.length, 1);
      assert.equal((srv.conns[0]!.socket as tls.TLSSocket).servername, 'localhost');
      assert.equal(srv.requests[0]!.raw, `GET /1 HTTP/1.1\r\nhost: localhost:${srv.port}\r\n\r\n`);
      const o = await call(untrusting).done;
      assert.ok(o.error, 'an untrusted certificate fails the request');
      assert.match(o.error.message, /certificate/i);
      assert.equal(o.heads.length, 0);
      assert.equal(srv.requests.length, 2, 'nothing was sent over the untrusted connection');
    } finally {
      pool.close();
      untrusting.close();
      await srv.close();
    }
  });

  test('connection refused: onError at once, no socket kept', async () => {
    const srv = await rawServer(() => {});
    const port = srv.port;
    await srv.close();
    const pool = new Http1Pool({ url: new URL(`http://127.0.0.1:${port}/`), connectTimeoutMs: 1000 });
    try {
      const o = await call(pool).done;
      assert.ok(o.error, 'an error');
      assert.match(o.error.message, /ECONNREFUSED/);
      assert.equal(pool.size, 0);
    } finally {
      pool.close();
    }
  });

  test('connect timeout: a TLS handshake that never completes fails with the timeout, and the socket is closed', async () => {
    const srv = await rawServer(() => {}, { silent: true });
    const pool = new Http1Pool({ url: new URL(`https://127.0.0.1:${srv.port}/`), connectTimeoutMs: 80 });
    try {
      const t0 = performance.now();
      const o = await call(pool).done;
      const took = performance.now() - t0;
      assert.ok(o.error instanceof Http1Error, `got ${o.error}`);
      assert.match(o.error.message, /connect timeout after 80 ms/);
      assert.ok(took >= 70 && took < 1000, `took ${took} ms`);
      await closedWithin(srv.conns[0], 'connect timeout');
      assert.equal(pool.size, 0);
    } finally {
      pool.close();
      await srv.close();
    }
  });
});

// =============================================================================================

describe('idle timeout: the pool closes idle keep-alive sockets before the server would', () => {
  test('an idle pooled socket is closed after idleMs with no further request (the server sees the close); the next request opens a new one', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x')),
      { idleMs: 100 },
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        const t0 = performance.now();
        assert.equal(pool.size, 1, 'kept for reuse');
        await closedWithin(srv.conns[0], 'the idle socket', 1000);
        const took = performance.now() - t0;
        assert.ok(took >= 90, `closed after ${took} ms, before idleMs`);
        assert.equal(pool.size, 0);
        assertOk(await call(pool).done, 200, 'x');
        assert.equal(srv.conns.length, 2);
      },
    );
  });

  test('a socket taken before idleMs is not closed mid-request, and idles afresh after its response', async () => {
    await withServer(
      (r, c) => {
        if (r.path === '/slow') setTimeout(() => write(c.socket, ok('slow')), 150);
        else write(c.socket, ok('x'));
      },
      { idleMs: 100 },
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        await delay(60);
        // Taken at ~60 ms and busy until ~210 ms: past the 100 ms the idle timer had left.
        assertOk(await call(pool, { path: '/slow' }).done, 200, 'slow');
        assert.equal(srv.conns.length, 1, 'the same socket');
        assert.equal(srv.conns[0]!.isClosed, false);
        const t0 = performance.now();
        await closedWithin(srv.conns[0], 'the socket idle again', 1000);
        assert.ok(performance.now() - t0 >= 90, 'a fresh idle timeout');
      },
    );
  });

  test('Keep-Alive: timeout=2 lowers the idle timeout to 1 s (the hint minus 1 s)', async () => {
    await withServer(
      (_r, c) => write(c.socket, ok('x', 'Keep-Alive: timeout=2\r\n')),
      { idleMs: 60_000 },
      async (srv, pool) => {
        assertOk(await call(pool).done, 200, 'x');
        const t0 = performance.now();
        await closedWithin(srv.conns[0], 'the idle socket', 2000);
        const took = performance.now() - t0;
        assert.ok(took >= 900 && took < 1500, `closed after ${took} ms`);
      },
    );
  });

  test('Keep-Alive: timeout=1, and idleMs 0, leave no idle time: the socket is closed as soon as its response ends', async () => {
    for (const [extra, opts] of [
      ['Keep-Alive: timeout=1\r\n', {}],
      ['', { idleMs: 0 }],
    ] as const) {
      await withServer(
        (_r, c) => write(c.socket, ok('x', extra)),
        opts,
        async (srv, pool) => {
          assertOk(await call(pool).done, 200, 'x');
          await closedWithin(srv.conns[0], 'a socket with no idle time', 200);
          assert.equal(pool.size, 0);
        },
      );
    }
  });

  test('idleMs must be 0 to 2^31-1 ms', () => {
    for (const idleMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      assert.throws(() => new Http1Pool({ url: new URL('http://127.0.0.1:1/'), connectTimeoutMs: 1000, idleMs }), /idleMs must be/);
    }
  });
});

// =============================================================================================

describe('process lifetime: like node http Agent, an idle pooled socket does not keep the process alive', () => {
  test('a child that made its requests exits by itself while the server keeps the connection open; a socket taken for a request holds it until the answer', async () => {
    let answeredTwo = 0;
    const srv = await rawServer((r, c) => {
      if (r.path === '/two') {
        // Late: only the socket, back in use, holds the child meanwhile.
        setTimeout(() => {
          answeredTwo = performance.now();
          write(c.socket, ok('two'));
        }, 400);
      } else write(c.socket, ok('one'));
    });
    const fixture = fileURLToPath(new URL('../fixtures/pool-idle-exit.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, `http://127.0.0.1:${srv.port}/`], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // A child that would hang (an idle socket holding it) is killed: the test fails, not hangs.
    const guard = setTimeout(() => child.kill('SIGKILL'), 5000);
    try {
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      const exitedAt = performance.now();
      assert.equal(signal, null, `the child had to be killed: it did not exit by itself (output: ${out})`);
      assert.equal(code, 0, out);
      assert.match(out, /answered \/one 200\nanswered \/two 200\n/, 'the child waited for the late answer on the reused socket');
      assert.equal(srv.conns.length, 1, 'both requests on one pooled socket');
      const after = exitedAt - answeredTwo;
      assert.ok(after < 1500, `the child exited ${Math.round(after)} ms after its last answer`);
    } finally {
      clearTimeout(guard);
      await srv.close();
    }
  });
});
