/**
 * The tested example of docs/idps.md: the gateway's token verifier configured for a generic
 * OIDC / RFC 8414 issuer by discovery only (`discovery: true`), with the development server
 * standing in for the IdP. JWT tokens verified by discovered JWKS; opaque tokens by RFC 7662
 * introspection with the gateway's own client; a revoked opaque token is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { importJWK, SignJWT } from 'jose';
import { authGlobalFields } from '../../src/config/auth.js';
import { createTokenVerifier } from '../../src/identity/verifier.js';
import { obtainDevToken } from '../../src/authserver/dev-token.js';
import { readDevClientFile, type DevClientFile } from '../../src/authserver/state.js';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { tempDir } from './helpers.js';

const NOTES = 'http://127.0.0.1:8080/mcp/notes';
const LEDGER = 'http://127.0.0.1:8080/mcp/ledger';

describe('generic OIDC issuer by discovery (docs/idps.md example)', () => {
  let as: DevAuthServer;
  let client: DevClientFile;
  let cleanup: () => Promise<void>;
  const gatewaySecret = randomBytes(32).toString('base64url');

  before(async () => {
    const tmp = await tempDir('bastion-idp-');
    cleanup = tmp.cleanup;
    as = await startDevAuthServer({
      stateDir: join(tmp.dir, 'as'),
      resources: [
        { resource: NOTES, scopes: ['notes:read', 'notes:write'] },
        { resource: LEDGER, scopes: ['ledger:read'], accessTokenFormat: 'opaque' },
      ],
      users: [{ id: 'alice', roles: ['editor'], groups: ['eng'] }],
      clients: [{ clientId: 'gateway', auth: { method: 'client_secret_basic', secret: gatewaySecret }, grantTypes: [] }],
    });
    client = (await readDevClientFile(join(tmp.dir, 'as')))!;
  });
  after(async () => {
    await as?.close();
    await cleanup?.();
  });

  function verifier() {
    // Exactly the shape documented in docs/idps.md, parsed by the real config schema.
    const auth = authGlobalFields.auth.parse({
      issuers: [
        {
          issuer: as.issuer,
          discovery: true,
          typ: 'at+jwt',
          introspection: {
            endpoint: as.introspectionEndpoint,
            clientId: 'gateway',
            clientSecret: { env: 'BASTION_TEST_INTROSPECTION_SECRET' },
            cacheMaxSeconds: 0,
          },
        },
      ],
      tokenCache: { maxEntries: 0 },
    });
    return createTokenVerifier(auth, { env: { BASTION_TEST_INTROSPECTION_SECRET: gatewaySecret } });
  }

  test('a JWT access token is verified with keys found by discovery; audience is the mount', async () => {
    const t = await obtainDevToken({ client, subject: 'alice', scope: 'notes:read', mount: NOTES });
    const v = verifier();
    const ok = await v.verify(t.accessToken, NOTES);
    assert.equal(ok.kind, 'jwt');
    assert.equal(ok.subject, 'alice');
    assert.deepEqual([...ok.scopes], ['notes:read']);
    assert.equal(ok.claims.roles !== undefined, true);
    await assert.rejects(v.verify(t.accessToken, LEDGER), /audience/);
  });

  test('an opaque token is verified by introspection, and refused once revoked', async () => {
    const t = await obtainDevToken({ client, subject: 'alice', scope: 'ledger:read', mount: 'ledger' });
    const v = verifier();
    const ok = await v.verify(t.accessToken, LEDGER);
    assert.equal(ok.kind, 'opaque');
    assert.equal(ok.subject, 'alice');
    assert.deepEqual([...ok.scopes], ['ledger:read']);
    await assert.rejects(v.verify(t.accessToken, NOTES), /audience/);

    // Revoke it (RFC 7009) as its own client (private_key_jwt with the helper's key).
    const key = await importJWK(client.privateJwk, client.privateJwk.alg);
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: client.privateJwk.alg!, kid: client.privateJwk.kid! })
      .setIssuer(client.clientId)
      .setSubject(client.clientId)
      .setAudience(as.issuer)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
    const rev = await fetch(as.revocationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: t.accessToken,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }),
    });
    assert.equal(rev.status, 200);
    await assert.rejects(v.verify(t.accessToken, LEDGER));
  });

  test('the gateway with a wrong introspection secret fails closed', async () => {
    const t = await obtainDevToken({ client, subject: 'alice', scope: 'ledger:read', mount: 'ledger' });
    const auth = authGlobalFields.auth.parse({
      issuers: [
        {
          issuer: as.issuer,
          discovery: true,
          introspection: { endpoint: as.introspectionEndpoint, clientId: 'gateway', clientSecret: { env: 'S' }, cacheMaxSeconds: 0 },
        },
      ],
      tokenCache: { maxEntries: 0 },
    });
    const v = createTokenVerifier(auth, { env: { S: 'wrong-secret-wrong-secret-wrong-secret' } });
    await assert.rejects(v.verify(t.accessToken, LEDGER));
  });
});
