import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalResource, createMetadataRoute, protectedResourceMetadata, resourceMetadataUrl } from '../../src/identity/resource.js';
import { challengeHeader, insufficientScopeError, stepUpScopes } from '../../src/identity/challenges.js';
import { checkIdentityConfig } from '../../src/identity/startup.js';
import { toWire } from '../../src/errors.js';
import { makeConfig } from './fixtures.js';

test('canonical resource: lowercase scheme and host, no default port, trailing slash, query or fragment', () => {
  assert.equal(canonicalResource('HTTPS://GW.Example.COM:443/', 'files'), 'https://gw.example.com/mcp/files');
  assert.equal(canonicalResource('https://gw.example.com/base/?x=1#frag', 'files'), 'https://gw.example.com/base/mcp/files');
  assert.equal(canonicalResource('http://127.0.0.1:8080', 'a'), 'http://127.0.0.1:8080/mcp/a');
});

test('metadata URL inserts the well-known segment between host and path (RFC 9728 §3.1)', () => {
  assert.equal(resourceMetadataUrl('https://gw.example.com/mcp/files'), 'https://gw.example.com/.well-known/oauth-protected-resource/mcp/files');
  assert.equal(resourceMetadataUrl('https://gw.example.com/base/mcp/files'), 'https://gw.example.com/.well-known/oauth-protected-resource/base/mcp/files');
});

test('protected resource metadata has every field', () => {
  const d = protectedResourceMetadata({
    resource: 'https://gw.example.com/mcp/files',
    authorizationServers: ['https://as.example', 'https://as.example'],
    scopesSupported: ['mcp:read'],
    dpopAlgorithms: ['ES256'],
    dpopRequired: true,
    certificateBoundTokens: false,
    resourceName: 'Files',
  });
  assert.deepEqual(d, {
    resource: 'https://gw.example.com/mcp/files',
    authorization_servers: ['https://as.example'],
    scopes_supported: ['mcp:read'],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: ['ES256'],
    dpop_bound_access_tokens_required: true,
    tls_client_certificate_bound_access_tokens: false,
    resource_name: 'Files',
  });
});

test('metadata route: per mount path, root form only with one mount, unknown paths undefined', () => {
  const two = makeConfig(undefined, (c) => {
    c.auth.issuers = [{ issuer: 'https://as.example', jwksUri: 'https://as.example/jwks' }];
    c.servers.files.auth.dpop = 'required';
  });
  const route = createMetadataRoute(two, 'https://GW.example.com/', (m) => (m === 'files' ? ['files:write'] : []));
  const r = route('/.well-known/oauth-protected-resource/mcp/files')!;
  assert.equal(r.status, 200);
  assert.equal(r.body.resource, 'https://gw.example.com/mcp/files');
  assert.deepEqual(r.body.authorization_servers, ['https://as.example']);
  assert.deepEqual(r.body.scopes_supported, ['mcp:read', 'files:write']);
  assert.equal(r.body.dpop_bound_access_tokens_required, true);
  assert.equal(r.body.resource_name, 'MCP server files');
  assert.equal(route('/.well-known/oauth-protected-resource/mcp/other')!.body.resource, 'https://gw.example.com/mcp/other');
  assert.equal(route('/.well-known/oauth-protected-resource'), undefined, 'root form is ambiguous with two mounts');
  assert.equal(route('/.well-known/oauth-protected-resource/mcp/nope'), undefined);
  assert.equal(route('/mcp/files'), undefined);

  const one = makeConfig(undefined, (c) => {
    delete c.servers.other;
    c.servers.files.auth.required = false;
  });
  const r1 = createMetadataRoute(one, 'https://gw.example.com/base')('/.well-known/oauth-protected-resource');
  assert.equal(r1!.body.resource, 'https://gw.example.com/base/mcp/files');
  assert.ok(createMetadataRoute(one, 'https://gw.example.com/base')('/.well-known/oauth-protected-resource/base/mcp/files'));
});

test('challenges: step-up scopes are existing plus needed; quoting is safe', () => {
  assert.deepEqual(stepUpScopes(['a', 'b'], ['b', 'c']), ['a', 'b', 'c']);
  const e = insufficientScopeError('https://gw/.well-known/oauth-protected-resource/mcp/x', new Set(['a']), ['tools:write']);
  const w = toWire(e);
  assert.equal(w.status, 403);
  assert.equal(
    w.headers['WWW-Authenticate'],
    'Bearer error="insufficient_scope", error_description="Additional permission required", scope="a tools:write", resource_metadata="https://gw/.well-known/oauth-protected-resource/mcp/x"',
  );
  const d = toWire(insufficientScopeError('https://m', [], ['s'], { scheme: 'DPoP', dpop: 'optional', dpopAlgorithms: ['ES256'] }));
  assert.equal(d.headers['WWW-Authenticate'], 'Bearer scope="s", resource_metadata="https://m", DPoP error="insufficient_scope", error_description="Additional permission required", scope="s", resource_metadata="https://m", algs="ES256"');
  const h = challengeHeader({ resourceMetadataUrl: 'https://m', scopes: [], dpop: undefined, dpopAlgorithms: [] }, { error: 'invalid_token', description: 'a "quoted" \\ value' });
  assert.equal(h, 'Bearer error="invalid_token", error_description="a \\"quoted\\" \\\\ value", resource_metadata="https://m"');
});

test('start-up checks: auth off beyond loopback needs allowUnauthenticated; API key lifetime bounded', () => {
  const off = (host: string, allow: boolean) =>
    makeConfig(undefined, (c) => {
      c.listen = { host, port: 0 };
      c.servers.files.auth = { allowUnauthenticated: allow };
      c.servers.other.auth = { allowUnauthenticated: allow };
    });
  assert.deepEqual(checkIdentityConfig(off('127.0.0.1', false)).warnings, []);
  assert.throws(() => checkIdentityConfig(off('0.0.0.0', false)), /allowUnauthenticated/);
  assert.match(checkIdentityConfig(off('0.0.0.0', true)).warnings.join('\n'), /unauthenticated/);
  const now = Date.parse('2026-01-01T00:00:00Z');
  const keys = (expiresAt: string) =>
    makeConfig(undefined, (c) => {
      c.auth.apiKeys = { enabled: true, keys: [{ id: 'k', sha256: 'a'.repeat(64), expiresAt }] };
    });
  assert.throws(() => checkIdentityConfig(keys('2026-06-01T00:00:00Z'), () => now), /90 days/);
  assert.match(checkIdentityConfig(keys('2026-02-01T00:00:00Z'), () => now).warnings.join('\n'), /legacy API keys are enabled/);
  assert.throws(
    () =>
      checkIdentityConfig(
        makeConfig(undefined, (c) => {
          c.servers.files.auth = { mtls: 'required' };
        }),
      ),
    /tls\.clientCa/,
  );
});

test('config: HS algorithms need an explicit symmetric key; secrets are references', () => {
  assert.throws(() => makeConfig(undefined, (c) => (c.auth.issuers = [{ issuer: 'https://as', jwksUri: 'https://as/j', algorithms: ['HS256'] }])), /symmetricKey/);
  assert.throws(() => makeConfig(undefined, (c) => (c.auth.issuers = [{ issuer: 'https://as' }])), /key source/);
  assert.throws(
    () =>
      makeConfig(undefined, (c) => (c.auth.issuers = [{ issuer: 'https://as', introspection: { endpoint: 'https://as/i', clientId: 'x', clientSecret: 'clear-text' } }])),
    /clientSecret|Invalid/,
  );
});
