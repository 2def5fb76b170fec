/**
 * Quarantine announcements through a running gateway (admin API, raw Streamable HTTP client):
 * list_changed is held until the client's notifications/initialized (MCP lifecycle), delivered
 * then once per method in order, dropped when the session ends first; and it is sent only for the
 * lists the initialize result declared (a tools-only server hears tools/list_changed only).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { resolve } from 'node:path';
import type { FullGateway } from '../../../src/gateway.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import type { StateStore } from '../../../src/stores/types.js';
import { compileFixture } from '../../fixtures/compile-fixture.js';
import { gateway, INIT, post, rawSession, ROOT } from '../../helpers/gateway.js';

const TOOLS = 'notifications/tools/list_changed';
const PROMPTS = 'notifications/prompts/list_changed';
const RESOURCES = 'notifications/resources/list_changed';
const V = { 'mcp-protocol-version': '2025-11-25' };

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** The session's standalone GET stream: the methods of the messages it carries, as they arrive. */
async function openStream(url: string, sid: string): Promise<{ methods: string[]; ended: Promise<void>; close(): void }> {
  const methods: string[] = [];
  let buf = '';
  return new Promise((resolveOpen, reject) => {
    const req = http.request(url, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': sid, ...V } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET answered ${res.statusCode}`));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of event.split('\n')) if (line.startsWith('data: ')) methods.push(String((JSON.parse(line.slice(6)) as { method?: unknown }).method));
        }
      });
      const ended = new Promise<void>((r) => {
        res.once('end', r);
        res.once('close', r);
      });
      resolveOpen({ methods, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

const stdio = (file: string) => ({ command: process.execPath, args: [compileFixture(resolve(ROOT, file))], cwd: ROOT });

async function adminPost(adminUrl: string, path: '/quarantine' | '/release', body: { server: string; tool?: string }): Promise<void> {
  const r = await fetch(`${adminUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.text());
}

describe('quarantine announcements through the gateway', { timeout: 120_000 }, () => {
  let gw: FullGateway;
  let adminUrl: string;

  before(async () => {
    gw = (await gateway({
      // notes declares tools, prompts and resources; faulty declares tools (and logging) only
      servers: { notes: { stdio: stdio('src/demo/notes-server.ts') }, faulty: { stdio: stdio('test/fixtures/faulty-server.ts') } },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
    } as Parameters<typeof gateway>[0])) as FullGateway;
    adminUrl = gw.admin!.url;
  });
  after(async () => {
    await gw?.close();
  });

  const admin = (path: '/quarantine' | '/release', body: { server: string; tool?: string }): Promise<void> => adminPost(adminUrl, path, body);

  /** initialize only (no notifications/initialized yet): the session id and the capabilities the client was told. */
  async function initializeOnly(url: string): Promise<{ sid: string; capabilities: Record<string, unknown> }> {
    const r = await post(url, INIT);
    assert.equal(r.status, 200, r.text);
    return { sid: r.headers.get('mcp-session-id')!, capabilities: r.json.result.capabilities as Record<string, unknown> };
  }

  async function initialized(url: string, sid: string): Promise<void> {
    const n = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sid, ...V });
    assert.equal(n.status, 202, n.text);
  }

  test('a quarantine before the client’s notifications/initialized is delivered only after it, once per method, in order', async () => {
    const url = `${gw.url}/mcp/notes`;
    const { sid, capabilities } = await initializeOnly(url);
    assert.deepEqual(Object.keys(capabilities).filter((k) => ['tools', 'prompts', 'resources'].includes(k)).sort(), ['prompts', 'resources', 'tools']);
    const stream = await openStream(url, sid);
    try {
      // The admin call returns after this replica announced the change to its sessions.
      await admin('/quarantine', { server: 'notes', tool: 'echo' });
      await admin('/release', { server: 'notes', tool: 'echo' });
      await admin('/quarantine', { server: 'notes' });
      await delay(200);
      assert.deepEqual(stream.methods, [], 'nothing before notifications/initialized');
      await initialized(url, sid);
      await until(() => stream.methods.length >= 3, 'the held announcements');
      await delay(200);
      // tools was announced three times, prompts and resources once: one of each, first-come order
      assert.deepEqual(stream.methods, [TOOLS, PROMPTS, RESOURCES]);
      // after initialized, announcements go out at once
      await admin('/release', { server: 'notes' });
      await until(() => stream.methods.length >= 6, 'the release');
      assert.deepEqual(stream.methods.slice(3), [TOOLS, PROMPTS, RESOURCES]);
    } finally {
      stream.close();
      await admin('/release', { server: 'notes' });
    }
  });

  test('a session that ends before notifications/initialized never gets what was held', async () => {
    const url = `${gw.url}/mcp/notes`;
    const { sid } = await initializeOnly(url);
    const stream = await openStream(url, sid);
    try {
      await admin('/quarantine', { server: 'notes', tool: 'echo' });
      const d = await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': sid, ...V } });
      assert.equal(d.status, 200);
      await stream.ended;
      assert.deepEqual(stream.methods, []);
    } finally {
      stream.close();
      await admin('/release', { server: 'notes', tool: 'echo' });
    }
  });

  test('a whole-server quarantine of a server that declares only tools sends only tools/list_changed', async () => {
    const url = `${gw.url}/mcp/faulty`;
    const { sid, capabilities } = await initializeOnly(url);
    assert.ok(capabilities.tools && !capabilities.prompts && !capabilities.resources, JSON.stringify(capabilities));
    await initialized(url, sid);
    const stream = await openStream(url, sid);
    try {
      await admin('/quarantine', { server: 'faulty' });
      await until(() => stream.methods.length >= 1, 'the quarantine');
      await admin('/release', { server: 'faulty' });
      await until(() => stream.methods.length >= 2, 'the release');
      await delay(200);
      assert.deepEqual(stream.methods, [TOOLS, TOOLS]);
    } finally {
      stream.close();
      await admin('/release', { server: 'faulty' });
    }
  });
});

test('a session restored on another replica announces only the lists its server declares (learnt from the replayed handshake)', { timeout: 120_000 }, async () => {
  // One in-process store both replicas reach, declared shared (as Redis is).
  const m = new MemoryStateStore();
  const store = new Proxy(m, {
    get(target, prop, recv) {
      if (prop === 'shared') return true;
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as StateStore;
  const cfg = { servers: { faulty: { stdio: stdio('test/fixtures/faulty-server.ts') } }, admin: { listen: { host: '127.0.0.1', port: 0 } } } as Parameters<typeof gateway>[0];
  const a = (await gateway(cfg, { store })) as FullGateway;
  const b = (await gateway(cfg, { store })) as FullGateway;
  try {
    const sid = await rawSession(`${a.url}/mcp/faulty`);
    // B restores the session on first use and replays the handshake to its own upstream.
    const ping = await post(`${b.url}/mcp/faulty`, { jsonrpc: '2.0', id: 1, method: 'ping' }, { 'mcp-session-id': sid, ...V });
    assert.equal(ping.status, 200, ping.text);
    const stream = await openStream(`${b.url}/mcp/faulty`, sid);
    try {
      await adminPost(b.admin!.url, '/quarantine', { server: 'faulty' });
      await until(() => stream.methods.length >= 1, 'the quarantine on B');
      await delay(200);
      assert.deepEqual(stream.methods, [TOOLS]);
    } finally {
      stream.close();
      await adminPost(b.admin!.url, '/release', { server: 'faulty' });
    }
  } finally {
    await a.close();
    await b.close();
  }
});
