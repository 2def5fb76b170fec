import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, diffLines, diffDefinitions, approveHint } from '../../src/integrity/decide.js';
import { definitionHash, identityOf } from '../../src/integrity/canonical.js';
import type { Pin, ScanResult } from '../../src/integrity/types.js';

const v1 = { name: 'multiply', description: 'Multiplies two numbers.', inputSchema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } } } };
const v2 = { ...v1, description: 'Multiplies two numbers. Also returns the sign.' };
const pinOf = (d: Record<string, unknown>): Pin => ({ kind: 'tool', name: String(d.name), hash: definitionHash('tool', d), definition: identityOf('tool', d), approvedAt: '2026-01-01T00:00:00.000Z', approvedBy: 'alice' });
const input = (d: Record<string, unknown>, extra: Partial<Parameters<typeof decide>[0]> = {}) => ({
  kind: 'tool' as const,
  name: String(d.name),
  hash: definitionHash('tool', d),
  definition: identityOf('tool', d),
  mode: 'strict' as const,
  pin: undefined,
  ...extra,
});
const pass: ScanResult = { kind: 'tool', name: 'multiply', verdict: 'pass', findings: [] };
const block: ScanResult = { kind: 'tool', name: 'multiply', verdict: 'block', findings: [{ rule: 'hidden-instruction-marker', severity: 'high', message: 'm', evidence: 'e', path: 'description' }] };

test('pinned and identical → approved; key order does not matter', () => {
  const reordered = { inputSchema: v1.inputSchema, description: v1.description, name: v1.name };
  assert.deepEqual(decide(input(reordered, { pin: pinOf(v1), scan: pass })), { status: 'approved', via: 'pin', findings: [] });
});

test('strict: unpinned → new; tofu: unpinned and clean → approved via tofu; off → approved', () => {
  assert.equal(decide(input(v1, { scan: pass })).status, 'new');
  assert.deepEqual(decide(input(v1, { mode: 'tofu', scan: pass })), { status: 'approved', via: 'tofu', findings: [] });
  assert.equal(decide(input(v1, { mode: 'off', pin: pinOf(v2), scan: pass })).status, 'approved');
});

test('changed → held with a readable diff of the description', () => {
  const d = decide(input(v2, { mode: 'tofu', pin: pinOf(v1), scan: pass }));
  assert.equal(d.status, 'changed');
  assert.ok('diff' in d && d.diff);
  assert.match(d.diff!, /^- {3}"description": "Multiplies two numbers\.",$/m);
  assert.match(d.diff!, /^\+ {3}"description": "Multiplies two numbers\. Also returns the sign\.",$/m);
});

test('a renamed tool is new, not approved by the old name\'s pin', () => {
  const renamed = { ...v1, name: 'multiply_v2' };
  assert.equal(decide(input(renamed, { pin: undefined, scan: pass })).status, 'new');
});

test('scan block holds back even in tofu/off mode, but an explicit pin of that exact text wins', () => {
  assert.equal(decide(input(v1, { mode: 'tofu', scan: block })).status, 'blocked-by-scan');
  assert.equal(decide(input(v1, { mode: 'off', scan: block })).status, 'blocked-by-scan');
  const changed = decide(input(v2, { mode: 'tofu', pin: pinOf(v1), scan: block }));
  assert.equal(changed.status, 'blocked-by-scan');
  assert.ok('diff' in changed && changed.diff);
  assert.equal(decide(input(v1, { pin: pinOf(v1), scan: block })).status, 'approved');
});

test('manifest: required and not covered → unsigned even when pinned; covered → approved over a stale pin', () => {
  assert.equal(decide(input(v1, { pin: pinOf(v1), scan: pass, manifest: { required: true, covered: false } })).status, 'unsigned');
  assert.deepEqual(decide(input(v2, { pin: pinOf(v1), scan: pass, manifest: { required: true, covered: true } })), { status: 'approved', via: 'manifest', findings: [] });
  assert.equal(decide(input(v2, { pin: pinOf(v1), scan: block, manifest: { required: false, covered: true } })).status, 'blocked-by-scan');
});

test('diffLines keeps context and marks skipped regions', () => {
  const a = Array.from({ length: 20 }, (_, i) => `line ${i}`);
  const b = [...a];
  b[10] = 'changed';
  const d = diffLines(a, b);
  assert.match(d, /^@@$/m);
  assert.match(d, /^- line 10$/m);
  assert.match(d, /^\+ changed$/m);
  assert.doesNotMatch(d, /line 0\b/);
  assert.equal(diffDefinitions({ a: 1, b: 2 }, { b: 2, a: 1 }), '');
});

test('approve hint names the command', () => {
  assert.match(approveHint('files', 'tool', 'read_file'), /bastion pin approve --server files read_file/);
  assert.match(approveHint('files', 'prompt', 'p'), /--kind prompt p/);
});

test('a tofu pin does not cover scan findings; a person\'s pin does', () => {
  const tofu = { ...pinOf(v1), approvedBy: 'tofu' };
  assert.equal(decide(input(v1, { mode: 'tofu', pin: tofu, scan: block })).status, 'blocked-by-scan');
  assert.equal(decide(input(v1, { mode: 'tofu', pin: tofu, scan: pass })).status, 'approved');
  assert.equal(decide(input(v1, { mode: 'tofu', pin: pinOf(v1), scan: block })).status, 'approved');
});
