// @ts-check
/**
 * Bench target "bare-stdio": the cheapest possible Streamable HTTP to stdio hop, the yardstick
 * for the stdio rows as bare-proxy.mjs is for the HTTP row. It is the shape of the prototype
 * issue 2 quotes (a node:http handler doing Streamable HTTP itself, one stdio upstream, ids
 * remapped) with nothing else: no token check, no policy, no validation, no audit, no Origin or
 * version checks, no sanitizing. What it costs per call is what any gateway in front of the same
 * stdio server pays at least, so `bare-stdio / sdk-direct` is the ceiling of the stdio ratio on
 * the machine the bench runs on. It is not a product path.
 *
 * Protocol handled, just enough for the bench's load generator:
 * - POST without Mcp-Session-Id carrying initialize: a new session (random id in the
 *   Mcp-Session-Id response header). The first initialize goes to the child; later ones are
 *   answered from its cached result, since the child serves every session.
 * - POST with a known session id: a request is forwarded with a fresh numeric id and its
 *   response returned as application/json with the client's id; a notification gets 202 (only
 *   the first notifications/initialized reaches the child).
 * - DELETE with a known session id: 200. Unknown session: 404.
 *
 * Usage: node bench/servers/bare-stdio-proxy.mjs -- COMMAND [ARGS...]
 * Prints one JSON line `{"ready":true,"port":N}` on stdout when listening.
 */
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { setImmediate } from 'node:timers';

const sep = process.argv.indexOf('--');
const command = sep >= 0 ? process.argv.slice(sep + 1) : [];
if (command.length === 0) {
  process.stderr.write('bare-stdio-proxy: give the stdio server after --, e.g. -- node server.mjs\n');
  process.exit(2);
}

const child = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
child.on('exit', (code) => {
  process.stderr.write(`bare-stdio-proxy: the stdio server exited (${code})\n`);
  process.exit(1);
});
const stdin = child.stdin;

/** Messages written in one turn of the event loop leave in one write, as the gateway does. */
let corked = false;
/** @param {unknown} msg */
function send(msg) {
  if (!corked) {
    corked = true;
    stdin.cork();
    setImmediate(() => {
      corked = false;
      stdin.uncork();
    });
  }
  stdin.write(JSON.stringify(msg) + '\n');
}

/** @type {Map<number, (msg: any) => void>} */
const pending = new Map();
let nextId = 1;
/** @param {string} method @param {unknown} params @returns {Promise<any>} */
function call(method, params) {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    send({ jsonrpc: '2.0', id, method, params });
  });
}

let buffered = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (/** @type {string} */ chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim() === '') continue;
    const msg = JSON.parse(line);
    const done = typeof msg.id === 'number' ? pending.get(msg.id) : undefined;
    if (done) {
      pending.delete(msg.id);
      done(msg);
    }
  }
});

/** @type {Set<string>} */
const sessions = new Set();
/** @type {Promise<any> | undefined} */
let initialized;
let notifiedInitialized = false;

/** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} body @param {Record<string, string>} [headers] */
function reply(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {string} message */
const fail = (res, status, message) => reply(res, status, { jsonrpc: '2.0', error: { code: -32000, message }, id: null });

const server = createServer((req, res) => {
  const sid = req.headers['mcp-session-id'];
  const session = typeof sid === 'string' ? sid : undefined;
  if (session !== undefined && !sessions.has(session)) return fail(res, 404, 'unknown session');
  if (req.method === 'DELETE') {
    if (session === undefined) return fail(res, 400, 'missing Mcp-Session-Id');
    sessions.delete(session);
    res.writeHead(200).end();
    return;
  }
  if (req.method !== 'POST') return fail(res, 405, 'method not allowed');
  /** @type {Buffer[]} */
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    /** @type {any} */
    let msg;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return reply(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
    }
    if (session === undefined) {
      if (msg.method !== 'initialize') return fail(res, 400, 'missing Mcp-Session-Id');
      initialized ??= call('initialize', msg.params);
      initialized.then((answer) => {
        const id = randomBytes(16).toString('hex');
        sessions.add(id);
        reply(res, 200, { ...answer, id: msg.id }, { 'mcp-session-id': id });
      });
      return;
    }
    if (msg.id === undefined) {
      if (msg.method !== 'notifications/initialized' || !notifiedInitialized) {
        notifiedInitialized ||= msg.method === 'notifications/initialized';
        send(msg);
      }
      res.writeHead(202).end();
      return;
    }
    call(msg.method, msg.params).then((answer) => {
      answer.id = msg.id;
      reply(res, 200, answer);
    });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ ready: true, port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
for (const signal of /** @type {const} */ (['SIGTERM', 'SIGINT'])) {
  process.on(signal, () => {
    child.kill('SIGTERM');
    process.exit(0);
  });
}
