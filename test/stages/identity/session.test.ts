/**
 * identity.session on its own: a session id never authorizes anything by itself. Missing id → 400,
 * initialize with an id → 400; an unknown id, an ended session, a session of another mount or of
 * another principal → the same 404, locally and when restored from the shared store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toWire, type BastionError } from '../../../src/errors.js';
import { ANONYMOUS, principalKey, type Principal } from '../../../src/identity/types.js';
import { SESSION_KEY_PREFIX, SessionRegistry, type SharedSessionRecord } from '../../../src/session/registry.js';
import type { Session } from '../../../src/session/session.js';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { sessionStage } from '../../../src/stages/identity/session.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import { makeConfig, makeCtx } from '../../identity/fixtures.js';

const config = makeConfig(undefined);
const alice: Principal = { ...ANONYMOUS, subject: 'alice', issuer: 'https://as.example', clientId: 'c1', authMethod: 'bearer' };
const mallory: Principal = { ...alice, subject: 'mallory' };

function fakeSession(id: string, owner: string | undefined, mount = 'files'): Session {
  return { id, mount, owner, ended: false, lastSeen: 0, snapshot: () => undefined } as unknown as Session;
}

function ctxFor(p: Principal, sid: string | undefined, method = 'tools/list'): RequestContext {
  const ctx = makeCtx(config, { headers: sid === undefined ? {} : { 'mcp-session-id': sid } });
  ctx.principal = p;
  ctx.message = { jsonrpc: '2.0', id: 1, method } as RequestContext['message'];
  return ctx;
}

async function refused(stage: ReturnType<typeof sessionStage>, ctx: RequestContext, status: number, reason: string): Promise<void> {
  let caught: unknown;
  try {
    await stage.onRequest!(ctx);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, `expected a refusal (${reason})`);
  assert.equal(toWire(caught).status, status);
  assert.equal((caught as BastionError).reason, reason);
  assert.equal(ctx.session, undefined);
}

test('local sessions: only the owner on the same mount gets its session', async () => {
  const registry = new SessionRegistry(10);
  const mine = fakeSession('s-alice', principalKey(alice));
  registry.add(mine);
  registry.add(fakeSession('s-other-mount', principalKey(alice), 'other'));
  const ended = fakeSession('s-ended', principalKey(alice));
  (ended as { ended: boolean }).ended = true;
  registry.add(ended);
  const stage = sessionStage(registry);

  const ok = ctxFor(alice, 's-alice');
  await stage.onRequest!(ok);
  assert.equal(ok.session, mine);

  await refused(stage, ctxFor(mallory, 's-alice'), 404, 'session_not_owned');
  await refused(stage, ctxFor(ANONYMOUS, 's-alice'), 404, 'session_not_owned');
  await refused(stage, ctxFor(alice, 's-other-mount'), 404, 'session_not_owned');
  await refused(stage, ctxFor(alice, 's-ended'), 404, 'session_not_owned');
  await refused(stage, ctxFor(alice, 'no-such-session'), 404, 'session_unknown');
  await refused(stage, ctxFor(alice, undefined), 400, 'session_missing');
  await refused(stage, ctxFor(alice, 's-alice', 'initialize'), 400, 'initialize_with_session');
  const init = ctxFor(alice, undefined, 'initialize');
  await stage.onRequest!(init);
  assert.equal(init.session, undefined);
});

test('shared sessions: restored only for their owner on their mount', async () => {
  const store = new MemoryStateStore();
  const registry = new SessionRegistry(10, { store, ttlMs: 60_000 });
  const rec: SharedSessionRecord = { mount: 'files', owner: principalKey(alice), initParams: {}, protocolVersion: '2025-11-25', createdAt: 0 };
  await store.set(`${SESSION_KEY_PREFIX}s-remote`, JSON.stringify(rec), 60_000);
  const restored: string[] = [];
  const stage = sessionStage(registry, (_ctx, id) => {
    restored.push(id);
    return fakeSession(id, rec.owner);
  });

  await refused(stage, ctxFor(mallory, 's-remote'), 404, 'session_not_owned');
  const otherMount = makeCtx(config, { mount: 'other', headers: { 'mcp-session-id': 's-remote' } });
  otherMount.principal = alice;
  await refused(stage, otherMount, 404, 'session_not_owned');
  await refused(stage, ctxFor(alice, 's-unknown'), 404, 'session_unknown');
  assert.deepEqual(restored, [], 'nothing restored for a refused request');

  const ok = ctxFor(alice, 's-remote');
  await stage.onRequest!(ok);
  assert.equal(ok.session?.id, 's-remote');
  assert.deepEqual(restored, ['s-remote']);
});
