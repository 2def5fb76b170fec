import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgumentValidator, type ArgumentCheck, type ValidateInput } from '../../src/policy/arguments.js';
import type { ArgumentLimits } from '../../src/policy/types.js';

const limits: ArgumentLimits = {
  maxArgumentBytes: 64 * 1024,
  maxArgumentDepth: 16,
  maxSchemaBytes: 256 * 1024,
  maxSchemaDepth: 48,
  maxSchemaCost: 2000,
  unknownArguments: 'refuse',
};

const notesSchema = {
  type: 'object',
  properties: {
    path: { type: 'string', pattern: '^/' },
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    query: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' }, uniqueItems: true },
  },
  required: ['path'],
  additionalProperties: true,
};

const v = new ArgumentValidator();
function check(over: Partial<ValidateInput>): ArgumentCheck {
  return v.validate({ tool: 'read_note', schema: notesSchema, args: {}, limits, unknownArguments: 'refuse', ...over });
}
function refused(r: ArgumentCheck, argument: string, rule: string, kind = 'invalid'): void {
  assert.equal(r.ok, false, `expected a refusal for ${argument}/${rule}`);
  if (r.ok) return;
  assert.equal(r.kind, kind);
  assert.equal(r.argument, argument);
  assert.equal(r.rule, rule);
  assert.ok(r.message.includes(argument === '(arguments)' ? '' : argument), r.message);
}

// The hang guard: a test that would hang fails on this timeout instead (not a timing assertion).
const guard = { timeout: 30_000 };

test('valid arguments pass', () => {
  assert.deepEqual(check({ args: { path: '/srv/notes/a', limit: 5, tags: ['x', 'y'] } }), { ok: true });
});

test('extra properties are refused by default even when the schema allows them', () => {
  refused(check({ args: { path: '/a', extra: 1 } }), 'extra', 'unknownArguments');
  assert.deepEqual(check({ args: { path: '/a', extra: 1 }, unknownArguments: 'allow' }), { ok: true });
  // With `allow`, the schema's own additionalProperties: false still holds.
  refused(
    check({ schema: { ...notesSchema, additionalProperties: false }, args: { path: '/a', extra: 1 }, unknownArguments: 'allow' }),
    'extra',
    'additionalProperties',
  );
});

test('properties declared through allOf, $ref and patternProperties are known', () => {
  const schema = {
    type: 'object',
    allOf: [{ $ref: '#/$defs/base' }, { properties: { b: { type: 'number' } } }],
    patternProperties: { '^x-': { type: 'string' } },
    $defs: { base: { properties: { a: { type: 'string' } } } },
  };
  assert.deepEqual(check({ schema, args: { a: 's', b: 1, 'x-trace': 't' } }), { ok: true });
  refused(check({ schema, args: { a: 's', c: 1 } }), 'c', 'unknownArguments');
});

test('wrong types, out-of-range values, patterns, required, duplicates', () => {
  refused(check({ args: { path: 5 } }), 'path', 'type');
  refused(check({ args: { path: '/a', limit: 0 } }), 'limit', 'minimum');
  refused(check({ args: { path: '/a', limit: 1001 } }), 'limit', 'maximum');
  refused(check({ args: { path: '/a', limit: 1.5 } }), 'limit', 'type');
  refused(check({ args: { path: 'relative' } }), 'path', 'pattern');
  refused(check({ args: {} }), 'path', 'required');
  refused(check({ args: { path: '/a', tags: ['x', 'x'] } }), 'tags', 'uniqueItems');
  refused(check({ args: { path: '/a', tags: ['x', 3] } }), 'tags[1]', 'type');
  refused(check({ args: [1, 2] as unknown }), '(arguments)', 'type');
  refused(check({ args: 'str' as unknown }), '(arguments)', 'type');
});

test('uniqueItems compares JSON values, not key order', () => {
  const schema = { type: 'object', properties: { a: { type: 'array', uniqueItems: true } } };
  refused(check({ schema, args: { a: [{ x: 1, y: 2 }, { y: 2, x: 1 }] } }), 'a', 'uniqueItems');
  assert.deepEqual(check({ schema, args: { a: [{ x: 1 }, { x: '1' }, [1], 1, '1'] } }), { ok: true });
});

test('operator constraints apply on top of the upstream schema', () => {
  const constraints = { path: { pattern: '^/srv/notes/' }, limit: { maximum: 100 }, query: { maxLength: 5 } };
  assert.deepEqual(check({ args: { path: '/srv/notes/a', limit: 100, query: 'abc' }, constraints }), { ok: true });
  refused(check({ args: { path: '/etc/passwd' }, constraints }), 'path', 'pattern');
  refused(check({ args: { path: '/srv/notes/a', limit: 101 }, constraints }), 'limit', 'maximum');
  refused(check({ args: { path: '/srv/notes/a', query: 'abcdef' }, constraints }), 'query', 'maxLength');
  // A constraint may declare an argument the schema does not know: it is then not "unknown".
  assert.deepEqual(
    check({ schema: { type: 'object', properties: {} }, args: { mode: 'a' }, constraints: { mode: { enum: ['a', 'b'] } } }),
    { ok: true },
  );
  refused(check({ schema: { type: 'object', properties: {} }, args: { mode: 'c' }, constraints: { mode: { enum: ['a', 'b'] } } }), 'mode', 'enum');
  refused(check({ schema: { type: 'object' }, args: {}, constraints: { mode: { required: true } } }), 'mode', 'required');
});

test('two schemas with different patterns never share a compiled regex', () => {
  const fresh = new ArgumentValidator();
  const s1 = { type: 'object', properties: { p: { type: 'string', pattern: '^a$' } } };
  const s2 = { type: 'object', properties: { p: { type: 'string', pattern: '^b$' } } };
  const run = (schema: object, p: string) => fresh.validate({ tool: 't', schema, args: { p }, limits, unknownArguments: 'refuse' }).ok;
  assert.equal(run(s1, 'a'), true);
  assert.equal(run(s2, 'a'), false);
  assert.equal(run(s2, 'b'), true);
  assert.equal(run(s1, 'b'), false);
});

test('draft-07 and 2020-12 schemas are both understood', () => {
  const d7 = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: { pair: { type: 'array', items: [{ type: 'string' }, { type: 'number' }], additionalItems: false } },
    definitions: { unused: { type: 'string' } },
  };
  assert.deepEqual(check({ schema: d7, args: { pair: ['a', 1] } }), { ok: true });
  refused(check({ schema: d7, args: { pair: ['a', 1, 2] } }), 'pair', 'additionalItems');
  const d2020 = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: { pair: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], items: false } },
  };
  assert.deepEqual(check({ schema: d2020, args: { pair: ['a', 1] } }), { ok: true });
  refused(check({ schema: d2020, args: { pair: ['a', 1, 2] } }), 'pair', 'items');
  // No $schema: 2020-12 (the MCP default).
  refused(check({ schema: { type: 'object', properties: { t: { type: 'array', prefixItems: [{ type: 'string' }] } } }, args: { t: [1] } }), 't[0]', 'type');
});

test('oversized and too deeply nested arguments are refused before validation', () => {
  refused(check({ args: { path: '/a', query: 'x'.repeat(70 * 1024) } }), '(arguments)', 'maxArgumentBytes', 'too_large');
  let deep: unknown = 'x';
  for (let i = 0; i < 100_000; i++) deep = [deep];
  refused(check({ args: { path: '/a', tags: deep } }), '(arguments)', 'maxArgumentDepth', 'too_deep');
});

test('each schema is compiled once: by object identity and by content', () => {
  const fresh = new ArgumentValidator();
  const schema = { type: 'object', properties: { a: { type: 'string' } } };
  for (let i = 0; i < 5; i++) fresh.validate({ tool: 't', schema, args: { a: 'x' }, limits, unknownArguments: 'refuse' });
  assert.equal(fresh.compiledCount, 1);
  // A structurally equal schema from a refreshed catalog: same hash, no recompile.
  fresh.validate({ tool: 't', schema: structuredClone(schema), args: { a: 'x' }, limits, unknownArguments: 'refuse' });
  assert.equal(fresh.compiledCount, 1);
  fresh.validate({ tool: 't', schema: { ...schema, required: ['a'] }, args: { a: 'x' }, limits, unknownArguments: 'refuse' });
  assert.equal(fresh.compiledCount, 2);
});

test('a recursive schema over child values works (bounded by argument depth)', () => {
  const tree = { type: 'object', properties: { node: { $ref: '#/$defs/n' } }, $defs: { n: { type: 'object', properties: { v: { type: 'number' }, next: { $ref: '#/$defs/n' } }, additionalProperties: false } } };
  assert.deepEqual(check({ schema: tree, args: { node: { v: 1, next: { v: 2, next: { v: 3 } } } } }), { ok: true });
  refused(check({ schema: tree, args: { node: { v: 1, next: { v: 'x' } } } }), 'node.next.v', 'type');
});

// ---- hostile upstream schemas ----

test('hostile: catastrophic-backtracking regex runs in linear time (RE2), still enforced', guard, () => {
  const schema = { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' }, t: { type: 'string', pattern: '(x+x+)+y' } } };
  refused(check({ schema, args: { s: `${'a'.repeat(30_000)}!` } }), 's', 'pattern');
  refused(check({ schema, args: { t: 'x'.repeat(30_000) } }), 't', 'pattern');
  assert.deepEqual(check({ schema, args: { s: 'aaaa' } }), { ok: true });
});

test('hostile: regex RE2 cannot run (lookaround, backreference) makes the tool fail closed', guard, () => {
  for (const pattern of ['^(?=a)', '(a)\\1']) {
    const r = check({ schema: { type: 'object', properties: { s: { type: 'string', pattern } } }, args: { s: 'a' } });
    refused(r, '(arguments)', 'schema_invalid', 'schema_unusable');
  }
  const pp = check({ schema: { type: 'object', patternProperties: { '(?<=x)': {} } }, args: {} });
  refused(pp, '(arguments)', 'schema_invalid', 'schema_unusable');
});

test('hostile: a $ref "billion laughs" (each level doubling the work) is refused without compiling', guard, () => {
  const $defs: Record<string, unknown> = { a0: { type: 'string' } };
  for (let i = 1; i <= 60; i++) $defs[`a${i}`] = { allOf: [{ $ref: `#/$defs/a${i - 1}` }, { $ref: `#/$defs/a${i - 1}` }] };
  const schema = { type: 'object', properties: { x: { $ref: '#/$defs/a60' } }, $defs };
  const fresh = new ArgumentValidator();
  const r = fresh.validate({ tool: 't', schema, args: { x: 'a' }, limits, unknownArguments: 'refuse' });
  refused(r, '(arguments)', 'schema_too_costly', 'schema_unusable');
  // Just under the cost limit compiles and validates.
  const small = { type: 'object', properties: { x: { $ref: '#/$defs/a8' } }, $defs };
  const r2 = fresh.validate({ tool: 't', schema: small, args: { x: 'a' }, limits, unknownArguments: 'refuse' });
  assert.equal(r2.ok, false, 'the unused deep chain in $defs is costly on its own and refused too');
  const only = { type: 'object', properties: { x: { $ref: '#/$defs/a8' } }, $defs: Object.fromEntries(Object.entries($defs).slice(0, 9)) };
  assert.deepEqual(fresh.validate({ tool: 't', schema: only, args: { x: 'a' }, limits, unknownArguments: 'refuse' }), { ok: true });
});

test('hostile: subschemas applying to the same value in a cycle are refused (no infinite loop)', guard, () => {
  for (const schema of [
    { allOf: [{ $ref: '#' }] },
    { type: 'object', $defs: { a: { anyOf: [{ $ref: '#/$defs/b' }] }, b: { not: { $ref: '#/$defs/a' } } }, properties: { x: { $ref: '#/$defs/a' } } },
  ]) {
    refused(check({ schema, args: { x: 1 }, unknownArguments: 'allow' }), '(arguments)', 'schema_recursive', 'schema_unusable');
  }
});

test('hostile: huge, deeply nested, remote and dangling schemas are refused', guard, () => {
  const huge = { type: 'object', properties: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`p${i}`, { type: 'string', description: 'x'.repeat(10) }])) };
  refused(check({ schema: huge, args: {} }), '(arguments)', 'schema_too_large', 'schema_unusable');
  let deep: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < 50_000; i++) deep = { type: 'object', properties: { a: deep } };
  refused(check({ schema: deep, args: {} }), '(arguments)', 'schema_too_deep', 'schema_unusable');
  refused(check({ schema: { $ref: 'https://evil.example/s.json' }, args: {} }), '(arguments)', 'schema_unsupported', 'schema_unusable');
  refused(check({ schema: { $ref: '#/$defs/missing' }, args: {} }), '(arguments)', 'schema_unsupported', 'schema_unusable');
  refused(check({ schema: { $dynamicRef: '#meta' }, args: {} }), '(arguments)', 'schema_unsupported', 'schema_unusable');
  // A nested $id moves the base URI ajv resolves `#/...` against; the guard follows refs from the root only.
  const nestedId = { type: 'object', $defs: { y: { type: 'string' } }, properties: { x: { $id: 'https://evil.example/x', $ref: '#/$defs/y', $defs: { y: { type: 'integer' } } } } };
  refused(check({ schema: nestedId, args: { x: 's' } }), '(arguments)', 'schema_unsupported', 'schema_unusable');
  refused(check({ schema: 'not a schema', args: {} }), '(arguments)', 'schema_invalid', 'schema_unusable');
  refused(check({ schema: { type: 'no-such-type' }, args: {} }), '(arguments)', 'schema_invalid', 'schema_unusable');
});

test('hostile: a huge enum counts toward the cost', guard, () => {
  const schema = { type: 'object', properties: { e: { enum: Array.from({ length: 5000 }, (_, i) => ({ k: i })) } } };
  refused(check({ schema, args: { e: { k: 1 } } }), '(arguments)', 'schema_too_costly', 'schema_unusable');
});

test('hostile: uniqueItems over many distinct objects stays linear', guard, () => {
  const schema = { type: 'object', properties: { a: { type: 'array', uniqueItems: true } } };
  const a = Array.from({ length: 8000 }, (_, i) => [i]);
  assert.deepEqual(check({ schema, args: { a } }), { ok: true });
});

test('a property named $ref or allOf is a name, not a keyword', () => {
  const schema = { type: 'object', properties: { $ref: { type: 'string' }, allOf: { type: 'number' } } };
  assert.deepEqual(check({ schema, args: { $ref: 'x', allOf: 1 } }), { ok: true });
  refused(check({ schema, args: { $ref: 1 } }), '$ref', 'type');
});

test('a missing inputSchema means no arguments are accepted', () => {
  assert.deepEqual(check({ schema: undefined, args: {} }), { ok: true });
  refused(check({ schema: undefined, args: { a: 1 } }), 'a', 'unknownArguments');
});
