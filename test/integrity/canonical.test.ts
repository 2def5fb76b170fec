import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize, definitionHash, identityOf, CanonicalizationError, MAX_DEPTH } from '../../src/integrity/canonical.js';

test('RFC 8785 section 3.2.2 example: numbers, string escaping, literals', () => {
  const input = JSON.parse(
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
  ) as unknown;
  assert.equal(canonicalize(input), '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
});

test('RFC 8785 section 3.2.3 example: keys sorted by UTF-16 code units', () => {
  const input = JSON.parse(
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
  ) as Record<string, string>;
  const text = canonicalize(input);
  const values = [...text.matchAll(/":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(values, ['Carriage Return', 'One', 'Control', 'Latin Small Letter O With Diaeresis', 'Euro Sign', 'Emoji: Grinning Face', 'Hebrew Letter Dalet With Dagesh']);
});

test('RFC 8785 appendix B number serialization samples', () => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [-0, '0'],
    [9007199254740992, '9007199254740992'],
    [295147905179352830000, '295147905179352830000'],
    [1e21, '1e+21'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [0.000001, '0.000001'],
    [1e-7, '1e-7'],
    [-1.5, '-1.5'],
  ];
  for (const [n, s] of cases) assert.equal(canonicalize(n), s, String(n));
});

test('non-finite numbers and non-JSON values are refused', () => {
  assert.throws(() => canonicalize(Number.NaN), CanonicalizationError);
  assert.throws(() => canonicalize({ a: Number.POSITIVE_INFINITY }), CanonicalizationError);
  assert.throws(() => canonicalize(10n), CanonicalizationError);
});

test('hostile nesting depth is refused, not a stack overflow', () => {
  let v: unknown = 'x';
  for (let i = 0; i < MAX_DEPTH + 5; i++) v = [v];
  assert.throws(() => canonicalize(v), CanonicalizationError);
});

test('undefined members are omitted like JSON; no whitespace', () => {
  assert.equal(canonicalize({ b: 1, a: undefined, c: [1, undefined] }), '{"b":1,"c":[1,null]}');
});

const tool = {
  name: 'read_file',
  description: 'Read a file',
  inputSchema: { type: 'object', properties: { path: { type: 'string', description: 'Absolute path' } }, required: ['path'] },
  annotations: { readOnlyHint: true },
};

test('definition hash: key order is not a change', () => {
  const reordered = {
    annotations: { readOnlyHint: true },
    inputSchema: { required: ['path'], properties: { path: { description: 'Absolute path', type: 'string' } }, type: 'object' },
    description: 'Read a file',
    name: 'read_file',
  };
  assert.equal(definitionHash('tool', tool), definitionHash('tool', reordered));
  assert.match(definitionHash('tool', tool), /^sha256:[0-9a-f]{64}$/);
});

test('definition hash: every meaningful change is a change; a rename is a new identity', () => {
  const h = definitionHash('tool', tool);
  assert.notEqual(h, definitionHash('tool', { ...tool, description: 'Read a file.' }));
  assert.notEqual(h, definitionHash('tool', { ...tool, name: 'read_file2' }));
  assert.notEqual(h, definitionHash('tool', { ...tool, title: 'Read' }));
  assert.notEqual(h, definitionHash('tool', { ...tool, annotations: { readOnlyHint: false } }));
  assert.notEqual(h, definitionHash('tool', { ...tool, outputSchema: { type: 'object' } }));
  assert.notEqual(h, definitionHash('tool', { ...tool, inputSchema: { ...tool.inputSchema, required: [] } }));
  // Array order is meaningful (enum order, required order as sent).
  assert.notEqual(definitionHash('tool', { name: 'x', inputSchema: { enum: ['a', 'b'] } }), definitionHash('tool', { name: 'x', inputSchema: { enum: ['b', 'a'] } }));
});

test('definition hash: fields outside the identity (_meta, icons) do not count; kind does', () => {
  assert.equal(definitionHash('tool', tool), definitionHash('tool', { ...tool, _meta: { x: 1 }, icons: [] }));
  assert.notEqual(definitionHash('tool', { name: 'x', description: 'd' }), definitionHash('prompt', { name: 'x', description: 'd' }));
  assert.deepEqual(Object.keys(identityOf('prompt', { name: 'p', arguments: [], extra: 1 })), ['name', 'arguments']);
  assert.deepEqual(Object.keys(identityOf('resourceTemplate', { name: 'r', uriTemplate: 'file:///{p}', mimeType: 'text/plain' })).sort(), ['mimeType', 'name', 'uriTemplate']);
});
