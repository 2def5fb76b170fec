import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBastionError, toWire, type BastionError } from '../../../src/errors.js';
import { compilePolicy } from '../../../src/policy/compile.js';
import { policyStage, POLICY_STAGE } from '../../../src/stages/authorization/policy.js';
import type { JsonRpcMessage, JsonRpcResponse } from '../../../src/pipeline/messages.js';
import type { Principal } from '../../../src/identity/types.js';
import { config, NOW, principal } from '../../policy/helpers.js';
import { call, fakeSession, messageCtx, RecordingAudit, requestCtx, tool } from './helpers.js';

const TOOLS = ['read_note', 'write_note', 'delete_note', 'other'];

function notesServer(defaultTool: 'deny' | 'allow', stepUp: 'challenge' | 'hide') {
  return {
    tools: {
      read_note: { scopes: ['notes:read'] },
      write_note: { scopes: ['notes:write'], allow: { roles: ['editor'] } },
      delete_note: { scopes: ['notes:admin'], allow: { subjects: ['alice'] }, require: { authMethod: ['dpop'] } },
    },
    defaultTool,
    stepUp,
  };
}

function setup(server: Record<string, unknown>) {
  const cfg = config({ notes: server });
  const audit = new RecordingAudit();
  const stage = policyStage({ policy: compilePolicy(cfg), audit, now: () => NOW });
  const session = fakeSession(TOOLS.map((n) => tool(n)));
  return { cfg, audit, stage, session };
}

async function runCall(s: ReturnType<typeof setup>, p: Principal | undefined, name: string, id: number | string = 7): Promise<BastionError | undefined> {
  const ctx = requestCtx({ config: s.cfg, message: call(name, {}, id), principal: p, session: s.session });
  try {
    await s.stage.onRequest!(ctx);
    return undefined;
  } catch (err) {
    assert.ok(isBastionError(err), `expected a BastionError, got ${String(err)}`);
    return err;
  }
}

async function listed(s: ReturnType<typeof setup>, p: Principal | undefined, method = 'tools/list', field = 'tools', items?: unknown[]): Promise<string[]> {
  const req = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 1, method }, principal: p, session: s.session });
  const response: JsonRpcMessage = { jsonrpc: '2.0', id: 1, result: { [field]: items ?? TOOLS.map((n) => tool(n)), nextCursor: 'c2' } };
  const out = (await s.stage.onUpstreamMessage!(messageCtx(req, method), response)) as JsonRpcResponse;
  assert.equal(out.result!.nextCursor, 'c2', 'other result fields are kept');
  return (out.result![field] as { name?: string; uri?: string; uriTemplate?: string }[]).map((t) => t.name ?? t.uri ?? t.uriTemplate ?? '');
}

function wireOf(err: BastionError, id: number | string = 7): string {
  return JSON.stringify(toWire(err, id));
}

test('list and call agree for every combination of scopes, roles, subject, auth method, defaultTool and stepUp', async () => {
  const scopeSets = [[], ['notes:read'], ['notes:write'], ['notes:admin'], ['notes:read', 'notes:write', 'notes:admin']];
  let combos = 0;
  for (const defaultTool of ['deny', 'allow'] as const) {
    for (const stepUp of ['challenge', 'hide'] as const) {
      const s = setup(notesServer(defaultTool, stepUp));
      const nonexistent = await runCall(s, principal(), 'no_such_tool');
      assert.equal(nonexistent?.code, 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
      for (const scopes of scopeSets) {
        for (const roles of [[], ['editor']]) {
          for (const subject of ['alice', 'bob']) {
            for (const authMethod of ['bearer', 'dpop'] as const) {
              const p = principal({ scopes, roles, subject, authMethod });
              const visible = new Set(await listed(s, p));
              for (const name of TOOLS) {
                combos++;
                const err = await runCall(s, p, name);
                const label = `${defaultTool}/${stepUp} ${subject} [${scopes.join(',')}] [${roles.join(',')}] ${authMethod} ${name}`;
                if (err === undefined) {
                  assert.ok(visible.has(name), `${label}: allowed call must be listed`);
                } else if (err.code === 'ERR_BASTION_AUTH_INSUFFICIENT_SCOPE') {
                  assert.equal(stepUp, 'challenge', `${label}: step-up only when stepUp is challenge`);
                  assert.ok(visible.has(name), `${label}: step-up tool stays listed`);
                } else {
                  assert.ok(!visible.has(name), `${label}: refused tool must not be listed`);
                  // Byte-identical to a call to a tool that does not exist.
                  const missing = await runCall(s, p, `no_such_${name}`);
                  assert.equal(wireOf(err).replace(name, 'X'), wireOf(missing!).replace(`no_such_${name}`, 'X'), `${label}: hidden == nonexistent`);
                  assert.equal(err.code, 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
                }
              }
            }
          }
        }
      }
    }
  }
  assert.equal(combos, 2 * 2 * 5 * 2 * 2 * 2 * TOOLS.length);
});

test('a hidden tool and a nonexistent tool get byte-identical answers', async () => {
  const s = setup(notesServer('deny', 'challenge'));
  const bob = principal({ subject: 'bob', scopes: ['notes:admin'], authMethod: 'dpop' });
  // delete_note exists upstream but bob may not see it.
  assert.ok(!(await listed(s, bob)).includes('delete_note'));
  const hidden = await runCall(s, bob, 'delete_note', 'abc');
  // A nonexistent tool with a name of the same length.
  const missing = await runCall(s, bob, 'delete_nota', 'abc');
  const a = toWire(hidden, 'abc');
  const b = toWire(missing, 'abc');
  assert.equal(a.status, b.status);
  assert.deepEqual(a.headers, b.headers);
  assert.equal(JSON.stringify(a.body).replace('delete_note', 'NAME'), JSON.stringify(b.body).replace('delete_nota', 'NAME'));
  assert.deepEqual(a.body.error, { code: -32602, message: 'Tool delete_note not found' });
  // The audit record says which policy refused; the wire does not.
  const events = s.audit.events.filter((e) => e.type === 'tool.call.denied');
  const hiddenEvent = events.find((e) => e.tool === 'delete_note')!;
  assert.equal(hiddenEvent.policy, 'servers.notes.tools.delete_note.allow');
  assert.equal(hiddenEvent.reason, 'not_in_allow_list');
  assert.equal(hiddenEvent.outcome, 'denied');
  assert.equal(hiddenEvent.stage, POLICY_STAGE);
  assert.equal(hiddenEvent.principal && (hiddenEvent.principal as { subject: string }).subject, 'bob');
  const missingEvent = events.find((e) => e.tool === 'delete_nota')!;
  assert.equal(missingEvent.reason, 'unknown');
  assert.ok(!JSON.stringify(a).includes('allow'), 'the policy id never reaches the wire');
});

test('step-up: 403 insufficient_scope with existing plus needed scopes and the resource metadata URL', async () => {
  const s = setup(notesServer('deny', 'challenge'));
  const p = principal({ scopes: ['notes:read'], roles: ['editor'] });
  const err = await runCall(s, p, 'write_note');
  assert.equal(err?.code, 'ERR_BASTION_AUTH_INSUFFICIENT_SCOPE');
  const w = toWire(err);
  assert.equal(w.status, 403);
  const h = w.headers['WWW-Authenticate']!;
  assert.match(h, /^Bearer /);
  assert.match(h, /error="insufficient_scope"/);
  assert.match(h, /scope="notes:read notes:write"/);
  assert.match(h, /resource_metadata="https:\/\/gw\.example\/\.well-known\/oauth-protected-resource\/mcp\/notes"/);
  const ev = s.audit.last()!;
  assert.equal(ev.reason, 'insufficient_scope');
  assert.deepEqual(ev.missingScopes, ['notes:write']);
  // A DPoP caller gets the DPoP scheme.
  const d = toWire(await runCall(s, principal({ scopes: [], authMethod: 'dpop' }), 'read_note'));
  assert.match(d.headers['WWW-Authenticate']!, /DPoP [^,]*error="insufficient_scope"/);
});

test('allowed calls pass and record the decision', async () => {
  const s = setup(notesServer('deny', 'challenge'));
  const ctx = requestCtx({ config: s.cfg, message: call('read_note', {}), principal: principal({ scopes: ['notes:read'] }), session: s.session });
  await s.stage.onRequest!(ctx);
  assert.deepEqual(ctx.decisions, [{ stage: POLICY_STAGE, outcome: 'allow', reason: 'allowed', detail: { policy: 'servers.notes.tools.read_note' } }]);
  assert.equal(s.audit.events.length, 0);
});

test('auth off (no principal) is decided as anonymous', async () => {
  const s = setup({ defaultTool: 'allow', tools: { read_note: { scopes: ['notes:read'] }, write_note: { allow: { roles: ['editor'] } } } });
  assert.equal(await runCall(s, undefined, 'other'), undefined);
  assert.equal((await runCall(s, undefined, 'write_note'))?.code, 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
  // read_note needs a scope: an anonymous caller cannot step up, so it is hidden.
  assert.deepEqual(await listed(s, undefined), ['delete_note', 'other']);
  assert.equal((await runCall(s, undefined, 'read_note'))?.code, 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
});

test('context rules: auth method, token age and source CIDR through the stage', async () => {
  const s = setup({
    tools: { t: { require: { authMethod: ['mtls+bearer'], maxTokenAgeSeconds: 60, sourceCidrs: ['10.0.0.0/8', 'fd00::/8'] } } },
  });
  s.session = fakeSession([tool('t')]);
  const ok = principal({ authMethod: 'mtls+bearer', issuedAt: NOW / 1000 - 30 });
  const go = async (p: Principal, ip: string) => {
    const ctx = requestCtx({ config: s.cfg, message: call('t', {}), principal: p, session: s.session, ip });
    try {
      await s.stage.onRequest!(ctx);
      return 'allow';
    } catch (err) {
      return (err as BastionError).code;
    }
  };
  assert.equal(await go(ok, '10.2.3.4'), 'allow');
  assert.equal(await go(ok, 'fd00::1'), 'allow');
  assert.equal(await go(ok, '::ffff:10.2.3.4'), 'allow');
  assert.equal(await go(ok, '11.2.3.4'), 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
  assert.equal(await go(principal({ authMethod: 'bearer', issuedAt: NOW / 1000 - 30 }), '10.2.3.4'), 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
  assert.equal(await go(principal({ authMethod: 'mtls+bearer', issuedAt: NOW / 1000 - 61 }), '10.2.3.4'), 'ERR_BASTION_POLICY_TOOL_NOT_FOUND');
  assert.deepEqual(
    s.audit.events.map((e) => e.reason),
    ['source_ip_not_allowed', 'auth_method_not_allowed', 'token_too_old'],
  );
});

test('resources: list and templates filtered, reads of hidden resources answered as not found (-32002)', async () => {
  const s = setup({ resources: { 'file:///srv/notes/*': { scopes: ['notes:read'] }, 'file:///srv/admin/*': { allow: { roles: ['admin'] } } } });
  const reader = principal({ scopes: ['notes:read'] });
  const resources = [{ uri: 'file:///srv/notes/a' }, { uri: 'file:///srv/admin/b' }, { uri: 'file:///etc/c' }, { uri: 42 }, 'junk'];
  assert.deepEqual(await listed(s, reader, 'resources/list', 'resources', resources), ['file:///srv/notes/a']);
  assert.deepEqual(await listed(s, principal(), 'resources/list', 'resources', resources), ['file:///srv/notes/a'], 'step-up keeps it listed');
  const templates = [{ uriTemplate: 'file:///srv/notes/{name}' }, { uriTemplate: 'file:///srv/admin/{name}' }];
  assert.deepEqual(await listed(s, reader, 'resources/templates/list', 'resourceTemplates', templates), ['file:///srv/notes/{name}']);
  const read = async (uri: string, method = 'resources/read') => {
    const ctx = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 3, method, params: { uri } }, principal: reader, session: s.session });
    try {
      await s.stage.onRequest!(ctx);
      return undefined;
    } catch (err) {
      return err as BastionError;
    }
  };
  assert.equal(await read('file:///srv/notes/a'), undefined);
  const hidden = await read('file:///srv/admin/b');
  assert.deepEqual(toWire(hidden, 3).body.error, { code: -32002, message: 'Resource not found', data: { uri: 'file:///srv/admin/b' } });
  assert.equal((await read('file:///srv/admin/b', 'resources/subscribe'))?.code, 'ERR_BASTION_POLICY_RESOURCE_NOT_FOUND');
  assert.equal(s.audit.last()!.type, 'resource.read.denied');
  assert.equal(s.audit.last()!.policy, 'servers.notes.resources["file:///srv/admin/*"].allow');
});

test('prompts: list filtered, get and completion of a hidden prompt answered as not found', async () => {
  const s = setup({ prompts: { summarize: { scopes: ['p'] }, secret: { allow: { subjects: ['carol'] } } } });
  const p = principal({ scopes: ['p'] });
  assert.deepEqual(await listed(s, p, 'prompts/list', 'prompts', [{ name: 'summarize' }, { name: 'secret' }, { name: 'other' }]), ['summarize']);
  const send = async (msg: JsonRpcMessage) => {
    const ctx = requestCtx({ config: s.cfg, message: msg, principal: p, session: s.session });
    try {
      await s.stage.onRequest!(ctx);
      return undefined;
    } catch (err) {
      return err as BastionError;
    }
  };
  assert.equal(await send({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'summarize' } }), undefined);
  const hidden = await send({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'secret' } });
  const missing = await send({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'nopeit' } });
  assert.equal(JSON.stringify(toWire(hidden, 1)).replace('secret', 'X'), JSON.stringify(toWire(missing, 1)).replace('nopeit', 'X'));
  const completion = await send({ jsonrpc: '2.0', id: 1, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'secret' }, argument: { name: 'a', value: '' } } });
  assert.equal(completion?.message, 'Prompt secret not found');
  assert.equal(await send({ jsonrpc: '2.0', id: 1, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'summarize' }, argument: { name: 'a', value: '' } } }), undefined);
});

test('hostile upstream lists: non-array lists become empty, malformed items are dropped', async () => {
  const s = setup({ defaultTool: 'allow' });
  const req = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, principal: principal(), session: s.session });
  const out = (await s.stage.onUpstreamMessage!(messageCtx(req, 'tools/list'), { jsonrpc: '2.0', id: 1, result: { tools: 'all of them' } })) as JsonRpcResponse;
  assert.deepEqual(out.result!.tools, []);
  assert.deepEqual(await listed(s, principal(), 'tools/list', 'tools', [null, 5, { name: 7 }, { title: 'x' }, { name: 'ok' }]), ['ok']);
  // Errors and other methods pass untouched.
  const err: JsonRpcMessage = { jsonrpc: '2.0', id: 1, error: { code: -1, message: 'x' } };
  assert.equal(await s.stage.onUpstreamMessage!(messageCtx(req, 'tools/list'), err), err);
  const other: JsonRpcMessage = { jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'secret' }] } };
  assert.equal(await s.stage.onUpstreamMessage!(messageCtx(req, 'tools/call'), other), other);
});

test('malformed calls are refused with -32602', async () => {
  const s = setup({ defaultTool: 'allow' });
  const ctx = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 5 } }, principal: principal(), session: s.session });
  await assert.rejects(async () => s.stage.onRequest!(ctx), (e: BastionError) => e.rpcCode === -32602);
});

test("the upstream's own not-found for resources and prompts is replaced by the gateway's (hidden == missing)", async () => {
  const s = setup({ defaultResource: 'allow', defaultPrompt: 'allow', resources: { 'secret://*': { deny: { subjects: ['alice'] } } }, prompts: { hidden: { deny: { subjects: ['alice'] } } } });
  const p = principal();
  const viaUpstream = async (method: string, params: Record<string, unknown>, error: { code: number; message: string }) => {
    const req = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 5, method, params }, principal: p, session: s.session });
    return s.stage.onUpstreamMessage!(messageCtx(req, method), { jsonrpc: '2.0', id: 5, error });
  };
  const viaPolicy = async (method: string, params: Record<string, unknown>) => {
    const req = requestCtx({ config: s.cfg, message: { jsonrpc: '2.0', id: 5, method, params }, principal: p, session: s.session });
    try {
      await s.stage.onRequest!(req);
      assert.fail('expected a refusal');
    } catch (err) {
      return toWire(err, 5).body;
    }
  };
  // The SDK answers -32602 "Resource <uri> not found"; the gateway's hidden answer is -32002.
  const missing = await viaUpstream('resources/read', { uri: 'secreu://a' }, { code: -32602, message: 'Resource secreu://a not found' });
  const hidden = await viaPolicy('resources/read', { uri: 'secret://a' });
  assert.equal(JSON.stringify(missing).replace('secreu', 'X'), JSON.stringify(hidden).replace('secret', 'X'));
  const missingPrompt = await viaUpstream('prompts/get', { name: 'hiddem' }, { code: -32602, message: 'Prompt hiddem not found' });
  const hiddenPrompt = await viaPolicy('prompts/get', { name: 'hidden' });
  assert.equal(JSON.stringify(missingPrompt).replace('hiddem', 'X'), JSON.stringify(hiddenPrompt).replace('hidden', 'X'));
  // Other upstream errors pass unchanged.
  const other = { code: -32603, message: 'disk on fire' };
  assert.deepEqual(((await viaUpstream('resources/read', { uri: 'x://a' }, other)) as JsonRpcResponse).error, other);
});
