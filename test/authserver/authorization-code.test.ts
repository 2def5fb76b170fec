/**
 * The development authorization server driven by the official MCP SDK client auth code
 * (`auth()` from @modelcontextprotocol/sdk/client/auth.js), over real HTTP on 127.0.0.1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { startDevAuthServer, type DevAuthServer } from '../../src/authserver/index.js';
import { HeadlessOAuthProvider, postForm, startResourceMetadataServer, tempDir } from './helpers.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
const clientMetadata = {
  client_name: 'SDK test client',
  redirect_uris: [REDIRECT],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};

let as: DevAuthServer;
let rs: Awaited<ReturnType<typeof startResourceMetadataServer>>;
let cleanup: () => Promise<void>;

async function verifyAccessToken(token: string, audience: string): Promise<JWTPayload> {
  const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(as.jwksUri)), {
    issuer: as.issuer,
    audience,
    typ: 'at+jwt',
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  return payload;
}

/** Registers (DCR) and completes the PKCE flow through the SDK; returns the provider with tokens. */
async function sdkLogin(mount: string, scope?: string, provider = new HeadlessOAuthProvider(REDIRECT, clientMetadata)) {
  const serverUrl = rs.url(mount);
  const first = await auth(provider, { serverUrl, ...(scope ? { scope } : {}) });
  assert.equal(first, 'REDIRECT');
  const second = await auth(provider, { serverUrl, authorizationCode: provider.code(), ...(scope ? { scope } : {}) });
  assert.equal(second, 'AUTHORIZED');
  return provider;
}

/** A raw authorization request for a registered public client; returns status and Location. */
async function authorize(params: Record<string, string>): Promise<{ status: number; location: URL | undefined; text: string }> {
  const url = new URL(`${as.issuer}/auth`);
  url.search = new URLSearchParams(params).toString();
  const res = await fetch(url, { redirect: 'manual' });
  const loc = res.headers.get('location');
  return { status: res.status, location: loc ? new URL(loc, url) : undefined, text: await res.text() };
}

async function registerPublicClient(): Promise<string> {
  const res = await fetch(`${as.issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(clientMetadata),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { client_id: string }).client_id;
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

describe('development authorization server: authorization code flow with the MCP SDK', () => {
  before(async () => {
    const tmp = await tempDir('bastion-as-');
    rs = await startResourceMetadataServer({ notes: ['notes:read', 'notes:write'], files: ['files:read'], ledger: ['ledger:read'] });
    as = await startDevAuthServer({
      stateDir: tmp.dir,
      resources: [
        { resource: rs.url('notes'), scopes: ['notes:read', 'notes:write'] },
        { resource: rs.url('files'), scopes: ['files:read'] },
        { resource: rs.url('ledger'), scopes: ['ledger:read'], accessTokenFormat: 'opaque' },
      ],
      users: [{ id: 'alice', roles: ['editor'], groups: ['eng'] }],
      autoLogin: 'alice',
    });
    rs.setIssuer(as.issuer);
    cleanup = tmp.cleanup;
  });
  after(async () => {
    await as?.close();
    await rs?.close();
    await cleanup?.();
  });

  test('metadata: RFC 8414 and OIDC discovery, S256 only, code only, CIMD advertised', async () => {
    for (const url of [as.metadataUrl, as.openidConfigurationUrl]) {
      const meta = (await (await fetch(url)).json()) as Record<string, unknown>;
      assert.equal(meta.issuer, as.issuer);
      assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
      assert.deepEqual(meta.response_types_supported, ['code']);
      assert.equal(meta.client_id_metadata_document_supported, true);
      assert.equal(meta.registration_endpoint, as.registrationEndpoint);
      assert.equal(meta.introspection_endpoint, as.introspectionEndpoint);
      assert.equal(meta.revocation_endpoint, as.revocationEndpoint);
      assert.ok(!(meta.grant_types_supported as string[]).includes('password'));
      assert.ok(!(meta.grant_types_supported as string[]).includes('implicit'));
    }
  });

  test('SDK: DCR, PKCE S256 with resource, auto-login; token audience = mount, roles/groups claims', async () => {
    const p = await sdkLogin('notes');
    assert.ok(p.clientInfo?.client_id, 'the SDK registered a client');
    const authUrl = p.authorizationUrls[0]!;
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authUrl.searchParams.get('resource'), rs.url('notes'));
    const claims = await verifyAccessToken(p.savedTokens!.access_token, rs.url('notes'));
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, rs.url('notes'));
    assert.equal(claims.client_id, p.clientInfo!.client_id);
    assert.deepEqual(claims.roles, ['editor']);
    assert.deepEqual(claims.groups, ['eng']);
    assert.equal(claims.scope, 'notes:read notes:write');
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 600, 'default lifetime is 10 minutes');
    assert.equal(p.savedTokens!.token_type, 'Bearer');
  });

  test('scopes are per resource: a scope of another mount is not granted', async () => {
    const p = await sdkLogin('notes', 'notes:read files:read');
    const claims = decodeJwt(p.savedTokens!.access_token);
    assert.equal(claims.aud, rs.url('notes'));
    assert.equal(claims.scope, 'notes:read');
    const f = await sdkLogin('files', 'notes:read files:read');
    const fclaims = await verifyAccessToken(f.savedTokens!.access_token, rs.url('files'));
    assert.equal(fclaims.scope, 'files:read');
    await assert.rejects(verifyAccessToken(f.savedTokens!.access_token, rs.url('notes')), /aud/);
  });

  test('step-up: re-authorizing with a wider scope gets it (consent for the missing scope only)', async () => {
    const p = await sdkLogin('notes', 'notes:read');
    assert.equal(decodeJwt(p.savedTokens!.access_token).scope, 'notes:read');
    // A refresh cannot widen scopes (the SDK would refresh first): the client drops its tokens
    // and runs the authorization again with the scope from WWW-Authenticate.
    p.savedTokens = undefined;
    await sdkLogin('notes', 'notes:read notes:write', p);
    const claims = await verifyAccessToken(p.savedTokens!.access_token, rs.url('notes'));
    assert.equal(claims.scope, 'notes:read notes:write');
    assert.equal(p.authorizationUrls.at(-1)!.searchParams.get('scope'), 'notes:read notes:write');
  });

  test('unknown resource is refused (invalid_target)', async () => {
    const clientId = await registerPublicClient();
    const { challenge } = pkce();
    const r = await authorize({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'notes:read',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: 'http://127.0.0.1:1/mcp/other',
    });
    assert.equal(r.status, 303);
    assert.equal(r.location?.searchParams.get('error'), 'invalid_target');
  });

  for (const mount of ['notes', 'ledger']) {
    test(`refresh tokens rotate; reusing a rotated one revokes the whole family (${mount} mount)`, async () => {
      const p = await sdkLogin(mount);
      const firstRefresh = p.savedTokens!.refresh_token!;
      assert.ok(firstRefresh, 'a refresh token is issued');
      // The SDK refreshes when it has a refresh token.
      assert.equal(await auth(p, { serverUrl: rs.url(mount) }), 'AUTHORIZED');
      const secondRefresh = p.savedTokens!.refresh_token!;
      assert.notEqual(secondRefresh, firstRefresh, 'rotated on use');
      const clientId = p.clientInfo!.client_id;
      if (mount === 'notes') {
        const refreshed = await verifyAccessToken(p.savedTokens!.access_token, rs.url('notes'));
        assert.equal(refreshed.sub, 'alice');
      } else {
        const live = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
        assert.equal(live.body.active, true, JSON.stringify(live.body));
        assert.equal(live.body.aud, rs.url('ledger'));
      }

      const reuse = await postForm(as.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: firstRefresh, client_id: clientId });
      assert.equal(reuse.status, 400);
      assert.equal(reuse.body.error, 'invalid_grant');
      // The family is gone: the newest refresh token fails too...
      const after = await postForm(as.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: secondRefresh, client_id: clientId });
      assert.equal(after.status, 400);
      assert.equal(after.body.error, 'invalid_grant');
      const introRefresh = await postForm(as.introspectionEndpoint, { token: secondRefresh, client_id: clientId });
      assert.equal(introRefresh.body.active, false);
      // ...and so is the newest (introspectable) access token.
      if (mount === 'ledger') {
        const intro = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
        assert.equal(intro.body.active, false);
      }
    });
  }

  test('revocation (RFC 7009) then introspection (RFC 7662) says inactive (opaque access token)', async () => {
    const p = await sdkLogin('ledger');
    const clientId = p.clientInfo!.client_id;
    const before = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
    assert.equal(before.body.active, true, JSON.stringify(before.body));
    assert.equal(before.body.aud, rs.url('ledger'));
    assert.equal(before.body.sub, 'alice');
    assert.equal(before.body.scope, 'ledger:read');
    const rev = await postForm(as.revocationEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
    assert.equal(rev.status, 200);
    const afterRev = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
    assert.equal(afterRev.body.active, false);
    // Revoking an access token revokes its grant: the refresh token is dead too.
    const refresh = await postForm(as.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: p.savedTokens!.refresh_token!, client_id: clientId });
    assert.equal(refresh.body.error, 'invalid_grant');
  });

  test('revoking the refresh token of a JWT grant stops refreshes; JWTs are not introspectable here', async () => {
    const p = await sdkLogin('notes');
    const clientId = p.clientInfo!.client_id;
    const rev = await postForm(as.revocationEndpoint, { token: p.savedTokens!.refresh_token!, client_id: clientId });
    assert.equal(rev.status, 200);
    const intro = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.refresh_token!, client_id: clientId });
    assert.equal(intro.body.active, false);
    const refresh = await postForm(as.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: p.savedTokens!.refresh_token!, client_id: clientId });
    assert.equal(refresh.body.error, 'invalid_grant');
    // oidc-provider does not introspect structured (JWT) access tokens: they are verified locally.
    const jwtIntro = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: clientId });
    assert.equal(jwtIntro.body.error, 'unsupported_token_type');
  });

  test("a public client cannot introspect another client's token", async () => {
    const p = await sdkLogin('ledger');
    const other = await registerPublicClient();
    const r = await postForm(as.introspectionEndpoint, { token: p.savedTokens!.access_token, client_id: other });
    assert.equal(r.body.active, false);
  });

  test('PKCE plain is refused, and so is a request without PKCE', async () => {
    const clientId = await registerPublicClient();
    const plain = await authorize({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'notes:read',
      resource: rs.url('notes'),
      code_challenge: 'a'.repeat(43),
      code_challenge_method: 'plain',
    });
    assert.equal(plain.location?.origin + plain.location!.pathname, REDIRECT);
    assert.equal(plain.location?.searchParams.get('error'), 'invalid_request');
    assert.match(plain.location?.searchParams.get('error_description') ?? '', /code_challenge_method/);

    const none = await authorize({ client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'notes:read', resource: rs.url('notes') });
    assert.equal(none.location?.searchParams.get('error'), 'invalid_request');
    assert.match(none.location?.searchParams.get('error_description') ?? '', /PKCE/);
  });

  test('implicit is refused: response_type=token, and registering the implicit grant', async () => {
    const clientId = await registerPublicClient();
    const r = await authorize({ client_id: clientId, response_type: 'token', redirect_uri: REDIRECT, scope: 'notes:read' });
    assert.ok(r.status === 303 || r.status === 400);
    if (r.location) assert.equal(r.location.searchParams.get('error') ?? new URLSearchParams(r.location.hash.slice(1)).get('error'), 'unsupported_response_type');
    else assert.match(r.text, /unsupported_response_type/);
    const reg = await fetch(as.registrationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...clientMetadata, grant_types: ['implicit'], response_types: ['token'] }),
    });
    assert.equal(reg.status, 400);
    assert.equal(((await reg.json()) as { error: string }).error, 'invalid_client_metadata');
  });

  test('password grant is refused', async () => {
    const clientId = await registerPublicClient();
    const r = await postForm(as.tokenEndpoint, { grant_type: 'password', username: 'alice', password: 'x', client_id: clientId });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'unsupported_grant_type');
  });

  test('a redirect_uri that is not registered exactly is refused without redirecting', async () => {
    const clientId = await registerPublicClient();
    const { challenge } = pkce();
    for (const bad of [`${REDIRECT}/x`, 'http://127.0.0.1:9/callback?x=1', 'http://evil.example/callback', 'http://127.0.0.1:10/callback']) {
      const r = await authorize({
        client_id: clientId,
        response_type: 'code',
        redirect_uri: bad,
        scope: 'notes:read',
        resource: rs.url('notes'),
        code_challenge: challenge,
        code_challenge_method: 'S256',
      });
      assert.equal(r.status, 400, bad);
      assert.equal(r.location, undefined, `never redirects to ${bad}`);
      assert.match(r.text, /redirect_uri/);
    }
    const omitted = await authorize({ client_id: clientId, response_type: 'code', scope: 'notes:read', code_challenge: challenge, code_challenge_method: 'S256' });
    assert.equal(omitted.status, 400, 'redirect_uri is required even with a single registered one');
  });

  test('a code is redeemed once, only with its verifier and redirect_uri', async () => {
    const clientId = await registerPublicClient();
    const { verifier, challenge } = pkce();
    const { followAuthorizationRedirects } = await import('../../src/authserver/headless.js');
    const url = new URL(`${as.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'notes:read',
      resource: rs.url('notes'),
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 's2',
    }).toString();
    const cb = await followAuthorizationRedirects(url, REDIRECT);
    assert.equal(cb.searchParams.get('state'), 's2');
    assert.equal(cb.searchParams.get('iss'), as.issuer);
    const code = cb.searchParams.get('code')!;
    const wrongVerifier = await postForm(as.tokenEndpoint, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: pkce().verifier, client_id: clientId, resource: rs.url('notes'),
    });
    assert.equal(wrongVerifier.body.error, 'invalid_grant');
    // A failed redemption consumed nothing secret, but a code is single use: get a fresh one.
    const cb2 = await followAuthorizationRedirects(url, REDIRECT);
    const code2 = cb2.searchParams.get('code')!;
    const ok = await postForm(as.tokenEndpoint, {
      grant_type: 'authorization_code', code: code2, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: rs.url('notes'),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const again = await postForm(as.tokenEndpoint, {
      grant_type: 'authorization_code', code: code2, redirect_uri: REDIRECT, code_verifier: verifier, client_id: clientId, resource: rs.url('notes'),
    });
    assert.equal(again.body.error, 'invalid_grant');
  });
});
