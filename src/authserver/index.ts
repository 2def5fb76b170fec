/**
 * Embedded development authorization server, built on `oidc-provider` (OpenID Certified).
 *
 * Loaded lazily (dynamic import) by `bastion dev`, so production installs never load it. The
 * protocol work is the library's: this file chooses its features and policies and wires the
 * login/consent pages (interactions.ts), the keys (state.ts) and an http/https listener.
 *
 * Policy, in one place:
 * - authorization code + PKCE S256 only (no plain, no implicit, no password grant); the
 *   redirect_uri is always required and matched exactly (RFC 8252 loopback port rule aside);
 * - resource indicators (RFC 8707) -> RS256 JWT access tokens (RFC 9068, typ at+jwt) whose
 *   `aud` is the mount, scopes limited to that mount's list, short-lived;
 * - refresh tokens rotated on every use; reuse of a rotated one revokes the whole grant;
 * - revocation (RFC 7009), introspection (RFC 7662), open dynamic registration (RFC 7591),
 *   Client ID Metadata Documents, client_credentials with private_key_jwt or tls_client_auth,
 *   certificate-bound (cnf x5t#S256) and DPoP-bound (cnf.jkt) tokens.
 * - listens on loopback only unless `unsafeExpose` is set.
 */
import { X509Certificate } from 'node:crypto';
import { isLoopbackHost } from '../config/loopback.js';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { TLSSocket } from 'node:tls';
import type { JWK } from 'jose';
import { BastionError } from '../errors.js';
import { createInteractionHandler, escapeHtml, PAGE_HEADERS, type DevUser } from './interactions.js';
import { loadOrCreateSecrets, publicJwk, writeDevClientFile, type DevClientFile } from './state.js';

export type { DevUser } from './interactions.js';
export type { DevClientFile } from './state.js';

/** The client id of the `bastion token` helper (pre-registered, private_key_jwt, key in the state folder). */
export const DEV_CLI_CLIENT_ID = 'bastion-cli';
/** Where the helper's authorization code is sent; nothing listens there, the helper reads the redirect. */
export const DEV_CLI_REDIRECT_URI = 'http://127.0.0.1/bastion-token/callback';

export interface DevResource {
  /** The resource indicator (RFC 8707) = the MCP URL of a mount, e.g. `http://127.0.0.1:8080/mcp/notes`. */
  resource: string;
  /** Scopes this mount accepts. Tokens for it carry only these. */
  scopes: string[];
  /** Short name for `bastion token --mount NAME` (default: the last path segment). */
  name?: string;
  /**
   * `jwt` (default): RFC 9068 JWT access tokens, verified locally by the gateway; oidc-provider
   * cannot revoke or introspect them (they live until `exp`, 10 minutes by default).
   * `opaque`: reference tokens the gateway must introspect (RFC 7662); revocation is immediate.
   */
  accessTokenFormat?: 'jwt' | 'opaque';
}

export interface DevMachineClient {
  clientId: string;
  clientName?: string;
  /** How it authenticates at the token endpoint. */
  auth:
    | { method: 'private_key_jwt'; jwks: { keys: JWK[] } }
    | {
        /** For a resource server (the gateway) calling introspection; keep the secret out of files you commit. */
        method: 'client_secret_basic';
        secret: string;
      }
    | {
        method: 'tls_client_auth';
        /** Expected certificate subject DN, e.g. `CN=billing-bot,O=Example` (RFC 4514 order or X.509 order). */
        subjectDn: string;
      };
  /** Default: ['client_credentials']. */
  grantTypes?: string[];
  /** Needed only with the authorization_code grant. */
  redirectUris?: string[];
  /** Space-separated scopes the client may ask for (default: any resource scope). */
  scope?: string;
  /** Put into its client_credentials tokens as `roles` / `groups`. */
  roles?: string[];
  groups?: string[];
}

export interface DevAuthServerOptions {
  /** Listen address (default 127.0.0.1). Anything but loopback needs `unsafeExpose: true`. */
  host?: string;
  /** Port (0 = any free port). Default 0. */
  port?: number;
  /** Issuer URL (default `http(s)://host:port`). */
  issuer?: string;
  /** Folder for keys (created 0700, files 0600). Keep it out of the repository, e.g. `.bastion/authserver`. */
  stateDir: string;
  /** The mounts tokens can be issued for. */
  resources: DevResource[];
  users: DevUser[];
  /** Log this user in and consent automatically (headless clients, tests). Env: BASTION_DEV_AUTO_LOGIN. */
  autoLogin?: string;
  /** Access token lifetime, seconds. Default 600. */
  accessTokenTtlSeconds?: number;
  /** Refresh token lifetime, seconds. Default 86400. */
  refreshTokenTtlSeconds?: number;
  /** Pre-registered machine clients. */
  clients?: DevMachineClient[];
  /** Serve https; with `ca`, client certificates are requested (mTLS: tls_client_auth, cnf x5t#S256). */
  https?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Allow a non-loopback listen address. Dangerous: anyone who can reach it can get tokens. */
  unsafeExpose?: boolean;
  /**
   * fetch used to retrieve Client ID Metadata Documents (https client_id URLs). Default: global
   * fetch. Tests and corporate proxies inject their own.
   */
  clientMetadataFetch?: typeof fetch;
  /** Warnings (e.g. exposing beyond loopback). Default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

export interface DevAuthServer {
  issuer: string;
  /** RFC 8414 metadata URL (the OIDC discovery document is served too). */
  metadataUrl: string;
  openidConfigurationUrl: string;
  jwksUri: string;
  tokenEndpoint: string;
  registrationEndpoint: string;
  introspectionEndpoint: string;
  revocationEndpoint: string;
  /** Address actually bound. */
  host: string;
  port: number;
  /** The file `bastion token` reads (0600). */
  devClientFile: string;
  stateDir: string;
  close(): Promise<void>;
}

const POLICY_HOOK = 'urn:bastion:client-policy';

export { isLoopbackHost };

function resourceName(r: DevResource): string {
  if (r.name) return r.name;
  const segments = new URL(r.resource).pathname.split('/').filter(Boolean);
  return segments.at(-1) ?? new URL(r.resource).host;
}

/** Normalizes a DN to comparable RDNs: "CN=a, O=b" and X509Certificate's "CN=a\nO=b" alike. */
function dnParts(dn: string): string[] {
  return dn
    .split(/[\n,]/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const i = p.indexOf('=');
      return i < 0 ? p : `${p.slice(0, i).trim().toUpperCase()}=${p.slice(i + 1).trim()}`;
    });
}

function dnMatches(certSubject: string, expected: string): boolean {
  const a = dnParts(certSubject);
  const b = dnParts(expected);
  if (a.length !== b.length) return false;
  const same = (x: string[], y: string[]) => x.every((v, i) => v === y[i]);
  return same(a, b) || same(a, [...b].reverse());
}

function peerCertificate(ctx: { socket?: unknown; req?: { socket?: unknown } }): X509Certificate | undefined {
  const socket = ctx.req?.socket ?? ctx.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw || peer.raw.length === 0) return undefined;
  return new X509Certificate(peer.raw);
}

function machineClientMetadata(c: DevMachineClient): Record<string, unknown> {
  const base: Record<string, unknown> = {
    client_id: c.clientId,
    client_name: c.clientName ?? c.clientId,
    grant_types: c.grantTypes ?? ['client_credentials'],
    redirect_uris: c.redirectUris ?? [],
    response_types: (c.grantTypes ?? ['client_credentials']).includes('authorization_code') ? ['code'] : [],
  };
  if (c.scope !== undefined) base.scope = c.scope;
  if (c.auth.method === 'client_secret_basic') {
    if (c.auth.secret.length < 32) {
      throw new BastionError('ERR_BASTION_CONFIG_INVALID', `client ${c.clientId}: a client secret must be at least 32 characters`);
    }
    return { ...base, token_endpoint_auth_method: 'client_secret_basic', client_secret: c.auth.secret };
  }
  if (c.auth.method === 'private_key_jwt') {
    return { ...base, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: c.auth.jwks.keys.map(publicJwk) } };
  }
  return {
    ...base,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: c.auth.subjectDn,
    tls_client_certificate_bound_access_tokens: true,
  };
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen(server.address() as AddressInfo);
    });
  });
}

export async function startDevAuthServer(options: DevAuthServerOptions): Promise<DevAuthServer> {
  const host = options.host ?? '127.0.0.1';
  const warn = options.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'BASTION_DEV_AUTH_EXPOSED' }));
  if (!isLoopbackHost(host)) {
    if (!options.unsafeExpose) {
      throw new BastionError(
        'ERR_BASTION_CONFIG_INVALID',
        `the development authorization server refuses to listen on ${host}: it is not a loopback address. ` +
          'It hands out tokens to any dev user (auto-login, open client registration, passwords from config), ' +
          'so anyone who can reach it could obtain tokens for your gateway. Use 127.0.0.1 (the default), ' +
          'or pass --unsafe-expose (unsafeExpose: true) if you really mean to share it on a trusted network.',
      );
    }
    warn(
      `the development authorization server listens on ${host}, beyond loopback (--unsafe-expose): ` +
        'anyone who can reach it can obtain tokens. Never use it in production.',
    );
  }
  if (!options.stateDir) throw new BastionError('ERR_BASTION_CONFIG_INVALID', 'stateDir is required (e.g. .bastion/authserver)');
  if (options.resources.length === 0) {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', 'the development authorization server needs at least one resource (mount)');
  }

  const users = new Map<string, DevUser>();
  for (const u of options.users) users.set(u.id, u);
  const autoLogin = options.autoLogin ?? (process.env.BASTION_DEV_AUTO_LOGIN || undefined);
  if (autoLogin !== undefined && !users.has(autoLogin)) {
    throw new BastionError(
      'ERR_BASTION_CONFIG_INVALID',
      `auto-login user "${autoLogin}" is not one of the dev users (${[...users.keys()].join(', ') || 'none configured'})`,
    );
  }
  const ttl = options.accessTokenTtlSeconds ?? 600;
  const refreshTtl = options.refreshTokenTtlSeconds ?? 86_400;
  const resources = new Map<string, DevResource>();
  for (const r of options.resources) {
    const parsed = URL.parse(r.resource);
    if (!parsed || parsed.hash || !/^https?:$/.test(parsed.protocol)) {
      throw new BastionError('ERR_BASTION_CONFIG_INVALID', `resource ${r.resource} must be an absolute http(s) URL without a fragment`);
    }
    resources.set(r.resource, r);
  }
  const allScopes = new Set<string>(['openid', 'offline_access']);
  for (const r of options.resources) for (const s of r.scopes) allScopes.add(s);

  const stateDir = resolve(options.stateDir);
  const secrets = await loadOrCreateSecrets(stateDir);
  const machineClients = options.clients ?? [];
  const machineById = new Map(machineClients.map((c) => [c.clientId, c]));
  const staticClientIds = new Set([DEV_CLI_CLIENT_ID, ...machineById.keys()]);
  if (staticClientIds.size !== machineClients.length + 1) {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `pre-registered client ids must be unique and must not be "${DEV_CLI_CLIENT_ID}"`);
  }

  // Listen first (port 0 -> the real port), then build the provider with the final issuer.
  const mtls = Boolean(options.https?.ca);
  const needsMtls = machineClients.filter((c) => c.auth.method === 'tls_client_auth').map((c) => c.clientId);
  if (needsMtls.length > 0 && !mtls) {
    throw new BastionError(
      'ERR_BASTION_CONFIG_INVALID',
      `client ${needsMtls.join(', ')} uses tls_client_auth, which needs the server behind TLS with client certificates: set https {cert, key, ca}`,
    );
  }
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => handler(req, res);
  const server: Server = options.https
    ? createHttpsServer(
        {
          cert: options.https.cert,
          key: options.https.key,
          ...(options.https.ca ? { ca: options.https.ca, requestCert: true, rejectUnauthorized: false } : {}),
        },
        onRequest,
      )
    : createHttpServer(onRequest);
  const address = await listen(server, options.port ?? 0, host);
  const urlHost = isIP(address.address) === 6 ? `[${address.address}]` : address.address;
  const issuer = (options.issuer ?? `${options.https ? 'https' : 'http'}://${urlHost}:${address.port}`).replace(/\/$/, '');

  const { default: Provider, errors } = await import('oidc-provider');

  const configuration: Record<string, unknown> = {
    clients: [
      {
        client_id: DEV_CLI_CLIENT_ID,
        client_name: 'bastion token (development helper)',
        application_type: 'native',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [DEV_CLI_REDIRECT_URI],
        token_endpoint_auth_method: 'private_key_jwt',
        // Its login_hint sign-in must not be startable by a web page: the request itself is
        // pushed (PAR) and therefore authenticated with the state-folder key.
        require_pushed_authorization_requests: true,
        jwks: { keys: [publicJwk(secrets.devClientKey)] },
      },
      ...machineClients.map(machineClientMetadata),
    ],
    jwks: secrets.jwks,
    cookies: { keys: secrets.cookieKeys },
    scopes: [...allScopes],
    claims: { openid: ['sub'] },
    // Not a real metadata field: a hook that oidc-provider calls for every client it loads
    // (static, registered, or fetched as a metadata document). Only pre-registered clients may
    // use client_credentials; a dynamically registered or CIMD client gets a user's consent.
    extraClientMetadata: {
      properties: [POLICY_HOOK],
      validator: (_ctx: unknown, key: string, _value: unknown, metadata: Record<string, unknown>) => {
        if (key !== POLICY_HOOK) return;
        metadata[POLICY_HOOK] = undefined;
        if (staticClientIds.has(String(metadata.client_id))) return;
        // A registered `scope` would cap the client at the scopes of its first challenge (the
        // MCP SDK registers with those), and step-up would then fail with invalid_scope. The
        // gates are the mount's scope list and the user's consent, so it is dropped.
        delete metadata.scope;
        const grants = (metadata.grant_types as string[] | undefined) ?? [];
        const refused = grants.filter((g) => g !== 'authorization_code' && g !== 'refresh_token');
        if (refused.length > 0) {
          throw new errors.InvalidClientMetadata!(
            `grant type ${refused.join(', ')} is only for pre-registered clients; registered and metadata-document clients use authorization_code (and refresh_token)`,
          );
        }
      },
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    allowOmittingSingleRegisteredRedirectUri: false,
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt', ...(mtls ? ['tls_client_auth'] : [])],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    enabledJWA: {
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      dPoP: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // A public client may only introspect its own tokens; authenticated clients (the
        // gateway, machine clients) may introspect any.
        allowedPolicy: async (
          ctx: { oidc: { client: { clientId: string } } },
          client: { clientAuthMethod: string },
          token: { clientId?: string },
        ) => !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          token.clientId === client.clientId,
      },
      registration: { enabled: true, initialAccessToken: false },
      clientIdMetadataDocument: {
        enabled: true,
        ack: 'draft-02',
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          const r = resources.get(indicator);
          if (!r) {
            throw new errors.InvalidTarget!(
              `unknown resource ${indicator}; this server issues tokens for: ${[...resources.keys()].join(', ')}`,
            );
          }
          return {
            scope: r.scopes.join(' '),
            audience: r.resource,
            accessTokenTTL: ttl,
            ...(r.accessTokenFormat === 'opaque'
              ? { accessTokenFormat: 'opaque' }
              : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
          };
        },
      },
      mTLS: {
        enabled: mtls,
        certificateBoundAccessTokens: mtls,
        tlsClientAuth: mtls,
        getCertificate: (ctx: { socket?: unknown; req?: { socket?: unknown } }) => peerCertificate(ctx),
        certificateAuthorized: (ctx: { req?: { socket?: unknown }; socket?: unknown }) => {
          const socket = ctx.req?.socket ?? ctx.socket;
          return socket instanceof TLSSocket && socket.authorized;
        },
        certificateSubjectMatches: (ctx: { socket?: unknown; req?: { socket?: unknown } }, property: string, expected: string) => {
          const cert = peerCertificate(ctx);
          if (!cert) return false;
          if (property === 'tls_client_auth_subject_dn') return dnMatches(cert.subject, expected);
          if (property === 'tls_client_auth_san_dns') {
            return (cert.subjectAltName ?? '').split(',').some((s) => s.trim() === `DNS:${expected}`);
          }
          return false;
        },
      },
    },
    rotateRefreshToken: true,
    // MCP clients do not ask for offline_access; their refresh tokens should not die with the
    // browser session at this server (they live refreshTokenTtlSeconds, rotated on use).
    expiresWithSession: async () => false,
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: () => ttl,
      ClientCredentials: () => ttl,
      AuthorizationCode: () => 60,
      IdToken: () => ttl,
      RefreshToken: () => refreshTtl,
      Interaction: () => 600,
      Session: () => 3600,
      Grant: () => refreshTtl,
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: user.id,
        claims: async () => ({ sub: user.id, roles: user.roles ?? [], groups: user.groups ?? [] }),
      };
    },
    extraTokenClaims: async (
      _ctx: unknown,
      token: { kind?: string; accountId?: string; clientId?: string },
    ): Promise<Record<string, unknown> | undefined> => {
      if (token.accountId) {
        const user = users.get(token.accountId);
        if (user) return { roles: user.roles ?? [], groups: user.groups ?? [] };
        return undefined;
      }
      const machine = token.clientId ? machineById.get(token.clientId) : undefined;
      if (machine) return { roles: machine.roles ?? [], groups: machine.groups ?? [] };
      return undefined;
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    renderError: async (
      ctx: { type: string; body: string; set(h: Record<string, string>): void; status: number },
      out: { error?: string; error_description?: string },
    ) => {
      ctx.set({ ...PAGE_HEADERS });
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Authorization error</title></head>
<body><h1>Authorization error</h1><p><code>${escapeHtml(out.error ?? 'error')}</code></p>
<p>${escapeHtml(out.error_description ?? '')}</p></body></html>`;
    },
    ...(options.clientMetadataFetch ? { fetch: options.clientMetadataFetch } : {}),
  };

  const provider = new Provider(issuer, configuration);
  const interactions = createInteractionHandler({
    provider,
    issuer,
    users,
    csrfKey: secrets.csrfKey,
    autoLogin,
    devClientId: DEV_CLI_CLIENT_ID,
  });
  const providerCallback = provider.callback();
  // DNS rebinding: a web page whose name resolves to 127.0.0.1 would be same-origin with this
  // server and, with auto-login, could run a whole flow. Only our own Host names are served.
  const allowedHosts = new Set([new URL(issuer).host.toLowerCase(), `${urlHost}:${address.port}`.toLowerCase()]);
  if (isLoopbackHost(address.address)) {
    for (const name of ['localhost', '127.0.0.1', '[::1]']) allowedHosts.add(`${name}:${address.port}`);
  }
  handler = (req, res) => {
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    if (!allowedHosts.has(hostHeader)) {
      res.writeHead(421, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`this development authorization server answers only for ${[...allowedHosts].join(', ')}\n`);
      return;
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/interaction/')) {
      void interactions(req, res);
      return;
    }
    providerCallback(req, res);
  };

  const devFile: DevClientFile = {
    issuer,
    clientId: DEV_CLI_CLIENT_ID,
    redirectUri: DEV_CLI_REDIRECT_URI,
    privateJwk: secrets.devClientKey,
    resources: options.resources.map((r) => ({ name: resourceName(r), resource: r.resource, scopes: [...r.scopes] })),
  };
  const devClientFile = await writeDevClientFile(stateDir, devFile);

  return {
    issuer,
    metadataUrl: `${issuer}/.well-known/oauth-authorization-server`,
    openidConfigurationUrl: `${issuer}/.well-known/openid-configuration`,
    jwksUri: `${issuer}/jwks`,
    tokenEndpoint: `${issuer}/token`,
    registrationEndpoint: `${issuer}/reg`,
    introspectionEndpoint: `${issuer}/token/introspection`,
    revocationEndpoint: `${issuer}/token/revocation`,
    host: address.address,
    port: address.port,
    devClientFile,
    stateDir,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
