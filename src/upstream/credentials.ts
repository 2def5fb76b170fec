/**
 * The upstream's own credentials (`servers.NAME.http.credentials`): what the HTTP connector
 * sends to an upstream instead of anything the client sent. The client's Authorization, DPoP,
 * Cookie and session headers never reach an upstream (the connector drops them); this module
 * supplies the replacement headers.
 *
 * Providers
 * - `header`: a static header whose value is read from an environment variable or a secret
 *   file (re-read when the file changes, so mounted secrets can rotate).
 * - `client_credentials`: OAuth 2.0 client credentials grant (RFC 6749 section 4.4). The token
 *   is cached and replaced `refreshSkewSeconds` (at most half its lifetime) before it expires;
 *   concurrent callers share one token request (single flight).
 * - `token_exchange`: RFC 8693. The client's access token is the `subject_token`; the upstream
 *   is the `audience`/`resource`. Only the exchanged token is sent, never the original.
 *   Exchanged tokens are cached per subject token (keyed by its SHA-256) until shortly before
 *   they expire, bounded, and single-flight per subject.
 *
 * Errors are `ERR_BASTION_UPSTREAM_CREDENTIALS` and never carry a secret, a token or the
 * authorization server's response body: only the server name, the HTTP status and the OAuth
 * `error` code.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { BastionError } from '../errors.js';
import type { HttpCredentialsConfig, SecretRef } from '../config/upstream-hygiene.js';

export interface CredentialContext {
  /** The client's verified access token (needed by `token_exchange` only). */
  subjectToken?: string;
}

export interface UpstreamCredentials {
  /** Headers to add to an upstream request. Rejects with ERR_BASTION_UPSTREAM_CREDENTIALS. */
  headers(ctx: CredentialContext): Promise<Record<string, string>>;
  /**
   * Forget cached tokens (call after the upstream answers 401 with a token we sent), so the
   * next call fetches a fresh one. With a subject token, only that subject's exchanged token.
   */
  invalidate(ctx?: CredentialContext): void;
  /**
   * Read the configured secrets now (no network): call at start-up so a missing environment
   * variable or unreadable secret file stops the gateway with a clear message instead of
   * failing the first request. Throws ERR_BASTION_UPSTREAM_CREDENTIALS.
   */
  check(): void;
}

export interface CredentialDeps {
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (injected in tests). */
  now?: () => number;
  /** Environment secrets are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Folder relative secret files resolve against (the config file's folder). */
  baseDir?: string;
  /** The upstream's URL: default `resource` / `audience` of requested tokens. */
  upstreamUrl?: string;
  /** Server name, for error messages. */
  server?: string;
}

const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/** Lifetime assumed when the authorization server omits expires_in. */
const DEFAULT_LIFETIME_S = 300;
/** Visible ASCII only: a header value with CR/LF or controls would split or smuggle headers. */
const HEADER_VALUE = /^[\x20-\x7e]+$/;

function fail(server: string, message: string, reason: string, cause?: unknown): BastionError {
  return new BastionError('ERR_BASTION_UPSTREAM_CREDENTIALS', `Upstream "${server}": ${message}`, { reason, cause });
}

/** Read a secret from the environment or a file; files are re-read when their mtime changes. */
class SecretSource {
  private cached: string | undefined;
  private mtimeMs = -1;
  private checkedAt = -Infinity;
  private readonly path: string | undefined;

  constructor(
    private readonly ref: SecretRef,
    private readonly what: string,
    private readonly deps: Required<Pick<CredentialDeps, 'now' | 'env' | 'server'>> & { baseDir: string },
  ) {
    this.path = ref.file === undefined ? undefined : isAbsolute(ref.file) ? ref.file : resolve(deps.baseDir, ref.file);
  }

  get(): string {
    const { server } = this.deps;
    if (this.ref.env !== undefined) {
      const v = this.deps.env[this.ref.env];
      if (v === undefined || v === '') {
        throw fail(server, `${this.what} comes from environment variable ${this.ref.env}, which is not set (set it in the gateway's environment)`, 'secret_missing');
      }
      return v;
    }
    const path = this.path!;
    const now = this.deps.now();
    if (this.cached !== undefined && now - this.checkedAt < 1000) return this.cached;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(path).mtimeMs;
    } catch (err) {
      throw fail(server, `${this.what} file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): check the path and its permissions`, 'secret_missing');
    }
    this.checkedAt = now;
    if (this.cached !== undefined && mtimeMs === this.mtimeMs) return this.cached;
    let v: string;
    try {
      v = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw fail(server, `${this.what} file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): check the path and its permissions`, 'secret_missing');
    }
    if (v === '') throw fail(server, `${this.what} file ${path} is empty`, 'secret_missing');
    this.cached = v;
    this.mtimeMs = mtimeMs;
    return v;
  }
}

interface CachedToken {
  token: string;
  /** Use until this instant (ms), then fetch a new one. */
  refreshAt: number;
}

type TokenClientConfig = Extract<HttpCredentialsConfig, { type: 'client_credentials' | 'token_exchange' }>;

/** One POST to the token endpoint; returns the access token and when to replace it. */
async function requestToken(
  cfg: TokenClientConfig,
  secret: SecretSource,
  params: Record<string, string>,
  deps: Required<Pick<CredentialDeps, 'fetch' | 'now' | 'server'>>,
): Promise<CachedToken> {
  const { server } = deps;
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  const clientSecret = secret.get();
  if (cfg.authMethod === 'client_secret_basic') {
    // RFC 6749 section 2.3.1: id and secret are form-urlencoded before base64.
    const enc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
    headers.authorization = `Basic ${Buffer.from(`${enc(cfg.clientId)}:${enc(clientSecret)}`).toString('base64')}`;
  } else {
    body.set('client_id', cfg.clientId);
    body.set('client_secret', clientSecret);
  }
  if (cfg.scope !== undefined) body.set('scope', cfg.scope);

  const started = deps.now();
  let res: Response;
  try {
    res = await deps.fetch(cfg.tokenUrl, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(cfg.timeoutMs) });
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${cfg.timeoutMs} ms` : 'connection failed';
    throw fail(server, `token request to ${cfg.tokenUrl} failed: ${why}`, 'token_endpoint_unreachable', err);
  }
  const text = await res.text().catch(() => '');
  if (text.length > MAX_TOKEN_RESPONSE_BYTES) throw fail(server, `token endpoint ${cfg.tokenUrl} sent an oversized response`, 'token_response_invalid');
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    // Only the OAuth error code, and only if it is a short plain token: the body is not ours to echo.
    const code = typeof json?.error === 'string' && /^[\x21-\x7e]{1,64}$/.test(json.error) ? ` (error=${json.error})` : '';
    throw fail(server, `token endpoint ${cfg.tokenUrl} refused the request: HTTP ${res.status}${code}`, 'token_request_refused');
  }
  const token = json?.access_token;
  if (typeof token !== 'string' || token === '' || !HEADER_VALUE.test(token)) {
    throw fail(server, `token endpoint ${cfg.tokenUrl} answered without a usable access_token`, 'token_response_invalid');
  }
  const tokenType = typeof json?.token_type === 'string' ? json.token_type.toLowerCase() : 'bearer';
  if (tokenType !== 'bearer' && tokenType !== 'n_a') {
    throw fail(server, `token endpoint ${cfg.tokenUrl} issued a "${String(json?.token_type).slice(0, 20)}" token; only Bearer tokens are supported`, 'token_response_invalid');
  }
  const expiresIn = typeof json?.expires_in === 'number' && Number.isFinite(json.expires_in) && json.expires_in > 0 ? json.expires_in : DEFAULT_LIFETIME_S;
  const lifetimeMs = expiresIn * 1000;
  const skewMs = Math.min(cfg.refreshSkewSeconds * 1000, lifetimeMs / 2);
  return { token, refreshAt: started + lifetimeMs - skewMs };
}

/** Shares one in-flight promise per key among concurrent callers. */
class SingleFlight<T> {
  private readonly inflight = new Map<string, Promise<T>>();
  run(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.inflight.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }
}

const NONE: UpstreamCredentials = { headers: async () => ({}), invalidate: () => undefined, check: () => undefined };

/**
 * Build the credential provider of one HTTP upstream. With no config, sends nothing.
 * Secrets are read on first use; call `check()` at start-up to fail fast on a missing one.
 */
export function createCredentials(config: HttpCredentialsConfig | undefined, deps: CredentialDeps = {}): UpstreamCredentials {
  if (config === undefined) return NONE;
  const now = deps.now ?? Date.now;
  const server = deps.server ?? 'upstream';
  const env = deps.env ?? process.env;
  const baseDir = deps.baseDir ?? process.cwd();
  const doFetch = deps.fetch ?? fetch;

  if (config.type === 'header') {
    const ref: SecretRef = config.env !== undefined ? { env: config.env } : { file: config.file! };
    const source = new SecretSource(ref, `header ${config.name}`, { now, env, server, baseDir });
    const name = config.name.toLowerCase();
    return {
      headers: async () => {
        const value = `${config.prefix ?? ''}${source.get()}`;
        if (!HEADER_VALUE.test(value)) {
          throw fail(server, `the value for header ${config.name} contains characters not allowed in a header (control characters or non-ASCII)`, 'secret_invalid');
        }
        return { [name]: value };
      },
      invalidate: () => undefined,
      check: () => void source.get(),
    };
  }

  const secret = new SecretSource(config.clientSecret, 'client secret', { now, env, server, baseDir });
  const resource = config.resource ?? deps.upstreamUrl;
  const tokenDeps = { fetch: doFetch, now, server };

  if (config.type === 'client_credentials') {
    let cached: CachedToken | undefined;
    const flight = new SingleFlight<CachedToken>();
    const params: Record<string, string> = { grant_type: 'client_credentials' };
    if (resource !== undefined) params.resource = resource;
    if (config.audience !== undefined) params.audience = config.audience;
    return {
      headers: async () => {
        if (cached === undefined || now() >= cached.refreshAt) {
          cached = await flight.run('cc', () => requestToken(config, secret, params, tokenDeps));
        }
        return { authorization: `Bearer ${cached.token}` };
      },
      invalidate: () => {
        cached = undefined;
      },
      check: () => void secret.get(),
    };
  }

  // RFC 8693 token exchange.
  const cache = new Map<string, CachedToken>();
  const flight = new SingleFlight<CachedToken>();
  const audience = config.audience ?? deps.upstreamUrl;
  const keyOf = (t: string): string => createHash('sha256').update(t).digest('base64url');
  return {
    headers: async (ctx) => {
      const subject = ctx.subjectToken;
      if (subject === undefined || subject === '') {
        throw fail(server, "token exchange needs the client's access token, and this request carried none (enable authentication on this server)", 'subject_token_missing');
      }
      const key = keyOf(subject);
      let entry = cache.get(key);
      if (entry === undefined || now() >= entry.refreshAt) {
        cache.delete(key);
        const params: Record<string, string> = {
          grant_type: GRANT_TOKEN_EXCHANGE,
          subject_token: subject,
          subject_token_type: TOKEN_TYPE_ACCESS,
          requested_token_type: config.requestedTokenType,
        };
        if (audience !== undefined) params.audience = audience;
        if (resource !== undefined) params.resource = resource;
        entry = await flight.run(key, () => requestToken(config, secret, params, tokenDeps));
        if (entry.token === subject) {
          throw fail(server, 'the authorization server returned the client token unchanged; refusing to pass it through', 'token_passthrough');
        }
        if (config.cacheSize > 0) {
          if (cache.size >= config.cacheSize) {
            // Drop expired entries first, then the oldest.
            const t = now();
            for (const [k, v] of cache) if (t >= v.refreshAt) cache.delete(k);
            if (cache.size >= config.cacheSize) cache.delete(cache.keys().next().value!);
          }
          cache.set(key, entry);
        }
      }
      return { authorization: `Bearer ${entry.token}` };
    },
    invalidate: (ctx) => {
      if (ctx?.subjectToken) cache.delete(keyOf(ctx.subjectToken));
      else cache.clear();
    },
    check: () => void secret.get(),
  };
}
