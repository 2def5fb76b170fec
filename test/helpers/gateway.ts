/** Test helpers: start a gateway in-process on a free loopback port, and MCP clients against it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseConfig } from '../../src/config/load.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/server.js';
import { startGatewayFromConfig } from '../../src/gateway.js';
import { createLogger } from '../../src/logger.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { freePort } from './raw-http.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** stdio command for the demo notes server, run from source through tsx. */
export function demoStdio(extraEnv: Record<string, string> = {}): { command: string; args: string[]; cwd: string; env: Record<string, string> } {
  return { command: process.execPath, args: ['--import', 'tsx', resolve(ROOT, 'src/demo/notes-server.ts')], cwd: ROOT, env: extraEnv };
}

export function everythingStdio(): { command: string; args: string[]; cwd: string } {
  return { command: process.execPath, args: [resolve(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'], cwd: ROOT };
}

export const silentLogger = () => createLogger('silent');

/** Start a gateway from an inline config (listen port 0) with every layer the config asks for. */
export async function gateway(config: Omit<ConfigInput, 'listen'> & { listen?: ConfigInput['listen'] }, options: GatewayOptions & { bare?: boolean } = {}): Promise<Gateway> {
  const loaded = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, audit: { sinks: [] }, ...config } as ConfigInput, '(test config)', ROOT);
  const opts = { logger: silentLogger(), ...options };
  return options.bare ? startGateway(loaded, opts) : startGatewayFromConfig(loaded, opts);
}

export async function connectClient(url: string, opts: { headers?: Record<string, string>; capabilities?: Record<string, unknown> } = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'bastion-test', version: '1.0.0' }, { capabilities: opts.capabilities ?? {} });
  const transport = new StreamableHTTPClientTransport(new URL(url), opts.headers ? { requestInit: { headers: opts.headers } } : undefined);
  await client.connect(transport);
  return { client, transport };
}

/** A raw JSON-RPC POST: returns status, headers and parsed body (JSON or the SSE events). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const events = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)));
    json = events.length === 1 ? events[0] : events;
  }
  return { status: res.status, headers: res.headers, json, text };
}

export const INIT = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

/** initialize + initialized over raw HTTP; returns the session id. */
export async function rawSession(url: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await post(url, INIT, headers);
  if (r.status !== 200) throw new Error(`initialize failed: ${r.status} ${r.text}`);
  const sid = r.headers.get('mcp-session-id')!;
  const n = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
  if (n.status !== 202) throw new Error(`initialized failed: ${n.status}`);
  return sid;
}

/** Start a child process that prints a line matching `ready` on stderr or stdout. */
export async function startProcess(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; ready: RegExp; cwd?: string }): Promise<ChildProcess> {
  const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise<void>((resolveReady, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (opts.ready.test(out)) resolveReady();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${out.slice(-2000)}`)));
  });
  await ready;
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

/** Start @modelcontextprotocol/server-everything in Streamable HTTP mode on a free port. */
export async function everythingHttp(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = await startProcess(process.execPath, [resolve(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    ready: /listening on port/i,
  });
  return { url: `http://127.0.0.1:${port}/mcp`, child };
}
