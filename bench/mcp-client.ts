/**
 * A lean Streamable HTTP client for the load generator: initialize once, then POST
 * `tools/call` with the session id, parsing JSON or SSE responses. Deliberately small so the
 * load generator's own cost stays low and predictable; it is not a general MCP client.
 */
import { request, type Agent, type IncomingMessage } from 'node:http';

export const PROTOCOL_VERSION = '2025-11-25';

interface RpcMessage {
  jsonrpc?: string;
  id?: number | string | null;
  result?: { isError?: boolean; content?: Array<{ type: string; text?: string }>; protocolVersion?: string };
  error?: { code: number; message: string };
  method?: string;
}

export interface PostResult {
  status: number;
  sessionId: string | undefined;
  /** The JSON-RPC response whose id matched, if any. */
  response: RpcMessage | undefined;
}

/** Extracts JSON-RPC messages from an SSE byte stream (events separated by a blank line). */
class SseParser {
  private buf = '';
  push(chunk: string, onMessage: (m: RpcMessage) => void): void {
    this.buf += chunk;
    for (;;) {
      const m = /\r?\n\r?\n/.exec(this.buf);
      if (!m) return;
      const event = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      let data = '';
      for (const line of event.split(/\r?\n/)) {
        if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(line.charAt(5) === ' ' ? 6 : 5);
      }
      if (data) {
        try {
          onMessage(JSON.parse(data) as RpcMessage);
        } catch {
          // a malformed event: the caller sees no matching response and counts an error
        }
      }
    }
  }
}

export class BenchClient {
  sessionId: string | undefined;
  protocolVersion = PROTOCOL_VERSION;
  private nextId = 1;

  constructor(
    private readonly url: URL,
    private readonly agent: Agent,
    /** Extra headers on every request (e.g. Authorization for the auth rows). Never logged. */
    private readonly extraHeaders: Record<string, string> = {},
  ) {}

  /** POST one JSON-RPC message; resolves when the response with `id` arrives (or the body ends). */
  post(body: string, id: number | undefined): Promise<PostResult> {
    const headers: Record<string, string> = {
      ...this.extraHeaders,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': this.protocolVersion,
      'content-length': String(Buffer.byteLength(body)),
    };
    if (this.sessionId) headers['mcp-session-id'] = this.sessionId;
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.url.hostname, port: this.url.port, path: this.url.pathname + this.url.search, method: 'POST', headers, agent: this.agent },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          const sid = res.headers['mcp-session-id'];
          const sessionId = typeof sid === 'string' ? sid : undefined;
          const type = res.headers['content-type'] ?? '';
          let settled = false;
          const done = (response: RpcMessage | undefined): void => {
            if (settled) return;
            settled = true;
            resolve({ status, sessionId, response });
          };
          res.setEncoding('utf8');
          if (type.startsWith('text/event-stream')) {
            const parser = new SseParser();
            res.on('data', (chunk: string) =>
              parser.push(chunk, (m) => {
                if (id !== undefined && m.id === id && (m.result !== undefined || m.error !== undefined)) done(m);
              }),
            );
            res.on('end', () => done(undefined));
          } else {
            let text = '';
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => {
              let msg: RpcMessage | undefined;
              if (text && type.startsWith('application/json')) {
                try {
                  const parsed = JSON.parse(text) as RpcMessage | RpcMessage[];
                  msg = Array.isArray(parsed) ? parsed.find((m) => m.id === id) : parsed;
                } catch {
                  msg = undefined;
                }
              }
              done(msg);
            });
          }
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async initialize(): Promise<void> {
    const id = this.nextId++;
    const r = await this.post(
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'initialize',
        params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-bastion-bench', version: '1.0.0' } },
      }),
      id,
    );
    if (r.status !== 200 || !r.response?.result) {
      throw new Error(`initialize failed: HTTP ${r.status}${r.response?.error ? `, ${r.response.error.message}` : ''} at ${this.url.href}`);
    }
    this.sessionId = r.sessionId;
    if (!this.sessionId) throw new Error(`initialize at ${this.url.href} returned no Mcp-Session-Id (the bench measures stateful sessions)`);
    this.protocolVersion = r.response.result.protocolVersion ?? PROTOCOL_VERSION;
    const n = await this.post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), undefined);
    if (n.status !== 202 && n.status !== 200) throw new Error(`notifications/initialized got HTTP ${n.status} at ${this.url.href}`);
  }

  /** One echo call; returns null on success or a short description of what went wrong. */
  async callEcho(text: string): Promise<string | null> {
    const id = this.nextId++;
    const r = await this.post(
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"text":${JSON.stringify(text)}}}}`,
      id,
    );
    if (r.status !== 200) return `HTTP ${r.status}`;
    const m = r.response;
    if (!m) return 'no JSON-RPC response with the request id';
    if (m.error) return `JSON-RPC error ${m.error.code}: ${m.error.message}`;
    if (m.result?.isError) return 'tool result isError';
    if (m.result?.content?.[0]?.text !== text) return 'echo mismatch';
    return null;
  }

  /** DELETE the session (best effort: servers may answer 405 when they do not support it). */
  close(): Promise<void> {
    if (!this.sessionId) return Promise.resolve();
    return new Promise((resolve) => {
      const req = request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path: this.url.pathname + this.url.search,
          method: 'DELETE',
          headers: { ...this.extraHeaders, 'mcp-session-id': this.sessionId as string, 'mcp-protocol-version': this.protocolVersion },
          agent: this.agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', () => resolve());
      req.end();
    });
  }
}
