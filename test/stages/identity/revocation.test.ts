/**
 * identity.revocation on its own (a stand-in deny-list): a revoked principal gets 401
 * invalid_token on the scheme it used, a deny-list that cannot be trusted answers 503 (fail
 * closed), and each refusal is audited without the token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BastionError, toWire } from '../../../src/errors.js';
import type { Containment, RevocationEntry } from '../../../src/containment/containment.js';
import { ANONYMOUS, type AuthMethod, type Principal } from '../../../src/identity/types.js';
import { revocationStage } from '../../../src/stages/identity/revocation.js';
import { makeConfig, makeCtx, memoryAudit } from '../../identity/fixtures.js';

const config = makeConfig(undefined);

function principal(authMethod: AuthMethod): Principal {
  return { ...ANONYMOUS, subject: 'alice', issuer: 'https://as.example', clientId: 'c1', authMethod, tokenId: 'jti-1', tokenHash: 'hash-1' };
}

function setup(revocationOf: (p: Principal) => RevocationEntry | undefined) {
  const audit = memoryAudit();
  const seen: Principal[] = [];
  const containment = {
    revocationOf: (p: Principal) => {
      seen.push(p);
      return revocationOf(p);
    },
  } as unknown as Containment;
  return { audit, seen, stage: revocationStage({ containment, audit, config }) };
}

function refusal(run: () => unknown): BastionError {
  try {
    run();
  } catch (e) {
    return e as BastionError;
  }
  assert.fail('request should have been refused');
}

test('a principal not on the deny-list passes; anonymous requests are not looked up', () => {
  const { stage, seen, audit } = setup(() => undefined);
  const ctx = makeCtx(config);
  ctx.principal = principal('bearer');
  stage.onRequest!(ctx);
  assert.equal(seen.length, 1);
  const anon = makeCtx(config);
  anon.principal = ANONYMOUS;
  stage.onRequest!(anon);
  assert.equal(seen.length, 1);
  assert.equal(audit.events.length, 0);
});

test('a revoked principal: 401 invalid_token on the scheme it used, audited', () => {
  const { stage, audit } = setup(() => ({ kind: 'subject', value: 'alice', at: '', by: 'admin' }));
  const ctx = makeCtx(config);
  ctx.principal = principal('bearer');
  const w = toWire(refusal(() => stage.onRequest!(ctx)));
  assert.equal(w.status, 401);
  assert.match(w.headers['WWW-Authenticate']!, /^Bearer error="invalid_token", error_description="[^"]+", scope="mcp:read", resource_metadata="https:\/\/gw\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/files", DPoP /);
  assert.deepEqual(ctx.decisions.at(-1), { stage: 'identity.revocation', outcome: 'deny', reason: 'token_revoked', detail: { kind: 'subject' } });
  const ev = audit.events.find((e) => e.type === 'auth.failed')!;
  assert.equal(ev.reason, 'token_revoked');
  assert.equal(ev.status, 401);
  assert.equal(ev.principal?.subject, 'alice');

  const dpop = makeCtx(config);
  dpop.principal = principal('mtls+dpop');
  assert.match(toWire(refusal(() => stage.onRequest!(dpop))).headers['WWW-Authenticate']!, /, DPoP error="invalid_token"/);
});

test('a deny-list that cannot be trusted: 503, fail closed, audited', () => {
  const { stage, audit } = setup(() => {
    throw new BastionError('ERR_BASTION_STATE_UNAVAILABLE', 'revocation list is stale');
  });
  const ctx = makeCtx(config);
  ctx.principal = principal('dpop');
  const e = refusal(() => stage.onRequest!(ctx));
  assert.equal(e.code, 'ERR_BASTION_STATE_UNAVAILABLE');
  assert.equal(toWire(e).status, 503);
  assert.equal(ctx.decisions.at(-1)?.outcome, 'deny');
  assert.equal(audit.events.filter((x) => x.type === 'auth.failed' && x.status === 503).length, 1);
});
