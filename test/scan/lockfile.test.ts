/** `--lockfile`: definitions compared with the last pins (rug pulls) on a real server (server-everything over stdio). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definitionHash, identityOf } from '../../src/integrity/canonical.js';
import { serializeLockfile } from '../../src/integrity/lockfile.js';
import type { DefinitionKind, Lockfile, Pin } from '../../src/integrity/types.js';
import { scanServer } from '../../src/scan/index.js';
import { listServer } from '../../src/scan/tools.js';
import { everythingStdio } from '../helpers/gateway.js';

test('lockfile comparison: a changed tool is a possible rug pull, an unpinned one is new, a vanished one removed; a wrong path or server name is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-scan-lock-'));
  try {
    const target = { kind: 'stdio' as const, ...everythingStdio() };
    const listing = await listServer(target, {});
    const pin = (def: Record<string, unknown>, kind: DefinitionKind = 'tool'): Pin => ({ kind, name: String(def.name), hash: definitionHash(kind, def), definition: identityOf(kind, def), approvedAt: '2026-01-01T00:00:00.000Z', approvedBy: 'test' });
    const others: Record<string, Pin> = {};
    for (const p of listing.prompts) others[`prompt:${String(p.name)}`] = pin(p, 'prompt');
    for (const t of listing.resourceTemplates) others[`resourceTemplate:${String(t.name)}`] = pin(t, 'resourceTemplate');
    const pins: Record<string, Pin> = { ...others };
    for (const t of listing.tools) {
      if (t.name === 'get-sum') continue; // → new
      const def = t.name === 'echo' ? { ...t, description: 'An older, reviewed description' } : t; // → changed
      pins[`tool:${String(t.name)}`] = pin(def);
    }
    pins['tool:retired-tool'] = pin({ name: 'retired-tool', description: 'gone', inputSchema: { type: 'object' } }); // → removed
    const lock: Lockfile = { lockfileVersion: 1, servers: { everything: { pins } } };
    const file = join(dir, 'bastion.lock.json');
    writeFileSync(file, serializeLockfile(lock));
    const r = await scanServer(target, { lockfile: file });
    const lf = r.layers.tools.findings.filter((f) => f.id.startsWith('tools.lockfile.'));
    assert.deepEqual(lf.map((f) => `${f.id} ${/"([^"]+)"/.exec(f.title)![1]}`).sort(), ['tools.lockfile.changed echo', 'tools.lockfile.new get-sum', 'tools.lockfile.removed retired-tool']);
    assert.equal(lf.find((f) => f.id === 'tools.lockfile.changed')!.severity, 'high');
    assert.ok(lf.every((f) => f.control === 'Tools: pinned definitions'));

    // The unmodified pins: nothing reported.
    const clean: Lockfile = { lockfileVersion: 1, servers: { everything: { pins: { ...others, ...Object.fromEntries(listing.tools.map((t) => [`tool:${String(t.name)}`, pin(t)])) } } } };
    writeFileSync(file, serializeLockfile(clean));
    const ok = await scanServer(target, { lockfile: file });
    assert.deepEqual(ok.layers.tools.findings.filter((f) => f.id.startsWith('tools.lockfile.')), []);
    assert.match(ok.layers.tools.passed.join('\n'), /pinned definitions unchanged/);

    // A wrong path or server name says so (a missing file reads as an empty lockfile).
    await assert.rejects(scanServer(target, { lockfile: join(dir, 'missing.json') }), /missing\.json: no server is pinned in it \(is the path right\?/);
    await assert.rejects(scanServer(target, { lockfile: file, lockfileServer: 'nope' }), /no server "nope" in it \(it pins everything\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
