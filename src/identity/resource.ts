/**
 * The mount as an OAuth protected resource: its canonical resource URI (RFC 8707 audience),
 * the URL of its protected resource metadata (RFC 9728 §3.1) and the metadata document itself.
 * Pure functions: the server serves what they return.
 */
import type { Config } from '../config/schema.js';
import type { MountAuthConfig } from '../config/auth.js';

/** Lowercase scheme and host, no default port, no query, no fragment, no trailing slash. */
export function canonicalBaseUrl(publicUrl: string): string {
  const u = new URL(publicUrl);
  u.hash = '';
  u.search = '';
  // URL already lowercases scheme and host and drops a default port.
  let path = u.pathname;
  while (path.endsWith('/')) path = path.slice(0, -1);
  return `${u.protocol}//${u.host}${path}`;
}

/** Canonical resource URI of a mount: `${publicUrl}/mcp/NAME`. */
export function canonicalResource(publicUrl: string, mount: string): string {
  return `${canonicalBaseUrl(publicUrl)}/mcp/${mount}`;
}

/** RFC 9728 §3.1: the well-known segment goes between the host and the resource path. */
export function resourceMetadataUrl(resource: string): string {
  const u = new URL(resource);
  const path = u.pathname === '/' ? '' : u.pathname;
  return `${u.protocol}//${u.host}/.well-known/oauth-protected-resource${path}`;
}

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ['header'];
  dpop_signing_alg_values_supported: string[];
  dpop_bound_access_tokens_required: boolean;
  tls_client_certificate_bound_access_tokens: boolean;
  resource_name: string;
}

export interface ProtectedResourceMetadataInput {
  resource: string;
  authorizationServers: readonly string[];
  scopesSupported: readonly string[];
  dpopAlgorithms: readonly string[];
  dpopRequired: boolean;
  certificateBoundTokens: boolean;
  resourceName: string;
}

/** The RFC 9728 document of one mount. */
export function protectedResourceMetadata(input: ProtectedResourceMetadataInput): ProtectedResourceMetadata {
  return {
    resource: input.resource,
    authorization_servers: [...new Set(input.authorizationServers)],
    scopes_supported: [...new Set(input.scopesSupported)],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: [...input.dpopAlgorithms],
    dpop_bound_access_tokens_required: input.dpopRequired,
    tls_client_certificate_bound_access_tokens: input.certificateBoundTokens,
    resource_name: input.resourceName,
  };
}

/** What the identity layer needs about a mount (resolved once from the config). */
export interface MountAuthView {
  name: string;
  resource: string;
  resourceMetadataUrl: string;
  auth: MountAuthConfig;
  /** `auth.required` with its default applied. */
  required: boolean;
}

/** `auth.required` default: on once anything can authenticate a request. */
export function authRequired(config: Pick<Config, 'auth' | 'tls'>, mountAuth: MountAuthConfig): boolean {
  if (mountAuth.required !== undefined) return mountAuth.required;
  return config.auth.issuers.length > 0 || config.auth.apiKeys.enabled || mountAuth.mtls === 'required';
}

export function mountAuthView(config: Pick<Config, 'auth' | 'tls' | 'servers'>, publicUrl: string, name: string): MountAuthView {
  const server = config.servers[name];
  if (!server) throw new Error(`unknown mount ${name}`);
  const resource = canonicalResource(publicUrl, name);
  return { name, resource, resourceMetadataUrl: resourceMetadataUrl(resource), auth: server.auth, required: authRequired(config, server.auth) };
}

export function mountMetadata(
  config: Pick<Config, 'auth' | 'tls' | 'servers'>,
  publicUrl: string,
  name: string,
  extraScopes: readonly string[] = [],
): ProtectedResourceMetadata {
  const view = mountAuthView(config, publicUrl, name);
  const tls = config.tls;
  return protectedResourceMetadata({
    resource: view.resource,
    authorizationServers: config.auth.issuers.map((i) => i.issuer),
    scopesSupported: [...view.auth.scopes, ...extraScopes],
    dpopAlgorithms: config.auth.dpop.algorithms,
    dpopRequired: view.auth.dpop === 'required',
    certificateBoundTokens: !!(tls?.clientCa && (tls.requestClientCert || tls.requireClientCert)),
    resourceName: view.auth.resourceName ?? `MCP server ${name}`,
  });
}

const PRM_PREFIX = '/.well-known/oauth-protected-resource';

export interface MetadataResponse {
  status: 200;
  headers: Record<string, string>;
  body: ProtectedResourceMetadata;
}

/**
 * Build the route function the server calls for every GET: returns the metadata document for
 * `/.well-known/oauth-protected-resource/mcp/NAME` (also with the public URL path prefix, and the
 * bare root form when exactly one mount is configured), or undefined when the path is not a
 * metadata path or names no mount (the server answers 404).
 * `extraScopes(name)` lets the authorization layer add the scopes its rules use.
 */
export function createMetadataRoute(
  config: Pick<Config, 'auth' | 'tls' | 'servers'>,
  publicUrl: string,
  extraScopes: (mount: string) => readonly string[] = () => [],
): (path: string) => MetadataResponse | undefined {
  const basePath = new URL(canonicalBaseUrl(publicUrl)).pathname.replace(/\/$/, '');
  const names = Object.keys(config.servers);
  const docs = new Map<string, ProtectedResourceMetadata>();
  for (const name of names) {
    const doc = mountMetadata(config, publicUrl, name, extraScopes(name));
    docs.set(`${PRM_PREFIX}/mcp/${name}`, doc);
    if (basePath !== '') docs.set(`${PRM_PREFIX}${basePath}/mcp/${name}`, doc);
  }
  if (names.length === 1) {
    const only = docs.get(`${PRM_PREFIX}/mcp/${names[0]!}`)!;
    docs.set(PRM_PREFIX, only);
    if (basePath !== '') docs.set(`${PRM_PREFIX}${basePath}`, only);
  }
  const headers = { 'content-type': 'application/json', 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' };
  return (path: string) => {
    let p = path;
    if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    const body = docs.get(p);
    return body ? { status: 200, headers: { ...headers }, body } : undefined;
  };
}
