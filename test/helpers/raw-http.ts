/**
 * Pieces for tests that play an HTTP/1.1 server (test/upstream, test/session): listening on
 * loopback, polling helpers and a parser for the simple, never pipelined requests of the
 * gateway's upstream client.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Listen on a free loopback port; `close()` drops every connection (kept-alive ones included)
 * and waits for the server to close.
 */
export async function listenLoopback(server: Server): Promise<{ port: number; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A loopback port the OS reports free (for a process that must be told its port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  const { port, close } = await listenLoopback(server);
  await close();
  return port;
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, what: string, timeoutMs = 1000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

export interface ParsedRequest {
  method: string;
  path: string;
  /** Header lines as received, in order, names as sent. */
  headers: [string, string][];
  /** The body as received (latin1: one char, one byte). */
  body: string;
  /** The exact bytes of this request (latin1). */
  raw: string;
}

/**
 * Take every whole request (head and Content-Length body) off the front of `buf.data`, which
 * holds the bytes received so far as latin1; what is left is an incomplete request.
 */
export function takeRequests(buf: { data: string }, onRequest: (r: ParsedRequest) => void): void {
  for (;;) {
    const end = buf.data.indexOf('\r\n\r\n');
    if (end < 0) return;
    const lines = buf.data.slice(0, end).split('\r\n');
    const [method = '', path = ''] = (lines[0] ?? '').split(' ');
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    });
    const cl = headers.find(([n]) => n.toLowerCase() === 'content-length');
    const len = cl ? Number(cl[1]) : 0;
    if (buf.data.length < end + 4 + len) return;
    const raw = buf.data.slice(0, end + 4 + len);
    const body = buf.data.slice(end + 4, end + 4 + len);
    buf.data = buf.data.slice(end + 4 + len);
    onRequest({ method, path, headers, body, raw });
  }
}
