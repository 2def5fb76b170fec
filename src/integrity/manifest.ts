/**
 * Signed tool manifests: a publisher signs, with Ed25519, the canonical hashes of a server's
 * definitions; the gateway verifies the signature against the publisher keys trusted for that
 * server and lets covered definitions through (or, with `requireSignedManifest`, holds back
 * everything that is not covered).
 *
 * Format: a JWS compact serialization (RFC 7515), `alg: EdDSA`, `typ: bastion-manifest+jws`,
 * whose payload is JSON:
 *   { "format": 1, "server": "NAME", "version": "1.4.0", "signer": "publisher id",
 *     "issuedAt": "ISO-8601", "definitions": [ { "kind": "tool", "name": "…", "hash": "sha256:…" } ] }
 * Versions are dotted numbers (1, 1.4, 1.4.0); a version lower than the highest one accepted
 * before for that server is a downgrade and is refused.
 *
 * Errors separate "cryptographically invalid" (malformed, bad signature under every trusted
 * key) from "valid but not acceptable" (other server, downgrade).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { DEFINITION_KINDS, type DefinitionKind } from './types.js';

export const MANIFEST_TYP = 'bastion-manifest+jws';

export interface ManifestEntry {
  kind: DefinitionKind;
  name: string;
  hash: string;
}

export interface ManifestPayload {
  format: 1;
  server: string;
  version: string;
  signer: string;
  issuedAt: string;
  definitions: ManifestEntry[];
}

export type ManifestFailure =
  | 'malformed' // not a JWS of this format
  | 'bad-signature' // no trusted key verifies it (tampered, or signed by another key)
  | 'no-trusted-keys' // nothing to verify against
  | 'wrong-server' // signed for another server
  | 'downgrade'; // version lower than the one accepted before

export type ManifestVerification =
  | { ok: true; manifest: ManifestPayload; covered: ReadonlyMap<string, ManifestEntry>; keyIndex: number }
  | { ok: false; failure: ManifestFailure; message: string };

const VERSION = /^\d{1,9}(?:\.\d{1,9}){0,3}$/;

/** Compare dotted numeric versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isVersion(v: string): boolean {
  return VERSION.test(v);
}

function ed25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? key.type} key; manifests use Ed25519 keys`);
  return key;
}

/** A trusted publisher key from PEM (SPKI public key, certificate, or a private key's public half). */
export function publicKeyFromPem(pem: string): KeyObject {
  const k = createPublicKey(pem);
  return ed25519(k, 'the trusted key');
}

export function privateKeyFromPem(pem: string): KeyObject {
  return ed25519(createPrivateKey(pem), 'the signing key');
}

export interface SignManifestInput {
  server: string;
  version: string;
  signer: string;
  definitions: readonly ManifestEntry[];
  /** Defaults to now. */
  issuedAt?: Date;
}

export async function signManifest(input: SignManifestInput, privateKey: KeyObject, kid?: string): Promise<string> {
  if (!isVersion(input.version)) throw new Error(`manifest version "${input.version}" must be dotted numbers, e.g. 1.4.0`);
  const definitions = [...input.definitions].sort((a, b) => (a.kind + a.name < b.kind + b.name ? -1 : a.kind + a.name > b.kind + b.name ? 1 : 0));
  const payload: ManifestPayload = {
    format: 1,
    server: input.server,
    version: input.version,
    signer: input.signer,
    issuedAt: (input.issuedAt ?? new Date()).toISOString(),
    definitions: definitions.map((d) => ({ kind: d.kind, name: d.name, hash: d.hash })),
  };
  const header: { alg: 'EdDSA'; typ: string; kid?: string } = { alg: 'EdDSA', typ: MANIFEST_TYP };
  if (kid) header.kid = kid;
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader(header).sign(privateKey);
}

function parsePayload(bytes: Uint8Array): ManifestPayload | string {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return 'payload is not JSON';
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'payload is not an object';
  const p = v as Record<string, unknown>;
  if (p.format !== 1) return 'unknown manifest format';
  if (typeof p.server !== 'string' || typeof p.signer !== 'string' || typeof p.issuedAt !== 'string') return 'server, signer and issuedAt must be strings';
  if (typeof p.version !== 'string' || !isVersion(p.version)) return 'version must be dotted numbers';
  if (!Array.isArray(p.definitions)) return 'definitions must be an array';
  for (const d of p.definitions as unknown[]) {
    const e = d as Record<string, unknown>;
    if (e === null || typeof e !== 'object' || !DEFINITION_KINDS.includes(e.kind as DefinitionKind) || typeof e.name !== 'string' || typeof e.hash !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(e.hash)) {
      return 'each definition needs kind, name and a sha256 hash';
    }
  }
  return p as unknown as ManifestPayload;
}

export function coverageKey(kind: DefinitionKind, name: string, hash: string): string {
  return `${kind}:${name}\u0000${hash}`;
}

export interface VerifyManifestOptions {
  server: string;
  trustedKeys: readonly KeyObject[];
  /** Highest version accepted before (lockfile / state store); lower is a downgrade. */
  minVersion?: string | undefined;
}

export async function verifyManifest(jws: string, opts: VerifyManifestOptions): Promise<ManifestVerification> {
  const text = jws.trim();
  if (opts.trustedKeys.length === 0) return { ok: false, failure: 'no-trusted-keys', message: `no trusted publisher keys are configured for server ${opts.server}` };
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(text);
  } catch {
    return { ok: false, failure: 'malformed', message: 'the manifest is not a JWS compact serialization' };
  }
  if (header.alg !== 'EdDSA' && header.alg !== 'Ed25519') return { ok: false, failure: 'malformed', message: `manifest algorithm ${String(header.alg)} is not EdDSA` };
  if (header.typ !== MANIFEST_TYP) return { ok: false, failure: 'malformed', message: `manifest typ must be ${MANIFEST_TYP}` };
  for (let i = 0; i < opts.trustedKeys.length; i++) {
    let payload: Uint8Array;
    try {
      ({ payload } = await compactVerify(text, opts.trustedKeys[i]!, { algorithms: ['EdDSA', 'Ed25519'] }));
    } catch {
      continue;
    }
    const m = parsePayload(payload);
    if (typeof m === 'string') return { ok: false, failure: 'malformed', message: `signed manifest is malformed: ${m}` };
    if (m.server !== opts.server) return { ok: false, failure: 'wrong-server', message: `manifest is signed for server "${m.server}", not "${opts.server}"` };
    if (opts.minVersion !== undefined && compareVersions(m.version, opts.minVersion) < 0) {
      return { ok: false, failure: 'downgrade', message: `manifest version ${m.version} is lower than version ${opts.minVersion} accepted before (downgrade refused)` };
    }
    const covered = new Map<string, ManifestEntry>();
    for (const d of m.definitions) covered.set(coverageKey(d.kind, d.name, d.hash), d);
    return { ok: true, manifest: m, covered, keyIndex: i };
  }
  return { ok: false, failure: 'bad-signature', message: 'the manifest signature does not verify with any trusted publisher key (tampered, or signed with another key)' };
}
