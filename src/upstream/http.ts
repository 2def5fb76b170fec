/**
 * Streamable HTTP upstream (MCP 2025-11-25 transport), native on node:http/https.
 *
 * - Every request carries only the gateway's own headers: the client's Authorization, DPoP,
 *   Cookie and session headers are never copied (there is no code path that could copy them).
 * - Sends are ordered where order matters: a notification or a response (e.g. the client's
 *   `notifications/initialized`, or its answer to a sampling request) must be accepted (202)
 *   before later messages go out; requests after that run concurrently.
 * - Responses may come as JSON or as an SSE stream; an SSE stream that ends before the response
 *   is resumed with GET + Last-Event-ID after the server's `retry` delay (SEP-1699 polling).
 * - The standalone GET stream is opened after initialization and awaited before later sends,
 *   so server → client requests on it are not lost.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { JsonRpcId, JsonRpcMessage } from '../pipeline/messages.js';
import { isRequest, toMessage } from '../pipeline/messages.js';
import { SseParser } from './sse.js';
import type { UpstreamConnection, UpstreamHandlers, UpstreamSendOptions } from './connection.js';

export interface HttpUpstreamOptions {
  url: string;
  handlers: UpstreamHandlers;
  agent: http.Agent;
  /** Static, non-secret headers from config. */
  headers: Readonly<Record<string, string>>;
  /** Upstream credentials (the gateway's own, never the client's). */
  credentials?: ((opts: UpstreamSendOptions) => Promise<Record<string, string>>) | undefined;
  maxMessageBytes: number;
  connectTimeoutMs: number;
  /** Most attempts to resume one response stream. */
  maxResumeAttempts?: number;
}

const VISIBLE_ASCII = /^[\x21-\x7e]{1,256}$/;

export class HttpUpstream implements UpstreamConnection {
  private readonly url: URL;
  private readonly lib: typeof http | typeof https;
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private barrier: Promise<void> | undefined;
  private closed = false;
  private getStream: http.ClientRequest | undefined;
  /** Requests sent and not answered yet (upstream ids), for resumption and for close. */
  private readonly open = new Set<JsonRpcId>();

  constructor(private readonly opts: HttpUpstreamOptions) {
    this.url = new URL(opts.url);
    this.lib = this.url.protocol === 'https:' ? https : http;
  }

  get alive(): boolean {
    return !this.closed;
  }

  async start(): Promise<void> {
    /* connections are made per request through the keep-alive agent */
  }

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  /** The gateway's own headers for one request: synchronous unless credentials must be fetched. */
  private headers(extra: Record<string, string>, options: UpstreamSendOptions | undefined): Record<string, string> | Promise<Record<string, string>> {
    const h: Record<string, string> = { ...this.opts.headers, ...extra };
    if (this.sessionId) h['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion) h['mcp-protocol-version'] = this.protocolVersion;
    if (this.opts.credentials) return this.opts.credentials(options ?? {}).then((c) => Object.assign(h, c));
    return h;
  }

  /** node:http request options without re-parsing the URL on every request. */
  private requestOptions(method: string, headers: Record<string, string>): http.RequestOptions {
    const u = this.url;
    return {
      protocol: u.protocol,
      hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === '' ? undefined : Number(u.port),
      path: `${u.pathname}${u.search}`,
      ...(u.username || u.password ? { auth: `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` } : {}),
      method,
      agent: this.opts.agent,
      headers,
    };
  }

  async send(msg: JsonRpcMessage, options?: UpstreamSendOptions): Promise<void> {
    if (this.closed) throw new Error('upstream connection is closed');
    if (this.barrier) await this.barrier;
    const accepted = this.post(msg, options);
    if (!isRequest(msg)) {
      this.barrier = accepted.then(
        () => undefined,
        () => undefined,
      );
    }
    return accepted;
  }

  /** Resolves once the upstream accepted the POST (status line received). */
  private post(msg: JsonRpcMessage, options: UpstreamSendOptions | undefined): Promise<void> {
    const body = JSON.stringify(msg);
    const reqId = isRequest(msg) ? msg.id : undefined;
    if (reqId !== undefined) this.open.add(reqId);
    const send = (headers: Record<string, string>): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const req = this.lib.request(this.requestOptions('POST', headers));
        this.armConnectTimeout(req);
        req.once('response', (res) => {
          resolve();
          this.onPostResponse(res, reqId);
        });
        req.once('error', (err) => {
          reject(err);
          if (reqId !== undefined) this.synthesizeError(reqId, `upstream request failed: ${err.message}`);
        });
        req.end(body);
      });
    const headers = this.headers(
      {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'content-length': String(Buffer.byteLength(body)),
      },
      options,
    );
    if (!(headers instanceof Promise)) return send(headers);
    return headers.then(send, (err: unknown) => {
      if (reqId !== undefined) this.synthesizeError(reqId, 'upstream credentials unavailable');
      throw err;
    });
  }

  private armConnectTimeout(req: http.ClientRequest): void {
    req.once('socket', (sock) => {
      if (!sock.connecting) return;
      const t = setTimeout(() => req.destroy(new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      sock.once('connect', () => clearTimeout(t));
      sock.once('close', () => clearTimeout(t));
    });
  }

  private captureSession(res: IncomingMessage): boolean {
    const sid = res.headers['mcp-session-id'];
    if (typeof sid === 'string' && this.sessionId === undefined) {
      if (!VISIBLE_ASCII.test(sid)) {
        this.fail('protocol', 'upstream sent an invalid Mcp-Session-Id');
        return false;
      }
      this.sessionId = sid;
    }
    return true;
  }

  private onPostResponse(res: IncomingMessage, reqId: JsonRpcId | undefined): void {
    if (!this.captureSession(res)) {
      res.resume();
      return;
    }
    const status = res.statusCode ?? 0;
    const ctype = String(res.headers['content-type'] ?? '');
    if (status === 202) {
      res.resume();
      if (reqId !== undefined) this.synthesizeError(reqId, 'upstream accepted a request without answering it');
      return;
    }
    if (status === 404 && this.sessionId !== undefined) {
      res.resume();
      this.fail('expired', 'upstream session expired (404)');
      return;
    }
    if (status >= 200 && status < 300 && ctype.startsWith('text/event-stream')) {
      this.readSse(res, reqId, 0);
      return;
    }
    // JSON (success, or an error body the upstream chose to send)
    this.readBody(res, (text) => {
      if (text === undefined) return;
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

  private readBody(res: IncomingMessage, done: (text: string | undefined) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    res.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > this.opts.maxMessageBytes) {
        over = true;
        res.destroy();
        this.fail('protocol', `upstream response exceeds ${this.opts.maxMessageBytes} bytes`);
        done(undefined);
        return;
      }
      chunks.push(c);
    });
    res.once('end', () => {
      if (!over) done(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, size).toString('utf8'));
    });
    res.once('error', () => {
      if (!over) done(undefined);
    });
  }

  /**
   * Read an SSE response, delivering each JSON-RPC message; a malformed event ends the upstream.
   * Returns the stream state (last event id, retry delay, whether it broke).
   */
  private consumeSse(res: IncomingMessage, relatedTo: JsonRpcId | undefined): { parser: SseParser; retryMs: () => number; broken: () => boolean } {
    let retryMs = 1000;
    let broken = false;
    const parser = new SseParser(
      {
        onEvent: (e) => {
          if (e.event !== 'message') return;
          const parsed = safeParse(e.data);
          const m = parsed === undefined ? undefined : toMessage(parsed);
          if (m === undefined || typeof m === 'string') {
            broken = true;
            res.destroy();
            this.fail('protocol', 'upstream sent an SSE event that is not a JSON-RPC message');
            return;
          }
          this.deliver(m, relatedTo);
        },
        onRetry: (ms) => {
          retryMs = Math.min(ms, 60_000);
        },
        onError: (detail) => {
          broken = true;
          res.destroy();
          this.fail('protocol', `upstream SSE stream: ${detail}`);
        },
      },
      this.opts.maxMessageBytes,
    );
    res.setEncoding('utf8');
    res.on('data', (s: string) => parser.push(s));
    return { parser, retryMs: () => retryMs, broken: () => broken };
  }

  private readSse(res: IncomingMessage, reqId: JsonRpcId | undefined, attempt: number): void {
    const { parser, retryMs, broken } = this.consumeSse(res, reqId);
    const ended = (): void => {
      if (broken() || this.closed || reqId === undefined || !this.open.has(reqId)) return;
      // The stream ended before the response: resume it (SEP-1699) or give up.
      const last = parser.lastEventId;
      if (last === undefined || attempt >= (this.opts.maxResumeAttempts ?? 5)) {
        this.synthesizeError(reqId, 'upstream closed the response stream before answering');
        return;
      }
      const t = setTimeout(() => this.resume(reqId, last, attempt + 1), retryMs());
      t.unref();
    };
    res.once('end', ended);
    res.once('error', ended);
  }

  private resume(reqId: JsonRpcId, lastEventId: string, attempt: number): void {
    if (this.closed || !this.open.has(reqId)) return;
    Promise.resolve(this.headers({ accept: 'text/event-stream', 'last-event-id': lastEventId }, undefined)).then(
      (headers) => {
        const req = this.lib.request(this.requestOptions('GET', headers));
        this.armConnectTimeout(req);
        req.once('response', (res) => {
          if ((res.statusCode ?? 0) !== 200 || !String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
            res.resume();
            this.synthesizeError(reqId, `upstream refused to resume the stream (HTTP ${res.statusCode})`);
            return;
          }
          this.readSse(res, reqId, attempt);
        });
        req.once('error', () => this.synthesizeError(reqId, 'upstream stream resumption failed'));
        req.end();
      },
      () => this.synthesizeError(reqId, 'upstream credentials unavailable'),
    );
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

  async afterInitialized(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => this.openGetStream(resolve, undefined, 0));
  }

  private openGetStream(ready: () => void, lastEventId: string | undefined, failures: number): void {
    if (this.closed) {
      ready();
      return;
    }
    const extra: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId) extra['last-event-id'] = lastEventId;
    Promise.resolve(this.headers(extra, undefined)).then(
      (headers) => {
        const req = this.lib.request(this.requestOptions('GET', headers));
        this.getStream = req;
        this.armConnectTimeout(req);
        req.once('response', (res) => {
          const ok = res.statusCode === 200 && String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
          ready();
          if (!ok) {
            // 405: the upstream offers no standalone stream. Anything else: no stream either.
            res.resume();
            return;
          }
          const { parser, retryMs } = this.consumeSse(res, undefined);
          res.once('end', () => {
            if (this.closed) return;
            const t = setTimeout(() => this.openGetStream(() => {}, parser.lastEventId, 0), retryMs());
            t.unref();
          });
        });
        req.once('error', () => {
          ready();
          if (this.closed || failures >= 5) return;
          const t = setTimeout(() => this.openGetStream(() => {}, lastEventId, failures + 1), 1000 * 2 ** failures);
          t.unref();
        });
        req.end();
      },
      () => ready(),
    );
  }

  private fail(kind: 'protocol' | 'expired' | 'error', detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.getStream?.destroy();
    this.opts.handlers.onClose({ kind, detail });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.getStream?.destroy();
    if (this.sessionId === undefined) return;
    // Tell the upstream the session is over (best effort, bounded).
    try {
      const headers = await this.headers({}, undefined);
      await new Promise<void>((resolve) => {
        const req = this.lib.request(this.url, { method: 'DELETE', agent: this.opts.agent, headers, timeout: 2000 });
        req.once('response', (res) => {
          res.resume();
          resolve();
        });
        req.once('timeout', () => req.destroy());
        req.once('error', () => resolve());
        req.end();
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
