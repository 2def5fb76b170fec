/**
 * identity.authenticate: establish who is calling, or refuse with the challenge the specs define.
 *
 * Order: token-in-URL refusal, client certificate, credentials from the Authorization header
 * only (Bearer or DPoP scheme; legacy API key header when enabled), token verification (cached),
 * proof of possession (DPoP proof for `cnf.jkt`, client certificate for `cnf["x5t#S256"]`),
 * audience (the mount's canonical resource), the mount's required scopes. Sets ctx.principal.
 * A mount with `auth.required: false` gets ANONYMOUS (or its certificate principal).
 */
import { BastionError, isBastionError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import type { AuditLog } from '../../audit/types.js';
import type { StateStore } from '../../stores/types.js';
import type { RequestContext, Stage } from '../../pipeline/context.js';
import { ANONYMOUS, type AuthMethod, type CertificateIdentity, type Principal } from '../../identity/types.js';
import { authRequired } from '../../identity/resource.js';
import { requestAuditBase } from '../../audit/request.js';
import {
  clientCertRequiredError,
  insufficientScopeError,
  invalidDpopProofError,
  invalidRequestError,
  invalidTokenError,
  missingCredentialsError,
  mountChallengeTarget,
  useDpopNonceError,
  type ChallengeTarget,
  type Scheme,
} from '../../identity/challenges.js';
import { createTokenVerifier, type TokenVerifier, type VerifiedToken } from '../../identity/verifier.js';
import { createDpopVerifier, DpopNonceRequired, dpopNoncesLoader } from '../../identity/dpop.js';
import { certificateIdentityCache, certificateMatches } from '../../identity/certificate.js';
import { principalFromCertificate, principalFromToken } from '../../identity/principal.js';
import { createApiKeyVerifier, type ApiKeyVerifier } from '../../identity/api-keys.js';
import { CredentialRejected, isCredentialRejected, resolveSecret } from '../../identity/util.js';

export const IDENTITY_STAGE = 'identity.authenticate';

export interface IdentityStageDeps {
  config: Config;
  store: StateStore;
  audit: AuditLog;
  /** Default: createTokenVerifier(config.auth, { baseDir, now, env }). */
  verifier?: TokenVerifier;
  apiKeys?: ApiKeyVerifier;
  /** Folder relative paths in the config are resolved against (default: cwd). */
  baseDir?: string;
  /** Milliseconds since epoch. */
  now?: () => number;
  /** Environment secret references are resolved from (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/** What the stage leaves in ctx.locals[IDENTITY_STAGE] for the server. */
export interface IdentityLocals {
  /** Headers to add to the response (e.g. a fresh `DPoP-Nonce`). */
  responseHeaders: Record<string, string>;
}

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

interface MountState {
  target: ChallengeTarget;
  required: boolean;
  scopes: readonly string[];
  dpop: 'required' | 'optional';
  mtls: 'required' | 'optional';
  /** Public URL prefix of the mount path, to rebuild the request URL for DPoP `htu`. */
  origin: string;
  basePath: string;
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The method a refused request tried, for audit (from the headers only). */
function attemptedMethod(ctx: RequestContext): string | undefined {
  const a = header(ctx.http.headers['authorization']);
  const scheme = a?.trim().split(' ')[0]?.toLowerCase();
  const tls = ctx.http.peerCertificate ? 'mtls' : undefined;
  const tok = scheme === 'bearer' ? 'bearer' : scheme === 'dpop' ? 'dpop' : undefined;
  if (tls && tok) return `${tls}+${tok}`;
  return tok ?? tls;
}

export function identityStage(deps: IdentityStageDeps): Stage {
  const { config, store, audit } = deps;
  const now = deps.now ?? Date.now;
  const baseDir = deps.baseDir ?? process.cwd();
  const verifier = deps.verifier ?? createTokenVerifier(config.auth, { baseDir, now, ...(deps.env ? { env: deps.env } : {}) });
  const apiKeys = deps.apiKeys ?? createApiKeyVerifier(config.auth.apiKeys, now);
  const dpopCfg = config.auth.dpop;
  // The configured secret wins; else a key shared through a shared store; else per process.
  const nonces = dpopCfg.nonce.enabled
    ? dpopNoncesLoader({
        secret: dpopCfg.nonce.secret ? resolveSecret(dpopCfg.nonce.secret, baseDir, deps.env) : undefined,
        store,
        rotateSeconds: dpopCfg.nonce.rotateSeconds,
        now,
      })
    : undefined;
  const verifyProof = createDpopVerifier({
    store,
    algorithms: dpopCfg.algorithms,
    iatWindowSeconds: dpopCfg.iatWindowSeconds,
    clockSkewSeconds: config.auth.clockSkewSeconds,
    maxProofBytes: dpopCfg.maxProofBytes,
    nonces,
    now,
  });
  const mounts = new Map<string, MountState>();
  const certificateIdentity = certificateIdentityCache();

  function mountState(ctx: RequestContext): MountState {
    let m = mounts.get(ctx.mount.name);
    if (m) return m;
    const a = ctx.mount.config.auth;
    const u = new URL(ctx.mount.resource);
    const suffix = `/mcp/${ctx.mount.name}`;
    m = {
      target: mountChallengeTarget(ctx.mount.resource, a, dpopCfg.algorithms),
      required: authRequired(config, a),
      scopes: a.scopes,
      dpop: a.dpop,
      mtls: a.mtls,
      origin: `${u.protocol}//${u.host}`,
      basePath: u.pathname.endsWith(suffix) ? u.pathname.slice(0, -suffix.length) : '',
    };
    mounts.set(ctx.mount.name, m);
    return m;
  }

  function requestUrl(m: MountState, path: string): string {
    const p = m.basePath !== '' && !path.startsWith(`${m.basePath}/`) ? `${m.basePath}${path}` : path;
    return `${m.origin}${p}`;
  }

  function reject(m: MountState, e: CredentialRejected, scheme: Scheme | undefined): BastionError {
    if (e.unavailable) {
      return new BastionError(
        'ERR_BASTION_AUTH_UNAVAILABLE',
        'The gateway could not reach the authorization server to check the access token; retry later',
        { reason: e.reason, headers: { 'Retry-After': '5' } },
      );
    }
    if (e instanceof DpopNonceRequired) return useDpopNonceError(m.target, e.nonce);
    if (e.reason.startsWith('dpop_')) return invalidDpopProofError(m.target, e.reason, e.description);
    return invalidTokenError(m.target, e.reason, e.description, scheme);
  }

  async function authenticate(ctx: RequestContext, m: MountState, locals: IdentityLocals): Promise<Principal> {
    const h = ctx.http.headers;
    // Tokens never travel in URLs (RFC 6750 §2.3 is not supported; MCP forbids it) or form bodies.
    if (ctx.http.query !== '' && new URLSearchParams(ctx.http.query).has('access_token')) {
      throw invalidRequestError(m.target, 'token_in_query', 'access tokens are accepted only in the Authorization header');
    }
    const ctype = header(h['content-type']);
    if (ctype !== undefined && /^\s*application\/x-www-form-urlencoded/i.test(ctype)) {
      throw invalidRequestError(m.target, 'token_in_body', 'access tokens are accepted only in the Authorization header');
    }
    const cert: CertificateIdentity | undefined = ctx.http.peerCertificate ? certificateIdentity(ctx.http.peerCertificate) : undefined;
    if (m.mtls === 'required' && !cert) throw clientCertRequiredError(m.target);
    if (!m.required) return cert ? principalFromCertificate(cert) : ANONYMOUS;

    const authz = header(h['authorization']);
    if (authz === undefined || authz.trim() === '') {
      const key = apiKeys.enabled ? header(h[apiKeys.header]) : undefined;
      if (key !== undefined) {
        let p: Principal;
        try {
          p = apiKeys.verify(key);
        } catch (e) {
          if (isCredentialRejected(e)) throw invalidTokenError(m.target, e.reason, e.description);
          throw e;
        }
        if (m.scopes.some((s) => !p.scopes.has(s))) {
          throw insufficientScopeError(m.target.resourceMetadataUrl, p.scopes, m.scopes, { dpop: m.dpop, dpopAlgorithms: dpopCfg.algorithms });
        }
        return p;
      }
      // A certificate alone authenticates on an mTLS-required mount, unless the mount needs
      // scopes: those only come with a token.
      if (cert && m.mtls === 'required' && m.scopes.length === 0) return principalFromCertificate(cert);
      throw missingCredentialsError(m.target);
    }
    const match = /^([A-Za-z]+) +(\S+)\s*$/.exec(authz);
    if (!match) throw invalidRequestError(m.target, 'malformed_authorization', 'the Authorization header is malformed');
    const schemeLc = match[1]!.toLowerCase();
    if (schemeLc !== 'bearer' && schemeLc !== 'dpop') throw missingCredentialsError(m.target, 'unsupported_scheme');
    const scheme: Scheme = schemeLc === 'dpop' ? 'DPoP' : 'Bearer';
    const token = match[2]!;
    if (!B64TOKEN.test(token)) throw invalidRequestError(m.target, 'malformed_authorization', 'the access token has characters not allowed in a token', scheme);
    if (scheme === 'Bearer' && m.dpop === 'required') {
      throw invalidTokenError(m.target, 'dpop_required', 'this resource requires a DPoP-bound token sent with the DPoP scheme', 'DPoP');
    }

    let vt: VerifiedToken;
    try {
      vt = await verifier.verify(token, ctx.mount.resource);
    } catch (e) {
      if (isCredentialRejected(e)) throw reject(m, e, scheme);
      throw e;
    }

    const cnf = vt.claims['cnf'];
    if (cnf !== undefined && vt.jkt === undefined && vt.x5t === undefined) {
      // RFC 7800: a confirmation method this resource cannot check must not be ignored.
      throw invalidTokenError(m.target, 'unsupported_confirmation', 'token is bound to a key in a way this resource cannot check', scheme);
    }
    if (scheme === 'Bearer' && vt.jkt !== undefined) {
      throw invalidTokenError(m.target, 'dpop_bound_token_as_bearer', 'this token is DPoP-bound: send it with the DPoP scheme and a proof', 'DPoP');
    }
    if (scheme === 'DPoP') {
      if (vt.jkt === undefined) throw invalidTokenError(m.target, 'token_not_dpop_bound', 'the DPoP scheme needs a DPoP-bound token', 'DPoP');
      const proof = header(h['dpop']);
      if (proof === undefined) throw invalidDpopProofError(m.target, 'dpop_missing', 'a DPoP proof header is required');
      try {
        await verifyProof({ proof, method: ctx.http.method, url: requestUrl(m, ctx.http.path), accessToken: token, jkt: vt.jkt });
      } catch (e) {
        if (isCredentialRejected(e)) throw reject(m, e, scheme);
        throw e;
      }
      if (nonces) locals.responseHeaders['DPoP-Nonce'] = (await nonces()).current();
    }
    if (vt.x5t !== undefined) {
      if (!cert) throw invalidTokenError(m.target, 'certificate_binding_missing', 'this token is bound to a client certificate; connect with it', scheme);
      if (!certificateMatches(vt.x5t, cert)) {
        throw invalidTokenError(m.target, 'certificate_binding_mismatch', 'this token is bound to another client certificate', scheme);
      }
    }
    const missing = m.scopes.filter((s) => !vt.scopes.includes(s));
    if (missing.length > 0) {
      throw insufficientScopeError(m.target.resourceMetadataUrl, vt.scopes, m.scopes, {
        scheme,
        dpop: m.dpop,
        dpopAlgorithms: dpopCfg.algorithms,
      });
    }
    const method: AuthMethod = cert ? (scheme === 'DPoP' ? 'mtls+dpop' : 'mtls+bearer') : scheme === 'DPoP' ? 'dpop' : 'bearer';
    // Kept in memory for this request only, for upstream credentials that exchange it (RFC 8693).
    // Never forwarded as is, never logged: audit events are built from named fields.
    ctx.locals['identity.token'] = token;
    return principalFromToken(vt, config.auth.claims, method, cert);
  }

  return {
    name: IDENTITY_STAGE,
    phase: 'identity',
    async onRequest(ctx) {
      const m = mountState(ctx);
      const locals: IdentityLocals = { responseHeaders: {} };
      ctx.locals[IDENTITY_STAGE] = locals;
      let p: Principal;
      try {
        p = await authenticate(ctx, m, locals);
      } catch (e) {
        const reason = isBastionError(e) ? e.reason : 'internal_error';
        ctx.decisions.push({ stage: IDENTITY_STAGE, outcome: 'deny', reason });
        const common = requestAuditBase(ctx);
        audit.emit({
          type: 'auth.failed',
          outcome: 'failure',
          reason,
          ...common,
          authMethod: attemptedMethod(ctx),
          error: isBastionError(e) ? e.code : 'ERR_BASTION_INTERNAL',
          status: isBastionError(e) ? e.status : 500,
        });
        if (reason === 'token_expired') audit.emit({ type: 'token.expired', outcome: 'failure', reason, ...common });
        throw e;
      }
      ctx.principal = p;
      ctx.decisions.push({ stage: IDENTITY_STAGE, outcome: 'allow', reason: p.authMethod });
      if (p.authMethod !== 'none') {
        audit.emit({
          type: 'auth.succeeded',
          outcome: 'success',
          ...requestAuditBase(ctx),
          authMethod: p.authMethod,
        });
      }
    },
  };
}
