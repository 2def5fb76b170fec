import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBastionError } from '../../src/errors.js';
import { loadCedar, toCedarValue } from '../../src/policy/cedar.js';
import { loadPolicy } from '../../src/policy/load.js';
import { config, NOW, principal } from './helpers.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'bastion-cedar-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICIES = `
// Everyone may use the notes mount...
permit(principal, action, resource in Mount::"notes");
// ...but only editors may write,
forbid(principal, action == Action::"tools/call", resource == Tool::"notes/write_note")
  unless { principal in Role::"editor" };
// nobody deletes outside the office network,
forbid(principal, action == Action::"tools/call", resource == Tool::"notes/delete_note")
  unless { context has sourceIp && context.sourceIp.isInRange(ip("10.0.0.0/8")) };
// no reading /etc, whatever the tool,
forbid(principal, action == Action::"tools/call", resource)
  when { context has arguments && context.arguments has path && context.arguments.path like "/etc/*" };
// and old tokens cannot touch secrets.
forbid(principal, action, resource == Resource::"notes/secret://x")
  when { !(context has tokenAgeSeconds) || context.tokenAgeSeconds > 60 };
`;

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const ctx = { clientIp: '10.1.1.1', now: NOW };

test('Cedar permits and forbids as written, in addition to the YAML rules', async () => {
  const file = write('ok.cedar', POLICIES);
  const policy = await loadPolicy(
    config({ notes: { defaultTool: 'allow', defaultResource: 'allow', tools: { admin: { allow: { roles: ['admin'] } } } } }, { policy: { cedar: file } }),
  );
  const m = policy.forMount('notes');
  const alice = principal();
  const editor = principal({ roles: ['editor'] });
  assert.equal(m.decide(alice, 'tools/call', 'read_note', ctx).outcome, 'allow');
  const w = m.decide(alice, 'tools/call', 'write_note', ctx);
  assert.equal(w.outcome, 'hide');
  assert.equal(w.reason, 'cedar_denied');
  assert.match(w.policy, /^cedar:policy1$/);
  assert.equal(m.decide(editor, 'tools/call', 'write_note', ctx).outcome, 'allow');
  assert.equal(m.decide(alice, 'tools/call', 'delete_note', ctx).outcome, 'allow');
  assert.equal(m.decide(alice, 'tools/call', 'delete_note', { ...ctx, clientIp: '192.168.0.1' }).outcome, 'hide');
  assert.equal(m.decide(alice, 'tools/call', 'delete_note', { ...ctx, clientIp: '::ffff:10.2.2.2' }).outcome, 'hide', 'Cedar sees the address as given');
  // Arguments reach Cedar on calls; a list decision (no arguments) is not affected.
  assert.equal(m.decide(alice, 'tools/call', 'read_note', { ...ctx, arguments: { path: '/etc/passwd' } }).outcome, 'hide');
  assert.equal(m.decide(alice, 'tools/call', 'read_note', { ...ctx, arguments: { path: '/srv/notes/a' } }).outcome, 'allow');
  // YAML still applies: the YAML allow list refuses, whatever Cedar says.
  assert.equal(m.decide(alice, 'tools/call', 'admin', ctx).reason, 'not_in_allow_list');
  // Token age in context.
  assert.equal(m.decide(alice, 'resources/read', 'secret://x', ctx).outcome, 'allow');
  assert.equal(m.decide(principal({ issuedAt: NOW / 1000 - 120 }), 'resources/read', 'secret://x', ctx).outcome, 'hide');
  // No permit for another mount: Cedar's default deny.
  const other = policy.forMount('other');
  assert.equal(other.decide(alice, 'tools/call', 'x', ctx).outcome, 'hide');
});

test('Cedar: no permit at all means deny (both engines must allow)', async () => {
  const file = write('forbid-only.cedar', 'forbid(principal, action, resource) when { false };');
  const policy = await loadPolicy(config({ m: { defaultTool: 'allow' } }, { policy: { cedar: file } }));
  const d = policy.forMount('m').decide(principal(), 'tools/call', 't', ctx);
  assert.equal(d.outcome, 'hide');
  assert.equal(d.policy, 'cedar:no-permit');
});

test('Cedar: arguments cannot smuggle entity references', async () => {
  assert.deepEqual(toCedarValue({ a: { __entity: { type: 'User', id: 'admin' } }, __extn: 1, n: 1.5, z: null, ok: [1, 'x', true] }), {
    a: {},
    n: '1.5',
    ok: [1, 'x', true],
  });
  const file = write('smuggle.cedar', `
permit(principal, action, resource);
forbid(principal, action, resource) when { context has arguments && context.arguments has who && context.arguments.who == User::"admin" };
`);
  const policy = await loadPolicy(config({ m: { defaultTool: 'allow' } }, { policy: { cedar: file } }));
  const d = policy.forMount('m').decide(principal(), 'tools/call', 't', { ...ctx, arguments: { who: { __entity: { type: 'User', id: 'admin' } } } });
  // The __entity key is dropped: `who` is an empty record, not the admin entity.
  assert.equal(d.outcome, 'allow');
});

test('Cedar: a policy that errors at evaluation denies (fail closed), even a forbid', async () => {
  const file = write('erroring.cedar', `
permit(principal, action, resource);
forbid(principal, action, resource) when { context.arguments.path == "x" };
`);
  const policy = await loadPolicy(config({ m: { defaultTool: 'allow' } }, { policy: { cedar: file } }));
  const d = policy.forMount('m').decide(principal(), 'tools/call', 't', ctx);
  assert.equal(d.outcome, 'hide');
  assert.equal(d.reason, 'cedar_error');
});

test('a bad Cedar policy fails start-up with the Cedar error', async () => {
  const file = write('bad.cedar', 'permit(principal ==, action, resource);');
  await assert.rejects(loadPolicy(config({ m: {} }, { policy: { cedar: file } })), (err) => {
    assert.ok(isBastionError(err));
    assert.equal(err.code, 'ERR_BASTION_CONFIG_INVALID');
    assert.match(err.message, /Invalid Cedar policy in .*bad\.cedar.*unexpected token/);
    return true;
  });
  await assert.rejects(loadCedar(join(dir, 'missing.cedar')), /Cannot read the Cedar policy file/);
});

test('Cedar is loaded only when policy.cedar is configured', async () => {
  // Fresh processes: the test runner process has loaded it already.
  const { execFileSync } = await import('node:child_process');
  const probe = (cfg: string): string =>
    execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('./src/policy/load.ts').then(async (m) => {
          await m.loadPolicy(${cfg});
          const { createRequire } = await import('node:module');
          const loaded = Object.keys(createRequire(import.meta.url).cache ?? {}).some((k) => k.includes('cedar-wasm'));
          process.stdout.write(String(loaded));
        })`,
      ],
      { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' },
    ).trim();
  assert.equal(probe('{ servers: {} }'), 'false');
  const file = write('probe.cedar', 'permit(principal, action, resource);');
  assert.equal(probe(`{ servers: {}, policy: { cedar: ${JSON.stringify(file)} } }`), 'true', 'the probe detects a loaded Cedar');
});
