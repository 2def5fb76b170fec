/**
 * Identity from a verified client certificate (mTLS), and the RFC 8705 certificate binding of
 * access tokens (`cnf["x5t#S256"]`). The TLS layer has already verified the chain (and the CRL);
 * this only reads what the certificate says.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { CertificateIdentity } from './types.js';
import { TokenCache } from './token-cache.js';
import { safeEqual } from './util.js';

/** Split Node's `subjectaltname` string ("DNS:a, URI:b", quoted when unusual) into entries. */
export function parseSubjectAltName(san: string | undefined): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  if (!san) return out;
  let i = 0;
  while (i < san.length) {
    while (san[i] === ' ' || san[i] === ',') i++;
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    i = colon + 1;
    let value = '';
    if (san[i] === '"') {
      // JSON-quoted value (Node quotes values with commas, quotes or control characters).
      let j = i + 1;
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(san.slice(i, j + 1)) as string;
      } catch {
        value = san.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const comma = san.indexOf(', ', i);
      const end = comma < 0 ? san.length : comma;
      value = san.slice(i, end);
      i = end;
    }
    out.push({ type, value });
  }
  return out;
}

/** RFC 8705 §3.1: base64url SHA-256 of the DER certificate. */
export function certificateThumbprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}

function dn(s: string): string {
  return s
    .split('\n')
    .filter((x) => x !== '')
    .join(',');
}

export function certificateIdentity(peer: PeerCertificate, thumbprint = certificateThumbprint(peer.raw)): CertificateIdentity {
  const x = new X509Certificate(peer.raw);
  const san = parseSubjectAltName(x.subjectAltName);
  return {
    subject: dn(x.subject),
    uris: san.filter((e) => e.type === 'URI').map((e) => e.value),
    dnsNames: san.filter((e) => e.type === 'DNS').map((e) => e.value),
    thumbprint,
    serialNumber: x.serialNumber,
    issuer: dn(x.issuer),
  };
}

/**
 * certificateIdentity for the request path: parsing the DER (`new X509Certificate`, about 0.2 ms)
 * happens once per certificate, then a bounded LRU keyed by its SHA-256 thumbprint (which the
 * identity carries anyway) answers. The identity is a pure function of the DER, so a hit is the
 * same answer; the chain and CRL are checked by TLS on every connection, not here.
 */
export function certificateIdentityCache(maxEntries = 1024): (peer: PeerCertificate) => CertificateIdentity {
  const cache = new TokenCache<CertificateIdentity>(maxEntries);
  return (peer) => {
    const thumbprint = certificateThumbprint(peer.raw);
    let id = cache.get(thumbprint);
    if (id === undefined) {
      const c = certificateIdentity(peer, thumbprint);
      // Shared between requests: frozen so no consumer can change another request's view.
      Object.freeze(c.uris);
      Object.freeze(c.dnsNames);
      id = Object.freeze(c);
      cache.set(thumbprint, id, Number.POSITIVE_INFINITY);
    }
    return id;
  };
}

/** True when the token's `cnf["x5t#S256"]` names this certificate (constant-time compare). */
export function certificateMatches(x5t: string, cert: CertificateIdentity): boolean {
  return safeEqual(x5t, cert.thumbprint);
}

/** The subject a certificate-only principal gets: its first SPIFFE/URI SAN, else its subject DN. */
export function certificateSubject(cert: CertificateIdentity): string {
  return cert.uris[0] ?? cert.subject;
}
