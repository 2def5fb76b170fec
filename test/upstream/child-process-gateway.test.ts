/**
 * Least-privilege stdio upstreams end to end: the gateway spawns a probe upstream and an SDK
 * client asks it, through the gateway, what it can see and do.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { compileFixture } from '../fixtures/compile-fixture.js';
import { probeBwrap, whichOnPath } from '../../src/upstream/child-process.js';
import { parseConfig } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/server.js';
import { createLogger } from '../../src/logger.js';

const PROBE = new URL('../fixtures/probe-upstream.ts', import.meta.url).pathname;
const bwrap = whichOnPath('bwrap');
const probe = bwrap ? probeBwrap(bwrap) : undefined;
const noSandbox = (!bwrap ? 'bwrap is not installed (apt-get install bubblewrap)' : probe && !probe.ok ? `bwrap cannot run here: ${probe.reason}` : false);

const SECRET_NAME = 'BASTION_TEST_GATEWAY_ONLY_SECRET';
const SECRET = 'gateway-only-secret-value-0xC0FFEE';

let gateway: Gateway | undefined;
let listener: Server;
let port = 0;
const rw = mkdtempSync(join(tmpdir(), 'probe-rw-'));
const ro = mkdtempSync(join(tmpdir(), 'probe-ro-'));
const hidden = mkdtempSync(join(tmpdir(), 'probe-hidden-'));

before(async () => {
  listener = createServer((s) => {
    s.on('error', () => undefined);
    s.end();
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as AddressInfo).port;
  writeFileSync(join(hidden, 'gateway.key'), SECRET);
  process.env[SECRET_NAME] = SECRET;
  process.env.BASTION_TEST_PASSED_ON = 'passed-on';

  const open = { defaultTool: 'allow', defaultResource: 'allow', defaultPrompt: 'allow' } as const;
  const command = process.execPath;
  const args = [compileFixture(PROBE)];
  const servers: Record<string, unknown> = {
    plain: { stdio: { command, args, inheritEnv: ['BASTION_TEST_PASSED_ON'], env: { EXPLICIT: 'yes' } }, ...open },
  };
  if (!noSandbox) {
    servers.boxed = {
      stdio: { command, args, cwd: ro, sandbox: { enabled: true, writablePaths: [rw], hiddenPaths: [hidden] } },
      ...open,
    };
  }
  gateway = await startGateway(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, servers }), { logger: createLogger('silent') });
});

after(async () => {
  await gateway?.close();
  if (listener) await new Promise<void>((r) => listener.close(() => r()));
  delete process.env[SECRET_NAME];
});

async function withClient<T>(mount: string, fn: (call: (name: string, args: Record<string, unknown>) => Promise<string>) => Promise<T>): Promise<T> {
  const client = new Client({ name: 'probe-test', version: '0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway!.url}/mcp/${mount}`)));
  try {
    return await fn(async (name, args) => {
      const r = await client.callTool({ name, arguments: args });
      return (r.content as { text: string }[])[0]!.text;
    });
  } finally {
    await client.close();
  }
}

test('a stdio upstream cannot read an environment variable the gateway has', async () => {
  assert.equal(process.env[SECRET_NAME], SECRET, 'the gateway process has the variable');
  await withClient('plain', async (call) => {
    assert.equal(await call('getenv', { name: SECRET_NAME }), '(unset)');
    assert.equal(await call('getenv', { name: 'EXPLICIT' }), 'yes');
    assert.equal(await call('getenv', { name: 'BASTION_TEST_PASSED_ON' }), 'passed-on');
    // Without a sandbox it can still reach the host's sockets (the control for the next test).
    assert.equal(await call('try_connect', { host: '127.0.0.1', port }), 'connected');
  });
});

test('sandboxed stdio upstream: no socket, no writes outside its paths, hidden paths unreadable', { skip: noSandbox }, async () => {
  await withClient('boxed', async (call) => {
    assert.equal(await call('getenv', { name: SECRET_NAME }), '(unset)');
    assert.match(await call('try_connect', { host: '127.0.0.1', port }), /^E(CONNREFUSED|NETUNREACH|ACCES|PERM)$/);
    assert.match(await call('try_connect', { host: '1.1.1.1', port: 443 }), /^E(NETUNREACH|HOSTUNREACH|CONNREFUSED|ACCES|PERM)$/);
    assert.equal(await call('try_write', { path: join(rw, 'allowed.txt') }), 'ok');
    assert.equal(readFileSync(join(rw, 'allowed.txt'), 'utf8'), 'probe');
    assert.equal(await call('try_write', { path: join(ro, 'denied.txt') }), 'EROFS');
    assert.equal(await call('try_write', { path: '/etc/bastion-probe' }), 'EROFS');
    assert.equal(existsSync(join(ro, 'denied.txt')), false);
    assert.equal(await call('try_read', { path: join(hidden, 'gateway.key') }), 'ENOENT');
  });
});
