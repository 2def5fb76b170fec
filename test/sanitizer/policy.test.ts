import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePolicy } from '../../src/sanitizer/policy.js';
import { configSchema } from '../../src/config/schema.js';
import { DEFAULT_POLICY } from '../../src/sanitizer/types.js';

test('global, then server, then tool overrides; each names only what it changes', () => {
  const cfg = configSchema.parse({
    sanitize: { secrets: 'block' },
    servers: { a: { stdio: { command: 'x' }, sanitize: { injection: 'block', tools: { echo: { injection: 'off', maxOutputBytes: 2048 } } } } },
  });
  const server = cfg.servers.a!.sanitize;
  assert.deepEqual(resolvePolicy(undefined, undefined), DEFAULT_POLICY);
  assert.equal(resolvePolicy(cfg.sanitize, undefined).secrets, 'block');
  const s = resolvePolicy(cfg.sanitize, server, 'other');
  assert.equal(s.injection, 'block');
  assert.equal(s.secrets, 'block');
  const t = resolvePolicy(cfg.sanitize, server, 'echo');
  assert.equal(t.injection, 'off');
  assert.equal(t.maxOutputBytes, 2048);
  assert.equal(t.secrets, 'block');
  assert.equal(resolvePolicy(cfg.sanitize, server, '__proto__').injection, 'block');
});

test('config refuses unknown values', () => {
  assert.throws(() => configSchema.parse({ sanitize: { injection: 'maybe' }, servers: {} }));
  assert.throws(() => configSchema.parse({ servers: { a: { stdio: { command: 'x' }, sanitize: { tools: { t: { bogus: 1 } } } } } }));
});
