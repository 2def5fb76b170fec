/**
 * Streamable HTTP upstream (MCP 2025-11-25 transport), native on node:http/https.
 *
 * - Every request carries only the gateway's own headers: the client's Authorization, DPoP,
 *   Cookie and session headers are never copied (there is no code path that could copy them).
 * - Sends are ordered where order matters: a notification or a response (e.g. the client's
 *   `notifications/initialized`, or its answer to a sampling request) must be accepted (202)
 *   before later messages go out; requests after that run concurrently. An upstream that does
 *   not accept such a POST within `acceptTimeoutMs` has it aborted (socket destroyed, never
 *   pooled): its send() rejects and later sends go on. A request's POST does not hold the
 *   queue; one that is never answered ends by the session's timeout and its cancellation.
 * - Responses may come as JSON or as an SSE stream; an SSE stream that ends before the response
 *   is resumed with GET + Last-Event-ID after the server's `retry` delay (SEP-1699 polling).
 * - The standalone GET stream is opened after initialization and awaited before later sends,
 *   so server → client requests on it are not lost; for `acceptTimeoutMs` at most: a GET whose
 *   head has not come by then is aborted (socket destroyed) and retried like a failed connect.
 * - HTTP/1.1 itself is spoken by http1.ts (a lean, strict client and keep-alive pool).
 * - A `notifications/cancelled` for a request whose answer is still on its way (its POST, or a
 *   GET resuming its stream) silences that exchange at once: nothing more from it is delivered.
 *   Once the upstream accepted the notification, or failed it, or after `cancelGraceMs` at the
 *   latest, the exchange's socket is destroyed (a hung upstream cannot hold it), never reused.
 *   A cancellation the upstream does not accept within `cancelGraceMs` is given up too.
 * - close() (and a failure that ends the connection) aborts every exchange still under way: its
 *   POST or GET socket is destroyed (never pooled again), a send() still waiting for the upstream
 *   to accept its message rejects, and nothing more is delivered.
 */
import { StringDecoder } from 'node:string_decoder';
import type { JsonRpcId, JsonRpcMessage, JsonRpcNotification } from '../pipeline/messages.js';
import { isNotification, isRequest, toMessage } from '../pipeline/messages.js';
import { SseParser } from './sse.js';
import type { UpstreamConnection, UpstreamHandlers, UpstreamSendOptions } from './connection.js';
import { UPSTREAM_RESERVED_HEADERS } from '../config/upstream-hygiene.js';
import { Http1Error, renderHeaders, type Http1Head, type Http1Handler, type Http1Pool, type Http1Request } from './http1.js';

export interface HttpUpstreamOptions {
  url: string;
  handlers: UpstreamHandlers;
  /** Keep-alive connections to the upstream's origin for POSTs, shared by the mount's sessions. */
  pool: Http1Pool;
  /** Connections for event-stream GETs (long-lived; default: `pool`). */
  streamPool?: Http1Pool;
  /** Static, non-secret headers from config. */
  headers: Readonly<Record<string, string>>;
  /** Upstream credentials (the gateway's own, never the client's). */
  credentials?: ((opts: UpstreamSendOptions) => Promise<Record<string, string>>) | undefined;
  maxMessageBytes: number;
  /** Most attempts to resume one response stream. */
  maxResumeAttempts?: number;
  /**
   * Longest wait (ms) for the upstream to accept a `notifications/cancelled` before the cancelled
   * request's socket is closed anyway and the notification itself is given up (default 1000).
   */
  cancelGraceMs?: number;
  /**
   * Longest wait (ms) for the upstream to accept (send the status line and headers for) the POST
   * of a notification or a response, counted from when its turn comes (credentials and a free
   * connection included); later sends wait behind it. Past it the POST is aborted, its socket
   * destroyed, and its send() rejects (default 30000). Requests are bounded by the session's
   * request timeout instead, and `notifications/cancelled` by `cancelGraceMs`. It bounds the
   * wait for the standalone GET stream's head too (each attempt; afterInitialized() returns by
   * then), not a GET resuming a response stream (the request's timeout ends that).
   */
  acceptTimeoutMs?: number;
  /**
   * Told when an attempt to open the standalone GET stream fails (its head did not come within
   * acceptTimeoutMs, the request failed, or the stream broke before any event), with the delay
   * before the next attempt, or none when the upstream is given up on (after 5 in a row): the
   * session then goes on without server-to-client messages. For the operational log.
   */
  onGetStreamFailed?: (failure: GetStreamFailure) => void;
}

export interface GetStreamFailure {
  reason: 'head_timeout' | 'request_failed' | 'broken';
  /** Failed attempts in a row, this one included. */
  failures: number;
  /** When the stream is tried again; undefined: given up. */
  retryInMs: number | undefined;
}

/** The longest delay setTimeout honours (a longer one fires at once). */
const MAX_TIMER_MS = 2_147_483_647;

const VISIBLE_ASCII = /^[\x21-\x7e]{1,256}$/;
/** Shortest wait before the standalone GET stream is opened again (a server's `retry: 0` included). */
const MIN_RECONNECT_MS = 500;
/**
 * Framing, connection and MCP transport headers are the gateway's own (the config schema refuses
 * them too): a second Content-Length or a Transfer-Encoding from elsewhere would be a
 * request-smuggling hazard.
 */
function refuseReserved(name: string): void {
  if (UPSTREAM_RESERVED_HEADERS.has(name)) throw new Http1Error(`the ${name} header is set by the gateway itself`);
}
const POST_HEADERS = renderHeaders({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
const SSE_HEADERS = renderHeaders({ accept: 'text/event-stream' });

/** What is done with a response body once its head has been seen. */
interface BodySink {
  data(chunk: Buffer): void;
  end(): void;
  error(err: Error): void;
}

const DISCARD: BodySink = { data() {}, end() {}, error() {} };

type Exchange = Http1Handler & {
  request?: Http1Request;
  /** Its request was cancelled (or it was given up): it hears nothing more, whatever still arrives. */
  cancelled?: boolean;
};

/**
 * An Http1Handler that hands the head to `onHead`, which picks where the body goes; `abort`
 * drops the exchange (a body over the limit, a broken stream). `settled` runs when the exchange
 * ends, fails or is dropped so, cancelled or not.
 */
function handler(onHead: (head: Http1Head, abort: () => void) => BodySink, onFailure: (err: Error) => void, settled?: () => void): Exchange {
  let sink: BodySink | undefined;
  const ex: Exchange = {
    onHead(head) {
      if (ex.cancelled) return;
      sink = onHead(head, () => {
        ex.request?.abort();
        settled?.();
      });
    },
    onData(chunk) {
      if (!ex.cancelled) sink?.data(chunk);
    },
    onEnd() {
      settled?.();
      if (!ex.cancelled) sink?.end();
    },
    onError(err) {
      settled?.();
      if (ex.cancelled) return;
      if (sink === undefined) onFailure(err);
      else sink.error(err);
    },
  };
  return ex;
}

/** A request whose answer is on its way (or whose POST waits its turn), for cancellation. */
interface InFlight {
  /** The exchange carrying the answer: undefined while the POST waits behind a notification. */
  ex: Exchange | undefined;
  cancelled: boolean;
  /** Resolves the request's send() (a no-op once it settled, and for a resumed stream). */
  settle: () => void;
}

/** Send through the pool, keeping the request handle on the exchange for `abort`. */
function dispatch(pool: Http1Pool, method: string, path: string, headers: string, body: string | undefined, ex: Exchange): Http1Request {
  ex.request = pool.request(method, path, headers, body, ex);
  return ex.request;
}

/** The session's own headers; the version comes from the upstream's initialize result, so it is checked too. */
function sessionHeaders(sessionId: string | undefined, version: string | undefined): string {
  const h: Record<string, string> = {};
  if (sessionId) h['mcp-session-id'] = sessionId;
  if (version) h['mcp-protocol-version'] = version;
  return renderHeaders(h);
}

const isEventStream = (head: Http1Head): boolean => (head.headers['content-type'] ?? '').startsWith('text/event-stream');

export class HttpUpstream implements UpstreamConnection {
  private readonly path: string;
  /** Config headers (lower-case names) and URL userinfo. */
  private readonly fixed = new Map<string, string>();
  /** `fixed`, rendered and checked once. */
  private readonly staticHeaders: string;
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  /** Session and version headers, rendered when either changes. */
  private sessionHeaders = '';
  private barrier: Promise<void> | undefined;
  private closed = false;
  /** Requests sent and not answered yet (upstream ids), for resumption and for close. */
  private readonly open = new Set<JsonRpcId>();
  /**
   * Each request whose answer is on its way (its POST, or a GET resuming its stream), by upstream
   * request id, for cancellation: from send() until that exchange ends, fails or is aborted.
   */
  private readonly inflight = new Map<JsonRpcId, InFlight>();
  /**
   * Every exchange under way (each POST, resumed GET and the standalone GET), for close: with
   * what settles the promise waiting on it. From its creation until it ends, fails or is aborted.
   */
  private readonly live = new Map<Exchange, (err: Error) => void>();
  private readonly acceptTimeoutMs: number;

  constructor(private readonly opts: HttpUpstreamOptions) {
    const accept = opts.acceptTimeoutMs ?? 30_000;
    if (!Number.isFinite(accept) || accept <= 0 || accept > MAX_TIMER_MS) {
      throw new RangeError(`acceptTimeoutMs must be a number of milliseconds above 0 and at most ${MAX_TIMER_MS}, got ${String(opts.acceptTimeoutMs)}`);
    }
    this.acceptTimeoutMs = accept;
    const u = new URL(opts.url);
    this.path = `${u.pathname}${u.search}`;
    // Config headers by lower-case name (the schema refuses a name given twice); `host` goes to
    // the pool (server.ts).
    for (const [k, v] of Object.entries(opts.headers)) {
      const name = k.toLowerCase();
      refuseReserved(name);
      if (name === 'host') continue;
      this.fixed.set(name, v);
    }
    if ((u.username || u.password) && !this.fixed.has('authorization')) {
      this.fixed.set('authorization', `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`);
    }
    this.staticHeaders = renderHeaders(Object.fromEntries(this.fixed));
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** Exchanges tracked for cancellation (tests). */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Exchanges under way, tracked for close (tests). */
  get liveCount(): number {
    return this.live.size;
  }

  async start(): Promise<void> {
    /* connections are made per request through the keep-alive pool */
  }

  /** Throws (and keeps the previous version) when the version holds characters a header cannot. */
  setProtocolVersion(version: string): void {
    this.sessionHeaders = sessionHeaders(this.sessionId, version);
    this.protocolVersion = version;
  }

  /** The gateway's own headers for one request: synchronous unless credentials must be fetched. */
  private headers(extra: string, options: UpstreamSendOptions | undefined): string | Promise<string> {
    if (this.opts.credentials === undefined) return `${this.staticHeaders}${this.sessionHeaders}${extra}`;
    // Credential headers replace config headers of the same name (an Authorization from the URL).
    return this.opts.credentials(options ?? {}).then((c) => {
      const creds = new Map<string, string>();
      for (const [k, v] of Object.entries(c)) {
        const name = k.toLowerCase();
        refuseReserved(name);
        if (name === 'host') throw new Http1Error('a credential cannot set the host header');
        creds.set(name, v);
      }
      const fixed = [...this.fixed].filter(([k]) => !creds.has(k));
      return `${renderHeaders(Object.fromEntries(fixed))}${this.sessionHeaders}${extra}${renderHeaders(Object.fromEntries(creds))}`;
    });
  }

  async send(msg: JsonRpcMessage, options?: UpstreamSendOptions): Promise<void> {
    if (this.closed) throw new Error('upstream connection is closed');
    // A request is not waited for by later sends (and the session times it out); a notification
    // or a response is, so the upstream has acceptTimeoutMs to accept it.
    if (isRequest(msg)) return this.forward(msg, options, undefined);
    if (!isNotification(msg) || msg.method !== 'notifications/cancelled') return this.forward(msg, options, this.acceptTimeoutMs);
    // A cancellation the upstream does not accept within cancelGraceMs is given up, whether or
    // not its request is still in flight here (a repeated one is not held by a hung upstream).
    const graceMs = this.opts.cancelGraceMs ?? 1000;
    const abort = this.cancelling(msg);
    if (abort === undefined) return this.forward(msg, options, graceMs);
    // The upstream hears of the cancellation first, then the cancelled exchange's socket goes;
    // an upstream that accepts nothing holds it for cancelGraceMs at most.
    const timer = setTimeout(abort, graceMs);
    timer.unref();
    try {
      await this.forward(msg, options, graceMs);
    } finally {
      clearTimeout(timer);
      abort();
    }
  }

  /** In order after the last notification or response; `limitMs` bounds the wait for acceptance. */
  private async forward(msg: JsonRpcMessage, options: UpstreamSendOptions | undefined, limitMs: number | undefined): Promise<void> {
    let entry: InFlight | undefined;
    if (isRequest(msg)) {
      entry = { ex: undefined, cancelled: false, settle: () => {} };
      this.inflight.set(msg.id, entry);
    }
    if (this.barrier) await this.barrier;
    if (entry?.cancelled) return; // cancelled while it waited: never sent
    if (this.closed) {
      // Closed while it waited: never sent.
      if (isRequest(msg)) this.untrack(msg.id, entry);
      throw new Error('upstream connection is closed');
    }
    const accepted = this.post(msg, options, limitMs, entry);
    if (!isRequest(msg)) {
      this.barrier = accepted.then(
        () => undefined,
        () => undefined,
      );
    }
    return accepted;
  }

  /**
   * For a `notifications/cancelled` naming a request whose answer is still on its way: silence
   * that exchange now (and stop any resumption of its stream), and return what destroys its
   * socket, to be called once the notification is handed over. Undefined for anything else,
   * including an id with nothing in flight (then nothing changes).
   */
  private cancelling(msg: JsonRpcNotification): (() => void) | undefined {
    const id = msg.params?.requestId;
    if (typeof id !== 'string' && typeof id !== 'number') return undefined;
    // No error is made up for the request later, and a stream waiting to be resumed is not.
    this.open.delete(id);
    const entry = this.inflight.get(id);
    if (entry === undefined) return undefined;
    entry.cancelled = true;
    if (entry.ex) entry.ex.cancelled = true;
    return () => {
      this.untrack(id, entry);
      // Destroys the socket unless the exchange already ended (then the socket is clean and pooled).
      if (entry.ex !== undefined) this.drop(entry.ex);
      // A request cancelled before the upstream accepted it: its send() resolves, cancelled.
      entry.settle();
    };
  }

  private untrack(id: JsonRpcId, entry: InFlight | undefined): void {
    if (entry !== undefined && this.inflight.get(id) === entry) this.inflight.delete(id);
  }

  /**
   * Resolves once the upstream accepted the POST (status line received). With `limitMs`, a POST
   * not accepted by then is aborted (its socket destroyed) and rejects. `entry` tracks a request.
   */
  private post(msg: JsonRpcMessage, options: UpstreamSendOptions | undefined, limitMs: number | undefined, entry: InFlight | undefined): Promise<void> {
    const body = JSON.stringify(msg);
    const reqId = isRequest(msg) ? msg.id : undefined;
    return new Promise<void>((resolve, reject) => {
      let limit: NodeJS.Timeout | undefined;
      const ex = handler(
        (head, abort) => {
          clearTimeout(limit);
          resolve();
          return this.onPostResponse(head, reqId, abort);
        },
        (err) => {
          clearTimeout(limit);
          reject(err);
          if (reqId !== undefined) this.synthesizeError(reqId, `upstream request failed: ${err.message}`);
        },
        () => {
          this.live.delete(ex);
          if (reqId !== undefined) this.untrack(reqId, entry);
        },
      );
      this.live.set(ex, (err) => {
        clearTimeout(limit);
        reject(err);
      });
      if (reqId !== undefined) this.open.add(reqId);
      if (entry !== undefined) {
        entry.ex = ex;
        entry.settle = resolve;
      }
      if (limitMs !== undefined) {
        limit = setTimeout(() => {
          this.drop(ex);
          reject(new Http1Error(`upstream did not accept the message within ${limitMs} ms`));
        }, limitMs);
        limit.unref();
      }
      const failed = (err: unknown, detail: string): void => {
        clearTimeout(limit);
        this.live.delete(ex);
        if (reqId !== undefined) {
          this.untrack(reqId, entry);
          this.synthesizeError(reqId, detail);
        }
        reject(err);
      };
      const go = (headers: string): void => {
        // Cancelled (or given up) while its credentials were fetched: never sent.
        if (ex.cancelled) return;
        try {
          dispatch(this.opts.pool, 'POST', this.path, headers, body, ex);
        } catch (err) {
          failed(err, 'upstream request failed');
        }
      };
      let headers: string | Promise<string>;
      try {
        headers = this.headers(POST_HEADERS, options);
      } catch (err) {
        failed(err, 'upstream request headers are invalid');
        return;
      }
      if (typeof headers === 'string') go(headers);
      else headers.then(go, (err: unknown) => failed(err, 'upstream credentials unavailable'));
    });
  }

  private captureSession(head: Http1Head): boolean {
    const sid = head.headers['mcp-session-id'];
    if (sid !== undefined && this.sessionId === undefined) {
      if (!VISIBLE_ASCII.test(sid)) {
        this.fail('protocol', 'upstream sent an invalid Mcp-Session-Id');
        return false;
      }
      this.sessionHeaders = sessionHeaders(sid, this.protocolVersion);
      this.sessionId = sid;
    }
    return true;
  }

  private onPostResponse(head: Http1Head, reqId: JsonRpcId | undefined, abort: () => void): BodySink {
    if (!this.captureSession(head)) return DISCARD;
    const status = head.status;
    if (status === 202) {
      if (reqId !== undefined) this.synthesizeError(reqId, 'upstream accepted a request without answering it');
      return DISCARD;
    }
    if (status === 404 && this.sessionId !== undefined) {
      this.fail('expired', 'upstream session expired (404)');
      return DISCARD;
    }
    if (status >= 200 && status < 300 && isEventStream(head)) return this.readSse(reqId, 0, abort);
    // JSON (success, or an error body the upstream chose to send)
    return this.readBody(abort, (text) => {
      if (text === undefined) {
        if (reqId !== undefined) this.synthesizeError(reqId, 'upstream connection failed before the response ended');
        return;
      }
      if (status < 200 || status >= 300) {
        const parsed = safeParse(text);
        const m = parsed === undefined ? undefined : toMessage(parsed);
        if (reqId !== undefined) {
          if (m && typeof m !== 'string' && !('method' in m) && m.error && m.id === reqId) {
            this.deliver(m, reqId);
          } else {
            this.synthesizeError(reqId, `upstream answered HTTP ${status}`);
          }
        }
        return;
      }
      if (text.trim() === '') {
        if (reqId !== undefined) this.synthesizeError(reqId, 'upstream sent an empty response');
        return;
      }
      const parsed = safeParse(text);
      if (parsed === undefined) {
        this.fail('protocol', 'upstream sent a response that is not JSON');
        return;
      }
      for (const v of Array.isArray(parsed) ? parsed : [parsed]) {
        const m = toMessage(v);
        if (typeof m === 'string') {
          this.fail('protocol', `upstream sent an invalid JSON-RPC message: ${m}`);
          return;
        }
        this.deliver(m, reqId);
      }
    });
  }

  /** Collect a bounded body; `done(undefined)` when it broke off or was over the limit. */
  private readBody(abort: () => void, done: (text: string | undefined) => void): BodySink {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    return {
      data: (c) => {
        if (over) return;
        size += c.length;
        if (size > this.opts.maxMessageBytes) {
          over = true;
          abort();
          this.fail('protocol', `upstream response exceeds ${this.opts.maxMessageBytes} bytes`);
          done(undefined);
          return;
        }
        chunks.push(c);
      },
      end: () => {
        if (!over) done(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, size).toString('utf8'));
      },
      error: () => {
        if (!over) done(undefined);
      },
    };
  }

  /**
   * Read an SSE body, delivering each JSON-RPC message; a malformed event ends the upstream.
   * `ended` runs once when the stream ends or breaks, unless a malformed event ended it.
   */
  private consumeSse(relatedTo: JsonRpcId | undefined, abort: () => void, ended: (parser: SseParser, retryMs: number, how: { broke: boolean; events: number }) => void): BodySink {
    let retryMs = 1000;
    let broken = false;
    let events = 0;
    const parser = new SseParser(
      {
        onEvent: (e) => {
          if (broken || e.event !== 'message') return;
          const parsed = safeParse(e.data);
          const m = parsed === undefined ? undefined : toMessage(parsed);
          if (m === undefined || typeof m === 'string') {
            broken = true;
            abort();
            this.fail('protocol', 'upstream sent an SSE event that is not a JSON-RPC message');
            return;
          }
          events++;
          this.deliver(m, relatedTo);
        },
        onRetry: (ms) => {
          retryMs = Math.min(ms, 60_000);
        },
        onError: (detail) => {
          broken = true;
          abort();
          this.fail('protocol', `upstream SSE stream: ${detail}`);
        },
      },
      this.opts.maxMessageBytes,
    );
    const decoder = new StringDecoder('utf8');
    const finish = (broke: boolean): void => {
      if (broken) return;
      broken = true;
      ended(parser, retryMs, { broke, events });
    };
    return {
      data: (c) => {
        if (!broken) parser.push(decoder.write(c));
      },
      end: () => finish(false),
      error: () => finish(true),
    };
  }

  private readSse(reqId: JsonRpcId | undefined, attempt: number, abort: () => void): BodySink {
    return this.consumeSse(reqId, abort, (parser, retryMs) => {
      if (this.closed || reqId === undefined || !this.open.has(reqId)) return;
      // The stream ended before the response: resume it (SEP-1699) or give up.
      const last = parser.lastEventId;
      if (last === undefined || attempt >= (this.opts.maxResumeAttempts ?? 5)) {
        this.synthesizeError(reqId, 'upstream closed the response stream before answering');
        return;
      }
      const t = setTimeout(() => this.resume(reqId, last, attempt + 1), retryMs);
      t.unref();
    });
  }

  private resume(reqId: JsonRpcId, lastEventId: string, attempt: number): void {
    if (this.closed || !this.open.has(reqId)) return;
    const ex = handler(
      (head, abort) => {
        if (head.status !== 200 || !isEventStream(head)) {
          this.synthesizeError(reqId, `upstream refused to resume the stream (HTTP ${head.status})`);
          return DISCARD;
        }
        return this.readSse(reqId, attempt, abort);
      },
      () => this.synthesizeError(reqId, 'upstream stream resumption failed'),
      () => {
        this.live.delete(ex);
        this.untrack(reqId, entry);
      },
    );
    const entry: InFlight = { ex, cancelled: false, settle: () => {} };
    this.inflight.set(reqId, entry);
    this.live.set(ex, () => {});
    this.getEventStream(lastEventId, ex, () => {
      this.live.delete(ex);
      this.untrack(reqId, entry);
      this.synthesizeError(reqId, 'upstream credentials unavailable');
    });
  }

  /**
   * GET the endpoint as an event stream (after `lastEventId` when resuming) with the gateway's
   * headers; once this connection is closed the exchange hears an error instead.
   */
  private getEventStream(lastEventId: string | undefined, ex: Exchange, noCredentials: () => void): void {
    Promise.resolve()
      .then(() => this.headers(lastEventId ? `${SSE_HEADERS}${renderHeaders({ 'last-event-id': lastEventId })}` : SSE_HEADERS, undefined))
      .then((headers) => {
        if (this.closed) ex.onError(new Error('upstream connection is closed'));
        else if (!ex.cancelled) dispatch(this.opts.streamPool ?? this.opts.pool, 'GET', this.path, headers, undefined, ex);
      }, noCredentials);
  }

  private deliver(m: JsonRpcMessage, relatedTo: JsonRpcId | undefined): void {
    if (this.closed) return;
    if (!('method' in m) && m.id !== null) this.open.delete(m.id);
    this.opts.handlers.onMessage(m, relatedTo);
  }

  private synthesizeError(id: JsonRpcId, detail: string): void {
    if (!this.open.has(id)) return;
    this.deliver({ jsonrpc: '2.0', id, error: { code: -32603, message: `Upstream error: ${detail}` } }, id);
  }

  /**
   * Opens the standalone GET stream and returns once the upstream answered its head (a stream,
   * or 405 for none), or it failed, or the connection closed; at the latest after
   * `acceptTimeoutMs`, when the GET is aborted and the session goes on without the stream (an
   * upstream that never answers cannot hold the session's later requests, which wait on this).
   */
  async afterInitialized(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => this.openGetStream(resolve, undefined, 0));
  }

  private openGetStream(ready: () => void, lastEventId: string | undefined, failures: number): void {
    if (this.closed) {
      ready();
      return;
    }
    const retry = (delayMs: number, last: string | undefined, n: number): void => {
      if (this.closed) return;
      const t = setTimeout(() => this.openGetStream(() => {}, last, n), delayMs);
      t.unref();
    };
    // A failed attempt: tried again after 1, 2, 4, 8 and 16 s (or the server's longer `retry`),
    // then given up.
    const failed = (reason: GetStreamFailure['reason'], last: string | undefined, atLeastMs = 0): void => {
      const retryInMs = failures < 5 ? Math.max(atLeastMs, 1000 * 2 ** failures) : undefined;
      if (!this.closed) this.opts.onGetStreamFailed?.({ reason, failures: failures + 1, retryInMs });
      if (retryInMs !== undefined) retry(retryInMs, last, failures + 1);
    };
    // Each attempt's head is bounded by acceptTimeoutMs (see afterInitialized). Past it the GET
    // is aborted (its socket destroyed, or its place in the queue for one left; never pooled) and
    // counts as a failed connect: backed off and retried, given up after 5 in a row, each attempt
    // bounded the same way.
    const limit = setTimeout(() => {
      this.drop(ex);
      ready();
      failed('head_timeout', lastEventId);
    }, this.acceptTimeoutMs);
    limit.unref();
    // Runs once the attempt's outcome is known (a head, a failure, close()) and stops that bound.
    const settle = (): void => {
      clearTimeout(limit);
      ready();
    };
    const ex = handler(
      (head, abort) => {
        settle();
        // 405: the upstream offers no standalone stream. Anything else: no stream either.
        if (head.status !== 200 || !isEventStream(head)) return DISCARD;
        // Ended: reconnect after the server's retry delay (at least MIN_RECONNECT_MS), from the
        // last event. Broken off before any event: back off as for a failed connect, and give up
        // after 5 in a row, so a stream that breaks at once cannot loop.
        return this.consumeSse(undefined, abort, (parser, retryMs, how) => {
          const last = parser.lastEventId ?? lastEventId;
          if (!how.broke || how.events > 0) retry(Math.max(retryMs, MIN_RECONNECT_MS), last, 0);
          else failed('broken', last, retryMs);
        });
      },
      () => {
        settle();
        failed('request_failed', lastEventId);
      },
      () => this.live.delete(ex),
    );
    // Closed before its head came: afterInitialized() returns all the same.
    this.live.set(ex, settle);
    this.getEventStream(lastEventId, ex, () => {
      settle();
      this.live.delete(ex);
    });
  }

  /**
   * The connection is over: every exchange under way is silenced and its socket destroyed (a
   * request still queued for a socket leaves the queue), and what waits on it is settled.
   */
  private abortAll(): void {
    const err = new Error('upstream connection is closed');
    const live = [...this.live];
    this.live.clear();
    this.inflight.clear();
    this.open.clear();
    for (const [ex, stop] of live) {
      this.drop(ex);
      stop(err);
    }
  }

  /**
   * Give an exchange up: it hears nothing more, leaves the exchanges under way, and its socket is
   * destroyed (or its place in the queue for one left) unless it already ended cleanly.
   */
  private drop(ex: Exchange): void {
    ex.cancelled = true;
    this.live.delete(ex);
    ex.request?.abort();
  }

  private fail(kind: 'protocol' | 'expired' | 'error', detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.abortAll();
    this.opts.handlers.onClose({ kind, detail });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abortAll();
    if (this.sessionId === undefined) return;
    // Tell the upstream the session is over (best effort, bounded).
    try {
      const headers = await this.headers('', undefined);
      await new Promise<void>((resolve) => {
        const req = dispatch(
          this.opts.pool,
          'DELETE',
          this.path,
          headers,
          undefined,
          handler(
            () => {
              clearTimeout(timer);
              resolve();
              return DISCARD;
            },
            () => {
              clearTimeout(timer);
              resolve();
            },
          ),
        );
        const timer = setTimeout(() => {
          req.abort();
          resolve();
        }, 2000);
        timer.unref();
      });
    } catch {
      /* best effort */
    }
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
