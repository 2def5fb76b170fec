/**
 * DPoP proof verification (RFC 9449 §4.3 and §7), with jose.
 *
 * The proof is verified with the public key embedded in its own header (that key IS the proof
 * key: what binds it to the token is `cnf.jkt`, its RFC 7638 thumbprint). Checks: one proof,
 * `typ: dpop+jwt`, an accepted asymmetric algorithm, `htm` = request method, `htu` = request URL
 * (normalized, without query and fragment), `iat` inside the window, `jti` never seen before
 * (replay cache in the state store, so replicas can share it), `ath` = SHA-256 of the access
 * token, the key thumbprint = `cnf.jkt`, and the server nonce when nonces are on.
 */
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { createHmac, randomBytes } from 'node:crypto';
import type { StateStore } from '../stores/types.js';
import { CredentialRejected, safeEqual, sha256b64url } from './util.js';

export interface DpopCheck {
  proof: string;
  method: string;
  /** The URL the request was sent to (public URL + path), without query. */
  url: string;
  accessToken: string;
  /** Expected key thumbprint (`cnf.jkt` of the access token). */
  jkt: string;
}

export interface DpopVerifierOptions {
  store: StateStore;
  algorithms: readonly string[];
  iatWindowSeconds: number;
  clockSkewSeconds: number;
  maxProofBytes: number;
  nonces: DpopNonces | undefined;
  now?: () => number;
}

/** Thrown when the proof lacks the current nonce: the caller answers `use_dpop_nonce`. */
export class DpopNonceRequired extends CredentialRejected {
  constructor(readonly nonce: string) {
    super('dpop_nonce_required', 'DPoP proof must carry the server nonce');
    this.name = 'DpopNonceRequired';
  }
}

/** RFC 9449 §4.3 step 9 and RFC 3986 §6: scheme and host lowercase, default port dropped, no query or fragment. */
export function normalizeHtu(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * Stateless server nonces: HMAC of the time period. A nonce is accepted during its period and
 * the next one, so every replica sharing the secret accepts the others' nonces.
 */
export class DpopNonces {
  private readonly secret: Buffer;
  constructor(
    secret: string | undefined,
    private readonly rotateSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.secret = secret === undefined ? randomBytes(32) : Buffer.from(secret);
  }

  private forPeriod(p: number): string {
    return createHmac('sha256', this.secret).update(`dpop-nonce:${p}`).digest('base64url');
  }

  private period(): number {
    return Math.floor(this.now() / 1000 / this.rotateSeconds);
  }

  current(): string {
    return this.forPeriod(this.period());
  }

  isValid(nonce: unknown): boolean {
    if (typeof nonce !== 'string') return false;
    const p = this.period();
    // Evaluate both, no early exit.
    const a = safeEqual(nonce, this.forPeriod(p));
    const b = safeEqual(nonce, this.forPeriod(p - 1));
    return a || b;
  }
}

export interface DpopResult {
  jkt: string;
  jti: string;
}

const PROOF_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function createDpopVerifier(opts: DpopVerifierOptions): (check: DpopCheck) => Promise<DpopResult> {
  const now = opts.now ?? Date.now;
  const algorithms = [...opts.algorithms].filter((a) => !a.startsWith('HS'));
  return async (check) => {
    const proof = check.proof;
    if (proof.length > opts.maxProofBytes) throw new CredentialRejected('dpop_proof_too_large', 'DPoP proof is too large');
    if (!PROOF_SHAPE.test(proof)) throw new CredentialRejected('dpop_malformed', 'exactly one well-formed DPoP proof is required');
    let payload: Record<string, unknown>;
    let jwk: JWK;
    try {
      const r = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms,
        currentDate: new Date(now()),
        clockTolerance: opts.clockSkewSeconds,
      });
      payload = r.payload as Record<string, unknown>;
      jwk = r.protectedHeader.jwk as JWK;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (err as { claim?: string }).claim === 'typ') {
        throw new CredentialRejected('dpop_wrong_typ', 'DPoP proof typ must be dpop+jwt');
      }
      if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') throw new CredentialRejected('dpop_alg_not_allowed', 'DPoP proof algorithm is not accepted');
      if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw new CredentialRejected('dpop_bad_signature', 'DPoP proof signature is invalid');
      throw new CredentialRejected('dpop_malformed', 'DPoP proof is not a valid JWT');
    }
    const jti = payload['jti'];
    const htm = payload['htm'];
    const htu = payload['htu'];
    const iat = payload['iat'];
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new CredentialRejected('dpop_missing_claim', 'DPoP proof needs a jti');
    if (typeof htm !== 'string' || typeof htu !== 'string' || typeof iat !== 'number') {
      throw new CredentialRejected('dpop_missing_claim', 'DPoP proof needs htm, htu and iat');
    }
    if (htm !== check.method) throw new CredentialRejected('dpop_wrong_htm', 'DPoP proof htm does not match the request method');
    const want = normalizeHtu(check.url);
    const got = normalizeHtu(htu);
    if (want === undefined || got === undefined || got !== want) throw new CredentialRejected('dpop_wrong_htu', 'DPoP proof htu does not match the request URL');
    const t = now() / 1000;
    if (iat > t + opts.clockSkewSeconds || iat < t - opts.iatWindowSeconds) {
      throw new CredentialRejected('dpop_stale', 'DPoP proof iat is outside the accepted window');
    }
    if (opts.nonces && !opts.nonces.isValid(payload['nonce'])) throw new DpopNonceRequired(opts.nonces.current());
    const ath = payload['ath'];
    if (typeof ath !== 'string' || !safeEqual(ath, sha256b64url(check.accessToken))) {
      throw new CredentialRejected('dpop_wrong_ath', 'DPoP proof ath does not match the access token');
    }
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    if (!safeEqual(jkt, check.jkt)) throw new CredentialRejected('dpop_key_mismatch', 'DPoP proof key does not match the token binding (cnf.jkt)');
    // Replay: remember (key, jti) for as long as the proof could be accepted.
    const ttlMs = (opts.iatWindowSeconds + opts.clockSkewSeconds) * 1000 + 1000;
    const first = await opts.store.putIfAbsent(`dpop:jti:${jkt}:${sha256b64url(jti)}`, ttlMs);
    if (!first) throw new CredentialRejected('dpop_replayed', 'DPoP proof has already been used');
    return { jkt, jti };
  };
}
