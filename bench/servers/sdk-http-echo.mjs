// @ts-check
/**
 * Bench target "sdk-direct": the echo tool on the SDK's own StreamableHTTPServerTransport,
 * stateful (one transport + McpServer per session, keyed by Mcp-Session-Id), on node:http.
 *
 * Response mode: the SDK default, i.e. each POST answered with an SSE stream
 * (`text/event-stream`) that closes after the response. `--json` sets
 * `enableJsonResponse: true` (plain `application/json` bodies), the mode whose
 * `_streamMapping` entries are never cleaned up in SDK 1.32.
 *
 * Usage: node bench/servers/sdk-http-echo.mjs [--port N] [--json]
 * Prints one JSON line `{"ready":true,"port":N}` on stdout when listening.
 * `GET /_bench/memory` answers process.memoryUsage() after a GC (when --expose-gc is given),
 * so the memory mode can report heap as well as RSS. It is bench-only, never a product path.
 */
import { createServer } from 'node:http';
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { createEchoServer } from './echo-tool.mjs';

const args = process.argv.slice(2);
const jsonMode = args.includes('--json');
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 0;

/** @type {Map<string, StreamableHTTPServerTransport>} */
const transports = new Map();

/** @param {import('node:http').IncomingMessage} req @returns {Promise<unknown>} */
function readJson(req) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {string} message */
function fail(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/** @param {import('node:http').IncomingMessage} req @param {import('node:http').ServerResponse} res */
async function handle(req, res) {
  if (req.url === '/_bench/memory') {
    globalThis.gc?.();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  if (req.url !== '/mcp') return fail(res, 404, 'not found');
  const sid = req.headers['mcp-session-id'];
  const sessionId = typeof sid === 'string' ? sid : undefined;
  if (sessionId) {
    const transport = transports.get(sessionId);
    if (!transport) return fail(res, 404, 'unknown session');
    return transport.handleRequest(req, res);
  }
  if (req.method !== 'POST') return fail(res, 400, 'missing Mcp-Session-Id');
  const body = await readJson(req);
  if (!isInitializeRequest(body)) return fail(res, 400, 'first request must be initialize');
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    enableJsonResponse: jsonMode,
    onsessioninitialized: (id) => {
      transports.set(id, transport);
    },
  });
  transport.onclose = () => {
    if (transport.sessionId) transports.delete(transport.sessionId);
  };
  await createEchoServer().connect(transport);
  await transport.handleRequest(req, res, body);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    if (!res.headersSent) fail(res, 500, String(err));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ ready: true, port: typeof addr === 'object' && addr ? addr.port : port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
