/**
 * The identity stage against a real issuer stand-in on 127.0.0.1 (JWKS over HTTP, introspection):
 * a valid token works, and each attack is refused with the status and WWW-Authenticate
 * challenge RFC 6750 / RFC 9449 / MCP 2025-11-25 define (checked through toWire()).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, createHash } from 'node:crypto';
import { calculateJwkThumbprint, SignJWT, UnsecuredJWT, exportSPKI } from 'jose';
import { toWire, type BastionError } from '../../../src/errors.js';
import { identityStage, IDENTITY_STAGE, type IdentityLocals } from '../../../src/stages/identity/authenticate.js';
import { MemoryStateStore } from '../../../src/stores/memory.js';
import type { Config } from '../../../src/config/schema.js';
import type { RequestContext } from '../../../src/pipeline/context.js';
import { makeConfig, makeCtx, makeKey, memoryAudit, OTHER_RESOURCE, peerFromPem, RESOURCE, startIssuer, type KeyPair, type RawConfig, type TestIssuer } from '../../identity/fixtures.js';
import { makePki, type TestPki } from '../../tls/certs.js';
import { certificateThumbprint } from '../../../src/identity/certificate.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

let iss: TestIssuer;
let pki: TestPki;
let clock = Math.floor(Date.now() / 1000) * 1000;
const now = (): number => clock;
const nowS = (): number => Math.floor(clock / 1000);

before(async () => {
  iss = await startIssuer();
  pki = makePki();
});
after(async () => {
  await iss.close();
  pki.cleanup();
});

function setup(patch?: (c: RawConfig) => void) {
  const config: Config = makeConfig(iss, patch);
  const store = new MemoryStateStore({ now });
  const audit = memoryAudit();
  const stage = identityStage({ config, store, audit, now, env: { TEST_INTROSPECTION_SECRET: iss.clientSecret } });
  return { config, store, audit, stage };
}

async function refused(
  stage: ReturnType<typeof setup>['stage'],
  ctx: RequestContext,
  status: number,
  challenge: RegExp | undefined,
  reason?: string,
): Promise<BastionError> {
  let caught: unknown;
  try {
    await stage.onRequest!(ctx);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, 'request should have been refused');
  const w = toWire(caught);
  assert.equal(w.status, status, `status for ${(caught as BastionError).reason}`);
  if (challenge) assert.match(w.headers['WWW-Authenticate'] ?? '', challenge);
  if (reason) assert.equal((caught as BastionError).reason, reason);
  assert.equal(ctx.principal, undefined);
  return caught as BastionError;
}

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
const INVALID = /^Bearer error="invalid_token", error_description="[^"]+", scope="mcp:read", resource_metadata="https:\/\/gw\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/files", DPoP /;

test('a valid token yields a principal with mapped roles, groups and scopes', async () => {
  const { config, stage, audit } = setup((c) => {
    c.auth.claims = { roles: ['realm_access.roles'], groups: ['grp'] };
  });
  const t = await iss.mint({ realm_access: { roles: ['admin', 'ops'] }, grp: ['team-a'], scope: 'mcp:read mcp:write', iat: nowS(), exp: nowS() + 300 });
  const ctx = makeCtx(config, { headers: bearer(t) });
  await stage.onRequest!(ctx);
  const p = ctx.principal!;
  assert.equal(p.subject, 'user-1');
  assert.equal(p.issuer, iss.url);
  assert.equal(p.clientId, 'client-a');
  assert.equal(p.authMethod, 'bearer');
  assert.deepEqual([...p.scopes].sort(), ['mcp:read', 'mcp:write']);
  assert.deepEqual(p.roles, ['admin', 'ops']);
  assert.deepEqual(p.groups, ['team-a']);
  assert.equal(p.tokenHash, createHash('sha256').update(t).digest('base64url'));
  assert.equal(audit.events.at(-1)!.type, 'auth.succeeded');
  assert.ok(!JSON.stringify(audit.events).includes(t), 'audit never holds the token');
  assert.ok(!JSON.stringify(p).includes(t), 'principal never holds the token');
});

test('no credentials: 401 with resource_metadata and scope, no error code', async () => {
  const { config, stage, audit } = setup();
  const e = await refused(stage, makeCtx(config), 401, /^Bearer scope="mcp:read", resource_metadata="https:\/\/gw\.example\.com\/\.well-known\/oauth-protected-resource\/mcp\/files", DPoP /);
  assert.doesNotMatch(e.headers['WWW-Authenticate']!, /error=/);
  assert.equal(e.code, 'ERR_BASTION_AUTH_MISSING');
  assert.equal(audit.events.at(-1)!.type, 'auth.failed');
  assert.equal(audit.events.at(-1)!.reason, 'no_credentials');
});

test('malformed tokens and headers', async () => {
  const { config, stage } = setup();
  await refused(stage, makeCtx(config, { headers: bearer('not-a-jwt-and-not-introspectable') }), 401, /error="invalid_token"/, 'token_inactive');
  // Three parts but not a JWT: with introspection configured it is asked about as an opaque token.
  await refused(stage, makeCtx(config, { headers: bearer('aaa.bbb.ccc') }), 401, INVALID, 'token_inactive');
  const jwtOnly = setup((c) => {
    delete c.auth.issuers[0].introspection;
  });
  await refused(jwtOnly.stage, makeCtx(jwtOnly.config, { headers: bearer('aaa.bbb.ccc') }), 401, INVALID, 'malformed');
  await refused(jwtOnly.stage, makeCtx(jwtOnly.config, { headers: bearer('opaque') }), 401, INVALID, 'malformed');
  await refused(stage, makeCtx(config, { headers: { authorization: 'Bearer' } }), 400, /error="invalid_request"/);
  await refused(stage, makeCtx(config, { headers: { authorization: 'Bearer a b' } }), 400, /error="invalid_request"/);
  await refused(stage, makeCtx(config, { headers: { authorization: 'Bearer tok"en' } }), 400, /error="invalid_request"/);
  await refused(stage, makeCtx(config, { headers: { authorization: `Bearer ${'a'.repeat(9000)}` } }), 401, INVALID, 'token_too_large');
  // Another scheme is not a credential this resource takes: plain challenge.
  const e = await refused(stage, makeCtx(config, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, /^Bearer scope=/);
  assert.doesNotMatch(e.headers['WWW-Authenticate']!, /error=/);
});

test('bad signature', async () => {
  const { config, stage } = setup();
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  const [h, p, s] = t.split('.');
  const flipped = `${h}.${p}.${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
  await refused(stage, makeCtx(config, { headers: bearer(flipped) }), 401, INVALID, 'bad_signature');
  // Payload swapped under a valid signature.
  const other = await iss.mint({ sub: 'admin', iat: nowS(), exp: nowS() + 300 });
  await refused(stage, makeCtx(config, { headers: bearer(`${h}.${other.split('.')[1]}.${s}`) }), 401, INVALID, 'bad_signature');
});

test('alg none is refused', async () => {
  const { config, stage } = setup();
  const t = new UnsecuredJWT({ iss: iss.url, aud: RESOURCE, sub: 'user-1', scope: 'mcp:read', exp: nowS() + 300, iat: nowS() }).encode();
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'alg_not_allowed');
});

test('HS256 signed with the issuer public key is refused', async () => {
  const { config, stage } = setup();
  const spki = await exportSPKI(iss.key.publicKey);
  const t = await new SignJWT({ iss: iss.url, aud: RESOURCE, sub: 'user-1', scope: 'mcp:read', exp: nowS() + 300, iat: nowS() })
    .setProtectedHeader({ alg: 'HS256', kid: iss.key.kid, typ: 'at+jwt' })
    .sign(new TextEncoder().encode(spki));
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'alg_not_allowed');
  // Same with the JWK JSON as the HMAC secret.
  const t2 = await new SignJWT({ iss: iss.url, aud: RESOURCE, sub: 'user-1', scope: 'mcp:read', exp: nowS() + 300, iat: nowS() })
    .setProtectedHeader({ alg: 'HS256', kid: iss.key.kid })
    .sign(new TextEncoder().encode(JSON.stringify(iss.key.publicJwk)));
  await refused(stage, makeCtx(config, { headers: bearer(t2) }), 401, INVALID, 'alg_not_allowed');
});

test('unknown kid is refused after a bounded JWKS refetch', async () => {
  const { config, stage } = setup((c) => {
    c.auth.jwks = { cooldownSeconds: 30 };
  });
  const attacker = await makeKey('ES256', 'unknown-kid');
  const ok = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  await stage.onRequest!(makeCtx(config, { headers: bearer(ok) })); // warm the JWKS
  const before = iss.counts.jwks;
  for (let i = 0; i < 5; i++) {
    const t = await iss.mint({ iat: nowS(), exp: nowS() + 300, jti: randomUUID() }, { key: attacker });
    await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'unknown_key');
  }
  assert.ok(iss.counts.jwks - before <= 1, `JWKS refetched ${iss.counts.jwks - before} times for 5 unknown kids (cooldown)`);
});

test('key material in the token header (jku, x5u, embedded jwk, x5c) is never trusted', async () => {
  const { config, stage } = setup();
  const attacker = await makeKey('ES256', 'key-1'); // even reusing the trusted kid
  const claims = { iat: nowS(), exp: nowS() + 300 };
  for (const header of [
    { jku: `${iss.url}/attacker-jwks` },
    { x5u: `${iss.url}/attacker.pem` },
    { jwk: attacker.publicJwk },
  ]) {
    const t = await iss.mint(claims, { key: attacker, header });
    await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'header_key_refused');
  }
  // x5c is ignored: the signature is checked with the issuer's JWKS key, so it fails.
  const x5c = await iss.mint(claims, { key: attacker, header: { x5c: [new X509Certificate(readFileSync(pki.client1Cert)).raw.toString('base64')] } });
  await refused(stage, makeCtx(config, { headers: bearer(x5c) }), 401, INVALID, 'bad_signature');
});

test('issuer must match exactly', async () => {
  const { config, stage } = setup();
  for (const bad of [`${iss.url}/`, 'https://evil.example', iss.url.toUpperCase()]) {
    const t = await iss.mint({ iss: bad, iat: nowS(), exp: nowS() + 300 });
    await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'untrusted_issuer');
  }
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 300 }, { omit: ['iss'] });
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'untrusted_issuer');
});

test('audience: wrong, missing, another mount, and the cached token at another mount', async () => {
  const { config, stage } = setup();
  const claims = { iat: nowS(), exp: nowS() + 300 };
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ ...claims, aud: 'https://elsewhere.example/mcp' })) }), 401, INVALID, 'audience_mismatch');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint(claims, { omit: ['aud'] })) }), 401, INVALID, 'audience_missing');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ ...claims, aud: OTHER_RESOURCE })) }), 401, INVALID, 'audience_mismatch');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ ...claims, aud: `${RESOURCE}/` })) }), 401, INVALID, 'audience_mismatch');
  // A token for `files`, verified and cached there, is still refused at `other`.
  const t = await iss.mint({ ...claims, aud: [RESOURCE, 'https://api.example'] });
  await stage.onRequest!(makeCtx(config, { headers: bearer(t) }));
  await refused(stage, makeCtx(config, { mount: 'other', headers: bearer(t) }), 401, /error="invalid_token"/, 'audience_mismatch');
});

test('expired, not yet valid, issued in the future; skew is bounded', async () => {
  const { config, stage } = setup();
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ iat: nowS() - 7200, exp: nowS() - 3600 })) }), 401, INVALID, 'token_expired');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ iat: nowS(), nbf: nowS() + 3600, exp: nowS() + 7200 })) }), 401, INVALID, 'token_not_yet_valid');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ iat: nowS() + 3600, exp: nowS() + 7200 })) }), 401, INVALID, 'token_not_yet_valid');
  await refused(stage, makeCtx(config, { headers: bearer(await iss.mint({ iat: nowS() }, { omit: ['exp'] })) }), 401, INVALID);
  // Within the 30 s skew: accepted.
  await stage.onRequest!(makeCtx(config, { headers: bearer(await iss.mint({ iat: nowS() - 300, exp: nowS() - 10 })) }));
});

test('a cached token expires with the token', async () => {
  const { config, stage } = setup();
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 60 });
  await stage.onRequest!(makeCtx(config, { headers: bearer(t) }));
  const saved = clock;
  try {
    clock += 120_000;
    await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'token_expired');
  } finally {
    clock = saved;
  }
});

test('ID tokens and other JWT types are refused', async () => {
  const { config, stage } = setup();
  const idt = await iss.mint({ aud: RESOURCE, nonce: 'n-0S6', at_hash: 'abc', iat: nowS(), exp: nowS() + 300 }, { typ: 'JWT' });
  await refused(stage, makeCtx(config, { headers: bearer(idt) }), 401, INVALID, 'id_token');
  const untyped = await iss.mint({ nonce: 'x', iat: nowS(), exp: nowS() + 300 }, { typ: null });
  await refused(stage, makeCtx(config, { headers: bearer(untyped) }), 401, INVALID, 'id_token');
  const proofAsToken = await iss.mint({ iat: nowS(), exp: nowS() + 300 }, { typ: 'dpop+jwt' });
  await refused(stage, makeCtx(config, { headers: bearer(proofAsToken) }), 401, INVALID, 'wrong_token_type');
  // typ at+jwt enforced when configured.
  const strict = setup((c) => {
    c.auth.issuers[0].typ = 'at+jwt';
  });
  const plain = await iss.mint({ iat: nowS(), exp: nowS() + 300 }, { typ: 'JWT' });
  await refused(strict.stage, makeCtx(strict.config, { headers: bearer(plain) }), 401, INVALID, 'wrong_token_type');
  await strict.stage.onRequest!(makeCtx(strict.config, { headers: bearer(await iss.mint({ iat: nowS(), exp: nowS() + 300 })) }));
});

test('tokens in the query string or a form body are refused', async () => {
  const { config, stage } = setup();
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  await refused(stage, makeCtx(config, { query: `access_token=${t}` }), 400, /error="invalid_request"/, 'token_in_query');
  await refused(stage, makeCtx(config, { query: `x=1&access_token=${t}`, headers: bearer(t) }), 400, /error="invalid_request"/, 'token_in_query');
  await refused(stage, makeCtx(config, { headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, /error="invalid_request"/, 'token_in_body');
});

test('opaque tokens by introspection: active works and is cached, active:false is 401', async () => {
  const { config, stage } = setup();
  iss.introspection.set('opaque-good-token', { active: true, iss: iss.url, aud: [RESOURCE], sub: 'svc-1', client_id: 'c-9', scope: 'mcp:read', exp: nowS() + 600 });
  iss.introspection.set('opaque-revoked', { active: false });
  const before = iss.counts.introspect;
  const ctx = makeCtx(config, { headers: bearer('opaque-good-token') });
  await stage.onRequest!(ctx);
  assert.equal(ctx.principal!.subject, 'svc-1');
  await stage.onRequest!(makeCtx(config, { headers: bearer('opaque-good-token') }));
  assert.equal(iss.counts.introspect - before, 1, 'second use served from the cache');
  await refused(stage, makeCtx(config, { headers: bearer('opaque-revoked') }), 401, INVALID, 'token_inactive');
  // Cache bounded by cacheMaxSeconds (60 s default): after it the AS is asked again.
  const saved = clock;
  try {
    clock += 61_000;
    iss.introspection.set('opaque-good-token', { active: false });
    await refused(stage, makeCtx(config, { headers: bearer('opaque-good-token') }), 401, INVALID, 'token_inactive');
  } finally {
    clock = saved;
  }
  // Audience is checked for introspected tokens too.
  iss.introspection.set('opaque-other', { active: true, aud: OTHER_RESOURCE, sub: 'x', scope: 'mcp:read', exp: nowS() + 600 });
  await refused(stage, makeCtx(config, { headers: bearer('opaque-other') }), 401, INVALID, 'audience_mismatch');
});

test('issuer down: 503, fail closed', async () => {
  const { config, stage } = setup();
  iss.down = true;
  try {
    await refused(stage, makeCtx(config, { headers: bearer('some-opaque-token') }), 503, undefined, 'issuer_unavailable');
  } finally {
    iss.down = false;
  }
});

test('missing mount scope: 403 insufficient_scope with existing + needed scopes', async () => {
  const { config, stage } = setup((c) => {
    c.servers.files.auth.scopes = ['mcp:read', 'files:write'];
  });
  const t = await iss.mint({ scope: 'mcp:read profile', iat: nowS(), exp: nowS() + 300 });
  const e = await refused(stage, makeCtx(config, { headers: bearer(t) }), 403, /^Bearer error="insufficient_scope", error_description="Additional permission required", scope="mcp:read profile files:write", resource_metadata="[^"]+\/mcp\/files"/);
  assert.equal(e.code, 'ERR_BASTION_AUTH_INSUFFICIENT_SCOPE');
});

test('auth.required false gives ANONYMOUS; a mount requiring mTLS refuses without a certificate', async () => {
  const { config, stage } = setup((c) => {
    c.servers.other.auth = { required: false };
    c.servers.files.auth.mtls = 'required';
    c.servers.files.auth.scopes = [];
    c.tls = { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert, requestClientCert: true };
  });
  const ctx = makeCtx(config, { mount: 'other' });
  await stage.onRequest!(ctx);
  assert.equal(ctx.principal!.authMethod, 'none');
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, /invalid_request/, 'client_cert_required');
  const withCert = makeCtx(config, { headers: bearer(t), peerCertificate: peerFromPem(pki.client1Cert) });
  await stage.onRequest!(withCert);
  assert.equal(withCert.principal!.authMethod, 'mtls+bearer');
  assert.deepEqual(withCert.principal!.certificate!.uris, ['spiffe://example.org/ns/prod/sa/agent-one']);
  // Certificate alone authenticates on an mTLS-required mount.
  const certOnly = makeCtx(config, { peerCertificate: peerFromPem(pki.client2Cert) });
  await stage.onRequest!(certOnly);
  assert.equal(certOnly.principal!.authMethod, 'mtls');
  assert.equal(certOnly.principal!.subject, 'spiffe://example.org/ns/prod/sa/agent-two');
  // With mount scopes, a certificate alone is not enough: scopes come only with a token.
  const scoped = setup((c) => {
    c.servers.files.auth.mtls = 'required';
    c.servers.files.auth.scopes = ['mcp:read'];
    c.tls = { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert, requestClientCert: true };
  });
  await refused(scoped.stage, makeCtx(scoped.config, { peerCertificate: peerFromPem(pki.client2Cert) }), 401, /^Bearer scope="mcp:read"/, 'no_credentials');
});

test('certificate-bound token: accepted with its certificate, refused with another or none', async () => {
  const { config, stage } = setup();
  const thumb = certificateThumbprint(new X509Certificate(readFileSync(pki.client1Cert)).raw);
  const t = await iss.mint({ cnf: { 'x5t#S256': thumb }, iat: nowS(), exp: nowS() + 300 });
  const ok = makeCtx(config, { headers: bearer(t), peerCertificate: peerFromPem(pki.client1Cert) });
  await stage.onRequest!(ok);
  assert.equal(ok.principal!.certificate!.thumbprint, thumb);
  await refused(stage, makeCtx(config, { headers: bearer(t), peerCertificate: peerFromPem(pki.client2Cert) }), 401, INVALID, 'certificate_binding_mismatch');
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'certificate_binding_missing');
});

// ---- DPoP ----

async function dpopProof(key: KeyPair, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const { kid: _k, ...jwk } = key.publicJwk;
  return new SignJWT({ htm: 'POST', htu: RESOURCE, iat: nowS(), jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk, ...header } as { alg: string })
    .sign(key.privateKey);
}
const athOf = (t: string): string => createHash('sha256').update(t).digest('base64url');
const DPOP_ERR = /, DPoP error="invalid_dpop_proof", error_description="[^"]+", scope="mcp:read", resource_metadata="[^"]+", algs="ES256 EdDSA PS256 RS256"$/;

test('DPoP: a valid proof works; every broken proof is refused', async () => {
  const { config, stage } = setup();
  const client = await makeKey('ES256', 'client');
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const t = await iss.mint({ cnf: { jkt }, iat: nowS(), exp: nowS() + 300 });
  const ath = athOf(t);
  const h = async (claims: Record<string, unknown> = {}, key = client, header: Record<string, unknown> = {}) => ({
    authorization: `DPoP ${t}`,
    dpop: await dpopProof(key, { ath, ...claims }, header),
  });

  const ok = makeCtx(config, { headers: await h() });
  await stage.onRequest!(ok);
  assert.equal(ok.principal!.authMethod, 'dpop');

  // Replayed proof.
  const replay = await h();
  await stage.onRequest!(makeCtx(config, { headers: replay }));
  await refused(stage, makeCtx(config, { headers: replay }), 401, DPOP_ERR, 'dpop_replayed');
  await refused(stage, makeCtx(config, { headers: await h({ htu: OTHER_RESOURCE }) }), 401, DPOP_ERR, 'dpop_wrong_htu');
  await refused(stage, makeCtx(config, { headers: await h({ htm: 'GET' }) }), 401, DPOP_ERR, 'dpop_wrong_htm');
  await refused(stage, makeCtx(config, { headers: await h({ iat: nowS() - 600 }) }), 401, DPOP_ERR, 'dpop_stale');
  await refused(stage, makeCtx(config, { headers: await h({ iat: nowS() + 600 }) }), 401, DPOP_ERR, 'dpop_stale');
  await refused(stage, makeCtx(config, { headers: await h({ ath: athOf('another-token') }) }), 401, DPOP_ERR, 'dpop_wrong_ath');
  await refused(stage, makeCtx(config, { headers: await h({ ath: undefined }) }), 401, DPOP_ERR, 'dpop_wrong_ath');
  const stranger = await makeKey('ES256', 'stranger');
  await refused(stage, makeCtx(config, { headers: await h({}, stranger) }), 401, DPOP_ERR, 'dpop_key_mismatch');
  await refused(stage, makeCtx(config, { headers: await h({}, client, { typ: 'JWT' }) }), 401, DPOP_ERR, 'dpop_wrong_typ');
  // Signed by another key than the one its header embeds (the client's): a forged proof.
  const { kid: _kid, ...clientJwk } = client.publicJwk;
  await refused(stage, makeCtx(config, { headers: await h({}, stranger, { jwk: clientJwk }) }), 401, DPOP_ERR, 'dpop_bad_signature');
  const es384 = await makeKey('ES384', 'es384');
  await refused(stage, makeCtx(config, { headers: await h({}, es384, { alg: 'ES384' }) }), 401, DPOP_ERR, 'dpop_alg_not_allowed');
  await refused(stage, makeCtx(config, { headers: await h({ jti: undefined }) }), 401, DPOP_ERR, 'dpop_missing_claim');
  await refused(stage, makeCtx(config, { headers: { authorization: `DPoP ${t}`, dpop: `${(await h()).dpop}${'A'.repeat(config.auth.dpop.maxProofBytes)}` } }), 401, DPOP_ERR, 'dpop_proof_too_large');
  await refused(stage, makeCtx(config, { headers: { authorization: `DPoP ${t}` } }), 401, DPOP_ERR, 'dpop_missing');
  const two = await h();
  await refused(stage, makeCtx(config, { headers: { ...two, dpop: `${two.dpop}, ${two.dpop}` } }), 401, DPOP_ERR, 'dpop_malformed');
  // htu normalization: case of scheme/host, default port and query do not matter.
  await stage.onRequest!(makeCtx(config, { headers: await h({ htu: 'HTTPS://GW.example.com:443/mcp/files?x=1' }) }));
  // Method of the request is what htm is checked against.
  await stage.onRequest!(makeCtx(config, { method: 'GET', headers: await h({ htm: 'GET' }) }));
});

test('DPoP with a client certificate: mtls+dpop, both bindings checked', async () => {
  const { config, stage } = setup();
  const client = await makeKey('ES256', 'client');
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const thumb = certificateThumbprint(new X509Certificate(readFileSync(pki.client1Cert)).raw);
  const t = await iss.mint({ cnf: { jkt, 'x5t#S256': thumb }, iat: nowS(), exp: nowS() + 300 });
  const headers = async () => ({ authorization: `DPoP ${t}`, dpop: await dpopProof(client, { ath: athOf(t) }) });
  const ok = makeCtx(config, { headers: await headers(), peerCertificate: peerFromPem(pki.client1Cert) });
  await stage.onRequest!(ok);
  assert.equal(ok.principal!.authMethod, 'mtls+dpop');
  await refused(stage, makeCtx(config, { headers: await headers(), peerCertificate: peerFromPem(pki.client2Cert) }), 401, /error="invalid_token"/, 'certificate_binding_mismatch');
});

test('DPoP-bound token as plain Bearer is refused; unbound token with the DPoP scheme is refused', async () => {
  const { config, stage } = setup();
  const client = await makeKey('ES256', 'client');
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const bound = await iss.mint({ cnf: { jkt }, iat: nowS(), exp: nowS() + 300 });
  await refused(stage, makeCtx(config, { headers: bearer(bound) }), 401, /DPoP error="invalid_token"/, 'dpop_bound_token_as_bearer');
  const unbound = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  const proof = await dpopProof(client, { ath: athOf(unbound) });
  await refused(stage, makeCtx(config, { headers: { authorization: `DPoP ${unbound}`, dpop: proof } }), 401, /DPoP error="invalid_token"/, 'token_not_dpop_bound');
});

test('DPoP required on a mount: Bearer refused with a DPoP-only challenge', async () => {
  const { config, stage } = setup((c) => {
    c.servers.files.auth.dpop = 'required';
  });
  const t = await iss.mint({ iat: nowS(), exp: nowS() + 300 });
  const e = await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, /^DPoP error="invalid_token"/, 'dpop_required');
  assert.doesNotMatch(e.headers['WWW-Authenticate']!, /Bearer/);
  const none = await refused(stage, makeCtx(config), 401, /^DPoP scope="mcp:read", resource_metadata="[^"]+", algs="[^"]+"$/);
  assert.equal(none.code, 'ERR_BASTION_AUTH_MISSING');
});

test('DPoP server nonces: use_dpop_nonce with DPoP-Nonce, then accepted with it', async () => {
  const { config, stage } = setup((c) => {
    c.auth.dpop = { nonce: { enabled: true } };
  });
  const client = await makeKey('ES256', 'client');
  const jkt = await calculateJwkThumbprint(client.publicJwk);
  const t = await iss.mint({ cnf: { jkt }, iat: nowS(), exp: nowS() + 300 });
  const first = await refused(
    stage,
    makeCtx(config, { headers: { authorization: `DPoP ${t}`, dpop: await dpopProof(client, { ath: athOf(t) }) } }),
    401,
    /DPoP error="use_dpop_nonce"/,
    'dpop_nonce_required',
  );
  const nonce = toWire(first).headers['DPoP-Nonce']!;
  assert.ok(nonce && nonce.length > 20);
  await refused(
    stage,
    makeCtx(config, { headers: { authorization: `DPoP ${t}`, dpop: await dpopProof(client, { ath: athOf(t), nonce: 'made-up' }) } }),
    401,
    /use_dpop_nonce/,
  );
  const ok = makeCtx(config, { headers: { authorization: `DPoP ${t}`, dpop: await dpopProof(client, { ath: athOf(t), nonce }) } });
  await stage.onRequest!(ok);
  assert.equal(ok.principal!.authMethod, 'dpop');
  assert.equal((ok.locals[IDENTITY_STAGE] as IdentityLocals).responseHeaders['DPoP-Nonce'], nonce);
  // Two rotation periods later the nonce is stale.
  const saved = clock;
  try {
    clock += 601_000;
    const t2 = await iss.mint({ cnf: { jkt }, iat: nowS(), exp: nowS() + 300 });
    await refused(stage, makeCtx(config, { headers: { authorization: `DPoP ${t2}`, dpop: await dpopProof(client, { ath: athOf(t2), nonce }) } }), 401, /use_dpop_nonce/);
  } finally {
    clock = saved;
  }
});

test('legacy API keys: disabled by default; when enabled, hashed, constant-time, expiring', async () => {
  const key = 'legacy-key-0123456789';
  const off = setup();
  await refused(off.stage, makeCtx(off.config, { headers: { 'x-api-key': key } }), 401, /^Bearer scope=/);
  const on = setup((c) => {
    c.auth.apiKeys = {
      enabled: true,
      keys: [{ id: 'migration-bot', sha256: createHash('sha256').update(key).digest('hex'), expiresAt: new Date(clock + 86_400_000).toISOString(), scopes: ['mcp:read'] }],
    };
  });
  const ctx = makeCtx(on.config, { headers: { 'x-api-key': key } });
  await on.stage.onRequest!(ctx);
  assert.equal(ctx.principal!.subject, 'migration-bot');
  assert.equal(ctx.principal!.authMethod, 'api-key');
  await refused(on.stage, makeCtx(on.config, { headers: { 'x-api-key': `${key}x` } }), 401, INVALID, 'api_key_unknown');
  // The mount's scopes apply to API keys too.
  const scoped = setup((c) => {
    c.servers.files.auth.scopes = ['mcp:read', 'files:admin'];
    c.auth.apiKeys = {
      enabled: true,
      keys: [{ id: 'migration-bot', sha256: createHash('sha256').update(key).digest('hex'), expiresAt: new Date(clock + 86_400_000).toISOString(), scopes: ['mcp:read'] }],
    };
  });
  await refused(scoped.stage, makeCtx(scoped.config, { headers: { 'x-api-key': key } }), 403, /error="insufficient_scope", error_description="[^"]+", scope="mcp:read files:admin"/);
  const saved = clock;
  try {
    clock += 2 * 86_400_000;
    await refused(on.stage, makeCtx(on.config, { headers: { 'x-api-key': key } }), 401, INVALID, 'api_key_expired');
  } finally {
    clock = saved;
  }
});

test('refusals are audited with a reason and never the token; expired tokens also emit token.expired', async () => {
  const { config, stage, audit } = setup();
  const expired = await iss.mint({ iat: nowS() - 7200, exp: nowS() - 3600 });
  const forged = `${expired.split('.')[0]}.${expired.split('.')[1]}.AAAA`;
  await refused(stage, makeCtx(config, { headers: bearer(expired) }), 401, INVALID, 'token_expired');
  await refused(stage, makeCtx(config, { headers: bearer(forged) }), 401, INVALID);
  await refused(stage, makeCtx(config, { query: `access_token=${expired}` }), 400, undefined, 'token_in_query');
  const failed = audit.events.filter((e) => e.type === 'auth.failed');
  assert.equal(failed.length, 3);
  assert.deepEqual(failed.map((e) => e.reason), ['token_expired', 'bad_signature', 'token_in_query']);
  assert.equal(failed[0]!['authMethod'], 'bearer');
  assert.equal(failed[0]!['error'], 'ERR_BASTION_AUTH_INVALID_TOKEN');
  assert.ok(audit.events.some((e) => e.type === 'token.expired'));
  const dump = JSON.stringify(audit.events);
  for (const part of expired.split('.')) assert.ok(!dump.includes(part), 'no token segment in audit records');
});

test('a token bound by a confirmation method the gateway cannot check is refused', async () => {
  const { config, stage } = setup();
  const t = await iss.mint({ cnf: { jwk: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' } }, iat: nowS(), exp: nowS() + 300 });
  await refused(stage, makeCtx(config, { headers: bearer(t) }), 401, INVALID, 'unsupported_confirmation');
});

test('concurrent requests with a new token share one verification', async () => {
  const { config, stage } = setup();
  iss.introspection.set('opaque-burst', { active: true, aud: RESOURCE, sub: 'b', scope: 'mcp:read', exp: nowS() + 600 });
  const before = iss.counts.introspect;
  await Promise.all(Array.from({ length: 10 }, () => stage.onRequest!(makeCtx(config, { headers: bearer('opaque-burst') }))));
  assert.equal(iss.counts.introspect - before, 1);
});
