/** Build the Principal from what was verified: a token, a certificate, or an API key. */
import type { AuthConfig } from '../config/auth.js';
import type { AuthMethod, CertificateIdentity, Principal } from './types.js';
import { certificateSubject } from './certificate.js';
import { claimStrings } from './util.js';
import type { VerifiedToken } from './verifier.js';

export interface ClaimMapping {
  roles: readonly string[];
  groups: readonly string[];
}

function collect(claims: Record<string, unknown>, paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) for (const v of claimStrings(claims, p)) out.add(v);
  return [...out];
}

export function principalFromToken(
  vt: VerifiedToken,
  mapping: ClaimMapping | AuthConfig['claims'],
  authMethod: AuthMethod,
  certificate: CertificateIdentity | undefined,
): Principal {
  const claims = vt.claims as Record<string, unknown>;
  return Object.freeze({
    subject: vt.subject,
    issuer: vt.issuer,
    clientId: vt.clientId,
    scopes: new Set(vt.scopes),
    roles: Object.freeze(collect(claims, mapping.roles)),
    groups: Object.freeze(collect(claims, mapping.groups)),
    authMethod,
    tokenId: vt.tokenId,
    expiresAt: vt.expiresAt,
    issuedAt: vt.issuedAt,
    tokenHash: vt.tokenHash,
    certificate,
    claims: vt.claims,
  });
}

/** A principal authenticated by its client certificate alone. */
export function principalFromCertificate(cert: CertificateIdentity): Principal {
  return Object.freeze({
    subject: certificateSubject(cert),
    issuer: `mtls:${cert.issuer}`,
    clientId: undefined,
    scopes: new Set<string>(),
    roles: [],
    groups: [],
    authMethod: 'mtls' as const,
    tokenId: undefined,
    expiresAt: undefined,
    issuedAt: undefined,
    tokenHash: undefined,
    certificate: cert,
    claims: {},
  });
}
