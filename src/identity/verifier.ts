/**
 * Access token verification (RFC 9068 JWTs and RFC 7662 opaque tokens) with jose.
 *
 * - JWTs: the issuer is picked by exact `iss` among the configured ones; keys come only from that
 *   issuer's JWKS (URL, file or discovery) or its explicitly configured HMAC key, never from the
 *   token header (`jku`, `x5u`, `jwk`, `x5c` are ignored, and a token carrying `jku`/`x5u`/`jwk` is
 *   refused outright). Algorithms are asymmetric only unless a symmetric key is configured; `none`
 *   is never accepted. `typ` is enforced when configured; ID tokens are refused in any case.
 * - Opaque tokens: RFC 7662 introspection, cached no longer than the token lives nor the
 *   configured maximum; `active: false` is a refusal.
 * - A verified-token cache keyed by SHA-256 of the token: the hot path does a hash, a map lookup,
 *   an audience check and an expiry check, no signature check.
 * Audience (RFC 8707) is checked per call against the mount's canonical resource.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuthConfig, IssuerConfig } from '../config/auth.js';
import { ASYMMETRIC_JWS_ALGORITHMS } from '../config/auth.js';
import { TokenCache } from './token-cache.js';
import { CredentialRejected, resolveSecret, scopesOf, sha256b64url } from './util.js';

export interface VerifiedToken {
  kind: 'jwt' | 'opaque';
  issuer: string;
  /** Verified claims (or the introspection answer). Never the token itself. */
  claims: Readonly<Record<string, unknown>>;
  audiences: readonly string[];
  /** Extra audiences the issuer config accepts besides the mount resource. */
  extraAudiences: readonly string[];
  scopes: readonly string[];
  subject: string;
  clientId: string | undefined;
  tokenId: string | undefined;
  /** Seconds since epoch. */
  expiresAt: number | undefined;
  issuedAt: number | undefined;
  /** RFC 9449 `cnf.jkt`. */
  jkt: string | undefined;
  /** RFC 8705 `cnf["x5t#S256"]`. */
  x5t: string | undefined;
  /** SHA-256 of the token, base64url. */
  tokenHash: string;
}

export interface TokenVerifier {
  /**
   * Verify `token` for the mount whose canonical resource is `resource`. Throws
   * CredentialRejected (unavailable=true when an issuer or JWKS cannot be reached).
   */
  verify(token: string, resource: string): Promise<VerifiedToken>;
}

export interface TokenVerifierOptions {
  /** Folder relative paths (jwksFile, secret files) are resolved against. */
  baseDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Milliseconds since epoch. */
  now?: () => number;
  fetch?: typeof fetch;
}

const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash', 's_hash'];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_METADATA_BYTES = 256 * 1024;

interface IntrospectionRuntime {
  endpoint: string;
  authorization: string;
  cacheMaxSeconds: number;
  timeoutMs: number;
}

interface IssuerRuntime {
  cfg: IssuerConfig;
  algorithms: string[];
  getKey: (() => Promise<JWTVerifyGetKey | Uint8Array>) | undefined;
  introspection: (() => Promise<IntrospectionRuntime | undefined>) | undefined;
}

function normTyp(t: string): string {
  const l = t.toLowerCase();
  return l.startsWith('application/') ? l.slice('application/'.length) : l;
}

async function fetchJson(f: typeof fetch, url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await f(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // One retry: a pooled keep-alive connection the server has just closed fails with ECONNRESET.
    // Not after a timeout: the server is slow, and asking again would only double the wait.
    if ((err as { name?: string }).name === 'TimeoutError') throw err;
    res = await f(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  }
  const text = await res.text();
  if (text.length > MAX_METADATA_BYTES) throw new Error('response too large');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}

function unavailable(what: string): CredentialRejected {
  return new CredentialRejected('issuer_unavailable', `${what} could not be reached`, true);
}

export function createTokenVerifier(auth: AuthConfig, options: TokenVerifierOptions = {}): TokenVerifier {
  const baseDir = options.baseDir ?? process.cwd();
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  const f = options.fetch ?? fetch;
  const skew = auth.clockSkewSeconds;
  const cache = new TokenCache<VerifiedToken>(auth.tokenCache.maxEntries, now);
  const jwksOpts = {
    cacheMaxAge: auth.jwks.cacheMaxAgeSeconds * 1000,
    cooldownDuration: auth.jwks.cooldownSeconds * 1000,
    timeoutDuration: auth.jwks.timeoutMs,
  };

  const issuers = new Map<string, IssuerRuntime>();
  for (const cfg of auth.issuers) {
    const algorithms = cfg.algorithms ? [...cfg.algorithms] : cfg.symmetricKey ? ['HS256'] : [...ASYMMETRIC_JWS_ALGORITHMS];
    const rt: IssuerRuntime = { cfg, algorithms, getKey: undefined, introspection: undefined };
    let discovered: Promise<Record<string, unknown>> | undefined;
    const discover = (): Promise<Record<string, unknown>> => {
      if (!discovered) {
        discovered = discoverMetadata(cfg.issuer).catch((err: unknown) => {
          discovered = undefined; // retry on a later request
          throw err;
        });
      }
      return discovered;
    };
    const discoverMetadata = async (issuer: string): Promise<Record<string, unknown>> => {
      const u = new URL(issuer);
      const path = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
      const candidates = [
        `${u.origin}/.well-known/oauth-authorization-server${path}`,
        `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
      ];
      for (const url of candidates) {
        let r: { status: number; body: unknown };
        try {
          r = await fetchJson(f, url, { method: 'GET', headers: { accept: 'application/json' } }, auth.jwks.timeoutMs);
        } catch {
          continue;
        }
        if (r.status !== 200 || r.body === null || typeof r.body !== 'object') continue;
        const md = r.body as Record<string, unknown>;
        // RFC 8414 §3.3: the issuer in the metadata must be identical to the configured one.
        if (md['issuer'] !== issuer) throw new Error(`discovery metadata of ${issuer} names another issuer`);
        return md;
      }
      throw new Error(`no discovery metadata found for ${issuer}`);
    };

    if (cfg.symmetricKey) {
      const key = new TextEncoder().encode(resolveSecret(cfg.symmetricKey, baseDir, env));
      rt.getKey = async () => key;
    } else if (cfg.jwksUri) {
      const set = createRemoteJWKSet(new URL(cfg.jwksUri), jwksOpts);
      rt.getKey = async () => set;
    } else if (cfg.jwksFile) {
      const file = resolve(baseDir, cfg.jwksFile);
      const set = createLocalJWKSet(JSON.parse(readFileSync(file, 'utf8')));
      rt.getKey = async () => set;
    } else if (cfg.discovery) {
      let set: JWTVerifyGetKey | undefined;
      rt.getKey = async () => {
        if (set) return set;
        const md = await discover();
        const jwksUri = md['jwks_uri'];
        if (typeof jwksUri !== 'string') throw new Error(`discovery metadata of ${cfg.issuer} has no jwks_uri`);
        set = createRemoteJWKSet(new URL(jwksUri), jwksOpts);
        return set;
      };
    }
    if (cfg.introspection) {
      const ic = cfg.introspection;
      const secret = resolveSecret(ic.clientSecret, baseDir, env);
      // RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding.
      const basic = Buffer.from(`${encodeURIComponent(ic.clientId)}:${encodeURIComponent(secret)}`).toString('base64');
      const runtime: IntrospectionRuntime = {
        endpoint: ic.endpoint,
        authorization: `Basic ${basic}`,
        cacheMaxSeconds: ic.cacheMaxSeconds,
        timeoutMs: ic.timeoutMs,
      };
      rt.introspection = async () => runtime;
    }
    if (issuers.has(cfg.issuer)) throw new Error(`issuer ${cfg.issuer} is configured twice`);
    issuers.set(cfg.issuer, rt);
  }
  const introspectors = [...issuers.values()].filter((r) => r.introspection);

  function finish(vt: VerifiedToken, resource: string): VerifiedToken {
    const t = now() / 1000;
    if (vt.expiresAt !== undefined && t > vt.expiresAt + skew) {
      cache.delete(vt.tokenHash);
      throw new CredentialRejected('token_expired', 'token has expired');
    }
    if (!vt.audiences.includes(resource) && !vt.audiences.some((a) => vt.extraAudiences.includes(a))) {
      throw new CredentialRejected(vt.audiences.length === 0 ? 'audience_missing' : 'audience_mismatch', 'token audience is not this resource');
    }
    return vt;
  }

  async function verifyJwt(token: string, tokenHash: string): Promise<VerifiedToken> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw new CredentialRejected('malformed', 'token is not a well-formed JWT');
    }
    if (header.alg === undefined || header.alg.toLowerCase() === 'none') throw new CredentialRejected('alg_not_allowed', 'token algorithm is not accepted');
    // Key material is only ever taken from the issuer's configuration.
    if ('jku' in header || 'x5u' in header || 'jwk' in header) {
      throw new CredentialRejected('header_key_refused', 'token header carries key references, which are never trusted');
    }
    if (typeof header.crit !== 'undefined') throw new CredentialRejected('malformed', 'token uses unsupported critical header parameters');
    const iss = unverified.iss;
    const rt = typeof iss === 'string' ? issuers.get(iss) : undefined;
    if (rt && !rt.getKey && rt.introspection) {
      // An issuer trusted through introspection only: let it judge its own JWT.
      const r = await introspectOne(rt, token, tokenHash);
      if (!r) throw new CredentialRejected('token_inactive', 'token is not active');
      cache.set(tokenHash, r.vt, r.cacheUntilMs);
      return r.vt;
    }
    if (!rt || !rt.getKey) throw new CredentialRejected('untrusted_issuer', 'token issuer is not trusted by this resource');

    let key: JWTVerifyGetKey | Uint8Array;
    try {
      key = await rt.getKey();
    } catch {
      throw unavailable('the token issuer metadata');
    }
    const opts: JWTVerifyOptions = {
      issuer: rt.cfg.issuer,
      algorithms: rt.algorithms,
      clockTolerance: skew,
      currentDate: new Date(now()),
      requiredClaims: ['exp'],
    };
    if (rt.cfg.typ) opts.typ = rt.cfg.typ;
    let payload: JWTPayload;
    const attempt = async (): Promise<JWTPayload> =>
      (typeof key === 'function' ? await jwtVerify(token, key, opts) : await jwtVerify(token, key, opts)).payload;
    try {
      payload = await attempt();
    } catch (err) {
      const mapped = mapJoseError(err);
      // One retry when the JWKS fetch failed (e.g. a keep-alive connection closed under us);
      // not after a timeout, which a second try would only repeat.
      if (!mapped.unavailable || (err as { code?: string }).code === 'ERR_JWKS_TIMEOUT') throw mapped;
      try {
        payload = await attempt();
      } catch (err2) {
        throw mapJoseError(err2);
      }
    }
    // ID tokens and other JWT kinds are not access tokens (RFC 9068 §4, RFC 8725 §3.11).
    const typ = header.typ === undefined ? undefined : normTyp(header.typ);
    if (typ !== undefined && typ !== 'at+jwt' && typ !== 'jwt') throw new CredentialRejected('wrong_token_type', 'token is not an access token');
    if (typ !== 'at+jwt' && ID_TOKEN_CLAIMS.some((c) => c in payload)) {
      throw new CredentialRejected('id_token', 'an ID token is not an access token');
    }
    const t = now() / 1000;
    if (typeof payload.iat === 'number' && payload.iat > t + skew) throw new CredentialRejected('token_not_yet_valid', 'token was issued in the future');
    return toVerified('jwt', rt, payload as Record<string, unknown>, tokenHash);
  }

  function toVerified(kind: 'jwt' | 'opaque', rt: IssuerRuntime, claims: Record<string, unknown>, tokenHash: string): VerifiedToken {
    const aud = claims['aud'];
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
    const cnf = claims['cnf'];
    const cnfObj = cnf !== null && typeof cnf === 'object' && !Array.isArray(cnf) ? (cnf as Record<string, unknown>) : {};
    const clientId = typeof claims['client_id'] === 'string' ? claims['client_id'] : typeof claims['azp'] === 'string' ? claims['azp'] : undefined;
    const sub = typeof claims['sub'] === 'string' && claims['sub'] !== '' ? claims['sub'] : clientId;
    if (sub === undefined) throw new CredentialRejected('no_subject', 'token names no subject or client');
    return Object.freeze({
      kind,
      issuer: rt.cfg.issuer,
      claims: Object.freeze({ ...claims }),
      audiences,
      extraAudiences: rt.cfg.audience,
      scopes: scopesOf(claims),
      subject: sub,
      clientId,
      tokenId: typeof claims['jti'] === 'string' ? claims['jti'] : undefined,
      expiresAt: typeof claims['exp'] === 'number' ? claims['exp'] : undefined,
      issuedAt: typeof claims['iat'] === 'number' ? claims['iat'] : undefined,
      jkt: typeof cnfObj['jkt'] === 'string' ? cnfObj['jkt'] : undefined,
      x5t: typeof cnfObj['x5t#S256'] === 'string' ? cnfObj['x5t#S256'] : undefined,
      tokenHash,
    });
  }

  async function introspectOne(rt: IssuerRuntime, token: string, tokenHash: string): Promise<{ vt: VerifiedToken; cacheUntilMs: number } | undefined> {
    const ic = await rt.introspection!();
    if (!ic) return undefined;
    let r: { status: number; body: unknown };
    try {
      r = await fetchJson(
        f,
        ic.endpoint,
        {
          method: 'POST',
          headers: { authorization: ic.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        },
        ic.timeoutMs,
      );
    } catch {
      throw unavailable('the introspection endpoint');
    }
    if (r.status !== 200 || r.body === null || typeof r.body !== 'object' || Array.isArray(r.body)) throw unavailable('the introspection endpoint');
    const body = r.body as Record<string, unknown>;
    if (body['active'] !== true) return undefined;
    if (body['iss'] !== undefined && body['iss'] !== rt.cfg.issuer) return undefined;
    // Some servers answer active for refresh tokens too: those are not access tokens.
    if (typeof body['token_type'] === 'string' && /refresh/i.test(body['token_type'])) {
      throw new CredentialRejected('wrong_token_type', 'token is not an access token');
    }
    const t = now() / 1000;
    if (typeof body['nbf'] === 'number' && body['nbf'] > t + skew) throw new CredentialRejected('token_not_yet_valid', 'token is not valid yet');
    const vt = toVerified('opaque', rt, body, tokenHash);
    let until = now() + ic.cacheMaxSeconds * 1000;
    if (vt.expiresAt !== undefined) until = Math.min(until, vt.expiresAt * 1000);
    return { vt, cacheUntilMs: until };
  }

  async function verifyOpaque(token: string, tokenHash: string): Promise<VerifiedToken> {
    if (introspectors.length === 0) throw new CredentialRejected('malformed', 'token is not a JWT and no introspection endpoint is configured');
    for (const rt of introspectors) {
      const r = await introspectOne(rt, token, tokenHash);
      if (r) {
        cache.set(tokenHash, r.vt, r.cacheUntilMs);
        return r.vt;
      }
    }
    throw new CredentialRejected('token_inactive', 'token is not active');
  }

  function looksLikeJwt(token: string): boolean {
    if (!JWT_SHAPE.test(token)) return false;
    try {
      decodeProtectedHeader(token);
      return true;
    } catch {
      // Three dot-separated parts but not a JWT: an opaque token when introspection is configured.
      return introspectors.length === 0;
    }
  }

  async function verifyUncached(token: string, tokenHash: string): Promise<VerifiedToken> {
    if (token.split('.').length === 5) throw new CredentialRejected('malformed', 'encrypted (JWE) access tokens are not supported');
    if (looksLikeJwt(token)) {
      const vt = await verifyJwt(token, tokenHash);
      if (vt.kind === 'jwt' && vt.expiresAt !== undefined) cache.set(tokenHash, vt, vt.expiresAt * 1000);
      return vt;
    }
    return verifyOpaque(token, tokenHash);
  }

  // One verification in flight per token: a burst of requests with a new token costs one check.
  const inflight = new Map<string, Promise<VerifiedToken>>();

  return {
    async verify(token, resource) {
      if (token.length > auth.maxTokenBytes) throw new CredentialRejected('token_too_large', 'token is larger than this resource accepts');
      const tokenHash = sha256b64url(token);
      const hit = cache.get(tokenHash);
      if (hit) return finish(hit, resource);
      let p = inflight.get(tokenHash);
      if (!p) {
        p = verifyUncached(token, tokenHash).finally(() => inflight.delete(tokenHash));
        inflight.set(tokenHash, p);
      }
      return finish(await p, resource);
    },
  };
}

function mapJoseError(err: unknown): CredentialRejected {
  if (err instanceof CredentialRejected) return err;
  const e = err as { code?: string; claim?: string; reason?: string; name?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return new CredentialRejected('token_expired', 'token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return new CredentialRejected('token_not_yet_valid', 'token is not valid yet');
      if (e.claim === 'iss') return new CredentialRejected('wrong_issuer', 'token issuer is not trusted by this resource');
      if (e.claim === 'typ') return new CredentialRejected('wrong_token_type', 'token type is not accepted (at+jwt required)');
      if (e.claim === 'exp') return new CredentialRejected('token_missing_exp', 'token has no expiry');
      return new CredentialRejected('claim_invalid', 'a token claim is invalid');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return new CredentialRejected('alg_not_allowed', 'token algorithm is not accepted');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new CredentialRejected('bad_signature', 'token signature is invalid');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new CredentialRejected('unknown_key', 'token is signed with a key this resource does not know');
    case 'ERR_JWKS_TIMEOUT':
      return unavailable('the issuer JWKS');
    case 'ERR_JWKS_INVALID':
      return unavailable('a valid issuer JWKS');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JWK_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new CredentialRejected('malformed', 'token is not a well-formed JWT');
    case 'ERR_JOSE_GENERIC':
      // jose raises this for a JWKS endpoint answering other than 200.
      return unavailable('the issuer JWKS');
    default:
      // fetch failures (TypeError), aborts: the key source is down, not the token bad.
      return unavailable('the issuer JWKS');
  }
}
