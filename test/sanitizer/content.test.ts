import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonBytesAtMost } from '../../src/sanitizer/content.js';

const exact = (v: unknown): number => Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');

test('jsonBytesAtMost is an upper bound: whenever it says "at most N", the UTF-8 JSON is at most N bytes', () => {
  let x = 12345;
  const rnd = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  // The costliest characters per UTF-16 unit: control characters and lone surrogates (6 bytes
  // escaped), quotes and backslashes (2), three-byte characters, surrogate pairs.
  const CHARS = ['a', '\u0000', '\u001f', '"', '\\', '\n', '€', '中', '\uD800', '\uDFFF', '😀', '\u2028', '\u007f'];
  const NUMBERS = [0, -0, 1, -0.0000012345678901234567, 1.2345678901234566e-7, -1.7976931348623157e308, Number.MIN_VALUE, 1.2345678901234568e20, -9.876543210987654e-7, NaN, Infinity, -Infinity];
  const str = (): string => {
    let s = '';
    const n = rnd(40);
    const only = rnd(3) === 0 ? CHARS[rnd(CHARS.length)] : undefined; // runs of one costly character
    for (let i = 0; i < n; i++) s += only ?? CHARS[rnd(CHARS.length)];
    return s;
  };
  const value = (depth: number): unknown => {
    switch (rnd(depth > 4 ? 5 : 7)) {
      case 0: return str();
      case 1: return NUMBERS[rnd(NUMBERS.length)];
      case 2: return rnd(2) === 0;
      case 3: return null;
      case 4: return undefined;
      case 5: return Array.from({ length: rnd(5) }, () => value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = rnd(5); i > 0; i--) o[str()] = value(depth + 1);
        return o;
      }
    }
  };
  let saidYes = 0;
  for (let k = 0; k < 20_000; k++) {
    const v = rnd(2) === 0 ? { content: [{ type: 'text', text: str() }], structuredContent: value(0) } : value(0);
    const size = exact(v);
    for (const budget of [size - 1, size, size * 2, size * 6 + 64, rnd(500)]) {
      if (jsonBytesAtMost(v, budget)) {
        saidYes++;
        assert.ok(size <= budget, `bound too low: ${size} > ${budget} for ${JSON.stringify(v)}`);
      }
    }
  }
  assert.ok(saidYes > 10_000, 'the bound settles the common case');
});

test('jsonBytesAtMost settles a small tool result, and leaves what it cannot bound to the exact measure', () => {
  assert.equal(jsonBytesAtMost({ content: [{ type: 'text', text: 'hello from the mcp-bastion bench' }] }, 1024), true);
  assert.equal(jsonBytesAtMost({ text: 'x'.repeat(200) }, 1024), false, 'over the bound (6 bytes a unit): measure');
  assert.equal(jsonBytesAtMost({ a: 1 }, -1), false);
  assert.equal(jsonBytesAtMost({ when: new Date(0) }, 1 << 20), false, 'toJSON may return anything');
  assert.equal(jsonBytesAtMost({ n: 1n }, 1 << 20), false, 'bigint: JSON.stringify throws, as before');
  let deep: unknown = 'x';
  for (let i = 0; i < 70; i++) deep = [deep];
  assert.equal(jsonBytesAtMost(deep, 1 << 20), false, 'very deep values are measured exactly');
});
