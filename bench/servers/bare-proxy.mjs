// @ts-check
/**
 * Bench target "bare-proxy": the cheapest possible HTTP hop. Pipes each request to the
 * upstream over a keep-alive agent and pipes the response (JSON or SSE) back, with no
 * parsing, no checks and no MCP knowledge. It is the yardstick the gateway's HTTP row is
 * compared with, not a product path.
 *
 * Usage: node bench/servers/bare-proxy.mjs --upstream http://127.0.0.1:N [--port N]
 * Prints one JSON line `{"ready":true,"port":N}` on stdout when listening.
 */
import { createServer, request, Agent } from 'node:http';
import process from 'node:process';
import { URL } from 'node:url';

const args = process.argv.slice(2);
/** @param {string} name @returns {string | undefined} */
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const upstreamArg = opt('--upstream');
if (!upstreamArg) {
  process.stderr.write('bare-proxy: --upstream URL is required (e.g. --upstream http://127.0.0.1:3000)\n');
  process.exit(2);
}
const upstream = new URL(upstreamArg);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

const server = createServer((req, res) => {
  /** @type {Record<string, string | string[]>} */
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  }
  headers.host = upstream.host;
  const up = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent },
    (upRes) => {
      /** @type {Record<string, string | string[]>} */
      const out = {};
      for (const [k, v] of Object.entries(upRes.headers)) {
        if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      }
      res.writeHead(upRes.statusCode ?? 502, out);
      upRes.pipe(res);
    },
  );
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(opt('--port') ?? 0), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ ready: true, port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
