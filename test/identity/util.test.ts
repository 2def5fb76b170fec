import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerCredential, safeEqual } from '../../src/identity/util.js';

test('bearerCredential: only `Bearer <one token>` yields a token (scheme case-insensitive); any other scheme or shape yields none', () => {
  assert.equal(bearerCredential('Bearer abc.def-1'), 'abc.def-1');
  assert.equal(bearerCredential('bearer abc'), 'abc');
  assert.equal(bearerCredential('BEARER   abc  '), 'abc');
  for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Bearerabc', 'Basic abc', 'DPoP abc', 'Token abc', 'Bearer a b', ' Bearer abc', 'Bearer\tabc']) {
    assert.equal(bearerCredential(h), undefined, JSON.stringify(h));
  }
});

test('safeEqual compares whole strings, whatever their lengths', () => {
  assert.equal(safeEqual('secret', 'secret'), true);
  assert.equal(safeEqual('secret', 'secreT'), false);
  assert.equal(safeEqual('secret', 'secret-longer'), false);
  assert.equal(safeEqual('', ''), true);
});

test('RotatingSecret: a file secret is read again when the file changes (not more than once per checkEveryMs); a missing or empty file gives none (fail closed); env is read once', async () => {
  const { RotatingSecret } = await import('../../src/identity/util.js');
  const { mkdtempSync, writeFileSync, renameSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'bastion-rotating-'));
  try {
    writeFileSync(join(dir, 's'), 'first-secret\n');
    let t = 0;
    const changes: string[] = [];
    const s = new RotatingSecret({ file: 's' }, dir, {}, { checkEveryMs: 1000, now: () => t, onChange: (e) => void changes.push(e) });
    assert.equal(s.current(), 'first-secret');
    writeFileSync(join(dir, 's.new'), 'second-secret\n');
    renameSync(join(dir, 's.new'), join(dir, 's'));
    t = 500;
    assert.equal(s.current(), 'first-secret', 'not looked at again within checkEveryMs');
    t = 1500;
    assert.equal(s.current(), 'second-secret');
    rmSync(join(dir, 's'));
    t = 3000;
    assert.equal(s.current(), undefined, 'file gone: no secret, every request refused');
    writeFileSync(join(dir, 's'), '\n');
    t = 4500;
    assert.equal(s.current(), undefined, 'empty file: no secret');
    writeFileSync(join(dir, 's'), 'third-secret');
    t = 6000;
    assert.equal(s.current(), 'third-secret');
    assert.deepEqual(changes, ['rotated', 'unreadable', 'rotated']);
    assert.throws(() => new RotatingSecret({ file: 'missing' }, dir, {}), /cannot read secret file/, 'a missing file at start stops start-up');
    const e = new RotatingSecret({ env: 'TOKEN_X' }, dir, { TOKEN_X: 'from-env' }, { checkEveryMs: 0 });
    assert.equal(e.current(), 'from-env');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
