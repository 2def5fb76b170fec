/**
 * `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1, MCP authorization 2025-11-25) and
 * the BastionErrors that carry them, so `toWire()` produces the response the specs define.
 *
 * - no credentials: 401, `Bearer resource_metadata="…", scope="…"` and no error code;
 * - bad token: 401 `error="invalid_token"`; malformed request: 400 `error="invalid_request"`;
 * - missing scope: 403 `error="insufficient_scope"`, `scope` = existing plus needed;
 * - DPoP: a `DPoP algs="…"` challenge beside (or, when DPoP is required, instead of) Bearer;
 *   `use_dpop_nonce` with a `DPoP-Nonce` header.
 * Descriptions are fixed strings chosen here: nothing from the token is ever echoed.
 */
import { BastionError, type ErrorCode } from '../errors.js';
import type { MountAuthConfig } from '../config/auth.js';
import { resourceMetadataUrl } from './resource.js';

export type Scheme = 'Bearer' | 'DPoP';
export type ChallengeError = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | 'use_dpop_nonce';

/** What a challenge needs to know about the mount. */
export interface ChallengeTarget {
  resourceMetadataUrl: string;
  /** Scopes every request to the mount needs (advertised in the 401 `scope`). */
  scopes: readonly string[];
  /** DPoP policy of the mount; `undefined` means DPoP is not offered. */
  dpop: 'required' | 'optional' | undefined;
  dpopAlgorithms: readonly string[];
}

/** A mount's challenge target, from its canonical resource and its `auth` block. */
export function mountChallengeTarget(resource: string, auth: Pick<MountAuthConfig, 'scopes' | 'dpop'>, dpopAlgorithms: readonly string[]): ChallengeTarget {
  return { resourceMetadataUrl: resourceMetadataUrl(resource), scopes: auth.scopes, dpop: auth.dpop, dpopAlgorithms };
}

function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\r\n]/g, ' ')}"`;
}

function params(p: Array<[string, string | undefined]>): string {
  return p
    .filter((x): x is [string, string] => x[1] !== undefined && x[1] !== '')
    .map(([k, v]) => `${k}=${quote(v)}`)
    .join(', ');
}

export interface ChallengeOptions {
  /** Scheme the error belongs to (the one the client used). Default: Bearer, or DPoP when required. */
  scheme?: Scheme;
  error?: ChallengeError;
  description?: string;
  /** Scope parameter; default: the mount's scopes. */
  scope?: readonly string[];
}

/** The full `WWW-Authenticate` value: one or two challenges in one field (RFC 9110 §11.6.1). */
export function challengeHeader(target: ChallengeTarget, opts: ChallengeOptions = {}): string {
  const scheme: Scheme = opts.scheme ?? (target.dpop === 'required' ? 'DPoP' : 'Bearer');
  const scope = (opts.scope ?? target.scopes).join(' ');
  const challenges: string[] = [];
  const bearerOffered = target.dpop !== 'required';
  const dpopOffered = target.dpop !== undefined;
  // Bearer first: MCP clients look for `Bearer` at the start of the header.
  if (bearerOffered || scheme === 'Bearer') {
    const withError = scheme === 'Bearer';
    challenges.push(
      `Bearer ${params([
        ['error', withError ? opts.error : undefined],
        ['error_description', withError ? opts.description : undefined],
        ['scope', scope],
        ['resource_metadata', target.resourceMetadataUrl],
      ])}`,
    );
  }
  if (dpopOffered || scheme === 'DPoP') {
    const withError = scheme === 'DPoP';
    challenges.push(
      `DPoP ${params([
        ['error', withError ? opts.error : undefined],
        ['error_description', withError ? opts.description : undefined],
        ['scope', scope],
        ['resource_metadata', target.resourceMetadataUrl],
        ['algs', target.dpopAlgorithms.join(' ')],
      ])}`,
    );
  }
  return challenges.join(', ');
}

function authError(
  code: ErrorCode,
  message: string,
  reason: string,
  target: ChallengeTarget,
  opts: ChallengeOptions,
  extraHeaders: Record<string, string> = {},
): BastionError {
  return new BastionError(code, message, {
    reason,
    headers: { 'WWW-Authenticate': challengeHeader(target, opts), ...extraHeaders },
  });
}

/** 401 with no error code: the request carried no credentials the mount accepts. */
export function missingCredentialsError(target: ChallengeTarget, reason = 'no_credentials'): BastionError {
  return authError(
    'ERR_BASTION_AUTH_MISSING',
    'Authentication required: send an access token in the Authorization header (see the resource_metadata URL in WWW-Authenticate for where to get one)',
    reason,
    target,
    {},
  );
}

/** 401 `invalid_token`. `description` is a fixed, public phrase. */
export function invalidTokenError(target: ChallengeTarget, reason: string, description: string, scheme?: Scheme): BastionError {
  return authError('ERR_BASTION_AUTH_INVALID_TOKEN', `Invalid access token: ${description}`, reason, target, {
    error: 'invalid_token',
    description,
    ...(scheme ? { scheme } : {}),
  });
}

/** 400 `invalid_request`: e.g. a token in the query string, or a malformed Authorization header. */
export function invalidRequestError(target: ChallengeTarget, reason: string, description: string, scheme?: Scheme): BastionError {
  return authError('ERR_BASTION_AUTH_INVALID_REQUEST', `Invalid authentication request: ${description}`, reason, target, {
    error: 'invalid_request',
    description,
    ...(scheme ? { scheme } : {}),
  });
}

/** 401 `invalid_dpop_proof` (RFC 9449 §7.1), on the DPoP challenge. */
export function invalidDpopProofError(target: ChallengeTarget, reason: string, description: string): BastionError {
  return authError('ERR_BASTION_AUTH_INVALID_DPOP_PROOF', `Invalid DPoP proof: ${description}`, reason, target, {
    scheme: 'DPoP',
    error: 'invalid_dpop_proof',
    description,
  });
}

/** 401 `use_dpop_nonce` with a fresh `DPoP-Nonce` (RFC 9449 §9). */
export function useDpopNonceError(target: ChallengeTarget, nonce: string): BastionError {
  return authError(
    'ERR_BASTION_AUTH_USE_DPOP_NONCE',
    'DPoP proof must carry the server nonce: retry with the nonce from the DPoP-Nonce header',
    'dpop_nonce_required',
    target,
    { scheme: 'DPoP', error: 'use_dpop_nonce', description: 'Resource server requires nonce in DPoP proof' },
    { 'DPoP-Nonce': nonce },
  );
}

/** 401 when the mount needs a verified client certificate and none was presented. */
export function clientCertRequiredError(target: ChallengeTarget): BastionError {
  return authError(
    'ERR_BASTION_AUTH_CLIENT_CERT_REQUIRED',
    'This resource requires a client certificate (mutual TLS): connect over HTTPS with a certificate issued by the configured CA',
    'client_cert_required',
    target,
    { error: 'invalid_request', description: 'client certificate required' },
  );
}

/** Scopes for a step-up challenge: what the token has plus what the request needs (MCP 2025-11-25). */
export function stepUpScopes(existing: Iterable<string>, needed: Iterable<string>): string[] {
  const out = new Set<string>(existing);
  for (const s of needed) out.add(s);
  return [...out];
}

export interface InsufficientScopeOptions {
  scheme?: Scheme;
  dpop?: 'required' | 'optional';
  dpopAlgorithms?: readonly string[];
}

/**
 * 403 `insufficient_scope` for step-up authorization. The authorization layer calls this with the
 * mount's metadata URL (MountAuthView.resourceMetadataUrl), the principal's scopes and the scopes
 * the refused request needs.
 */
export function insufficientScopeError(
  resourceMetadataUrl: string,
  existingScopes: Iterable<string>,
  neededScopes: Iterable<string>,
  opts: InsufficientScopeOptions = {},
): BastionError {
  const needed = [...neededScopes];
  const scope = stepUpScopes(existingScopes, needed);
  const target: ChallengeTarget = {
    resourceMetadataUrl,
    scopes: scope,
    dpop: opts.dpop,
    dpopAlgorithms: opts.dpopAlgorithms ?? [],
  };
  return new BastionError(
    'ERR_BASTION_AUTH_INSUFFICIENT_SCOPE',
    `Insufficient scope: this request needs ${needed.join(' ')}; obtain a token with scope "${scope.join(' ')}"`,
    {
      reason: 'insufficient_scope',
      data: { requiredScopes: needed },
      headers: {
        'WWW-Authenticate': challengeHeader(target, {
          ...(opts.scheme ? { scheme: opts.scheme } : {}),
          error: 'insufficient_scope',
          description: 'Additional permission required',
          scope,
        }),
      },
    },
  );
}
