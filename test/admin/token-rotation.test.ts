/**
 * admin.token from a file is rotated without a restart: the new token is in force within about a
 * second, the old one is refused, and a token file that disappears refuses every request.
 */
import { test } from 'node:test';
import { startAdminServer } from '../../src/admin/server.js';
import { Containment } from '../../src/containment/containment.js';
import { MemoryStateStore } from '../../src/stores/memory.js';
import { createLogger } from '../../src/logger.js';
import { parseConfig } from '../../src/config/load.js';
import { RecordingAudit } from '../stages/authorization/helpers.js';
import { checkTokenFileRotation, tokenFile } from '../helpers/token-file.js';

test('admin.token from a file: rotated without a restart, the old token refused; a vanished file refuses everything', async () => {
  const t = tokenFile('old-admin-token-0123456789');
  const containment = new Containment(new MemoryStateStore(), { pollMs: 60_000 });
  await containment.start();
  const { config } = parseConfig({ servers: { x: { stdio: { command: 'node' } } }, admin: { listen: { host: '127.0.0.1', port: 0 }, token: { file: t.file } } });
  const server = await startAdminServer({ config: config.admin!, baseDir: t.dir, containment, audit: new RecordingAudit(), logger: createLogger('silent') });
  try {
    await checkTokenFileRotation(t, async (token) => (await fetch(`${server.url}/sessions`, { headers: { authorization: `Bearer ${token}` } })).status, {
      initial: 'old-admin-token-0123456789',
      next: 'new-admin-token-9876543210',
    });
  } finally {
    await server.close();
    await containment.close();
    t.remove();
  }
});
