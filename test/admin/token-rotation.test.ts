/**
 * admin.token from a file is rotated without a restart: the new token is in force within about a
 * second, the old one is refused, and a token file that disappears refuses every request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminServer } from '../../src/admin/server.js';
import { Containment } from '../../src/containment/containment.js';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { createLogger } from '../../src/logger.js';
import { parseConfig } from '../../src/config/load.js';
import { RecordingAudit } from '../stages/authorization/helpers.js';

test('admin.token from a file: rotated without a restart, the old token refused; a vanished file refuses everything', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-admin-token-'));
  const file = join(dir, 'admin-token');
  writeFileSync(file, 'old-admin-token-0123456789\n');
  const containment = new Containment(new MemoryStateStore(), { pollMs: 60_000 });
  await containment.start();
  const { config } = parseConfig({ servers: { x: { stdio: { command: 'node' } } }, admin: { listen: { host: '127.0.0.1', port: 0 }, token: { file } } });
  const server = await startAdminServer({ config: config.admin!, baseDir: dir, containment, audit: new RecordingAudit(), logger: createLogger('silent') });
  const status = async (token: string): Promise<number> => (await fetch(`${server.url}/sessions`, { headers: { authorization: `Bearer ${token}` } })).status;
  const eventually = async (token: string, want: number): Promise<void> => {
    const deadline = Date.now() + 5_000;
    while ((await status(token)) !== want) {
      if (Date.now() > deadline) assert.fail(`${token.slice(0, 4)}… never got ${want}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    assert.equal(await status('old-admin-token-0123456789'), 200);
    writeFileSync(join(dir, 'next'), 'new-admin-token-9876543210\n');
    renameSync(join(dir, 'next'), file);
    await eventually('new-admin-token-9876543210', 200);
    assert.equal(await status('old-admin-token-0123456789'), 401, 'the old token is refused once the new one is in force');
    rmSync(file);
    await eventually('new-admin-token-9876543210', 401);
    assert.equal(await status('old-admin-token-0123456789'), 401);
  } finally {
    await server.close();
    await containment.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
