/**
 * DPoP proof verification (RFC 9449 §4.3 and §7), with jose.
 *
 * The proof is verified with the public key embedded in its own header (that key IS the proof
 * key: what binds it to the token is `cnf.jkt`, its RFC 7638 thumbprint). Checks: one proof,
 * `typ: dpop+jwt`, an accepted asymmetric algorithm, `htm` = request method, `htu` = request URL
 * (normalized, without query and fragment), `iat` inside the window, `jti` never seen before
 * (replay cache in the state store, so replicas can share it), `ath` = SHA-256 of the access
 * token, the key thumbprint = `cnf.jkt`, and the server nonce when nonces are on.
 *
 * Nonce key: `auth.dpop.nonce.secret` when configured; otherwise, with a shared state store
 * (Redis), one random 32-byte key every replica agrees on through the store (the first to need
 * it creates it atomically, see dpopNoncesLoader); otherwise a random key per process.
 */
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { createHmac, randomBytes } from 'node:crypto';
import { BastionError, isBastionError } from '../errors.js';
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
  /** The nonces, or their loader (dpopNoncesLoader: the key may come from the shared store). */
  nonces: DpopNonces | (() => Promise<DpopNonces>) | undefined;
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
    /** The configured secret (a string) or a raw key; undefined: random for this process. */
    secret: string | Buffer | undefined,
    private readonly rotateSeconds: number,
    private readonly now: () => number = Date.now,
    /** Nonces of the key this one replaced, still accepted until `until` (ms). */
    private readonly previous?: { nonces: DpopNonces; until: number },
  ) {
    this.secret = secret === undefined ? randomBytes(32) : typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
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
    return a || b || (this.previous !== undefined && this.now() < this.previous.until && this.previous.nonces.isValid(nonce));
  }

  /** This key's nonces, still accepting those of `replaced` for as long as they were valid (two periods). */
  static replacing(replaced: DpopNonces, secret: Buffer, rotateSeconds: number, now: () => number): DpopNonces {
    return new DpopNonces(secret, rotateSeconds, now, { nonces: replaced, until: now() + 2 * rotateSeconds * 1000 });
  }
}

/**
 * State-store key of the nonce key shared by the replicas when no secret is configured. Stored
 * without expiry; in Redis it is `${state.keyPrefix}k:dpop:nonce-key` (`bastion:k:dpop:nonce-key`
 * by default). A secret at rest: operators who do not want it in Redis set auth.dpop.nonce.secret.
 */
export const DPOP_NONCE_STORE_KEY = 'dpop:nonce-key';

const NONCE_KEY_BYTES = 32;

export interface DpopNoncesLoaderOptions {
  /** The resolved auth.dpop.nonce.secret; when set it wins and the store is never used for it. */
  secret: string | undefined;
  store: StateStore;
  rotateSeconds: number;
  now?: () => number;
  /** How often (ms) a replica checks that its key is still the one in the store (default 30000). */
  resyncMs?: number;
}

function nonceKeyUnavailable(err: unknown): BastionError {
  // The cause keeps the message only: a client error can carry the command and its arguments,
  // and the value offered to getOrCreate may already be the key in the store.
  let inner = err;
  while (isBastionError(inner) && inner.cause !== undefined) inner = inner.cause;
  const cause = new Error(inner instanceof Error ? inner.message : String(inner));
  return new BastionError(
    'ERR_BASTION_STATE_UNAVAILABLE',
    'The DPoP nonce key could not be read from the shared state store (Redis is unreachable); the request was refused (fail closed). Retry shortly.',
    { cause, reason: 'dpop_nonce_key_unavailable', headers: { 'Retry-After': '1' } },
  );
}

/** Decode a stored key: exactly 32 bytes, canonical base64url. Never echoes the value. */
function decodeStoredKey(v: string): Buffer {
  const b = Buffer.from(v, 'base64url');
  if (b.length !== NONCE_KEY_BYTES || b.toString('base64url') !== v) {
    throw new BastionError(
      'ERR_BASTION_INTERNAL',
      `The DPoP nonce key stored in the state store (key ${DPOP_NONCE_STORE_KEY}) is not a ${NONCE_KEY_BYTES}-byte base64url value: delete it and restart every replica, or set auth.dpop.nonce.secret`,
      { reason: 'dpop_nonce_key_invalid' },
    );
  }
  return b;
}

/**
 * The nonces, with their key chosen once:
 * - `secret` configured: that secret (the store is not touched);
 * - shared store (Redis): one random 32-byte key for every replica, created by the first replica
 *   that needs it with an atomic `getOrCreate` and read by the others; kept without expiry (the
 *   replicas must agree for as long as any runs). Every `resyncMs` each replica offers its key
 *   again (`getOrCreate`, in the background): if the store lost it (a Redis without
 *   persistence restarted), the first replica to check puts it back and the others find it
 *   unchanged; if the store holds another one (a replica started while it was gone created it,
 *   or an operator deleted it to rotate), they all take that one, still accepting nonces of the
 *   key it replaced for two periods. A check that fails keeps the key the replica has;
 * - otherwise (memory store): random for this process, as before.
 *
 * The loader starts at once (so the key is usually there before the first request) and is
 * memoized. When the store is unreachable the call rejects with ERR_BASTION_STATE_UNAVAILABLE
 * (the request gets 503: fail closed, never a per-process key the other replicas would refuse)
 * and the next call tries again. The key is never logged nor put in an error.
 */
export function dpopNoncesLoader(opts: DpopNoncesLoaderOptions): () => Promise<DpopNonces> {
  const { secret, store, rotateSeconds } = opts;
  const now = opts.now ?? Date.now;
  if (secret !== undefined || !store.shared) {
    const fixed = Promise.resolve(new DpopNonces(secret, rotateSeconds, now));
    return () => fixed;
  }
  const resyncMs = opts.resyncMs ?? 30_000;
  let loading: Promise<DpopNonces> | undefined;
  /** The key in use, once loaded, and when the store last confirmed it. */
  let held: { nonces: DpopNonces; key: string; checkedAt: number } | undefined;
  let resyncing = false;
  const resync = (h: NonNullable<typeof held>): void => {
    resyncing = true;
    store
      .getOrCreate(DPOP_NONCE_STORE_KEY, h.key)
      .then((stored) => {
        if (stored === h.key) {
          h.checkedAt = now();
          return;
        }
        const nonces = DpopNonces.replacing(h.nonces, decodeStoredKey(stored), rotateSeconds, now);
        held = { nonces, key: stored, checkedAt: now() };
        loading = Promise.resolve(nonces);
      })
      .catch(() => {
        // Unreachable, or a malformed value: keep the key this replica has, check again later.
        h.checkedAt = now();
      })
      .finally(() => {
        resyncing = false;
      });
  };
  const load = (): Promise<DpopNonces> => {
    if (held !== undefined && !resyncing && now() - held.checkedAt >= resyncMs) resync(held);
    if (loading) return loading;
    const p = (async () => {
      let stored: string;
      try {
        stored = await store.getOrCreate(DPOP_NONCE_STORE_KEY, randomBytes(NONCE_KEY_BYTES).toString('base64url'));
      } catch (err) {
        throw isBastionError(err) && err.code !== 'ERR_BASTION_STATE_UNAVAILABLE' ? err : nonceKeyUnavailable(err);
      }
      const nonces = new DpopNonces(decodeStoredKey(stored), rotateSeconds, now);
      held = { nonces, key: stored, checkedAt: now() };
      return nonces;
    })();
    loading = p;
    // A failure is not cached: the next request tries the store again.
    p.catch(() => {
      if (loading === p) loading = undefined;
    });
    return p;
  };
  load().catch(() => undefined);
  return load;
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
    if (opts.nonces) {
      const nonces = typeof opts.nonces === 'function' ? await opts.nonces() : opts.nonces;
      if (!nonces.isValid(payload['nonce'])) throw new DpopNonceRequired(nonces.current());
    }
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
