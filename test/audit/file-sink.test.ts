import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createAuditLog } from '../../src/audit/log.js';
import { FileAuditSink } from '../../src/audit/sinks/file.js';
import { verifyAuditFile } from '../../src/audit/verify.js';
import { recordHash } from '../../src/audit/chain.js';
import { assertNoSecrets, secretLadenEvent } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'bastion-audit-file-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');

let n = 0;
async function writeChain(events: number, opts: { key?: boolean; everyRecords?: number } = {}): Promise<string> {
  const path = join(dir, `audit-${n++}.jsonl`);
  const sink = new FileAuditSink({ path, key: opts.key === false ? undefined : privateKey, everyRecords: opts.everyRecords ?? 10, now: () => Date.UTC(2026, 0, 1) });
  const log = createAuditLog({ sinks: [{ sink, batchSize: 16 }] });
  for (let i = 0; i < events; i++) log.emit(secretLadenEvent(i));
  await log.close();
  return path;
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}
function writeLines(path: string, ls: string[]): void {
  writeFileSync(path, ls.map((l) => `${l}\n`).join(''));
}

test('an intact chain verifies, with signatures, sealed by a final checkpoint; no secret is in the file', async () => {
  const path = await writeChain(35);
  const ls = lines(path);
  // 35 events + 3 periodic checkpoints (after 10, 20, 30) + 1 final
  assert.equal(ls.length, 39);
  const last = JSON.parse(ls.at(-1)!);
  assert.equal(last.checkpoint.final, true);
  assert.equal(typeof last.sig, 'string');
  const r = await verifyAuditFile(path, { publicKey });
  assert.equal(r.ok, true, r.problem?.message);
  assert.equal(r.events, 35);
  assert.equal(r.checkpoints, 4);
  assert.equal(r.signedCheckpoints, 4);
  assert.equal(r.sealed, true);
  assert.equal(r.signaturesChecked, true);
  assertNoSecrets(readFileSync(path, 'utf8'), 'file sink');
  assert.equal(statSync(path).mode & 0o777, 0o600, 'only the gateway user can read the trail');
});

test('an edited record is found and named', async () => {
  const path = await writeChain(25);
  const ls = lines(path);
  ls[4] = ls[4]!.replace('"outcome":"success"', '"outcome":"denied"');
  writeLines(path, ls);
  const r = await verifyAuditFile(path, { publicKey });
  assert.equal(r.ok, false);
  assert.equal(r.problem?.kind, 'modified');
  assert.equal(r.problem?.line, 5);
  assert.equal(r.problem?.seq, 5);
  assert.match(r.problem!.message, /seq 5 at line 5 was modified/);
});

test('a removed record is found and named', async () => {
  const path = await writeChain(25);
  const ls = lines(path);
  ls.splice(6, 1); // remove seq 7
  writeLines(path, ls);
  const r = await verifyAuditFile(path, { publicKey });
  assert.equal(r.problem?.kind, 'missing');
  assert.equal(r.problem?.seq, 7);
  assert.equal(r.problem?.line, 7);
  assert.match(r.problem!.message, /seq 7 is missing before line 7/);
});

test('two swapped records are found and named', async () => {
  const path = await writeChain(25);
  const ls = lines(path);
  [ls[2], ls[3]] = [ls[3]!, ls[2]!];
  writeLines(path, ls);
  const r = await verifyAuditFile(path, { publicKey });
  assert.equal(r.ok, false);
  assert.equal(r.problem?.line, 3);
  assert.match(r.problem!.message, /line 3/);
});

test('truncation is found: mid-record, and at a record boundary (no final checkpoint)', async () => {
  const path = await writeChain(25);
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.slice(0, text.length - 40));
  const r1 = await verifyAuditFile(path, { publicKey });
  assert.equal(r1.problem?.kind, 'truncated');
  assert.equal(r1.problem?.line, lines(path).length);

  const ls = lines(await writeChain(25)).slice(0, 15);
  const p2 = join(dir, 'cut.jsonl');
  writeLines(p2, ls);
  const r2 = await verifyAuditFile(p2, { publicKey });
  assert.equal(r2.ok, false);
  assert.equal(r2.problem?.kind, 'not_sealed');
  assert.match(r2.problem!.message, /truncated/);
  const r3 = await verifyAuditFile(p2, { publicKey, allowOpen: true });
  assert.equal(r3.ok, true, 'a live file can be checked with allowOpen');
  assert.ok(r3.warnings.some((w) => /not sealed/.test(w)));
});

test('a rewritten chain (all hashes recomputed) is caught by the checkpoint signature', async () => {
  const path = await writeChain(12);
  const ls = lines(path).map((l) => JSON.parse(l) as Record<string, unknown>);
  // Attacker edits record 2 and recomputes every hash after it, keeping the old signatures.
  (ls[1]!.event as Record<string, unknown>).outcome = 'denied';
  let prev = '0'.repeat(64);
  for (const r of ls) {
    r.prevHash = prev;
    r.hash = recordHash(r.seq as number, prev, r.event !== undefined ? { event: r.event } : { checkpoint: r.checkpoint });
    prev = r.hash as string;
  }
  writeLines(path, ls.map((r) => JSON.stringify(r)));
  const noKey = await verifyAuditFile(path);
  assert.equal(noKey.ok, true, 'without the key only the chain is checked');
  assert.ok(noKey.warnings.some((w) => /signatures not checked/.test(w)));
  const r = await verifyAuditFile(path, { publicKey });
  assert.equal(r.ok, false);
  assert.equal(r.problem?.kind, 'bad_signature');
  assert.equal(r.problem?.seq, 11);
  // The wrong key fails too.
  const fresh = await writeChain(3);
  const w = await verifyAuditFile(fresh, { publicKey: other.publicKey });
  assert.equal(w.problem?.kind, 'bad_signature');
  assert.match(w.problem!.message, /not by the given key/);
  // An unsigned file checked with a key fails: the key asks for signatures.
  const unsigned = await writeChain(3, { key: false });
  assert.equal((await verifyAuditFile(unsigned)).ok, true);
  assert.equal((await verifyAuditFile(unsigned, { publicKey })).problem?.kind, 'unsigned');
});

test('reopening continues the chain; a torn last line is refused at open', async () => {
  const path = join(dir, 'reopen.jsonl');
  for (let run = 0; run < 3; run++) {
    const sink = new FileAuditSink({ path, key: privateKey, everyRecords: 100 });
    await sink.open();
    const log = createAuditLog({ sinks: [sink] });
    for (let i = 0; i < 5; i++) log.emit(secretLadenEvent(i));
    await log.close();
  }
  const r = await verifyAuditFile(path, createPublicKey(privateKey));
  assert.equal(r.ok, true, r.problem?.message);
  assert.equal(r.events, 15);
  assert.equal(r.checkpoints, 3);
  writeFileSync(path, readFileSync(path, 'utf8') + '{"seq":19,"prev');
  const torn = new FileAuditSink({ path });
  await assert.rejects(torn.open(), /ends with an incomplete record/);
});

test('a missing file and an empty file are reported', async () => {
  assert.equal((await verifyAuditFile(join(dir, 'nope.jsonl'))).problem?.kind, 'unreadable');
  writeFileSync(join(dir, 'empty.jsonl'), '');
  assert.equal((await verifyAuditFile(join(dir, 'empty.jsonl'))).problem?.kind, 'empty');
});

test('a quiet gateway still seals its records: a checkpoint once records have waited everyMs', async () => {
  const path = join(dir, 'timed.jsonl');
  const clock = { t: Date.UTC(2026, 0, 1) };
  const sink = new FileAuditSink({ path, key: privateKey, everyRecords: 1000, everyMs: 60_000, now: () => clock.t });
  const log = createAuditLog({ sinks: [sink], now: () => clock.t });
  for (let i = 0; i < 3; i++) log.emit(secretLadenEvent(i));
  await log.flush();
  await sink.checkpointIfDue();
  let r = await verifyAuditFile(path, { publicKey, allowOpen: true });
  assert.equal(r.checkpoints, 0, 'not due yet');
  assert.equal(r.unsignedTail, 3);
  clock.t += 61_000;
  await sink.checkpointIfDue();
  r = await verifyAuditFile(path, { publicKey, allowOpen: true });
  assert.equal(r.checkpoints, 1);
  assert.equal(r.unsignedTail, 0);
  // A write after a long pause carries its own checkpoint.
  clock.t += 120_000;
  log.emit(secretLadenEvent(9));
  await log.flush();
  r = await verifyAuditFile(path, { publicKey, allowOpen: true });
  assert.equal(r.checkpoints, 2);
  assert.equal(r.unsignedTail, 0);
  await log.close();
  assert.equal((await verifyAuditFile(path, { publicKey })).ok, true);
});
