/**
 * Raw HTTP(S) probes for the posture scanner (node:http/https, so that Host and Origin can be
 * set, certificates inspected, and an extra CA trusted), and a fetch for the MCP SDK client
 * built on the same requests.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';

export interface ProbeOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Extra trusted CA (PEM). */
  ca?: string | Buffer;
  /** Accept any certificate (probes that are not about the certificate). Default true. */
  insecure?: boolean;
  timeoutMs?: number;
  /** Most body bytes kept (default 1 MiB). */
  maxBytes?: number;
}

export interface ProbeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export type ProbeResult = ProbeResponse | { error: string; code?: string };

export function isResponse(r: ProbeResult): r is ProbeResponse {
  return (r as ProbeResponse).status !== undefined;
}

function requestFor(url: URL): typeof httpRequest {
  return url.protocol === 'https:' ? (httpsRequest as unknown as typeof httpRequest) : httpRequest;
}

function tlsOptions(url: URL, opts: { ca?: string | Buffer; insecure?: boolean }): Record<string, unknown> {
  if (url.protocol !== 'https:') return {};
  const o: Record<string, unknown> = { rejectUnauthorized: opts.insecure === false, agent: false };
  if (opts.ca) o.ca = opts.ca;
  return o;
}

/**
 * One request; an SSE answer is read until the first complete event (or the body's end). A body
 * that quotes the credential sent (the Authorization value after its scheme) has it replaced by
 * `<token>`, before any evidence cuts the body short and leaves a piece of it.
 */
export function probe(url: URL, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const max = opts.maxBytes ?? 1024 * 1024;
  const credential = opts.headers?.authorization?.replace(/^\S+\s+/, '');
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = requestFor(url)(url, {
      method: opts.method ?? 'GET',
      headers: { ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...(opts.headers ?? {}) },
      ...tlsOptions(url, { ca: opts.ca, insecure: opts.insecure ?? true }),
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      finish({ error: `no answer within ${opts.timeoutMs ?? 10_000} ms`, code: 'ETIMEDOUT' });
    }, opts.timeoutMs ?? 10_000);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.message, code: err.code }));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const sse = String(res.headers['content-type'] ?? '').includes('text/event-stream');
      const end = (): void => {
        res.destroy();
        const body = Buffer.concat(chunks).toString('utf8');
        finish({ status: res.statusCode ?? 0, headers: res.headers, body: credential ? body.split(credential).join('<token>') : body });
      };
      res.on('data', (c: Buffer) => {
        if (size < max) chunks.push(c);
        size += c.length;
        if (size >= max) end();
        else if (sse && firstSseJson(Buffer.concat(chunks).toString('utf8')) !== undefined) end();
      });
      res.on('end', end);
      res.on('error', end);
    });
    req.end(opts.body);
  });
}

/** The JSON-RPC message of a probe answer: a JSON body, or the first SSE `data:` event. */
export function jsonOf(r: ProbeResult): Record<string, unknown> | undefined {
  if (!isResponse(r)) return undefined;
  const text = r.body.trim();
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return firstSseJson(r.body);
  }
}

/** The first complete SSE event whose data is a JSON object (priming events have empty data). */
export function firstSseJson(text: string): Record<string, unknown> | undefined {
  const events = text.split(/\r?\n\r?\n/);
  events.pop(); // the last piece is incomplete (or empty)
  for (const ev of events) {
    const data = ev
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (!data.trim()) continue;
    try {
      const v = JSON.parse(data) as unknown;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // not JSON: skip
    }
  }
  return undefined;
}

export function header(r: ProbeResult, name: string): string | undefined {
  if (!isResponse(r)) return undefined;
  const v = r.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

export const PROTOCOL_VERSION = '2025-11-25';

export function initializeBody(id = 0): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'bastion-scan', version: '0.1.0' } } });
}

export const MCP_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** Describe a probe answer for evidence (status and a short body). Never includes request headers. */
export function describe(r: ProbeResult): string {
  if (!isResponse(r)) return `no HTTP answer (${r.code ?? r.error})`;
  const j = jsonOf(r);
  if (j && j.result !== undefined) return `HTTP ${r.status} with a JSON-RPC result: ${JSON.stringify(j.result).slice(0, 120)}`;
  if (j && j.error !== undefined) return `HTTP ${r.status} with a JSON-RPC error: ${JSON.stringify(j.error).slice(0, 160)}`;
  const body = r.body.replace(/\s+/g, ' ').slice(0, 160);
  return `HTTP ${r.status}${body ? `: ${body}` : ''}`;
}

type FetchInit = { method?: string; headers?: unknown; body?: unknown; signal?: AbortSignal | null };

/**
 * A fetch for the SDK's StreamableHTTPClientTransport over node:http(s), honouring `ca` and
 * `insecure` (Node 20's global fetch cannot take an extra CA without undici).
 */
export function makeFetch(opts: { ca?: string | Buffer; insecure?: boolean }): (url: string | URL, init?: FetchInit) => Promise<Response> {
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(String(input));
      const headers: Record<string, string> = {};
      new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((v, k) => {
        headers[k] = v;
      });
      const body = typeof init.body === 'string' ? init.body : init.body === undefined || init.body === null ? undefined : String(init.body);
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const req = requestFor(url)(url, { method: init.method ?? 'GET', headers, ...tlsOptions(url, opts) });
      const signal = init.signal ?? undefined;
      const onAbort = (): void => {
        req.destroy(new Error('aborted'));
      };
      if (signal) {
        if (signal.aborted) return reject(new DOMException('aborted', 'AbortError'));
        signal.addEventListener('abort', onAbort, { once: true });
      }
      req.on('error', (err) => reject(signal?.aborted ? new DOMException('aborted', 'AbortError') : err));
      req.on('response', (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          if (Array.isArray(v)) for (const x of v) h.append(k, x);
          else h.set(k, v);
        }
        const status = res.statusCode ?? 0;
        const nobody = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
        if (nobody) res.resume();
        resolve(new Response(nobody ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>), { status, headers: h }));
        res.on('close', () => signal?.removeEventListener('abort', onAbort));
      });
      req.end(body);
    });
}
