import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { createAuditLog } from '../../src/audit/log.js';
import { FileAuditSink } from '../../src/audit/sinks/file.js';
import { secretLadenEvent } from '../audit/helpers.js';
import { runAuditKeygen, runAuditVerify } from '../../src/cli/audit.js';

const root = resolve(new URL('../..', import.meta.url).pathname);
const dir = mkdtempSync(join(tmpdir(), 'bastion-cli-audit-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function bastion(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('bastion audit: keygen, verify intact (exit 0 + summary), then edited / deleted / swapped / truncated (exit 1 naming the record)', async () => {
  const key = join(dir, 'audit.key');
  const kg = bastion('audit', 'keygen', '--out', key);
  assert.equal(kg.status, 0, kg.stderr);
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.match(kg.stdout, /key id /);
  assert.equal(runAuditKeygen(key).exitCode, 2, 'refuses to overwrite');

  const file = join(dir, 'audit.jsonl');
  const sink = new FileAuditSink({ path: file, key: createPrivateKey(readFileSync(key)), everyRecords: 5 });
  const log = createAuditLog({ sinks: [sink] });
  for (let i = 0; i < 20; i++) log.emit(secretLadenEvent(i));
  await log.close();
  const original = readFileSync(file, 'utf8');
  const lines = original.trimEnd().split('\n');

  const ok = bastion('audit', 'verify', file, '--key', `${key}.pub`);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^OK .*: 20 events, 5 checkpoints \(5 signed\), last seq 25/);
  assert.match(ok.stdout, /every checkpoint signature valid, sealed/);

  const cases: Array<[string, string[], RegExp]> = [
    ['edited', lines.map((l, i) => (i === 7 ? l.replace('read_file', 'rm_rf') : l)), /line 8, seq 8 \(modified\)/],
    ['deleted', lines.filter((_, i) => i !== 9), /line 10, seq 10 \(missing\)/],
    ['swapped', lines.map((l, i) => (i === 2 ? lines[3]! : i === 3 ? lines[2]! : l)), /line 3, seq 3 \(missing\)|line 3, seq 4/],
    ['truncated', lines.slice(0, 14), /not_sealed/],
  ];
  for (const [what, ls, re] of cases) {
    const f = join(dir, `${what}.jsonl`);
    writeFileSync(f, `${ls.join('\n')}\n`);
    // The real process for one case (exit status), the same function in-process for the others.
    const r = what === 'edited' ? bastion('audit', 'verify', f, '--key', `${key}.pub`) : await runAuditVerify(f, { key: `${key}.pub` }).then((x) => ({ status: x.exitCode, stdout: x.output, stderr: '' }));
    assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^FAILED /, what);
    assert.match(r.stdout, re, `${what}: ${r.stdout}`);
  }
  // Truncated mid-line.
  const cut = join(dir, 'cut.jsonl');
  writeFileSync(cut, original.slice(0, original.length - 30));
  const c = await runAuditVerify(cut, { json: true });
  assert.equal(c.exitCode, 1);
  assert.equal(JSON.parse(c.output).problem.kind, 'truncated');
  // A live (unsealed) file passes with --allow-open.
  const open = join(dir, 'open.jsonl');
  writeFileSync(open, `${lines.slice(0, 14).join('\n')}\n`);
  assert.equal((await runAuditVerify(open, { allowOpen: true })).exitCode, 0);
  // Usage errors exit 2.
  assert.equal(bastion('audit', 'verify', join(dir, 'missing.jsonl')).status, 2);
  assert.equal((await runAuditVerify(file, { key: file })).exitCode, 2);
});
