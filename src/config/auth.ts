/**
 * Identity-layer configuration fields (owned by the identity layer): token issuers, claim
 * mapping, DPoP, legacy API keys, the TLS listener, and per-mount authentication switches.
 *
 * Secrets are never written in clear text in the file: they are references to an environment
 * variable or a file (`{ env: NAME }` / `{ file: path }`), resolved at start-up.
 */
import { z } from 'zod';

export const ASYMMETRIC_JWS_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;
export const SYMMETRIC_JWS_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'EdDSA', 'Ed25519'] as const;

export const secretRefSchema = z
  .union([
    z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).describe('Name of the environment variable holding the secret.') }).strict(),
    z.object({ file: z.string().min(1).describe('Path of a file holding the secret (trailing newline ignored); relative to the config file.') }).strict(),
  ])
  .describe('A reference to a secret: `{env: NAME}` or `{file: path}`. Secrets are never written in the config file itself.');
export type SecretRef = z.output<typeof secretRefSchema>;

const introspectionSchema = z
  .object({
    endpoint: z.string().url().describe('RFC 7662 token introspection endpoint of this issuer.'),
    clientId: z.string().min(1).describe('Client id the gateway authenticates with at the introspection endpoint (HTTP Basic).'),
    clientSecret: secretRefSchema.describe('Client secret for the introspection endpoint, as an env/file reference.'),
    cacheMaxSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(60)
      .describe('An introspection answer is cached no longer than this, and never past the token expiry. 0 disables the cache.'),
    timeoutMs: z.number().int().positive().default(5_000).describe('Timeout of one introspection call; on timeout the request gets 503 (fail closed).'),
  })
  .strict()
  .describe('Validate opaque (non-JWT) access tokens by RFC 7662 introspection.');

const issuerSchema = z
  .object({
    issuer: z.string().url().describe('Issuer identifier, compared exactly with the token `iss` claim.'),
    jwksUri: z.string().url().optional().describe('JWKS URL of the issuer (keys selected by `kid`; refetched on an unknown kid at a bounded rate).'),
    jwksFile: z.string().optional().describe('Path of a local JWKS file instead of a URL (relative to the config file).'),
    discovery: z
      .boolean()
      .optional()
      .describe('Find jwks_uri (and introspection_endpoint) from RFC 8414 / OpenID Connect discovery metadata of the issuer.'),
    algorithms: z
      .array(z.enum([...ASYMMETRIC_JWS_ALGORITHMS, ...SYMMETRIC_JWS_ALGORITHMS]))
      .min(1)
      .optional()
      .describe('Accepted JWS algorithms. Default: the asymmetric ones. HS* only with an explicit `symmetricKey`. `none` is never accepted.'),
    symmetricKey: secretRefSchema
      .optional()
      .describe('Shared HMAC key (env/file reference). Only then are HS256/384/512 accepted, and only if listed in `algorithms`.'),
    audience: z
      .array(z.string().min(1))
      .default([])
      .describe('Extra `aud` values accepted from this issuer besides the mount canonical resource (for authorization servers without RFC 8707). Avoid: such a token is valid at every mount.'),
    typ: z
      .string()
      .optional()
      .describe('Required JWT `typ` header, e.g. `at+jwt` (RFC 9068). When unset, tokens that look like ID tokens are still refused.'),
    introspection: introspectionSchema.optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const n = (v.jwksUri ? 1 : 0) + (v.jwksFile ? 1 : 0) + (v.discovery ? 1 : 0) + (v.symmetricKey ? 1 : 0);
    if (n === 0 && !v.introspection) {
      ctx.addIssue({ code: 'custom', message: 'an issuer needs a key source: one of `jwksUri`, `jwksFile`, `discovery: true`, `symmetricKey`, or `introspection`' });
    }
    if ((v.jwksUri ? 1 : 0) + (v.jwksFile ? 1 : 0) + (v.discovery ? 1 : 0) > 1) {
      ctx.addIssue({ code: 'custom', message: 'give only one of `jwksUri`, `jwksFile` or `discovery`' });
    }
    const hs = (v.algorithms ?? []).filter((a) => a.startsWith('HS'));
    if (hs.length > 0 && !v.symmetricKey) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'HS* algorithms need an explicit `symmetricKey` (asymmetric keys must never verify HMAC tokens)' });
    }
    if (v.symmetricKey && (v.algorithms ?? []).some((a) => !a.startsWith('HS'))) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'an issuer with `symmetricKey` accepts HS* algorithms only; configure a second issuer entry for asymmetric keys' });
    }
  })
  .describe('A trusted authorization server.');

const apiKeySchema = z
  .object({
    id: z.string().min(1).describe('Public name of the key, used as the principal subject and in audit records.'),
    sha256: z
      .string()
      .regex(/^([0-9a-f]{64}|[A-Za-z0-9_-]{43})$/)
      .describe('SHA-256 of the key, hex or base64url. The key itself is never stored.'),
    expiresAt: z.string().datetime({ offset: true }).describe('Expiry (ISO-8601). Must be no more than 90 days after start-up.'),
    scopes: z.array(z.string()).default([]).describe('Scopes granted to requests made with this key.'),
  })
  .strict();

const claimPath = z.string().min(1).describe('Dotted claim path, e.g. `realm_access.roles`.');

const authSchema = z
  .object({
    issuers: z.array(issuerSchema).default([]).describe('Trusted authorization servers. Several at once are allowed.'),
    clockSkewSeconds: z.number().int().min(0).max(300).default(30).describe('Clock skew tolerated on exp, nbf and iat.'),
    maxTokenBytes: z.number().int().min(256).max(65_536).default(8_192).describe('Longer access tokens are refused before any parsing.'),
    tokenCache: z
      .object({
        maxEntries: z.number().int().min(0).default(10_000).describe('Verified tokens kept (LRU). 0 disables the cache.'),
      })
      .strict()
      .prefault({})
      .describe('Cache of verified tokens keyed by SHA-256 of the token; entries expire with the token.'),
    jwks: z
      .object({
        cacheMaxAgeSeconds: z.number().int().positive().default(600).describe('A JWKS is refetched after this long.'),
        cooldownSeconds: z.number().int().min(0).default(30).describe('Least time between two JWKS fetches caused by an unknown kid.'),
        timeoutMs: z.number().int().positive().default(5_000).describe('Timeout of a JWKS or discovery fetch.'),
      })
      .strict()
      .prefault({})
      .describe('Remote JWKS fetching.'),
    claims: z
      .object({
        roles: z.array(claimPath).default(['roles', 'realm_access.roles']).describe('Claim paths whose values are the principal roles.'),
        groups: z.array(claimPath).default(['groups']).describe('Claim paths whose values are the principal groups.'),
      })
      .strict()
      .prefault({})
      .describe('Where roles and groups are read from the token claims.'),
    dpop: z
      .object({
        algorithms: z.array(z.enum(DPOP_ALGORITHMS)).min(1).default(['ES256', 'EdDSA', 'PS256', 'RS256']).describe('Accepted DPoP proof algorithms.'),
        iatWindowSeconds: z.number().int().min(1).max(600).default(60).describe('A DPoP proof `iat` older than this (or further in the future than the clock skew) is refused.'),
        maxProofBytes: z.number().int().min(256).max(16_384).default(4_096).describe('Longer DPoP proofs are refused.'),
        nonce: z
          .object({
            enabled: z.boolean().default(false).describe('Require server-provided nonces in DPoP proofs (RFC 9449 §9).'),
            rotateSeconds: z.number().int().min(5).max(3600).default(300).describe('A nonce is valid during its period and the next one.'),
            secret: secretRefSchema.optional().describe('HMAC key for nonces, shared by every replica. Default: with state.type redis, a random key the replicas share through the store (bastion:k:dpop:nonce-key); otherwise random per process.'),
          })
          .strict()
          .prefault({})
          .describe('Server nonces.'),
      })
      .strict()
      .prefault({})
      .describe('DPoP proof-of-possession (RFC 9449).'),
    apiKeys: z
      .object({
        enabled: z.boolean().default(false).describe('Accept legacy API keys (migrations only; warned about at start-up).'),
        header: z.string().regex(/^[A-Za-z0-9-]+$/).default('x-api-key').describe('Request header carrying the API key.'),
        keys: z.array(apiKeySchema).default([]).describe('Accepted keys, stored as SHA-256 hashes.'),
      })
      .strict()
      .prefault({})
      .describe('Legacy static API keys. Disabled by default.'),
  })
  .strict()
  .prefault({})
  .describe('How clients authenticate to the gateway (OAuth 2.1 resource server).');

const tlsSchema = z
  .object({
    cert: z.string().min(1).describe('PEM certificate chain file. Reloaded when the file changes.'),
    key: z.string().min(1).describe('PEM private key file. Reloaded when the file changes.'),
    clientCa: z.string().optional().describe('PEM CA bundle client certificates are verified against (enables mTLS).'),
    requestClientCert: z.boolean().default(false).describe('Ask clients for a certificate. A certificate that fails verification closes the connection.'),
    requireClientCert: z.boolean().default(false).describe('Refuse TLS connections without a valid client certificate.'),
    crl: z.string().optional().describe('PEM certificate revocation list file(s) for client certificates. Reloaded when the file changes.'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.3').describe('Lowest TLS version accepted.'),
    ciphers: z.string().optional().describe('OpenSSL cipher list (TLS 1.2 ciphers and TLS 1.3 suites). Default: Node.js defaults.'),
    reloadIntervalMs: z.number().int().min(100).default(5_000).describe('How often cert, key, CA and CRL files are checked for changes.'),
    hsts: z
      .object({
        enabled: z.boolean().default(true).describe('Send Strict-Transport-Security on HTTPS responses.'),
        maxAgeSeconds: z.number().int().min(0).default(31_536_000).describe('HSTS max-age.'),
        includeSubDomains: z.boolean().default(true).describe('HSTS includeSubDomains.'),
        preload: z.boolean().default(false).describe('HSTS preload.'),
      })
      .strict()
      .prefault({})
      .describe('HTTP Strict Transport Security.'),
  })
  .strict()
  .superRefine((v, ctx) => {
    if ((v.requestClientCert || v.requireClientCert) && !v.clientCa) {
      ctx.addIssue({ code: 'custom', path: ['clientCa'], message: 'client certificates need `clientCa` to verify them against' });
    }
    if (v.crl && !v.clientCa) ctx.addIssue({ code: 'custom', path: ['crl'], message: '`crl` applies to client certificates: set `clientCa` too' });
  })
  .describe('Serve HTTPS (and optionally mutual TLS). Without it the listener is plain HTTP.');

export const authGlobalFields = {
  auth: authSchema,
  tls: tlsSchema.optional(),
};

export const mountAuthSchema = z
  .object({
    required: z
      .boolean()
      .optional()
      .describe('Require authentication. Default: true when an issuer or API key is configured, or mTLS is required.'),
    scopes: z.array(z.string().min(1)).default([]).describe('Scopes every request to this mount needs.'),
    dpop: z.enum(['required', 'optional']).default('optional').describe('`required`: only DPoP-bound tokens with a valid proof are accepted.'),
    mtls: z.enum(['required', 'optional']).default('optional').describe('`required`: a verified client certificate is needed (it alone authenticates when no token is sent and the mount needs no scopes).'),
    allowUnauthenticated: z
      .boolean()
      .default(false)
      .describe('Needed to turn authentication off on a listener that is not loopback-only.'),
    resourceName: z.string().optional().describe('Human-readable name in the protected resource metadata (default: the mount name).'),
  })
  .strict()
  .prefault({})
  .describe('Authentication of requests to this mount.');

export const authServerFields = {
  auth: mountAuthSchema,
};

export type AuthConfig = z.output<typeof authSchema>;
export type IssuerConfig = z.output<typeof issuerSchema>;
export type TlsConfig = z.output<typeof tlsSchema>;
export type MountAuthConfig = z.output<typeof mountAuthSchema>;
