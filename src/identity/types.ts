/**
 * The principal: who is calling, as established by the identity layer. One type for every
 * request, whatever the authentication method; the authorization layer decides on it.
 */
export type AuthMethod = 'none' | 'bearer' | 'dpop' | 'mtls' | 'mtls+bearer' | 'mtls+dpop' | 'api-key';

export interface CertificateIdentity {
  /** Subject distinguished name, e.g. `CN=billing-agent,O=Example`. */
  subject: string;
  /** SAN URIs, e.g. SPIFFE IDs `spiffe://example.org/ns/prod/sa/agent`. */
  uris: string[];
  /** SAN DNS names. */
  dnsNames: string[];
  /** SHA-256 thumbprint of the DER certificate, base64url (the RFC 8705 `x5t#S256` value). */
  thumbprint: string;
  serialNumber: string;
  issuer: string;
}

export interface Principal {
  /** `sub` of the token, or the certificate/API key identity; `anonymous` when auth is off. */
  subject: string;
  /** Token issuer (`iss`), or `mtls:` / `api-key:` pseudo-issuers. */
  issuer: string;
  /** OAuth client id (`client_id` / `azp`), when known. */
  clientId: string | undefined;
  scopes: ReadonlySet<string>;
  roles: readonly string[];
  groups: readonly string[];
  authMethod: AuthMethod;
  /** `jti` of the access token, when present. */
  tokenId: string | undefined;
  /** Seconds since epoch. */
  expiresAt: number | undefined;
  /** `iat` of the token, seconds since epoch (for maxTokenAgeSeconds rules). */
  issuedAt: number | undefined;
  /** SHA-256 of the raw token, base64url: a stable handle for revocation and rate limits, never the token. */
  tokenHash: string | undefined;
  certificate: CertificateIdentity | undefined;
  /** Other claims kept for policies (never the raw token). */
  claims: Readonly<Record<string, unknown>>;
}

/** Sessions belong to the principal that created them: issuer + subject + client. */
export function principalKey(p: Principal): string {
  return `${p.issuer}\u0000${p.subject}\u0000${p.clientId ?? ''}`;
}

export const ANONYMOUS: Principal = Object.freeze({
  subject: 'anonymous',
  issuer: 'none',
  clientId: undefined,
  scopes: new Set<string>(),
  roles: [],
  groups: [],
  authMethod: 'none',
  tokenId: undefined,
  expiresAt: undefined,
  issuedAt: undefined,
  tokenHash: undefined,
  certificate: undefined,
  claims: {},
});
