/**
 * A lean HTTP/1.1 client for the Streamable HTTP upstream: a pool of keep-alive sockets to one
 * origin and a strict, incremental response parser.
 *
 * Why not node:http's ClientRequest: per call it costs about twice the CPU of this client
 * (agent bookkeeping, a nextTick to attach the socket, a Readable per response, listeners added
 * and removed on every request), and the upstream hop is on the path of every tools/call.
 * `npm run bench` measures the difference (docs/bench.md).
 *
 * Every byte from the upstream is hostile. The parser is strict and fails closed: anything it does
 * not understand ends the request with an error and destroys the socket, so a malformed or
 * smuggled response can never be read as the next request's answer.
 *  - status line `HTTP/1.x NNN`; header names are tokens; values hold no control characters;
 *    no obs-fold; the head is at most `maxHeaderBytes`;
 *  - body framing per RFC 9112 §6.3: no body for 1xx/204/304; `Transfer-Encoding` must be exactly
 *    `chunked` and must not come with `Content-Length`; `Content-Length` must be digits (a list
 *    of equal values is accepted); otherwise the body runs to the end of the connection;
 *  - chunk-size lines are hex of at most 16 digits with optional extensions, bounded in length;
 *    trailers are bounded and ignored;
 *  - bytes after a complete response on an idle socket destroy it.
 * One request per socket at a time (no pipelining). Informational 1xx responses are skipped.
 *
 * Idle keep-alive sockets are closed by the pool itself, before the server would close them, so
 * a request is never written to a socket the server is closing at that moment (the keep-alive
 * reuse race). The idle limit is `idleMs` (default 4 s, under the 5 s keepAliveTimeout of node's
 * http server); a response with `Keep-Alive: timeout=S` lowers it to S seconds minus a 1 s margin,
 * and when that leaves nothing (S <= 1) the socket is closed as soon as its response ends.
 * As with node's http Agent, an idle pooled socket does not keep the process alive (it is unref'd
 * while in the pool and ref'd again when taken for a request).
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';

export interface Http1Head {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
}

/** Receives one response. After onEnd or onError, nothing more is called. */
export interface Http1Handler {
  onHead(head: Http1Head): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: Error): void;
}

export interface Http1Request {
  /** Stop the request: the socket is destroyed and the handler hears nothing more. */
  abort(): void;
}

export interface Http1PoolOptions {
  url: URL;
  /** Most sockets open at once; further requests wait in order. */
  maxSockets?: number;
  /** Most idle sockets kept for reuse. */
  maxFreeSockets?: number;
  connectTimeoutMs: number;
  /** Largest status line + headers accepted (default 16 KiB, like node:http). */
  maxHeaderBytes?: number;
  /**
   * An idle pooled socket is closed after this many ms (default 4000). A `Keep-Alive: timeout=S`
   * response header lowers it to min(idleMs, S * 1000 - 1000); 0 or less: not kept at all.
   */
  idleMs?: number;
  /** Extra TLS options for https (a secure context with a private CA, or a CA in tests). */
  tls?: tls.ConnectionOptions;
  /** The Host header to send, when not the URL's host (an upstream behind a virtual host). */
  hostHeader?: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field value: visible ASCII, obs-text, space and tab; no CR, LF, NUL or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,16})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;
/** 1xx responses skipped before the real one (100 Continue, 103 Early Hints): a few at most. */
const MAX_INFORMATIONAL = 16;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

export class Http1Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Http1Error';
  }
}

/** Validate and render request headers once (`name: value\r\n` lines). Throws on CR/LF or a bad name. */
export function renderHeaders(headers: Readonly<Record<string, string>>): string {
  let out = '';
  for (const name in headers) {
    const value = headers[name]!;
    if (!TOKEN.test(name)) throw new Http1Error(`invalid header name "${name}"`);
    if (!FIELD_VALUE.test(value)) throw new Http1Error(`invalid characters in the value of header "${name}"`);
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

/** 1 for the characters of an RFC 9110 token (header names). */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHARS[c.charCodeAt(0)] = 1;

/**
 * One `name: value` line of a response head (latin1 text, so every char is a byte): the name
 * must be a token, the value (without surrounding spaces and tabs) free of control characters.
 * A line that starts with a space or tab (obs-fold) fails the name check. Repeated names join.
 */
function headerLine(head: string, start: number, end: number, headers: Record<string, string>): void {
  let colon = -1;
  let upper = false;
  for (let i = start; i < end; i++) {
    const c = head.charCodeAt(i);
    if (c === 58) {
      colon = i;
      break;
    }
    if (c >= 128 || TOKEN_CHARS[c] === 0) throw new Http1Error('upstream sent an invalid header name');
    if (c >= 65 && c <= 90) upper = true;
  }
  if (colon <= start) throw new Http1Error('upstream sent an invalid header line');
  let vs = colon + 1;
  let ve = end;
  while (vs < ve && (head.charCodeAt(vs) === 32 || head.charCodeAt(vs) === 9)) vs++;
  while (ve > vs && (head.charCodeAt(ve - 1) === 32 || head.charCodeAt(ve - 1) === 9)) ve--;
  for (let i = vs; i < ve; i++) {
    const c = head.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) throw new Http1Error('upstream sent control characters in a header value');
  }
  const name = head.slice(start, colon);
  const key = upper ? name.toLowerCase() : name;
  if (key === '__proto__') return;
  const value = head.slice(vs, ve);
  const prev = headers[key];
  headers[key] = prev === undefined ? value : `${prev}, ${value}`;
}

type Framing = 'none' | 'length' | 'chunked' | 'close';
type State = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'done';

class Conn {
  readonly socket: net.Socket;
  handler: Http1Handler | undefined;
  idleSince = 0;
  /** How long the socket may stay idle in the pool after its last response (ms). */
  maxIdleMs: number;
  /** Closes the socket once it has been idle for maxIdleMs; cleared when it is taken. */
  private idleTimer: NodeJS.Timeout | undefined;
  /** The response in progress completed inside feed(): hand the socket back after the loop. */
  private finished = false;
  /**
   * Bytes of a head or line whose end has not arrived yet. They are joined once the end may be
   * in the new data, so a head sent a byte at a time costs linear, not quadratic, copying.
   */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Informational (1xx) responses skipped for the current request. */
  private informational = 0;
  private state: State = 'head';
  private framing: Framing = 'none';
  private remaining = 0;
  private keepAlive = true;
  private trailerBytes = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(
    private readonly pool: Http1Pool,
    readonly options: Required<Pick<Http1PoolOptions, 'maxHeaderBytes' | 'idleMs'>>,
    socket: net.Socket,
    connectTimeoutMs: number,
    secure: boolean,
  ) {
    this.socket = socket;
    this.maxIdleMs = options.idleMs;
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => this.fail(new Http1Error(`connect timeout after ${connectTimeoutMs} ms`)), connectTimeoutMs);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    });
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Http1Error('upstream closed the connection before the response ended')));
  }

  start(handler: Http1Handler, wire: string): void {
    this.handler = handler;
    this.finished = false;
    this.state = 'head';
    this.framing = 'none';
    this.keepAlive = true;
    this.pending = [];
    this.pendingLen = 0;
    this.informational = 0;
    this.socket.write(wire);
  }

  private onData(d: Buffer): void {
    if (this.dead) return;
    if (this.handler === undefined) {
      // An idle socket must be silent: whatever this is, it is not an answer to anything.
      this.destroy();
      return;
    }
    try {
      this.feed(d);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Http1Error(String(err)));
    }
  }

  /** Consume bytes; may complete the response (and hand the socket back) mid-way. */
  private feed(d: Buffer): void {
    let data = d;
    if (this.pendingLen > 0) {
      if (this.state !== 'chunk-crlf' && !this.mayEnd(d)) {
        this.wait(d, 0);
        return;
      }
      data = Buffer.concat([...this.pending, d], this.pendingLen + d.length);
      this.pending = [];
      this.pendingLen = 0;
    }
    let at = 0;
    while (at < data.length && this.handler !== undefined && !this.dead) {
      switch (this.state) {
        case 'head': {
          const end = data.indexOf(HEAD_END, at);
          if (end < 0) {
            this.wait(data, at);
            return;
          }
          if (end - at > this.options.maxHeaderBytes) throw new Http1Error(`upstream response head exceeds ${this.options.maxHeaderBytes} bytes`);
          const head = data.toString('latin1', at, end);
          at = end + 4;
          this.onHead(head);
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, data.length - at);
          const piece = data.subarray(at, at + n);
          at += n;
          if (this.framing === 'length') this.remaining -= n;
          this.handler.onData(piece);
          // The handler may have aborted (a size limit): then there is nothing to complete.
          if (this.handler !== undefined && !this.dead && this.framing === 'length' && this.remaining === 0) this.complete();
          break;
        }
        case 'chunk-size': {
          const nl = data.indexOf(CRLF, at);
          if (nl < 0) {
            this.wait(data, at);
            return;
          }
          if (nl - at > MAX_CHUNK_LINE) throw new Http1Error('upstream chunk-size line too long');
          const m = CHUNK_SIZE.exec(data.toString('latin1', at, nl));
          if (m === null) throw new Http1Error('upstream sent an invalid chunk-size line');
          const size = Number.parseInt(m[1]!, 16);
          if (!Number.isSafeInteger(size)) throw new Http1Error('upstream chunk size out of range');
          at = nl + 2;
          if (size === 0) {
            this.state = 'trailers';
            this.trailerBytes = 0;
          } else {
            this.remaining = size;
            this.state = 'chunk-data';
          }
          break;
        }
        case 'chunk-data': {
          const n = Math.min(this.remaining, data.length - at);
          const piece = data.subarray(at, at + n);
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'chunk-crlf';
          this.handler.onData(piece);
          break;
        }
        case 'chunk-crlf': {
          if (data.length - at < 2) {
            this.wait(data, at);
            return;
          }
          if (data[at] !== 13 || data[at + 1] !== 10) throw new Http1Error('upstream chunk data not followed by CRLF');
          at += 2;
          this.state = 'chunk-size';
          break;
        }
        case 'trailers': {
          const nl = data.indexOf(CRLF, at);
          if (nl < 0) {
            this.wait(data, at);
            return;
          }
          this.trailerBytes += nl - at + 2;
          if (this.trailerBytes > MAX_TRAILER_BYTES) throw new Http1Error('upstream trailers too large');
          const empty = nl === at;
          at = nl + 2;
          if (empty) this.complete();
          break;
        }
        case 'done':
          break;
      }
    }
    if (this.finished) {
      this.finished = false;
      // Bytes after a complete response mean the upstream is out of step with us: never reuse.
      if (this.keepAlive && at === data.length && !this.dead) this.pool.release(this);
      else this.destroy();
    }
  }

  /** Keep `data[at..]` until the rest of its head or line arrives; refuse it past the limits. */
  private wait(data: Buffer, at: number): void {
    const piece = at === 0 ? data : data.subarray(at);
    this.pending.push(piece);
    this.pendingLen += piece.length;
    if (this.state === 'head' && this.pendingLen > this.options.maxHeaderBytes + 3) throw new Http1Error(`upstream response head exceeds ${this.options.maxHeaderBytes} bytes`);
    if (this.state === 'chunk-size' && this.pendingLen > MAX_CHUNK_LINE + 1) throw new Http1Error('upstream chunk-size line too long');
    if (this.state === 'trailers' && this.trailerBytes + this.pendingLen > MAX_TRAILER_BYTES) throw new Http1Error('upstream trailers too large');
  }

  /** Whether the end the pending bytes wait for (CRLFCRLF for a head, else CRLF) may be in `d`, also across the seam. */
  private mayEnd(d: Buffer): boolean {
    const needle = this.state === 'head' ? HEAD_END : CRLF;
    if (d.indexOf(needle) >= 0) return true;
    const k = needle.length - 1;
    const tail: number[] = [];
    for (let i = this.pending.length - 1; i >= 0 && tail.length < k; i--) {
      const p = this.pending[i]!;
      for (let j = p.length - 1; j >= 0 && tail.length < k; j--) tail.unshift(p[j]!);
    }
    return Buffer.concat([Buffer.from(tail), d.subarray(0, k)]).indexOf(needle) >= 0;
  }

  private onHead(head: string): void {
    let eol = head.indexOf('\r\n');
    if (eol < 0) eol = head.length;
    const m = STATUS_LINE.exec(head.slice(0, eol));
    if (m === null) throw new Http1Error('upstream sent an invalid HTTP status line');
    const status = Number(m[2]);
    const headers: Record<string, string> = {};
    for (let start = eol + 2; start <= head.length; ) {
      let end = head.indexOf('\r\n', start);
      if (end < 0) end = head.length;
      headerLine(head, start, end, headers);
      start = end + 2;
    }
    if (status >= 100 && status < 200) {
      if (status === 101) throw new Http1Error('upstream switched protocols, which was not asked for');
      if (++this.informational > MAX_INFORMATIONAL) throw new Http1Error(`upstream sent more than ${MAX_INFORMATIONAL} informational responses`);
      return; // informational: the real response follows
    }
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    const connection = (headers['connection'] ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' ? !/(?:^|,)\s*close\s*(?:,|$)/.test(connection) : /(?:^|,)\s*keep-alive\s*(?:,|$)/.test(connection);
    if (status === 204 || status === 304) {
      this.framing = 'none';
    } else if (te !== undefined) {
      if (cl !== undefined) throw new Http1Error('upstream sent both Transfer-Encoding and Content-Length');
      if (te.toLowerCase() !== 'chunked') throw new Http1Error(`upstream transfer coding "${te}" is not supported`);
      this.framing = 'chunked';
    } else if (cl !== undefined) {
      const values = cl.split(',').map((v) => v.trim());
      if (!values.every((v) => /^\d{1,15}$/.test(v) && v === values[0])) throw new Http1Error('upstream sent an invalid Content-Length');
      this.framing = 'length';
      this.remaining = Number(values[0]);
    } else {
      this.framing = 'close';
      this.keepAlive = false;
    }
    const hint = /(?:^|,)\s*timeout=(\d{1,6})/.exec(headers['keep-alive'] ?? '');
    const idleMs = hint ? Math.min(this.options.idleMs, Number(hint[1]) * 1000 - 1000) : this.options.idleMs;
    this.maxIdleMs = idleMs;
    this.handler!.onHead({ status, headers });
    if (this.handler === undefined || this.dead) return;
    if (this.framing === 'none' || (this.framing === 'length' && this.remaining === 0)) this.complete();
    else if (this.framing === 'chunked') this.state = 'chunk-size';
    else {
      this.state = 'body';
      if (this.framing === 'close') this.remaining = Infinity;
    }
  }

  /** The response is whole: tell the handler; feed() then reuses or drops the socket. */
  private complete(): void {
    const h = this.handler!;
    this.handler = undefined;
    this.state = 'done';
    this.finished = true;
    h.onEnd();
  }

  private onEnd(): void {
    if (this.dead) return;
    if (this.handler !== undefined && this.state === 'body' && this.framing === 'close') {
      const h = this.handler;
      this.handler = undefined;
      this.state = 'done';
      h.onEnd();
    }
    // Anything else still waiting for its response hears that it will not come (a clean close
    // before the end of a head or body, or a keep-alive socket the server closed as it was reused).
    this.fail(new Http1Error('upstream closed the connection before the response ended'));
  }

  fail(err: Error): void {
    if (this.dead) return;
    const h = this.handler;
    this.handler = undefined;
    this.destroy();
    h?.onError(err);
  }

  /** Idle in the pool from now: closed after maxIdleMs unless taken first (neither the timer nor the socket holds the process). */
  park(): void {
    this.idleSince = performance.now();
    this.idleTimer = setTimeout(() => this.destroy(), this.maxIdleMs);
    this.idleTimer.unref();
    this.socket.unref();
  }

  /** Taken from the pool for a request: the socket holds the process again until its answer. */
  reuse(): void {
    this.socket.ref();
  }

  /** Taken out of the pool (for a request, or to be dropped): no idle close any more. */
  unpark(): void {
    if (this.idleTimer === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Drop the connection without telling anyone (abort, or an idle socket going away). */
  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.handler = undefined;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.unpark();
    this.socket.destroy();
    this.pool.forget(this);
  }
}

interface Waiting {
  handler: Http1Handler;
  wire: string;
  /** The connection it was started on, once it left the queue. */
  conn?: Conn;
}

export class Http1Pool {
  private readonly free: Conn[] = [];
  private readonly all = new Set<Conn>();
  private readonly waiting: Waiting[] = [];
  private readonly maxSockets: number;
  private readonly maxFree: number;
  private readonly hostHeader: string;
  private readonly secure: boolean;
  private readonly connOptions: Required<Pick<Http1PoolOptions, 'maxHeaderBytes' | 'idleMs'>>;
  private closed = false;

  constructor(private readonly opts: Http1PoolOptions) {
    const u = opts.url;
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Http1Error(`unsupported upstream URL scheme "${u.protocol}"`);
    this.secure = u.protocol === 'https:';
    if (opts.hostHeader !== undefined && !/^[\x21-\x7e]{1,255}$/.test(opts.hostHeader)) throw new Http1Error('invalid Host header value');
    this.hostHeader = opts.hostHeader ?? u.host;
    this.maxSockets = opts.maxSockets ?? 256;
    this.maxFree = opts.maxFreeSockets ?? 64;
    const idleMs = opts.idleMs ?? 4000;
    // setTimeout fires at once for a delay past 2^31 - 1 ms, which would be wrong, not merely long.
    if (!Number.isFinite(idleMs) || idleMs < 0 || idleMs > 2 ** 31 - 1) throw new Http1Error('idleMs must be a number of milliseconds from 0 to 2147483647');
    this.connOptions = { maxHeaderBytes: opts.maxHeaderBytes ?? 16 * 1024, idleMs };
  }

  /**
   * Send one request. `headerBlock` comes from renderHeaders (validated); `body` is sent with a
   * Content-Length. The handler is called from socket events, never synchronously from here.
   */
  request(method: string, path: string, headerBlock: string, body: string | undefined, handler: Http1Handler): Http1Request {
    if (this.closed) {
      queueMicrotask(() => handler.onError(new Http1Error('upstream connection pool is closed')));
      return { abort() {} };
    }
    let wire = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n${headerBlock}`;
    wire += body === undefined ? '\r\n' : `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const conn = this.take();
    if (conn !== undefined) {
      conn.start(handler, wire);
      return { abort: () => (conn.handler === handler ? conn.destroy() : undefined) };
    }
    const w: Waiting = { handler, wire };
    this.waiting.push(w);
    return {
      abort: () => {
        if (w.conn !== undefined) {
          if (w.conn.handler === handler) w.conn.destroy();
          return;
        }
        // Still queued: leave the queue (with its request text, credentials included).
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
      },
    };
  }

  /** An idle connection, or a new one when under maxSockets; undefined means wait. */
  private take(): Conn | undefined {
    const now = performance.now();
    while (this.free.length > 0) {
      const c = this.free.pop()!;
      c.unpark();
      // The idle timer may be late on a busy event loop: the age is checked here too.
      if (!c.dead && now - c.idleSince < c.maxIdleMs) {
        c.reuse();
        return c;
      }
      c.destroy();
    }
    if (this.all.size >= this.maxSockets) return undefined;
    return this.connect();
  }

  private connect(): Conn {
    const u = this.opts.url;
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const port = u.port === '' ? (this.secure ? 443 : 80) : Number(u.port);
    const socket = this.secure
      ? // SNI as node's https agent sends it: the host name, never an IP address.
        tls.connect({ host, port, ALPNProtocols: ['http/1.1'], ...(net.isIP(host) === 0 ? { servername: host } : {}), ...this.opts.tls })
      : net.connect({ host, port });
    const c = new Conn(this, this.connOptions, socket, this.opts.connectTimeoutMs, this.secure);
    this.all.add(c);
    return c;
  }

  /** A connection finished a response and may be reused. */
  release(c: Conn): void {
    if (this.closed || c.dead) {
      c.destroy();
      return;
    }
    const next = this.waiting.shift();
    if (next !== undefined) {
      next.conn = c;
      c.start(next.handler, next.wire);
      return;
    }
    // A full pool, or an idle limit that leaves no time (a server's keep-alive hint of 1 s or less).
    if (this.free.length >= this.maxFree || c.maxIdleMs <= 0) {
      c.destroy();
      return;
    }
    c.park();
    this.free.push(c);
  }

  /** A connection died: start a waiting request on a new one. */
  forget(c: Conn): void {
    this.all.delete(c);
    const i = this.free.indexOf(c);
    if (i >= 0) this.free.splice(i, 1);
    if (this.closed || this.waiting.length === 0 || this.all.size >= this.maxSockets) return;
    const next = this.waiting.shift();
    if (next !== undefined) {
      next.conn = this.connect();
      next.conn.start(next.handler, next.wire);
    }
  }

  /** Sockets open now (tests). */
  get size(): number {
    return this.all.size;
  }

  /** Requests waiting for a socket (tests): an aborted one leaves at once. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Destroy every socket; waiting and in-flight requests get an error. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.waiting.splice(0);
    for (const c of [...this.all]) c.fail(new Http1Error('upstream connection pool closed'));
    for (const w of waiting) w.handler.onError(new Http1Error('upstream connection pool closed'));
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * A TLS context that trusts node's default store (its bundled roots and the certificates of
 * NODE_EXTRA_CA_CERTS) and, in addition, the CA certificates in `pem` (an upstream behind a
 * private CA). A `ca` option alone would replace the default store, and node 20 does not add
 * NODE_EXTRA_CA_CERTS to a context given its own CAs, so that file is read here too.
 */
export function secureContextWithCa(pem: string, env: NodeJS.ProcessEnv = process.env): tls.SecureContext {
  const certs = pem.match(PEM_CERT) ?? [];
  if (certs.length === 0) throw new Http1Error('no PEM certificate (-----BEGIN CERTIFICATE-----)');
  let extra: string[] = [];
  const extraFile = env.NODE_EXTRA_CA_CERTS;
  if (extraFile) {
    try {
      extra = readFileSync(extraFile, 'utf8').match(PEM_CERT) ?? [];
    } catch {
      /* node warns about an unreadable NODE_EXTRA_CA_CERTS at start-up and goes on without it */
    }
  }
  return tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra, ...certs] });
}
