/** A gateway with identity (a real JWKS issuer stand-in), the demo notes server and the admin API. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startGatewayFromConfig, type FullGateway, type FullGatewayOptions } from '../../src/gateway.js';
import { canonicalResource } from '../../src/identity/resource.js';
import { post, rawSession, ROOT, silentLogger } from '../helpers/gateway.js';
import { compileFixture } from '../fixtures/compile-fixture.js';
import type { TestIssuer } from '../identity/fixtures.js';

export const PUBLIC_URL = 'https://gw.example.com';
export const NOTES_RESOURCE = canonicalResource(PUBLIC_URL, 'notes');

export function notesConfig(issuer: TestIssuer, extra: Record<string, unknown> = {}): ConfigInput {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    publicUrl: PUBLIC_URL,
    log: { level: 'silent' },
    audit: { sinks: [] },
    auth: { issuers: [{ issuer: issuer.url, jwksUri: issuer.jwksUri }] },
    servers: {
      notes: {
        stdio: { command: process.execPath, args: [compileFixture(resolve(ROOT, 'src/demo/notes-server.ts'))], cwd: ROOT },
        defaultTool: 'allow',
      },
    },
    ...extra,
  } as ConfigInput;
}

export async function startNotesGateway(issuer: TestIssuer, extra: Record<string, unknown> = {}, options: FullGatewayOptions = {}, env?: NodeJS.ProcessEnv): Promise<FullGateway> {
  const loaded = parseConfig(notesConfig(issuer, extra), '(test)', ROOT, env);
  return startGatewayFromConfig(loaded, { logger: silentLogger(), ...options });
}

export interface NotesClient {
  token: string;
  sid: string;
  list(): Promise<{ status: number; names: string[]; json: any }>;
  call(name: string, args?: Record<string, unknown>): Promise<{ status: number; json: any; headers: Headers; text: string }>;
}

export async function mint(issuer: TestIssuer, claims: Record<string, unknown> = {}): Promise<string> {
  return issuer.mint({ aud: NOTES_RESOURCE, scope: 'notes:read', ...claims });
}

/** A session on `base` (http://127.0.0.1:PORT) with a fresh token (or the given one). */
export async function notesClient(base: string, issuer: TestIssuer, claims: Record<string, unknown> = {}, token?: string): Promise<NotesClient> {
  const t = token ?? (await mint(issuer, claims));
  const url = `${base}/mcp/notes`;
  const auth = { authorization: `Bearer ${t}` };
  const sid = await rawSession(url, auth);
  const headers = { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  let id = 10;
  return {
    token: t,
    sid,
    async list() {
      const r = await post(url, { jsonrpc: '2.0', id: ++id, method: 'tools/list' }, headers);
      const names = r.status === 200 && r.json.result ? (r.json.result.tools as { name: string }[]).map((x) => x.name) : [];
      return { status: r.status, names, json: r.json };
    },
    call(name, args = {}) {
      return post(url, { jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args } }, headers);
    },
  };
}

export async function admin(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

export function base(gw: { port: number }): string {
  return `http://127.0.0.1:${gw.port}`;
}

export async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: last ${JSON.stringify(v).slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
