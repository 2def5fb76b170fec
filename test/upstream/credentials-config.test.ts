/** The config contract of upstream credentials: references to secrets only, never secrets in clear. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';

const LITERAL = 'sk-live-DoNotPrintMe-42';

function configError(credentials: unknown): string {
  try {
    parseConfig({ servers: { crm: { http: { url: 'https://crm.example/mcp', credentials } } } }, 'bastion.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('the config was accepted');
}

test('valid credential references are accepted', () => {
  for (const credentials of [
    { type: 'header', name: 'X-Api-Key', env: 'UPSTREAM_KEY' },
    { type: 'header', name: 'Authorization', file: '/run/secrets/crm', prefix: 'Bearer ' },
    { type: 'client_credentials', tokenUrl: 'https://as.example/token', clientId: 'gw', clientSecret: { env: 'GW_SECRET' } },
    { type: 'token_exchange', tokenUrl: 'http://127.0.0.1:9000/token', clientId: 'gw', clientSecret: { file: 'secret.txt' }, audience: 'crm' },
  ]) {
    const { config } = parseConfig({ servers: { crm: { http: { url: 'https://crm.example/mcp', credentials } } } });
    assert.equal(config.servers.crm!.http!.credentials!.type, credentials.type);
  }
});

test('a literal secret is rejected, saying what to write instead, without echoing it', () => {
  const cases: unknown[] = [
    { type: 'header', name: 'X-Api-Key', value: LITERAL },
    { type: 'header', name: 'X-Api-Key', secret: LITERAL },
    { type: 'header', name: 'X-Api-Key', token: LITERAL, env: 'K' },
    { type: 'client_credentials', tokenUrl: 'https://as.example/token', clientId: 'gw', clientSecret: LITERAL },
    { type: 'token_exchange', tokenUrl: 'https://as.example/token', clientId: 'gw', clientSecret: { env: 'GW' }, password: LITERAL },
  ];
  for (const c of cases) {
    const msg = configError(c);
    assert.match(msg, /bastion\.yaml/);
    assert.match(msg, /servers\.crm\.http\.credentials\.(value|secret|token|clientSecret|password): secrets are never written in the config in clear: name an environment variable \(env: VAR_NAME\) or a file/);
    assert.ok(!msg.includes(LITERAL), msg);
  }
});

test('unknown keys (e.g. client_secret) are rejected too', () => {
  const msg = configError({ type: 'client_credentials', tokenUrl: 'https://as.example/token', clientId: 'gw', clientSecret: { env: 'GW' }, client_secret: LITERAL });
  assert.match(msg, /client_secret: unknown key/);
  assert.ok(!msg.includes(LITERAL));
});

test('exactly one of env or file; token endpoint must be https except on loopback', () => {
  assert.match(configError({ type: 'header', name: 'X-Api-Key' }), /exactly one of `env` or `file`/);
  assert.match(configError({ type: 'header', name: 'X-Api-Key', env: 'A', file: 'b' }), /exactly one of `env` or `file`/);
  assert.match(
    configError({ type: 'client_credentials', tokenUrl: 'http://as.example/token', clientId: 'gw', clientSecret: { env: 'GW' } }),
    /tokenUrl: the token endpoint must use https/,
  );
  assert.match(configError({ type: 'header', name: 'Bad Header', env: 'A' }), /name: an HTTP header name/);
});

test('http.headers: framing and MCP transport headers are refused naming the key; a name given twice (any case) too; a credential cannot name them', () => {
  const headersError = (headers: Record<string, string>): string => {
    try {
      parseConfig({ servers: { crm: { http: { url: 'https://crm.example/mcp', headers } } } }, 'bastion.yaml');
    } catch (err) {
      return (err as Error).message;
    }
    return assert.fail(`accepted ${JSON.stringify(headers)}`);
  };
  for (const name of ['Transfer-Encoding', 'content-length', 'Connection', 'TE', 'Upgrade', 'Expect', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'mcp-protocol-version']) {
    const msg = headersError({ [name]: 'x' });
    assert.match(msg, /bastion\.yaml/);
    assert.match(msg, new RegExp(`servers\\.crm\\.http\\.headers\\.${name}.*set by the gateway`, 'i'));
  }
  assert.match(headersError({ 'X-Tenant': 'a', 'x-tenant': 'b' }), /given twice/);
  assert.match(headersError({ 'X-Tenant': 'a\r\nX-Injected: 1' }), /servers\.crm\.http\.headers\.X-Tenant.*cannot hold/);
  assert.match(headersError({ Host: 'crm.internal evil' }), /servers\.crm\.http\.headers\.Host.*cannot hold/);
  parseConfig({ servers: { crm: { http: { url: 'https://crm.example/mcp', headers: { Host: 'crm.internal', 'X-Tenant': 'a' } } } } }, 'bastion.yaml');
  for (const name of ['Transfer-Encoding', 'Host', 'Content-Type']) {
    assert.match(configError({ type: 'header', name, env: 'UPSTREAM_KEY' }), /set by the gateway itself/);
  }
});
