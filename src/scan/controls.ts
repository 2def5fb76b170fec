/**
 * The hardening controls the posture scanner checks, one table (docs/scan.md repeats it).
 * Each finding names the control it violates by `name`.
 */
import type { LayerName } from './types.js';

export interface Control {
  id: string;
  layer: LayerName;
  name: string;
  description: string;
}

const table = [
  ['T1', 'transport', 'Transport: TLS required', 'The MCP endpoint is served over HTTPS only; plain HTTP is not reachable (or only redirects to HTTPS).'],
  ['T2', 'transport', 'Transport: TLS 1.3 only', 'Only TLS 1.3 (at least TLS 1.2 with modern ciphers) is accepted; TLS 1.0 and 1.1 are refused.'],
  ['T3', 'transport', 'Transport: valid certificate', 'The certificate chains to a trusted root, matches the host name and is not expired or close to expiry.'],
  ['T4', 'transport', 'Transport: HSTS', 'HTTPS responses carry Strict-Transport-Security with max-age of at least 180 days.'],
  ['T5', 'transport', 'Transport: Origin validation', 'Requests with a foreign Origin header are refused with 403 (MCP transport spec; stops browser-driven attacks).'],
  ['T6', 'transport', 'Transport: Host validation (DNS rebinding)', 'Requests with an unexpected Host header are refused with a 4xx.'],
  ['T7', 'transport', 'Transport: protocol version validation', 'An invalid or unsupported MCP-Protocol-Version header gets 400 Bad Request.'],
  ['I1', 'identity', 'Identity: authentication required', 'Every MCP request needs valid credentials (OAuth 2.1 bearer token); unauthenticated initialize gets 401.'],
  ['I2', 'identity', 'Identity: correct 401 challenge', 'A 401 carries `WWW-Authenticate: Bearer` with `resource_metadata` (MCP authorization spec, RFC 9728 §5.1).'],
  ['I3', 'identity', 'Identity: RFC 9728 metadata', 'Protected resource metadata is published at the well-known URL, is valid JSON, names authorization servers, and its `resource` is the MCP URL.'],
  ['I4', 'identity', 'Identity: PKCE S256, no implicit/password grants', 'The authorization server metadata (RFC 8414 / OIDC discovery) advertises `code_challenge_methods_supported` with S256 and neither the implicit nor the password grant.'],
  ['I5', 'identity', 'Identity: tokens only in the Authorization header', 'A token in the query string (`access_token=`) is refused or ignored (OAuth 2.1 §5.1.1); arbitrary bearer strings are refused.'],
  ['I6', 'identity', 'Identity: unguessable session ids', 'Session ids are long, random (at least 64 bits of entropy) and not sequential.'],
  ['I7', 'identity', 'Identity: session id is not a credential', 'A session id without the credentials that created it is refused (MCP: sessions are not used for authentication).'],
  ['A1', 'authorization', 'Authorization: least privilege per tool', 'Tools are not all callable by anyone; access to each tool depends on the caller.'],
  ['A2', 'authorization', 'Authorization: per-tool scopes', 'The protected resource metadata advertises scopes fine-grained enough to grant tools separately (`scopes_supported`).'],
  ['A3', 'authorization', 'Authorization: caller-dependent tool list', 'The tool list depends on the caller\'s credentials (tools a caller may not use are hidden).'],
  ['S1', 'tools', 'Tools: definitions free of poisoning', 'Tool, prompt and resource definitions and the server instructions carry no hidden instructions, invisible characters or exfiltration requests.'],
  ['S2', 'tools', 'Tools: dangerous capabilities gated', 'Tools that execute code, write files, send data out or access credentials are reviewed and gated (per-tool scopes, approval).'],
  ['S3', 'tools', 'Tools: no toxic flows', 'One server does not combine reading untrusted or private content with sending data out (the lethal trifecta).'],
  ['S4', 'tools', 'Tools: pinned definitions', 'Definitions match the reviewed lockfile (no rug pull since the last pin).'],
] as const;

export const CONTROLS: readonly Control[] = table.map(([id, layer, name, description]) => ({ id, layer, name, description }));

const byId = new Map(CONTROLS.map((c) => [c.id, c]));

/** The control's name (what a finding's `control` says). Throws on an unknown id: the table is closed. */
export function control(id: string): string {
  const c = byId.get(id);
  if (!c) throw new Error(`unknown control ${id}`);
  return c.name;
}

export function controlByName(name: string): Control | undefined {
  return CONTROLS.find((c) => c.name === name);
}
