/**
 * The rooms of docs/architecture.md, checked on the source (the same rules as the lint config,
 * kept here so a lint change cannot silently drop them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const SRC = new URL('../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
}

const DOMAIN = ['identity', 'policy', 'integrity', 'sanitizer'];

test('domain rooms import only errors, config, types and themselves; never HTTP or the logger', () => {
  const bad: string[] = [];
  for (const room of DOMAIN) {
    for (const f of files(join(SRC, room))) {
      for (const i of imports(f)) {
        const where = relative(SRC, f);
        if (/^(node:)?https?$/.test(i) || i === 'pino' || i.endsWith('/logger.js')) bad.push(`${where} imports ${i}`);
        if (!i.startsWith('.')) continue;
        const target = relative(SRC, join(f, '..', i));
        const top = target.split('/')[0]!;
        const ok = top === room || target === 'errors.js' || top === 'config' || target.endsWith('/types.js');
        if (!ok) bad.push(`${where} imports ${target}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

test('nothing imports cli/', () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    if (relative(SRC, f).startsWith('cli/')) continue;
    for (const i of imports(f)) if (i.includes('/cli/') || i.startsWith('./cli')) bad.push(`${relative(SRC, f)} imports ${i}`);
  }
  assert.deepEqual(bad, []);
});

test('the embedded authorization server is loaded lazily, only by the dev commands', () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const where = relative(SRC, f);
    if (where.startsWith('authserver/') || where.startsWith('cli/')) continue;
    const text = readFileSync(f, 'utf8');
    if (/from\s+['"][^'"]*authserver\//.test(text) || /oidc-provider/.test(text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, ''))) bad.push(where);
  }
  assert.deepEqual(bad, []);
  for (const f of files(join(SRC, 'cli'))) {
    const text = readFileSync(f, 'utf8');
    assert.doesNotMatch(text, /^import[^(]*from\s+['"]\.\.\/authserver\//m, `${relative(SRC, f)} must import the authorization server with a dynamic import()`);
  }
});
