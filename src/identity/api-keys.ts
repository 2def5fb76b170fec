/**
 * Legacy static API keys, for migrations only. Disabled by default. Keys are stored as SHA-256
 * hashes and compared in constant time against every configured key (no early exit); each key
 * has an expiry no later than 90 days after start-up.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthConfig } from '../config/auth.js';
import type { Principal } from './types.js';
import { CredentialRejected } from './util.js';

export const API_KEY_MAX_LIFETIME_DAYS = 90;

interface StoredKey {
  id: string;
  digest: Buffer;
  expiresAtMs: number;
  scopes: string[];
}

export interface ApiKeyVerifier {
  readonly enabled: boolean;
  readonly header: string;
  /** Start-up warnings (always at least one when enabled). */
  readonly warnings: readonly string[];
  verify(presented: string): Principal;
}

/** Throws an Error naming the offending key id when a key's expiry is too far or invalid. */
export function createApiKeyVerifier(cfg: AuthConfig['apiKeys'], now: () => number = Date.now): ApiKeyVerifier {
  const warnings: string[] = [];
  const keys: StoredKey[] = [];
  if (cfg.enabled) {
    warnings.push('legacy API keys are enabled (auth.apiKeys): they are long-lived bearer secrets; migrate clients to OAuth access tokens');
    const limit = now() + API_KEY_MAX_LIFETIME_DAYS * 86_400_000;
    for (const k of cfg.keys) {
      const expiresAtMs = Date.parse(k.expiresAt);
      if (!Number.isFinite(expiresAtMs)) throw new Error(`auth.apiKeys key ${k.id}: expiresAt is not a valid date`);
      if (expiresAtMs > limit) {
        throw new Error(`auth.apiKeys key ${k.id}: expires more than ${API_KEY_MAX_LIFETIME_DAYS} days from now; rotate it with an earlier expiresAt`);
      }
      if (expiresAtMs <= now()) warnings.push(`auth.apiKeys key ${k.id} has expired and will be refused; remove it`);
      const digest = /^[0-9a-f]{64}$/.test(k.sha256) ? Buffer.from(k.sha256, 'hex') : Buffer.from(k.sha256, 'base64url');
      keys.push({ id: k.id, digest, expiresAtMs, scopes: [...k.scopes] });
    }
  }
  return {
    enabled: cfg.enabled,
    header: cfg.header.toLowerCase(),
    warnings,
    verify(presented) {
      if (!cfg.enabled) throw new CredentialRejected('api_keys_disabled', 'API keys are not accepted');
      const d = createHash('sha256').update(presented).digest();
      let match: StoredKey | undefined;
      for (const k of keys) if (timingSafeEqual(d, k.digest) && match === undefined) match = k;
      if (!match) throw new CredentialRejected('api_key_unknown', 'API key is not valid');
      if (match.expiresAtMs <= now()) throw new CredentialRejected('api_key_expired', 'API key has expired');
      return Object.freeze({
        subject: match.id,
        issuer: 'api-key:',
        clientId: undefined,
        scopes: new Set(match.scopes),
        roles: [],
        groups: [],
        authMethod: 'api-key' as const,
        tokenId: undefined,
        expiresAt: Math.floor(match.expiresAtMs / 1000),
        issuedAt: undefined,
        tokenHash: d.toString('base64url'),
        certificate: undefined,
        claims: {},
      });
    },
  };
}
