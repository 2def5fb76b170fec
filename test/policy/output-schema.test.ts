import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkOutputSchema } from '../../src/policy/output-schema.js';

const schema = { type: 'object', properties: { temp: { type: 'number' }, city: { type: 'string' } }, required: ['temp'] };

test('conforming structuredContent passes', () => {
  assert.deepEqual(checkOutputSchema(schema, { content: [], structuredContent: { temp: 21, city: 'Bern' } }), { ok: true });
});

test('non-conforming structuredContent fails with a message naming the place', () => {
  const r = checkOutputSchema(schema, { content: [], structuredContent: { temp: 'hot' } });
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.reason === 'invalid' && r.message.includes('structuredContent.temp'));
});

test('a declared schema with no structuredContent fails (MCP: MUST provide it)', () => {
  const r = checkOutputSchema(schema, { content: [{ type: 'text', text: '21' }] });
  assert.ok(!r.ok && r.reason === 'missing');
});

test('no schema, or an error result, is not checked', () => {
  assert.deepEqual(checkOutputSchema(undefined, { structuredContent: 1 }), { ok: true });
  assert.deepEqual(checkOutputSchema(schema, { isError: true, content: [] }), { ok: true });
});

test('draft-07 schemas by $schema', () => {
  const s = { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] };
  assert.deepEqual(checkOutputSchema(s, { structuredContent: { a: 1 } }), { ok: true });
  assert.equal(checkOutputSchema(s, { structuredContent: { a: 1.5 } }).ok, false);
});

test('an uncompilable schema fails closed', () => {
  const r = checkOutputSchema({ type: 'object', properties: { a: { type: 'no-such-type' } } }, { structuredContent: { a: 1 } });
  assert.ok(!r.ok && r.reason === 'schema_unusable');
});

test('a hostile pattern cannot backtrack catastrophically (RE2)', { timeout: 30_000 }, () => {
  const s = { type: 'object', properties: { a: { type: 'string', pattern: '^(a+)+$' } } };
  const r = checkOutputSchema(s, { structuredContent: { a: 'a'.repeat(50_000) + '!' } });
  assert.equal(r.ok, false);
});

test('a schema whose validation recurses without end fails closed instead of throwing', () => {
  // $dynamicRef without a $dynamicAnchor, and a not/anyOf $ref loop: ajv compiles both, validation overflows the stack.
  for (const s of [
    { $dynamicRef: '#x' },
    { $defs: { a: { anyOf: [{ $ref: '#/$defs/b' }] }, b: { not: { $ref: '#/$defs/a' } } }, type: 'object', properties: { x: { $ref: '#/$defs/a' } } },
  ]) {
    const r = checkOutputSchema(s, { structuredContent: { x: 1 } });
    assert.ok(!r.ok && r.reason === 'schema_unusable', JSON.stringify(r));
  }
});

test('a hostile outputSchema is guarded like an inputSchema: a $ref "billion laughs" is refused before compiling', () => {
  // 24 levels, each doubling the work: the old output path compiled it (hundreds of ms, doubling per level).
  const $defs: Record<string, unknown> = { a0: { type: 'string' } };
  for (let i = 1; i <= 24; i++) $defs[`a${i}`] = { allOf: [{ $ref: `#/$defs/a${i - 1}` }, { $ref: `#/$defs/a${i - 1}` }] };
  const schema = { type: 'object', properties: { x: { $ref: '#/$defs/a24' } }, $defs };
  const r = checkOutputSchema(schema, { content: [], structuredContent: { x: 'a' } });
  assert.equal(r.ok, false);
  assert.equal(r.ok === false && r.reason, 'schema_unusable');
  assert.match(r.ok === false ? r.message : '', /schema_too_costly/);
});

test('uniqueItems in an outputSchema is still enforced (by the linear keyword, not ajv\'s pairwise check)', () => {
  const schema = { type: 'object', properties: { xs: { type: 'array', uniqueItems: true } } };
  assert.deepEqual(checkOutputSchema(schema, { content: [], structuredContent: { xs: [{ a: 1, b: 2 }, { b: 2, a: 1 }] } }), {
    ok: false,
    reason: 'invalid',
    message: 'structuredContent.xs must not have duplicate items (uniqueItems)',
  });
  assert.deepEqual(checkOutputSchema(schema, { content: [], structuredContent: { xs: [1, 2, 3] } }), { ok: true });
});
