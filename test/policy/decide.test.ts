import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy } from '../../src/policy/compile.js';
import type { DecisionContext } from '../../src/policy/types.js';
import { config, NOW, principal } from './helpers.js';

const ctx: DecisionContext = { clientIp: '10.1.2.3', now: NOW };

// The contract YAML of the issue, verbatim in structure.
const notes = {
  auth: { scopes: ['notes:read'] },
  tools: {
    read_note: { scopes: ['notes:read'] },
    write_note: { scopes: ['notes:write'], allow: { roles: ['editor'] }, rateLimit: '10/minute' },
    delete_note: {
      scopes: ['notes:admin'],
      allow: { subjects: ['alice'] },
      require: { authMethod: ['mtls+bearer', 'dpop'], maxTokenAgeSeconds: 300, sourceCidrs: ['10.0.0.0/8'] },
    },
  },
  defaultTool: 'deny',
};

test('the contract YAML validates and compiles', () => {
  const c = config({ notes });
  const t = c.servers.notes!.tools!;
  assert.deepEqual(t.write_note!.scopes, ['notes:write']);
  assert.equal(c.servers.notes!.defaultTool, 'deny');
  const p = compilePolicy(c).forMount('notes');
  assert.deepEqual(p.tool('write_note').rate?.spec, { ratePerSecond: 10 / 60, burst: 10, text: '10/minute' });
});

test('defaultTool is deny when not set, and a mount with no rules hides everything', () => {
  const p = compilePolicy(config({ m: {} })).forMount('m');
  const d = p.decide(principal({ scopes: ['x'] }), 'tools/call', 'anything', ctx);
  assert.equal(d.outcome, 'hide');
  assert.equal(d.reason, 'default_deny');
  assert.equal(d.policy, 'servers.m.defaultTool');
  assert.equal(p.decide(principal(), 'prompts/get', 'p', ctx).outcome, 'hide');
  assert.equal(p.decide(principal(), 'resources/read', 'file:///x', ctx).outcome, 'hide');
});

type Row = {
  name: string;
  tool: string;
  p: Parameters<typeof principal>[0];
  ctx?: Partial<DecisionContext>;
  want: 'allow' | 'step-up' | 'hide';
  reason: string;
  policy?: string;
};

const rows: Row[] = [
  { name: 'scope present', tool: 'read_note', p: { scopes: ['notes:read'] }, want: 'allow', reason: 'allowed', policy: 'servers.notes.tools.read_note' },
  { name: 'scope missing only: step-up', tool: 'read_note', p: { scopes: [] }, want: 'step-up', reason: 'scope_missing', policy: 'servers.notes.tools.read_note.scopes' },
  { name: 'role ok, scope ok', tool: 'write_note', p: { scopes: ['notes:write'], roles: ['editor'] }, want: 'allow', reason: 'allowed' },
  { name: 'role ok, scope missing', tool: 'write_note', p: { scopes: ['notes:read'], roles: ['editor'] }, want: 'step-up', reason: 'scope_missing' },
  { name: 'role missing, scope ok: hidden', tool: 'write_note', p: { scopes: ['notes:write'], roles: ['viewer'] }, want: 'hide', reason: 'not_in_allow_list', policy: 'servers.notes.tools.write_note.allow' },
  { name: 'role missing AND scope missing: hidden (not step-up)', tool: 'write_note', p: { scopes: [] }, want: 'hide', reason: 'not_in_allow_list' },
  { name: 'group does not stand in for a role', tool: 'write_note', p: { scopes: ['notes:write'], groups: ['editor'] }, want: 'hide', reason: 'not_in_allow_list' },
  { name: 'unlisted tool: defaultTool deny', tool: 'other', p: { scopes: ['notes:admin', 'notes:read'] }, want: 'hide', reason: 'default_deny', policy: 'servers.notes.defaultTool' },
  {
    name: 'all context rules met',
    tool: 'delete_note',
    p: { scopes: ['notes:admin'], authMethod: 'dpop' },
    want: 'allow',
    reason: 'allowed',
  },
  { name: 'other subject', tool: 'delete_note', p: { subject: 'bob', scopes: ['notes:admin'], authMethod: 'dpop' }, want: 'hide', reason: 'not_in_allow_list' },
  { name: 'wrong auth method', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'bearer' }, want: 'hide', reason: 'auth_method_not_allowed', policy: 'servers.notes.tools.delete_note.require.authMethod' },
  { name: 'token too old', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop', issuedAt: NOW / 1000 - 301 }, want: 'hide', reason: 'token_too_old' },
  { name: 'token exactly at max age', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop', issuedAt: NOW / 1000 - 300 }, want: 'allow', reason: 'allowed' },
  { name: 'token without iat', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop', issuedAt: undefined }, want: 'hide', reason: 'token_age_unknown' },
  { name: 'IP outside the CIDR', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop' }, ctx: { clientIp: '192.168.1.1' }, want: 'hide', reason: 'source_ip_not_allowed' },
  { name: 'IPv4-mapped IPv6 inside the CIDR', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop' }, ctx: { clientIp: '::ffff:10.9.9.9' }, want: 'allow', reason: 'allowed' },
  { name: 'no IP known', tool: 'delete_note', p: { scopes: ['notes:admin'], authMethod: 'dpop' }, ctx: { clientIp: undefined }, want: 'hide', reason: 'source_ip_not_allowed' },
  { name: 'context rule fails and scope missing: hidden', tool: 'delete_note', p: { scopes: [], authMethod: 'bearer' }, want: 'hide', reason: 'auth_method_not_allowed' },
];

test('decide: table of scopes, roles, subjects, context rules and defaultTool', () => {
  const p = compilePolicy(config({ notes })).forMount('notes');
  for (const r of rows) {
    const d = p.decide(principal(r.p), 'tools/call', r.tool, { ...ctx, ...r.ctx });
    assert.equal(d.outcome, r.want, `${r.name}: outcome`);
    assert.equal(d.reason, r.reason, `${r.name}: reason`);
    if (r.policy) assert.equal(d.policy, r.policy, `${r.name}: policy`);
  }
});

test('step-up decision lists required and missing scopes', () => {
  const p = compilePolicy(config({ notes })).forMount('notes');
  const d = p.decide(principal({ scopes: ['notes:read'], roles: ['editor'] }), 'tools/call', 'write_note', ctx);
  assert.deepEqual(d.requiredScopes, ['notes:write']);
  assert.deepEqual(d.missingScopes, ['notes:write']);
});

test('stepUp: hide turns a scope-only refusal into a hidden one', () => {
  const p = compilePolicy(config({ notes: { ...notes, stepUp: 'hide' } })).forMount('notes');
  const d = p.decide(principal({ scopes: [] }), 'tools/call', 'read_note', ctx);
  assert.equal(d.outcome, 'hide');
  assert.equal(d.reason, 'scope_missing');
});

test('deny wins over allow, for every kind of identity', () => {
  const cert = { subject: 'CN=agent,O=Example', uris: ['spiffe://example.org/agent'], dnsNames: ['agent.example'], thumbprint: 'T1', serialNumber: '1', issuer: 'CN=CA' };
  const kinds: [string, Record<string, string[]>, Parameters<typeof principal>[0]][] = [
    ['subject', { subjects: ['alice'] }, {}],
    ['client', { clients: ['client-1'] }, {}],
    ['role', { roles: ['r'] }, { roles: ['r'] }],
    ['group', { groups: ['g'] }, { groups: ['g'] }],
    ['certificate subject', { certificates: ['CN=agent,O=Example'] }, { certificate: cert }],
    ['certificate SAN URI', { certificates: ['spiffe://example.org/agent'] }, { certificate: cert }],
    ['certificate DNS', { certificates: ['agent.example'] }, { certificate: cert }],
    ['certificate thumbprint', { certificates: ['T1'] }, { certificate: cert }],
  ];
  for (const [kind, match, p] of kinds) {
    const allowOnly = compilePolicy(config({ m: { tools: { t: { allow: match } } } })).forMount('m');
    assert.equal(allowOnly.decide(principal(p), 'tools/call', 't', ctx).outcome, 'allow', `${kind}: allow list admits`);
    const other = compilePolicy(config({ m: { tools: { t: { allow: match } } } })).forMount('m');
    assert.equal(
      other.decide(principal({ subject: 'zed', clientId: 'other' }), 'tools/call', 't', ctx).outcome,
      'hide',
      `${kind}: allow list refuses others`,
    );
    const both = compilePolicy(config({ m: { tools: { t: { allow: match, deny: match } } } })).forMount('m');
    const d = both.decide(principal(p), 'tools/call', 't', ctx);
    assert.equal(d.outcome, 'hide', `${kind}: deny wins`);
    assert.equal(d.reason, 'denied_by_rule');
  }
});

test('defaultTool: allow lets unlisted tools through, listed rules still apply', () => {
  const p = compilePolicy(config({ m: { defaultTool: 'allow', tools: { secret: { deny: { subjects: ['alice'] } } } } })).forMount('m');
  assert.equal(p.decide(principal(), 'tools/call', 'anything', ctx).outcome, 'allow');
  assert.equal(p.decide(principal(), 'tools/call', 'secret', ctx).outcome, 'hide');
  assert.equal(p.decide(principal({ subject: 'bob' }), 'tools/call', 'secret', ctx).outcome, 'allow');
});

test('tool names that are Object prototype keys are plain names', () => {
  const p = compilePolicy(config({ m: {} })).forMount('m');
  for (const n of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    assert.equal(p.decide(principal(), 'tools/call', n, ctx).outcome, 'hide', n);
  }
});

test('resources: exact URIs and prefix patterns, every matching rule must pass', () => {
  const p = compilePolicy(
    config({
      m: {
        resources: {
          'file:///srv/notes/*': { scopes: ['notes:read'] },
          'file:///srv/notes/private/*': { allow: { roles: ['owner'] } },
          'file:///srv/readme.md': {},
        },
      },
    }),
  ).forMount('m');
  const reader = principal({ scopes: ['notes:read'] });
  assert.equal(p.decide(reader, 'resources/read', 'file:///srv/notes/a.md', ctx).outcome, 'allow');
  assert.equal(p.decide(principal(), 'resources/read', 'file:///srv/notes/a.md', ctx).outcome, 'step-up');
  assert.equal(p.decide(reader, 'resources/read', 'file:///srv/notes/private/x', ctx).outcome, 'hide');
  assert.equal(p.decide(principal({ scopes: ['notes:read'], roles: ['owner'] }), 'resources/read', 'file:///srv/notes/private/x', ctx).outcome, 'allow');
  assert.equal(p.decide(principal(), 'resources/read', 'file:///srv/readme.md', ctx).outcome, 'allow');
  assert.equal(p.decide(principal(), 'resources/read', 'file:///srv/readme.md.bak', ctx).outcome, 'hide');
  assert.equal(p.decide(principal(), 'resources/read', 'file:///etc/passwd', ctx).reason, 'default_deny');
  // A template is decided on its literal text: listed when its prefix is allowed.
  assert.equal(p.decide(reader, 'resources/read', 'file:///srv/notes/{name}', ctx).outcome, 'allow');
});

test('prompts: by name, with defaultPrompt', () => {
  const p = compilePolicy(config({ m: { prompts: { summarize: { scopes: ['p'] } } } })).forMount('m');
  assert.equal(p.decide(principal({ scopes: ['p'] }), 'prompts/get', 'summarize', ctx).outcome, 'allow');
  assert.equal(p.decide(principal(), 'prompts/get', 'summarize', ctx).outcome, 'step-up');
  assert.equal(p.decide(principal({ scopes: ['p'] }), 'prompts/get', 'other', ctx).policy, 'servers.m.defaultPrompt');
});

test('an unknown mount denies everything', () => {
  const p = compilePolicy(config({ m: { defaultTool: 'allow' } })).forMount('nope');
  assert.equal(p.decide(principal(), 'tools/call', 'x', ctx).outcome, 'hide');
});

test('decisions are pure: same input, same output', () => {
  const p = compilePolicy(config({ notes })).forMount('notes');
  const a = p.decide(principal({ scopes: ['notes:admin'], authMethod: 'dpop' }), 'tools/call', 'delete_note', ctx);
  const b = p.decide(principal({ scopes: ['notes:admin'], authMethod: 'dpop' }), 'tools/call', 'delete_note', ctx);
  assert.deepEqual(a, b);
});

test('config refuses bad rates, CIDRs, scopes, auth methods and non-RE2 patterns', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['rate', { tools: { t: { rateLimit: '10/fortnight' } } }],
    ['cidr', { tools: { t: { require: { sourceCidrs: ['10.0.0.0/33'] } } } }],
    ['cidr6', { tools: { t: { require: { sourceCidrs: ['fd00::/129'] } } } }],
    ['scope', { tools: { t: { scopes: ['a b'] } } }],
    ['scope quote', { tools: { t: { scopes: ['a"b'] } } }],
    ['method', { tools: { t: { require: { authMethod: ['password'] } } } }],
    ['pattern', { tools: { t: { args: { p: { pattern: '(?=x)' } } } } }],
    ['unknown key', { tools: { t: { allow: { users: ['a'] } } } }],
    ['defaultTool', { defaultTool: 'maybe' }],
  ];
  for (const [name, server] of bad) assert.throws(() => config({ m: server }), /Invalid configuration/, name);
});

test('the scopes a mount names are listed (for scopes_supported)', () => {
  const p = compilePolicy(config({ notes: { ...notes, prompts: { x: { scopes: ['p:1'] } }, resources: { 'a://*': { scopes: ['r:1'] } } } })).forMount('notes');
  assert.deepEqual(p.scopes, ['notes:admin', 'notes:read', 'notes:write', 'p:1', 'r:1']);
});

test('an anonymous caller (authentication off) cannot step up: scope-only refusals hide', () => {
  const p = compilePolicy(config({ notes })).forMount('notes');
  const d = p.decide(principal({ authMethod: 'none', subject: 'anonymous' }), 'tools/call', 'read_note', ctx);
  assert.equal(d.outcome, 'hide');
  assert.equal(d.reason, 'scope_missing');
});
